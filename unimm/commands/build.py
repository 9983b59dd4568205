"""`unimm build`: the whole pipeline from official files to verified shards, cached per step."""

from __future__ import annotations

from pathlib import Path

import typer

from unimm.commands.runstage import CONFIG, EXECUTOR, PROGRESS, RAY_ADDRESS, SET, WORK, WORKERS, run_stage
from unimm.sources import SOURCE_LIST


def register(app: typer.Typer) -> None:
    @app.command("build")
    def build_cmd(
        config: Path = CONFIG,
        sources: str = typer.Option(None, help=f"Comma-separated sources: {SOURCE_LIST}."),
        data_root: Path = typer.Option(None, help="Folder with one subfolder per source (default data/)."),
        image_root: Path = typer.Option(None, help="Where image files live (default: the data root)."),
        no_images: bool = typer.Option(
            False, "--no-images", help="Write shards without images (JSON only); the manifest says so."
        ),
        work: Path = WORK,
        out: Path = typer.Option(
            None, help="Folder for the WebDataset shards and manifest.json (default shards/)."
        ),
        llm: str = typer.Option(None, help="Generation backend: template | local | openai."),
        model: str = typer.Option(None, help="Model name (openai backend) or GGUF path (local backend)."),
        base_url: list[str] = typer.Option(
            None, "--base-url", help="OpenAI-compatible endpoint (repeatable)."
        ),
        limit: int = typer.Option(None, help="Generate for at most N images (a quick partial run)."),
        min_sources: int = typer.Option(None, help="Keep only images annotated by at least N sources."),
        until: str = typer.Option(None, help="Stop after this stage or step (ingest ... shards, report)."),
        only: str = typer.Option(None, help="Run only this stage or step; the ones before must be done."),
        set_: list[str] = SET,
        executor: str = EXECUTOR,
        workers: int = WORKERS,
        ray_address: str = RAY_ADDRESS,
        progress: bool = PROGRESS,
    ) -> None:
        """Run every step (ingest, merge, generate, filter, dedup, decontaminate, shards) with caching.

        Re-running the same build does no work; a killed build resumes where it stopped.
        """
        run_stage(
            config=config,
            work=work,
            overrides={
                "sources": sources,
                "data_root": str(data_root) if data_root else None,
                "image_root": str(image_root) if image_root else None,
                "no_images": True if no_images else None,
                "out": str(out) if out else None,
                "generate.backend": llm,
                "generate.model": model,
                "generate.base_urls": list(base_url) if base_url else None,
                "generate.limit": limit,
                "merge.min_sources": min_sources,
            },
            set_=set_,
            executor=executor,
            workers=workers,
            ray_address=ray_address,
            progress=progress,
            only=only,
            until=until,
        )
