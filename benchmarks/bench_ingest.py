"""Ingest + merge at full UniMM-Chat scale against the anchors, measured in the same run.

Generates the full-size synthetic corpus in the official formats once (`python benchmarks/fullscale
--scale full`, kept in bench-data/), then measures, each in a fresh process, wall time and peak RSS
of the whole process tree:
  - ../shared/anchors/naive_merge.py  (json.load + dict of lists: what research scripts do)
  - ../shared/anchors/parse_floor.py  (orjson parse of every file, nothing else)
  - unimm ingest + unimm merge        (same files: COCO 2014 captions, VQAv2, VG image_data/regions/QA)
and, for the full picture, unimm on all five sources (instances, OK-VQA, A-OKVQA, VG objects too).

usage: python benchmarks/bench_ingest.py [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from _common import REPO, Measured, machine_line, measure, update_section

HERE = Path(__file__).resolve().parent
ANCHORS = REPO.parent / "shared" / "anchors"
ANCHOR_FILES = [
    "coco/annotations/captions_train2014.json",
    "coco/annotations/captions_val2014.json",
    "vqav2/v2_OpenEnded_mscoco_train2014_questions.json",
    "vqav2/v2_OpenEnded_mscoco_val2014_questions.json",
    "vqav2/v2_mscoco_train2014_annotations.json",
    "vqav2/v2_mscoco_val2014_annotations.json",
    "vg/image_data.json",
    "vg/region_descriptions.json",
    "vg/question_answers.json",
]


def unimm(*args: str) -> list[str]:
    return [sys.executable, "-m", "unimm", *args]


def ensure_corpus(root: Path, scale: float) -> None:
    marker = root / "unimm-sample.json"
    if marker.exists() and json.loads(marker.read_text()).get("scale") == scale:
        return
    shutil.rmtree(root, ignore_errors=True)
    print(f"generating the synthetic corpus at scale {scale} in {root} ...", flush=True)
    m = measure([sys.executable, str(HERE / "fullscale"), "--scale", str(scale), "--out", str(root)])
    if m.returncode != 0:
        sys.exit(f"corpus generation failed:\n{m.stdout}")


def anchor_root(full: Path, dest: Path) -> None:
    """The anchors' layout with exactly the files they read (2014 captions only, as they measured)."""
    shutil.rmtree(dest, ignore_errors=True)
    for rel in ANCHOR_FILES:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).symlink_to((full / rel).resolve())


def run(name: str, cmd: list[str]) -> Measured:
    print(f"  {name} ...", flush=True)
    m = measure(cmd)
    if m.returncode != 0:
        sys.exit(f"{name} failed:\n{m.stdout[-3000:]}")
    print(f"    {m.wall_s:.1f} s, {m.peak_rss_mb / 1024:.2f} GB", flush=True)
    return m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    base = REPO / "bench-data"
    full = base / (f"full-{args.scale:g}")
    ensure_corpus(full, args.scale)
    aroot = base / "anchor-root"
    anchor_root(full, aroot)
    json_bytes = sum((aroot / r).resolve().stat().st_size for r in ANCHOR_FILES)

    naive = run(
        "naive_merge",
        [sys.executable, str(ANCHORS / "naive_merge.py"), str(aroot), str(base / "naive.jsonl")],
    )
    floor = run("parse_floor", [sys.executable, str(ANCHORS / "parse_floor.py"), str(aroot)])
    w1 = base / "work-anchor"
    shutil.rmtree(w1, ignore_errors=True)
    ing = run(
        "unimm ingest",
        unimm(
            "ingest",
            "--data-root",
            str(aroot),
            "--work",
            str(w1),
            "--sources",
            "coco,vqav2,vg",
            "--jobs",
            str(args.jobs),
        ),
    )
    mer = run("unimm merge", unimm("merge", "--work", str(w1)))
    summary = json.loads((w1 / "merged" / "summary.json").read_text())

    w2 = base / "work-all"
    shutil.rmtree(w2, ignore_errors=True)
    ing_all = run(
        "unimm ingest (5 sources)",
        unimm(
            "ingest",
            "--data-root",
            str(full),
            "--work",
            str(w2),
            "--sources",
            "coco,vqav2,okvqa,aokvqa,vg",
            "--jobs",
            str(args.jobs),
        ),
    )
    mer_all = run("unimm merge (5 sources)", unimm("merge", "--work", str(w2)))
    summary_all = json.loads((w2 / "merged" / "summary.json").read_text())
    all_bytes = sum(p.stat().st_size for p in full.rglob("*.json") if p.name != "unimm-sample.json")

    ours = ing.wall_s + mer.wall_s
    ours_rss = max(ing.peak_rss_mb, mer.peak_rss_mb) / 1024
    rows_in = sum(summary["annotations_in"].values())
    body = f"""## Ingest + merge (issue 2)

Machine: {machine_line()}. Scale {args.scale:g} of the real sizes; synthetic files in the official formats
from `python benchmarks/fullscale --scale {args.scale:g}`. All figures from one run of `make bench`
(`benchmarks/bench_ingest.py`); peak RSS is the sum over the whole process tree, sampled every 20 ms.

Same files for every row: COCO 2014 captions, VQAv2 train+val questions and annotations, VG image_data,
region_descriptions, question_answers ({json_bytes / 1e9:.2f} GB of JSON, {rows_in:,} annotations).

| run | wall s | peak RSS GB | annotations/s | vs naive |
| --- | ---: | ---: | ---: | ---: |
| anchors/naive_merge.py (json.load + dict of lists) | {naive.wall_s:.1f} | {naive.peak_rss_mb / 1024:.2f} | {rows_in / naive.wall_s:,.0f} | 1.00x |
| anchors/parse_floor.py (orjson parse only) | {floor.wall_s:.1f} | {floor.peak_rss_mb / 1024:.2f} | {rows_in / floor.wall_s:,.0f} | {naive.wall_s / floor.wall_s:.2f}x |
| unimm ingest (--jobs {args.jobs}) | {ing.wall_s:.1f} | {ing.peak_rss_mb / 1024:.2f} | | |
| unimm merge | {mer.wall_s:.1f} | {mer.peak_rss_mb / 1024:.2f} | | |
| **unimm ingest + merge** | **{ours:.1f}** | **{ours_rss:.2f}** | **{rows_in / ours:,.0f}** | **{naive.wall_s / ours:.2f}x** |

Target: at least 3x faster than naive in the same run, at most 4 GB peak RSS.
Reached: **{naive.wall_s / ours:.2f}x** faster than naive ({floor.wall_s / ours:.2f}x the orjson parse floor), peak
**{ours_rss:.2f} GB**. unimm's output is typed Parquet with provenance and exact-duplicate collapse
({summary["images_kept"]:,} images); the naive script writes untyped JSONL.

All five sources (adds COCO instances, OK-VQA, A-OKVQA, VG objects; {all_bytes / 1e9:.2f} GB of JSON,
{sum(summary_all["annotations_in"].values()):,} annotations, {summary_all["images_kept"]:,} images):
ingest {ing_all.wall_s:.1f} s / {ing_all.peak_rss_mb / 1024:.2f} GB, merge {mer_all.wall_s:.1f} s /
{mer_all.peak_rss_mb / 1024:.2f} GB, total {ing_all.wall_s + mer_all.wall_s:.1f} s.
"""
    update_section("ingest", body)
    print(body)


if __name__ == "__main__":
    main()
