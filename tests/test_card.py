"""Dataset cards: README.md beside every shard set, read by huggingface_hub and datasets, stating
what the manifest holds; callable for exports."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_filter import make_chat
from unimm.card import CARD_NAME, FORMATS, SOURCE_TERMS, size_category, write_card
from unimm.pipeline.counts import StepCounts
from unimm.schema import SOURCES, Chat
from unimm.shards import ShardConfig, read_manifest, write_shards_result

PAIRS = [("What is shown here?", "A street scene."), ("Is it day?", "Yes.")]
EVAL_FILE = "/data/eval/v2_OpenEnded_mscoco_val2014_questions.json"
EXTRA = {
    "build_config": {
        "name": "cardtest",
        "filter": {"min_turns": 2, "grounding_checks": ["object", "count"]},
        "decontaminate": {"eval_files": [{"path": EVAL_FILE, "kind": "vqa"}], "ngram": 8},
    },
}
STEPS = {
    "filter": StepCounts(input=17, output=14, dropped={"refusal": 3}),
    "decontaminate": StepCounts(input=14, output=12, dropped={"eval_question": 2}),
}


def corpus() -> list[Chat]:
    # 2, 4, ... 12 question-answer rounds, twice each
    return [make_chat(f"coco_{i:012d}", PAIRS * (1 + i % 6), sources=("coco", "vqav2")) for i in range(1, 13)]


@pytest.fixture
def shard_dir(tmp_path: Path) -> Path:
    write_shards_result(
        corpus(), tmp_path / "shards", ShardConfig(prefix="t", maxcount=5), None, EXTRA, steps=STEPS
    )
    return tmp_path / "shards"


def test_card_metadata_reads_with_huggingface_hub(shard_dir: Path):
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(shard_dir / CARD_NAME)
    meta = card.data.to_dict()
    assert meta["license"] == "other"
    assert meta["task_categories"] == ["visual-question-answering", "image-to-text"]
    assert meta["language"] == ["en"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": ["t-*.tar"]}]}
    ]
    info = DatasetInfosDict.from_dataset_card_data(card.data)["default"]
    assert list(info.features) == ["__key__", "__url__", "json"]  # no image member: none declared


def test_card_body_states_the_manifest(shard_dir: Path):
    man = read_manifest(shard_dir)
    body = (shard_dir / CARD_NAME).read_text().split("\n---\n", 1)[1]
    assert f"| Dialogues | {man.total_samples} |" in body
    assert f"| Shards read | {len(man.shards)} ({man.total_bytes} bytes) |" in body
    assert "min 2, mean 7.00, max 12" in body
    rounds = "| Rounds | Dialogues |\n|---|---|\n" + "\n".join(f"| {n} | 2 |" for n in range(2, 13, 2))
    assert rounds in body  # by number, though the manifest's JSON keys sort as text
    for reason, n in man.rejects_by_reason.items():
        assert f"| `{reason}` | {n} |" in body
    assert f"{sum(man.rejects_by_reason.values())} in all" in body
    assert "| filter | 17 | 14 | 3 |" in body and "| shards | 12 | 12 | 0 |" in body
    for src, n in man.counts_by_source.items():
        t = SOURCE_TERMS[src]
        assert f"| [{t.name}]({t.url}) | {n} | {t.annotations} | {t.images} |" in body
    assert "Flickr Terms of Use" in body and "CC BY 4.0" in body
    absent = set(SOURCES) - set(man.counts_by_source)
    assert absent and not any(SOURCE_TERMS[s].name in body for s in absent)
    assert "| v2_OpenEnded_mscoco_val2014_questions.json | vqa | True | True |" in body
    g = man.generators[0]
    assert (
        f"| {g.backend} | {g.model} | {g.prompt_version} | `{g.prompt_fingerprint}` | {g.samples} |" in body
    )
    assert 'load_dataset("path/to/this/folder", split="train")' in body


def test_every_source_has_terms_and_sizes_follow_the_hub_buckets():
    assert set(SOURCE_TERMS) == set(SOURCES)
    assert [size_category(n) for n in (0, 999, 1000, 9_999, 10_000, 999_999, 10**6, 10**12)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "1K<n<10K",
        "10K<n<100K",
        "100K<n<1M",
        "1M<n<10M",
        "n>1T",
    ]


def test_cli_shards_writes_a_card_verify_accepts(tmp_path: Path, cli):
    from tests.pipeline_helpers import pipeline_work, replace_chats

    work = pipeline_work(tmp_path / "work", "filter")
    replace_chats(work, "decontaminate", corpus())
    out = tmp_path / "shards"
    r = cli("shards", "--work", work, "--out", out, "--no-images", "--prefix", "c")
    assert r.returncode == 0, r.stderr
    assert "| Dialogues | 12 |" in (out / CARD_NAME).read_text()
    assert cli("verify", out).returncode == 0


def test_card_for_an_export_format_is_what_datasets_loads(tmp_path: Path, shard_dir: Path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    man = read_manifest(shard_dir)
    out = tmp_path / "export"
    out.mkdir()
    # no header row, commas inside values: the card's tab separator and column names read it
    (out / "muffin.tsv").write_text("coco_1\ta, b\ncoco_2\tc, d\n")
    features = [{"name": "id", "dtype": "string"}, {"name": "conversation", "dtype": "string"}]
    write_card(out, man, fmt="muffin-tsv", data_files=["*.tsv"], features=features)
    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.column_names == ["id", "conversation"]
    assert ds["conversation"] == ["a, b", "c, d"]
    assert "tags:\n- multimodal" in (out / CARD_NAME).read_text()
    with pytest.raises(ValueError, match="unknown card format"):
        write_card(out, man, fmt="nope")
    assert set(FORMATS) >= {"webdataset", "llava", "unimm-parquet", "muffin-tsv", "hf"}
