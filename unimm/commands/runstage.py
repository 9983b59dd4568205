"""What every pipeline command shares: the options that pick the config, work dir and executor,
and `run_stage`, which loads the config and runs the one pipeline runner (`unimm.pipeline`).

`unimm build` and `unimm ingest|merge|generate|filter|shards` differ only in which steps they run
and which config keys their own flags set, so a single-stage command and a build can be mixed
freely on one work dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from unimm.workdir import DEFAULT_WORK

if TYPE_CHECKING:
    from rich.console import Console

CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    help="Pipeline YAML (see pipelines/); flags override it. Default: the config the work dir's "
    "last run used (WORK/config.json), else the defaults.",
)
WORK = typer.Option(DEFAULT_WORK, "--work", help="Work directory for step outputs, caches and markers.")
SET = typer.Option(None, "--set", help="Override any config key: --set filter.min_turns=2 (repeatable).")
EXECUTOR = typer.Option(None, "--executor", help="local (process pool, default) | ray (a Ray cluster).")
WORKERS = typer.Option(
    None, "--workers", min=1, help="Units run at once by the local executor (default: cores)."
)
RAY_ADDRESS = typer.Option(
    None, "--ray-address", help="Ray cluster to join: auto, or ray://HEAD:10001 (with --executor ray)."
)
PROGRESS = typer.Option(True, "--progress/--no-progress", help="Show progress bars.")

_STATUS_STYLE = {"ran": "[green]{}[/]", "cached": "[dim]{}[/]", "incomplete": "[yellow]{}[/]"}


def print_report(report: Any, console: Console) -> None:
    """Steps (status, seconds, input -> output, drops), rejections by reason, where the shards are."""
    from rich.table import Table

    t = Table(title="pipeline")
    for col in ("step", "status", "units", "seconds", "in", "out", "dropped", "tallies"):
        t.add_column(col, justify="right" if col in ("units", "seconds", "in", "out") else "left")
    for s in report.stages:
        c = s.counts
        t.add_row(
            s.stage,
            _STATUS_STYLE[s.status].format(s.status),
            str(s.units),
            f"{s.seconds:.1f}",
            f"{c.input:,}",
            f"{c.output:,}",
            ", ".join(f"{k}={v:,}" for k, v in c.dropped.items()),
            ", ".join(f"{k}={v:,}" for k, v in c.extra.items()),
        )
    console.print(t)
    if report.rejected_by_reason:
        rt = Table(title="rejections by reason (every rejected dialogue is kept with its reasons)")
        rt.add_column("reason")
        rt.add_column("dialogues", justify="right")
        for reason, n in sorted(report.rejected_by_reason.items(), key=lambda kv: -kv[1]):
            rt.add_row(reason, f"{n:,}")
        console.print(rt)
    if report.out:
        console.print(
            f"{report.dialogues:,} dialogues in {report.out} (check with `unimm verify {report.out}`, "
            f"look with `unimm stats {report.out}` / `unimm show {report.out}`)"
        )


def run_stage(
    *,
    config: Path | None,
    work: Path,
    overrides: dict[str, Any],
    set_: list[str] | None,
    executor: str | None,
    workers: int | None,
    ray_address: str | None,
    progress: bool,
    only: str | None = None,
    until: str | None = None,
) -> Any:
    """Load the config (file, else the work dir's, else defaults; then flags), run the selected
    steps under the work-dir lock and print what happened; exit 3 when the run stopped short."""
    from rich.console import Console

    from unimm.config import load_config, parse_set_option
    from unimm.errors import IncompleteError
    from unimm.pipeline.layout import Layout
    from unimm.pipeline.runner import run_pipeline
    from unimm.workdir import exclusive_work

    all_overrides = {
        **overrides,
        "executor.kind": executor,
        "executor.workers": workers,
        "executor.ray_address": ray_address,
        **parse_set_option(set_ or []),
    }
    cfg = load_config(config, all_overrides, saved=Layout(work).config)
    console = Console()
    with exclusive_work(work):
        report = run_pipeline(cfg, work, only=only, until=until, log=console.print, progress=progress)
    print_report(report, console)
    if cfg.no_images and report.out:
        console.print("--no-images: the shards hold dialogues only (manifest extensions: json)")
    if report.incomplete:
        raise IncompleteError(report.incomplete)
    return report
