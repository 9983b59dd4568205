"""Unpack a downloaded archive into its source folder, refusing anything that could escape it.

Every member is checked before a single byte is written: absolute paths, `..` components,
links and device files make the whole archive fail with the member named. Members are written
to a temporary folder beside the target and moved into place only when all expected files are
there, so a failed unpack leaves nothing behind.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from unimm.download.fetch import DownloadError


class UnsafeArchiveError(DownloadError):
    """An archive member would land outside the target folder or is not a plain file/folder."""

    def __init__(self, archive: str, member: str, why: str) -> None:
        self.archive, self.member = archive, member
        super().__init__(f"{archive}: refusing member {member!r}: {why}; nothing was extracted")


@dataclass(frozen=True)
class Member:
    name: str  # as stored in the archive
    parts: tuple[str, ...]  # normalised path components
    is_dir: bool


def archive_kind(filename: str) -> str:
    """'zip', 'tar' (any compression) or 'plain' (a file published as-is)."""
    low = filename.lower()
    if low.endswith(".zip"):
        return "zip"
    if low.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar"
    return "plain"


def _parts(archive: str, name: str) -> tuple[str, ...]:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(archive, name, "absolute path")
    parts = tuple(p for p in name.replace("\\", "/").split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(archive, name, "'..' component")
    return parts


def _zip_members(archive: str, zf: zipfile.ZipFile) -> list[Member]:
    out = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise UnsafeArchiveError(archive, info.filename, "symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(archive, info.filename, "not a regular file or folder")
        out.append(Member(info.filename, _parts(archive, info.filename), info.is_dir()))
    return out


def _tar_members(archive: str, tf: tarfile.TarFile) -> list[Member]:
    out = []
    for m in tf.getmembers():
        if m.issym() or m.islnk():
            raise UnsafeArchiveError(archive, m.name, f"link to {m.linkname!r}")
        if not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(archive, m.name, "device, fifo or other special file")
        out.append(Member(m.name, _parts(archive, m.name), m.isdir()))
    return out


def _strip_count(members: list[Member], expected: tuple[str, ...], strip: int) -> int:
    """Leading folders to drop: the catalogue's value, else 1 when every member sits in one
    top-level folder that is not itself part of an expected path (e.g. `aokvqa_v1p0/x.json`)."""
    if strip:
        return strip
    tops = {m.parts[0] for m in members if m.parts}
    wanted_tops = {PurePosixPath(e).parts[0] for e in expected}
    if len(tops) == 1 and not tops & wanted_tops and all(len(m.parts) > 1 or m.is_dir for m in members):
        return 1
    return 0


def _present(root: Path, rel: str) -> bool:
    p = root / rel
    return p.is_dir() and any(p.iterdir()) if rel.endswith("/") else p.is_file()


def _merge_into(src: Path, dst: Path) -> None:
    """Move the tree `src` into `dst`, merging folders that already exist there."""
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dst))
    elif src.is_dir() and dst.is_dir():
        for child in src.iterdir():
            _merge_into(child, dst / child.name)
    else:
        dst.unlink()
        shutil.move(str(src), str(dst))


def _entries(path: Path, kind: str, archive: str) -> Iterator[tuple[list[Member], object]]:
    if kind == "zip":
        with zipfile.ZipFile(path) as zf:
            yield _zip_members(archive, zf), zf
    else:
        with tarfile.open(path, "r:*") as tf:
            yield _tar_members(archive, tf), tf


def _open_member(handle: object, m: Member) -> IO[bytes]:
    if isinstance(handle, zipfile.ZipFile):
        return handle.open(m.name)
    assert isinstance(handle, tarfile.TarFile)
    f = handle.extractfile(m.name)
    assert f is not None
    return f


def unpack(
    path: Path, target: Path, *, expected: tuple[str, ...], strip: int = 0, name: str | None = None
) -> list[str]:
    """Unpack archive `path` into folder `target`; returns the expected members now present.

    `expected` are paths relative to target (a trailing `/` means a folder). A plain file is
    moved to target/expected[0]. Raises UnsafeArchiveError / DownloadError; writes nothing then."""
    archive = name or path.name
    kind = archive_kind(archive)
    target.mkdir(parents=True, exist_ok=True)
    if kind == "plain":
        dst = target / expected[0]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dst)
        return [expected[0]]
    try:
        gen = _entries(path, kind, archive)
        members, handle = next(gen)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise DownloadError(f"{archive}: not a readable {kind} archive: {e}") from None
    try:
        n = _strip_count(members, expected, strip)
        with tempfile.TemporaryDirectory(prefix=".unpack-", dir=target) as tmp:
            root = Path(tmp)
            for m in members:
                rel = m.parts[n:]
                if not rel:
                    continue
                out = root.joinpath(*rel)
                if not out.resolve().is_relative_to(root.resolve()):  # belt and braces after _parts
                    raise UnsafeArchiveError(archive, m.name, "resolves outside the target folder")
                if m.is_dir:
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                with _open_member(handle, m) as src, out.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            missing = [e for e in expected if not _present(root, e)]
            if missing:
                raise DownloadError(
                    f"{archive}: does not contain {', '.join(missing)}; nothing was extracted"
                )
            for child in root.iterdir():
                _merge_into(child, target / child.name)
    finally:
        gen.close()
    return list(expected)
