"""Decontamination: evaluation files read into sets, and the dialogues that overlap them dropped
(see the package docstring)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
from pydantic import BaseModel, Field

from unimm.decontam.config import DecontamConfig, EvalFile
from unimm.errors import InputError
from unimm.filter.normalize import words
from unimm.filter.reasons import count_reasons
from unimm.ingest.aokvqa import AokvqaQuestion
from unimm.ingest.jsonio import decode_bytes
from unimm.ingest.vqa import ImageQuestion, QuestionsFile
from unimm.keys import coco_id_from_file_name, coco_key
from unimm.schema import KEY_PATTERN, Chat, Reject


class EvalSet(NamedTuple):
    kind: str
    image_keys: set[str]
    questions: list[str]


class EvalFileReport(BaseModel):
    name: str
    path: str
    kind: str
    images: int = Field(description="Distinct evaluation images in the file.")
    questions: int = Field(description="Evaluation questions in the file.")
    dropped_image: int = Field(0, description="Dialogues dropped because their image is in this file.")
    dropped_question: int = Field(
        0, description="Dialogues dropped because a question overlaps this file's questions."
    )


class DecontamReport(BaseModel):
    """What decontamination dropped: per evaluation file and per reason code."""

    input: int
    kept: int
    rejected: int
    files: list[EvalFileReport]
    by_reason: dict[str, int]


class DecontamResult(NamedTuple):
    kept: list[Chat]
    rejects: list[Reject]
    report: DecontamReport


class KarpathyImage(msgspec.Struct, gc=False):
    """One image of Karpathy's `dataset_coco.json` (its sentences are not read)."""

    split: str
    cocoid: int | None = None


class KarpathyFile(msgspec.Struct, gc=False):
    images: list[KarpathyImage]


# what each JSON kind is decoded into: the ingesters' Structs, reading only question and image
_DOCUMENTS: dict[str, Any] = {
    "vqa": QuestionsFile[ImageQuestion],
    "aokvqa": list[AokvqaQuestion],
    "karpathy": KarpathyFile,
}
_TOP = dict[str, msgspec.Raw] | list[msgspec.Raw]  # a document's top level, contents left undecoded
_ITEM = re.compile(r"^(?:questions|images)?\[(\d+)\]$")


def _image_key_of(line: str, file: Path, lineno: int) -> str:
    if line.isdigit():
        return coco_key(int(line))
    if KEY_PATTERN.match(line):
        return line
    coco_id = coco_id_from_file_name(line)
    if coco_id is not None:
        return coco_key(coco_id)
    raise InputError(file, f"not a COCO id, image key or COCO file name: {line!r}", record=lineno)


def _detect(data: bytes, path: Path) -> str:
    """The kind of an `auto` file from its top level: not JSON (or a bare number) is an image list."""
    try:
        top = msgspec.json.decode(data, type=_TOP)
    except (msgspec.DecodeError, msgspec.ValidationError):  # a number or text: one id per line
        return "image_list"
    if isinstance(top, list):
        return "aokvqa"
    if "questions" in top:
        return "vqa"
    if "images" in top:
        return "karpathy"
    raise InputError(
        path,
        "unrecognised evaluation file (expected an image list, VQA/OK-VQA questions, A-OKVQA or Karpathy dataset_coco.json)",
    )


def _decode(data: bytes, kind: str, path: Path) -> Any:
    """Decode with the ingesters' decoder; a record is numbered as the item of its list."""
    try:
        return decode_bytes(data, _DOCUMENTS[kind], str(path))
    except InputError as e:
        m = _ITEM.match(str(e.record)) if e.record is not None else None
        if m is None:
            raise
        raise InputError(e.file, e.message, record=int(m.group(1)), field=e.field) from None


def load_eval_file(ef: EvalFile) -> EvalSet:
    """Image keys and questions of one evaluation file (InputError names file/record/field)."""
    path = Path(ef.path)
    if not path.is_file():
        raise InputError(path, "evaluation file not found")
    data = path.read_bytes()
    kind = _detect(data, path) if ef.kind == "auto" else ef.kind
    if kind == "image_list":
        keys = set()
        for n, raw in enumerate(data.decode("utf-8").splitlines(), 1):
            line = raw.strip()
            if line and not line.startswith("#"):
                keys.add(_image_key_of(line, path, n))
        return EvalSet(kind, keys, [])
    doc = _decode(data, kind, path)
    if kind == "karpathy":
        keys = set()
        for i, im in enumerate(doc.images):
            if im.split == "test":
                if im.cocoid is None:
                    raise InputError(path, "missing field", record=i, field="cocoid")
                keys.add(coco_key(im.cocoid))
        return EvalSet(kind, keys, [])
    questions = doc.questions if kind == "vqa" else doc
    return EvalSet(kind, {coco_key(q.image_id) for q in questions}, [q.question for q in questions])


class _QuestionIndex:
    """n-grams of long evaluation questions and whole short ones, for one file."""

    def __init__(self, questions: list[str], n: int) -> None:
        self.n = n
        self.grams: set[tuple[str, ...]] = set()
        self.short: set[tuple[str, ...]] = set()
        for q in questions:
            w = words(q)
            if len(w) < n:
                self.short.add(tuple(w))
            else:
                self.grams.update(tuple(w[i : i + n]) for i in range(len(w) - n + 1))

    def overlaps(self, text: str) -> bool:
        w = words(text)
        if tuple(w) in self.short:
            return True
        n = self.n
        return any(tuple(w[i : i + n]) in self.grams for i in range(len(w) - n + 1))


def decontaminate(
    chats: list[Chat], coco_ids: Mapping[str, int] | None, cfg: DecontamConfig
) -> DecontamResult:
    """Drop dialogues on evaluation images or with questions overlapping evaluation questions.
    A dialogue gets one reason per (file, cause): `eval_image:<file>`, `eval_question:<file>`.
    `coco_ids` (optional: image key -> COCO id) adds the COCO key of a VG-keyed image that knows
    its COCO id."""
    loaded = [(ef, load_eval_file(ef)) for ef in cfg.eval_files]
    indexes = [_QuestionIndex(es.questions, cfg.ngram) if ef.drop_questions else None for ef, es in loaded]
    reports = [
        EvalFileReport(
            name=ef.label,
            path=str(ef.path),
            kind=es.kind,
            images=len(es.image_keys),
            questions=len(es.questions),
        )
        for ef, es in loaded
    ]
    kept: list[Chat] = []
    rejects: list[Reject] = []
    for chat in chats:
        keys = {chat.image_key}
        coco_id = (coco_ids or {}).get(chat.image_key)
        if coco_id is not None:
            keys.add(coco_key(coco_id))
        questions = [t.content for t in chat.turns if t.role == "user"]
        reasons = []
        for (ef, es), idx, rep in zip(loaded, indexes, reports, strict=True):
            if ef.drop_images and keys & es.image_keys:
                reasons.append(f"eval_image:{ef.label}")
                rep.dropped_image += 1
            if idx is not None and any(idx.overlaps(q) for q in questions):
                reasons.append(f"eval_question:{ef.label}")
                rep.dropped_question += 1
        if reasons:
            rejects.append(
                Reject(
                    id=chat.id, image_key=chat.image_key, stage="decontaminate", reasons=reasons, chat=chat
                )
            )
        else:
            kept.append(chat)
    report = DecontamReport(
        input=len(chats),
        kept=len(kept),
        rejected=len(rejects),
        files=reports,
        by_reason=count_reasons(rejects),
    )
    return DecontamResult(kept, rejects, report)
