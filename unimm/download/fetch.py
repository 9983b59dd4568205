"""HTTP download of one file with resume, size and checksum checks (stdlib urllib only).

Bytes go to `<dest>.part`; a later run continues it with a Range request. The file is renamed
to `dest` only once its size matches what the server announced (and `expected_size` when the
catalogue pins one) and its sha256 matches when one is given.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from unimm.errors import UnimmError

CHUNK = 1 << 20
USER_AGENT = "unimm-download/0.1"
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED = re.compile(r"bytes\s+\*/(\d+)")

Progress = Callable[[int, "int | None"], None]  # (bytes just written, total when known)


class DownloadError(UnimmError):
    """A download or unpack that cannot complete; names the URL or archive and what is wrong."""


@dataclass(frozen=True)
class Fetched:
    path: Path
    downloaded: int  # bytes transferred by this call
    resumed_from: int  # bytes already in the .part file that were kept


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _verify(url: str, path: Path, expected_size: int | None, sha256: str | None) -> None:
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        path.unlink()
        raise DownloadError(
            f"{url}: size mismatch: got {size:,} bytes, expected {expected_size:,}; the file was removed"
        )
    if sha256 is not None:
        got = sha256_of(path)
        if got.lower() != sha256.lower():
            path.unlink()
            raise DownloadError(
                f"{url}: sha256 mismatch: got {got}, expected {sha256.lower()}; the file was removed"
            )


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (http/https URLs from the catalogue)


def fetch(
    url: str,
    dest: Path,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    progress: Progress | None = None,
    timeout: float = 60.0,
) -> Fetched:
    """Download `url` to `dest`, resuming `dest.part` when present. Raises DownloadError.

    A server that ignores Range (answers 200) restarts the file from zero; an interrupted
    transfer keeps the .part file so the next call resumes; a wrong size or checksum removes it."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    if dest.exists():
        _verify(url, dest, expected_size, sha256)
        return Fetched(dest, 0, dest.stat().st_size)
    offset = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(url, offset, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            m = _UNSATISFIED.match(e.headers.get("Content-Range", "") or "")
            if m and int(m.group(1)) == offset:  # the .part already holds the whole file
                return _finish(url, part, dest, offset, expected_size, sha256, 0, offset)
            part.unlink()  # our .part is longer than the file now is: start again
            return fetch(
                url, dest, expected_size=expected_size, sha256=sha256, progress=progress, timeout=timeout
            )
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"{url}: cannot connect: {reason}") from None

    with resp:
        total: int | None
        if offset and resp.status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                raise DownloadError(
                    f"{url}: server answered Range bytes={offset}- with "
                    f"Content-Range {resp.headers.get('Content-Range')!r}"
                )
            total = int(m.group(3)) if m.group(3) != "*" else None
            mode, resumed = "ab", offset
        else:  # 200: the server ignored Range (or there was nothing to resume): start clean
            length = resp.headers.get("Content-Length")
            total = int(length) if length is not None else None
            mode, resumed = "wb", 0
        if expected_size is not None and total is not None and total != expected_size:
            raise DownloadError(
                f"{url}: size mismatch: the server announces {total:,} bytes, "
                f"the catalogue expects {expected_size:,}"
            )
        if progress is not None:
            progress(resumed, total)
        got = 0
        try:
            with part.open(mode) as f:
                while block := resp.read(CHUNK):
                    f.write(block)
                    got += len(block)
                    if progress is not None:
                        progress(len(block), total)
        except (http.client.IncompleteRead, OSError) as e:
            raise DownloadError(
                f"{url}: transfer interrupted after {resumed + got:,} bytes ({e!r}); "
                f"run again to resume from {part}"
            ) from None
    return _finish(url, part, dest, total, expected_size, sha256, got, resumed)


def _finish(
    url: str,
    part: Path,
    dest: Path,
    total: int | None,
    expected_size: int | None,
    sha256: str | None,
    got: int,
    resumed: int,
) -> Fetched:
    size = part.stat().st_size
    if total is not None and size < total:
        raise DownloadError(
            f"{url}: incomplete: {size:,} of {total:,} bytes; run again to resume from {part}"
        )
    if total is not None and size > total:
        part.unlink()
        raise DownloadError(
            f"{url}: size mismatch: got {size:,} bytes, the server announced {total:,}; the file was removed"
        )
    _verify(url, part, expected_size, sha256)
    os.replace(part, dest)
    return Fetched(dest, got, resumed)
