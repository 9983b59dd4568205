"""Ingest + merge at full UniMM-Chat scale against the anchors, measured in the same run.

Generates the full-size synthetic corpus in the official formats once (`python benchmarks/fullscale
--scale 1`, kept in bench-data/), then runs, in alternating rounds (3 by default), each in a fresh
process tree, measuring wall time, CPU seconds and the peak RSS summed over the tree:
  - ../shared/anchors/naive_merge.py  (json.load + dict of lists: what research scripts do)
  - ../shared/anchors/parse_floor.py  (orjson parse of every file, nothing else)
  - benchmarks/decode_floor.py         (msgspec decode into unimm's Structs: the parse unimm builds on)
  - unimm ingest, then unimm merge     (same files: COCO 2014 captions, VQAv2, VG image_data/regions/QA)
and reports medians; then, once, unimm on all five sources (instances, OK-VQA, A-OKVQA, VG objects).

usage: python benchmarks/bench_ingest.py [--scale 1.0] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

from _common import REPO, Measured, machine_line, measure, record, update_section

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
    print(f"    {m.wall_s:.1f} s, {m.cpu_s:.1f} CPU-s, {m.peak_rss_mb / 1024:.2f} GB", flush=True)
    return m


def unimm_pair(root: Path, work: Path, sources: str) -> tuple[Measured, Measured]:
    """`unimm ingest` then `unimm merge` on a fresh work dir, with the defaults a user gets."""
    shutil.rmtree(work, ignore_errors=True)
    ing = run(
        "unimm ingest",
        unimm("ingest", "--data-root", str(root), "--work", str(work), "--sources", sources, "--quiet"),
    )
    mer = run("unimm merge", unimm("merge", "--work", str(work)))
    return ing, mer


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    base = REPO / "bench-data"
    full = base / (f"full-{args.scale:g}")
    ensure_corpus(full, args.scale)
    aroot = base / "anchor-root"
    anchor_root(full, aroot)
    json_bytes = sum((aroot / r).resolve().stat().st_size for r in ANCHOR_FILES)
    work = base / "work-anchor"

    runs: dict[str, list[Measured]] = {"naive": [], "orjson": [], "decode": [], "ingest": [], "merge": []}
    for r in range(args.rounds):
        print(f"round {r + 1} of {args.rounds}", flush=True)
        runs["naive"].append(
            run(
                "naive_merge",
                [sys.executable, str(ANCHORS / "naive_merge.py"), str(aroot), str(base / "naive.jsonl")],
            )
        )
        runs["orjson"].append(
            run("parse_floor", [sys.executable, str(ANCHORS / "parse_floor.py"), str(aroot)])
        )
        runs["decode"].append(
            run("decode_floor", [sys.executable, str(HERE / "decode_floor.py"), str(aroot)])
        )
        ing, mer = unimm_pair(aroot, work, "coco,vqav2,vg")
        runs["ingest"].append(ing)
        runs["merge"].append(mer)

    from unimm.merge import read_summary

    summary = read_summary(work)
    w2 = base / "work-all"
    ing_all, mer_all = unimm_pair(full, w2, "coco,vqav2,okvqa,aokvqa,vg")
    summary_all = read_summary(w2)
    all_bytes = sum(p.stat().st_size for p in full.rglob("*.json") if p.name != "unimm-sample.json")

    def wall(k: str) -> float:
        return med([m.wall_s for m in runs[k]])

    def cpu(k: str) -> float:
        return med([m.cpu_s for m in runs[k]])

    def peak(k: str) -> float:
        return med([m.peak_rss_mb for m in runs[k]]) / 1024

    ours = [i.wall_s + m.wall_s for i, m in zip(runs["ingest"], runs["merge"], strict=True)]
    ours_cpu = [i.cpu_s + m.cpu_s for i, m in zip(runs["ingest"], runs["merge"], strict=True)]
    ours_peak = [
        max(i.peak_rss_mb, m.peak_rss_mb) / 1024 for i, m in zip(runs["ingest"], runs["merge"], strict=True)
    ]
    total, total_cpu, total_peak = med(ours), med(ours_cpu), med(ours_peak)
    ratio = wall("naive") / total
    rows_in = sum(summary.annotations_in.values())
    speed_ok = "met" if ratio >= 4 else "**not met**"
    mem_ok = "met" if total_peak <= 3 else "**not met**"
    decode_cpu = cpu("decode")
    body = f"""## Ingest + merge (issue 11)

Machine: {machine_line()}. Scale {args.scale:g} of the real sizes: synthetic files in the official formats
from `python benchmarks/fullscale --scale {args.scale:g}`, the files the anchors read: COCO 2014 captions,
VQAv2 train+val questions and annotations, VG image_data, region_descriptions, question_answers
({json_bytes / 1e9:.2f} GB of JSON, {rows_in:,} annotations, {summary.images_kept:,} images).
{args.rounds} alternating rounds (naive, orjson floor, decode floor, unimm), each command in a fresh process tree;
medians. CPU = user + system seconds of the whole tree; peak RSS = the largest sum over the tree,
sampled every 20 ms. unimm runs with its defaults (`unimm ingest --sources coco,vqav2,vg`, then
`unimm merge`: the local executor, one worker per core, `executor.memory_gb` 6), its modules
byte-compiled as an installed package's are (`benchmarks/_common.py`).

| run | wall s | CPU s | peak RSS GB | vs naive (wall) |
| --- | ---: | ---: | ---: | ---: |
| anchors/naive_merge.py (json.load + dict of lists) | {wall("naive"):.1f} | {cpu("naive"):.1f} | {peak("naive"):.2f} | 1.00x |
| anchors/parse_floor.py (orjson parse only, one process) | {wall("orjson"):.1f} | {cpu("orjson"):.1f} | {peak("orjson"):.2f} | {wall("naive") / wall("orjson"):.2f}x |
| benchmarks/decode_floor.py (msgspec decode into unimm's Structs, one process) | {wall("decode"):.1f} | {decode_cpu:.1f} | {peak("decode"):.2f} | {wall("naive") / wall("decode"):.2f}x |
| unimm ingest | {wall("ingest"):.1f} | {cpu("ingest"):.1f} | {peak("ingest"):.2f} | |
| unimm merge ({summary.partitions} partitions) | {wall("merge"):.1f} | {cpu("merge"):.1f} | {peak("merge"):.2f} | |
| **unimm ingest + merge** | **{total:.1f}** | **{total_cpu:.1f}** | **{total_peak:.2f}** | **{ratio:.2f}x** |

Targets (issue 11): at least 4x faster than naive in the same run: {speed_ok} ({ratio:.2f}x); peak RSS at most
3 GB: {mem_ok} ({total_peak:.2f} GB). unimm writes typed Parquet with provenance and exact-duplicate collapse;
the naive script writes untyped JSONL.

All five sources (adds COCO instances, OK-VQA, A-OKVQA, VG objects; {all_bytes / 1e9:.2f} GB of JSON,
{sum(summary_all.annotations_in.values()):,} annotations, {summary_all.images_kept:,} images), one run:
ingest {ing_all.wall_s:.1f} s / {ing_all.cpu_s:.1f} CPU-s / {ing_all.peak_rss_mb / 1024:.2f} GB, merge {mer_all.wall_s:.1f} s /
{mer_all.cpu_s:.1f} CPU-s / {mer_all.peak_rss_mb / 1024:.2f} GB, total {ing_all.wall_s + mer_all.wall_s:.1f} s.
"""
    update_section("ingest", body)
    record(
        "ingest",
        wall_s=total,
        cpu_s=total_cpu,
        peak_gb=total_peak,
        naive_s=wall("naive"),
        naive_cpu_s=cpu("naive"),
        naive_peak_gb=peak("naive"),
        decode_cpu_s=decode_cpu,
        ratio=ratio,
    )
    print(body)


if __name__ == "__main__":
    main()
