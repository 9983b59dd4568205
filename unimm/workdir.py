"""Atomic writes and the work-dir lock (the paths themselves: unimm.pipeline.layout).

A file or folder becomes visible only when complete.

Temporaries are named `.{final name}.{writer pid}.{8 hex}.{host}.tmp` beside their final path, so
a later run on the same host can tell a killed writer's leftovers (owner gone) from a live
writer's and remove them.
They are created with the ordinary 0666/0777 modes, so the umask applies exactly as it would to a
plain file or folder, and the rename keeps those modes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unimm.errors import WorkDirBusyError

if TYPE_CHECKING:  # polars only for the annotation: `unimm --help` imports this module
    import polars as pl

DEFAULT_WORK = Path("work")
LOCK_NAME = ".lock"

_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.(?P<host>[A-Za-z0-9-]+)\.tmp$")
# A pid means something on its own host only: on a shared work dir (a Ray cluster) another node's
# temporaries are never judged by this node's process table.
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


# -- leftovers of killed writers ------------------------------------------------------------------


def temp_path(final: Path) -> Path:
    """A fresh temporary name beside `final` that records this process (pid and host) as its owner."""
    final = Path(final)
    return final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.{_HOST}.tmp")


def temp_owner(name: str) -> tuple[str, int] | None:
    """(final name, owner pid) of a temporary named by temp_path on this host, else None (not a
    temporary, or another host's, whose liveness this host cannot tell)."""
    m = _TEMP_NAME.match(name)
    return (m["name"], int(m["pid"])) if m and m["host"] == _HOST else None


def pid_alive(pid: int) -> bool:
    """Whether process `pid` still runs on this host (a zombie counts as gone: it writes nothing)."""
    if pid <= 0:
        return True  # not a real owner: never treat its files as garbage
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return not stat[stat.rindex(")") + 2 :].startswith("Z")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _old_path(final: Path) -> Path:
    return final.with_name(f".{final.name}.old")


_swept: set[str] = set()  # folders this process has already cleared of dead writers' temporaries


def _sweep_folder_once(folder: Path) -> None:
    """Remove the temporaries in `folder` whose writer is gone, the first time this process
    writes there: once, not per file, so writing thousands of shards stays linear."""
    key = os.path.abspath(folder)
    if key in _swept:
        return
    _swept.add(key)
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.name.startswith(".") and e.name.endswith(".tmp")]
    for name in names:
        owner = temp_owner(name)
        if owner and not pid_alive(owner[1]):
            _remove(folder / name)


def recover_replaced(final: Path) -> None:
    """Finish a two-rename replacement of `final` that was killed half-way: put `.{name}.old` back
    when `final` is missing, drop it when `final` is there."""
    final = Path(final)
    old = _old_path(final)
    if not os.path.lexists(old):
        return
    if os.path.lexists(final):
        _remove(old)
    else:
        os.replace(old, final)


def sweep_leftovers(work: Path) -> list[Path]:
    """Remove every temporary under `work` whose writer process is gone (live writers' stay) and
    finish folder replacements killed half-way; returns the removed paths. Call it holding
    lock(work), as exclusive_work does: a half-done replacement cannot tell whose it is."""
    removed: list[Path] = []
    pending = [Path(work)]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for e in entries:
            path = folder / e.name
            if _TEMP_NAME.match(e.name):
                owner = temp_owner(e.name)
                if owner is not None and not pid_alive(owner[1]):
                    _remove(path)
                    removed.append(path)
                continue  # never descend into a temporary: it is its writer's business
            if e.name.startswith(".") and e.name.endswith(".old") and len(e.name) > 5:
                recover_replaced(folder / e.name[1:-4])
                continue
            if e.is_dir(follow_symlinks=False):
                pending.append(path)
    return removed


# -- atomic writes --------------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; rename it into place only if the block succeeds.

    The file gets the mode a plain new file would (0666 less the umask). Temporaries that killed
    writers left in the folder are removed first (once per folder and process)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _sweep_folder_once(final.parent)
    tmp = temp_path(final)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def _load_renameat2() -> Any:
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2  # glibc >= 2.28
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


# None where the C library lacks renameat2: atomic_dir then falls back to two renames.
_RENAMEAT2 = _load_renameat2()


def exchange(a: Path, b: Path) -> bool:
    """Swap the paths `a` and `b` in one atomic step (Linux renameat2 RENAME_EXCHANGE).

    Returns False where the C library, kernel or file system cannot, or a path is missing."""
    fn = _RENAMEAT2
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOENT):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _replace_dir(tmp: Path, final: Path) -> None:
    """Put `tmp` at `final`; afterwards `tmp` holds `final`'s old contents (or nothing)."""
    if not os.path.lexists(final):
        try:
            os.rename(tmp, final)
            return
        except OSError as e:  # final appeared meanwhile: replace it like any other
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
    if exchange(tmp, final):
        return
    # Two renames: a kill between them leaves `.old` and no `final`; recover_replaced mends that.
    old = _old_path(final)
    _remove(old)
    with contextlib.suppress(FileNotFoundError):
        os.replace(final, old)
    os.replace(tmp, final)
    _remove(old)


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary directory beside `final`; swap it into place only if the block succeeds.

    Readers see the old folder or the new one, never none where renameat2 exists (the two are
    exchanged in one step, then the old contents removed). The folder gets the mode a plain new
    folder would (0777 less the umask)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    recover_replaced(final)
    _sweep_folder_once(final.parent)
    tmp = temp_path(final)
    os.mkdir(tmp, 0o777)
    try:
        yield tmp
        _replace_dir(tmp, final)
    finally:
        _remove(tmp)


def write_parquet_atomic(
    df: pl.DataFrame, path: Path, compression: str = "zstd", statistics: bool = True
) -> Path:
    """Write a Parquet file so that readers see the whole file or none of it. `statistics=False`
    where no reader can skip by them (one row group read whole): they cost 13% of a merged
    partition's write."""
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, compression=compression, statistics=statistics)  # type: ignore[arg-type]
    return Path(path)


# -- one writer per work dir ----------------------------------------------------------------------

_held: set[Path] = set()  # lock files this process holds
_held_guard = threading.Lock()


def _command_line() -> list[str]:
    # `python -m unimm` leaves argv[0] as the path of unimm/__main__.py: say what the user typed
    argv = list(sys.argv) or ["?"]
    if argv[0].endswith(("unimm/__main__.py", "/unimm")) or argv[0] == "unimm":
        argv[0] = "unimm"
    return argv


def _holder() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": " ".join(_command_line()),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        doc = json.loads(os.pread(fd, 65536, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


@contextlib.contextmanager
def lock(work: Path) -> Iterator[Path]:
    """Hold `work/.lock` exclusively for the block, recording who holds it (pid, host, command,
    start time); raises WorkDirBusyError naming the holder when another process has it.

    An flock dies with its process, so a killed holder never leaves a stale lock. Nested use in
    one process is allowed."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    path = (work / LOCK_NAME).resolve()
    with _held_guard:
        nested = path in _held
    if nested:  # a second flock of our own would fail against the first
        yield path
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise WorkDirBusyError(work, holder) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(_holder()) + "\n").encode(), 0)
        with _held_guard:
            _held.add(path)
        yield path
    finally:
        with _held_guard:
            _held.discard(path)
        os.ftruncate(fd, 0)  # while still locked: nobody reads a former holder as current
        os.close(fd)


@contextlib.contextmanager
def exclusive_work(work: Path) -> Iterator[Path]:
    """For commands that write into `work`: hold its lock, then remove what killed runs left."""
    with lock(work):
        sweep_leftovers(work)
        yield Path(work)
