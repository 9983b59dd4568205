"""`unimm sample`: the demo corpus is complete, consistent, deterministic and true to its pictures."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from unimm.sample import write_demo
from unimm.sample.formats import NUMBER_WORDS
from unimm.sample.output import MARKER
from unimm.sample.scene import KINDS, PALETTE, nearest_colour
from unimm.sources import EXPECTED_FILES


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import run_unimm

    out = tmp_path_factory.mktemp("demo") / "data"
    r = run_unimm("sample", "--out", out, "--seed", "0")
    assert r.returncode == 0, r.stderr
    assert "48 images" in r.stdout or "images to" in r.stdout
    return out


def load(root: Path, rel: str) -> Any:
    return json.loads((root / rel).read_text())


def coco_images(root: Path) -> dict[int, tuple[str, dict[str, Any]]]:
    """COCO id -> (2014 split, image entry) over both 2014 caption files."""
    out = {}
    for split in ("train2014", "val2014"):
        for im in load(root, f"coco/annotations/captions_{split}.json")["images"]:
            out[im["id"]] = (split, im)
    return out


def test_every_expected_file_exists_and_parses(demo: Path) -> None:
    for f in EXPECTED_FILES:
        doc = load(demo, f.path)
        if f.source == "coco":
            assert list(doc)[:4] == ["info", "licenses", "images", "annotations"]
            assert ("categories" in doc) == (f.role == "instances")
            assert doc["images"] and doc["annotations"]
        elif f.source in ("vqav2", "okvqa"):
            assert doc["data_subtype"] == f.split
            assert doc["questions" if f.role == "questions" else "annotations"]
            if f.source == "okvqa" and f.role == "annotations":
                assert doc["question_types"]["eight"] == "Plants and Animals"
        elif f.source == "visdial":
            assert (doc["version"], doc["split"]) == ("1.0", f.split)
            assert doc["data"]["dialogs"] and doc["data"]["questions"] and doc["data"]["answers"]
        else:
            assert isinstance(doc, list) and doc
    assert json.loads((demo / MARKER).read_text())["kind"] == "demo"


def test_coverage_is_varied(demo: Path) -> None:
    cover: dict[str, set[str]] = defaultdict(set)
    for cid in coco_images(demo):
        cover[f"coco_{cid}"].add("coco")
    for split in ("train2014", "val2014"):
        for src, rel in (
            ("vqav2", f"vqav2/v2_OpenEnded_mscoco_{split}_questions.json"),
            ("okvqa", f"okvqa/OpenEnded_mscoco_{split}_questions.json"),
        ):
            for q in load(demo, rel)["questions"]:
                cover[f"coco_{q['image_id']}"].add(src)
    for part in ("train", "val"):
        for row in load(demo, f"aokvqa/aokvqa_v1p0_{part}.json"):
            cover[f"coco_{row['image_id']}"].add("aokvqa")
    vg = load(demo, "vg/image_data.json")
    for im in vg:
        cover[f"coco_{im['coco_id']}" if im["coco_id"] else f"vg_{im['image_id']}"].add("vg")
    sizes = Counter(len(s) for s in cover.values())
    assert sizes[5] >= 3 and sizes[3] >= 2 and sizes[1] >= 2 and sizes[2] >= 1
    with_coco = sum(im["coco_id"] is not None for im in vg)
    assert with_coco == len(vg) - with_coco  # half of the VG pictures are COCO pictures


def test_ids_are_consistent(demo: Path) -> None:
    coco = coco_images(demo)
    ids17 = {
        im["id"]: s
        for s in ("train2017", "val2017")
        for im in load(demo, f"coco/annotations/captions_{s}.json")["images"]
    }
    assert set(ids17) == set(coco)  # the same pictures in both releases
    for split in ("train2014", "val2014"):
        caps = load(demo, f"coco/annotations/captions_{split}.json")
        assert {c["image_id"] for c in caps["annotations"]} == {im["id"] for im in caps["images"]}
        assert all(im["file_name"] == f"COCO_{split}_{im['id']:012d}.jpg" for im in caps["images"])
        for prefix, factor in (("vqav2/v2_", 1000), ("okvqa/", 10)):  # question_id = image_id * factor + n
            qs = load(demo, f"{prefix}OpenEnded_mscoco_{split}_questions.json")["questions"]
            ann = load(demo, f"{prefix}mscoco_{split}_annotations.json")["annotations"]
            by_qid = {q["question_id"]: q for q in qs}
            assert len(by_qid) == len(qs) == len(ann)
            for a in ann:
                q = by_qid[a["question_id"]]  # every annotation has its question
                assert q["image_id"] == a["image_id"] and coco[a["image_id"]][0] == split
                assert a["question_id"] // factor == a["image_id"]
                assert len(a["answers"]) == 10
            if prefix.startswith("vqav2"):
                for a in ann:
                    top = Counter(x["answer"] for x in a["answers"]).most_common(1)[0][0]
                    assert top == a["multiple_choice_answer"]
    for part in ("train", "val"):
        for row in load(demo, f"aokvqa/aokvqa_v1p0_{part}.json"):
            assert ids17[row["image_id"]] == f"{part}2017"  # A-OKVQA uses the 2017 splits
            assert re.fullmatch(r"[A-Za-z0-9]{22}", row["question_id"])
            assert (
                len(row["choices"]) == 4 and len(row["direct_answers"]) == 10 and len(row["rationales"]) == 3
            )
            assert row["choices"][row["correct_choice_idx"]] in row["direct_answers"]
    vg = {im["image_id"]: im for im in load(demo, "vg/image_data.json")}
    assert all(im["coco_id"] in coco for im in vg.values() if im["coco_id"] is not None)
    for entry in load(demo, "vg/region_descriptions.json"):
        assert entry["id"] in vg and all(r["image_id"] == entry["id"] for r in entry["regions"])
    for entry in load(demo, "vg/question_answers.json"):
        assert entry["id"] in vg
        assert all(qa["image_id"] == entry["id"] and qa["answer"].endswith(".") for qa in entry["qas"])
    assert {e["image_id"] for e in load(demo, "vg/objects.json")} == set(vg)


def test_jpegs_decode_with_the_annotated_sizes(demo: Path) -> None:
    n = 0
    for split in ("train2014", "val2014", "train2017", "val2017"):
        for im in load(demo, f"coco/annotations/instances_{split}.json")["images"]:
            with Image.open(demo / "coco" / split / im["file_name"]) as img:
                assert img.format == "JPEG" and img.size == (im["width"], im["height"])
            n += 1
    for im in load(demo, "vg/image_data.json"):
        with Image.open(demo / "vg" / "VG_100K" / f"{im['image_id']}.jpg") as img:
            assert img.size == (im["width"], im["height"])
        n += 1
    for split in ("val", "test"):  # VisDial's own pictures (its train pictures are COCO's)
        for d in load(demo, f"visdial/visdial_1.0_{split}.json")["data"]["dialogs"]:
            name = f"VisualDialog_{split}2018/VisualDialog_{split}2018_{d['image_id']:012d}.jpg"
            with Image.open(demo / "visdial" / name) as img:
                assert img.format == "JPEG"
            n += 1
    assert n == len(list(demo.rglob("*.jpg")))  # no picture without an annotation entry


def _centre_colour(img: np.ndarray, box: list[float]) -> str:
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    patch = img[int(cy - 0.1 * h) : int(cy + 0.1 * h) + 1, int(cx - 0.1 * w) : int(cx + 0.1 * w) + 1]
    return nearest_colour(tuple(patch.reshape(-1, 3).mean(axis=0)))


def test_pictures_are_true_to_the_annotations(demo: Path) -> None:
    coco = coco_images(demo)
    caps: dict[int, str] = defaultdict(str)
    for split in ("train2014", "val2014"):
        for c in load(demo, f"coco/annotations/captions_{split}.json")["annotations"]:
            caps[c["image_id"]] += " " + c["caption"].lower()
    cats = {c["id"]: c["name"] for c in load(demo, "coco/annotations/instances_train2014.json")["categories"]}
    assert set(cats.values()) == set(KINDS)
    per_image: dict[int, list[str]] = defaultdict(list)
    checked = 0
    for split in ("train2014", "val2014"):
        for a in load(demo, f"coco/annotations/instances_{split}.json")["annotations"]:
            split_, im = coco[a["image_id"]]
            pixels = np.asarray(
                Image.open(demo / "coco" / split_ / im["file_name"]).convert("RGB"), dtype=float
            )
            colour = _centre_colour(pixels, a["bbox"])
            assert colour in PALETTE, (a, colour)  # the box centre is on a shape, not the background
            assert f"{colour} {cats[a['category_id']]}" in caps[a["image_id"]]  # and the captions name it
            per_image[a["image_id"]].append(colour)
            checked += 1
    assert checked >= 20
    # counting and colour questions agree with what the pixels show
    for split in ("train2014", "val2014"):
        qs = {
            q["question_id"]: q["question"]
            for q in load(demo, f"vqav2/v2_OpenEnded_mscoco_{split}_questions.json")["questions"]
        }
        for a in load(demo, f"vqav2/v2_mscoco_{split}_annotations.json")["annotations"]:
            q = qs[a["question_id"]]
            if q == "How many shapes are there?":
                assert int(a["multiple_choice_answer"]) == len(per_image[a["image_id"]])
            if q.startswith("What color is"):
                assert a["multiple_choice_answer"] in per_image[a["image_id"]]
    vg_regions = 0
    for entry in load(demo, "vg/region_descriptions.json"):
        pixels = np.asarray(
            Image.open(demo / "vg" / "VG_100K" / f"{entry['id']}.jpg").convert("RGB"), dtype=float
        )
        for r in entry["regions"]:
            words = r["phrase"].split()
            if words[0] in PALETTE and words[1] in KINDS and "next" not in words:
                box = [r["x"], r["y"], r["width"], r["height"]]
                assert _centre_colour(pixels, box) == words[0], r
                vg_regions += 1
    assert vg_regions >= 20


def test_grounding_fields_are_written_and_true(demo: Path) -> None:
    for split in ("train2014", "val2014", "train2017", "val2017"):
        insts = load(demo, f"coco/annotations/instances_{split}.json")["annotations"]
        assert all(a["iscrowd"] == 0 for a in insts)  # each shape is one object
    for part in ("train", "val"):
        assert all(
            isinstance(row["difficult_direct_answer"], bool)
            for row in load(demo, f"aokvqa/aokvqa_v1p0_{part}.json")
        )
    objects = load(demo, "vg/objects.json")
    assert all(len(o["synsets"]) == 1 for e in objects for o in e["objects"])
    attributes = load(demo, "vg/attributes.json")
    # attributes.json repeats objects.json, each object with the colour it is drawn in
    assert [e["image_id"] for e in attributes] == [e["image_id"] for e in objects]
    for a_entry, o_entry in zip(attributes, objects, strict=True):
        assert [{k: v for k, v in o.items() if k != "attributes"} for o in a_entry["attributes"]] == o_entry[
            "objects"
        ]
    checked = 0
    for entry in attributes:
        pixels = np.asarray(
            Image.open(demo / "vg" / "VG_100K" / f"{entry['image_id']}.jpg").convert("RGB"), dtype=float
        )
        for o in entry["attributes"]:
            (colour,) = o["attributes"]
            if o["names"] == ["background"]:
                assert nearest_colour(tuple(pixels[1, 1])) == colour  # a corner shows the background
            else:
                assert o["names"][0] in KINDS
                assert _centre_colour(pixels, [o["x"], o["y"], o["w"], o["h"]]) == colour
                checked += 1
    assert checked >= 20


def test_visdial_files_follow_the_release(demo: Path) -> None:
    """VisDial v1.0's layout: questions and answers by index, 100 options per round with
    `gt_index` at the answer (train/val), test dialogs ending in a round whose answer is withheld;
    train dialogs are about COCO 2014 pictures that VQAv2 also asks about."""
    coco = coco_images(demo)
    vqa_images = {
        q["image_id"]
        for split in ("train2014", "val2014")
        for q in load(demo, f"vqav2/v2_OpenEnded_mscoco_{split}_questions.json")["questions"]
    }
    for split in ("train", "val", "test"):
        data = load(demo, f"visdial/visdial_1.0_{split}.json")["data"]
        qs, ans = data["questions"], data["answers"]
        assert not any(q.endswith("?") for q in qs) and len(ans) >= 100
        for d in data["dialogs"]:
            rounds = d["dialog"]
            assert d["caption"] and not d["caption"].endswith(".")
            if split == "train":
                assert d["image_id"] in coco and d["image_id"] in vqa_images
            if split == "test":
                assert d["round_id"] == len(rounds) <= 10
                *answered, last = rounds
                assert all(set(r) == {"question", "answer"} for r in answered)
                assert set(last) == {"question", "answer_options"} and len(set(last["answer_options"])) == 100
            else:
                assert len(rounds) == 10 and "round_id" not in d
                for r in rounds:
                    assert len(set(r["answer_options"])) == 100
                    assert r["answer_options"][r["gt_index"]] == r["answer"] < len(ans)
                    assert r["question"] < len(qs)
    train = load(demo, "visdial/visdial_1.0_train.json")["data"]["dialogs"]
    assert {d["image_id"] for d in train} == vqa_images & set(coco)


def test_visdial_answers_are_true_to_the_pictures(demo: Path) -> None:
    """The captions of VisDial's own pictures name colours the pixels show, and "how many
    shapes" is answered with the number of shapes the caption lists."""
    group = re.compile(r"\b(an?|two|three|four|five) (" + "|".join(PALETTE) + r") (" + "|".join(KINDS) + ")")
    checked = 0
    for split in ("val", "test"):
        data = load(demo, f"visdial/visdial_1.0_{split}.json")["data"]
        for d in data["dialogs"]:
            name = f"VisualDialog_{split}2018/VisualDialog_{split}2018_{d['image_id']:012d}.jpg"
            pixels = np.asarray(Image.open(demo / "visdial" / name).convert("RGB"), dtype=float)
            shown = {nearest_colour(tuple(p)) for p in pixels[::8, ::8].reshape(-1, 3)}
            groups = group.findall(d["caption"])
            assert groups and {c for _, c, _ in groups} <= shown
            shapes = sum(1 if n in ("a", "an") else NUMBER_WORDS.index(n) for n, _, _ in groups)
            for r in d["dialog"]:
                if data["questions"][r["question"]] == "how many shapes are there" and "answer" in r:
                    assert int(data["answers"][r["answer"]]) == shapes
                    checked += 1
    assert checked >= 1


def test_demo_is_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    a = write_demo(tmp_path / "a", seed=7, images=6)
    b = write_demo(tmp_path / "b", seed=7, images=6)
    write_demo(tmp_path / "c", seed=8, images=6)
    assert a == b
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert (tmp_path / "a" / "coco/annotations/captions_train2014.json").read_bytes() != (
        tmp_path / "c" / "coco/annotations/captions_train2014.json"
    ).read_bytes()


def test_rerun_replaces_a_sample_but_never_other_data(tmp_path: Path, cli) -> None:
    write_demo(tmp_path / "s", seed=1, images=3)
    write_demo(tmp_path / "s", seed=2, images=4)  # a previous sample is replaced whole
    assert json.loads((tmp_path / "s" / MARKER).read_text())["images"] == 4
    real = tmp_path / "real"
    real.mkdir()
    (real / "precious.json").write_text("{}")
    r = cli("sample", "--out", real, "--images", "2")
    assert r.returncode == 2 and "not a unimm sample folder" in r.stderr
    assert sorted(p.name for p in real.iterdir()) == ["precious.json"]
