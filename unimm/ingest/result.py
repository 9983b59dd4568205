"""What the ingest of one unit reports (`ingest/<unit>.summary.json`): a module of its own, so the
steps that only key or read these summaries (merge's planning in the command's own process)
import no ingester."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field


class IngestResult(BaseModel):
    """What the ingest of one source (or of one unit of it, see `SourceSpec.parts`) read and wrote."""

    source: str
    files: list[str] = Field(description="Input files read, relative to the data root.")
    images: int = Field(description="Rows of the image-ref table.")
    annotations: dict[str, int] = Field(
        description="Annotation rows by kind (caption, qa, region, object, rationale, dialog)."
    )
    seconds: float
    tables: list[str] = Field(description="Paths of the annotation tables.")
    images_table: str | None = Field(description="Path of the image-ref table (a part writes none).")

    @property
    def total(self) -> int:
        return sum(self.annotations.values())

    @classmethod
    def combine(cls, units: list[IngestResult]) -> IngestResult:
        """The result of a source from those of its units (the source's own first)."""
        from unimm.schema import KINDS

        kinds: Counter[str] = Counter()
        for u in units:
            kinds.update(u.annotations)
        return cls(
            source=units[0].source,
            files=list(dict.fromkeys(f for u in units for f in u.files)),
            images=sum(u.images for u in units),
            annotations={k: kinds[k] for k in KINDS if k in kinds},
            seconds=round(sum(u.seconds for u in units), 3),
            tables=[t for u in units for t in u.tables],
            images_table=units[0].images_table,
        )
