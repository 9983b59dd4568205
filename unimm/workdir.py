"""Where each stage keeps its outputs under `--work DIR`, and atomic writes.

Layout: ingest/<source>.parquet + ingest/<source>.images.parquet, merged/part-*.parquet +
merged/summary.json, then later stages' folders. A file becomes visible only when complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl

DEFAULT_WORK = Path("work")


def ingest_table(work: Path, source: str) -> Path:
    return Path(work) / "ingest" / f"{source}.parquet"


def ingest_images(work: Path, source: str) -> Path:
    return Path(work) / "ingest" / f"{source}.images.parquet"


def merged_dir(work: Path) -> Path:
    return Path(work) / "merged"


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it into place only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary directory beside `final`; swap it into place only if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_parquet_atomic(df: pl.DataFrame, path: Path) -> Path:
    """Write a Parquet file so that readers see the whole file or none of it."""
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, compression="zstd", statistics=True)
    return Path(path)
