"""Read unimm WebDataset shards back: find the tars of a folder and yield validated samples.

Shards are read with the real `webdataset` library, one shard at a time so that an error names
the shard it came from.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import webdataset as wds
from pydantic import ValidationError

from unimm.errors import InputError, UnimmError
from unimm.schema import Chat

IMAGE_EXTS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")
T = TypeVar("T")


@dataclass(frozen=True)
class Sample:
    """One shard sample: its key, the shard file it came from, the dialogue and the image bytes."""

    key: str
    shard: str
    chat: Chat
    image: bytes | None
    image_ext: str | None


def find_shards(shard_dir: Path) -> list[Path]:
    """The `*.tar` shards of `shard_dir`, in name order; UnimmError when there are none."""
    shard_dir = Path(shard_dir)
    if not shard_dir.is_dir():
        raise UnimmError(f"{shard_dir}: no such folder, so no shards to read")
    shards = sorted(p for p in shard_dir.glob("*.tar") if p.is_file())
    if not shards:
        raise UnimmError(f"{shard_dir}: no shards (*.tar) found in this folder")
    return shards


def _field(err: ValidationError) -> str | None:
    first = err.errors()[0] if err.errors() else None
    return ".".join(str(p) for p in first["loc"]) if first and first["loc"] else None


def _parse(shard: Path, raw: dict) -> Sample:
    key = raw["__key__"]
    data = raw.get("json")
    if data is None:
        raise InputError(shard, "sample has no .json member", record=key)
    try:
        chat = Chat.model_validate_json(data)
    except ValidationError as e:
        msg = e.errors()[0]["msg"] if e.errors() else str(e)
        raise InputError(shard, f"{key}.json is not a valid Chat: {msg}", record=key, field=_field(e)) from e
    ext = next((x for x in IMAGE_EXTS if x in raw), None)
    return Sample(key=key, shard=shard.name, chat=chat, image=raw[ext] if ext else None, image_ext=ext)


def iter_samples(shards: list[Path]) -> Iterator[Sample]:
    """Yield every sample of `shards` in order; a broken tar or record raises InputError."""
    for shard in shards:
        # empty_check=False: an empty shard is legal (it contributes nothing), not an error
        ds = wds.WebDataset([str(shard)], shardshuffle=False, empty_check=False)
        it = iter(ds)
        while True:
            try:
                raw = next(it)
            except StopIteration:
                break
            except (
                Exception
            ) as e:  # tarfile.ReadError, OSError, webdataset's own errors: all mean a broken tar
                raise InputError(shard, f"unreadable shard: {type(e).__name__}: {e}") from e
            yield _parse(shard, raw)


class Reservoir(Generic[T]):
    """Uniform sample of k items from a stream of unknown length (Algorithm R), seeded so that the
    same stream and seed always give the same picks; keeps only k items in memory."""

    def __init__(self, k: int, seed: int = 0) -> None:
        self.k = k
        self.rng = random.Random(seed)
        self.items: list[T] = []
        self.seen = 0

    def offer(self, item: T) -> None:
        """Consider one more item of the stream."""
        self.seen += 1
        if len(self.items) < self.k:
            self.items.append(item)
            return
        j = self.rng.randrange(self.seen)
        if j < self.k:
            self.items[j] = item
