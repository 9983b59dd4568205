"""`unimm download`: fetch the official archives of the chosen sources and unpack them into
the data root, so that every file in `unimm.sources.EXPECTED_FILES` is where ingest looks.

Archives are stored in `<data-root>/.downloads/<source>/` while they download (resumable
`.part` files) and removed after a successful unpack unless `keep_archives` is set.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from unimm.download.fetch import DownloadError, fetch
from unimm.download.unpack import UnsafeArchiveError, unpack
from unimm.sources import SOURCE_SPECS, Archive

MIRROR_ENV = "UNIMM_MIRROR"
DOWNLOADS = ".downloads"


@dataclass(frozen=True)
class Outcome:
    """What happened to one archive."""

    source: str
    archive: str
    status: str  # "present" (skipped) | "unpacked"
    downloaded: int  # bytes transferred in this run
    resumed_from: int


def select_archives(sources: Iterable[str], *, images: bool = False) -> list[Archive]:
    """The catalogue's archives for these sources; image archives only when asked for."""
    return [a for s in sources for a in SOURCE_SPECS[s].archives if images or a.kind != "images"]


def archive_url(archive: Archive, mirror: str | None) -> str:
    """The official URL, or `<mirror>/<source>/<archive filename>` when a mirror is set."""
    return f"{mirror.rstrip('/')}/{archive.source}/{archive.filename}" if mirror else archive.url


def is_present(archive: Archive, data_root: Path) -> bool:
    """True when every file (or non-empty folder) the archive yields is already in place."""
    root = Path(data_root) / archive.source
    for m in archive.members:
        p = root / m
        if not (p.is_dir() and any(p.iterdir()) if m.endswith("/") else p.is_file()):
            return False
    return True


def download_archive(
    archive: Archive,
    data_root: Path,
    *,
    mirror: str | None = None,
    keep_archive: bool = False,
    progress: Progress | None = None,
) -> Outcome:
    """Fetch (resuming), verify and unpack one archive into `<data_root>/<source>/`."""
    data_root = Path(data_root)
    if is_present(archive, data_root):
        return Outcome(archive.source, archive.filename, "present", 0, 0)
    url = archive_url(archive, mirror)
    dest = data_root / DOWNLOADS / archive.source / archive.filename
    task = progress.add_task(f"{archive.source}/{archive.filename}", total=archive.size) if progress else None

    def advance(n: int, total: int | None) -> None:
        if progress is not None and task is not None:
            progress.update(task, advance=n, total=total)

    got = fetch(url, dest, expected_size=archive.size, sha256=archive.sha256, progress=advance)
    unpack(
        dest,
        data_root / archive.source,
        expected=archive.members,
        strip=archive.strip_components,
        name=archive.filename,
    )
    if not keep_archive:
        dest.unlink()
    return Outcome(archive.source, archive.filename, "unpacked", got.downloaded, got.resumed_from)


def download(
    archives: list[Archive],
    data_root: Path,
    *,
    mirror: str | None = None,
    keep_archives: bool = False,
    console: Console | None = None,
) -> list[Outcome]:
    """Download and unpack each archive in turn with byte progress bars; stops at the first failure
    (a DownloadError naming the URL or archive). Already-present archives are skipped."""
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    console = console or Console(stderr=True)
    outcomes = []
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        for a in archives:
            outcomes.append(
                download_archive(a, data_root, mirror=mirror, keep_archive=keep_archives, progress=progress)
            )
    return outcomes


__all__ = [
    "DownloadError",
    "Outcome",
    "UnsafeArchiveError",
    "archive_url",
    "download",
    "download_archive",
    "is_present",
    "select_archives",
]
