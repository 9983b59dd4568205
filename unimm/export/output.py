"""Where an export writes: folders it owns (replaced whole, atomically) and what it reports."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, Field

from unimm.errors import InputError
from unimm.workdir import atomic_dir

# Left in every folder an export writes, so a rerun may replace it and nothing else.
OWNER_MARK = ".unimm-export"


class ExportResult(BaseModel):
    """What one export wrote; enough for a dataset card or a log line."""

    format: str
    out: Path = Field(description="The file or folder the consumer is pointed at.")
    records: int
    images: int = Field(description="Image payloads written: files (llava) or rows carrying bytes.")
    images_dir: Path | None = Field(None, description="LLaVA's image_folder; None for other formats.")


@contextlib.contextmanager
def owned_dir(final: Path, fmt: str) -> Iterator[Path]:
    """A temporary folder that replaces `final` whole once the block succeeds (unimm.workdir.atomic_dir).

    Replacing a folder deletes what was in it, so a folder that exists, is not empty and was not
    written by an export is refused (InputError) rather than wiped: `--images ~/coco` must never
    remove someone's COCO copy."""
    final = Path(final)
    if final.exists() and not final.is_dir():
        raise InputError(final, "exists and is not a folder")
    if final.is_dir() and any(final.iterdir()) and not (final / OWNER_MARK).is_file():
        raise InputError(
            final, "folder exists and was not written by `unimm export`; pick another path or remove it"
        )
    with atomic_dir(final) as tmp:
        (tmp / OWNER_MARK).write_text(f"{fmt}\n", encoding="utf-8")
        yield tmp
