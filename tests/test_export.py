"""Exports read back from shards: LLaVA instruction JSON and UniMM-Chat release Parquet (each
consumer's own reading contract is in test_export_consumers.py)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.test_filter import make_chat
from unimm.shards import ShardConfig, export_llava, export_unimm_parquet, write_shards

PAIRS = [("What is on the plate?", "Some pasta and a fork."), ("Is it a restaurant?", "Yes, it seems so.")]


@pytest.fixture
def shard_dir(tmp_path, realdata):
    files = sorted((realdata / "coco-mini" / "train2017").glob("*.jpg"))[:5]
    chats = [
        make_chat(
            f"coco_{int(p.stem):012d}",
            PAIRS,
            image_file=str(p.relative_to(realdata)),
            sources=("coco", "okvqa"),
        )
        for p in files
    ]
    out = tmp_path / "shards"
    write_shards(chats, out, ShardConfig(maxcount=2), realdata)
    return out


def test_llava_export(shard_dir, tmp_path, realdata):
    out = tmp_path / "llava.json"
    res = export_llava(shard_dir, out)
    assert (res.records, res.images, res.images_dir) == (5, 5, tmp_path / "llava_images")
    records = json.loads(out.read_text())
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)
    for r in records:
        assert set(r) == {"id", "image", "conversations"}
        # the export's own path, from the image key, not the source release's
        assert r["image"] == f"coco/{r['id']}.jpg"
        source = realdata / "coco-mini" / "train2017" / f"{r['id'].split('_')[1]}.jpg"
        assert (res.images_dir / r["image"]).read_bytes() == source.read_bytes()
        conv = r["conversations"]
        assert [c["from"] for c in conv] == ["human", "gpt", "human", "gpt"]
        assert conv[0]["value"] == "<image>\nWhat is on the plate?"
        assert sum(c["value"].count("<image>") for c in conv) == 1


def test_unimm_parquet_export(shard_dir, tmp_path, realdata):
    out = tmp_path / "unimm.parquet"
    assert export_unimm_parquet(shard_dir, out).records == 5
    df = pl.read_parquet(out)
    assert df.columns == ["ds_name", "image", "conversation", "origin_dataset", "idx", "image_path"]
    # the HF Image feature's storage, as in the release
    assert df.schema["image"] == pl.Struct({"bytes": pl.Binary, "path": pl.String})
    assert df.schema["idx"] == pl.Int64
    assert df["idx"].to_list() == list(range(5))
    assert set(df["origin_dataset"]) == {"coco,okvqa"}
    for row in df.iter_rows(named=True):
        assert row["image"]["bytes"] == (realdata / row["image_path"]).read_bytes()
        conv = json.loads(row["conversation"])
        assert conv[0] == {"from": "human", "value": "<image>\nWhat is on the plate?"}
        assert conv[1]["from"] == "gpt"


def test_parquet_export_without_images_has_null_image(tmp_path):
    out = tmp_path / "s"
    write_shards([make_chat("coco_1", PAIRS)], out, ShardConfig())
    export_unimm_parquet(out, tmp_path / "x.parquet")
    df = pl.read_parquet(tmp_path / "x.parquet")
    assert df["image"].to_list() == [None]
    assert df["image_path"].to_list() == [None]


def test_cli_export(shard_dir, tmp_path, cli):
    r = cli("export", "--shards", shard_dir, "--format", "llava", "--out", tmp_path / "l.json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads((tmp_path / "l.json").read_text())) == 5
    r = cli("export", "--shards", shard_dir, "--format", "unimm-parquet", "--out", tmp_path / "u.parquet")
    assert r.returncode == 0, r.stderr
    assert pl.read_parquet(tmp_path / "u.parquet").height == 5
