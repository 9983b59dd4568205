"""What one step of a unit hands the next in the same process: the records last read from or
written to a file, kept while the file is unchanged, until the unit ends (`forget`).

A chain runs a partition's steps in one process (generate -> filter -> dedup_sign), and each step
reads what the one before wrote or read: the partition's merged records (generate, then filter),
the dialogue table (generate writes it, filter reads it). Parsing it once more costs ~0.45 CPU-s
per 9,600 dialogues and ~0.8 per partition of records; the file's identity
(path, inode, mtime, size) makes sure a rewritten file is read again."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_kept: dict[str, tuple[tuple[str, int, int, int], list[Any]]] = {}


def _ident(path: Path) -> tuple[str, int, int, int]:
    st = os.stat(path)  # an atomic rewrite is a new inode
    return (os.path.abspath(path), st.st_ino, st.st_mtime_ns, st.st_size)


def keep(kind: str, path: Path, items: list[Any]) -> None:
    """Keep `items` as the content of `path` (one file per kind: the previous one is dropped)."""
    _kept[kind] = (_ident(path), items)


def kept(kind: str, path: Path) -> list[Any] | None:
    """A copy of the list kept for `path`, when the file is still the one it came from."""
    entry = _kept.get(kind)
    if entry is None or entry[0] != _ident(path):
        return None
    return list(entry[1])


def forget() -> None:
    """Drop everything kept (a unit of work ends: its records are freed)."""
    _kept.clear()
