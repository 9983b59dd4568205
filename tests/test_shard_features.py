"""Shard samples have one fixed shape (no null anywhere), the card declares it, and `datasets`
loads a build whose first samples are unscored, through every loading path that applies."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, run_unimm
from tests.test_filter import make_chat
from unimm.card import webdataset_features
from unimm.schema import (
    IMAGE_PLACEHOLDER,
    UNSCORED,
    Chat,
    GroundingReport,
    ShardSample,
    TurnGrounding,
)
from unimm.shards import to_shard_chat

PAIRS = [("What is on the table?", "A red cup."), ("How many cups?", "One.")]
JUDGED = GroundingReport(
    score=0.5,
    coverage=1.0,
    checks=2,
    passed=1,
    turns=[
        TurnGrounding(turn=1, checks=["judge"], judge="supported"),
        TurnGrounding(
            turn=3, checks=["count", "judge"], failures=["count_mismatch:cup:1!=2"], judge="unsupported"
        ),
    ],
    judge_fingerprint="jfp",
)


def nulls(obj: Any, path: str = "") -> list[str]:
    """Paths of every null in a decoded JSON value."""
    if obj is None:
        return [path]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in nulls(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in nulls(v, f"{path}[{i}]")]
    return []


def test_sample_json_is_null_free_and_gives_the_chat_back():
    unscored = make_chat("coco_1", PAIRS)  # no image file, no grounding: every optional part unset
    judged = make_chat("coco_2", PAIRS, image_file="coco/x.jpg").model_copy(
        update={"grounding_score": 0.5, "grounding": JUDGED}
    )
    for chat in (unscored, judged):
        raw = to_shard_chat(chat).model_dump_json()
        doc = json.loads(raw)
        assert list(doc) == list(ShardSample.model_fields)  # every field, always, in one order
        assert nulls(doc) == []
        back = Chat.model_validate_json(raw)  # readers of shards parse the sample as a Chat
        assert back.turns[0].content == f"{IMAGE_PLACEHOLDER}\n{chat.turns[0].content}"
        assert back.model_copy(update={"turns": chat.turns}) == chat
    # every Chat field is carried, as itself or in its null-free form
    assert set(Chat.model_fields) - set(ShardSample.model_fields) == {"grounding"}
    doc = json.loads(to_shard_chat(unscored).model_dump_json())
    assert (doc["grounding_score"], doc["grounding_scored"], doc["grounding_report"]) == (UNSCORED, False, "")


def test_features_are_derived_from_the_sample_model():
    from datasets import Features, Image, List, Value

    feats = Features._from_yaml_list(webdataset_features(["jpg", "json"]))
    assert list(feats) == ["__key__", "__url__", "jpg", "json"]
    assert isinstance(feats["jpg"], Image)
    js = feats["json"]
    assert list(js) == list(ShardSample.model_fields)
    assert js["turns"] == List({"role": Value("string"), "content": Value("string")})
    assert js["sources"] == List(Value("string"))
    assert js["generator"]["request_id"] == Value("string")
    assert js["grounding_score"] == Value("float64")
    assert js["grounding_scored"] == Value("bool")
    assert js["grounding_report"] == Value("string")


def _first_shard_samples(shard_dir: Path) -> list[dict]:
    first = sorted(shard_dir.glob("*.tar"))[0]
    with tarfile.open(first) as tf:
        return [json.loads(tf.extractfile(m).read()) for m in tf if m.name.endswith(".json")]


@pytest.mark.slow
def test_build_with_unscored_first_samples_loads_with_declared_types(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # this demo with only the existence check leaves its first five dialogues unscored: the
    # webdataset loader guesses types from exactly five samples
    data, shards = tmp_path / "data", tmp_path / "shards"
    assert run_unimm("sample", "--out", data, "--seed", "6").returncode == 0
    r = run_unimm(
        "build",
        "--config",
        REPO / "pipelines" / "llava_reformat.yaml",
        "--data-root",
        data,
        "--work",
        tmp_path / "work",
        "--out",
        shards,
        "--set",
        "filter.grounding_checks=[existence]",
    )
    assert r.returncode == 0, r.stderr
    samples = _first_shard_samples(shards)
    assert not any(s["grounding_scored"] for s in samples[:5]), "precondition: first five unscored"
    assert any(s["grounding_scored"] for s in samples[5:])
    total = json.loads((shards / "manifest.json").read_text())["total_samples"]
    assert run_unimm("verify", shards).returncode == 0  # the README beside the shards is no stray

    import datasets

    declared = datasets.Features._from_yaml_list(webdataset_features(["jpg", "json"]))
    cache = str(tmp_path / "cache")
    files = {"train": sorted(str(p) for p in shards.glob("*.tar"))}
    loaded = {
        # the files alone: types inferred from the first five samples
        "webdataset data_files": datasets.load_dataset(
            "webdataset", data_files=files, split="train", cache_dir=cache
        ),
        # the folder: README.md's configs and dataset_info features
        "folder": datasets.load_dataset(str(shards), split="train", cache_dir=cache),
    }
    for how, ds in loaded.items():
        assert len(ds) == total, how
        assert ds.features == declared, how
        scores = ds["json"]
        assert {s["grounding_scored"] for s in scores} == {True, False}, how
        assert all((0 <= s["grounding_score"] <= 1) == s["grounding_scored"] for s in scores), how
    streamed = datasets.load_dataset(str(shards), split="train", streaming=True)
    assert streamed.features == declared
    assert sum(1 for _ in streamed) == total
