"""`unimm stats` (corpus summary + HTML report) and `unimm show` (dialogues in the terminal)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("stats")
    def stats_cmd(
        shard_dir: Path = typer.Argument(..., help="Folder of WebDataset shards (*.tar) and manifest.json."),
        html: Path = typer.Option(
            None, "--html", help="Where to write the HTML report (default: SHARD_DIR/report.html)."
        ),
        no_html: bool = typer.Option(False, "--no-html", help="Print the summary only; write no report."),
        json_out: bool = typer.Option(
            False, "--json", help="Print the summary as JSON on stdout instead of tables."
        ),
        examples: int = typer.Option(
            3, min=0, help="Example dialogues (with thumbnails) in the HTML report."
        ),
        seed: int = typer.Option(0, help="Seed for picking the example dialogues."),
    ) -> None:
        """Summarise a shard folder: dialogues, turns, lengths, sources, rejections, dup rate, grounding;
        writes a self-contained HTML report with plots."""
        # imported here: webdataset (which pulls in torch) and polars would slow every other command
        from rich.console import Console

        from unimm.report import load_corpus, summarize
        from unimm.report.console import print_summary

        corpus = load_corpus(shard_dir, examples=examples, seed=seed)
        summary = summarize(corpus)
        # with --json, stdout carries only the JSON document; messages go to stderr
        err = Console(stderr=True)
        if json_out:
            typer.echo(summary.model_dump_json(indent=2))
        else:
            print_summary(summary, Console())
        if not no_html:
            from unimm.report.html import write_html  # matplotlib import only when a report is wanted

            path = write_html(summary, corpus.examples, html or shard_dir / "report.html")
            (err if json_out else Console()).print(f"report: {path}")

    @app.command("show")
    def show_cmd(
        shard_dir: Path = typer.Argument(..., help="Folder of WebDataset shards (*.tar)."),
        n: int = typer.Option(3, "-n", "--num", min=1, help="How many dialogues to show."),
        seed: int = typer.Option(0, help="Seed for the random pick (same seed, same dialogues)."),
        ids: list[str] = typer.Option(
            [], "--id", help="Show the sample with this key (repeatable); overrides -n."
        ),
    ) -> None:
        """Print dialogues from the shards: key, sources, grounding score, generator and every turn."""
        from unimm.report import pick_samples
        from unimm.report.console import print_dialogues

        print_dialogues(pick_samples(shard_dir, n=n, seed=seed, ids=ids or None))
