"""Template backend: exact chats on small hand-built MergedImage records, and the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.pipeline_helpers import FIXTURES, pipeline_work, replace_merged
from unimm.generate import GenerateConfig, generate_chats
from unimm.generate.template import DESCRIBE_PROMPTS, SHORT_ANSWER, template_fingerprint
from unimm.schema import Chat, MergedImage
from unimm.tables import frame_to_chats


def fixture_records() -> list[MergedImage]:
    """Three records: full COCO+VQA+VG, a VG-only one, and one with nothing to ask about."""
    full = MergedImage.model_validate(
        {
            "image_key": "coco_000000000042",
            "coco_id": 42,
            "vg_id": 7,
            "width": 640,
            "height": 480,
            "files": [
                {"source": "vg", "split": "all", "file_name": None},
                {"source": "coco", "split": "train2017", "file_name": "coco/train2017/000000000042.jpg"},
            ],
            "sources": ["aokvqa", "coco", "okvqa", "vg", "vqav2"],
            "captions": [
                {"sources": ["coco"], "source_ids": ["c1"], "text": "A dog lying on a brown couch next to a remote."},
                {"sources": ["coco"], "source_ids": ["c2"], "text": "A black dog naps on a sofa."},
            ],
            "qas": [
                {"sources": ["vqav2"], "source_ids": ["q1"], "question": "What color is the couch?", "answer": "brown",
                 "answers": [{"text": "brown"}, {"text": "brown"}, {"text": "tan"}]},
                {"sources": ["aokvqa"], "source_ids": ["q2"], "question": "What does the remote control?",
                 "choices": ["oven", "television", "car", "door"], "correct_choice": 1,
                 "rationales": ["Remotes like this one are used to change TV channels."]},
                {"sources": ["vqav2"], "source_ids": ["q3"], "question": "How many dogs?",
                 "answers": [{"text": "1"}, {"text": "2"}, {"text": "1"}]},
                {"sources": ["okvqa"], "source_ids": ["q4"], "question": "Unanswerable?"},
            ],
            "regions": [
                {"sources": ["vg"], "source_ids": ["r1"], "text": "a black dog", "bbox": [0.1, 0.2, 0.3, 0.4]},
                {"sources": ["vg"], "source_ids": ["r2"], "text": "no box here"},
                {"sources": ["vg"], "source_ids": ["r3"], "text": "edge of couch", "bbox": [0.8, 0.9, 0.25, 0.2]},
            ],
            "objects": [{"sources": ["vg"], "source_ids": ["o1"], "name": "remote", "bbox": [0.6, 0.5, 0.1, 0.05]}],
        }
    )  # fmt: skip
    vg_only = MergedImage.model_validate(
        {
            "image_key": "vg_2417",
            "vg_id": 2417,
            "files": [{"source": "vg", "split": "all", "file_name": "visual_genome/VG_100K/2417.jpg"}],
            "sources": ["vg"],
            "regions": [{"sources": ["vg"], "source_ids": ["r9"], "text": "red kite in the sky",
                         "bbox": [0.123, 0.456, 0.2, 0.1]}],
        }
    )  # fmt: skip
    empty = MergedImage.model_validate(
        {
            "image_key": "vg_9",
            "sources": ["vg"],
            "objects": [
                {"sources": ["vg"], "source_ids": ["o9"], "name": "tree", "bbox": [0.1, 0.1, 0.1, 0.1]}
            ],
        }
    )
    return [full, vg_only, empty]


def _pairs(chat: Chat) -> list[tuple[str, str]]:
    roles = [t.role for t in chat.turns]
    assert roles == ["user", "assistant"] * (len(roles) // 2)
    return [(chat.turns[i].content, chat.turns[i + 1].content) for i in range(0, len(chat.turns), 2)]


def test_template_chats_exact(tmp_path: Path) -> None:
    res = generate_chats(fixture_records(), GenerateConfig(backend="template"), tmp_path / "cache")
    full, vg_only = res.chats
    # The describe prompt and the caption are chosen from the key's hash: fixed for this key.
    assert _pairs(full) == [
        ("Summarize the visual content of the image.", "A black dog naps on a sofa."),
        (f"What color is the couch?\n{SHORT_ANSWER}", "brown"),
        (f"What does the remote control?\n{SHORT_ANSWER}", "television"),
        (f"How many dogs?\n{SHORT_ANSWER}", "1"),
        ("Please provide a short description for this region: [0.10, 0.20, 0.40, 0.60]", "a black dog"),
        ("Please provide a short description for this region: [0.80, 0.90, 1.00, 1.00]", "edge of couch"),
    ]
    assert full.id == full.image_key == "coco_000000000042"
    assert full.image_file == "coco/train2017/000000000042.jpg"  # first file that has a name
    assert full.sources == ["aokvqa", "coco", "okvqa", "vg", "vqav2"]
    assert all("<image>" not in t.content for t in full.turns)
    assert full.generator.backend == "template"
    assert full.generator.prompt_fingerprint == template_fingerprint()

    assert _pairs(vg_only) == [
        (
            "Please provide a short description for this region: [0.12, 0.46, 0.32, 0.56]",
            "red kite in the sky",
        )
    ]
    assert vg_only.image_file == "visual_genome/VG_100K/2417.jpg"
    [failure] = res.failures
    assert (failure.image_key, failure.reason) == ("vg_9", "no_content")
    assert res.summary.chats == 2 and res.summary.failures_by_reason == {"no_content": 1}
    assert res.summary.requests_sent == 0


def test_template_is_deterministic_and_rotates_prompts(tmp_path: Path) -> None:
    base = fixture_records()[0]
    seen = set()
    for i in range(40):
        rec = base.model_copy(update={"image_key": f"coco_{i:012d}"})
        a = generate_chats([rec], GenerateConfig(backend="template"), tmp_path)
        b = generate_chats([rec], GenerateConfig(backend="template"), tmp_path)
        assert a.chats == b.chats
        seen.add(a.chats[0].turns[0].content)
    assert seen <= set(DESCRIBE_PROMPTS) and len(seen) > 3


def test_template_turn_cap_cuts_regions_first(tmp_path: Path) -> None:
    res = generate_chats(
        fixture_records()[:1], GenerateConfig(backend="template", template_max_turns=3), tmp_path
    )
    questions = [q for q, _ in _pairs(res.chats[0])]
    assert len(questions) == 3
    assert questions[0] in DESCRIBE_PROMPTS and all(SHORT_ANSWER in q for q in questions[1:])


def test_limit_keeps_first_records(tmp_path: Path) -> None:
    res = generate_chats(fixture_records(), GenerateConfig(backend="template", limit=1), tmp_path)
    assert [c.id for c in res.chats] == ["coco_000000000042"] and res.summary.records == 1


def write_merged(work: Path, records: list[MergedImage]) -> None:
    """A work dir merged by the real pipeline whose partition holds exactly `records`, for
    `unimm generate` with the config the test passes (see tests/pipeline_helpers.py)."""
    pipeline_work(work, "merge", generate={"backend": "local"})
    replace_merged(work, records)


@pytest.fixture
def merged_work(tmp_path: Path, cli) -> Path:
    """A work dir the pipeline has ingested and merged the official-format fixtures into."""
    work = tmp_path / "work"
    r = cli("build", "--data-root", FIXTURES, "--work", work, "--llm", "template", "--until", "merge")
    assert r.returncode == 0, r.stderr
    return work


def test_cli_generate_template(merged_work: Path, cli) -> None:
    r = cli("generate", "--work", merged_work, "--llm", "template", "--no-progress")
    assert r.returncode == 0, r.stderr
    merged = pl.read_parquet(merged_work / "merged" / "part-00000.parquet")
    chats = frame_to_chats(pl.read_parquet(merged_work / "generate" / "chats-00000.parquet"))
    failures = pl.read_parquet(merged_work / "generate" / "failures-00000.parquet")
    # every record is a dialogue or a recorded failure
    assert sorted([c.id for c in chats] + failures["image_key"].to_list()) == sorted(merged["image_key"])
    assert chats and all(c.generator.backend == "template" for c in chats)
    marker = merged_work / "markers" / "generate" / "00000.done.json"
    assert json.loads(marker.read_text())["counts"]["input"] == merged.height


def test_cli_generate_bad_input_exits_2(merged_work: Path, cli) -> None:
    part = merged_work / "merged" / "part-00000.parquet"
    pl.DataFrame({"image_key": ["coco_1"], "sources": [["nope"]]}).write_parquet(part)
    r = cli("generate", "--work", merged_work, "--llm", "template")
    assert r.returncode == 2
    assert "part-00000.parquet" in r.stderr and "record 0" in r.stderr and "sources" in r.stderr
    assert not (merged_work / "generate" / "chats-00000.parquet").exists()


@pytest.mark.parametrize("args", [["--llm", "openai"], ["--llm", "bogus"]])
def test_cli_generate_bad_config_exits_2(merged_work: Path, cli, args: list[str]) -> None:
    r = cli("generate", "--work", merged_work, *args)
    assert r.returncode == 2, r.stderr
    assert "has not run" not in r.stderr and not (merged_work / "generate").exists()
