"""In-process tests of the report pieces: manifest reading, distributions, sampling, HTML."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from tests.test_report import (
    COCO_IMAGES,
    DIALOGUES,
    GROUNDING,
    STAGED_REJECTS,
    STEP_NAMES,
    STEPS,
    make_chat,
    make_manifest,
    write_shards,
)
from unimm.errors import InputError, UnimmError
from unimm.pipeline.counts import StepCounts
from unimm.report import load_corpus, load_manifest, manifest_info, parse_manifest, pick_samples, summarize
from unimm.report.console import print_summary
from unimm.report.frames import DIALOGUE_SCHEMA
from unimm.report.html import render_html, thumbnail_b64, write_html
from unimm.report.manifest import ordered_steps
from unimm.report.read import Reservoir
from unimm.report.show import turn_flags
from unimm.report.summary import float_distribution, grounding_summary, int_distribution
from unimm.schema import IMAGE_PLACEHOLDER, GroundingReport, TurnGrounding
from unimm.shards.manifest import ShardEntry, read_manifest


@pytest.fixture
def shard_dir(tmp_path: Path) -> Path:
    if not COCO_IMAGES.is_dir():
        pytest.skip(f"real COCO images not found at {COCO_IMAGES}")
    return write_shards(tmp_path / "shards")


def _entries() -> list[ShardEntry]:
    return [
        ShardEntry(name="a.tar", samples=2, bytes=10, sha256="0" * 64),
        ShardEntry(name="b.tar", samples=3, bytes=20, sha256="1" * 64),
    ]


def test_manifest_steps_give_staged_reasons_and_dedup_figures() -> None:
    info = parse_manifest(make_manifest(_entries()).to_json(), "x/manifest.json")
    assert (info.num_shards, info.samples, info.bytes) == (2, 5, 30)
    assert list(info.steps) == STEP_NAMES and info.steps["filter"] == STEPS["filter"]
    assert list(info.rejection_reasons.items()) == list(STAGED_REJECTS.items())
    assert (info.dedup_rejects, info.dialogues_in) == (3, 8)
    assert info.dup_rate == pytest.approx(3 / 8)
    assert info.by_source == {"aokvqa": 1, "coco": 5, "okvqa": 1, "vqav2": 3}
    assert info.config == {"build_config": {"seed": 0}, "shard_config": {"prefix": "unimm", "maxcount": 3}}
    assert info.generator["prompt_fingerprints"] == ["fp123"] and info.generator["tool_version"] == "0.1.0"
    assert info.warnings == []
    # the decoded object reads the same as the JSON text
    assert parse_manifest(make_manifest(_entries()).model_dump(mode="json"), "x/manifest.json") == info


def test_manifest_steps_order() -> None:
    steps = {n: StepCounts() for n in ("zeta", "shards", "dedup_sign", "dedup_join", "ingest", "dedup")}
    assert list(ordered_steps(steps)) == ["ingest", "dedup", "dedup_join", "dedup_sign", "shards", "zeta"]


def test_manifest_without_dedup_step_has_no_dup_rate() -> None:
    steps = {k: v for k, v in STEPS.items() if k != "dedup"}
    info = manifest_info(make_manifest(_entries(), steps))
    assert info.dedup_rejects is None and info.dialogues_in is None and info.dup_rate is None
    assert "dedup: near_duplicate" not in info.rejection_reasons and info.warnings == []
    assert info.steps["dedup_sign"].rejected == 0


def test_manifest_without_steps_reads_flat_reasons_and_says_so() -> None:
    """A manifest written before per-step counts: flat reason codes, no dedup figures, a warning."""
    m = make_manifest(_entries(), {}).model_copy(update={"rejects_by_reason": {"near_duplicate": 2, "x": 5}})
    info = manifest_info(m, "old/manifest.json")
    assert list(info.rejection_reasons.items()) == [("x", 5), ("near_duplicate", 2)]
    assert info.steps == {} and info.dup_rate is None and info.dedup_rejects is None
    assert len(info.warnings) == 1 and "old/manifest.json" in info.warnings[0] and "steps" in info.warnings[0]


def test_manifest_flat_reasons_disagreeing_with_steps_is_a_warning() -> None:
    m = make_manifest(_entries())
    m = m.model_copy(update={"rejects_by_reason": {**m.rejects_by_reason, "near_duplicate": 9, "other": 1}})
    info = manifest_info(m)
    assert info.rejection_reasons == STAGED_REJECTS  # the steps are what the report shows
    (w,) = info.warnings
    assert "near_duplicate (9 vs 2)" in w and "other (1 vs 0)" in w and "too_short" not in w


def test_manifest_file_errors(tmp_path: Path) -> None:
    assert load_manifest(tmp_path) is None
    path = tmp_path / "manifest.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="manifest.json: not a valid manifest: Invalid JSON"):
        load_manifest(tmp_path)
    path.write_text("[1, 2]")
    with pytest.raises(InputError, match="not a valid manifest") as e:
        load_manifest(tmp_path)
    assert e.value.file == str(path) and e.value.field is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda raw: raw.pop("total_samples"), "total_samples"),
        (lambda raw: raw["steps"]["dedup"].update(input=-1), "steps.dedup.input"),
        (
            lambda raw: raw["steps"]["filter"]["dropped"].update(too_short="3 dialogues"),
            "steps.filter.dropped.too_short",
        ),
        (lambda raw: raw["steps"]["merge"].update(kept=16), "steps.merge.kept"),  # the old spelling
        (lambda raw: raw.update(counts={"dedup": {"input": 8}}), "counts"),  # an unknown layout
        (lambda raw: raw["shards"][0].pop("sha256"), "shards.0.sha256"),
    ],
)
def test_manifest_that_does_not_validate_names_file_and_field(tmp_path: Path, change, field: str) -> None:
    raw = make_manifest(_entries()).model_dump(mode="json")
    change(raw)
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(InputError) as e:
        load_manifest(tmp_path)
    assert e.value.file == str(tmp_path / "manifest.json") and e.value.field == field
    assert f"field '{field}'" in str(e.value)


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
    assert s.manifest is not None and s.manifest.rejection_reasons == STAGED_REJECTS
    assert s.dup_rate == pytest.approx(3 / 8)
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
    writer.write_shards(chats, out, None, realdata)
    s = summarize(load_corpus(out))
    assert s.dialogues == len(DIALOGUES) and s.with_image == len(DIALOGUES)
    assert s.manifest is not None and s.manifest == manifest_info(
        read_manifest(out), str(out / "manifest.json")
    )
    assert s.manifest.samples == len(DIALOGUES) and s.manifest.bytes == s.shard_bytes
    assert s.manifest.num_shards == len(list(out.glob("*.tar")))
    # dedup's figures are the dedup step's, present only when the writer was given the steps
    m = read_manifest(out)
    dedup = m.steps.get("dedup")
    assert s.manifest.dedup_rejects == (dedup.rejected if dedup else None)
    assert s.manifest.dialogues_in == (dedup.input if dedup else None)
    if m.steps:
        assert s.manifest.warnings == []
    else:  # a writer not (yet) given the steps: the report says what it leaves out
        assert len(s.manifest.warnings) == 1 and "no per-step counts" in s.manifest.warnings[0]
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
