"""`unimm export` checks the shard set against manifest.json first: a truncated, deleted or altered
shard stops it with exit status 2, a message naming the shard, and no output written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_unimm
from tests.test_filter import make_chat
from unimm.shards import ShardConfig, ShardVerifyError, export_llava, write_shards

PAIRS = [("What is on the plate?", "Some pasta and a fork."), ("Is it a restaurant?", "Yes, it seems so.")]
SHARD = "unimm-000001.tar"


@pytest.fixture
def shard_dir(tmp_path: Path) -> Path:
    out = tmp_path / "shards"
    chats = [make_chat(f"coco_{i:012d}", PAIRS) for i in range(6)]
    man = write_shards(chats, out, ShardConfig(maxcount=2))
    assert [e.name for e in man.shards][1] == SHARD
    return out


def truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def delete(p: Path) -> None:
    p.unlink()


def tamper(p: Path) -> None:
    """Same size, one byte of a dialogue changed: the tar still reads, only the hash tells."""
    data = bytearray(p.read_bytes())
    i = data.index(b"pasta")
    data[i] = ord("b")
    p.write_bytes(bytes(data))


CASES: list[tuple[Callable[[Path], None], str]] = [
    (truncate, f"{SHARD}: "),
    (delete, f"{SHARD}: missing"),
    (tamper, f"{SHARD}: sha256 differs"),
]


@pytest.mark.parametrize(("damage", "message"), CASES, ids=["truncated", "deleted", "tampered"])
@pytest.mark.parametrize("fmt", ["llava", "unimm-parquet"])
def test_cli_export_refuses_damaged_shards(
    shard_dir: Path, tmp_path: Path, damage: Callable[[Path], None], message: str, fmt: str
) -> None:
    damage(shard_dir / SHARD)
    exports = tmp_path / "exports"
    exports.mkdir()
    r = run_unimm("export", "--shards", shard_dir, "--format", fmt, "--out", exports / "out")
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    if damage is truncate:
        assert "manifest says" in r.stderr
    assert list(exports.iterdir()) == []  # no output, no temporary


def test_library_export_raises_before_writing(shard_dir: Path, tmp_path: Path) -> None:
    tamper(shard_dir / SHARD)
    with pytest.raises(ShardVerifyError, match=f"{SHARD}: sha256 differs"):
        export_llava(shard_dir, tmp_path / "l.json")
    assert not (tmp_path / "l.json").exists()
