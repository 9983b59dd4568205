"""`unimm build` end to end on the sample: shards read back by the real libraries, the manifest
verified, stage caching (no work on rerun, only downstream stages after a filter change)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, run_unimm
from unimm.schema import IMAGE_PLACEHOLDER, Chat


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample") / "data"
    r = run_unimm("sample", "--out", root)
    assert r.returncode == 0, r.stderr
    return root


def _stages(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if len(cells) >= 2 and cells[1] in ("ran", "cached"):
            out[cells[0]] = cells[1]
    return out


def _build(tmp: Path, root: Path, *extra: str):
    return run_unimm(
        "build",
        "--config",
        REPO / "pipelines" / "llava_reformat.yaml",
        "--data-root",
        root,
        "--work",
        tmp / "work",
        "--out",
        tmp / "shards",
        *extra,
    )


def test_template_build_reads_back_and_caches(sample_root: Path, tmp_path: Path):
    import webdataset as wds

    r = _build(tmp_path, sample_root)
    assert r.returncode == 0, r.stderr
    assert set(_stages(r.stdout).values()) == {"ran"}
    shards = sorted((tmp_path / "shards").glob("*.tar"))
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert shards and manifest["total_samples"] == 24

    samples = list(wds.WebDataset([str(s) for s in shards], shardshuffle=False))
    assert len(samples) == 24
    for s in samples:
        chat = Chat.model_validate_json(s["json"])
        assert "." not in s["__key__"] and chat.id == s["__key__"]
        assert chat.turns[0].content.startswith(IMAGE_PLACEHOLDER + "\n")
        assert sum(t.content.count(IMAGE_PLACEHOLDER) for t in chat.turns) == 1
        # the original image bytes, never re-encoded
        assert s["jpg"] == (sample_root / chat.image_file).read_bytes()
    assert run_unimm("verify", tmp_path / "shards").returncode == 0

    # identical rerun: nothing runs, shards unchanged
    before = {p.name: p.read_bytes() for p in shards}
    r = _build(tmp_path, sample_root)
    assert r.returncode == 0, r.stderr
    assert set(_stages(r.stdout).values()) == {"cached"}
    assert {p.name: p.read_bytes() for p in sorted((tmp_path / "shards").glob("*.tar"))} == before

    # a filter threshold change reruns filter, dedup, decontamination and shards only
    r = _build(tmp_path, sample_root, "--set", "filter.max_turns=20")
    assert r.returncode == 0, r.stderr
    st = _stages(r.stdout)
    assert st["ingest"] == st["merge"] == st["generate"] == "cached"
    assert st["filter"] == st["dedup"] == st["decontaminate"] == st["shards"] == "ran"
    m2 = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert m2["total_samples"] + m2["rejects_by_reason"].get("too_many_turns", 0) == 24


@pytest.mark.slow
def test_shards_load_with_hf_datasets(sample_root: Path, tmp_path: Path):
    r = _build(tmp_path, sample_root)
    assert r.returncode == 0, r.stderr
    env = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    os.environ.update(env)
    import datasets

    files = sorted(str(p) for p in (tmp_path / "shards").glob("*.tar"))
    ds = datasets.load_dataset(
        "webdataset", data_files={"train": files}, split="train", cache_dir=str(tmp_path / "hf")
    )
    assert len(ds) == 24
    row = ds[0]
    assert set(row) >= {"__key__", "json", "jpg"}
    assert row["json"]["turns"][0]["content"].startswith("<image>\n")


def test_sources_and_out_with_no_config(tmp_path: Path, sample_root: Path):
    """`unimm build --sources coco,vqav2 --out shards/` with defaults: data root data/ in the cwd."""
    shutil.copytree(sample_root, tmp_path / "data")
    r = run_unimm(
        "build",
        "--sources",
        "coco,vqav2",
        "--out",
        "shards",
        "--llm",
        "template",
        "--set",
        "filter.min_turn_chars=1",
        "--set",
        "filter.max_turns=100",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert manifest["total_samples"] > 0
    assert set(manifest["counts_by_source"]) <= {"coco", "vqav2"}
    assert (tmp_path / "work" / "ingest" / "coco.parquet").exists()


def test_missing_data_is_one_clear_line(tmp_path: Path):
    r = run_unimm("build", "--sources", "coco,vqav2", "--out", "shards", cwd=tmp_path)
    assert r.returncode == 2
    assert "captions_train2014.json" in r.stderr and "images.cocodataset.org" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "shards").exists()
