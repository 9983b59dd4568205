"""The `unimm` command line. Stages are registered in pipeline order; each command module in
unimm/commands/ holds the options of one stage and calls that stage's library function.

    sample/download -> ingest -> merge -> generate -> filter/dedup/decontaminate -> shards -> train
"""

from __future__ import annotations

import sys

import typer

from unimm.commands import STAGE_MODULES
from unimm.errors import UnimmError

app = typer.Typer(
    name="unimm",
    help="Build UniMM-Chat-style multimodal instruction corpora from COCO, VQAv2, OK-VQA, A-OKVQA and Visual Genome.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in STAGE_MODULES:
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: user errors become one line on stderr and exit status 2."""
    try:
        app(args=argv, prog_name="unimm")
    except UnimmError as e:
        from rich.console import Console

        Console(stderr=True, highlight=False, soft_wrap=True).print(f"[bold red]error:[/] {e}", markup=True)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
