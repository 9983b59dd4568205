"""The pipeline runner against the one it replaced (issue 10), measured in the same run:

1. the sample corpus (`unimm sample`, 24 images) built with the template backend
   (pipelines/llava_reformat.yaml): this runner vs the previous one (`unimm/build.py` of commit
   BASELINE, run from a git worktree of it);
2. a multi-partition corpus (the synthetic full-scale files at `--scale`, COCO + VQAv2 + VG, four
   partitions, template backend, no images): the previous sequential loop vs this runner with one
   worker vs its local executor with one worker per core.

Each configuration runs `--repeats` times, alternating, each on a fresh work dir; medians.

    python benchmarks/bench_runner.py [--scale 0.05] [--repeats 3] [--root /tmp/unimm-bench-runner]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import sysconfig
from pathlib import Path

from _common import REPO, Measured, machine_line, measure, update_section
from bench_ingest import ensure_corpus

BASELINE = "a60f1e9"  # the last commit with unimm/build.py's closure-per-stage loop


def baseline_tree(root: Path) -> Path:
    """A worktree of BASELINE beside the benchmark data (made once)."""
    tree = root / "baseline"
    if not (tree / "unimm" / "build.py").exists():
        shutil.rmtree(tree, ignore_errors=True)
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(tree), BASELINE], check=True
        )
    return tree


def unimm_cmd(tree: Path | None) -> tuple[list[str], dict[str, str] | None]:
    """How to run `unimm` from `tree` (None: this checkout). `-S` skips the site hooks, so the
    editable install of this checkout cannot shadow the baseline's package."""
    if tree is None:
        return [sys.executable, "-m", "unimm"], None
    site = sysconfig.get_paths()["purelib"]
    return [sys.executable, "-S", "-m", "unimm"], {"PYTHONPATH": f"{tree}:{site}", "PATH": "/usr/bin:/bin"}


def run_build(name: str, tree: Path | None, args: list[str], work: Path, out: Path) -> Measured:
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    prefix, env = unimm_cmd(tree)
    # cwd outside the checkout: `python -m` puts the cwd first on sys.path, which would shadow
    # the baseline's package with this one's
    m = measure([*prefix, "build", *args, "--work", str(work), "--out", str(out)], env=env, cwd=work.parent)
    if m.returncode != 0:
        sys.exit(f"{name} failed:\n{m.stdout[-3000:]}")
    print(f"  {name}: {m.wall_s:.1f} s, {m.peak_rss_mb / 1024:.2f} GB", flush=True)
    return m


def compare(
    configs: dict[str, tuple[Path | None, list[str]]], root: Path, repeats: int
) -> dict[str, list[Measured]]:
    runs: dict[str, list[Measured]] = {k: [] for k in configs}
    for _ in range(repeats):
        for name, (tree, args) in configs.items():
            runs[name].append(run_build(name, tree, args, root / "work", root / "out"))
    return runs


def med(ms: list[Measured]) -> tuple[float, float]:
    return statistics.median(m.wall_s for m in ms), statistics.median(m.peak_rss_mb for m in ms) / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--root", type=Path, default=Path("/tmp/unimm-bench-runner"))
    args = ap.parse_args()
    root = args.root
    root.mkdir(parents=True, exist_ok=True)
    old = baseline_tree(root)

    sample = root / "sample"
    if not (sample / "unimm-sample.json").exists():
        subprocess.run([sys.executable, "-m", "unimm", "sample", "--out", str(sample)], check=True)
    small = ["--config", str(REPO / "pipelines" / "llava_reformat.yaml"), "--data-root", str(sample)]
    print("sample corpus, template build", flush=True)
    a = compare({"previous runner": (old, small), "this runner": (None, small)}, root, args.repeats)

    data = root / f"full-{args.scale}"
    ensure_corpus(data, args.scale)
    multi = ["--sources", "coco,vqav2,vg", "--llm", "template", "--no-images", "--data-root", str(data),
             "--set", "merge.partitions=4"]  # fmt: skip
    print(f"scale {args.scale} corpus, 4 partitions", flush=True)
    b = compare(
        {
            "previous runner (sequential loop)": (old, multi),
            "this runner, --workers 1": (None, [*multi, "--workers", "1"]),
            "this runner, local executor (2 workers)": (None, [*multi, "--workers", "2"]),
        },
        root,
        args.repeats,
    )

    def rows(runs: dict[str, list[Measured]], ref: str) -> str:
        base = med(runs[ref])[0]
        out = "| run | wall s (median) | peak RSS GB | vs previous |\n| --- | --- | --- | --- |\n"
        for name, ms in runs.items():
            wall, rss = med(ms)
            out += f"| {name} | {wall:.1f} | {rss:.2f} | {base / wall:.2f}x |\n"
        return out

    body = (
        "## Pipeline runner (issue 10)\n\n"
        f"{machine_line()}; {args.repeats} alternating runs per row, each on a fresh work dir; "
        f"the previous runner is commit `{BASELINE}` run from a git worktree in the same session.\n\n"
        "Sample corpus (24 images), `unimm build --config pipelines/llava_reformat.yaml`:\n\n"
        + rows(a, "previous runner")
        + f"\nSynthetic corpus at scale {args.scale} (COCO + VQAv2 + VG), four partitions, "
        "`--llm template --no-images`:\n\n"
        + rows(b, "previous runner (sequential loop)")
        + "\n`vs previous` is the previous runner's median wall time over this row's: above 1x is faster.\n"
    )
    update_section("runner", body)
    print(body)


if __name__ == "__main__":
    main()
