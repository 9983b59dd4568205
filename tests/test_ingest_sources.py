"""Each ingester on hand-written fixtures in the official formats (tests/fixtures/ingest/data)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.merge_helpers import source_annotations
from unimm.ingest import INGESTERS, check_inputs, run_ingest
from unimm.ingest.tablefile import read_ingest_table
from unimm.keys import IMAGE_NUMBER, PARTITION_HASH, image_number, partition_hash
from unimm.pipeline.layout import Layout
from unimm.schema import Annotation, Answer, ImageRef
from unimm.tables import INGEST_ANNOTATION_SCHEMA, INGEST_IMAGE_SCHEMA

FIXTURES = Path(__file__).parent / "fixtures" / "ingest" / "data"


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("work")
    run_ingest(FIXTURES, work, list(INGESTERS), jobs=1)
    return work


def rows(work: Path, source: str) -> list[Annotation]:
    df = source_annotations(work, source)
    assert df.schema == INGEST_ANNOTATION_SCHEMA
    assert df[PARTITION_HASH].to_list() == [partition_hash(k) for k in df["image_key"]]
    # sorted runs (one per file and kind) that merge's partitions read by row-group statistics
    assert (df[PARTITION_HASH].diff() < 0).sum() < 10
    assert df[IMAGE_NUMBER].to_list() == [image_number(k) for k in df["image_key"]]
    return [Annotation.model_validate(r) for r in df.drop(PARTITION_HASH, IMAGE_NUMBER).iter_rows(named=True)]


def refs(work: Path, source: str) -> list[ImageRef]:
    df = read_ingest_table(Layout(work).ingest_images(source), INGEST_IMAGE_SCHEMA)
    assert df.schema == INGEST_IMAGE_SCHEMA
    return [ImageRef.model_validate(r) for r in df.drop(PARTITION_HASH).iter_rows(named=True)]


def by_id(items: list[Annotation]) -> dict[str, Annotation]:
    return {a.source_id: a for a in items}


def test_coco_captions_trimmed_and_deduplicated_across_releases(ingested: Path) -> None:
    anns = rows(ingested, "coco")
    caps = [a for a in anns if a.kind == "caption"]
    ids = [a.source_id for a in caps]
    assert len(ids) == len(set(ids)) == 4  # 3 shared by 2014 and 2017, 1 only in 2017
    c = by_id(caps)
    assert c["770337"].text == "A man with a red helmet on a small moped on a dirt road."
    assert c["775377"].text == "A WOMAN WEARING A NET ON HER HEAD CUTTING A CAKE."
    assert c["770337"].split == "train2014" and c["780001"].split == "train2017"
    assert c["770337"].image_key == "coco_000000391895" and c["770337"].bbox is None


def test_coco_instances_boxes_normalised_and_clipped(ingested: Path) -> None:
    objs = by_id([a for a in rows(ingested, "coco") if a.kind == "object"])
    moto = objs["151091"]
    assert moto.text == "motorcycle"
    assert moto.bbox == pytest.approx([359.17 / 640, 146.17 / 360, 112.45 / 640, 213.57 / 360], abs=1e-6)
    # the crowd box runs past the 640x480 image: clipped to the image
    assert objs["900100264627"].text == "person"
    assert objs["900100264627"].bbox == pytest.approx([600 / 640, 400 / 480, 40 / 640, 80 / 480], abs=1e-6)


def test_coco_instances_keep_iscrowd(ingested: Path) -> None:
    objs = by_id([a for a in rows(ingested, "coco") if a.kind == "object"])
    assert objs["900100264627"].iscrowd is True and objs["151091"].iscrowd is False
    assert all(a.iscrowd is None for a in rows(ingested, "coco") if a.kind == "caption")
    assert objs["151091"].names == [] and objs["151091"].attributes == []  # VG-only fields stay empty


def test_coco_image_refs_once_per_release_file(ingested: Path) -> None:
    files = sorted(r.file_name or "" for r in refs(ingested, "coco"))
    assert files == [
        "coco/train2014/COCO_train2014_000000391895.jpg",
        "coco/train2014/COCO_train2014_000000522418.jpg",
        "coco/train2017/000000184613.jpg",
        "coco/train2017/000000391895.jpg",
        "coco/train2017/000000522418.jpg",
    ]
    r = next(r for r in refs(ingested, "coco") if r.file_name == "coco/train2017/000000184613.jpg")
    assert (r.width, r.height, r.coco_id, r.image_key) == (500, 336, 184613, "coco_000000184613")


def test_vqav2_joined_by_question_id(ingested: Path) -> None:
    qa = by_id(rows(ingested, "vqav2"))
    assert len(qa) == 3
    net = qa["458752000"]
    assert net.kind == "qa" and net.text == "What is this photo taken looking through?"
    assert net.answer == "net" and net.question_type == "what is this" and net.answer_type == "other"
    assert len(net.answers) == 10
    assert net.answers[0] == Answer(text="net", confidence="maybe")
    assert net.answers[3] == Answer(text="netting", confidence="yes")
    assert qa["262146000"].image_key == "coco_000000262146"  # annotation order differs from question order
    assert qa["262146000"].answers[9].text == "white and gray"
    assert {r.file_name for r in refs(ingested, "vqav2")} == {
        "coco/train2014/COCO_train2014_000000458752.jpg",
        "coco/train2014/COCO_train2014_000000262146.jpg",
    }


def test_okvqa_raw_answers_consensus_and_category_names(ingested: Path) -> None:
    qa = by_id(rows(ingested, "okvqa"))
    sport = qa["2971475"]
    assert sport.answer == "race"  # race and motocross both 4 times: the first given wins
    assert sport.answers[0] == Answer(text="race", raw="racing", confidence="yes")
    assert sport.question_type == "Sports and Recreation"
    dog = qa["3932255"]
    assert dog.answer == "boxer" and dog.question_type == "Plants and Animals" and dog.split == "val2014"
    assert dog.answers[2] == Answer(text="pug", raw="pug", confidence="maybe")


def test_aokvqa_choices_and_rationales(ingested: Path) -> None:
    anns = rows(ingested, "aokvqa")
    qa = by_id([a for a in anns if a.kind == "qa"])
    cab = qa["22MexNkBPpdZGX6sxbxVBH"]
    assert cab.choices == ["skateboarder", "train", "delivery", "cab"] and cab.correct_choice == 3
    assert cab.answer == "cab" and [a.text for a in cab.answers][:3] == ["ride", "ride", "bus"]
    assert cab.image_key == "coco_000000299207" and cab.split == "train"
    assert qa["2Mo2Kv6qEZomdvtKkMb3F5"].text == "What kind of vehicle is the man riding?"
    rats = [a for a in anns if a.kind == "rationale"]
    assert len(rats) == 6
    first = by_id(rats)["22MexNkBPpdZGX6sxbxVBH#2"]
    assert (
        first.parent_id == "22MexNkBPpdZGX6sxbxVBH"
        and first.text == "He looks to be waiting for a paid ride to pick him up."
    )
    assert refs(ingested, "aokvqa")[0].file_name == "coco/train2017/000000299207.jpg"


def test_aokvqa_difficult_direct_answer_kept(ingested: Path) -> None:
    anns = rows(ingested, "aokvqa")
    qa = by_id([a for a in anns if a.kind == "qa"])
    assert qa["22MexNkBPpdZGX6sxbxVBH"].difficult is False
    assert qa["2Mo2Kv6qEZomdvtKkMb3F5"].difficult is True
    assert all(a.difficult is None for a in anns if a.kind == "rationale")


def test_vg_regions_qa_objects(ingested: Path) -> None:
    anns = rows(ingested, "vg")
    regions = by_id([a for a in anns if a.kind == "region"])
    assert regions["1382"].bbox == pytest.approx([421 / 800, 57 / 600, 82 / 800, 139 / 600], abs=1e-6)
    # negative origin and a width past the edge: clipped to the image
    assert regions["1383"].bbox == pytest.approx([0.0, 0.0, 1.0, 99 / 600], abs=1e-6)
    assert regions["1383"].text == "shade is along the street"
    assert regions["5001"].image_key == "coco_000000391895"  # VG image with a coco_id
    qa = by_id([a for a in anns if a.kind == "qa"])
    assert qa["986768"].answer == "Green"
    assert qa["986768"].answers == [Answer(text="Green", raw="Green.")]
    assert qa["986780"].answer == "Parked on the street"
    objs = by_id([a for a in anns if a.kind == "object"])
    assert objs["3000"].text == "man" and objs["1058498"].image_key == "vg_1"
    assert objs["3000"].names == ["man", "person"] and objs["3000"].synsets == ["man.n.01"]
    files = {r.vg_id: r for r in refs(ingested, "vg")}
    assert files[1].file_name == "vg/VG_100K_2/1.jpg" and files[1].image_key == "vg_1"
    assert files[2339].file_name == "vg/VG_100K/2339.jpg" and files[2339].coco_id == 391895


def test_vg_attributes_attached_by_image_and_object_id(ingested: Path) -> None:
    objs = by_id([a for a in rows(ingested, "vg") if a.kind == "object"])
    # trimmed, lower-cased, empty and repeated ones dropped; the object's two entries unioned
    assert objs["1058498"].attributes == ["green", "tall", "round"]
    assert objs["1058498"].names == ["clock"] and objs["1058498"].synsets == ["clock.n.01"]
    assert objs["3000"].attributes == []  # listed in attributes.json without any
    # listed only in attributes.json: still an object, with its names, synsets and box
    sign = objs["1058507"]
    assert (sign.text, sign.names, sign.synsets, sign.attributes) == (
        "sign",
        ["sign", "street sign"],
        ["sign.n.02"],
        ["black"],
    )
    assert sign.image_key == "vg_1"
    assert sign.bbox == pytest.approx([118 / 800, 13 / 600, 88 / 800, 182 / 600], abs=1e-6)
    # rows are sorted by the partition hash of their image; within an image, file order, and
    # the objects only attributes.json lists come after those of objects.json
    in_vg1 = [a.source_id for a in rows(ingested, "vg") if a.kind == "object" and a.image_key == "vg_1"]
    assert in_vg1 == ["1058498", "1058507"] and objs["3000"].image_key != "vg_1"


def test_results_report_counts(tmp_path: Path) -> None:
    results = run_ingest(FIXTURES, tmp_path, ["vg", "aokvqa"], jobs=1)
    assert [r.source for r in results] == ["aokvqa", "vg"]
    vg = results[1]
    assert vg.annotations == {"qa": 2, "region": 3, "object": 3} and vg.images == 2
    # VG's regions and objects are units of their own (SourceSpec.parts), each with its table
    assert vg.files == [
        "vg/image_data.json",
        "vg/question_answers.json",
        "vg/region_descriptions.json",
        "vg/objects.json",
        "vg/attributes.json",
    ]
    units = [Layout(tmp_path).ingest_table(u) for u in ("vg", "vg.regions", "vg.objects")]
    assert [Path(t) for t in vg.tables] == units and all(t.is_file() for t in units)
    assert results[0].annotations == {"qa": 2, "rationale": 6}


def test_optional_files_may_be_absent(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(FIXTURES / "vg", data / "vg")
    (data / "vg" / "objects.json").unlink()
    (data / "vg" / "question_answers.json").unlink()
    (data / "vg" / "attributes.json").unlink()
    assert check_inputs(data, ["vg"]) is None  # attributes.json is never asked for
    (r,) = run_ingest(data, tmp_path / "work", ["vg"], jobs=1)
    assert r.annotations == {"region": 3}


def test_vg_objects_from_attributes_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(FIXTURES / "vg", data / "vg")
    (data / "vg" / "objects.json").unlink()
    (r,) = run_ingest(data, tmp_path / "work", ["vg"], jobs=1)
    assert r.annotations["object"] == 3  # the clock listed twice is one object
    objs = by_id([a for a in rows(tmp_path / "work", "vg") if a.kind == "object"])
    assert objs["1058498"].attributes == ["green", "tall", "round"]
    assert objs["3000"].names == ["man", "person"] and objs["3000"].synsets == ["man.n.01"]
    assert objs["3000"].bbox == pytest.approx([100 / 640, 100 / 480, 100 / 640, 200 / 480], abs=1e-6)


def test_vg_without_attributes_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(FIXTURES / "vg", data / "vg")
    (data / "vg" / "attributes.json").unlink()
    (r,) = run_ingest(data, tmp_path / "work", ["vg"], jobs=1)
    assert r.annotations["object"] == 2 and "vg/attributes.json" not in r.files
    objs = by_id([a for a in rows(tmp_path / "work", "vg") if a.kind == "object"])
    assert objs["1058498"].attributes == [] and objs["3000"].names == ["man", "person"]


@pytest.mark.slow
def test_parallel_processes_give_the_same_tables(
    tmp_path: Path, ingested: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unimm.pipeline.steps import ingest

    monkeypatch.setattr(ingest, "PROCESS_MIN_BYTES", 0)  # force worker processes on tiny inputs
    results = run_ingest(FIXTURES, tmp_path, ["coco", "vg", "okvqa"], jobs=2)
    assert [r.source for r in results] == ["coco", "okvqa", "vg"]
    for s in ("coco", "vg", "okvqa"):
        assert source_annotations(tmp_path, s).equals(source_annotations(ingested, s))
        assert read_ingest_table(Layout(tmp_path).ingest_images(s), INGEST_IMAGE_SCHEMA).equals(
            read_ingest_table(Layout(ingested).ingest_images(s), INGEST_IMAGE_SCHEMA)
        )


def test_vg_parts_are_units_of_their_own(tmp_path: Path) -> None:
    """VG's regions and objects are ingested by units of their own (SourceSpec.parts): a changed
    regions file reruns the regions unit only, and a removed one leaves an empty table behind,
    never the regions of the earlier run."""
    from unimm.merge import MergeConfig, merge, read_partition

    data, work = tmp_path / "data", tmp_path / "work"
    shutil.copytree(FIXTURES / "vg", data / "vg")
    run_ingest(data, work, ["vg"], jobs=1)
    markers = {
        u: (work / "markers" / "ingest" / f"{u}.done.json") for u in ("vg", "vg.regions", "vg.objects")
    }
    before = {u: m.read_bytes() for u, m in markers.items()}
    regions = data / "vg" / "region_descriptions.json"
    regions.write_text(regions.read_text().replace('"phrase": "', '"phrase": "a changed ', 1))

    run_ingest(data, work, ["vg"], jobs=1)
    changed = {u for u, m in markers.items() if m.read_bytes() != before[u]}
    assert changed == {"vg.regions"}
    texts = source_annotations(work, "vg").filter(kind="region")["text"].to_list()
    assert sum(t.startswith("a changed ") for t in texts) == 1

    regions.unlink()
    (r,) = run_ingest(data, work, ["vg"], jobs=1)
    assert "region" not in r.annotations and r.annotations["qa"] == 2
    assert Layout(work).ingest_table("vg.regions").is_file()
    merge(work, MergeConfig())
    (part,) = sorted((work / "merged").glob("part-*.parquet"))
    records = read_partition(part)
    assert records and not any(rec.regions for rec in records)
    assert sum(len(rec.qas) for rec in records) == 2
