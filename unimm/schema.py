"""The records that cross stage boundaries, as pydantic v2 models.

Every stage reads and writes these shapes; `unimm schema export` writes their JSON Schemas to
`schemas/`, and a test fails when the committed files drift from the models.

Flow: ingest writes `Annotation` + `ImageRef` rows (one Parquet table per source), merge writes
one `MergedImage` per picture, generate writes `Chat` (or `GenerationFailure`), filter keeps a
`Chat` with its grounding score or writes a `Reject`, and the shards carry each `Chat` in its
fixed, null-free shard form `ShardSample` as `<key>.json`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from unimm.placeholder import IMAGE_PLACEHOLDER as IMAGE_PLACEHOLDER  # re-export; the rule: unimm.placeholder

SCHEMA_VERSION = "1"

Source = Literal["coco", "vqav2", "okvqa", "aokvqa", "vg", "visdial"]
SOURCES: tuple[str, ...] = ("coco", "vqav2", "okvqa", "aokvqa", "vg", "visdial")
Kind = Literal["caption", "qa", "region", "object", "rationale", "dialog"]
KINDS: tuple[str, ...] = ("caption", "qa", "region", "object", "rationale", "dialog")
Confidence = Literal["yes", "maybe", "no"]

# WebDataset splits a tar member name at the first dot: keys must not contain one.
KEY_PATTERN = re.compile(r"^[a-z]+_[0-9A-Za-z_-]+$")


@dataclass(frozen=True)
class ColumnDtype:
    """`Annotated` metadata: the polars dtype (by name) of the field's Parquet column, where it is
    narrower than the Python type implies (int -> Int64, float -> Float64). unimm.tables derives
    every table schema from these models; validation and the JSON Schemas ignore it."""

    name: str


Int32 = Annotated[int, ColumnDtype("Int32")]
Float32 = Annotated[float, ColumnDtype("Float32")]


class Record(BaseModel):
    """Base for every boundary model: unknown fields are an error, not silently kept."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------------------
# ingest
# --------------------------------------------------------------------------------------------
class Answer(Record):
    """One human answer to a question, as the source gives it."""

    text: str = Field(description="The (source-normalised) answer, e.g. VQAv2 `answer`.")
    raw: str | None = Field(None, description="OK-VQA `raw_answer`, before the source's own normalisation.")
    confidence: Confidence | None = Field(None, description="VQAv2/OK-VQA `answer_confidence`.")


class DialogRound(Record):
    """One round of a human dialogue about an image (Visual Dialog): a question and its answer."""

    question: str = Field(description='The question, ending with "?" (VisDial stores it without).')
    answer: str | None = Field(
        None, description="The human answer; None for the last round of a VisDial test dialog (withheld)."
    )


class Annotation(Record):
    """One normalised annotation: one row of `work/ingest/<source>.parquet`."""

    image_key: str = Field(description="Canonical image key (see unimm.keys), no dots.")
    source: Source
    split: str = Field(description="Source split, e.g. train2014, val2017, train, val; VG has `all`.")
    kind: Kind
    source_id: str = Field(
        description="Id of the record in its source file (caption, question, region, object id)."
    )
    parent_id: str | None = Field(None, description="For a rationale: the source_id of its question.")
    text: str = Field(
        description="Caption, question, region phrase, object name, rationale or a dialog's caption; trimmed."
    )
    answer: str | None = Field(None, description="Canonical answer of a qa (consensus / correct choice).")
    answers: list[Answer] = Field(default_factory=list)
    choices: list[str] = Field(default_factory=list, description="Multiple-choice options (A-OKVQA).")
    correct_choice: Int32 | None = Field(None, description="Index into choices.")
    question_type: str | None = None
    answer_type: str | None = None
    bbox: list[Float32] | None = Field(
        None, description="[x, y, w, h] normalised to [0, 1] by the annotated image's own width/height."
    )
    iscrowd: bool | None = Field(
        None, description="COCO instances `iscrowd`: a crowd box covers several objects (a lower bound)."
    )
    names: list[str] = Field(
        default_factory=list, description="Every name of a VG object (`text` is the first one)."
    )
    synsets: list[str] = Field(default_factory=list, description="WordNet synsets of a VG object.")
    attributes: list[str] = Field(
        default_factory=list, description="VG attributes of an object (colours, materials), trimmed."
    )
    difficult: bool | None = Field(None, description="A-OKVQA `difficult_direct_answer`.")
    rounds: list[DialogRound] = Field(
        default_factory=list, description="A dialog's rounds in order (VisDial); its `text` is the caption."
    )

    @field_validator("bbox")
    @classmethod
    def _bbox_normalised(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (len(v) != 4 or any(c < 0.0 or c > 1.0 for c in v)):
            raise ValueError("bbox must be 4 numbers in [0, 1]")
        return v


class ImageRef(Record):
    """One image as one source knows it: one row of `work/ingest/<source>.images.parquet`."""

    image_key: str
    source: Source
    split: str
    source_image_id: str
    file_name: str | None = Field(
        None, description="Path relative to the data root, e.g. coco/train2017/000000391895.jpg."
    )
    width: Int32 | None = None
    height: Int32 | None = None
    coco_id: int | None = None
    vg_id: int | None = None


# --------------------------------------------------------------------------------------------
# merge
# --------------------------------------------------------------------------------------------
class Provenance(Record):
    """Where a merged item came from; exact duplicates keep every provenance.

    `sources[i]` is the source of `source_ids[i]`: the lists are parallel, so an item collapsed
    from two annotations of the same source lists that source twice.
    """

    sources: list[Source] = Field(min_length=1)
    source_ids: list[str] = Field(min_length=1)


class MergedCaption(Provenance):
    text: str


class MergedQA(Provenance):
    question: str
    answer: str | None = None
    answers: list[Answer] = Field(default_factory=list)
    choices: list[str] = Field(default_factory=list)
    correct_choice: Int32 | None = None
    question_type: str | None = None
    answer_type: str | None = None
    rationales: list[str] = Field(default_factory=list)
    difficult: bool | None = Field(None, description="A-OKVQA `difficult_direct_answer`.")


class MergedRegion(Provenance):
    text: str
    bbox: list[Float32] | None = None


class MergedObject(Provenance):
    """An annotated object: a COCO instance (name = category, `iscrowd`) or a VG object (every
    name, synsets, attributes)."""

    name: str
    bbox: list[Float32] | None = None
    iscrowd: bool | None = None
    names: list[str] = Field(default_factory=list)
    synsets: list[str] = Field(default_factory=list)
    attributes: list[str] = Field(default_factory=list)


class MergedDialog(Provenance):
    """One human dialogue about the image (VisDial): the caption the questioner saw, then the
    rounds in order. Never collapsed with another dialogue: each is its own conversation."""

    caption: str
    rounds: list[DialogRound] = Field(min_length=1)


class ImageFile(Record):
    source: Source
    split: str
    file_name: str | None = None
    width: Int32 | None = None
    height: Int32 | None = None


class MergedImage(Record):
    """All annotations of one physical image: one row of `work/merged/part-*.parquet`."""

    image_key: str
    coco_id: int | None = None
    vg_id: int | None = None
    width: Int32 | None = Field(None, description="Width of the preferred file (COCO first, then VG).")
    height: Int32 | None = None
    files: list[ImageFile] = Field(default_factory=list)
    sources: list[Source] = Field(
        description="Distinct sources that annotate this image, in canonical source order."
    )
    captions: list[MergedCaption] = Field(default_factory=list)
    qas: list[MergedQA] = Field(default_factory=list)
    regions: list[MergedRegion] = Field(default_factory=list)
    objects: list[MergedObject] = Field(default_factory=list)
    dialogs: list[MergedDialog] = Field(default_factory=list)

    @property
    def kinds(self) -> list[str]:
        """Annotation types present (caption, qa, rationale, region, object, dialog)."""
        out = []
        if self.captions:
            out.append("caption")
        if self.qas:
            out.append("qa")
        if any(q.rationales for q in self.qas):
            out.append("rationale")
        if self.regions:
            out.append("region")
        if self.objects:
            out.append("object")
        if self.dialogs:
            out.append("dialog")
        return out


# --------------------------------------------------------------------------------------------
# generate
# --------------------------------------------------------------------------------------------
class DialogueTurn(Record):
    """One question/answer exchange as the LLM writes it (the response schema)."""

    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)


class DialogueResponse(Record):
    """What the LLM must answer: JSON matching this schema (constrained decoding where possible)."""

    turns: list[DialogueTurn] = Field(min_length=1, max_length=32)


class Turn(Record):
    role: Literal["user", "assistant"]
    content: str


class GeneratorInfo(Record):
    backend: Literal["template", "local", "openai"]
    model: str
    prompt_version: str
    prompt_fingerprint: str
    request_id: str = Field(
        description="Content address of the request (model, prompt, input, sampling, seed)."
    )


CheckKind = Literal["object", "count", "existence", "attribute", "qa", "judge"]
JudgeLabel = Literal["supported", "unsupported", "not_checkable"]


class TurnGrounding(Record):
    """What the grounding checks found in one assistant turn."""

    turn: int = Field(description="Index of the assistant turn in Chat.turns.")
    checks: list[CheckKind] = Field(default_factory=list, description="Checks that applied to this turn.")
    failures: list[str] = Field(
        default_factory=list,
        description="Failed checks as reasons, e.g. hallucinated_object:giraffe, count_mismatch:bus:5!=2.",
    )
    objects: list[str] = Field(
        default_factory=list, description="Vocabulary objects the turn asserts (canonical names)."
    )
    hallucinated: list[str] = Field(default_factory=list, description="Of `objects`, those unsupported.")
    judge: JudgeLabel | None = Field(None, description="The LLM judge's verdict, when the judge ran.")
    judge_reason: str | None = None


class JudgeVerdict(Record):
    """The LLM judge's verdict on one assistant turn."""

    turn: int = Field(description="Index of the assistant turn in the dialogue's turns.")
    verdict: JudgeLabel
    reason: str = ""


class JudgeAnswerVerdict(Record):
    """The judge's verdict on one answer, numbered as the judge was shown it (A1 = 1)."""

    answer: int = Field(ge=1, description="Number of the assistant answer in the judge's prompt (A1 = 1).")
    verdict: JudgeLabel
    reason: str = Field("", max_length=200, description="One short sentence.")


class JudgeResponse(Record):
    """What the LLM judge must answer: one verdict per answer it rates."""

    verdicts: list[JudgeAnswerVerdict] = Field(min_length=1, max_length=32)


class GroundingReport(Record):
    """Per-dialogue grounding: score, coverage and CHAIR figures (Rohrbach et al. 2018)."""

    score: float | None = Field(None, description="Passed checks / checks; None when nothing was checkable.")
    coverage: float = Field(description="Share of assistant turns with at least one check.")
    checks: int = 0
    passed: int = 0
    mentioned: int = Field(0, description="Distinct vocabulary objects asserted by the assistant.")
    hallucinated: int = Field(0, description="Of those, how many the annotations do not support.")
    chair_i: float | None = Field(
        None, description="hallucinated / mentioned; None when nothing was mentioned."
    )
    chair_s: bool | None = Field(
        None, description="Any hallucinated object; None when nothing was mentioned."
    )
    turns: list[TurnGrounding] = Field(default_factory=list)
    judge_fingerprint: str | None = Field(None, description="Judge prompt fingerprint, when the judge ran.")


class Chat(Record):
    """One dialogue about one image: generation output, filter input, and what each shard's
    `<key>.json` holds (in its null-free form, ShardSample).

    In shards the first user turn starts with exactly one `<image>` placeholder (IMAGE_PLACEHOLDER);
    before export, turns carry no placeholder. A shard's `<key>.json` also validates as a Chat,
    so every reader of shards gets the Chat back.
    """

    id: str = Field(description="Sample key: no dots, safe as a WebDataset __key__.")
    image_key: str
    image_file: str | None = Field(None, description="Image path relative to the data root, if known.")
    turns: list[Turn] = Field(min_length=2)
    sources: list[Source]
    generator: GeneratorInfo
    grounding_score: float | None = None
    grounding: GroundingReport | None = Field(None, description="Set by the filter stage.")

    @field_validator("id")
    @classmethod
    def _key_safe(cls, v: str) -> str:
        if not KEY_PATTERN.match(v):
            raise ValueError(
                f"id {v!r} is not a safe WebDataset key (letters, digits, _ and - only, no dots)"
            )
        return v

    @model_validator(mode="before")
    @classmethod
    def _from_shard_sample(cls, data: Any) -> Any:
        # `grounding_scored` exists only in the shard form: readers of shards parse Chat directly
        if isinstance(data, dict) and "grounding_scored" in data:
            return ShardSample.model_validate(data).chat_fields()
        return data


class GenerationFailure(Record):
    """A request that never produced a valid dialogue; kept, never silently dropped."""

    image_key: str
    request_id: str
    backend: str
    model: str
    reason: str = Field(description="Reason code, e.g. invalid_json, schema_mismatch, http_error, timeout.")
    detail: str = ""
    attempts: int


# --------------------------------------------------------------------------------------------
# filter / dedup / decontaminate
# --------------------------------------------------------------------------------------------
class Reject(Record):
    """A dialogue removed by filter, dedup or decontamination, with every reason that applied."""

    id: str
    image_key: str
    stage: Literal["filter", "dedup", "decontaminate", "shards"]
    reasons: list[str] = Field(min_length=1)
    chat: Chat


# --------------------------------------------------------------------------------------------
# shards
# --------------------------------------------------------------------------------------------
UNSCORED = -1.0  # ShardSample.grounding_score of a dialogue the filter gave no score


class ShardSample(Record):
    """One shard sample's `<key>.json`: a Chat with every field always present and of one type.

    Readers that guess column types from the first samples (datasets' webdataset loader) type a
    field that is null there as null and then fail on the first real value, so nothing here is
    ever null and no list is nested under an optional field: an unknown `image_file` is "", an
    unscored dialogue has `grounding_score` UNSCORED and `grounding_scored` false, and the
    grounding report, whose own optional parts (judge verdicts, CHAIR figures) would be such
    columns, is carried as JSON text. The dataset card's features are derived from this model.
    """

    id: str = Field(description="Sample key: no dots, safe as a WebDataset __key__.")
    image_key: str = Field(description="Canonical image key (see unimm.keys).")
    image_file: str = Field(description='Image path relative to the data root; "" when unknown.')
    turns: list[Turn] = Field(
        min_length=2, description='Alternating user/assistant turns; the first starts with "<image>\\n".'
    )
    sources: list[Source] = Field(description="Annotation sources the dialogue was generated from.")
    generator: GeneratorInfo
    grounding_score: float = Field(
        description=f"Passed grounding checks / checks, in [0, 1]; {UNSCORED} when unscored (see grounding_scored)."
    )
    grounding_scored: bool = Field(description="Whether grounding_score is a real score.")
    grounding_report: str = Field(
        description='The filter\'s GroundingReport as JSON text; "" when the filter did not ground the dialogue.'
    )

    @classmethod
    def from_chat(cls, chat: Chat) -> ShardSample:
        """The shard form of `chat` (turns as they are: the writer adds the placeholder)."""
        null_free = {
            "image_file": chat.image_file or "",
            "grounding_score": UNSCORED if chat.grounding_score is None else chat.grounding_score,
            "grounding_scored": chat.grounding_score is not None,
            "grounding_report": chat.grounding.model_dump_json() if chat.grounding else "",
        }
        carried = {name: value for name, value in chat if name in cls.model_fields}
        # no validation: `chat` is a valid Chat and the rest is computed here (the writer calls
        # this once per sample, where validating again would double the cost of encoding)
        return cls.model_construct(**{**carried, **null_free})

    def chat_fields(self) -> dict[str, Any]:
        """The Chat fields this sample stands for (the inverse of from_chat)."""
        return {
            **self.model_dump(exclude={"image_file", "grounding_scored", "grounding_report"}),
            "image_file": self.image_file or None,
            "grounding_score": self.grounding_score if self.grounding_scored else None,
            "grounding": GroundingReport.model_validate_json(self.grounding_report)
            if self.grounding_report
            else None,
        }

    def to_chat(self) -> Chat:
        """The Chat this sample stands for."""
        return Chat.model_validate(self.chat_fields())


EXPORTED: dict[str, type[BaseModel]] = {
    "annotation": Annotation,
    "image_ref": ImageRef,
    "merged_image": MergedImage,
    "dialogue_response": DialogueResponse,
    "chat": Chat,
    "generation_failure": GenerationFailure,
    "reject": Reject,
    "grounding_report": GroundingReport,
    "judge_response": JudgeResponse,
    "shard_sample": ShardSample,
}
