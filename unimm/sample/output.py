"""Where the sample corpora go: the whole folder appears at once, and never over real data."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from unimm.errors import ConfigError
from unimm.workdir import atomic_dir

MARKER = "unimm-sample.json"


@contextlib.contextmanager
def sample_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary folder that replaces `out` only when the block succeeds.

    An existing `out` is replaced only if it is empty or a previous sample (it holds MARKER), so
    a real data root is never wiped by a mistyped --out."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise ConfigError(
            f"{out} exists and is not a unimm sample folder (no {MARKER}); choose an empty --out"
        )
    with atomic_dir(out) as tmp:
        yield tmp


def write_json(path: Path, doc: Any) -> None:
    """Compact JSON as the publishers write it (no spaces, key order kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(doc))


def write_marker(root: Path, info: dict[str, Any]) -> None:
    """What was generated (no timestamps, so a seed gives the same bytes)."""
    (root / MARKER).write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
