"""The demo corpus: ~24 rendered pictures annotated in the official files of all six sources.

Each picture is a `Scene`; which sources annotate it follows a fixed coverage pattern so the
merge has images seen by all the sources, by three, and by one or two. COCO pictures are
written under their 2014 and 2017 names (the same bytes), VG pictures under VG_100K/.

Visual Dialog comes last (`plan_visdial`, `visdial_files`), drawing from the rng after the other
five sources: as in the release, its train dialogs are about COCO 2014 pictures (here every one
VQAv2 asks about, so the three sources meet on them), and its val and test splits about pictures
of their own (one each, under visdial/VisualDialog_{val,test}2018/).
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from unimm.keys import VISDIAL_IMAGE_SPLITS, coco_file_name, visdial_file_name
from unimm.sample import formats as F
from unimm.sample.language import (
    VISDIAL_OTHER_ANSWERS,
    captions,
    knowledge_for,
    rationales,
    vg_qas,
    vg_regions,
    visdial_caption,
    visdial_rounds,
    vqa_questions,
)
from unimm.sample.scene import KINDS, Scene, random_scene, render

# Which sources annotate each picture, cycled over the images (then shuffled). Every COCO
# picture has COCO captions, as in the real releases; half of the VG pictures are COCO ones.
COVERAGE: tuple[frozenset[str], ...] = tuple(
    frozenset(c)
    for c in (
        ("coco", "vqav2", "okvqa", "aokvqa", "vg"),
        ("coco", "vqav2", "okvqa", "aokvqa", "vg"),
        ("coco", "vqav2", "okvqa", "aokvqa", "vg"),
        ("coco", "vqav2", "vg"),
        ("coco", "vqav2", "okvqa"),
        ("coco", "vqav2", "aokvqa"),
        ("coco", "aokvqa"),
        ("coco",),
        ("vg",),
        ("vg",),
        ("vg",),
        ("vg",),
    )
)
CATEGORIES: list[dict[str, Any]] = [
    {"supercategory": "shape", "id": i + 1, "name": k} for i, k in enumerate(KINDS)
]
_SYNSETS = {
    "circle": "circle.n.01",
    "square": "square.n.01",
    "triangle": "triangle.n.01",
    "star": "star.n.03",
    "background": "background.n.02",
}


@dataclass(frozen=True)
class DemoImage:
    """One demo picture and the ids it has in each source that knows it."""

    scene: Scene
    jpeg: bytes
    sources: frozenset[str]
    coco_id: int | None
    split2014: str | None  # train2014 | val2014
    split2017: str | None  # train2017 | val2017
    vg_id: int | None
    flickr_id: int | None
    license: int
    date_captured: str
    visdial_split: str | None = None  # train (a COCO picture) | val | test
    visdial_id: int | None = None


def plan_images(n: int, rng: random.Random) -> list[DemoImage]:
    """Draw n scenes, assign coverage, splits and realistic ids."""
    coverage = [COVERAGE[i % len(COVERAGE)] for i in range(n)]
    rng.shuffle(coverage)
    n_coco = sum("coco" in c for c in coverage)
    coco_ids = iter(rng.sample(range(9, 581_930), n_coco))
    vg_only = iter(sorted(rng.sample(range(1, 4_000), sum(c == {"vg"} for c in coverage))))
    vg_coco = iter(
        sorted(rng.sample(range(2_300_000, 2_400_000), sum("vg" in c and "coco" in c for c in coverage)))
    )
    out = []
    for cov in coverage:
        scene = random_scene(rng)
        coco_id = next(coco_ids) if "coco" in cov else None
        split2014 = split2017 = None
        if coco_id is not None:
            # 2017 re-split: train2014 stays train; val2014 is split between val2017 and train2017.
            u = rng.random()
            split2014 = "train2014" if u < 0.65 else "val2014"
            split2017 = "train2017" if u < 0.82 else "val2017"
        vg_id = (next(vg_coco) if coco_id is not None else next(vg_only)) if "vg" in cov else None
        out.append(
            DemoImage(
                scene=scene,
                jpeg=render(scene),
                sources=cov,
                coco_id=coco_id,
                split2014=split2014,
                split2017=split2017,
                vg_id=vg_id,
                flickr_id=rng.randint(10**9, 9 * 10**9)
                if coco_id is not None or rng.random() < 0.5
                else None,
                license=rng.randint(1, 8),
                date_captured=f"2013-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
                f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}",
            )
        )
    return out


class _Ids:
    """Increasing ids with realistic gaps, from a random start."""

    def __init__(self, rng: random.Random, start: int, end: int) -> None:
        self.rng = rng
        self.next = rng.randint(start, end)

    def __call__(self) -> int:
        self.next += self.rng.randint(1, 4)
        return self.next


def _coco_image(img: DemoImage, split: str) -> dict[str, Any]:
    assert img.coco_id is not None
    return {
        "license": img.license,
        "file_name": coco_file_name(img.coco_id, split),
        "coco_url": F.coco_url(img.coco_id, split),
        "height": img.scene.height,
        "width": img.scene.width,
        "date_captured": img.date_captured,
        "flickr_url": f"http://farm{img.license % 9 + 1}.staticflickr.com/{img.flickr_id % 9000 + 1000}/"
        f"{img.flickr_id}_{img.coco_id:010x}_z.jpg",
        "id": img.coco_id,
    }


def _coco_files(images: list[DemoImage], rng: random.Random) -> dict[str, Any]:
    cap_ids = _Ids(rng, 9_000, 20_000)
    inst_ids = _Ids(rng, 400_000, 900_000)
    caps: dict[int, list[dict[str, Any]]] = {}
    insts: dict[int, list[dict[str, Any]]] = {}
    coco = [i for i in images if i.coco_id is not None]
    for img in coco:
        assert img.coco_id is not None
        caps[img.coco_id] = [
            {"image_id": img.coco_id, "id": cap_ids(), "caption": c} for c in captions(img.scene, rng)
        ]
        insts[img.coco_id] = [
            {
                "segmentation": [s.polygon()],
                "area": s.area(),
                "iscrowd": 0,
                "image_id": img.coco_id,
                "bbox": [float(v) for v in s.bbox],
                "category_id": KINDS.index(s.kind) + 1,
                "id": inst_ids(),
            }
            for s in img.scene.shapes
        ]
    files: dict[str, Any] = {}
    for year in ("2014", "2017"):
        for part in ("train", "val"):
            split = f"{part}{year}"
            members = [i for i in coco if (i.split2014 if year == "2014" else i.split2017) == split]
            head = {
                "info": F.COCO_INFO[year],
                "licenses": F.COCO_LICENSES,
                "images": [_coco_image(i, split) for i in members],
            }
            files[f"coco/annotations/captions_{split}.json"] = {
                **head,
                "annotations": [c for i in members for c in caps[i.coco_id or 0]],
            }
            files[f"coco/annotations/instances_{split}.json"] = {
                **head,
                "annotations": [a for i in members for a in insts[i.coco_id or 0]],
                "categories": CATEGORIES,
            }
    return files


def _vqa_answers(answer: str, answer_type: str, rng: random.Random) -> list[dict[str, Any]]:
    """Ten annotator answers; the true answer is the clear majority, one may dissent."""
    texts = [answer] * 10
    if rng.random() < 0.4:
        if answer_type == "number":
            texts[9] = str(int(answer) + 1)
        elif answer_type == "yes/no":
            texts[9] = "no" if answer == "yes" else "yes"
    return [
        {"answer": t, "answer_confidence": "yes" if t == answer else "maybe", "answer_id": j + 1}
        for j, t in enumerate(texts)
    ]


def _vqav2_files(images: list[DemoImage], rng: random.Random) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for split in ("train2014", "val2014"):
        qs, anns = [], []
        for img in images:
            if "vqav2" not in img.sources or img.split2014 != split or img.coco_id is None:
                continue
            for n, qa in enumerate(vqa_questions(img.scene, rng, rng.randint(3, 5))):
                qid = img.coco_id * 1000 + n
                qs.append({"image_id": img.coco_id, "question": qa.question, "question_id": qid})
                anns.append(
                    {
                        "question_type": qa.question_type,
                        "multiple_choice_answer": qa.answer,
                        "answers": _vqa_answers(qa.answer, qa.answer_type, rng),
                        "image_id": img.coco_id,
                        "answer_type": qa.answer_type,
                        "question_id": qid,
                    }
                )
        files[f"vqav2/v2_OpenEnded_mscoco_{split}_questions.json"] = {
            **F.vqa_questions_header(split),
            "questions": qs,
        }
        files[f"vqav2/v2_mscoco_{split}_annotations.json"] = {
            **F.vqa_annotations_header(split),
            "annotations": anns,
            "data_type": "mscoco",
        }
    return files


def _normalise(raw: str, answer: str) -> str:
    """OK-VQA's `answer` is the raw answer lemmatised and without articles."""
    t = raw.removeprefix("the ")
    return answer if t in (answer, answer + "s", answer + "es") else t


def _okvqa_files(images: list[DemoImage], rng: random.Random) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for split in ("train2014", "val2014"):
        qs, anns = [], []
        for img in images:
            if "okvqa" not in img.sources or img.split2014 != split or img.coco_id is None:
                continue
            shapes = rng.sample(list(img.scene.shapes), min(len(img.scene.shapes), rng.choice((1, 1, 2))))
            for n, s in enumerate(shapes):
                question, k = knowledge_for(img.scene, s, rng)
                qid = img.coco_id * 10 + n
                raws = [k.answer] * 7 + [rng.choice(k.raw_variants) for _ in range(3)]
                rng.shuffle(raws)
                qs.append({"image_id": img.coco_id, "question": question, "question_id": qid})
                anns.append(
                    {
                        "image_id": img.coco_id,
                        "answer_type": "other",
                        "question_type": k.question_type,
                        "question_id": qid,
                        "answers": [
                            {
                                "answer_id": j + 1,
                                "raw_answer": r,
                                "answer_confidence": "yes",
                                "answer": _normalise(r, k.answer),
                            }
                            for j, r in enumerate(raws)
                        ],
                        "confidence": rng.randint(3, 5),
                    }
                )
        files[f"okvqa/OpenEnded_mscoco_{split}_questions.json"] = {
            **F.okvqa_questions_header(split),
            "questions": qs,
        }
        files[f"okvqa/mscoco_{split}_annotations.json"] = {
            **F.okvqa_annotations_header(split),
            "annotations": anns,
            "data_type": "mscoco",
            "question_types": F.OKVQA_QUESTION_TYPES,
        }
    return files


def aokvqa_question_id(rng: random.Random) -> str:
    """A-OKVQA ids are 22-character base-62 strings."""
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(22))


def _aokvqa_files(images: list[DemoImage], rng: random.Random) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for part in ("train", "val"):
        rows = []
        for img in images:
            if "aokvqa" not in img.sources or img.split2017 != f"{part}2017":
                continue
            s = rng.choice(img.scene.shapes)
            question, k = knowledge_for(img.scene, s, rng)
            choices = [k.answer, *k.distractors]
            rng.shuffle(choices)
            direct = [k.answer] * 8 + [_normalise(rng.choice(k.raw_variants), k.answer) for _ in range(2)]
            rng.shuffle(direct)
            rows.append(
                {
                    "split": part,
                    "image_id": img.coco_id,
                    "question_id": aokvqa_question_id(rng),
                    "question": question,
                    "choices": choices,
                    "correct_choice_idx": choices.index(k.answer),
                    "direct_answers": direct,
                    "difficult_direct_answer": False,
                    "rationales": rationales(img.scene, s, k),
                }
            )
        files[f"aokvqa/aokvqa_v1p0_{part}.json"] = rows
    return files


def _vg_files(images: list[DemoImage], rng: random.Random) -> dict[str, Any]:
    region_ids, qa_ids, object_ids = (
        _Ids(rng, 1_000, 4_000_000),
        _Ids(rng, 980_000, 1_400_000),
        _Ids(rng, 5_000, 3_000_000),
    )
    vg = sorted((i for i in images if i.vg_id is not None), key=lambda i: i.vg_id or 0)
    image_data, regions, qas, objects, attributes = [], [], [], [], []
    for img in vg:
        sc, vid = img.scene, img.vg_id
        assert vid is not None
        image_data.append(
            {
                "width": sc.width,
                "url": F.vg_image_url(vid),
                "height": sc.height,
                "image_id": vid,
                "coco_id": img.coco_id,
                "flickr_id": img.flickr_id,
            }
        )
        regions.append(
            {
                "regions": [
                    {
                        "region_id": region_ids(),
                        "width": w,
                        "height": h,
                        "image_id": vid,
                        "phrase": phrase,
                        "y": y,
                        "x": x,
                    }
                    for phrase, (x, y, w, h) in vg_regions(sc, rng)
                ],
                "id": vid,
            }
        )
        qas.append(
            {
                "id": vid,
                "qas": [
                    {
                        "a_objects": [],
                        "question": q,
                        "image_id": vid,
                        "qa_id": qa_ids(),
                        "answer": a,
                        "q_objects": [],
                    }
                    for q, a in vg_qas(sc, rng)
                ],
            }
        )
        objs = [(s.kind, s.bbox, s.colour) for s in sc.shapes]
        objs.append(("background", (0, 0, sc.width, sc.height), sc.background))
        listed = [
            {
                "synsets": [_SYNSETS[name]],
                "h": h,
                "object_id": object_ids(),
                "names": [name],
                "w": w,
                "y": y,
                "x": x,
            }
            for name, (x, y, w, h), _ in objs
        ]
        objects.append({"image_id": vid, "objects": listed})
        # attributes.json repeats each object with its attributes: here the colour it is drawn in
        attributes.append(
            {
                "image_id": vid,
                "attributes": [
                    {**o, "attributes": [colour]} for o, (_, _, colour) in zip(listed, objs, strict=True)
                ],
            }
        )
    return {
        "vg/image_data.json": image_data,
        "vg/region_descriptions.json": regions,
        "vg/question_answers.json": qas,
        "vg/objects.json": objects,
        "vg/attributes.json": attributes,
    }


VISDIAL_OPTIONS = 100  # answer options per round, as in the release
VISDIAL_ROUNDS = 10


def plan_visdial(images: list[DemoImage], rng: random.Random) -> list[DemoImage]:
    """`images` with VisDial's train split on every picture VQAv2 asks about, plus one new
    picture for each of VisDial's own splits (val, test)."""
    out = [
        replace(img, visdial_split="train", visdial_id=img.coco_id)
        if img.coco_id is not None and "vqav2" in img.sources
        else img
        for img in images
    ]
    ids = iter(rng.sample(range(100_000, 600_000), len(VISDIAL_IMAGE_SPLITS)))
    for split in VISDIAL_IMAGE_SPLITS:
        scene = random_scene(rng)
        out.append(
            DemoImage(
                scene=scene,
                jpeg=render(scene),
                sources=frozenset({"visdial"}),
                coco_id=None,
                split2014=None,
                split2017=None,
                vg_id=None,
                flickr_id=None,
                license=0,
                date_captured="",
                visdial_split=split,
                visdial_id=next(ids),
            )
        )
    return out


def _visdial_split(images: list[DemoImage], split: str, rng: random.Random) -> dict[str, Any]:
    """One VisDial file: questions and answers stored once and referred to by index; a train/val
    round carries 100 answer options with `gt_index` at its answer, a test dialog stops at a
    round whose answer is withheld (`round_id` = its number, only options given)."""
    dialogs = []
    for img in images:
        if img.visdial_split != split:
            continue
        rounds = visdial_rounds(img.scene, rng, VISDIAL_ROUNDS)
        if split == "test":
            rounds = rounds[: rng.randint(4, VISDIAL_ROUNDS)]
        dialogs.append((img, rounds))
    questions = list(dict.fromkeys(q for _, rounds in dialogs for q, _ in rounds))
    answers = list(dict.fromkeys([*(a for _, rounds in dialogs for _, a in rounds), *VISDIAL_OTHER_ANSWERS]))
    rng.shuffle(questions)
    rng.shuffle(answers)
    q_index = {q: i for i, q in enumerate(questions)}
    a_index = {a: i for i, a in enumerate(answers)}

    def options(answer: str) -> tuple[list[int], int]:
        opts = rng.sample([i for i in range(len(answers)) if i != a_index[answer]], VISDIAL_OPTIONS - 1)
        at = rng.randrange(VISDIAL_OPTIONS)
        opts.insert(at, a_index[answer])
        return opts, at

    out = []
    for img, rounds in dialogs:
        dialog: list[dict[str, Any]] = []
        for n, (q, a) in enumerate(rounds, start=1):
            if split == "test" and n == len(rounds):
                dialog.append({"question": q_index[q], "answer_options": options(a)[0]})
            elif split == "test":
                dialog.append({"question": q_index[q], "answer": a_index[a]})
            else:
                opts, gt = options(a)
                dialog.append(
                    {"question": q_index[q], "answer": a_index[a], "answer_options": opts, "gt_index": gt}
                )
        entry: dict[str, Any] = {
            "image_id": img.visdial_id,
            "caption": visdial_caption(img.scene),
            "dialog": dialog,
        }
        if split == "test":
            entry["round_id"] = len(dialog)
        out.append(entry)
    return {
        "version": "1.0",
        "split": split,
        "data": {"questions": questions, "answers": answers, "dialogs": out},
    }


def visdial_files(images: list[DemoImage], rng: random.Random) -> dict[str, Any]:
    """Relative path -> JSON document of VisDial v1.0's three files."""
    return {f"visdial/visdial_1.0_{s}.json": _visdial_split(images, s, rng) for s in ("train", "val", "test")}


def annotation_files(images: list[DemoImage], rng: random.Random) -> dict[str, Any]:
    """Relative path -> JSON document for every official annotation file of the five sources
    before VisDial (see `visdial_files`)."""
    return {
        **_coco_files(images, rng),
        **_vqav2_files(images, rng),
        **_okvqa_files(images, rng),
        **_aokvqa_files(images, rng),
        **_vg_files(images, rng),
    }


def image_files(images: list[DemoImage]) -> Iterator[tuple[str, bytes]]:
    """(relative path, JPEG bytes) for every copy of every picture, as the sources distribute them."""
    for img in images:
        if img.coco_id is not None:
            for split in (img.split2014, img.split2017):
                assert split is not None
                yield f"coco/{split}/{coco_file_name(img.coco_id, split)}", img.jpeg
        if img.vg_id is not None:
            yield f"vg/VG_100K/{img.vg_id}.jpg", img.jpeg
        if img.visdial_split in VISDIAL_IMAGE_SPLITS and img.visdial_id is not None:
            folder = VISDIAL_IMAGE_SPLITS[img.visdial_split]
            yield f"visdial/{folder}/{visdial_file_name(img.visdial_id, img.visdial_split)}", img.jpeg
