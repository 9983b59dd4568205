"""VQAv2 and OK-VQA: a questions file joined with an annotations file per split, by question_id.

Both use the official VQA layout (`questions` / `annotations` lists plus `data_subtype`); the
two files of a pair must come from the same split, and every question needs its annotation and
vice versa. OK-VQA answers also carry `raw_answer`, its canonical answer is the most frequent
`answer` (ties -> the first given), and its `question_type` codes ("eight") are mapped to the
category names of the annotations file's `question_types`.

Memory: one pair is decoded at a time (VQAv2 train: 443k questions x 10 answers, ~1.2 GB of
Structs at peak); answers go into flat Arrow arrays + offsets, and the Structs are dropped
before the next split is read.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Generic, Literal, TypeVar

import msgspec
import polars as pl

from unimm.errors import InputError
from unimm.ingest.base import (
    Ingester,
    SourceTables,
    annotations_frame,
    answers_column,
    by_partition_hash,
    images_frame,
    strip_expr,
    utf8,
)
from unimm.ingest.inputs import exists
from unimm.ingest.jsonio import decode_file
from unimm.keys import IMAGE_NUMBER, PARTITION_HASH, coco_file_name_expr, coco_key_expr
from unimm.sources import SOURCE_SPECS, ExpectedFile

ConfidenceT = Literal["yes", "maybe", "no"]


class ImageQuestion(msgspec.Struct, gc=False):
    """A question and its COCO image: all that unimm.decontam reads of an evaluation file."""

    image_id: int
    question: str


class Question(ImageQuestion, gc=False):
    question_id: int


Q = TypeVar("Q", bound=ImageQuestion)


class QuestionsFile(msgspec.Struct, Generic[Q], gc=False):
    """A VQAv2 / OK-VQA questions file: `QuestionsFile[Question]` (ingest) or
    `QuestionsFile[ImageQuestion]` (decontamination, which needs no question ids)."""

    questions: list[Q]
    data_subtype: str | None = None


class VqaAnswer(msgspec.Struct, gc=False):
    answer: str
    answer_confidence: ConfidenceT


class VqaAnnotation(msgspec.Struct, gc=False):
    question_id: int
    image_id: int
    multiple_choice_answer: str
    answers: list[VqaAnswer]
    answer_type: str | None = None
    question_type: str | None = None


class VqaAnnotationsFile(msgspec.Struct, gc=False):
    annotations: list[VqaAnnotation]
    data_subtype: str | None = None


class OkAnswer(msgspec.Struct, gc=False):
    answer: str
    raw_answer: str
    answer_confidence: ConfidenceT


class OkAnnotation(msgspec.Struct, gc=False):
    question_id: int
    image_id: int
    answers: list[OkAnswer]
    answer_type: str | None = None
    question_type: str | None = None


class OkAnnotationsFile(msgspec.Struct, gc=False):
    annotations: list[OkAnnotation]
    data_subtype: str | None = None
    question_types: dict[str, str] = {}


def _questions_frame(doc: QuestionsFile[Question]) -> pl.DataFrame:
    q = doc.questions
    return pl.DataFrame(
        {
            "question_id": [x.question_id for x in q],
            "image_id": [x.image_id for x in q],
            "question": utf8([x.question for x in q]),
        },
        schema_overrides={"question_id": pl.Int64, "image_id": pl.Int64},
    ).with_row_index("_qrec")


def _join_pair(questions: pl.DataFrame, annotations: pl.DataFrame, qfile: str, afile: str) -> pl.DataFrame:
    """Inner join by question_id after proving that both sides match one to one."""
    for df, file, key, name in (
        (questions, qfile, "_qrec", "questions"),
        (annotations, afile, "_arec", "annotations"),
    ):
        dup = df.filter(~pl.col("question_id").is_first_distinct())
        if dup.height:
            rec = int(dup[key][0])
            raise InputError(
                file,
                f"question_id {dup['question_id'][0]} appears more than once",
                record=f"{name}[{rec}]",
                field="question_id",
            )
    lonely_q = questions.join(annotations.select("question_id"), on="question_id", how="anti")
    if lonely_q.height:
        row = lonely_q.sort("_qrec").row(0, named=True)
        raise InputError(
            qfile,
            f"question_id {row['question_id']} has no annotation in {afile}",
            record=f"questions[{row['_qrec']}]",
            field="question_id",
        )
    lonely_a = annotations.join(questions.select("question_id"), on="question_id", how="anti")
    if lonely_a.height:
        row = lonely_a.sort("_arec").row(0, named=True)
        raise InputError(
            afile,
            f"question_id {row['question_id']} has no question in {qfile}",
            record=f"annotations[{row['_arec']}]",
            field="question_id",
        )
    joined = questions.join(annotations, on="question_id", how="inner", maintain_order="left", suffix="_ann")
    bad = joined.filter(pl.col("image_id") != pl.col("image_id_ann"))
    if bad.height:
        row = bad.sort("_qrec").row(0, named=True)
        raise InputError(
            afile,
            f"image_id {row['image_id_ann']} differs from {row['image_id']} given for the same question in {qfile}",
            record=f"annotations[{row['_arec']}]",
            field="image_id",
        )
    return joined


def _check_subtypes(q_sub: str | None, a_sub: str | None, qfile: str, afile: str) -> None:
    if q_sub is not None and a_sub is not None and q_sub != a_sub:
        raise InputError(
            afile,
            f"split mismatch: annotations are {a_sub!r} but the questions in {qfile} are {q_sub!r}",
            field="data_subtype",
        )


class _PairIngester(Ingester):
    """A source made of (questions, annotations) file pairs, one pair per split."""

    def _pairs(self, data_root: Path) -> list[tuple[str, ExpectedFile, ExpectedFile]]:
        files = SOURCE_SPECS[self.name].files()
        out = []
        for split in dict.fromkeys(f.split for f in files):
            q = next(f for f in files if f.split == split and f.role == "questions")
            a = next(f for f in files if f.split == split and f.role == "annotations")
            if exists(data_root, q) and exists(data_root, a):
                out.append((split, q, a))
        return out

    def read(self, data_root: Path) -> SourceTables:
        data_root = Path(data_root)
        anns: list[pl.DataFrame] = []
        imgs: list[pl.DataFrame] = []
        files: list[str] = []
        for split, q, a in self._pairs(data_root):
            files += [q.path, a.path]
            qfile, afile = str(data_root / q.path), str(data_root / a.path)
            qdoc = decode_file(data_root / q.path, QuestionsFile[Question])
            questions = _questions_frame(qdoc)
            q_sub = qdoc.data_subtype
            del qdoc
            annotations, a_sub, types = self._annotations(data_root / a.path)
            _check_subtypes(q_sub, a_sub, qfile, afile)
            # The questions are put in hash order before the join, which moves the answers into
            # their order anyway: sorting the joined rows moved every answer list once more.
            questions = by_partition_hash(
                questions.with_columns(coco_key_expr("image_id").alias("image_key"))
            )
            joined = _join_pair(questions, annotations, qfile, afile)
            del questions, annotations
            ann = joined.select(
                "image_key",
                PARTITION_HASH,
                IMAGE_NUMBER,
                pl.lit(self.name).alias("source"),
                pl.lit(split).alias("split"),
                pl.lit("qa").alias("kind"),
                pl.col("question_id").cast(pl.Utf8).alias("source_id"),
                strip_expr("question").alias("text"),
                pl.col("answer").str.strip_chars(),
                "answers",
                self._question_type_expr(types).alias("question_type"),
                "answer_type",
            )
            anns.append(annotations_frame(ann))
            image_ids = joined.select(pl.col("image_id").unique(maintain_order=True))
            file_name = pl.lit(f"coco/{split}/") + coco_file_name_expr("image_id", split)
            imgs.append(
                images_frame(
                    image_ids.select(
                        coco_key_expr("image_id").alias("image_key"),
                        pl.lit(self.name).alias("source"),
                        pl.lit(split).alias("split"),
                        pl.col("image_id").cast(pl.Utf8).alias("source_image_id"),
                        file_name.alias("file_name"),
                        pl.col("image_id").alias("coco_id"),
                    )
                )
            )
        return SourceTables(annotations=pl.concat(anns), images=pl.concat(imgs), files=files)

    def _question_type_expr(self, types: dict[str, str]) -> pl.Expr:
        return pl.col("question_type")

    @abc.abstractmethod
    def _annotations(self, path: Path) -> tuple[pl.DataFrame, str | None, dict[str, str]]:
        """Decode one annotations file: the answer table, its data_subtype and question-type names."""


class Vqav2Ingester(_PairIngester):
    name = "vqav2"

    def _annotations(self, path: Path) -> tuple[pl.DataFrame, str | None, dict[str, str]]:
        doc = decode_file(path, VqaAnnotationsFile)
        a = doc.annotations
        answers = answers_column(
            [x.answer for r in a for x in r.answers],
            None,
            [x.answer_confidence for r in a for x in r.answers],
            [len(r.answers) for r in a],
        )
        df = pl.DataFrame(
            {
                "question_id": [r.question_id for r in a],
                "image_id": [r.image_id for r in a],
                "answer": utf8([r.multiple_choice_answer for r in a]),
                "answers": answers,
                "question_type": utf8([r.question_type for r in a]),
                "answer_type": utf8([r.answer_type for r in a]),
            },
            schema_overrides={"question_id": pl.Int64, "image_id": pl.Int64},
        ).with_row_index("_arec")
        return df, doc.data_subtype, {}


class OkvqaIngester(_PairIngester):
    name = "okvqa"

    def _annotations(self, path: Path) -> tuple[pl.DataFrame, str | None, dict[str, str]]:
        doc = decode_file(path, OkAnnotationsFile)
        a = doc.annotations
        answers = answers_column(
            [x.answer for r in a for x in r.answers],
            [x.raw_answer for r in a for x in r.answers],
            [x.answer_confidence for r in a for x in r.answers],
            [len(r.answers) for r in a],
        )
        df = pl.DataFrame(
            {
                "question_id": [r.question_id for r in a],
                "image_id": [r.image_id for r in a],
                "answers": answers,
                "question_type": utf8([r.question_type for r in a]),
                "answer_type": utf8([r.answer_type for r in a]),
            },
            schema_overrides={"question_id": pl.Int64, "image_id": pl.Int64},
        ).with_row_index("_arec")
        return df.with_columns(_consensus(df).alias("answer")), doc.data_subtype, doc.question_types

    def _question_type_expr(self, types: dict[str, str]) -> pl.Expr:
        # a code the file's own table does not name is kept as given rather than dropped
        return pl.col("question_type").replace(types) if types else pl.col("question_type")


def _consensus(df: pl.DataFrame) -> pl.Series:
    """Most frequent answer text per row (ties -> the one given first); null for no answers."""
    flat = (
        df.select("_arec", pl.col("answers").list.eval(pl.element().struct.field("text")).alias("t"))
        .explode("t")
        .with_row_index("_pos")
        .drop_nulls("t")
    )
    best = (
        flat.group_by("_arec", "t")
        .agg(pl.len().alias("n"), pl.col("_pos").min().alias("first"))
        .sort(["_arec", "n", "first"], descending=[False, True, False])
        .group_by("_arec", maintain_order=True)
        .first()
    )
    return df.select("_arec").join(best, on="_arec", how="left", maintain_order="left")["t"]
