"""`unimm audit`: ground a corpus (LLaVA JSON, UniMM-Chat release, unimm shards) against the
annotations of a data root; writes verdicts.parquet, summary.json and report.html."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from unimm.sources import DEFAULT_DATA_ROOT, SOURCE_LIST, parse_sources


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit_cmd(
        corpus: Path = typer.Argument(
            ...,
            help="LLaVA instruction JSON/JSONL, UniMM-Chat Parquet (file or folder) / JSON / JSONL, "
            "or a unimm shard folder (manifest.json + *.tar).",
        ),
        data_root: Path = typer.Option(
            Path(DEFAULT_DATA_ROOT),
            "--data-root",
            help="Folder with the official annotation files (as for ingest).",
        ),
        out: Path = typer.Option(
            Path("audit"), "--out", help="Output folder (replaced as a whole, only when the audit succeeds)."
        ),
        fmt: str | None = typer.Option(
            None, "--format", help="Force the corpus format: llava, unimm-chat or shards (default: detect)."
        ),
        work: Path | None = typer.Option(
            None, "--work", help="Keep the ingest/merge outputs here (default: a temp folder, removed)."
        ),
        sources: str | None = typer.Option(
            None,
            "--sources",
            help=f"Comma-separated annotation sources ({SOURCE_LIST}); default: every source "
            "whose folder exists under the data root.",
        ),
        config: Path | None = typer.Option(
            None, help="Pipeline YAML (see pipelines/) whose `filter:` section sets the grounding thresholds."
        ),
        min_grounding: float | None = typer.Option(None, help="Override filter.min_grounding."),
        max_unannotated: float = typer.Option(
            0.1,
            min=0.0,
            max=1.0,
            help="Refuse (exit 2) when more than this share of dialogues name images the annotations lack.",
        ),
        examples: int = typer.Option(12, min=0, help="Worst dialogues shown in report.html."),
        jobs: int = typer.Option(1, min=1, help="Sources ingested in parallel."),
    ) -> None:
        """Run unimm's grounding checks (object hallucination/CHAIR, counts, existence, colours, QA
        agreement) on every dialogue of CORPUS; print a summary and write OUT/verdicts.parquet,
        OUT/summary.json and OUT/report.html."""
        # imported here: polars, webdataset and matplotlib would slow every other command
        from rich.console import Console

        from unimm.audit import AuditOptions, run_audit
        from unimm.audit.report import print_summary
        from unimm.config import load_config
        from unimm.workdir import exclusive_work

        cfg = load_config(config).filter
        if min_grounding is not None:
            cfg.min_grounding = min_grounding
        opts = AuditOptions(
            corpus=corpus,
            data_root=data_root,
            out=out,
            format=fmt,
            work=work,
            sources=parse_sources(sources) if sources else None,
            max_unannotated=max_unannotated,
            examples=examples,
            jobs=jobs,
        )
        # progress goes to stdout with the summary: stderr carries only the one-line error, if any
        con = Console(highlight=False)
        # a kept --work is shared with builds: hold its lock; a temp folder needs none
        with exclusive_work(work) if work is not None else contextlib.nullcontext():
            result = run_audit(opts, cfg, log=lambda m: con.print(f"[dim]audit:[/] {m}"))
        print_summary(result.summary, out, con)
