"""Visual Dialog v1.0 (`visdial_1.0_{train,val,test}.json`): one JSON document per split.

`{"version", "split", "data": {"questions": [...], "answers": [...], "dialogs": [...]}}`; each
dialog has an `image_id`, the `caption` its questioner saw and its rounds (`dialog`), each
round a `question` and an `answer` given as indices into `data.questions` / `data.answers`.
Each dialog becomes one `dialog` annotation: `text` is the caption, `rounds` the rounds in order
(questions get the "?" the file leaves out, as the official readers add it).

Only `answer` is read of a round: it is the human answer, the one the retrieval benchmark's
`answer_options[gt_index]` names (the official readers assert they agree), so the 100 options per
round, two thirds of the train file, are skipped by the decoder without being materialised.
The test split (8,000 dialogs) stops at a round whose answer is withheld: its rounds before it
are kept as they are, that last question is kept with no answer (`answer` None), never guessed;
only there may a round lack its answer.

Train images are COCO train2014 + val2014 pictures (COCO keys); the file does not say which
release holds a picture, so both COCO 2014 file names are given as its image refs (later stages
use the one that exists). Val and test pictures are VisDial's own Flickr images with ids of their
own (`visdial_val_<id>`, `visdial_test_<id>`, files in `visdial/VisualDialog_{val,test}2018/`).

Memory: the train file (~123k dialogs, 1.2M rounds) decodes into slim `gc=False` Structs
(question and answer indices only); strings are looked up by polars `gather`.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import polars as pl

from unimm.errors import InputError
from unimm.ingest.base import PerSplitIngester, annotations_frame, images_frame, utf8
from unimm.ingest.jsonio import decode_file
from unimm.keys import (
    VISDIAL_IMAGE_SPLITS,
    coco_file_name_expr,
    visdial_file_name_expr,
    visdial_key_expr,
)

_NO_ANSWER = -1  # a round without `answer` (the withheld last round of a test dialog)
_TRAIN_RELEASES = ("train2014", "val2014")  # where VisDial's train pictures come from


class VisdialRound(msgspec.Struct, gc=False):
    question: int
    answer: int = _NO_ANSWER


class VisdialDialog(msgspec.Struct, gc=False):
    image_id: int
    caption: str
    dialog: list[VisdialRound]


class VisdialData(msgspec.Struct, gc=False):
    questions: list[str]
    answers: list[str]
    dialogs: list[VisdialDialog]


class VisdialFile(msgspec.Struct, gc=False):
    data: VisdialData
    split: str | None = None


def _round(i: int, j: int) -> str:
    return f"data.dialogs[{i}].dialog[{j}]"


class VisdialIngester(PerSplitIngester):
    name = "visdial"

    def _split(self, path: Path, split: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        doc = decode_file(path, VisdialFile)
        file = str(path)
        if doc.split is not None and doc.split != split:
            raise InputError(file, f"the {split!r} file holds split {doc.split!r}", field="split")
        data = doc.data
        dialogs = data.dialogs
        lengths = np.fromiter((len(d.dialog) for d in dialogs), dtype=np.int64, count=len(dialogs))
        q = np.fromiter((r.question for d in dialogs for r in d.dialog), dtype=np.int64)
        a = np.fromiter((r.answer for d in dialogs for r in d.dialog), dtype=np.int64)
        image_ids = [d.image_id for d in dialogs]
        self._check(file, split, image_ids, lengths, q, a, len(data.questions), len(data.answers))

        dlg = pl.DataFrame(
            {
                "_d": np.arange(len(dialogs), dtype=np.int64),
                "image_id": image_ids,
                "caption": utf8([d.caption for d in dialogs]),
            },
            schema_overrides={"image_id": pl.Int64},
        )
        del dialogs, doc
        question = utf8(data.questions).str.strip_chars()
        question = pl.select(
            pl.when(question.str.ends_with("?")).then(question).otherwise(question + "?")
        ).to_series()
        answer = utf8(data.answers).str.strip_chars()
        del data
        # a withheld answer is a null index, which gathers a null
        a_idx = pl.Series(a)
        a_idx = pl.select(pl.when(a_idx != _NO_ANSWER).then(a_idx)).to_series()
        rounds = (
            pl.DataFrame(
                {
                    "_d": np.repeat(np.arange(len(lengths), dtype=np.int64), lengths),
                    "question": question.gather(q),
                    "answer": answer.gather(a_idx),
                }
            )
            .group_by("_d", maintain_order=True)
            .agg(pl.struct("question", "answer").alias("rounds"))
        )
        ann = dlg.join(rounds, on="_d", how="left", maintain_order="left").select(
            visdial_key_expr("image_id", split).alias("image_key"),
            pl.lit(self.name).alias("source"),
            pl.lit(split).alias("split"),
            pl.lit("dialog").alias("kind"),
            pl.col("image_id").cast(pl.Utf8).alias("source_id"),
            pl.col("caption").str.strip_chars().alias("text"),
            "rounds",
        )
        return annotations_frame(ann), images_frame(self._images(dlg.select("image_id"), split))

    def _images(self, ids: pl.DataFrame, split: str) -> pl.DataFrame:
        """One image ref per picture; a train picture gets one per COCO 2014 release."""
        common = [
            visdial_key_expr("image_id", split).alias("image_key"),
            pl.lit(self.name).alias("source"),
            pl.lit(split).alias("split"),
            pl.col("image_id").cast(pl.Utf8).alias("source_image_id"),
        ]
        if split in VISDIAL_IMAGE_SPLITS:
            folder = VISDIAL_IMAGE_SPLITS[split]
            return ids.select(
                *common,
                (pl.lit(f"{self.name}/{folder}/") + visdial_file_name_expr("image_id", split)).alias(
                    "file_name"
                ),
            )
        return pl.concat(
            [
                ids.select(
                    *common,
                    (pl.lit(f"coco/{rel}/") + coco_file_name_expr("image_id", rel)).alias("file_name"),
                    pl.col("image_id").alias("coco_id"),
                )
                for rel in _TRAIN_RELEASES
            ]
        )

    def _check(
        self,
        file: str,
        split: str,
        image_ids: list[int],
        lengths: np.ndarray,
        q: np.ndarray,
        a: np.ndarray,
        n_questions: int,
        n_answers: int,
    ) -> None:
        """The first record that breaks the format, as an InputError naming it: a repeated image,
        a dialog without rounds, an index outside its list, a missing answer (only the last round
        of a test dialog may leave it out)."""
        dup = np.flatnonzero(~pl.Series(image_ids, dtype=pl.Int64).is_first_distinct().to_numpy())
        if dup.size:
            i = int(dup[0])
            raise InputError(
                file,
                f"image_id {image_ids[i]} has a second dialog",
                record=f"data.dialogs[{i}]",
                field="image_id",
            )
        empty = np.flatnonzero(lengths == 0)
        if empty.size:
            i = int(empty[0])
            raise InputError(
                file,
                f"the dialog of image_id {image_ids[i]} has no rounds",
                record=f"data.dialogs[{i}]",
                field="dialog",
            )
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
        dialog_of = np.repeat(np.arange(len(lengths)), lengths)
        last = np.zeros(len(q), dtype=bool)
        last[starts + lengths - 1] = True

        def fail(bad: np.ndarray, field: str, message: str) -> None:
            k = int(np.flatnonzero(bad)[0])
            i = int(dialog_of[k])
            j = k - int(starts[i])
            raise InputError(
                file,
                f"{message.format(q=q[k], a=a[k])} (image_id {image_ids[i]})",
                record=_round(i, j),
                field=field,
            )

        if ((q < 0) | (q >= n_questions)).any():
            fail(
                (q < 0) | (q >= n_questions),
                "question",
                f"index {{q}} is outside data.questions ({n_questions})",
            )
        withheld = a == _NO_ANSWER
        allowed = last if split == "test" else np.zeros_like(last)
        if (withheld & ~allowed).any():
            fail(
                withheld & ~allowed,
                "answer",
                "the round has no answer (only the last round of a test dialog leaves it out)",
            )
        if (~withheld & ((a < 0) | (a >= n_answers))).any():
            fail(
                ~withheld & ((a < 0) | (a >= n_answers)),
                "answer",
                f"index {{a}} is outside data.answers ({n_answers})",
            )
