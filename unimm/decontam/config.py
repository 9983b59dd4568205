"""The decontamination stage's config: the evaluation files and the n-gram size."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EvalKind = Literal["auto", "image_list", "vqa", "aokvqa", "karpathy"]


class EvalFile(BaseModel):
    """One evaluation file; `name` (default: the file name) labels reasons and the report."""

    model_config = ConfigDict(extra="forbid")

    path: Path
    kind: EvalKind = "auto"
    name: str | None = None
    drop_images: bool = True
    drop_questions: bool = True

    @property
    def label(self) -> str:
        return self.name or self.path.name


class DecontamConfig(BaseModel):
    """Evaluation files and the n-gram size of question overlap."""

    model_config = ConfigDict(extra="forbid")

    eval_files: list[EvalFile] = Field(default_factory=list)
    ngram: int = Field(8, ge=1, description="Word n-gram size of question overlap (normalised text).")

    def files(self) -> list[Path]:
        """Paths of every evaluation file (for fingerprints / existence checks)."""
        return [ef.path for ef in self.eval_files]
