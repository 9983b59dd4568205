"""benchmarks/fullscale: synthetic files in the official layouts, sized in proportion to the real ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from fullscale import FULL, parse_scale, scaled, write_full  # noqa: E402
from fullscale.jsonstream import JsonListWriter  # noqa: E402

from unimm.sources import EXPECTED_FILES  # noqa: E402

SCALE = 0.01


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus at SCALE, written through the script's command line."""
    out = tmp_path_factory.mktemp("full") / "data"
    cmd = [
        sys.executable,
        str(BENCHMARKS / "fullscale"),
        "--scale",
        str(SCALE),
        "--out",
        str(out),
        "--seed",
        "3",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return out


def load(root: Path, rel: str):
    return orjson.loads((root / rel).read_bytes())


def test_counts_are_proportional(small: Path) -> None:
    want = scaled(SCALE)
    assert want["vg_regions"] == round(FULL["vg_regions"] * SCALE)
    for f in EXPECTED_FILES:
        assert (small / f.path).is_file(), f.path
    for part in ("train", "val"):
        caps = load(small, f"coco/annotations/captions_{part}2014.json")
        assert len(caps["images"]) == want[f"coco_{part}_images"]
        assert len(caps["annotations"]) == want[f"coco_{part}_captions"]
        inst = load(small, f"coco/annotations/instances_{part}2014.json")
        assert len(inst["annotations"]) == want[f"coco_{part}_instances"] and inst["categories"]
        qs = load(small, f"vqav2/v2_OpenEnded_mscoco_{part}2014_questions.json")["questions"]
        assert len(qs) == want[f"vqav2_{part}_questions"]
        ok = load(small, f"okvqa/OpenEnded_mscoco_{part}2014_questions.json")["questions"]
        assert len(ok) == want[f"okvqa_{part}_questions"]
        assert len(load(small, f"aokvqa/aokvqa_v1p0_{part}.json")) == want[f"aokvqa_{part}"]
    # 2017 holds the same pictures and captions, split differently
    n17 = sum(
        len(load(small, f"coco/annotations/captions_{s}2017.json")["annotations"]) for s in ("train", "val")
    )
    assert n17 == want["coco_train_captions"] + want["coco_val_captions"]
    assert len(load(small, "coco/annotations/captions_val2017.json")["images"]) == want["coco_val2017_images"]
    vg = load(small, "vg/image_data.json")
    assert len(vg) == want["vg_images"]
    assert sum(im["coco_id"] is not None for im in vg) == want["vg_coco_images"]
    for rel, key, total in (
        ("vg/region_descriptions.json", "regions", "vg_regions"),
        ("vg/question_answers.json", "qas", "vg_qas"),
        ("vg/objects.json", "objects", "vg_objects"),
    ):
        assert sum(len(e[key]) for e in load(small, rel)) == want[total]
    n_coco = want["coco_train_images"] + want["coco_val_images"]
    for split, n in (("train", n_coco), ("val", want["visdial_val"]), ("test", want["visdial_test"])):
        assert len(load(small, f"visdial/visdial_1.0_{split}.json")["data"]["dialogs"]) == n


def test_ids_link_up(small: Path) -> None:
    coco: dict[int, str] = {}
    for s in ("train2014", "val2014"):
        for im in load(small, f"coco/annotations/captions_{s}.json")["images"]:
            coco[im["id"]] = s
        qs = load(small, f"vqav2/v2_OpenEnded_mscoco_{s}_questions.json")["questions"]
        ann = load(small, f"vqav2/v2_mscoco_{s}_annotations.json")["annotations"]
        assert [q["question_id"] for q in qs] == [a["question_id"] for a in ann]
        assert len({q["question_id"] for q in qs}) == len(qs)
        assert all(coco[q["image_id"]] == s and q["question_id"] // 1000 == q["image_id"] for q in qs)
        assert all(len(a["answers"]) == 10 for a in ann)
        okq = load(small, f"okvqa/OpenEnded_mscoco_{s}_questions.json")["questions"]
        assert all(coco[q["image_id"]] == s and q["question_id"] // 10 == q["image_id"] for q in okq)
    ids17 = {
        im["id"]
        for s in ("train2017", "val2017")
        for im in load(small, f"coco/annotations/captions_{s}.json")["images"]
    }
    assert ids17 == set(coco)
    vg = load(small, "vg/image_data.json")
    assert all(im["coco_id"] in coco for im in vg if im["coco_id"] is not None)
    vg_ids = [im["image_id"] for im in vg]
    assert [e["id"] for e in load(small, "vg/region_descriptions.json")] == vg_ids
    qas = load(small, "vg/question_answers.json")
    assert all(qa["answer"].endswith(".") and qa["image_id"] == e["id"] for e in qas for qa in e["qas"])
    # VisDial: train dialogs are the COCO 2014 pictures; every index points into its list
    for split in ("train", "val", "test"):
        doc = load(small, f"visdial/visdial_1.0_{split}.json")
        data, ids = doc["data"], [d["image_id"] for d in doc["data"]["dialogs"]]
        assert doc["split"] == split and len(set(ids)) == len(ids)
        assert split != "train" or set(ids) == set(coco)  # val/test ids are an id space of their own
        for d in data["dialogs"]:
            *answered, last = d["dialog"]
            assert all(
                r["question"] < len(data["questions"]) and r["answer"] < len(data["answers"])
                for r in answered
            )
            if split == "test":
                assert d["round_id"] == len(d["dialog"]) and "answer" not in last
            else:
                assert len(d["dialog"]) == 10
                assert all(r["answer_options"][r["gt_index"]] == r["answer"] for r in d["dialog"])


def test_scaled_output_is_deterministic(tmp_path: Path) -> None:
    a = write_full(tmp_path / "a", scale=0.002, seed=5, workers=1)
    b = write_full(tmp_path / "b", scale=0.002, seed=5, workers=2)  # scheduling must not matter
    assert a == b
    for f in EXPECTED_FILES:
        assert (tmp_path / "a" / f.path).read_bytes() == (tmp_path / "b" / f.path).read_bytes(), f.path


def test_parse_scale() -> None:
    from unimm.errors import ConfigError

    assert parse_scale("full") == 1.0 and parse_scale("0.05") == 0.05
    for bad in ("0", "1.5", "half"):
        with pytest.raises(ConfigError):
            parse_scale(bad)


def test_json_list_writer_streams_valid_documents(tmp_path: Path) -> None:
    with JsonListWriter(tmp_path / "o.json", key="items", head={"info": {"v": 1}}, tail={"t": 2}) as w:
        w.extend([])
        w.extend([{"a": 1}, {"a": 2}])
        w.extend([{"a": 3}])
    assert json.loads((tmp_path / "o.json").read_text()) == {
        "info": {"v": 1},
        "items": [{"a": 1}, {"a": 2}, {"a": 3}],
        "t": 2,
    }
    with JsonListWriter(tmp_path / "l.json") as w:
        pass
    assert json.loads((tmp_path / "l.json").read_text()) == []
