"""Decontamination: evaluation images and question overlap, for each official file shape."""

from __future__ import annotations

import json

import pytest

from tests.test_filter import make_chat
from unimm.decontam import DecontamConfig, EvalFile, decontaminate, load_eval_file
from unimm.errors import InputError

LONG_Q = "What is the name of the famous building shown behind the people in this photo?"


def chats():
    return [
        make_chat("coco_000000000001", [("What is on the table?", "A vase.")]),
        make_chat("coco_000000000002", [("What is on the table?", "A cup.")]),
        make_chat("coco_000000000003", [(f"Tell me: {LONG_Q.lower()}", "The Eiffel Tower.")]),
        make_chat("coco_000000000004", [("How many dogs are there?", "Two.")]),
        make_chat("vg_7", [("What is the weather like?", "Sunny.")]),
    ]


def run(tmp_path, name, content, **kw):
    p = tmp_path / name
    p.write_text(content if isinstance(content, str) else json.dumps(content))
    return decontaminate(chats(), {}, DecontamConfig(eval_files=[EvalFile(path=p, **kw)]))


def test_image_list(tmp_path):
    res = run(tmp_path, "eval_ids.txt", "# eval images\n2\n\nvg_7\nCOCO_val2014_000000000001.jpg\n")
    assert sorted(r.id for r in res.rejects) == ["coco_000000000001", "coco_000000000002", "vg_7"]
    assert all(r.reasons == ["eval_image:eval_ids.txt"] and r.stage == "decontaminate" for r in res.rejects)
    assert res.report.files[0].kind == "image_list" and res.report.files[0].images == 3
    assert res.report.by_reason == {"eval_image": 3}
    assert len(res.kept) + len(res.rejects) == 5


def test_vqav2_question_file_images_and_ngram_overlap(tmp_path):
    data = {
        "info": {},
        "license": {},
        "data_subtype": "val2014",
        "questions": [
            {"image_id": 4, "question": "Is this a dog?", "question_id": 40},
            {"image_id": 99, "question": LONG_Q, "question_id": 990},
        ],
    }
    res = run(tmp_path, "v2_OpenEnded_mscoco_val2014_questions.json", data)
    got = {r.id: r.reasons for r in res.rejects}
    assert got == {
        "coco_000000000004": ["eval_image:v2_OpenEnded_mscoco_val2014_questions.json"],
        "coco_000000000003": ["eval_question:v2_OpenEnded_mscoco_val2014_questions.json"],
    }
    rep = res.report.files[0]
    assert (rep.kind, rep.images, rep.questions, rep.dropped_image, rep.dropped_question) == (
        "vqa",
        2,
        2,
        1,
        1,
    )


def test_okvqa_short_question_matches_whole(tmp_path):
    data = {"questions": [{"image_id": 500, "question": "What is on the table?", "question_id": 5000}]}
    res = run(tmp_path, "OpenEnded_mscoco_val2014_questions.json", data, drop_images=False)
    assert sorted(r.id for r in res.rejects) == ["coco_000000000001", "coco_000000000002"]
    assert res.report.by_reason == {"eval_question": 2}


def test_aokvqa_list(tmp_path):
    data = [
        {
            "split": "val",
            "image_id": 3,
            "question_id": "x",
            "question": "Why is the man smiling?",
            "choices": ["a", "b"],
            "correct_choice_idx": 0,
        }
    ]
    res = run(tmp_path, "aokvqa_v1p0_val.json", data)
    assert [(r.id, r.reasons) for r in res.rejects] == [
        ("coco_000000000003", ["eval_image:aokvqa_v1p0_val.json"])
    ]
    assert res.report.files[0].kind == "aokvqa"


def test_karpathy_test_split_only(tmp_path):
    data = {
        "dataset": "coco",
        "images": [
            {"split": "test", "cocoid": 1, "filename": "COCO_val2014_000000000001.jpg", "sentences": []},
            {"split": "train", "cocoid": 2, "filename": "COCO_train2014_000000000002.jpg", "sentences": []},
            {"split": "restval", "cocoid": 4, "filename": "COCO_val2014_000000000004.jpg", "sentences": []},
        ],
    }
    res = run(tmp_path, "dataset_coco.json", data)
    assert [r.id for r in res.rejects] == ["coco_000000000001"]
    assert res.report.files[0].kind == "karpathy"


def test_vg_image_with_coco_id_uses_merged(tmp_path):
    p = tmp_path / "ids.txt"
    p.write_text("777\n")
    res = decontaminate(chats(), {"vg_7": 777}, DecontamConfig(eval_files=[EvalFile(path=p)]))
    assert [r.id for r in res.rejects] == ["vg_7"]


def test_bad_eval_files_name_file_record_field(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"questions": [{"question": "x?"}]}))
    with pytest.raises(InputError, match=r"bad.json: record 0: field 'image_id'"):
        load_eval_file(EvalFile(path=bad))
    ids = tmp_path / "ids.txt"
    ids.write_text("12\nnot an id\n")
    with pytest.raises(InputError, match="record 2"):
        load_eval_file(EvalFile(path=ids))
    with pytest.raises(InputError, match="not found"):
        load_eval_file(EvalFile(path=tmp_path / "missing.json"))


def test_eval_files_decode_as_the_ingesters_read_them(tmp_path):
    """The ingesters' decoders: a wrongly typed id or a missing field names the item and field."""
    vqa = tmp_path / "q.json"
    vqa.write_text(
        json.dumps({"questions": [{"image_id": 1, "question": "a?"}, {"image_id": "x", "question": "b?"}]})
    )
    with pytest.raises(InputError, match=r"q.json: record 1: field 'image_id'"):
        load_eval_file(EvalFile(path=vqa))
    karpathy = tmp_path / "dataset_coco.json"
    karpathy.write_text(json.dumps({"images": [{"split": "train"}, {"split": "test"}]}))
    with pytest.raises(InputError, match=r"record 1: field 'cocoid'"):
        load_eval_file(EvalFile(path=karpathy))
    aok = tmp_path / "aokvqa_v1p0_test.json"  # the unlabelled test split: no choices, no answers
    aok.write_text(json.dumps([{"split": "test", "image_id": 7, "question_id": "q", "question": "Why?"}]))
    got = load_eval_file(EvalFile(path=aok))
    assert (got.kind, got.image_keys, got.questions) == ("aokvqa", {"coco_000000000007"}, ["Why?"])
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(InputError, match="invalid JSON"):
        load_eval_file(EvalFile(path=tmp_path / "bad.json", kind="vqa"))
