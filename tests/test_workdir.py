"""Work-dir safety with real processes: killed writers' temporaries are swept on restart, folder
replacement never leaves the folder missing, one writer per work dir, outputs readable by others."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_unimm
from tests.test_build import _build
from tests.test_filter import make_chat
from unimm import workdir
from unimm.workdir import atomic_dir, atomic_path, sweep_leftovers

PAIRS = [("What is shown here?", "A street scene with cars.")]

# Children that die by SIGKILL inside an atomic block: nothing of Python's cleanup runs.
KILLED_IN_ATOMIC_PATH = """
import os, sys
from pathlib import Path
from unimm.workdir import atomic_path
with atomic_path(Path(sys.argv[1])) as tmp:
    tmp.write_bytes(b"half a file")
    os.kill(os.getpid(), 9)
"""
KILLED_IN_ATOMIC_DIR = """
import os, sys
from pathlib import Path
from unimm.workdir import atomic_dir
with atomic_dir(Path(sys.argv[1])) as tmp:
    (tmp / "part-0.parquet").write_bytes(b"half a folder")
    os.kill(os.getpid(), 9)
"""
# A live writer: inside atomic_path until its stdin closes.
LIVE_IN_ATOMIC_PATH = """
import sys
from pathlib import Path
from unimm.workdir import atomic_path
with atomic_path(Path(sys.argv[1])) as tmp:
    tmp.write_bytes(b"in progress")
    print("ready", flush=True)
    sys.stdin.read()
"""
HOLD_LOCK = """
import sys
from pathlib import Path
from unimm.workdir import lock
with lock(Path(sys.argv[1])):
    print("ready", flush=True)
    sys.stdin.read()
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def run_killed(script: str, final: Path) -> int:
    """Run `script` on `final` in a child that SIGKILLs itself; returns the child's pid."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(final)], env=_env())
    assert proc.wait(timeout=60) == -signal.SIGKILL
    return proc.pid


def start_live(script: str, arg: Path) -> subprocess.Popen[str]:
    """Start `script` on `arg` and wait until it reports it is inside its block."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(arg)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    return proc


def temps(final: Path) -> list[Path]:
    return sorted(final.parent.glob(f".{final.name}.*.tmp"))


def test_killed_file_write_leaves_pid_named_temp_that_a_restart_removes(tmp_path: Path) -> None:
    final = tmp_path / "filter" / "kept.parquet"
    pid = run_killed(KILLED_IN_ATOMIC_PATH, final)
    (left,) = temps(final)
    assert left.name.startswith(f".kept.parquet.{pid}.") and not final.exists()

    live = start_live(LIVE_IN_ATOMIC_PATH, final)
    try:
        live_temps = [p for p in temps(final) if f".{live.pid}." in p.name]
        assert len(live_temps) == 1
        with atomic_path(final) as tmp:
            tmp.write_text("whole")
        assert final.read_text() == "whole"
        assert not left.exists()  # the dead writer's temporary is gone
        assert temps(final) == live_temps  # the live writer's is untouched
    finally:
        live.communicate("", timeout=60)
    assert temps(final) == []


def test_killed_folder_write_leaves_pid_named_temp_dir_that_a_restart_removes(tmp_path: Path) -> None:
    final = tmp_path / "out"
    pid = run_killed(KILLED_IN_ATOMIC_DIR, final)
    (left,) = temps(final)
    assert left.is_dir() and left.name.startswith(f".out.{pid}.")
    with atomic_dir(final) as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_sweep_leftovers_removes_dead_owners_temps_anywhere_under_work(tmp_path: Path) -> None:
    work = tmp_path / "work"
    dead = [
        work / "filter" / "kept.parquet",
        work / "shards" / "rejects.parquet",
        work / "merged",
    ]
    run_killed(KILLED_IN_ATOMIC_PATH, dead[0])
    run_killed(KILLED_IN_ATOMIC_PATH, dead[1])
    run_killed(KILLED_IN_ATOMIC_DIR, dead[2])
    (work / "filter" / ".notes").write_text("not a temporary")
    live = start_live(LIVE_IN_ATOMIC_PATH, work / "generate" / "chats.parquet")
    try:
        removed = sweep_leftovers(work)
        assert sorted(p.name.split(".")[1] for p in removed) == ["kept", "merged", "rejects"]
        assert all(temps(f) == [] for f in dead)
        assert len(temps(work / "generate" / "chats.parquet")) == 1
        assert (work / "filter" / ".notes").exists()
    finally:
        live.communicate("", timeout=60)


# -- replacing a folder ---------------------------------------------------------------------------

# Records, before every rename/remove the code makes, whether `final` exists; the exchange itself
# raises no audit event, so the check before the next step sees its result.
WATCH_REPLACE = """
import json, os, sys
from pathlib import Path
from unimm import workdir
final = Path(sys.argv[1])
missing = []
def hook(event, args):
    if event in ("os.rename", "os.remove", "os.rmdir", "shutil.rmtree") and not os.path.lexists(final):
        missing.append(event)
sys.addaudithook(hook)
with workdir.atomic_dir(final) as tmp:
    (tmp / "v").write_text("new")
missing += [] if final.exists() else ["end"]
print(json.dumps(missing))
"""
# Two-rename fallback, killed between the renames (final moved to .old, new folder not yet in place).
KILL_BETWEEN_RENAMES = """
import os, sys
from pathlib import Path
from unimm import workdir
workdir._RENAMEAT2 = None
final = Path(sys.argv[1])
def hook(event, args):
    if event == "os.rename" and args[1] == str(final) and not os.path.lexists(final):
        os.kill(os.getpid(), 9)
sys.addaudithook(hook)
with workdir.atomic_dir(final) as tmp:
    (tmp / "v").write_text("new")
"""
# Exchange path, killed right after the exchange, before the old contents are removed.
KILL_AFTER_EXCHANGE = """
import os, sys
from pathlib import Path
from unimm import workdir
final = Path(sys.argv[1])
def hook(event, args):
    if event == "shutil.rmtree":
        os.kill(os.getpid(), 9)
sys.addaudithook(hook)
with workdir.atomic_dir(final) as tmp:
    (tmp / "v").write_text("new")
"""


def _old_folder(final: Path) -> None:
    final.mkdir()
    (final / "v").write_text("old")


@pytest.mark.skipif(workdir._RENAMEAT2 is None, reason="no renameat2 in this C library")
def test_exchange_keeps_the_folder_present_at_every_step(tmp_path: Path) -> None:
    final = tmp_path / "shards"
    _old_folder(final)
    r = subprocess.run(
        [sys.executable, "-c", WATCH_REPLACE, str(final)], capture_output=True, text=True, env=_env()
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
    assert (final / "v").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]


@pytest.mark.skipif(workdir._RENAMEAT2 is None, reason="no renameat2 in this C library")
def test_kill_after_exchange_leaves_new_folder_and_a_temp_the_next_run_removes(tmp_path: Path) -> None:
    final = tmp_path / "shards"
    _old_folder(final)
    run_killed(KILL_AFTER_EXCHANGE, final)
    assert (final / "v").read_text() == "new"
    (left,) = temps(final)
    assert (left / "v").read_text() == "old"
    assert sweep_leftovers(tmp_path) == [left]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]


def test_fallback_killed_between_renames_is_restored_on_the_next_run(tmp_path: Path) -> None:
    final = tmp_path / "shards"
    _old_folder(final)
    run_killed(KILL_BETWEEN_RENAMES, final)
    old = tmp_path / ".shards.old"
    assert not final.exists() and (old / "v").read_text() == "old"

    with pytest.raises(RuntimeError), atomic_dir(final):
        raise RuntimeError("a failed rerun still mends the folder first")
    assert (final / "v").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]

    # both present (killed after the second rename): the stale .old goes
    _old_folder(old)
    with atomic_dir(final) as tmp:
        (tmp / "v").write_text("newer")
    assert (final / "v").read_text() == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]


def test_sweep_leftovers_restores_a_folder_left_half_replaced(tmp_path: Path) -> None:
    final = tmp_path / "work" / "merged"
    final.parent.mkdir()
    _old_folder(final)
    run_killed(KILL_BETWEEN_RENAMES, final)
    sweep_leftovers(tmp_path / "work")
    assert (final / "v").read_text() == "old"
    assert sorted(p.name for p in final.parent.iterdir()) == ["merged"]


# -- permissions ----------------------------------------------------------------------------------

WRITE_ALL = """
import sys
from pathlib import Path
import polars as pl
from unimm.workdir import atomic_dir, atomic_path, write_parquet_atomic
root = Path(sys.argv[1])
write_parquet_atomic(pl.DataFrame({"a": [1]}), root / "t.parquet")
with atomic_path(root / "summary.json") as tmp:
    tmp.write_text("{}")
with atomic_dir(root / "out") as tmp:
    with atomic_path(tmp / "manifest.json") as f:
        f.write_text("{}")
"""


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_get_ordinary_modes_under_the_umask(tmp_path: Path, umask: int) -> None:
    r = subprocess.run(
        [sys.executable, "-c", WRITE_ALL, str(tmp_path)],
        capture_output=True,
        text=True,
        env=_env(),
        umask=umask,
    )
    assert r.returncode == 0, r.stderr
    for f in ("t.parquet", "summary.json", "out/manifest.json"):
        assert oct(_mode(tmp_path / f)) == oct(0o666 & ~umask), f
    assert oct(_mode(tmp_path / "out")) == oct(0o777 & ~umask)


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_cli_shards_readable_by_group_and_others_as_umask_allows(tmp_path: Path, umask: int) -> None:
    from tests.pipeline_helpers import pipeline_work, replace_chats

    work = pipeline_work(tmp_path / "work", "filter")
    replace_chats(work, "decontaminate", [make_chat(f"coco_{i:012d}", PAIRS) for i in range(3)])
    out = tmp_path / "shards"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "unimm", "shards", "--work", work, "--out", out, "--maxcount", "2"]
    r = subprocess.run(
        [*cmd, "--no-images"],  # these chats name no image file
        capture_output=True,
        text=True,
        env=env,
        umask=umask,
    )
    assert r.returncode == 0, r.stderr
    files = sorted(out.iterdir())
    assert [p.name for p in files] == ["README.md", "manifest.json", "unimm-000000.tar", "unimm-000001.tar"]
    for p in [*files, work / "rejects" / "shards" / "corpus.parquet"]:
        assert oct(_mode(p)) == oct(0o666 & ~umask), p


# -- one writer per work dir ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sample") / "data"
    r = run_unimm("sample", "--out", root, "--images", "4")
    assert r.returncode == 0, r.stderr
    return root


def test_second_build_on_a_held_work_dir_fails_fast_naming_the_holder(
    tmp_path: Path, sample_root: Path
) -> None:
    work = tmp_path / "work"
    holder = start_live(HOLD_LOCK, work)
    try:
        t0 = time.monotonic()
        r = _build(tmp_path, sample_root, "--until", "ingest")
        assert time.monotonic() - t0 < 60
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"in use by pid {holder.pid} on " in r.stderr and " since " in r.stderr
        assert not (work / "ingest").exists()  # refused before any work
        assert json.loads((work / ".lock").read_text())["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait(timeout=60)

    # the holder was SIGKILLed: its flock died with it, and a leftover of a killed writer is swept
    left_pid = run_killed(KILLED_IN_ATOMIC_PATH, work / "ingest" / "coco.parquet")
    r = _build(tmp_path, sample_root, "--until", "ingest")
    assert r.returncode == 0, r.stderr
    assert (work / "ingest" / "coco.parquet").is_file()
    assert not list((work / "ingest").glob(f".*.{left_pid}.*.tmp"))


@pytest.mark.parametrize(
    "command",
    [
        ["ingest", "--quiet"],
        ["merge"],
        ["generate", "--llm", "template"],
        ["filter"],
        ["shards", "--out", "shards-out"],
    ],
)
def test_every_work_writing_command_takes_the_lock(
    tmp_path: Path, sample_root: Path, command: list[str]
) -> None:
    work = tmp_path / "work"
    holder = start_live(HOLD_LOCK, work)
    try:
        extra = ["--data-root", str(sample_root)] if command[0] == "ingest" else []
        r = run_unimm(*command, *extra, "--work", work, cwd=tmp_path)
        assert r.returncode == 2, r.stdout + r.stderr
        assert f"in use by pid {holder.pid}" in r.stderr
    finally:
        holder.communicate("", timeout=60)


def test_another_hosts_temporaries_are_left_alone(tmp_path: Path) -> None:
    """On a work dir shared by a cluster, a pid means something on its own host only: a dead
    writer's temporary is removed when it was this host's, kept when it was another node's."""
    from unimm.workdir import temp_owner, temp_path

    folder = tmp_path / "work" / "filter"
    host = temp_path(folder / "x").name.split(".")[-2]
    dead_pid = 2**31 - 3  # above any pid_max: no such process here
    here = folder / f".chats-00000.parquet.{dead_pid}.deadbeef.{host}.tmp"
    there = folder / f".chats-00001.parquet.{dead_pid}.deadbeef.other-node.tmp"
    assert temp_owner(here.name) == ("chats-00000.parquet", dead_pid) and temp_owner(there.name) is None
    folder.mkdir(parents=True)
    here.write_bytes(b"left by a killed writer on this host")
    there.write_bytes(b"being written on other-node")
    assert sweep_leftovers(tmp_path / "work") == [here] and there.exists()
