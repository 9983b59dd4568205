"""Property: official files -> real ingesters -> merge loses and duplicates no annotation.

Hypothesis writes random COCO caption files (2014 and 2017 releases sharing ids, as the real ones
do), VQAv2 question/annotation pairs and Visual Genome regions with coco_id links, in the official
layouts; every annotation id must come out of the merge exactly once, on the right image key.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unimm.ingest import run_ingest
from unimm.keys import coco_key, vg_key
from unimm.merge import MergeConfig, merge, merged_parts

TEXTS = ["A cat.", "a cat", "A dog on a sofa ", "two birds", "Red.", "A cat."]
COCO_IDS = [9, 25, 391895]


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _coco_files(root: Path, captions: list[tuple[int, str]], both_releases: bool) -> None:
    images = [
        {"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "width": 640, "height": 480, "license": 1}
        for i in COCO_IDS
    ]
    anns = [{"id": 1000 + n, "image_id": img, "caption": text} for n, (img, text) in enumerate(captions)]
    head = {"info": {"year": 2014}, "licenses": [{"id": 1, "name": "x", "url": ""}]}
    _write(root / "coco/annotations/captions_train2014.json", {**head, "images": images, "annotations": anns})
    if both_releases:  # the 2017 release repeats the same annotations with new file names
        images17 = [{**im, "file_name": f"{im['id']:012d}.jpg"} for im in images]
        _write(
            root / "coco/annotations/captions_train2017.json",
            {**head, "images": images17, "annotations": anns},
        )


def _vqa_files(root: Path, qas: list[tuple[int, str, str]]) -> None:
    qs, ans = [], []
    for n, (img, q, a) in enumerate(qas):
        qid = img * 1000 + n
        qs.append({"image_id": img, "question": q, "question_id": qid})
        ans.append(
            {
                "question_type": "what",
                "multiple_choice_answer": a,
                "image_id": img,
                "answer_type": "other",
                "question_id": qid,
                "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1} for k in range(10)],
            }
        )
    _write(
        root / "vqav2/v2_OpenEnded_mscoco_train2014_questions.json",
        {
            "info": {},
            "task_type": "Open-Ended",
            "data_type": "mscoco",
            "license": {},
            "data_subtype": "train2014",
            "questions": qs,
        },
    )
    _write(
        root / "vqav2/v2_mscoco_train2014_annotations.json",
        {"info": {}, "license": {}, "data_subtype": "train2014", "annotations": ans},
    )


def _vg_files(root: Path, regions: list[tuple[int, str]]) -> None:
    # VG ids 1..3; 1 and 2 are COCO pictures, 3 is VG-only
    coco_of = {1: 9, 2: 391895, 3: None}
    _write(
        root / "vg/image_data.json",
        [
            {
                "image_id": v,
                "url": f"https://cs.stanford.edu/people/rak248/VG_100K/{v}.jpg",
                "width": 800,
                "height": 600,
                "coco_id": c,
                "flickr_id": None,
            }
            for v, c in coco_of.items()
        ],
    )
    per: dict[int, list] = {v: [] for v in coco_of}
    for n, (v, text) in enumerate(regions):
        per[v].append(
            {
                "region_id": 5000 + n,
                "image_id": v,
                "phrase": text,
                "x": 10,
                "y": 20,
                "width": 100,
                "height": 50,
            }
        )
    _write(root / "vg/region_descriptions.json", [{"id": v, "regions": rs} for v, rs in per.items()])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    captions=st.lists(st.tuples(st.sampled_from(COCO_IDS), st.sampled_from(TEXTS)), min_size=1, max_size=12),
    qas=st.lists(
        st.tuples(st.sampled_from(COCO_IDS), st.sampled_from(TEXTS), st.sampled_from(["red", "2"])),
        min_size=1,
        max_size=8,
    ),
    regions=st.lists(st.tuples(st.sampled_from([1, 2, 3]), st.sampled_from(TEXTS)), min_size=1, max_size=12),
    both_releases=st.booleans(),
)
def test_ingest_then_merge_keeps_every_annotation_once(
    captions, qas, regions, both_releases, tmp_path_factory
):
    root = tmp_path_factory.mktemp("data")
    work = tmp_path_factory.mktemp("work")
    _coco_files(root, captions, both_releases)
    _vqa_files(root, qas)
    _vg_files(root, regions)
    run_ingest(root, work, ["coco", "vqav2", "vg"], jobs=1)
    merge(work, MergeConfig())

    expected = sorted(
        [(coco_key(img), "caption", str(1000 + n)) for n, (img, _) in enumerate(captions)]
        + [(coco_key(img), "qa", str(img * 1000 + n)) for n, (img, _, _) in enumerate(qas)]
        + [
            (vg_key(v, {1: 9, 2: 391895, 3: None}[v]), "region", str(5000 + n))
            for n, (v, _) in enumerate(regions)
        ]
    )
    seen = []
    for part in merged_parts(work):
        df = pl.read_parquet(part)
        for col, kind in (("captions", "caption"), ("qas", "qa"), ("regions", "region")):
            items = df.select("image_key", pl.col(col)).explode(col).drop_nulls(col)
            for key, item in items.iter_rows():
                seen += [(key, kind, sid) for sid in item["source_ids"]]
    assert sorted(seen) == expected
