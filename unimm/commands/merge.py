"""`unimm merge`: one record per image from the ingested sources."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from unimm.commands.runstage import CONFIG, EXECUTOR, RAY_ADDRESS, SET, WORK, run_stage

if TYPE_CHECKING:
    from rich.console import Console


def print_summary(summary, console: Console | None = None) -> None:  # noqa: ANN001 (MergeSummary)
    """Images by number of sources and by combination, and how many qualify for UniMM-Chat."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(
        title=f"merge: {summary.images_kept:,} of {summary.images_total:,} images kept, "
        f"{summary.partitions} partition(s)"
    )
    t.add_column("sources per image", justify="right")
    t.add_column("images", justify="right")
    for n, count in sorted(summary.by_source_count.items()):
        t.add_row(str(n), f"{count:,}")
    console.print(t)
    c = Table(title="source combinations")
    c.add_column("sources")
    c.add_column("images", justify="right")
    for combo in summary.combinations[:20]:
        c.add_row(combo.sources, f"{combo.images:,}")
    if len(summary.combinations) > 20:
        c.add_row(f"... {len(summary.combinations) - 20} more", "")
    console.print(c)
    k = Table(title="annotations")
    for col in ("kind", "in", "merged items", "exact duplicates collapsed"):
        k.add_column(col, justify="right" if col != "kind" else "left")
    for kind, n_in in summary.annotations_in.items():
        out = summary.items_out.get(kind)
        dup = summary.duplicates_collapsed.get(kind)
        k.add_row(kind, f"{n_in:,}", "" if out is None else f"{out:,}", "" if dup is None else f"{dup:,}")
    console.print(k)
    console.print(
        f"{summary.images_with_3plus_kinds:,} images carry >= 3 annotation types "
        "(UniMM-Chat kept only such images; use --min-sources 3 to do the same by source)."
    )
    if summary.orphan_rationales:
        console.print(f"[yellow]{summary.orphan_rationales} rationale(s) had no question to attach to[/]")


def register(app: typer.Typer) -> None:
    @app.command("merge")
    def merge_cmd(
        config: Path = CONFIG,
        work: Path = WORK,
        sources: str = typer.Option(None, help="Comma-separated sources to merge (default: all ingested)."),
        require: list[str] = typer.Option(
            None, "--require", help="Keep only images annotated by this source (repeatable)."
        ),
        min_sources: int = typer.Option(
            None, min=1, help="Keep only images annotated by at least N sources."
        ),
        partitions: int = typer.Option(
            None, min=0, help="Output partitions (0 = one per ~10,000 images, keys.IMAGES_PER_PARTITION)."
        ),
        set_: list[str] = SET,
        executor: str = EXECUTOR,
        ray_address: str = RAY_ADDRESS,
    ) -> None:
        """Group all annotations by image into work/merged/part-*.parquet and print who annotates what."""
        from unimm.merge import read_summary
        from unimm.sources import parse_sources

        run_stage(
            config=config,
            work=work,
            overrides={
                "merge.sources": parse_sources(sources) if sources else None,
                "merge.require": parse_sources(",".join(require)) if require else None,
                "merge.min_sources": min_sources,
                "merge.partitions": partitions,
            },
            set_=set_,
            executor=executor,
            workers=None,
            ray_address=ray_address,
            progress=False,
            only="merge",
        )
        print_summary(read_summary(work))
