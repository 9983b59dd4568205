"""Visual Dialog (`--sources visdial`) on the real-format excerpt (tests/fixtures/ingest/data/visdial,
see tests/fixtures/ingest/visdial_excerpt.py): ingest, merge with COCO and VQAv2, the prompt, the
template chat, grounding, errors, and a build of the sample through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec
import pytest

from unimm.errors import InputError, MissingFilesError
from unimm.filter import FilterConfig
from unimm.generate import GenerateConfig
from unimm.generate.render import render_record
from unimm.generate.runner import generate_chats
from unimm.generate.template import DESCRIBE_PROMPTS, SHORT_ANSWER
from unimm.grounding import ground_turns
from unimm.ingest import check_inputs, run_ingest
from unimm.ingest.tablefile import read_ingest_table
from unimm.keys import IMAGE_NUMBER, PARTITION_HASH, image_number, partition_hash
from unimm.merge import MergeConfig, merge, merged_parts, read_partition
from unimm.pipeline.layout import Layout
from unimm.schema import Annotation, DialogRound, ImageRef, MergedImage, Turn
from unimm.tables import INGEST_ANNOTATION_SCHEMA, INGEST_IMAGE_SCHEMA

FIXTURES = Path(__file__).parent / "fixtures" / "ingest" / "data"
VISDIAL = FIXTURES / "visdial"
MOPED = "coco_000000391895"  # COCO captions + instances, and a VisDial train dialog
PITCHER = "coco_000000458752"  # VQAv2 questions, and a VisDial train dialog
VAL = "visdial_val_000000185565"
TEST = "visdial_test_000000568676"


def release(split: str) -> dict:
    return json.loads((VISDIAL / f"visdial_1.0_{split}.json").read_text())


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("visdial") / "work"
    run_ingest(FIXTURES, work, ["coco", "vqav2", "visdial"], jobs=1)
    merge(work, MergeConfig())
    return work


@pytest.fixture(scope="module")
def merged(work: Path) -> dict[str, MergedImage]:
    return {m.image_key: m for part in merged_parts(work) for m in read_partition(part)}


def dialogs(work: Path) -> dict[str, Annotation]:
    df = read_ingest_table(Layout(work).ingest_table("visdial"), INGEST_ANNOTATION_SCHEMA)
    assert df.schema == INGEST_ANNOTATION_SCHEMA
    assert df[PARTITION_HASH].to_list() == [partition_hash(k) for k in df["image_key"]]
    assert df[IMAGE_NUMBER].to_list() == [image_number(k) for k in df["image_key"]]
    return {
        a.image_key: a
        for a in (
            Annotation.model_validate(r) for r in df.drop(PARTITION_HASH, IMAGE_NUMBER).iter_rows(named=True)
        )
    }


# --------------------------------------------------------------------------------------------
# ingest
# --------------------------------------------------------------------------------------------
def test_each_dialog_is_one_annotation_with_its_rounds_in_order(work: Path) -> None:
    anns = dialogs(work)
    assert sorted(anns) == sorted([MOPED, PITCHER, "coco_000000522418", VAL, TEST])
    assert {a.kind for a in anns.values()} == {"dialog"}
    for split in ("train", "val"):
        data = release(split)["data"]
        for d in data["dialogs"]:
            key = f"coco_{d['image_id']:012d}" if split == "train" else VAL
            a = anns[key]
            assert (a.split, a.source_id, a.text) == (split, str(d["image_id"]), d["caption"])
            # the human answer, which is the option gt_index names; questions get their "?"
            assert a.rounds == [
                DialogRound(
                    question=data["questions"][r["question"]] + "?",
                    answer=data["answers"][r["answer_options"][r["gt_index"]]],
                )
                for r in d["dialog"]
            ]
    moped = anns[MOPED]
    assert moped.rounds[2] == DialogRound(question="is he wearing a helmet?", answer="yes, a red one")
    assert len(moped.rounds) == 10 and moped.answer is None and moped.answers == []


def test_test_split_keeps_the_withheld_last_round_unanswered(work: Path) -> None:
    test = dialogs(work)[TEST]
    assert test.split == "test" and len(test.rounds) == release("test")["data"]["dialogs"][0]["round_id"]
    assert [r.answer for r in test.rounds] == ["yes", "2", "yes", None]
    assert test.rounds[-1].question == "what color are the horses?"


def test_image_refs_coco_for_train_own_pictures_for_val_and_test(work: Path) -> None:
    df = read_ingest_table(Layout(work).ingest_images("visdial"), INGEST_IMAGE_SCHEMA).drop(PARTITION_HASH)
    refs = [ImageRef.model_validate(r) for r in df.iter_rows(named=True)]
    by_key: dict[str, list[ImageRef]] = {}
    for r in refs:
        by_key.setdefault(r.image_key, []).append(r)
    # the release does not say which COCO 2014 split holds a train picture: both names
    assert [r.file_name for r in by_key[MOPED]] == [
        "coco/train2014/COCO_train2014_000000391895.jpg",
        "coco/val2014/COCO_val2014_000000391895.jpg",
    ]
    assert all(r.coco_id == 391895 and r.split == "train" for r in by_key[MOPED])
    (val,) = by_key[VAL]
    assert val.file_name == "visdial/VisualDialog_val2018/VisualDialog_val2018_000000185565.jpg"
    assert (val.coco_id, val.source_image_id) == (None, "185565")
    (test,) = by_key[TEST]
    assert test.file_name == "visdial/VisualDialog_test2018/VisualDialog_test2018_000000568676.jpg"


def test_test_file_is_optional_and_train_or_val_required(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "visdial").mkdir(parents=True)
    shutil.copy(VISDIAL / "visdial_1.0_test.json", root / "visdial")
    with pytest.raises(MissingFilesError) as e:
        check_inputs(root, ["visdial"])
    assert [p for p, _ in e.value.missing] == [
        "visdial/visdial_1.0_train.json",
        "visdial/visdial_1.0_val.json",
    ]
    assert "https://www.dropbox.com/s/ix8keeudqrd8hn8/visdial_1.0_train.zip?dl=1" in str(e.value)
    shutil.copy(VISDIAL / "visdial_1.0_val.json", root / "visdial")
    check_inputs(root, ["visdial"])  # val alone is enough; test is read when present


# --------------------------------------------------------------------------------------------
# merge
# --------------------------------------------------------------------------------------------
def test_dialog_merges_with_the_images_other_annotations(merged: dict[str, MergedImage], work: Path) -> None:
    moped = merged[MOPED]
    assert moped.sources == ["coco", "visdial"] and moped.kinds == ["caption", "object", "dialog"]
    assert moped.captions[0].text == "A man with a red helmet on a small moped on a dirt road."
    (d,) = moped.dialogs
    assert (d.sources, d.source_ids, d.caption) == (
        ["visdial"],
        ["391895"],
        "a man with a red helmet on a small moped on a dirt road",
    )
    assert [r.question for r in d.rounds][:2] == ["is the photo in color?", "how many people are there?"]
    assert (moped.width, moped.height) == (640, 360)  # COCO's size: VisDial gives none
    pitcher = merged[PITCHER]
    assert pitcher.sources == ["vqav2", "visdial"] and len(pitcher.qas) == 2 and len(pitcher.dialogs) == 1
    assert merged[VAL].sources == ["visdial"] and merged[VAL].captions == []
    summary = json.loads(next(Layout(work).merged_dir.glob("summary-*.json")).read_text())
    assert summary["annotations_in"]["dialog"] == summary["items_out"]["dialog"] == 5
    assert summary["duplicates_collapsed"]["dialog"] == 0


# --------------------------------------------------------------------------------------------
# generation: the prompt and the template chat
# --------------------------------------------------------------------------------------------
def test_prompt_renders_the_conversation_in_order(merged: dict[str, MergedImage]) -> None:
    text = render_record(merged[MOPED], None).text
    section = text.split("Conversations in which one person asked about the image", 1)[1]
    assert "- Caption shown to the asker: a man with a red helmet on a small moped on a dirt road" in section
    lines = [line.strip() for line in section.splitlines() if line.strip().startswith("Q: ")]
    assert lines[:3] == [
        "Q: is the photo in color? A: yes",
        "Q: how many people are there? A: 1",
        "Q: is he wearing a helmet? A: yes, a red one",
    ]
    assert len(lines) == 10
    # the withheld round of a test dialog says nothing
    test = render_record(merged[TEST], None).text
    assert "what color are the horses" not in test and "Q: are the people adults? A: yes" in test


def test_budget_cuts_dialogs_before_qas_and_captions(merged: dict[str, MergedImage]) -> None:
    pitcher = merged[PITCHER]
    full = render_record(pitcher, None)
    cut = render_record(pitcher, full.tokens - 20)
    assert cut.dropped["dialogs"] == 1 and cut.dropped["qas"] == 0
    assert "Conversations" not in cut.text and "What position is this man playing?" in cut.text


def test_template_makes_the_dialog_a_ready_chat(merged: dict[str, MergedImage], tmp_path: Path) -> None:
    records = [merged[k] for k in (MOPED, PITCHER, TEST)]
    chats = {
        c.image_key: c for c in generate_chats(records, GenerateConfig(backend="template"), tmp_path).chats
    }
    moped = chats[MOPED]
    pairs = [(moped.turns[i].content, moped.turns[i + 1].content) for i in range(0, len(moped.turns), 2)]
    assert pairs[0][0] in DESCRIBE_PROMPTS and pairs[0][1] in [c.text for c in merged[MOPED].captions]
    assert pairs[1:4] == [
        ("Is the photo in color?", "Yes"),
        ("How many people are there?", "1"),
        ("Is he wearing a helmet?", "Yes, a red one"),
    ]
    assert len(pairs) == 11 and moped.sources == ["coco", "visdial"]
    # dialog rounds come before the VQA short-answer turns
    pitcher = chats[PITCHER]
    users = [t.content for t in pitcher.turns if t.role == "user"]
    assert users[1] == "Is this a professional game?" and users[11:] == [
        f"What is this photo taken looking through?\n{SHORT_ANSWER}",
        f"What position is this man playing?\n{SHORT_ANSWER}",
    ]
    # no caption but the dialog's: it describes the picture; the withheld round is left out
    test = chats[TEST]
    assert test.turns[1].content == "Two people riding horses on a beach"
    assert [t.content for t in test.turns[2:]] == [
        "Is the photo in color?",
        "Yes",
        "How many horses are there?",
        "2",
        "Are the people adults?",
        "Yes",
    ]
    assert test.image_file == "visdial/VisualDialog_test2018/VisualDialog_test2018_000000568676.jpg"


def test_template_turn_cap_keeps_the_first_rounds(merged: dict[str, MergedImage], tmp_path: Path) -> None:
    res = generate_chats(
        [merged[PITCHER]], GenerateConfig(backend="template", template_max_turns=4), tmp_path
    )
    users = [t.content for t in res.chats[0].turns if t.role == "user"]
    assert users[1:] == [
        "Is this a professional game?",
        "How many players can you see?",
        "What color is his uniform?",
    ]


# --------------------------------------------------------------------------------------------
# grounding: dialog answers are human evidence about the image
# --------------------------------------------------------------------------------------------
def ground(merged: dict[str, MergedImage], key: str, question: str, answer: str):
    turns = [Turn(role="user", content=question), Turn(role="assistant", content=answer)]
    return ground_turns(turns, merged[key], FilterConfig(min_grounding=0.0))


def test_dialog_no_makes_an_object_absent(merged: dict[str, MergedImage]) -> None:
    # "is there a mouse?" - "no": on VisDial's own picture nothing else could say so
    wrong = [
        Turn(role="user", content="Is there a mouse?"),
        Turn(role="assistant", content="Yes, next to the laptop."),
    ]
    out = ground_turns(wrong, merged[VAL], FilterConfig(min_grounding=0.0))
    # the rule check and the restated question both contradict it
    assert out.reasons == ["existence_mismatch:mouse:yes!=no", "grounding_contradiction:yesno"]
    assert ground(merged, VAL, "Is there a mouse?", "No, there is no mouse.").reasons == []
    without = msgspec.structs.replace(merged[VAL], dialogs=[])
    assert ground_turns(wrong, without, FilterConfig(min_grounding=0.0)).report.checks == 0


def test_dialog_answers_support_objects_counts_and_colours(merged: dict[str, MergedImage]) -> None:
    # the laptop picture has no annotation besides its dialog (caption + rounds)
    out = ground(merged, VAL, "What is on the desk?", "A cat is sleeping on an open laptop.")
    assert out.reasons == [] and "object" in out.report.turns[0].checks
    out = ground(merged, VAL, "How many cats are there?", "There are three cats.")
    assert out.reasons == ["count_mismatch:cat:3!=1"]
    out = ground(merged, MOPED, "What color is the moped?", "The moped is red.")
    assert "attribute_mismatch:motorcycle:red" in out.reasons


def test_restated_dialog_question_is_checked_against_its_answer(merged: dict[str, MergedImage]) -> None:
    out = ground(merged, MOPED, "Is he wearing a helmet?", "No, his head is bare.")
    assert out.reasons == ["grounding_contradiction:yesno"] and out.report.turns[0].checks == ["qa"]
    assert ground(merged, MOPED, "Is he wearing a helmet?", "Yes, a red one.").report.score == 1.0
    # "is it sunny?" - "i can't tell": no evidence either way
    out = ground(merged, MOPED, "Is it sunny?", "Yes, it is a sunny day.")
    assert out.report.checks == 0


# --------------------------------------------------------------------------------------------
# errors: file, record and field named, exit status 2, nothing written
# --------------------------------------------------------------------------------------------
@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "visdial").mkdir(parents=True)
    for split in ("train", "val", "test"):
        shutil.copy(VISDIAL / f"visdial_1.0_{split}.json", root / "visdial")
    return root


def edit(path: Path, fn) -> None:
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def _set_round(split: str, i: int, j: int, key: str, value) -> tuple[str, object]:
    def fn(doc: dict) -> None:
        doc["data"]["dialogs"][i]["dialog"][j][key] = value

    return split, fn


def _pop_round(split: str, i: int, j: int, key: str) -> tuple[str, object]:
    return split, lambda doc: doc["data"]["dialogs"][i]["dialog"][j].pop(key)


@pytest.mark.parametrize(
    ("change", "record", "field", "message"),
    [
        (
            _set_round("train", 1, 3, "question", 29),
            "data.dialogs[1].dialog[3]",
            "question",
            "index 29 is outside data.questions (29) (image_id 522418)",
        ),
        (
            _set_round("val", 0, 0, "question", -1),
            "data.dialogs[0].dialog[0]",
            "question",
            "index -1 is outside data.questions",
        ),
        (
            _set_round("train", 2, 9, "answer", 9999),
            "data.dialogs[2].dialog[9]",
            "answer",
            "index 9999 is outside data.answers (115) (image_id 458752)",
        ),
        (
            _pop_round("train", 0, 9, "answer"),
            "data.dialogs[0].dialog[9]",
            "answer",
            "the round has no answer",
        ),
        (
            _pop_round("test", 0, 1, "answer"),
            "data.dialogs[0].dialog[1]",
            "answer",
            "only the last round of a test dialog",
        ),
        (
            _set_round("train", 0, 4, "answer", "no"),
            "data.dialogs[0].dialog[4]",
            "answer",
            "Expected `int`, got `str`",
        ),
        (
            _pop_round("val", 0, 2, "question"),
            "data.dialogs[0].dialog[2]",
            "question",
            "missing required field",
        ),
        (
            ("train", lambda d: d["data"]["dialogs"][1].pop("caption")),
            "data.dialogs[1]",
            "caption",
            "missing required field",
        ),
        (
            ("val", lambda d: d["data"]["dialogs"][0].__setitem__("dialog", [])),
            "data.dialogs[0]",
            "dialog",
            "the dialog of image_id 185565 has no rounds",
        ),
        (
            ("train", lambda d: d["data"]["dialogs"][2].__setitem__("image_id", 391895)),
            "data.dialogs[2]",
            "image_id",
            "image_id 391895 has a second dialog",
        ),
        (("train", lambda d: d["data"].pop("answers")), "data", "answers", "missing required field"),
        (
            ("val", lambda d: d.__setitem__("split", "test")),
            None,
            "split",
            "the 'val' file holds split 'test'",
        ),
    ],
)
def test_bad_records_name_file_record_and_field(
    data: Path, tmp_path: Path, change, record, field, message
) -> None:
    split, fn = change
    f = data / "visdial" / f"visdial_1.0_{split}.json"
    edit(f, fn)
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["visdial"], jobs=1)
    assert (e.value.file, e.value.record, e.value.field) == (str(f), record, field)
    assert message in e.value.message and "\n" not in str(e.value)
    assert not (tmp_path / "work" / "ingest").exists() or not any((tmp_path / "work" / "ingest").iterdir())


def test_cli_bad_file_exits_2_and_writes_nothing(data: Path, tmp_path: Path, cli) -> None:
    f = data / "visdial" / "visdial_1.0_train.json"
    f.write_text(f.read_text()[:-100])
    work = tmp_path / "work"
    r = cli("ingest", "--data-root", data, "--work", work, "--sources", "visdial", "--quiet")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert str(f) in r.stderr and "invalid JSON" in r.stderr
    assert not (work / "ingest").exists() or not any((work / "ingest").iterdir())


# --------------------------------------------------------------------------------------------
# the sample, built through the CLI
# --------------------------------------------------------------------------------------------
def test_sample_builds_with_coco_vqav2_visdial(tmp_path: Path, cli) -> None:
    data, work, out = tmp_path / "data", tmp_path / "work", tmp_path / "shards"
    assert cli("sample", "--out", data).returncode == 0
    # short answers ("2", "no") are what VQA and VisDial answer: kept, as the LLaVA-style
    # template pipeline keeps them (pipelines/llava_reformat.yaml)
    r = cli(
        "build", "--sources", "coco,vqav2,visdial", "--data-root", data, "--work", work, "--out", out,
        "--llm", "template", "--set", "filter.min_turn_chars=1", "--no-progress",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert cli("verify", out).returncode == 0
    from unimm.export.samples import iter_shard_chats

    chats = [chat for chat, _ in iter_shard_chats(out)]
    train = [c for c in chats if c.sources == ["coco", "vqav2", "visdial"]]
    own = [c for c in chats if c.image_key.startswith(("visdial_val_", "visdial_test_"))]
    assert train and len(own) == 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts_by_source"]["visdial"] == len(train) + len(own)
    assert (
        manifest["steps"]["ingest"]["extra"]["dialog"]
        == len(json.loads((data / "visdial" / "visdial_1.0_train.json").read_text())["data"]["dialogs"]) + 2
    )
    # a chat of a train picture holds its dialog's rounds in order, right after the describe
    # turn (dedup drops a round whose question nearly repeats an earlier one)
    merged = {m.image_key: m for part in merged_parts(work) for m in read_partition(part)}
    for chat in train:
        questions = [r.question for d in merged[chat.image_key].dialogs for r in d.rounds if r.answer]
        users = [t.content.removeprefix("<image>\n").lower() for t in chat.turns if t.role == "user"]
        asked = [u for u in users[1:] if u in questions]
        assert asked == users[1 : 1 + len(asked)] == [q for q in questions if q in asked]
        assert len(asked) >= len(questions) // 2
    for chat in own:
        assert chat.image_file and (data / chat.image_file).is_file()
