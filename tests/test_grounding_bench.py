"""The grounding benchmark's labelled cases (benchmarks/grounding_cases.py): deterministic, every
corruption kind present and phrased several ways, and clean facts true to the official files.
The checks under test and the LLM judge are not run here."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import grounding_cases as gc  # noqa: E402

from unimm.schema import MergedImage  # noqa: E402


@pytest.fixture(scope="module")
def images(realdata: Path, tmp_path_factory: pytest.TempPathFactory) -> list[MergedImage]:
    merged, _ = gc.merged_images(realdata, tmp_path_factory.mktemp("groundbench"))
    return merged


@pytest.fixture(scope="module")
def cases(images: list[MergedImage], realdata: Path) -> list[gc.Case]:
    return gc.build_cases(images, gc.coco_categories(realdata))


@pytest.fixture(scope="module")
def truth(realdata: Path) -> dict[str, dict]:
    """Per image key, facts read straight from the official files (not through unimm's ingest):
    non-crowd counts, crowd categories, caption text, VG names and colours."""
    ann = realdata / "coco-mini" / "annotations"
    inst = json.loads((ann / "instances_train2017.json").read_text())
    caps = json.loads((ann / "captions_train2017.json").read_text())
    names = {c["id"]: c["name"] for c in inst["categories"]}
    out: dict[str, dict] = {}
    for im in inst["images"]:
        out[f"coco_{im['id']:012d}"] = {"counts": Counter(), "crowd": set(), "text": ""}
    for a in inst["annotations"]:
        t = out[f"coco_{a['image_id']:012d}"]
        if a["iscrowd"]:
            t["crowd"].add(names[a["category_id"]])
        else:
            t["counts"][names[a["category_id"]]] += 1
    for c in caps["annotations"]:
        out[f"coco_{c['image_id']:012d}"]["text"] += " " + c["caption"].lower()
    for im in json.loads((realdata / "visual_genome" / "attributes.json").read_text()):
        t = out.setdefault(f"vg_{im['image_id']}", {"names": set(), "colours": {}})
        for o in im["attributes"]:
            t["names"].update(o["names"])
            for n in o["names"]:
                t["colours"].setdefault(n, set()).update(a.strip().lower() for a in o.get("attributes", []))
    return out


def test_images_are_the_excerpts(images: list[MergedImage]) -> None:
    keys = [m.image_key for m in images]
    assert sum(k.startswith("coco_") for k in keys) == 80
    assert [k for k in keys if k.startswith("vg_")] == ["vg_1", "vg_2", "vg_3", "vg_4", "vg_5"]


def test_deterministic(images: list[MergedImage], realdata: Path, cases: list[gc.Case]) -> None:
    again = gc.build_cases(images, gc.coco_categories(realdata))
    assert [(c.case_id, c.turns, c.corruption) for c in again] == [
        (c.case_id, c.turns, c.corruption) for c in cases
    ]
    other = gc.build_cases(images, gc.coco_categories(realdata), seed=1)
    assert [c.turns for c in other] != [c.turns for c in cases]


def test_every_kind_present(cases: list[gc.Case]) -> None:
    kinds = Counter(c.kind for c in cases)
    assert kinds["clean"] >= 150
    for kind in ("object", "count", "existence"):
        assert kinds[kind] >= 100, kind
    assert kinds["colour"] >= 10
    assert all(c.source == "vg" for c in cases if c.kind == "colour")


def test_one_labelled_corruption_per_dialogue(cases: list[gc.Case]) -> None:
    for c in cases:
        assert len(c.turns) % 2 == 0 and len(c.templates) == len(c.claims) == len(c.turns) // 2
        if c.corruption is None:
            continue
        turn = c.turns[c.corruption.turn]
        assert turn.role == "assistant"
        assert c.claims[(c.corruption.turn - 1) // 2] is not None
        # the false fact's word is in the turn that carries it (the question may hold it instead
        # for bare answers such as "Yes." or "Blue.")
        pair = (c.turns[c.corruption.turn - 1].content + " " + turn.content).lower()
        s = c.corruption.surface
        assert s in pair or gc.plural(s) in pair, (c.case_id, pair)


def test_several_phrasings_per_kind(cases: list[gc.Case]) -> None:
    for kind in gc.KINDS:
        corrupted = [c for c in cases if c.kind == kind]
        tids = {c.templates[(c.corruption.turn - 1) // 2].split("+")[-1] for c in corrupted if c.corruption}
        assert len(tids) >= 5, (kind, tids)
    count_answers = [c.turns[c.corruption.turn].content for c in cases if c.kind == "count" and c.corruption]
    assert any(re.search(r"\d", a) for a in count_answers)
    assert any(re.search(r"\b(one|two|three|four|five|six)\b", a, re.I) for a in count_answers)
    surfaces = {
        c.corruption.surface for c in cases if c.corruption and c.corruption.surface != c.corruption.obj
    }
    assert len(surfaces) >= 3  # synonyms (puppy, sofa, mug, ...) stand for categories


def test_clean_facts_hold_in_the_official_files(cases: list[gc.Case], truth: dict[str, dict]) -> None:
    checked = Counter()
    for c in cases:
        if c.kind != "clean":
            continue
        t = truth[c.image_key]
        for claim in filter(None, c.claims):
            obj, value = claim
            if c.source == "coco" and value.isdigit():
                assert t["counts"][obj] == int(value) and obj not in t["crowd"], (c.case_id, claim)
            elif value.startswith(">="):
                assert obj in t["crowd"] and t["counts"][obj] >= int(value[2:]), (c.case_id, claim)
            elif value == "many":
                assert obj in t["crowd"], (c.case_id, claim)
            elif value == "yes":
                assert obj in (t["counts"] if c.source == "coco" else t["names"]) or obj in t.get(
                    "crowd", ()
                ), claim
            elif value == "no":
                present = set(t["counts"]) | t["crowd"] if c.source == "coco" else t["names"]
                assert obj not in present and not gc.mentioned(obj, t.get("text", "")), (c.case_id, claim)
            else:  # a colour
                assert value in t["colours"][obj], (c.case_id, claim)
            checked[
                value if value in ("yes", "no", "many") else "colour" if value.isalpha() else "count"
            ] += 1
    assert min(checked.values()) >= 3 and len(checked) == 5, checked


def test_corruptions_are_false(cases: list[gc.Case], truth: dict[str, dict]) -> None:
    for c in cases:
        if c.corruption is None:
            continue
        t = truth[c.image_key]
        obj, value = c.claims[(c.corruption.turn - 1) // 2]
        assert obj == c.corruption.obj
        if c.kind == "object" or value == "yes":
            present = set(t["counts"]) | t["crowd"] if c.source == "coco" else t["names"]
            assert obj not in present, c.case_id
        elif c.kind == "count":
            assert int(value) != t["counts"][obj] and obj not in t["crowd"], c.case_id
        elif value == "no":
            assert obj in (set(t["counts"]) | t["crowd"] if c.source == "coco" else t["names"]), c.case_id
        else:
            assert value not in t["colours"][obj], c.case_id


def test_noun_forms() -> None:
    assert [gc.plural(w) for w in ("bus", "person", "wine glass", "knife", "sheep", "dog")] == [
        "buses",
        "people",
        "wine glasses",
        "knives",
        "sheep",
        "dogs",
    ]
    assert gc.article("elephant") == "an elephant" and gc.counted(1, "dog", False) == "one dog"
    assert gc.counted(3, "bus", True) == "3 buses"
