"""Merge: grouping by image, exact-duplicate collapse with provenance, filters, determinism."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unimm.errors import ConfigError, MissingStageOutputError
from unimm.keys import partition_of
from unimm.merge import MergeConfig, merge, merged_parts, read_summary
from unimm.schema import Annotation, Answer, ImageRef, MergedImage

from .merge_helpers import write_ingest

K1, K2 = "coco_000000000009", "coco_000000000025"


def _img(key: str, source: str, **kw) -> ImageRef:
    return ImageRef(
        image_key=key,
        source=source,
        split=kw.pop("split", "train"),
        source_image_id=key.rsplit("_", 1)[-1],
        **kw,
    )


def _ann(key: str, source: str, kind: str, sid: str, text: str, **kw) -> Annotation:
    return Annotation(
        image_key=key,
        source=source,
        split=kw.pop("split", "train"),
        kind=kind,
        source_id=sid,
        text=text,
        **kw,
    )


def _records(work: Path) -> dict[str, MergedImage]:
    out = {}
    for p in merged_parts(work):
        for row in pl.read_parquet(p).iter_rows(named=True):
            m = MergedImage.model_validate(row)
            out[m.image_key] = m
    return out


@pytest.fixture
def work(tmp_path: Path) -> Path:
    w = tmp_path / "work"
    write_ingest(
        w,
        "coco",
        [
            _ann(K1, "coco", "caption", "1", "A red ball on grass."),
            _ann(K1, "coco", "caption", "2", "a red ball on grass"),  # same text modulo case/period
            _ann(K1, "coco", "object", "70", "sports ball", bbox=[0.1, 0.2, 0.3, 0.4]),
            _ann(K2, "coco", "caption", "3", "Two dogs."),
        ],
        [
            _img(K1, "coco", file_name="coco/train2017/000000000009.jpg", width=640, height=480, coco_id=9),
            _img(K2, "coco", file_name="coco/train2017/000000000025.jpg", width=500, height=375, coco_id=25),
        ],
    )
    write_ingest(
        w,
        "vqav2",
        [
            _ann(
                K1,
                "vqav2",
                "qa",
                "9000",
                "What color is the ball?",
                answer="red",
                answers=[Answer(text="red", confidence="yes")] * 10,
                answer_type="other",
                question_type="what color",
            ),
        ],
        [_img(K1, "vqav2", file_name="coco/train2014/COCO_train2014_000000000009.jpg", coco_id=9)],
    )
    write_ingest(
        w,
        "aokvqa",
        [
            _ann(
                K1,
                "aokvqa",
                "qa",
                "a1",
                "What sport uses this ball?",
                answer="soccer",
                choices=["tennis", "soccer"],
                correct_choice=1,
            ),
            _ann(K1, "aokvqa", "rationale", "a1#0", "The ball is a football.", parent_id="a1"),
            _ann(K1, "aokvqa", "rationale", "a1#1", "Soccer is played with it.", parent_id="a1"),
            _ann(K1, "aokvqa", "rationale", "a9#0", "Its question is not here.", parent_id="a9"),
        ],
        [_img(K1, "aokvqa", coco_id=9)],
    )
    write_ingest(
        w,
        "vg",
        [
            _ann(K1, "vg", "caption", "r5", "A red ball on grass."),  # duplicate of a COCO caption
            _ann(
                K1,
                "vg",
                "qa",
                "q7",
                "What color is the ball?",
                answer="Red",
                answers=[Answer(text="Red", raw="Red.")],
            ),  # duplicate of the VQAv2 question+answer
            _ann(K1, "vg", "region", "r6", "red ball", bbox=[0.1, 0.2, 0.3, 0.4]),
            _ann(K1, "vg", "region", "r8", "red ball", bbox=[0.5, 0.5, 0.1, 0.1]),  # same text, other place
            _ann("vg_77", "vg", "region", "r9", "a tree", bbox=[0.0, 0.0, 1.0, 1.0]),
        ],
        [
            _img(
                K1, "vg", split="all", file_name="vg/VG_100K/3.jpg", width=800, height=600, coco_id=9, vg_id=3
            ),
            _img("vg_77", "vg", split="all", file_name="vg/VG_100K/77.jpg", width=800, height=600, vg_id=77),
        ],
    )
    return w


def test_groups_by_image_and_keeps_every_provenance(work: Path):
    summary = merge(work, MergeConfig())
    recs = _records(work)
    assert sorted(recs) == [K1, K2, "vg_77"]
    r = recs[K1]
    assert r.sources == ["coco", "vqav2", "aokvqa", "vg"]
    assert r.coco_id == 9 and r.vg_id == 3 and (r.width, r.height) == (640, 480)
    assert [f.source for f in r.files] == ["coco", "vqav2", "aokvqa", "vg"]
    # three identical captions (case/period aside) -> one item, three provenances, first text kept
    assert len(r.captions) == 1
    assert r.captions[0].text == "A red ball on grass."
    assert r.captions[0].sources == ["coco", "coco", "vg"] and r.captions[0].source_ids == ["1", "2", "r5"]
    # same question + same answer from VQAv2 and VG collapse; answers of both kept
    color = [q for q in r.qas if q.question == "What color is the ball?"]
    assert len(color) == 1 and color[0].sources == ["vqav2", "vg"] and len(color[0].answers) == 11
    sport = next(q for q in r.qas if q.question.startswith("What sport"))
    assert sport.rationales == ["The ball is a football.", "Soccer is played with it."]
    assert sport.choices == ["tennis", "soccer"] and sport.correct_choice == 1
    assert len(r.regions) == 2  # same phrase at two places is two regions
    assert summary.duplicates_collapsed == {"caption": 2, "qa": 1, "region": 0, "object": 0, "dialog": 0}
    assert summary.by_source_count == {1: 2, 4: 1}
    assert summary.images_with_3plus_kinds == 1
    assert summary.orphan_rationales == 1  # counted, attached to no question
    assert all("Its question is not here." not in q.rationales for q in r.qas)
    assert read_summary(work) == summary


def test_grounding_fields_carried_and_unioned(tmp_path: Path):
    work = tmp_path / "work"
    box, other = [0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.2, 0.2]
    write_ingest(
        work,
        "coco",
        [
            _ann(K1, "coco", "object", "1", "person", bbox=box, iscrowd=True),
            _ann(K1, "coco", "object", "2", "dog", bbox=other, iscrowd=False),
        ],
        [_img(K1, "coco", coco_id=9)],
    )
    write_ingest(
        work,
        "vqav2",
        [_ann(K1, "vqav2", "qa", "q1", "What is it?", answer="dog")],
        [_img(K1, "vqav2", coco_id=9)],
    )
    write_ingest(
        work,
        "aokvqa",
        [
            _ann(K1, "aokvqa", "qa", "a1", "What is it?", answer="dog", difficult=True),
            _ann(K1, "aokvqa", "qa", "a2", "Who owns it?", answer="a boy", difficult=False),
        ],
        [_img(K1, "aokvqa", coco_id=9)],
    )
    vg = {"names": ["person", "man"], "synsets": ["person.n.01"], "attributes": ["standing"]}
    write_ingest(
        work,
        "vg",
        [
            _ann(K1, "vg", "object", "o1", "Person", bbox=box, **vg),
            _ann(
                K1,
                "vg",
                "object",
                "o2",
                "person",
                bbox=box,
                names=["person"],
                synsets=["person.n.01"],
                attributes=["tall", "standing"],
            ),
            _ann(K1, "vg", "object", "o3", "tree", bbox=other, names=["tree"], synsets=["tree.n.01"]),
        ],
        [_img(K1, "vg", split="all", vg_id=3, coco_id=9)],
    )
    summary = merge(work, MergeConfig())
    r = _records(work)[K1]  # validated through MergedImage
    person, dog, tree = r.objects
    assert person.sources == ["coco", "vg", "vg"] and person.name == "person"
    assert person.iscrowd is True  # a crowd if any duplicate is one
    assert (person.names, person.synsets, person.attributes) == (
        ["person", "man"],
        ["person.n.01"],
        ["standing", "tall"],
    )
    assert (dog.iscrowd, dog.names, dog.attributes) == (False, [], [])
    assert (tree.iscrowd, tree.names, tree.synsets) == (None, ["tree"], ["tree.n.01"])
    what, who = r.qas
    assert what.sources == ["vqav2", "aokvqa"] and what.difficult is True
    assert who.difficult is False
    assert summary.duplicates_collapsed["object"] == 2 and summary.duplicates_collapsed["qa"] == 1


def test_grounding_fields_unknown_stay_null(work: Path):
    merge(work, MergeConfig())
    r = _records(work)[K1]
    assert all(q.difficult is None for q in r.qas)
    assert [(o.iscrowd, o.names, o.synsets, o.attributes) for o in r.objects] == [(None, [], [], [])]


def test_ingest_table_from_an_older_unimm_is_a_clear_error(work: Path):
    from unimm.errors import UnimmError
    from unimm.ingest.tablefile import read_ingest_table
    from unimm.pipeline.layout import Layout
    from unimm.tables import INGEST_ANNOTATION_SCHEMA

    path = Layout(work).ingest_table("vg")
    # what an older unimm wrote: every column, no schema mark, one column it did not know yet
    read_ingest_table(path, INGEST_ANNOTATION_SCHEMA).drop("attributes").write_parquet(path)
    with pytest.raises(
        UnimmError, match=r"vg.parquet was written by another unimm.*unimm ingest --sources vg"
    ):
        merge(work, MergeConfig())


def test_min_sources_and_require(work: Path):
    s = merge(work, MergeConfig(min_sources=2))
    assert sorted(_records(work)) == [K1] and s.images_kept == 1 and s.images_total == 3
    merge(work, MergeConfig(require=["vg"]))
    assert sorted(_records(work)) == [K1, "vg_77"]
    merge(work, MergeConfig(sources=["coco"]))
    recs = _records(work)
    assert sorted(recs) == [K1, K2] and recs[K1].sources == ["coco"] and recs[K1].qas == []


def test_require_must_be_merged(work: Path):
    with pytest.raises(ConfigError, match="--require vg"):
        merge(work, MergeConfig(sources=["coco"], require=["vg"]))


def test_partitions_are_stable_and_output_deterministic(work: Path, tmp_path: Path):
    merge(work, MergeConfig(partitions=3))
    parts = merged_parts(work)
    assert [p.name for p in parts] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    first = [hashlib.sha256(p.read_bytes()).hexdigest() for p in parts]
    where = {k: i for i, p in enumerate(parts) for k in pl.read_parquet(p)["image_key"]}
    # the partition of a key never changes between machines or versions (a range of its hash)
    assert where == {K1: 1, K2: 1, "vg_77": 2} == {k: partition_of(k, 3) for k in where}
    merge(work, MergeConfig(partitions=3))
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in merged_parts(work)] == first
    assert not [p for p in (work / "merged").iterdir() if p.name.startswith(".")]
    # fewer partitions: those of the earlier count go, and the summary counts every image once
    s = merge(work, MergeConfig(partitions=2))
    assert [p.name for p in merged_parts(work)] == ["part-00000.parquet", "part-00001.parquet"]
    assert read_summary(work) == s and s.images_total == 3 and s.partitions == 2


def test_a_partition_reads_only_its_hash_range(work: Path):
    """Each partition merges only the rows of its hash range, and together they equal one
    partition over everything."""
    whole = merge(work, MergeConfig(partitions=1))
    one = {m.image_key: m for m in _records(work).values()}
    split = merge(work, MergeConfig(partitions=7))
    assert _records(work) == one
    assert split.model_dump(exclude={"partitions"}) == whole.model_dump(exclude={"partitions"})
    for i, part in enumerate(merged_parts(work)):
        assert all(partition_of(k, 7) == i for k in pl.read_parquet(part)["image_key"])


def test_merge_before_ingest_is_a_clear_error(tmp_path: Path, cli):
    with pytest.raises(MissingStageOutputError):
        merge(tmp_path, MergeConfig())
    r = cli("merge", "--work", tmp_path)
    assert r.returncode == 2
    assert "run `unimm ingest` first" in r.stderr and "Traceback" not in r.stderr


def test_cli_prints_summary(tmp_path: Path, cli):
    fixtures = Path(__file__).parent / "fixtures" / "ingest" / "data"
    work = tmp_path / "work"
    r = cli("ingest", "--data-root", fixtures, "--work", work, "--quiet")
    assert r.returncode == 0, r.stderr
    r = cli("merge", "--work", work, "--min-sources", "2")
    assert r.returncode == 0, r.stderr
    summary = read_summary(work).model_dump()
    assert f"{summary['images_kept']} of {summary['images_total']} images kept" in r.stdout
    assert summary["images_kept"] < summary["images_total"] and "coco+" in r.stdout


# ------------------------------------------------------------------------------------------------
# Property: merge loses and duplicates no annotation, whatever the mix of duplicates.
# ------------------------------------------------------------------------------------------------
_texts = st.sampled_from(["A cat.", "a cat", "A dog", "two birds", "Red.", "red", "a tree "])
_ann_spec = st.tuples(
    st.sampled_from(["coco", "vqav2", "vg"]),
    st.sampled_from([K1, K2, "vg_5"]),
    st.sampled_from(["caption", "qa", "region"]),
    _texts,
    _texts,
    st.sampled_from([[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.5, 0.5]]),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(_ann_spec, min_size=1, max_size=30))
def test_property_no_annotation_lost_or_duplicated(specs, tmp_path_factory):
    work = tmp_path_factory.mktemp("prop")
    by_source: dict[str, list[Annotation]] = {"coco": [], "vqav2": [], "vg": []}
    for i, (src, key, kind, text, ans, box) in enumerate(specs):
        by_source[src].append(
            _ann(
                key,
                src,
                kind,
                f"{src}-{i}",
                text,
                answer=ans if kind == "qa" else None,
                bbox=box if kind == "region" else None,
            )
        )
    for src, anns in by_source.items():
        keys = sorted({a.image_key for a in anns})
        write_ingest(work, src, anns, [_img(k, src) for k in keys])
    summary = merge(work, MergeConfig())
    seen: list[tuple[str, str, str]] = []
    for rec in _records(work).values():
        for kind, items in (("caption", rec.captions), ("qa", rec.qas), ("region", rec.regions)):
            for item in items:
                assert len(item.sources) == len(item.source_ids)
                seen += [(rec.image_key, kind, sid) for sid in item.source_ids]
    expected = [(a.image_key, a.kind, a.source_id) for anns in by_source.values() for a in anns]
    assert sorted(seen) == sorted(expected)  # every annotation exactly once
    assert sum(summary.annotations_in.values()) == len(specs)
