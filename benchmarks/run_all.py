"""`make bench`: run every benchmarks/bench_*.py in order; each rewrites its section of
docs/benchmarks.md and keeps its headline figures in bench-data/results/. Then the summary table
(issue 11's targets) is written from the figures this run measured. Pass names to run a subset:
`python benchmarks/run_all.py ingest` (the summary is then left as it was)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from _common import RESULTS, machine_line, update_section

HERE = Path(__file__).resolve().parent


def _figures(started: float) -> dict[str, dict]:
    """The results written since `started` (older files are another run's)."""
    out = {}
    for p in RESULTS.glob("*.json"):
        data = json.loads(p.read_text())
        if data.get("at", 0) >= started:
            out[p.stem] = data
    return out


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _ingest(i: dict) -> tuple[str, ...]:
    return (
        f"{i['wall_s']:.1f} s wall, {i['cpu_s']:.0f} CPU-s, peak {i['peak_gb']:.2f} GB",
        f"naive `json.load` + dicts {i['naive_s']:.1f} s, peak {i['naive_peak_gb']:.2f} GB",
        f"{i['ratio']:.2f}x faster",
        f"{_verdict(i['ratio'] >= 4)} / {_verdict(i['peak_gb'] <= 3)}",
    )


def _dedup(d: dict) -> tuple[str, ...]:
    return (
        f"{d['unimm_s']:.2f} s, recall {d['unimm_recall']:.3f}",
        f"`rensa` {d['rensa_s']:.2f} s, recall {d['rensa_recall']:.3f}; `datasketch` (full set) "
        f"{d['datasketch_s']:.1f} s, recall {d['datasketch_recall']:.3f}",
        f"{d['ratio']:.2f}x rensa",
        _verdict(d["ratio"] >= 2 and d["unimm_recall"] >= d["rensa_recall"]),
    )


def _shards(s: dict) -> tuple[str, ...]:
    return (
        f"{s['unimm_s']:.2f} s (median) for {s['samples']:,} samples / {s['bytes'] / 1e6:,.0f} MB",
        f"plain `tarfile` {s['tarfile_s']:.2f} s",
        f"{s['ratio']:.2f}",
        _verdict(s["ratio"] >= 0.85),
    )


def _build(b: dict) -> tuple[str, ...]:
    return (
        f"{b['wall_s']:.0f} s, peak {b['peak_gb']:.2f} GB",
        f"its own ingest + merge {b['ingest_merge_s']:.0f} s",
        f"{b['ratio']:.1f}x",
        _verdict(b["ratio"] <= 3),
    )


def _startup(st: dict) -> tuple[str, ...]:
    return (
        f"{st['help_s']:.2f} s (`build --help` {st['build_help_s']:.2f} s)",
        "-",
        "-",
        _verdict(st["help_s"] <= 0.3),
    )


def _client(c: dict) -> tuple[str, ...]:
    return (
        f"{c['best_rps']:,.0f} requests/s",
        f"one H100 at the estimate's {c['default_tok_s']:,.0f} tok/s: {c['h100_rps']:.1f} dialogues/s",
        f"{c['h100s']:.0f} H100s kept busy",
        "",
    )


# benchmark -> (work, target, its figures as the table's unimm / anchor / ratio / verdict cells)
ROWS = {
    "ingest": (
        "ingest + merge (COCO captions, VQAv2, VG: 1.43 GB of JSON)",
        ">= 4x faster, peak <= 3 GB",
        _ingest,
    ),
    "dedup": ("near-dup dedup, 117k dialogues", ">= 2x rensa at equal or better recall", _dedup),
    "shards": ("shard writing", ">= 0.85", _shards),
    "build": ("`unimm build --llm template`, full scale", "<= 3x its ingest + merge", _build),
    "startup": ("`unimm --help` start-up", "<= 0.3 s", _startup),
    "client": ("generation client, loopback server answering at once", "-", _client),
}


def summary(started: float) -> str:
    """Issue 11's table, every figure from this run of the benchmarks."""
    f = _figures(started)
    rows = []
    for name, (work, target, cells) in ROWS.items():
        if name in f:
            unimm, anchor, ratio, verdict = cells(f[name])
            rows.append(
                f"| {work} | {unimm} | {anchor} | {ratio} | {target}{': ' + verdict if verdict else ''} |"
            )
        else:
            rows.append(f"| {work} | not measured in this run | | | {target} |")
    table = "\n".join(rows)
    return f"""## Summary: issue 11's targets

Machine: {machine_line()}. Every figure below comes from the benchmark sections of this file, all
written by one `make bench` run ({time.strftime("%Y-%m-%d", time.gmtime(started))}); each section says how it measured.

| work | unimm | anchor (same run) | ratio | target |
| --- | --- | --- | --- | --- |
{table}
"""


def main() -> int:
    wanted = set(sys.argv[1:])
    failed = []
    started = time.time()
    for script in sorted(HERE.glob("bench_*.py")):
        name = script.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        print(f"== {name}", flush=True)
        if subprocess.call([sys.executable, str(script)]) != 0:
            failed.append(name)
    if not wanted:  # a subset leaves the last full run's summary alone
        update_section("summary", summary(started))
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
