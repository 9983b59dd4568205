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


def run() -> None:
    """The process entry (the `unimm` script, `python -m unimm`): `main`, then its exit handlers,
    and the process ends without tearing its interpreter down (`procexit`). An uncaught
    exception, or a thread still working, exits the usual way."""
    try:
        main()
    except SystemExit as e:
        code = e.code
    else:
        code = 0
    if code is None:
        code = 0
    if not isinstance(code, int) or _threads_left():
        sys.exit(code)  # the usual way
    import atexit

    from unimm.procexit import end_process

    atexit._run_exitfuncs()
    end_process(code)


def _threads_left() -> bool:
    """Whether a thread that the interpreter would wait for at exit is still running."""
    import threading

    return any(
        t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()
    )


if __name__ == "__main__":
    run()
