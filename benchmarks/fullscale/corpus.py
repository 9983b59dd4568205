"""Full-scale synthetic corpus for benchmarks: the official files at their real sizes.

`fullscale.write_full(out, scale=1.0)` writes COCO 2014+2017 captions and instances (123,287 images,
616,767 captions), VQAv2 (658,111 questions x 10 answers), OK-VQA (14,055), A-OKVQA (18,201)
Visual Genome (108,077 images, 5.4M regions, 1.45M QA, 1.3M objects: about a third of the
real 3.8M, enough to exercise the object path; attributes.json repeats them with attributes)
and Visual Dialog v1.0 (one 10-round dialog per COCO 2014 picture, 123,287, each round with its
100 answer options; 2,064 val and 8,000 test dialogs on pictures of their own).
Every id links up as in the real releases: VQA question ids are image_id*1000+n, OK-VQA
image_id*10+n, and about half of the VG images carry a `coco_id` that exists in the COCO files.

Each file is produced by one job that streams chunks through `JsonListWriter`; jobs share only
the `Plan` (ids, sizes, splits) and run in parallel processes. Each job has its own RNG seeded
from (seed, job name), so the bytes depend only on the seed and scale, not on scheduling.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from unimm.keys import coco_file_name
from unimm.sample import formats as F

from .jsonstream import JsonListWriter
from .words import (
    ADJECTIVES,
    CAPTION_TEMPLATES,
    NOUNS,
    NUMBERS,
    PLACES,
    PREPOSITIONS,
    REGION_TEMPLATES,
    VERBS,
    answer_word_pool,
)

# Sizes of the real releases (train + val; A-OKVQA without its unlabelled test split).
FULL: dict[str, int] = {
    "coco_train_images": 82_783,
    "coco_val_images": 40_504,
    "coco_val2017_images": 5_000,
    "coco_train_captions": 414_113,
    "coco_val_captions": 202_654,
    "coco_train_instances": 604_907,
    "coco_val_instances": 291_875,
    "vqav2_train_questions": 443_757,
    "vqav2_val_questions": 214_354,
    "okvqa_train_images": 8_998,
    "okvqa_val_images": 5_000,
    "okvqa_train_questions": 9_009,
    "okvqa_val_questions": 5_046,
    "aokvqa_train": 17_056,
    "aokvqa_val": 1_145,
    "vg_images": 108_077,
    "vg_coco_images": 51_208,
    "vg_regions": 5_408_689,
    "vg_qas": 1_445_322,
    "vg_objects": 1_296_924,
    "visdial_val": 2_064,
    "visdial_test": 8_000,
}
CHUNK = 4_000  # images per chunk: bounds memory to a few tens of MB per job

COCO_CATEGORIES: list[dict[str, Any]] = [
    {"supercategory": sup, "id": i, "name": name}
    for sup, items in (
        ("person", ((1, "person"),)),
        (
            "vehicle",
            (
                (2, "bicycle"),
                (3, "car"),
                (4, "motorcycle"),
                (5, "airplane"),
                (6, "bus"),
                (7, "train"),
                (8, "truck"),
                (9, "boat"),
            ),
        ),
        (
            "outdoor",
            (
                (10, "traffic light"),
                (11, "fire hydrant"),
                (13, "stop sign"),
                (14, "parking meter"),
                (15, "bench"),
            ),
        ),
        (
            "animal",
            (
                (16, "bird"),
                (17, "cat"),
                (18, "dog"),
                (19, "horse"),
                (20, "sheep"),
                (21, "cow"),
                (22, "elephant"),
                (23, "bear"),
                (24, "zebra"),
                (25, "giraffe"),
            ),
        ),
        ("accessory", ((27, "backpack"), (28, "umbrella"), (31, "handbag"), (32, "tie"), (33, "suitcase"))),
        (
            "sports",
            (
                (34, "frisbee"),
                (35, "skis"),
                (36, "snowboard"),
                (37, "sports ball"),
                (38, "kite"),
                (39, "baseball bat"),
                (40, "baseball glove"),
                (41, "skateboard"),
                (42, "surfboard"),
                (43, "tennis racket"),
            ),
        ),
        (
            "kitchen",
            (
                (44, "bottle"),
                (46, "wine glass"),
                (47, "cup"),
                (48, "fork"),
                (49, "knife"),
                (50, "spoon"),
                (51, "bowl"),
            ),
        ),
        (
            "food",
            (
                (52, "banana"),
                (53, "apple"),
                (54, "sandwich"),
                (55, "orange"),
                (56, "broccoli"),
                (57, "carrot"),
                (58, "hot dog"),
                (59, "pizza"),
                (60, "donut"),
                (61, "cake"),
            ),
        ),
        (
            "furniture",
            (
                (62, "chair"),
                (63, "couch"),
                (64, "potted plant"),
                (65, "bed"),
                (67, "dining table"),
                (70, "toilet"),
            ),
        ),
        (
            "electronic",
            ((72, "tv"), (73, "laptop"), (74, "mouse"), (75, "remote"), (76, "keyboard"), (77, "cell phone")),
        ),
        ("appliance", ((78, "microwave"), (79, "oven"), (80, "toaster"), (81, "sink"), (82, "refrigerator"))),
        (
            "indoor",
            (
                (84, "book"),
                (85, "clock"),
                (86, "vase"),
                (87, "scissors"),
                (88, "teddy bear"),
                (89, "hair drier"),
                (90, "toothbrush"),
            ),
        ),
    )
    for i, name in items
]
_IMAGE_SIZES = np.array(
    [
        (640, 480),
        (640, 427),
        (480, 640),
        (500, 375),
        (640, 428),
        (427, 640),
        (612, 612),
        (640, 360),
        (800, 600),
        (500, 333),
    ]
)


def scaled(scale: float) -> dict[str, int]:
    """Target counts at a fraction of full size (at least one of everything)."""
    out = {k: max(1, round(v * scale)) for k, v in FULL.items()}
    out["coco_val2017_images"] = min(out["coco_val2017_images"], out["coco_val_images"])
    out["vg_coco_images"] = min(
        out["vg_coco_images"], out["vg_images"] // 2 + 1, out["coco_train_images"] + out["coco_val_images"]
    )
    out["okvqa_train_images"] = min(out["okvqa_train_images"], out["coco_train_images"])
    out["okvqa_val_images"] = min(out["okvqa_val_images"], out["coco_val_images"])
    return out


@dataclass(frozen=True)
class Plan:
    """Everything the jobs must agree on. COCO images are ordered train2014, then the val2014
    images that form val2017, then the rest of val2014 (which joined train2017)."""

    seed: int
    counts: dict[str, int]
    coco_ids: np.ndarray
    coco_wh: np.ndarray
    coco_license: np.ndarray
    coco_flickr: np.ndarray
    vg_ids: np.ndarray
    vg_coco: np.ndarray  # index into coco_ids, -1 where the VG image is not a COCO one
    vg_wh: np.ndarray

    @property
    def n_train(self) -> int:
        return self.counts["coco_train_images"]

    @property
    def n_coco(self) -> int:
        return self.counts["coco_train_images"] + self.counts["coco_val_images"]

    def segments(self) -> list[tuple[int, int, str, str]]:
        """(start, stop, 2014 split, 2017 split) blocks of the COCO image order."""
        t, v17 = self.n_train, self.counts["coco_val2017_images"]
        return [
            (0, t, "train2014", "train2017"),
            (t, t + v17, "val2014", "val2017"),
            (t + v17, self.n_coco, "val2014", "train2017"),
        ]


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def make_plan(scale: float, seed: int) -> Plan:
    """Ids, sizes and splits of every image, drawn from the seed."""
    c = scaled(scale)
    rng = _rng(seed, "plan")
    n_coco = c["coco_train_images"] + c["coco_val_images"]
    coco_ids = rng.choice(np.arange(1, 581_930), size=n_coco, replace=False)
    n_vg, n_vg_coco = c["vg_images"], c["vg_coco_images"]
    # VG numbers its images 1..~150k, then a second block from 2,315,000 (the VG_100K_2 folder).
    first = int(n_vg * 0.6)
    vg_ids = np.concatenate(
        [
            np.sort(rng.choice(np.arange(1, int(first * 1.4) + 2), size=first, replace=False)),
            2_315_000
            + np.sort(rng.choice(np.arange(int((n_vg - first) * 1.4) + 2), size=n_vg - first, replace=False)),
        ]
    )
    vg_coco = np.full(n_vg, -1, dtype=np.int64)
    vg_coco[rng.choice(n_vg, size=n_vg_coco, replace=False)] = rng.choice(
        n_coco, size=n_vg_coco, replace=False
    )
    coco_wh = _IMAGE_SIZES[rng.integers(len(_IMAGE_SIZES), size=n_coco)]
    vg_wh = np.where(
        (vg_coco >= 0)[:, None],
        coco_wh[np.maximum(vg_coco, 0)],
        _IMAGE_SIZES[rng.integers(len(_IMAGE_SIZES), size=n_vg)] * 5 // 4,
    )
    return Plan(
        seed=seed,
        counts=c,
        coco_ids=coco_ids,
        coco_wh=coco_wh,
        coco_license=rng.integers(1, 9, size=n_coco),
        coco_flickr=rng.integers(10**9, 9 * 10**9, size=n_coco),
        vg_ids=vg_ids,
        vg_coco=vg_coco,
        vg_wh=vg_wh,
    )


def spread(
    rng: np.random.Generator, total: int, n: int, *, base: int = 0, spread_shape: float = 0.0
) -> np.ndarray:
    """Per-item counts summing exactly to `total`: `base` each, the rest multinomially
    (gamma-weighted when spread_shape > 0, for the long tails of VG)."""
    base = min(base, total // max(n, 1))
    if spread_shape > 0:
        w = rng.gamma(spread_shape, size=n)
        p = w / w.sum()
    else:
        p = np.full(n, 1.0 / n)
    return base + rng.multinomial(total - base * n, p)


def _ids(rng: np.random.Generator, start: int, n: int) -> list[int]:
    """n increasing ids with small random gaps (real ids are not contiguous)."""
    return (start + np.cumsum(rng.integers(1, 4, size=n))).tolist()


def fill(
    rng: np.random.Generator,
    templates: tuple[str, ...],
    n: int,
    *,
    upper_last: bool = False,
    which: list[int] | None = None,
) -> list[str]:
    """n sentences from random templates (or the templates `which` names) and random words."""
    t = rng.integers(len(templates), size=n).tolist() if which is None else which
    a, a2 = rng.integers(len(ADJECTIVES), size=(2, n)).tolist()
    nn, n2 = rng.integers(len(NOUNS), size=(2, n)).tolist()
    v = rng.integers(len(VERBS), size=n).tolist()
    p = rng.integers(len(PREPOSITIONS), size=n).tolist()
    pl = rng.integers(len(PLACES), size=n).tolist()
    num = rng.integers(len(NUMBERS), size=n).tolist()
    last = len(templates) - 1
    out = []
    for ti, ai, a2i, ni, n2i, vi, pi, pli, nui in zip(t, a, a2, nn, n2, v, p, pl, num, strict=True):
        s = templates[ti].format(
            a=ADJECTIVES[ai],
            a2=ADJECTIVES[a2i],
            n=NOUNS[ni],
            n2=NOUNS[n2i],
            v=VERBS[vi],
            p=PREPOSITIONS[pi],
            pl=PLACES[pli],
            N=NUMBERS[nui].capitalize(),
        )
        out.append(s.upper() if upper_last and ti == last else s)
    return out


def _chunks(start: int, stop: int) -> Iterator[tuple[int, int]]:
    for a in range(start, stop, CHUNK):
        yield a, min(a + CHUNK, stop)


# --------------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------------
def _coco_images(plan: Plan, idx: np.ndarray, split: str) -> list[dict[str, Any]]:
    out = []
    for i in idx.tolist():
        cid = int(plan.coco_ids[i])
        w, h = plan.coco_wh[i].tolist()
        fl = int(plan.coco_flickr[i])
        out.append(
            {
                "license": int(plan.coco_license[i]),
                "file_name": coco_file_name(cid, split),
                "coco_url": F.coco_url(cid, split),
                "height": h,
                "width": w,
                "date_captured": f"2013-{cid % 12 + 1:02d}-{cid % 28 + 1:02d} {cid % 24:02d}:{cid % 60:02d}:{fl % 60:02d}",
                "flickr_url": f"http://farm{fl % 9 + 1}.staticflickr.com/{fl % 9000 + 1000}/{fl}_{cid:010x}_z.jpg",
                "id": cid,
            }
        )
    return out


def _coco_writers(plan: Plan, root: Path, role: str, extra_tail: dict[str, Any]) -> dict[str, JsonListWriter]:
    segs = plan.segments()
    writers = {}
    for split in ("train2014", "val2014", "train2017", "val2017"):
        idx = np.concatenate([np.arange(a, b) for a, b, s14, s17 in segs if split in (s14, s17)])
        head = {
            "info": F.COCO_INFO[split[-4:]],
            "licenses": F.COCO_LICENSES,
            "images": _coco_images(plan, idx, split),
        }
        writers[split] = JsonListWriter(
            root / f"coco/annotations/{role}_{split}.json", key="annotations", head=head, tail=extra_tail
        )
    return writers


def _coco_job(
    plan: Plan,
    root: Path,
    role: str,
    make: Callable[[np.random.Generator, np.ndarray, np.ndarray, list[int]], list[dict[str, Any]]],
) -> dict[str, int]:
    """Shared driver of captions and instances: per-image counts, then chunks routed to the
    2014 and the 2017 file of each image (same annotation ids in both, as in the releases)."""
    rng = _rng(plan.seed, f"coco_{role}")
    c, t = plan.counts, plan.n_train
    key = "captions" if role == "captions" else "instances"
    base = 5 if role == "captions" else 0
    per = np.concatenate(
        [
            spread(rng, c[f"coco_train_{key}"], t, base=base, spread_shape=0 if base else 2.0),
            spread(rng, c[f"coco_val_{key}"], plan.n_coco - t, base=base, spread_shape=0 if base else 2.0),
        ]
    )
    ids = _ids(rng, 9_000 if role == "captions" else 150_000, int(per.sum()))
    offsets = np.concatenate([[0], np.cumsum(per)])
    writers = _coco_writers(
        plan, Path(root), role, {} if role == "captions" else {"categories": COCO_CATEGORIES}
    )
    try:
        for start, stop, s14, s17 in plan.segments():
            for a, b in _chunks(start, stop):
                rows = make(rng, np.arange(a, b), per[a:b], ids[offsets[a] : offsets[b]])
                writers[s14].extend(rows)
                writers[s17].extend(rows)
    finally:
        for w in writers.values():
            w.close()
    return {f"coco/annotations/{role}_{s}.json": w.count for s, w in writers.items()}


def _make_captions(plan: Plan) -> Callable[..., list[dict[str, Any]]]:
    def make(
        rng: np.random.Generator, idx: np.ndarray, per: np.ndarray, ids: list[int]
    ) -> list[dict[str, Any]]:
        image_ids = np.repeat(plan.coco_ids[idx], per).tolist()
        texts = fill(rng, CAPTION_TEMPLATES, len(ids), upper_last=True)
        return [{"image_id": i, "id": k, "caption": s} for i, k, s in zip(image_ids, ids, texts, strict=True)]

    return make


def _make_instances(plan: Plan) -> Callable[..., list[dict[str, Any]]]:
    cats = [c["id"] for c in COCO_CATEGORIES]

    def make(
        rng: np.random.Generator, idx: np.ndarray, per: np.ndarray, ids: list[int]
    ) -> list[dict[str, Any]]:
        n = len(ids)
        wh = np.repeat(plan.coco_wh[idx], per, axis=0).astype(float)
        x = np.round(rng.random(n) * (wh[:, 0] - 8), 2)
        y = np.round(rng.random(n) * (wh[:, 1] - 8), 2)
        w = np.round(4 + rng.random(n) * (wh[:, 0] - x - 4), 2)
        h = np.round(4 + rng.random(n) * (wh[:, 1] - y - 4), 2)
        area = np.round(w * h * rng.uniform(0.45, 0.9, size=n), 4)
        crowd = (rng.random(n) < 0.01).astype(int)
        cat = np.asarray(cats)[rng.integers(len(cats), size=n)]
        image_ids = np.repeat(plan.coco_ids[idx], per).tolist()
        return [
            {
                "segmentation": [[xi, yi, xi + wi, yi, xi + wi, yi + hi, xi, yi + hi]],
                "area": ar,
                "iscrowd": cr,
                "image_id": ii,
                "bbox": [xi, yi, wi, hi],
                "category_id": ci,
                "id": k,
            }
            for xi, yi, wi, hi, ar, cr, ii, ci, k in zip(
                x.tolist(),
                y.tolist(),
                w.tolist(),
                h.tolist(),
                area.tolist(),
                crowd.tolist(),
                image_ids,
                cat.tolist(),
                ids,
                strict=True,
            )
        ]

    return make


def job_coco_captions(plan: Plan, root: Path) -> dict[str, int]:
    return _coco_job(plan, root, "captions", _make_captions(plan))


def job_coco_instances(plan: Plan, root: Path) -> dict[str, int]:
    return _coco_job(plan, root, "instances", _make_instances(plan))


# --------------------------------------------------------------------------------------------
# VQAv2 and OK-VQA
# --------------------------------------------------------------------------------------------
_COLOURS = ADJECTIVES[:13]
_OPEN = answer_word_pool()
# (question template, question_type, answer_type, answer pool); pools: None = yes/no, () = number
VQA_TEMPLATES: tuple[tuple[str, str, str, tuple[str, ...] | None], ...] = (
    ("What color is the {n}?", "what color is the", "other", _COLOURS),
    ("How many {n}s are there?", "how many", "number", ()),
    ("How many {n}s are {v} {p} the {n2}?", "how many", "number", ()),
    ("Is there a {n} in the picture?", "is there a", "yes/no", None),
    ("Is the {n} {a}?", "is the", "yes/no", None),
    ("What is the {n} {v} {p}?", "what is the", "other", NOUNS),
    ("Are there any {n}s {p} the {pl}?", "are there", "yes/no", None),
    ("Is this a {pl}?", "is this a", "yes/no", None),
    ("Where is the {n}?", "where is the", "other", PLACES),
    ("What kind of {n} is this?", "what kind of", "other", ADJECTIVES),
    ("Does the {n} look {a}?", "does the", "yes/no", None),
    ("What is {p} the {n}?", "what is", "other", NOUNS),
)
OKVQA_TEMPLATES: tuple[str, ...] = (
    "What is the {n} in this picture usually made of?",
    "Which country is famous for this kind of {n}?",
    "What brand of {n} is shown here?",
    "What do people usually do with a {n} like this {p} a {pl}?",
    "Which animal would most likely be found {p} this {pl}?",
    "What season is it, judging by the {a} {n}?",
    "What is the name of the sport played with this {n}?",
    "In what decade was this kind of {n} invented?",
)


def _answers10(
    rng: np.random.Generator, majority: list[str], pools: list[tuple[str, ...]]
) -> list[list[str]]:
    """Ten annotator answers per question: the majority answer, with a few dissenting ones."""
    n = len(majority)
    dissent = (rng.random((n, 10)) < 0.12).tolist()
    pick = rng.integers(1 << 30, size=(n, 10)).tolist()
    return [
        [pool[k % len(pool)] if d else m for d, k in zip(ds, ks, strict=True)]
        for m, pool, ds, ks in zip(majority, pools, dissent, pick, strict=True)
    ]


def _pool_answer(pool: tuple[str, ...] | None, k: int) -> str:
    if pool is None:
        return ("yes", "no")[k % 2]
    if not pool:
        return str(k % 7)
    return pool[k % len(pool)]


_VQA_TEXTS = tuple(t[0] for t in VQA_TEMPLATES)


def _dissent_pool(pool: tuple[str, ...] | None) -> tuple[str, ...]:
    """What a dissenting annotator answers instead."""
    return ("yes", "no") if pool is None else pool or ("0", "1", "2", "3", "4", "5")


def job_vqav2(plan: Plan, root: Path) -> dict[str, int]:
    rng = _rng(plan.seed, "vqav2")
    c, t = plan.counts, plan.n_train
    out: dict[str, int] = {}
    for split, lo, hi, total in (
        ("train2014", 0, t, c["vqav2_train_questions"]),
        ("val2014", t, plan.n_coco, c["vqav2_val_questions"]),
    ):
        per = spread(rng, total, hi - lo, base=3)
        qpath = root / f"vqav2/v2_OpenEnded_mscoco_{split}_questions.json"
        apath = root / f"vqav2/v2_mscoco_{split}_annotations.json"
        with (
            JsonListWriter(qpath, key="questions", head=F.vqa_questions_header(split)) as qw,
            JsonListWriter(
                apath, key="annotations", head=F.vqa_annotations_header(split), tail={"data_type": "mscoco"}
            ) as aw,
        ):
            for a, b in _chunks(lo, hi):
                counts = per[a - lo : b - lo]
                image_ids = np.repeat(plan.coco_ids[a:b], counts).tolist()
                # question_id = image_id * 1000 + n, n counting the image's questions
                n_in_image = (
                    np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
                ).tolist()
                n = len(image_ids)
                kinds = rng.integers(len(VQA_TEMPLATES), size=n).tolist()
                texts = fill(rng, _VQA_TEXTS, n, which=kinds)
                ks = rng.integers(1 << 30, size=n).tolist()
                majority = [_pool_answer(VQA_TEMPLATES[k][3], r) for k, r in zip(kinds, ks, strict=True)]
                pools = [_dissent_pool(VQA_TEMPLATES[k][3]) for k in kinds]
                tens = _answers10(rng, majority, pools)
                conf = rng.choice(
                    np.array(["yes", "maybe", "no"]), p=[0.85, 0.12, 0.03], size=(n, 10)
                ).tolist()
                qs, anns = [], []
                for iid, j, q, k, m, ten, cf in zip(
                    image_ids, n_in_image, texts, kinds, majority, tens, conf, strict=True
                ):
                    qid = iid * 1000 + j
                    qs.append({"image_id": iid, "question": q, "question_id": qid})
                    anns.append(
                        {
                            "question_type": VQA_TEMPLATES[k][1],
                            "multiple_choice_answer": m,
                            "answers": [
                                {"answer": x, "answer_confidence": y, "answer_id": z + 1}
                                for z, (x, y) in enumerate(zip(ten, cf, strict=True))
                            ],
                            "image_id": iid,
                            "answer_type": VQA_TEMPLATES[k][2],
                            "question_id": qid,
                        }
                    )
                qw.extend(qs)
                aw.extend(anns)
        out[str(qpath.relative_to(root))] = qw.count
        out[str(apath.relative_to(root))] = aw.count
    return out


def _pick_images(rng: np.random.Generator, lo: int, hi: int, n: int) -> np.ndarray:
    """n distinct COCO image positions from [lo, hi), in file order."""
    return np.sort(rng.choice(np.arange(lo, hi), size=min(n, hi - lo), replace=False))


def job_okvqa(plan: Plan, root: Path) -> dict[str, int]:
    rng = _rng(plan.seed, "okvqa")
    c, t = plan.counts, plan.n_train
    codes = list(F.OKVQA_QUESTION_TYPES)
    out: dict[str, int] = {}
    for split, lo, hi, n_img, total in (
        ("train2014", 0, t, c["okvqa_train_images"], c["okvqa_train_questions"]),
        ("val2014", t, plan.n_coco, c["okvqa_val_images"], c["okvqa_val_questions"]),
    ):
        pos = _pick_images(rng, lo, hi, n_img)
        per = spread(rng, total, len(pos), base=1)
        image_ids = np.repeat(plan.coco_ids[pos], per).tolist()
        n_in_image = (np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)).tolist()
        n = len(image_ids)
        texts = fill(rng, OKVQA_TEMPLATES, n)
        majority = rng.choice(np.array(_OPEN), size=n).tolist()
        raws = _answers10(rng, majority, [_OPEN] * n)
        qtype = rng.choice(np.array(codes), size=n).tolist()
        qs, anns = [], []
        for iid, j, q, ten, qt in zip(image_ids, n_in_image, texts, raws, qtype, strict=True):
            qid = iid * 10 + j  # OK-VQA numbers questions image_id*10 + n
            qs.append({"image_id": iid, "question": q, "question_id": qid})
            anns.append(
                {
                    "image_id": iid,
                    "answer_type": "other",
                    "question_type": qt,
                    "question_id": qid,
                    "answers": [
                        {
                            "answer_id": z + 1,
                            "raw_answer": r if z % 4 else f"the {r}",
                            "answer_confidence": "yes",
                            "answer": r,
                        }
                        for z, r in enumerate(ten)
                    ],
                    "confidence": 3 + (qid % 3),
                }
            )
        qpath = root / f"okvqa/OpenEnded_mscoco_{split}_questions.json"
        apath = root / f"okvqa/mscoco_{split}_annotations.json"
        with JsonListWriter(qpath, key="questions", head=F.okvqa_questions_header(split)) as qw:
            qw.extend(qs)
        with JsonListWriter(
            apath,
            key="annotations",
            head=F.okvqa_annotations_header(split),
            tail={"data_type": "mscoco", "question_types": F.OKVQA_QUESTION_TYPES},
        ) as aw:
            aw.extend(anns)
        out[str(qpath.relative_to(root))] = qw.count
        out[str(apath.relative_to(root))] = aw.count
    return out


_B62 = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))


def job_aokvqa(plan: Plan, root: Path) -> dict[str, int]:
    rng = _rng(plan.seed, "aokvqa")
    c, t, v17 = plan.counts, plan.n_train, plan.counts["coco_val2017_images"]
    train2017 = np.concatenate([np.arange(0, t), np.arange(t + v17, plan.n_coco)])
    out: dict[str, int] = {}
    for part, candidates, total in (
        ("train", train2017, c["aokvqa_train"]),
        ("val", np.arange(t, t + v17), c["aokvqa_val"]),
    ):
        pos = np.sort(rng.choice(candidates, size=min(total, len(candidates)), replace=False))
        per = spread(rng, total, len(pos), base=1)
        image_ids = np.repeat(plan.coco_ids[pos], per).tolist()
        n = len(image_ids)
        qids = ["".join(r) for r in _B62[rng.integers(62, size=(n, 22))].tolist()]
        texts = fill(rng, OKVQA_TEMPLATES, n)
        choices = np.array(_OPEN)[rng.integers(len(_OPEN), size=(n, 4))].tolist()
        correct = rng.integers(4, size=n).tolist()
        rats = fill(rng, CAPTION_TEMPLATES[:-1], 3 * n)
        difficult = (rng.random(n) < 0.05).tolist()
        direct = _answers10(rng, [ch[k] for ch, k in zip(choices, correct, strict=True)], [_OPEN] * n)
        rows = [
            {
                "split": part,
                "image_id": iid,
                "question_id": qid,
                "question": q,
                "choices": ch,
                "correct_choice_idx": k,
                "direct_answers": d,
                "difficult_direct_answer": df,
                "rationales": rats[3 * i : 3 * i + 3],
            }
            for i, (iid, qid, q, ch, k, d, df) in enumerate(
                zip(image_ids, qids, texts, choices, correct, direct, difficult, strict=True)
            )
        ]
        path = root / f"aokvqa/aokvqa_v1p0_{part}.json"
        with JsonListWriter(path) as w:
            w.extend(rows)
        out[str(path.relative_to(root))] = w.count
    return out


# --------------------------------------------------------------------------------------------
# Visual Genome
# --------------------------------------------------------------------------------------------
def _vg_coco_id(plan: Plan, i: int) -> int | None:
    k = int(plan.vg_coco[i])
    return int(plan.coco_ids[k]) if k >= 0 else None


def job_vg_image_data(plan: Plan, root: Path) -> dict[str, int]:
    rng = _rng(plan.seed, "vg_image_data")
    flickr = rng.integers(10**9, 9 * 10**9, size=len(plan.vg_ids)).tolist()
    has_flickr = (rng.random(len(plan.vg_ids)) < 0.8).tolist()
    path = root / "vg/image_data.json"
    with JsonListWriter(path) as w:
        for a, b in _chunks(0, len(plan.vg_ids)):
            w.extend(
                [
                    {
                        "width": int(plan.vg_wh[i, 0]),
                        "url": F.vg_image_url(int(plan.vg_ids[i])),
                        "height": int(plan.vg_wh[i, 1]),
                        "image_id": int(plan.vg_ids[i]),
                        "coco_id": _vg_coco_id(plan, i),
                        "flickr_id": flickr[i] if has_flickr[i] else None,
                    }
                    for i in range(a, b)
                ]
            )
    return {"vg/image_data.json": w.count}


def _vg_boxes(rng: np.random.Generator, wh: np.ndarray) -> tuple[list[int], list[int], list[int], list[int]]:
    n = len(wh)
    x = (rng.random(n) * (wh[:, 0] - 12)).astype(np.int64)
    y = (rng.random(n) * (wh[:, 1] - 12)).astype(np.int64)
    w = 8 + (rng.random(n) * (wh[:, 0] - x - 8)).astype(np.int64)
    h = 8 + (rng.random(n) * (wh[:, 1] - y - 8)).astype(np.int64)
    return x.tolist(), y.tolist(), w.tolist(), h.tolist()


def _vg_per_image_job(
    plan: Plan,
    root: Path,
    name: str,
    total: int,
    shape: float,
    make: Callable[[np.random.Generator, np.ndarray, list[int], list[int]], list[dict[str, Any]]],
    wrap: Callable[[int, list[dict[str, Any]]], dict[str, Any]],
    file: str | None = None,
) -> dict[str, int]:
    """Driver of the per-image VG files: counts per image, items made a chunk at a time.

    `name` seeds the RNG and names the file unless `file` is given: two files made under one
    name draw the same counts, ids and boxes."""
    rng = _rng(plan.seed, name)
    n_img = len(plan.vg_ids)
    per = spread(rng, total, n_img, spread_shape=shape)
    ids = _ids(rng, 1_000, total)
    offsets = np.concatenate([[0], np.cumsum(per)])
    path = root / f"vg/{file or name}.json"
    items = 0
    with JsonListWriter(path) as w:
        for a, b in _chunks(0, n_img):
            wh = np.repeat(plan.vg_wh[a:b], per[a:b], axis=0)
            image_ids = np.repeat(plan.vg_ids[a:b], per[a:b]).tolist()
            made = make(rng, wh, image_ids, ids[offsets[a] : offsets[b]])
            rows, o = [], 0
            for i, k in zip(range(a, b), per[a:b].tolist(), strict=True):
                rows.append(wrap(int(plan.vg_ids[i]), made[o : o + k]))
                o += k
            items += len(made)
            w.extend(rows)
    return {f"vg/{file or name}.json": items}  # regions / QA / objects, not images (image_data counts those)


def job_vg_regions(plan: Plan, root: Path) -> dict[str, int]:
    def make(
        rng: np.random.Generator, wh: np.ndarray, image_ids: list[int], ids: list[int]
    ) -> list[dict[str, Any]]:
        x, y, w, h = _vg_boxes(rng, wh)
        phrases = fill(rng, REGION_TEMPLATES, len(ids))
        return [
            {"region_id": r, "width": wi, "height": hi, "image_id": ii, "phrase": p, "y": yi, "x": xi}
            for r, wi, hi, ii, p, yi, xi in zip(ids, w, h, image_ids, phrases, y, x, strict=True)
        ]

    return _vg_per_image_job(
        plan,
        root,
        "region_descriptions",
        plan.counts["vg_regions"],
        3.0,
        make,
        lambda vid, rows: {"regions": rows, "id": vid},
    )


VG_QUESTIONS: tuple[str, ...] = (
    "What color is the {n}?",
    "Where is the {n}?",
    "What is {p} the {n}?",
    "Who is {v} {p} the {n2}?",
    "What is the {n} made of?",
    "Why is the {n} {a}?",
    "How many {n}s are there?",
    "When was this photo taken?",
)


def job_vg_qa(plan: Plan, root: Path) -> dict[str, int]:
    answers = tuple(f"{w.capitalize()}." for w in _OPEN) + (
        "Daytime.",
        "Two.",
        "Three.",
        "One.",
        "On the table.",
    )

    def make(
        rng: np.random.Generator, wh: np.ndarray, image_ids: list[int], ids: list[int]
    ) -> list[dict[str, Any]]:
        qs = fill(rng, VG_QUESTIONS, len(ids))
        ans = np.array(answers)[rng.integers(len(answers), size=len(ids))].tolist()
        return [
            {"a_objects": [], "question": q, "image_id": ii, "qa_id": k, "answer": a, "q_objects": []}
            for q, ii, k, a in zip(qs, image_ids, ids, ans, strict=True)
        ]

    return _vg_per_image_job(
        plan,
        root,
        "question_answers",
        plan.counts["vg_qas"],
        1.5,
        make,
        lambda vid, rows: {"id": vid, "qas": rows},
    )


def _make_vg_objects(
    rng: np.random.Generator, wh: np.ndarray, image_ids: list[int], ids: list[int]
) -> list[dict[str, Any]]:
    x, y, w, h = _vg_boxes(rng, wh)
    names = np.array(NOUNS)[rng.integers(len(NOUNS), size=len(ids))].tolist()
    return [
        {"synsets": [f"{nm}.n.01"], "h": hi, "object_id": k, "names": [nm], "w": wi, "y": yi, "x": xi}
        for nm, hi, k, wi, yi, xi in zip(names, h, ids, w, y, x, strict=True)
    ]


def job_vg_objects(plan: Plan, root: Path) -> dict[str, int]:
    return _vg_per_image_job(
        plan,
        root,
        "objects",
        plan.counts["vg_objects"],
        3.0,
        _make_vg_objects,
        lambda vid, rows: {"image_id": vid, "objects": rows},
    )


def job_vg_attributes(plan: Plan, root: Path) -> dict[str, int]:
    """attributes.json repeats the objects of objects.json (same RNG name, so the same ids, names
    and boxes), most with one or two attributes (colours, sizes) drawn from a separate RNG."""
    arng = _rng(plan.seed, "attributes")

    def make(
        rng: np.random.Generator, wh: np.ndarray, image_ids: list[int], ids: list[int]
    ) -> list[dict[str, Any]]:
        objs = _make_vg_objects(rng, wh, image_ids, ids)
        n = arng.integers(0, 3, size=len(objs)).tolist()  # as in VG, some objects have none
        picks = np.array(_COLOURS)[arng.integers(len(_COLOURS), size=(len(objs), 2))].tolist()
        return [{**o, "attributes": p[:k]} if k else o for o, k, p in zip(objs, n, picks, strict=True)]

    return _vg_per_image_job(
        plan,
        root,
        "objects",
        plan.counts["vg_objects"],
        3.0,
        make,
        lambda vid, rows: {"image_id": vid, "attributes": rows},
        file="attributes",
    )


# --------------------------------------------------------------------------------------------
# Visual Dialog
# --------------------------------------------------------------------------------------------
VISDIAL_ROUNDS, VISDIAL_OPTIONS = 10, 100
VISDIAL_STRINGS_PER_DIALOG = 3  # distinct questions (and answers) the file lists per dialog


def _visdial_file(
    path: Path,
    split: str,
    rng: np.random.Generator,
    image_ids: np.ndarray,
    captions: list[str],
) -> int:
    """One VisDial file: `{"version", "split", "data": {"questions", "answers", "dialogs"}}`, the
    dialogs streamed in chunks. Test dialogs stop at a random round whose answer is withheld."""
    n = len(image_ids)
    n_q = n_a = max(VISDIAL_OPTIONS, VISDIAL_STRINGS_PER_DIALOG * n)
    questions = [q.rstrip("?").lower() for q in fill(rng, _VQA_TEXTS, n_q)]
    answers = [
        _OPEN[k % len(_OPEN)] if k % 3 else ("yes", "no")[k % 2]
        for k in rng.integers(1 << 30, size=n_a).tolist()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb", buffering=1 << 20) as f:
        head = orjson.dumps({"version": "1.0", "split": split})[:-1]
        f.write(head + b',"data":{"questions":' + orjson.dumps(questions))
        f.write(b',"answers":' + orjson.dumps(answers) + b',"dialogs":[')
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            k = stop - start
            q = rng.integers(n_q, size=(k, VISDIAL_ROUNDS)).tolist()
            a = rng.integers(n_a, size=(k, VISDIAL_ROUNDS)).tolist()
            opts = rng.integers(n_a, size=(k, VISDIAL_ROUNDS, VISDIAL_OPTIONS))
            gt = rng.integers(VISDIAL_OPTIONS, size=(k, VISDIAL_ROUNDS))
            opts[np.arange(k)[:, None], np.arange(VISDIAL_ROUNDS)[None, :], gt] = np.array(a)
            opts_l, gt_l = opts.tolist(), gt.tolist()
            last = rng.integers(1, VISDIAL_ROUNDS + 1, size=k).tolist()
            chunk = []
            for i in range(k):
                if split == "test":
                    rounds = [{"question": q[i][j], "answer": a[i][j]} for j in range(last[i] - 1)]
                    rounds.append({"question": q[i][last[i] - 1], "answer_options": opts_l[i][last[i] - 1]})
                    extra = {"round_id": last[i]}
                else:
                    rounds = [
                        {
                            "question": q[i][j],
                            "answer": a[i][j],
                            "answer_options": opts_l[i][j],
                            "gt_index": gt_l[i][j],
                        }
                        for j in range(VISDIAL_ROUNDS)
                    ]
                    extra = {}
                chunk.append(
                    {
                        "image_id": int(image_ids[start + i]),
                        "caption": captions[start + i],
                        "dialog": rounds,
                        **extra,
                    }
                )
            body = orjson.dumps(chunk)[1:-1]
            f.write(b"," + body if start else body)
        f.write(b"]}}")
    return n


def job_visdial(plan: Plan, root: Path) -> dict[str, int]:
    """VisDial's train split is every COCO 2014 picture; val and test are pictures of their own."""
    rng = _rng(plan.seed, "visdial")
    c = plan.counts
    own = rng.choice(np.arange(1, 600_000), size=c["visdial_val"] + c["visdial_test"], replace=False)
    out: dict[str, int] = {}
    for split, ids in (
        ("train", plan.coco_ids),
        ("val", own[: c["visdial_val"]]),
        ("test", own[c["visdial_val"] :]),
    ):
        captions = [t.rstrip(".").lower() for t in fill(rng, CAPTION_TEMPLATES, len(ids))]
        path = root / f"visdial/visdial_1.0_{split}.json"
        out[str(path.relative_to(root))] = _visdial_file(path, split, rng, ids, captions)
    return out


# Biggest first, so two workers finish close together.
JOBS: dict[str, Callable[[Plan, Path], dict[str, int]]] = {
    "vg_regions": job_vg_regions,
    "visdial": job_visdial,
    "vqav2": job_vqav2,
    "coco_instances": job_coco_instances,
    "vg_qa": job_vg_qa,
    "vg_objects": job_vg_objects,
    "vg_attributes": job_vg_attributes,
    "coco_captions": job_coco_captions,
    "vg_image_data": job_vg_image_data,
    "aokvqa": job_aokvqa,
    "okvqa": job_okvqa,
}


def _run(job: str, plan: Plan, root: Path) -> dict[str, int]:
    return JOBS[job](plan, root)


def write_full_files(root: Path, *, scale: float, seed: int, workers: int = 2) -> dict[str, int]:
    """Write every annotation file under `root` (already a fresh folder); returns record counts."""
    plan = make_plan(scale, seed)
    counts: dict[str, int] = {}
    if workers <= 1:
        for job in JOBS:
            counts.update(_run(job, plan, root))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(_run, list(JOBS), [plan] * len(JOBS), [root] * len(JOBS)):
                counts.update(result)
    return dict(sorted(counts.items()))
