"""Reading samples back from shard tars (verify and export)."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path


class TarFormatError(Exception):
    """A shard member that is not a regular `<key>.<ext>` file, or a key split across the tar."""


def iter_tar_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {ext: bytes}) per sample, in tar order; members of one sample must be adjacent, as
    webdataset requires. The key is the member name up to the first dot (webdataset's rule)."""
    seen: set[str] = set()
    key: str | None = None
    members: dict[str, bytes] = {}
    with tarfile.open(path, "r:") as tf:
        for m in tf:
            if not m.isfile():
                raise TarFormatError(f"member {m.name!r} is not a regular file")
            if "/" in m.name or "." not in m.name:
                raise TarFormatError(f"member {m.name!r} is not <key>.<ext>")
            k, ext = m.name.split(".", 1)
            if k != key:
                if key is not None:
                    yield key, members
                if k in seen:
                    raise TarFormatError(f"sample {k!r} is split across the tar")
                seen.add(k)
                key, members = k, {}
            if ext in members:
                raise TarFormatError(f"sample {k!r} has two {ext!r} members")
            f = tf.extractfile(m)
            assert f is not None  # regular file
            members[ext] = f.read()
    if key is not None:
        yield key, members
