"""Shared by the benchmark scripts: run a command while sampling the RSS of its whole process
tree, and rewrite one marked section of docs/benchmarks.md."""

from __future__ import annotations

import compileall
import json
import os
import platform
import re
import resource
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"

# Every benchmark measures unimm as installed: `pip install` compiles a package's modules to
# bytecode, and an editable install's first run does. A machine that sets PYTHONDONTWRITEBYTECODE
# (this one does) would otherwise have every process of every measured command compile unimm's
# ~90 modules again (~0.1 s a process). Compiling is skipped for modules already compiled.
compileall.compile_dir(REPO / "unimm", quiet=1)


@dataclass
class Measured:
    wall_s: float
    peak_rss_mb: float
    returncode: int
    stdout: str
    cpu_s: float = 0.0  # user + system seconds of the process and every descendant it waited for


def measure(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeline: list[tuple[float, float]] | None = None,
) -> Measured:
    """Run `cmd`; peak RSS is the largest *sum* over the process and all its children, sampled
    every 20 ms (so multi-process runs are not flattered by counting one process only).
    `timeline`, when given, receives every sample as (epoch seconds, RSS GiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        ps = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                total = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
                peak = max(peak, total)
                if timeline is not None:
                    timeline.append((time.time(), total / 2**30))
            except psutil.Error:
                pass
            time.sleep(0.02)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    t.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measured(wall, peak / 2**20, proc.returncode, out, cpu)


def machine_line() -> str:
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"
    )


RESULTS = REPO / "bench-data" / "results"


def record(name: str, **figures: object) -> None:
    """Keep a benchmark's headline figures (bench-data/results/NAME.json) for the summary table
    `run_all.py` writes after the run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"at": time.time(), **figures}, indent=2) + "\n")


def update_section(name: str, body: str) -> None:
    """Replace the block between `<!-- bench:NAME -->` markers in docs/benchmarks.md (append if new)."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = (
        DOC.read_text()
        if DOC.exists()
        else "# Benchmarks\n\nWritten by `make bench`; each section is rewritten by its own script.\n"
    )
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    )
    DOC.write_text(text)
