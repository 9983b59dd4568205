"""A-OKVQA v1.0 (`aokvqa_v1p0_{train,val}.json`): one JSON list per split.

Each item gives a multiple-choice question (canonical answer = the correct choice), ten direct
answers, and three rationales; each rationale becomes its own `rationale` row pointing at its
question through `parent_id`. `difficult_direct_answer` (the annotators' direct answers disagree)
is kept as the qa row's `difficult`. Image ids are COCO 2017 ids (same numbers as 2014).

Memory: the files are small (17k train items); one split is decoded at a time.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import polars as pl

from unimm.errors import InputError
from unimm.ingest.base import (
    PerSplitIngester,
    annotations_frame,
    answers_column,
    images_frame,
    strip_expr,
    utf8,
)
from unimm.ingest.jsonio import decode_file
from unimm.keys import coco_file_name_expr, coco_key_expr


class AokvqaQuestion(msgspec.Struct, gc=False):
    """A question and its COCO image: what every item gives, the unlabelled test split's too,
    and all that unimm.decontam reads of an evaluation file."""

    image_id: int
    question: str


class AokvqaItem(AokvqaQuestion, gc=False):
    question_id: str
    choices: list[str]
    correct_choice_idx: int
    direct_answers: list[str]
    rationales: list[str]
    split: str | None = None
    difficult_direct_answer: bool | None = None


class AokvqaIngester(PerSplitIngester):
    name = "aokvqa"

    def _split(self, path: Path, split: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        items = decode_file(path, list[AokvqaItem])
        file = str(path)
        for i, it in enumerate(items):
            if it.split is not None and it.split != split:
                raise InputError(
                    file, f"item of split {it.split!r} in the {split!r} file", record=f"[{i}]", field="split"
                )
            if not 0 <= it.correct_choice_idx < len(it.choices):
                raise InputError(
                    file,
                    f"correct_choice_idx {it.correct_choice_idx} is outside the {len(it.choices)} choices",
                    record=f"[{i}]",
                    field="correct_choice_idx",
                )
        qa = pl.DataFrame(
            {
                "image_id": [it.image_id for it in items],
                "question_id": utf8([it.question_id for it in items]),
                "question": utf8([it.question for it in items]),
                "choices": [it.choices for it in items],
                "correct_choice": [it.correct_choice_idx for it in items],
                "answer": utf8([it.choices[it.correct_choice_idx] for it in items]),
                "answers": answers_column(
                    [a for it in items for a in it.direct_answers],
                    None,
                    None,
                    [len(it.direct_answers) for it in items],
                ),
                "difficult": [it.difficult_direct_answer for it in items],
            },
            schema_overrides={
                "image_id": pl.Int64,
                "choices": pl.List(pl.Utf8),
                "correct_choice": pl.Int32,
                "difficult": pl.Boolean,
            },
        )
        rat = pl.DataFrame(
            {
                "image_id": [it.image_id for it in items for _ in it.rationales],
                "question_id": [it.question_id for it in items for _ in it.rationales],
                "i": [i for it in items for i in range(len(it.rationales))],
                "text": [r for it in items for r in it.rationales],
            },
            schema={"image_id": pl.Int64, "question_id": pl.Utf8, "i": pl.Int64, "text": pl.Utf8},
        )
        del items
        common = [
            coco_key_expr("image_id").alias("image_key"),
            pl.lit(self.name).alias("source"),
            pl.lit(split).alias("split"),
        ]
        qa_rows = qa.select(
            *common,
            pl.lit("qa").alias("kind"),
            pl.col("question_id").alias("source_id"),
            strip_expr("question").alias("text"),
            pl.col("answer").str.strip_chars(),
            "answers",
            "choices",
            "correct_choice",
            "difficult",
        )
        rat_rows = rat.select(
            *common,
            pl.lit("rationale").alias("kind"),
            (pl.col("question_id") + pl.lit("#") + pl.col("i").cast(pl.Utf8)).alias("source_id"),
            pl.col("question_id").alias("parent_id"),
            strip_expr("text").alias("text"),
        )
        ann = pl.concat([annotations_frame(qa_rows), annotations_frame(rat_rows)])
        file_name = pl.lit(f"coco/{split}2017/") + coco_file_name_expr("image_id", f"{split}2017")
        img = qa.select(pl.col("image_id").unique(maintain_order=True)).select(
            coco_key_expr("image_id").alias("image_key"),
            pl.lit(self.name).alias("source"),
            pl.lit(split).alias("split"),
            pl.col("image_id").cast(pl.Utf8).alias("source_image_id"),
            file_name.alias("file_name"),
            pl.col("image_id").alias("coco_id"),
        )
        return ann, images_frame(img)  # ann: two runs, each sorted and conformed
