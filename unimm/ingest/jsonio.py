"""Typed JSON decoding for the ingesters, and msgspec errors turned into `InputError`s.

Every source file is decoded with `msgspec` into Structs that declare only the fields we need
(unknown keys such as `info`, `licenses`, `segmentation`, `flickr_id` are skipped by the decoder
without being materialised). Structs are declared `gc=False`: they hold no cycles, and keeping
millions of them out of the cyclic GC is what makes decoding the 5.4M VG regions affordable.

Memory: a file is mapped, not copied (`read_file`), and unmapped as soon as nothing decoded
from it refers to it, so a file's peak is roughly its decoded Structs (~3x the file size for VG
regions) plus the columns built from them. A file that is one large array can instead be decoded
a chunk of items at a time (`decode_array`): its peak is then the file's pages plus one chunk's
Structs.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import msgspec

from unimm.errors import InputError

T = TypeVar("T")

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"missing required field `(?P<field>[^`]+)`")
_BYTE = re.compile(r"\(byte (?P<pos>\d+)\)")
_decoders: dict[object, msgspec.json.Decoder] = {}


def _decoder(typ: type[T]) -> msgspec.json.Decoder:
    dec = _decoders.get(typ)
    if dec is None:
        dec = _decoders[typ] = msgspec.json.Decoder(typ)
    return dec


def split_path(path: str) -> tuple[str | None, str | None]:
    """`.annotations[12].image_id` -> ("annotations[12]", "image_id"); `[3]` -> ("[3]", None)."""
    path = path.lstrip(".")
    if not path:
        return None, None
    m = re.match(r"^(?P<rec>.*)\.(?P<field>[A-Za-z_][A-Za-z0-9_]*)$", path)
    if m and m.group("rec"):
        return m.group("rec"), m.group("field")
    if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", path):  # a top-level key of the document
        return None, path
    return path, None


def _line_col(data: bytes | mmap.mmap, pos: int) -> str:
    head = data[:pos]
    line = head.count(b"\n") + 1
    col = pos - (head.rfind(b"\n") + 1) + 1
    return f"line {line}, column {col}"


def read_file(path: Path, name: str | None = None) -> bytes | mmap.mmap:
    """The bytes of a JSON file, for msgspec: a read-only map of a regular file, else (an empty
    file, a pipe) a copy. Mapped pages come from the page cache; a copy of VG's 0.6 GB regions
    file costs 150k page faults and 0.5 s of system time. An unreadable file is an InputError
    naming it (`name`, default the path)."""
    try:
        with open(path, "rb") as f:
            try:
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (ValueError, OSError):  # empty, or not a regular file
                return f.read()
    except OSError as e:
        raise InputError(name or str(path), f"cannot read: {e.strerror or e}") from e


def decode_file(path: Path, typ: type[T], display: str | None = None) -> T:
    """Decode one JSON file into `typ`; any problem becomes one InputError naming file, record, field."""
    name = display or str(path)
    return decode_bytes(read_file(path, name), typ, name)


def decode_array(
    path: Path, item: type[T], chunk: int, order: Callable[[int], Sequence[int] | None] | None = None
) -> Iterator[tuple[Sequence[int], list[T]]]:
    """Decode a file that is one JSON array, `chunk` items at a time: yields (the indexes of the
    chunk's items in the array, its items). The whole file is syntax-checked and split into raw
    items (views into its bytes) first, so a broken file fails before anything is yielded; each
    chunk's Structs exist only until the caller moves on. `order`, given the number of items,
    may return the order to decode them in (a permutation of their indexes); default: as listed.
    Errors are those of `decode_file`, with the item's index in the record."""
    name = str(path)
    raws = decode_bytes(read_file(path, name), list[msgspec.Raw], name)
    dec = _decoder(item)
    indexes = order(len(raws)) if order else None
    if indexes is None:
        indexes = range(len(raws))
    for start in range(0, len(raws), chunk):
        picked = indexes[start : start + chunk]
        items = []
        for i in picked:
            try:
                items.append(dec.decode(raws[i]))
            except msgspec.ValidationError as e:
                raise _validation_error(e, name, f"[{i}]") from None
        yield picked, items


def _validation_error(e: msgspec.ValidationError, name: str, at: str = "") -> InputError:
    """The InputError of a msgspec validation error; `at` prefixes the record path (an item's
    index when the item was decoded on its own)."""
    m = _AT.match(str(e))
    assert m is not None  # the pattern matches any string
    msg, raw_path = m.group("msg"), at + (m.group("path") or "")
    record, field = split_path(raw_path)
    missing = _MISSING.search(msg)
    if missing:
        if record is None and field is not None:  # missing key inside a top-level object
            record = field
        field = missing.group("field")
    return InputError(name, msg, record=record, field=field)


def decode_bytes(data: bytes | mmap.mmap, typ: type[T], name: str) -> T:
    """Decode the JSON document `data` (the contents of file `name`) into `typ`, as decode_file."""
    try:
        return _decoder(typ).decode(data)
    except msgspec.ValidationError as e:
        raise _validation_error(e, name) from None
    except msgspec.DecodeError as e:
        msg = str(e)
        pos = _BYTE.search(msg)
        if pos:
            msg = f"{msg} ({_line_col(data, int(pos.group('pos')))})"
        raise InputError(name, f"invalid JSON: {msg}") from None
