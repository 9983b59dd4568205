"""Bad and missing input: one clear error naming file, record and field; nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from unimm.errors import InputError, MissingFilesError
from unimm.ingest import check_inputs, run_ingest, vg
from unimm.ingest.inputs import missing_files, present_sources
from unimm.ingest.jsonio import split_path
from unimm.pipeline.layout import Layout
from unimm.sources import SOURCE_SPECS

FIXTURES = Path(__file__).parent / "fixtures" / "ingest" / "data"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A writable copy of the fixture data root."""
    root = tmp_path / "data"
    shutil.copytree(FIXTURES, root)
    return root


def edit(path: Path, fn) -> None:
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def leftovers(work: Path) -> list[str]:
    folder = work / "ingest"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_bad_json_names_file_and_position(data: Path, tmp_path: Path) -> None:
    f = data / "coco" / "annotations" / "captions_train2014.json"
    text = f.read_text()
    assert '"id": 771687,' in text
    f.write_text(text.replace('"id": 771687,', '"id": 771687,,'))
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["coco"], jobs=1)
    assert e.value.file == str(f)
    line = text[: text.index('"id": 771687,')].count("\n") + 1
    assert "invalid JSON" in str(e.value) and f"line {line}," in str(e.value)
    assert leftovers(tmp_path / "work") == []


def test_truncated_json(data: Path, tmp_path: Path) -> None:
    f = data / "aokvqa" / "aokvqa_v1p0_train.json"
    f.write_text(f.read_text()[:-40])
    with pytest.raises(InputError, match="invalid JSON.*truncated") as e:
        run_ingest(data, tmp_path / "work", ["aokvqa"], jobs=1)
    assert e.value.file == str(f)


def test_missing_required_field(data: Path, tmp_path: Path) -> None:
    f = data / "vqav2" / "v2_mscoco_train2014_annotations.json"
    edit(f, lambda d: d["annotations"][1].pop("image_id"))
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["vqav2"], jobs=1)
    assert (e.value.file, e.value.record, e.value.field) == (str(f), "annotations[1]", "image_id")
    assert "\n" not in str(e.value)


def test_wrong_type(data: Path, tmp_path: Path) -> None:
    f = data / "coco" / "annotations" / "captions_train2017.json"
    edit(f, lambda d: d["annotations"][2].__setitem__("caption", 12))
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["coco"], jobs=1)
    assert (e.value.record, e.value.field) == ("annotations[2]", "caption")
    assert "Expected `str`, got `int`" in e.value.message


def test_wrong_type_nested_in_vg_list(data: Path, tmp_path: Path) -> None:
    f = data / "vg" / "region_descriptions.json"
    edit(f, lambda d: d[0]["regions"][1].__setitem__("x", "left"))
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["vg"], jobs=1)
    assert (e.value.record, e.value.field) == ("[0].regions[1]", "x")


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda d: d[-1]["regions"][0].pop("phrase"), ("regions[0]", "phrase")),
        (lambda d: d[-1].pop("id"), (None, "id")),
    ],
)
def test_errors_of_vg_items_decoded_one_chunk_at_a_time(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change, where
) -> None:
    """The regions file is decoded a chunk of items at a time (jsonio.decode_array): errors still
    name the item's index in the whole file."""
    monkeypatch.setattr(vg, "CHUNK_IMAGES", 2)
    f = data / "vg" / "region_descriptions.json"
    last = len(json.loads(f.read_text())) - 1
    edit(f, change)
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["vg"], jobs=1)
    sub, field = where
    assert (e.value.file, e.value.record, e.value.field) == (
        str(f),
        f"[{last}]" + (f".{sub}" if sub else ""),
        field,
    )
    # the regions are a unit of their own (SourceSpec.parts): it published nothing
    assert not (tmp_path / "work" / "ingest" / "vg.regions.parquet").exists()


def test_vg_regions_file_cut_short(data: Path, tmp_path: Path) -> None:
    f = data / "vg" / "region_descriptions.json"
    f.write_bytes(f.read_bytes().rstrip()[:-2])  # cut off the end of the last item
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["vg"], jobs=1)
    assert e.value.file == str(f) and "invalid JSON" in e.value.message


def test_bad_answer_confidence_is_rejected(data: Path, tmp_path: Path) -> None:
    f = data / "okvqa" / "mscoco_val2014_annotations.json"
    edit(f, lambda d: d["annotations"][1]["answers"][4].__setitem__("answer_confidence", "sure"))
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["okvqa"], jobs=1)
    assert (e.value.record, e.value.field) == ("annotations[1].answers[4]", "answer_confidence")


def test_questions_and_annotations_from_different_splits(data: Path, tmp_path: Path) -> None:
    q = data / "vqav2" / "v2_OpenEnded_mscoco_train2014_questions.json"
    a = data / "vqav2" / "v2_mscoco_train2014_annotations.json"
    edit(a, lambda d: d.__setitem__("data_subtype", "val2014"))
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["vqav2"], jobs=1)
    msg = str(e.value)
    assert str(q) in msg and str(a) in msg and e.value.field == "data_subtype"
    assert "'val2014'" in msg and "'train2014'" in msg


def test_question_without_annotation(data: Path, tmp_path: Path) -> None:
    q = data / "vqav2" / "v2_OpenEnded_mscoco_train2014_questions.json"
    edit(
        data / "vqav2" / "v2_mscoco_train2014_annotations.json", lambda d: d["annotations"].pop(2)
    )  # qid 458752001
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["vqav2"], jobs=1)
    assert (e.value.file, e.value.record, e.value.field) == (str(q), "questions[1]", "question_id")


def test_annotation_without_question(data: Path, tmp_path: Path) -> None:
    a = data / "okvqa" / "mscoco_val2014_annotations.json"
    edit(data / "okvqa" / "OpenEnded_mscoco_val2014_questions.json", lambda d: d["questions"].pop(0))
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["okvqa"], jobs=1)
    assert (e.value.file, e.value.record) == (str(a), "annotations[0]")


def test_coco_box_on_unknown_image(data: Path, tmp_path: Path) -> None:
    f = data / "coco" / "annotations" / "instances_train2017.json"
    edit(f, lambda d: d["annotations"][1].__setitem__("image_id", 42))
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["coco"], jobs=1)
    assert (e.value.record, e.value.field) == ("annotations[1]", "image_id")


def test_vg_region_of_unknown_image(data: Path, tmp_path: Path) -> None:
    edit(data / "vg" / "region_descriptions.json", lambda d: d[1].__setitem__("id", 77))
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["vg"], jobs=1)
    assert (e.value.record, e.value.field) == ("[1]", "id") and "77" in e.value.message


def test_vg_attributes_wrong_type(data: Path, tmp_path: Path) -> None:
    f = data / "vg" / "attributes.json"
    edit(f, lambda d: d[0]["attributes"][1].__setitem__("attributes", "black"))
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["vg"], jobs=1)
    assert (e.value.file, e.value.record, e.value.field) == (str(f), "[0].attributes[1]", "attributes")
    assert "Expected `array" in e.value.message


def test_vg_attributes_object_of_unknown_image(data: Path, tmp_path: Path) -> None:
    f = data / "vg" / "attributes.json"
    edit(f, lambda d: d[1].__setitem__("image_id", 77))
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["vg"], jobs=1)
    assert (e.value.file, e.value.record, e.value.field) == (str(f), "[1]", "image_id")
    assert "77" in e.value.message


def test_vg_attributes_only_object_needs_a_name(data: Path, tmp_path: Path) -> None:
    f = data / "vg" / "attributes.json"
    edit(f, lambda d: d[0]["attributes"][1].__setitem__("names", []))  # object 1058507: not in objects.json
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["vg"], jobs=1)
    assert (e.value.file, e.value.record, e.value.field) == (str(f), "[0].attributes[1]", "names")
    # an object objects.json names needs no name in attributes.json: it only adds attributes
    edit(f, lambda d: d[0]["attributes"][1].__setitem__("names", ["sign"]))
    edit(f, lambda d: d[0]["attributes"][0].__setitem__("names", []))
    (r,) = run_ingest(data, tmp_path / "work", ["vg"], jobs=1)
    assert r.annotations["object"] == 3


def test_coco_iscrowd_out_of_range(data: Path, tmp_path: Path) -> None:
    f = data / "coco" / "annotations" / "instances_train2017.json"
    edit(f, lambda d: d["annotations"][1].__setitem__("iscrowd", 2))
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["coco"], jobs=1)
    assert (e.value.file, e.value.record, e.value.field) == (str(f), "annotations[1]", "iscrowd")


def test_aokvqa_choice_index_out_of_range(data: Path, tmp_path: Path) -> None:
    edit(data / "aokvqa" / "aokvqa_v1p0_train.json", lambda d: d[1].__setitem__("correct_choice_idx", 4))
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["aokvqa"], jobs=1)
    assert (e.value.record, e.value.field) == ("[1]", "correct_choice_idx")


def test_failure_leaves_previous_outputs_and_no_partial_files(data: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    run_ingest(data, work, ["vg"], jobs=1)
    before = Layout(work).ingest_table("vg").read_bytes()
    edit(
        data / "vqav2" / "v2_mscoco_train2014_annotations.json", lambda d: d["annotations"][0].pop("answers")
    )
    with pytest.raises(InputError):
        run_ingest(data, work, ["coco", "vqav2", "vg"], jobs=1)
    # each unit's tables appear whole or not at all: coco (read before vqav2 failed) is
    # published and cached, vqav2 left nothing, vg (and its parts) keep their previous tables
    assert leftovers(work) == [
        "coco.images.parquet", "coco.json", "coco.parquet", "vg.images.parquet", "vg.json",
        "vg.objects.json", "vg.objects.parquet", "vg.parquet", "vg.regions.json", "vg.regions.parquet",
    ]  # fmt: skip
    assert Layout(work).ingest_table("vg").read_bytes() == before


def test_missing_half_of_a_pair_lists_file_and_url(data: Path) -> None:
    (data / "okvqa" / "mscoco_val2014_annotations.json").unlink()
    with pytest.raises(MissingFilesError) as e:
        check_inputs(data, ["okvqa", "vg"])
    assert e.value.missing == [
        (
            "okvqa/mscoco_val2014_annotations.json",
            "https://okvqa.allenai.org/static/data/mscoco_val2014_annotations.json.zip",
        )
    ]


def test_source_with_no_files_lists_all_and_reads_nothing(data: Path, tmp_path: Path) -> None:
    shutil.rmtree(data / "vqav2")
    shutil.rmtree(data / "vg")
    with pytest.raises(MissingFilesError) as e:
        run_ingest(data, tmp_path / "work", ["coco", "vqav2", "vg"], jobs=1)
    paths = [p for p, _ in e.value.missing]
    assert "vqav2/v2_OpenEnded_mscoco_train2014_questions.json" in paths
    assert "vqav2/v2_mscoco_val2014_annotations.json" in paths
    assert "vg/image_data.json" in paths and "vg/region_descriptions.json" in paths
    assert "vg/attributes.json" not in paths  # optional: read when present, never asked for
    assert "https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa/v2_Annotations_Val_mscoco.zip" in str(e.value)
    assert leftovers(tmp_path / "work") == []


@pytest.mark.parametrize("source", list(SOURCE_SPECS))
def test_every_source_absent_names_the_files_it_needs(source: str, tmp_path: Path) -> None:
    """Each catalogued source has its rule: with nothing under the data root, it asks for its
    own required files (never an optional one), each with the archive it comes from."""
    missing = missing_files(source, tmp_path)
    required = {(f.path, f.archive_url) for f in SOURCE_SPECS[source].files() if not f.optional}
    assert missing and set(missing) <= required
    assert present_sources(tmp_path) == []


def test_vg_needs_image_data(data: Path) -> None:
    (data / "vg" / "image_data.json").unlink()
    with pytest.raises(MissingFilesError) as e:
        check_inputs(data, ["vg"])
    assert [p for p, _ in e.value.missing] == ["vg/image_data.json"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".annotations[12].image_id", ("annotations[12]", "image_id")),
        (".annotations[3]", ("annotations[3]", None)),
        ("[3].regions[0].phrase", ("[3].regions[0]", "phrase")),
        (".data_subtype", (None, "data_subtype")),
        ("", (None, None)),
    ],
)
def test_msgspec_paths_become_record_and_field(path: str, expected: tuple) -> None:
    assert split_path(path) == expected


def test_cli_bad_input_exit_2_one_line(cli, data: Path, tmp_path: Path) -> None:
    edit(
        data / "vqav2" / "v2_mscoco_train2014_annotations.json", lambda d: d["annotations"][1].pop("image_id")
    )
    proc = cli("ingest", "--data-root", data, "--work", tmp_path / "work", "--sources", "vqav2", "--quiet")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "annotations[1]" in lines[0] and "image_id" in lines[0]
    assert leftovers(tmp_path / "work") == []


@pytest.mark.slow  # a fresh `python -m unimm` takes seconds to import every stage
def test_cli_missing_files_exit_2(cli, tmp_path: Path) -> None:
    (tmp_path / "data" / "aokvqa").mkdir(parents=True)
    proc = cli("ingest", "--data-root", tmp_path / "data", "--work", tmp_path / "work", "--quiet")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and "aokvqa/aokvqa_v1p0_train.json" in lines[0] and "aokvqa_v1p0.tar.gz" in lines[0]
    )


@pytest.mark.slow
def test_cli_no_source_folder_exit_2(cli, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    proc = cli("ingest", "--data-root", tmp_path / "data", "--work", tmp_path / "work")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_error_in_worker_process_comes_back_intact(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unimm.pipeline.steps import ingest

    monkeypatch.setattr(ingest, "PROCESS_MIN_BYTES", 0)  # force worker processes on tiny inputs
    edit(data / "vg" / "objects.json", lambda d: d[1]["objects"][0].pop("object_id"))
    with pytest.raises(InputError) as e:
        run_ingest(data, tmp_path / "work", ["coco", "vg"], jobs=2)
    assert (e.value.file, e.value.record, e.value.field) == (
        str(data / "vg" / "objects.json"),
        "[1].objects[0]",
        "object_id",
    )
    # the other units (processes of their own) may have finished and been published; the unit
    # that failed, VG's objects, left nothing behind, nor did any unit leave a partial file
    names = leftovers(tmp_path / "work")
    assert not [n for n in names if n.startswith("vg.objects.") or not n.endswith((".parquet", ".json"))]
