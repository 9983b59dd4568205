"""Start-up time of the CLI: wall time of `unimm --help` and `unimm build --help` against the
floor, `python -c "import typer"` (and a one-command Typer app's `build --help`, which pays what
Typer itself loads for any subcommand: rich for the help screen, pydantic for option coercion).

Median of 15 runs each, the commands alternating so that a burst of load from other processes
hits all of them alike. Writes the `startup` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._common import machine_line, measure, record, update_section  # noqa: E402

TARGET_S = 0.3

# The smallest Typer app with the same settings as unimm's: what any Typer CLI pays for `CMD --help`.
FLOOR_APP = """
from pathlib import Path
import typer
app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
@app.command("build")
def build(work: Path = typer.Option(Path("work"), help="Work directory.")) -> None:
    '''Build.'''
@app.command("other")
def other() -> None:
    '''Other.'''
app()
"""


def unimm_cmd() -> list[str]:
    """The console script beside this interpreter (what users run), else `python -m unimm`."""
    script = Path(sys.executable).with_name("unimm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "unimm"]


def import_ms(args: list[str]) -> dict[str, float]:
    """Cumulative import time (ms) of each top-level-ish module of one `-X importtime` run."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, cwd=REPO
    ).stderr
    out: dict[str, float] = {}
    for line in err.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            out.setdefault(m[3], int(m[1]) / 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    unimm = unimm_cmd()
    cases = [
        ("`unimm --help`", [*unimm, "--help"], True),
        ("`unimm build --help`", [*unimm, "build", "--help"], True),
        ('floor: `python -c "import typer"`', [sys.executable, "-c", "import typer"], False),
        (
            "floor: one-command Typer app, `build --help`",
            [sys.executable, "-c", FLOOR_APP, "build", "--help"],
            False,
        ),
    ]
    walls: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    cpus: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    rss: dict[str, float] = {name: 0.0 for name, _, _ in cases}
    load_before = os.getloadavg()[0]
    for _ in range(args.runs):
        for name, cmd, _ in cases:
            before = os.times()
            m = measure(cmd, cwd=REPO)
            after = os.times()  # the child is reaped: its CPU time is in ours
            if m.returncode != 0:
                raise SystemExit(f"{name} failed ({m.returncode}):\n{m.stdout}")
            walls[name].append(m.wall_s)
            cpus[name].append(
                after.children_user - before.children_user + after.children_system - before.children_system
            )
            rss[name] = max(rss[name], m.peak_rss_mb)
    load_after = os.getloadavg()[0]
    imports = import_ms(["-m", "unimm", "build", "--help"])

    rows = []
    for name, _, checked in cases:
        med = statistics.median(walls[name])
        verdict = ("**ok**" if med <= TARGET_S else "**over**") if checked else "floor"
        rows.append(
            f"| {name} | {med:.3f} | {min(walls[name]):.3f} | {max(walls[name]):.3f} "
            f"| {statistics.median(cpus[name]):.2f} | {rss[name]:.0f} | {verdict} |"
        )
    parts = [
        ("typer (+ its vendored click)", "typer"),
        ("unimm.cli (typer included: every command module registered)", "unimm.cli"),
        ("typer.rich_utils (rich, for the help screen)", "typer.rich_utils"),
        ("typer._adapters (pydantic, for Typer's option coercion)", "typer._adapters"),
    ]
    body = [
        "## CLI start-up (`benchmarks/bench_startup.py`)",
        "",
        f"Wall time from process start to exit, median of {args.runs} runs per command, the commands "
        f"alternating; target <= {TARGET_S} s for the `unimm` rows. Load average (1 min) "
        f"{load_before:.2f} before, {load_after:.2f} after: other processes share the machine, so the "
        "spread is theirs; the CPU column (user + sys of the command) depends far less on them. "
        f"Machine: {machine_line()}.",
        "",
        "| command | median s | min s | max s | CPU s (median) | peak RSS MiB | target (wall) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        *rows,
        "",
        "Import time of `python -m unimm build --help` (one `-X importtime` run, cumulative ms):",
        "",
        "| module | ms |",
        "| --- | ---: |",
        *[f"| {label} | {imports.get(mod, 0.0):.0f} |" for label, mod in parts],
        "",
        "The command modules import only typer and the light `unimm.errors`, `unimm.sources`, "
        "`unimm.workdir`, `unimm.train` (for the option defaults); every stage library (polars, pyarrow, "
        "numpy, pydantic models, torch, openai, webdataset, datasets, matplotlib) is imported inside the "
        "command that runs it (`tests/test_cli_startup.py` checks). What remains above the "
        "`import typer` floor is Typer's own: rich to draw the help screen, and for a subcommand pydantic, "
        "which Typer imports to coerce option values; the one-command Typer app pays the same.",
    ]
    update_section("startup", "\n".join(body))
    record(
        "startup",
        help_s=statistics.median(walls["`unimm --help`"]),
        build_help_s=statistics.median(walls["`unimm build --help`"]),
    )
    print("\n".join(body))


if __name__ == "__main__":
    main()
