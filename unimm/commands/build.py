"""`unimm build`: the whole pipeline from official files to verified shards, cached per stage."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from unimm.build import STAGES, BuildReport, build
from unimm.config import load_config, parse_set_option
from unimm.errors import IncompleteError
from unimm.workdir import DEFAULT_WORK, exclusive_work

_STATUS_STYLE = {"ran": "[green]{}[/]", "cached": "[dim]{}[/]", "incomplete": "[yellow]{}[/]"}


def print_report(report: BuildReport, console: Console) -> None:
    t = Table(title="build")
    for col in ("stage", "status", "seconds", "counts"):
        t.add_column(col)
    for s in report.stages:
        counts = ", ".join(f"{k}={v:,}" for k, v in s.counts.items())
        t.add_row(s.stage, _STATUS_STYLE[s.status].format(s.status), f"{s.seconds:.1f}", counts)
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


def register(app: typer.Typer) -> None:
    @app.command("build")
    def build_cmd(
        config: Path = typer.Option(
            None, "--config", "-c", help="Pipeline YAML (see pipelines/); flags override it."
        ),
        sources: str = typer.Option(None, help="Comma-separated sources: coco,vqav2,okvqa,aokvqa,vg."),
        data_root: Path = typer.Option(None, help="Folder with one subfolder per source (default data/)."),
        image_root: Path = typer.Option(None, help="Where image files live (default: the data root)."),
        no_images: bool = typer.Option(
            False, "--no-images", help="Write shards without images (JSON only); the manifest says so."
        ),
        work: Path = typer.Option(DEFAULT_WORK, help="Work directory for stage outputs, caches and markers."),
        out: Path = typer.Option(Path("shards"), help="Folder for the WebDataset shards and manifest.json."),
        llm: str = typer.Option(None, help="Generation backend: template | local | openai."),
        model: str = typer.Option(None, help="Model name (openai backend) or GGUF path (local backend)."),
        base_url: list[str] = typer.Option(
            None, "--base-url", help="OpenAI-compatible endpoint (repeatable)."
        ),
        limit: int = typer.Option(None, help="Generate for at most N images (a quick partial run)."),
        min_sources: int = typer.Option(None, help="Keep only images annotated by at least N sources."),
        until: str = typer.Option("shards", help=f"Stop after this stage: {' | '.join(STAGES)}."),
        set_: list[str] = typer.Option(
            None, "--set", help="Override any config key: --set filter.min_turns=2."
        ),
    ) -> None:
        """Run every stage (ingest, merge, generate, filter, dedup, decontaminate, shards) with caching.

        Re-running the same build does no work; a killed build resumes where it stopped.
        """
        overrides = {
            "sources": sources,
            "data_root": str(data_root) if data_root else None,
            "image_root": str(image_root) if image_root else None,
            "no_images": True if no_images else None,
            "generate.backend": llm,
            "generate.model": model,
            "generate.base_urls": list(base_url) if base_url else None,
            "generate.limit": limit,
            "merge.min_sources": min_sources,
            **parse_set_option(set_ or []),
        }
        cfg = load_config(config, overrides)
        console = Console()
        with exclusive_work(work):
            report = build(cfg, work, out, until=until, log=console.print, progress=True)
        print_report(report, console)
        if cfg.no_images and report.out:
            console.print("--no-images: the shards hold dialogues only (manifest extensions: json)")
        if report.incomplete:
            raise IncompleteError(report.incomplete)
