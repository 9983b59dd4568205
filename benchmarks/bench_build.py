"""The full-scale template build (`unimm build --llm template`, COCO + VQAv2 + VG) end to end:
wall time and peak RSS per stage; then the same build killed at random moments and rerun each
time, whose shards must be byte for byte those of the uninterrupted run.

    python benchmarks/bench_build.py [--scale 1] [--kills 3] [--root /tmp/unimm-bench]

Peak RSS is the largest sum over the build's whole process tree (psutil, every 20 ms); a stage's
figures are the samples between the end of the stage before it and its own end (the mtimes of
the stage markers in work/markers/).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
from _common import machine_line, measure, record, update_section
from bench_ingest import ensure_corpus


def build_cmd(data: Path, work: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "unimm", "build", "--sources", "coco,vqav2,vg", "--llm", "template",
        "--no-images", "--data-root", str(data), "--work", str(work), "--out", str(out),
    ]  # fmt: skip


def run_sampled(cmd: list[str]) -> tuple[float, list[tuple[float, float]]]:
    """(wall s, [(time, RSS GiB of the whole tree)]); exits when the build fails."""
    samples: list[tuple[float, float]] = []
    m = measure(cmd, timeline=samples)
    if m.returncode != 0:
        sys.exit(f"build failed ({m.returncode}):\n{m.stdout[-3000:]}")
    return m.wall_s, samples


def stage_figures(
    work: Path, start: float, samples: list[tuple[float, float]]
) -> list[tuple[str, float, float]]:
    """(step/unit, seconds, peak GB) per unit marker, in the order the units finished (seconds:
    since the unit before finished; partitions run in parallel chains, so a row is the time the
    build waited for that unit); ingest's markers (one per unit) are one row."""
    markers = sorted(
        (p.stat().st_mtime, f"{p.parent.name}/{p.name.removesuffix('.done.json')}")
        for p in (work / "markers").glob("*/*.done.json")
    )
    rows: list[tuple[str, float, float]] = []
    prev = start
    for end, name in markers:
        name = "ingest" if name.startswith("ingest/") else name
        peak = max((g for t, g in samples if prev <= t <= end), default=0.0)
        if rows and rows[-1][0] == name == "ingest":
            rows[-1] = (name, end - start, max(rows[-1][2], peak))
        else:
            rows.append((name, end - prev, peak))
        prev = end
    return rows


def digest(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir()) if p.is_file()}


def killed_and_resumed(cmd: list[str], kills: int, horizon: float, seed: int) -> list[float]:
    """Kill the build (SIGKILL, the whole tree) at `kills` random moments, restarting each time,
    then let it finish; returns the moments (s after each start)."""
    rng = random.Random(seed)
    moments = sorted(rng.uniform(5, horizon) for _ in range(kills))
    used = []
    for i, at in enumerate(moments):
        wait = at - (moments[i - 1] if i else 0.0)  # each restart resumes: kill later in the build
        proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=wait)
        except psutil.TimeoutExpired:
            for p in [*proc.children(recursive=True), proc]:
                p.kill()
            proc.wait()
            used.append(round(wait, 1))
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return used


def killed_line(moments: list[float], same: bool | None) -> str:
    if same is None:
        return "Not killed in this run (`--kills 0`): the kill-and-resume check ran in the test suite only."
    return (
        f"Killed (SIGKILL of the whole process tree) {len(moments)} times at "
        f"{', '.join(f'{m:g} s' for m in moments)} after each restart, then rerun to the end: shards, "
        f"card and manifest byte-identical to the uninterrupted run's: **{'yes' if same else 'NO'}**."
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", type=Path, default=Path("/tmp/unimm-bench"))
    args = ap.parse_args()
    data, out = args.root / f"scale-{args.scale:g}", args.root / "build-shards"
    ensure_corpus(data, args.scale)
    work_a, work_b = args.root / "build-work-a", args.root / "build-work-b"
    for p in (work_a, work_b, out):
        shutil.rmtree(p, ignore_errors=True)

    print("uninterrupted build ...", flush=True)
    start = time.time()
    wall, samples = run_sampled(build_cmd(data, work_a, out))
    stages = stage_figures(work_a, start, samples)
    peak = max(g for _, g in samples)
    reference = digest(out)
    manifest = json.loads((out / "manifest.json").read_text())
    print(f"  {wall:.0f} s, peak {peak:.2f} GB, {manifest['total_samples']:,} samples", flush=True)

    if args.kills:
        print(f"killed {args.kills} times and rerun ...", flush=True)
        shutil.rmtree(out)
        moments = killed_and_resumed(build_cmd(data, work_b, out), args.kills, wall * 0.9, args.seed)
        same = digest(out) == reference
        print(f"  killed at {moments} s; same shards: {same}", flush=True)
    else:
        moments, same = [], None

    ingest_merge = sum(s for n, s, _ in stages if n.split("/")[0] in ("ingest", "merge"))
    by_kind: dict[str, list[tuple[float, float]]] = {}
    for name, s, g in stages:
        by_kind.setdefault(name.split("/")[0], []).append((s, g))
    rows = "\n".join(
        f"| {kind} | {len(v)} | {sum(s for s, _ in v):.0f} | {max(s for s, _ in v):.0f} | {max(g for _, g in v):.2f} |"
        for kind, v in by_kind.items()
    )
    body = f"""## Full-scale template build

Machine: {machine_line()}. `python benchmarks/fullscale --scale {args.scale:g}` (180,156 images at
scale 1), then `unimm build --sources coco,vqav2,vg --llm template --no-images`; one run of
`benchmarks/bench_build.py`. Peak RSS is the sum over the build's process tree.

| stage | units | total s | slowest unit s | peak RSS GB |
| --- | ---: | ---: | ---: | ---: |
{rows}
| **whole build** | | **{wall:.0f}** | | **{peak:.2f}** |

{manifest["total_samples"]:,} dialogues shipped. Target: completes on this machine with peak RSS <= 8 GB:
**{"met" if peak <= 8 else "missed"}** ({peak:.2f} GB). The whole build takes {wall / ingest_merge:.1f}x its own
ingest + merge ({ingest_merge:.0f} s); issue 11's target is <= 3x.

{killed_line(moments, same)}
"""
    update_section("build", body)
    record("build", wall_s=wall, ingest_merge_s=ingest_merge, peak_gb=peak, ratio=wall / ingest_merge)
    if same is False:
        sys.exit("the killed-and-resumed build wrote different shards")


if __name__ == "__main__":
    main()
