"""One runner, one layout: single-stage commands, make targets and `unimm build` mix freely on a
work dir; executors (local process pool, Ray) give byte-identical outputs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, run_unimm


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample") / "data"
    assert run_unimm("sample", "--out", root).returncode == 0
    return root


def _pipeline(tmp: Path, root: Path) -> Path:
    """The LLaVA-reformat pipeline (template generation) on the sample, in three partitions."""
    text = (REPO / "pipelines" / "llava_reformat.yaml").read_text()
    text = text.replace("data_root: data\n", f"data_root: {root}\n")
    text = text.replace("merge:\n  min_sources: 1\n", "merge:\n  min_sources: 1\n  partitions: 3\n")
    assert "partitions: 3" in text and str(root) in text
    cfg = tmp / "pipeline.yaml"
    cfg.write_text(text)
    return cfg


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _build(tmp: Path, cfg: Path, name: str, *extra: str) -> Path:
    out = tmp / f"{name}-shards"
    r = run_unimm(
        "build", "--config", cfg, "--work", tmp / f"{name}-work", "--out", out, *extra,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def test_make_filter_then_unimm_shards(sample_root: Path, tmp_path: Path):
    """`make filter` (the Makefile's own target) then `unimm shards` with no other option: the work
    dir remembers the pipeline, so the single-stage command continues the same run."""
    cfg = _pipeline(tmp_path, sample_root)
    work = tmp_path / "work"
    r = subprocess.run(
        ["make", "--no-print-directory", "filter", f"WORK={work}", f"PIPELINE={cfg}", "SAMPLE_DEP="],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert (work / "decontaminate").is_dir() and not (work / "shards").exists()
    r = run_unimm("shards", "--work", work)
    assert r.returncode == 0, r.stdout + r.stderr
    out = work / "shards"  # the Makefile's --out, remembered
    assert run_unimm("verify", out).returncode == 0
    # the same as one `unimm build` of that pipeline
    assert _files(out) == _files(_build(tmp_path, cfg, "build"))


def test_a_step_whose_inputs_are_stale_is_refused(sample_root: Path, tmp_path: Path):
    cfg = _pipeline(tmp_path, sample_root)
    work = tmp_path / "w"
    r = run_unimm("shards", "--work", work, "--config", cfg)
    assert r.returncode == 2 and "step ingest" in r.stderr and "has not run" in r.stderr
    assert run_unimm("build", "--config", cfg, "--work", work, "--until", "generate").returncode == 0
    # a generation setting changed since: filtering the old dialogues would mix two configs
    r = run_unimm("filter", "--work", work, "--set", "generate.template_max_turns=3")
    assert r.returncode == 2 and "step generate" in r.stderr and "unimm generate" in r.stderr
    assert not (work / "filter").exists()
    r = run_unimm("build", "--work", work, "--only", "nonsense")
    assert r.returncode == 2 and "no stage or step 'nonsense'" in r.stderr


def test_parallel_partitions_give_the_same_bytes_as_one_at_a_time(sample_root: Path, tmp_path: Path):
    cfg = _pipeline(tmp_path, sample_root)
    one = _build(tmp_path, cfg, "one", "--workers", "1")
    two = _build(tmp_path, cfg, "two", "--workers", "2")
    assert _files(one) == _files(two)
    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["steps"]["generate"]["units"] == 3 and manifest["total_samples"] > 0


@pytest.mark.slow
def test_ray_executor_gives_the_same_bytes_as_local(sample_root: Path, tmp_path: Path):
    """`--executor ray` starts a local Ray instance (a cluster would be `--ray-address auto`): every
    unit runs as a Ray task, and shards, manifest and card are the local run's, byte for byte."""
    pytest.importorskip("ray")
    cfg = _pipeline(tmp_path, sample_root)
    local = _build(tmp_path, cfg, "local")
    ray = _build(tmp_path, cfg, "ray", "--executor", "ray")
    assert _files(ray) == _files(local)
    for step in ("generate", "filter", "dedup", "decontaminate"):
        for p in sorted((tmp_path / "local-work" / step).glob("*.parquet")):
            assert (tmp_path / "ray-work" / step / p.name).read_bytes() == p.read_bytes(), p
    shutil.rmtree(tmp_path / "ray-work")
