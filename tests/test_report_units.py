"""In-process tests of the report pieces: manifest reading, distributions, sampling, HTML."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.test_report import COCO_IMAGES, DIALOGUES, GROUNDING, REJECTS, make_chat, write_shards
from unimm.errors import InputError, UnimmError
from unimm.report import load_corpus, load_manifest, parse_manifest, pick_samples, summarize
from unimm.report.console import print_summary
from unimm.report.frames import DIALOGUE_SCHEMA
from unimm.report.html import render_html, thumbnail_b64, write_html
from unimm.report.read import Reservoir
from unimm.report.show import turn_flags
from unimm.report.summary import float_distribution, grounding_summary, int_distribution
from unimm.schema import IMAGE_PLACEHOLDER, GroundingReport, TurnGrounding


@pytest.fixture
def shard_dir(tmp_path: Path) -> Path:
    if not COCO_IMAGES.is_dir():
        pytest.skip(f"real COCO images not found at {COCO_IMAGES}")
    return write_shards(tmp_path / "shards")


def test_manifest_missing_keys_never_crash() -> None:
    for raw in ({}, {"shards": "nonsense"}, {"shards": [{"samples": 3}], "rejects_by_reason": {"a": "x"}}):
        info = parse_manifest(raw)
        assert info.samples is None and info.bytes is None and info.rejection_reasons == {}
        assert info.dup_rate is None


def test_manifest_staged_layout() -> None:
    raw = {
        "shards": [
            {"name": "a.tar", "samples": 4, "bytes": 10},
            {"name": "b.tar", "samples": 6, "bytes": 20},
        ],
        "counts": {
            "filter": {"input": 20, "kept": 14, "rejected": 6, "too_short": 6},
            "dedup": {
                "input": 14,
                "kept": 10,
                "rejected": 4,
                "near_duplicate": 4,
                "turn_pairs_dropped_duplicate": 9,
            },
        },
    }
    info = parse_manifest(raw)
    assert (info.num_shards, info.samples, info.bytes) == (2, 10, 30)
    assert info.rejection_reasons == {"filter: too_short": 6, "dedup: near_duplicate": 4}
    assert (info.dedup_rejects, info.dialogues_in) == (4, 14)
    assert info.dup_rate == pytest.approx(4 / 14)


def test_manifest_flat_layout_counts_later_stage_rejects() -> None:
    raw = {
        "total_samples": 10,
        "rejects_by_reason": {"near_duplicate": 2, "eval_image": 1, "too_short": 5, "image_missing": 1},
        "shard_rejects": [{"id": "coco_1", "image_key": "coco_1", "reasons": ["image_missing:x"]}],
    }
    info = parse_manifest(raw)
    # into dedup: 10 shipped + 2 duplicates + 1 decontaminated + 1 lost at the shards stage
    assert (info.dedup_rejects, info.dialogues_in) == (2, 14)


def test_manifest_file_errors(tmp_path: Path) -> None:
    assert load_manifest(tmp_path) is None
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="manifest.json"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="JSON object"):
        load_manifest(tmp_path)


def test_manifest_mismatch_is_a_warning(tmp_path: Path) -> None:
    pytest.importorskip("unimm.shards.manifest")
    info = parse_manifest({"total_samples": 3})
    assert info.samples == 3 and info.warnings and "Manifest" in info.warnings[0]


def test_int_distribution_bins() -> None:
    d = int_distribution(pl.Series(list(range(100)), dtype=pl.Int64), max_bins=20)
    assert len(d.bins) == 20 and {b.count for b in d.bins} == {5}
    assert d.bins[0].label == "0-4" and d.bins[-1].label == "95-99"
    assert (d.mean, d.median, d.min, d.max) == (49.5, 49.5, 0, 99)
    gaps = int_distribution(pl.Series([3, 3, 7], dtype=pl.Int64))
    assert [(b.label, b.count) for b in gaps.bins] == [("3", 2), ("4", 0), ("5", 0), ("6", 0), ("7", 1)]
    empty = int_distribution(pl.Series([], dtype=pl.Int64))
    assert empty.n == 0 and empty.bins == [] and empty.mean is None


def test_float_distribution_edges_and_nulls() -> None:
    d = float_distribution(pl.Series([0.0, 0.05, 0.1, 0.999, 1.0, None]), bins=10)
    assert d.n == 5 and d.missing == 1
    assert [b.count for b in d.bins] == [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]


def test_reservoir_is_seeded() -> None:
    def run(seed: int) -> list[int]:
        r: Reservoir[int] = Reservoir(3, seed)
        for i in range(1000):
            r.offer(i)
        return r.items

    assert run(1) == run(1) and run(1) != run(2)
    small: Reservoir[int] = Reservoir(5, 0)
    for i in range(3):
        small.offer(i)
    assert small.items == [0, 1, 2]


def test_summary_and_examples_in_process(shard_dir: Path, tmp_path: Path) -> None:
    corpus = load_corpus(shard_dir, examples=3, seed=7)
    assert corpus.dialogues.height == len(DIALOGUES) and len(corpus.examples) == 3
    assert [e.key for e in load_corpus(shard_dir, examples=3, seed=7).examples] == [
        e.key for e in corpus.examples
    ]
    s = summarize(corpus)
    assert s.turns == sum(d[2] for d in DIALOGUES)
    assert s.manifest is not None and s.manifest.rejection_reasons == dict(
        sorted(REJECTS.items(), key=lambda kv: -kv[1])
    )
    html = render_html(s, corpus.examples)
    assert html.startswith("<!DOCTYPE html>") and html.count("data:image/png;base64,") >= 6
    out = write_html(s, corpus.examples, tmp_path / "deep" / "r.html")
    assert out.read_text() == html
    assert [p.name for p in (tmp_path / "deep").iterdir()] == ["r.html"]  # no temp files left


def test_pick_samples(shard_dir: Path) -> None:
    assert [s.key for s in pick_samples(shard_dir, ids=["coco_000000063217", "coco_000000000790"])] == [
        "coco_000000063217",
        "coco_000000000790",
    ]
    assert len(pick_samples(shard_dir, n=10)) == len(DIALOGUES)
    picks = [s.key for s in pick_samples(shard_dir, n=2, seed=1)]
    assert len(picks) == 2 and picks == [s.key for s in pick_samples(shard_dir, n=2, seed=1)]
    with pytest.raises(UnimmError, match="no shards"):
        pick_samples(shard_dir / "nowhere")


def test_thumbnail(shard_dir: Path) -> None:
    assert thumbnail_b64(b"not an image") is None
    assert thumbnail_b64((COCO_IMAGES / "000000000790.jpg").read_bytes())


def test_reads_shards_written_by_unimm_shards(tmp_path: Path, realdata: Path) -> None:
    """The report reads what the real shard writer produces, manifest included, without warnings."""
    writer = pytest.importorskip("unimm.shards.writer")
    chats = []
    for i in range(len(DIALOGUES)):
        c = make_chat(i)
        # before export chats carry no placeholder: the shard writer adds it
        turns = [
            t.model_copy(update={"content": t.content.removeprefix(IMAGE_PLACEHOLDER + "\n")})
            for t in c.turns
        ]
        image = f"coco-mini/train2017/{DIALOGUES[i][0]:012d}.jpg"
        chats.append(c.model_copy(update={"image_file": image, "turns": turns}))
    out = tmp_path / "real"
    writer.write_shards(chats, out, None, realdata, {"rejects_by_reason": {"near_duplicate": 1}})
    s = summarize(load_corpus(out))
    assert s.dialogues == len(DIALOGUES) and s.with_image == len(DIALOGUES)
    assert s.manifest is not None and s.manifest.warnings == []
    assert s.manifest.samples == len(DIALOGUES) and s.manifest.bytes == s.shard_bytes
    assert s.manifest.dedup_rejects == 1 and s.manifest.dialogues_in == len(DIALOGUES) + 1
    assert json.loads(s.model_dump_json())["turns"] == sum(d[2] for d in DIALOGUES)
    # question lengths do not count the placeholder the writer inserted
    assert s.question_words.min == min(
        len(t.content.split()) for c in chats for t in c.turns if t.role == "user"
    )


def test_turn_flags() -> None:
    assert turn_flags(make_chat(0)) == {
        1: "unsupported: hallucinated_object:giraffe (judge: no giraffe in the image)"
    }
    assert turn_flags(make_chat(1)) == {5: "unsupported: count_mismatch:bus:3!=2"}
    assert turn_flags(make_chat(3)) == {}  # a report without failures
    assert turn_flags(make_chat(4)) == {}  # no report at all (older shards)
    judge_only = make_chat(0).model_copy(
        update={
            "grounding": GroundingReport(coverage=1.0, turns=[TurnGrounding(turn=3, judge="unsupported")])
        }
    )
    assert turn_flags(judge_only) == {3: "unsupported: judge"}


def _frame(reports: list[GroundingReport | None]) -> pl.DataFrame:
    rows = [{"grounding": r.model_dump() if r else None} for r in reports]
    return pl.DataFrame(rows, schema={"grounding": DIALOGUE_SCHEMA["grounding"]})


def test_grounding_summary_from_reports() -> None:
    g = grounding_summary(_frame([GROUNDING[0], None, GROUNDING[1], GROUNDING[3]]))
    assert (g.dialogues, g.mentioned, g.hallucinated) == (3, 3, 1)
    assert g.coverage.mean == pytest.approx(0.5) and g.covered == pytest.approx(2 / 3)
    assert g.chair_i == pytest.approx(1 / 3) and g.chair_s == pytest.approx(0.5)
    assert [(c.label, c.count) for c in g.hallucinated_objects] == [("giraffe", 1)]
    assert g.reject_reasons == []  # no manifest


def test_grounding_summary_without_reports() -> None:
    """Shards built before grounding checks: every figure is empty, nothing fails."""
    for df in (_frame([None, None]), _frame([])):
        g = grounding_summary(df)
        assert g.dialogues == 0 and g.coverage.n == 0 and g.covered is None
        assert g.chair_i is None and g.chair_s is None and g.judge == g.failures == []


def test_reports_without_grounding(tmp_path: Path) -> None:
    """Old shards (grounding=None everywhere) still summarise, print and render."""
    import webdataset as wds
    from rich.console import Console

    d = tmp_path / "old"
    d.mkdir()
    with wds.TarWriter(str(d / "unimm-000000.tar")) as w:
        for i in (2, 4):
            chat = make_chat(i)
            assert chat.grounding is None
            w.write({"__key__": chat.id, "json": chat.model_dump_json().encode()})
    corpus = load_corpus(d)
    s = summarize(corpus)
    assert s.grounding_report.dialogues == 0 and s.grounding.n == 1
    con = Console(record=True, width=160)
    print_summary(s, con)
    assert "no grounding reports in the shards" in con.export_text()
    html = render_html(s, corpus.examples)
    assert "no grounding reports in the shards" in html and "✗" not in html


def test_html_example_marks_unsupported_turn(shard_dir: Path) -> None:
    s = summarize(load_corpus(shard_dir, examples=0))
    html = render_html(s, pick_samples(shard_dir, ids=["coco_000000000790", "coco_000000063217"]))
    flag = "✗ unsupported: hallucinated_object:giraffe (judge: no giraffe in the image)"
    assert html.count('class="flag"') == 1 and f'<div class="flag">{flag}</div>' in html
    assert "coverage: 50.0% · CHAIR-i: 0.5 " in html and "coverage: — · CHAIR-i: —" in html
