"""`unimm build` with the embedded model (real llama.cpp): killed mid-generation and started
again, it finishes with no dialogue lost or duplicated and without re-sending finished requests;
then the reference trainer trains on the shards it wrote."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import webdataset as wds

from tests.conftest import REPO, run_unimm
from unimm.schema import Chat

pytestmark = pytest.mark.slow

LIMIT = 6


def _cache_lines(work: Path) -> int:
    p = work / "generate" / "cache" / "00000" / "responses.jsonl"
    return sum(1 for line in p.read_text().splitlines() if line.strip()) if p.exists() else 0


def test_build_killed_mid_generation_resumes_exactly(tmp_path: Path):
    data, work, out = tmp_path / "data", tmp_path / "work", tmp_path / "shards"
    assert run_unimm("sample", "--out", data).returncode == 0
    args = [
        "build",
        "--config",
        REPO / "pipelines" / "demo.yaml",
        "--data-root",
        data,
        "--work",
        work,
        "--out",
        out,
        "--limit",
        str(LIMIT),
        "--set",
        "generate.max_tokens=160",
        # The 135M model's dialogues rarely survive grounding; this test is about resume and the
        # trainer, so grounding only scores here (it is tested on its own in test_grounding.py).
        "--set",
        "filter.reject_hallucinations=false",
        "--set",
        "filter.min_grounding=0",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "unimm", *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while _cache_lines(work) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the build finished before it could be killed"
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: the hardest kind of stop
    proc.wait()
    done_before = _cache_lines(work)
    assert 2 <= done_before < LIMIT
    assert not out.exists()  # nothing half-written is visible

    r = run_unimm(*args)
    assert r.returncode == 0, r.stderr
    marker = json.loads((work / "markers" / "generate" / "00000.done.json").read_text())
    counts = marker["counts"]
    failures = sum(counts["dropped"].values())
    assert counts["input"] == LIMIT and counts["output"] + failures == LIMIT
    assert counts["extra"]["cache_hits"] >= done_before  # finished requests were not sent again
    manifest = json.loads((out / "manifest.json").read_text())
    keys = [
        s["__key__"] for s in wds.WebDataset(sorted(str(p) for p in out.glob("*.tar")), shardshuffle=False)
    ]
    assert len(keys) == len(set(keys)) == manifest["total_samples"]
    # nothing silently disappears: every record is a shard sample, a generation failure or a reject
    rejected = sum(pl.read_parquet(p).height for p in (work / "rejects").rglob("*.parquet"))
    assert manifest["total_samples"] + failures + rejected == LIMIT
    for s in wds.WebDataset(sorted(str(p) for p in out.glob("*.tar")), shardshuffle=False):
        chat = Chat.model_validate_json(s["json"])
        assert chat.generator.backend == "local" and chat.generator.model.startswith("SmolLM2")
    assert run_unimm("verify", out).returncode == 0

    # the reference trainer consumes exactly these shards
    run = tmp_path / "run"
    r = run_unimm(
        "train",
        "--shards",
        out / "manifest.json",
        "--stage",
        "sft",
        "--steps",
        "4",
        "--batch-size",
        "2",
        "--workers",
        "0",
        "--out",
        run,
    )
    assert r.returncode == 0, r.stderr
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert metrics and all(m["loss"] > 0 for m in metrics if "loss" in m)
