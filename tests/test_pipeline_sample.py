"""The commands users run, on the built-in sample and on the real excerpts: sample -> ingest -> merge."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from unimm.merge import merged_parts, read_summary
from unimm.schema import SOURCES, MergedImage


@pytest.fixture(scope="module")
def sample_work(tmp_path_factory) -> tuple[Path, Path]:
    from tests.conftest import run_unimm

    root = tmp_path_factory.mktemp("sample")
    work = tmp_path_factory.mktemp("work")
    r = run_unimm("sample", "--out", root / "data")
    assert r.returncode == 0, r.stderr
    r = run_unimm("ingest", "--data-root", root / "data", "--work", work)
    assert r.returncode == 0, r.stderr
    return root / "data", work


def test_sample_ingest_merge_via_cli(sample_work, cli):
    data, work = sample_work
    r = cli("merge", "--work", work)
    assert r.returncode == 0, r.stderr
    summary = read_summary(work).model_dump(mode="json")
    assert summary["sources"] == list(SOURCES)
    assert summary["images_kept"] == summary["images_total"] >= 24
    # the sample is built so that some images carry every source and some only one or two
    assert max(summary["by_source_count"], key=int) == str(len(SOURCES)) and "1" in summary["by_source_count"]
    assert summary["images_with_3plus_kinds"] > 0
    assert "images carry >= 3 annotation types" in r.stdout
    recs = [
        MergedImage.model_validate(row)
        for p in merged_parts(work)
        for row in pl.read_parquet(p).iter_rows(named=True)
    ]
    full = [m for m in recs if len(m.sources) == len(SOURCES)]
    assert full and all(m.captions and m.qas and m.regions and m.dialogs for m in full)
    # every referenced image file exists in the sample (later stages read the original bytes),
    # except the COCO 2014 release VisDial's train split does not name: one of its two exists
    for m in recs:
        for f in m.files:
            if f.file_name and f.source != "visdial":
                assert (data / f.file_name).exists(), f.file_name
        visdial = [f.file_name for f in m.files if f.source == "visdial" and f.file_name]
        assert not visdial or sum((data / name).exists() for name in visdial) == 1, visdial


def test_merge_options_via_cli(sample_work, cli):
    _, work = sample_work
    r = cli("merge", "--work", work, "--min-sources", "3", "--require", "vg")
    assert r.returncode == 0, r.stderr
    recs = [
        MergedImage.model_validate(row)
        for p in merged_parts(work)
        for row in pl.read_parquet(p).iter_rows(named=True)
    ]
    assert recs and all(len(m.sources) >= 3 and "vg" in m.sources for m in recs)
    r = cli("merge", "--work", work, "--sources", "coco,nope")
    assert r.returncode == 2 and "unknown source" in r.stderr


def test_real_excerpts_ingest_and_merge(realdata: Path, tmp_path: Path, cli):
    data = tmp_path / "data"
    (data / "coco").mkdir(parents=True)
    (data / "coco" / "annotations").symlink_to(realdata / "coco-mini" / "annotations")
    (data / "vg").mkdir()
    for f in (realdata / "visual_genome").glob("*.json"):
        (data / "vg" / f.name).symlink_to(f)
    work = tmp_path / "work"
    assert cli("ingest", "--data-root", data, "--work", work, "--sources", "coco,vg").returncode == 0
    r = cli("merge", "--work", work)
    assert r.returncode == 0, r.stderr
    summary = read_summary(work).model_dump(mode="json")
    assert summary["annotations_in"]["caption"] == 400 + 395
    assert summary["annotations_in"]["region"] == 1278
    assert summary["annotations_in"]["qa"] == 721
    recs = {
        row["image_key"]: MergedImage.model_validate(row)
        for p in merged_parts(work)
        for row in pl.read_parquet(p).iter_rows(named=True)
    }
    # the five VG images have no coco_id: they stay vg_<id>; COCO images keep COCO keys
    assert {k for k in recs if k.startswith("vg_")} == {f"vg_{i}" for i in range(1, 6)}
    coco = [m for k, m in recs.items() if k.startswith("coco_")]
    assert len(coco) == 80 + 79
    assert all(0.0 <= c <= 1.0 for m in coco for o in m.objects for c in (o.bbox or []))
    assert all(len(m.captions) >= 1 for m in coco)
