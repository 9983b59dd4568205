"""`unimm schema export`: JSON Schema files of the boundary models."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def schema_documents() -> dict[str, str]:
    """File name -> JSON text for every exported model (stable formatting, trailing newline)."""
    from unimm.schema import EXPORTED  # pydantic models: not for `unimm --help`

    return {
        f"{name}.schema.json": json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"
        for name, model in EXPORTED.items()
    }


def register(app: typer.Typer) -> None:
    schema_app = typer.Typer(help="Inspect and export the record schemas.", no_args_is_help=True)

    @schema_app.command("export")
    def export(out: Path = typer.Option(Path("schemas"), help="Folder for the *.schema.json files.")) -> None:
        """Write one JSON Schema file per boundary model (annotation, merged_image, chat, ...)."""
        out.mkdir(parents=True, exist_ok=True)
        for name, text in schema_documents().items():
            (out / name).write_text(text)
            typer.echo(out / name)

    app.add_typer(schema_app, name="schema")
