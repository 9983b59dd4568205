"""FilterConfig: every threshold and pattern list of the dialogue filters, and JudgeConfig, the
optional LLM judge's backend.

JudgeConfig lives here rather than in unimm.grounding.judge (which re-exports it) because
unimm.grounding imports FilterConfig: defining it there would make the two packages import each other.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from unimm.errors import ConfigError
from unimm.generate.config import Backend, GenerateConfig, ResponseFormat
from unimm.schema import CheckKind

DEFAULT_REFUSAL_PATTERNS = [
    r"\bas an ai\b",
    r"\bas a language model\b",
    r"\b(?:ai|large) language model\b",
    r"\bi (?:cannot|can ?not|can't|am unable to|am not able to|'m unable to|'m not able to) (?:see|view|access|look at|analy[sz]e)\b",
    r"\bi (?:do not|don't) have (?:the ability|access|eyes|visual)\b",
    r"\bi'?m sorry\b",
    r"\bi am sorry\b",
    r"\bi apologi[sz]e\b",
    r"\bunable to (?:see|view) the (?:image|picture|photo)\b",
]
DEFAULT_LEAK_PATTERNS = [
    r"\bcaptions?\b",
    r"\bannotat(?:ion|ions|ed|or|ors)\b",
    r"\bbounding[ -]?box(?:es)?\b",
    r"\bbbox\b",
    r"\bdatasets?\b",
    r"\baccording to the (?:description|data|text|information|provided|given)\b",
    r"\b(?:the|this) (?:image )?description (?:says|states|mentions)\b",
    r"\bregion descriptions?\b",
    r"\[\s*0?\.\d+\s*,\s*0?\.\d+",  # normalised box coordinates copied from the prompt
]
DEFAULT_MARKUP_PATTERNS = [
    r"\{\s*\"",
    r"\"(?:question|answer|turns)\"\s*:",
    r"</?s>|<\|im_(?:start|end)\|>",
]

# Fields that name one backend's model or server: inherited from generation only when the judge
# runs on the same backend (a local judge must not take generation's vLLM model name).
# `vision` too: whether the model can see images is a property of the served model, so a local
# judge never inherits the vision of an openai generator.
BACKEND_SPECIFIC = ("model", "model_path", "base_urls", "api_key_env", "vision")


class JudgeConfig(BaseModel):
    """The LLM judge's backend and prompt set (`filter.judge_llm`). A None field inherits the
    pipeline's `generate` value; see GenerateConfig for what each one means."""

    model_config = ConfigDict(extra="forbid")

    backend: Backend | None = Field(None, description="local | openai; None: generation's backend.")
    model: str | None = None
    model_path: Path | None = None
    base_urls: list[str] | None = None
    api_key_env: str | None = None
    concurrency: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=16, description="Most tokens of one verdict list.")
    temperature: float | None = Field(
        0.2,
        ge=0.0,
        le=2.0,
        description="Low so verdicts are consistent, not 0 so an invalid answer retried with a new seed "
        "can come out differently.",
    )
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    seed: int | None = None
    retries: int | None = Field(None, ge=0)
    invalid_retries: int | None = Field(None, ge=0)
    backoff_s: float | None = Field(None, gt=0.0)
    backoff_max_s: float | None = Field(None, gt=0.0)
    timeout_s: float | None = Field(None, gt=0.0)
    connect_timeout_s: float | None = Field(None, gt=0.0)
    models_timeout_s: float | None = Field(None, gt=0.0)
    request_deadline_s: float | None = Field(None, gt=0.0)
    response_format: ResponseFormat | None = None
    token_budget: int | None = Field(None, ge=64, description="Most tokens of the rendered annotations.")
    n_ctx: int | None = Field(None, ge=512)
    n_threads: int | None = Field(None, ge=1)
    retry_failures: bool | None = None
    vision: bool | None = Field(
        None,
        description="Show the judge the picture too (openai backend, a vision-language model); None: "
        "generation's `vision` when the judge runs on generation's backend.",
    )
    vision_max_side: int | None = Field(None, ge=28, le=4096)
    vision_jpeg_quality: int | None = Field(None, ge=1, le=95)
    prompt_set: str = Field("judge", description="Judge prompt set under prompts/ (never inherited).")
    prompt_version: str = "v1"
    vision_prompt_set: str = Field(
        "judge_vision", description="Judge prompt set used when the judge sees the picture (never inherited)."
    )
    vision_prompt_version: str = "v1"
    prompts_dir: Path | None = Field(
        None, description="Root of the prompt sets; default: the repo's prompts/."
    )

    def prompt_folder(self) -> tuple[str, str]:
        """(name, version) of the judge prompt set in use: the vision set when the judge sees."""
        if self.vision:
            return self.vision_prompt_set, self.vision_prompt_version
        return self.prompt_set, self.prompt_version

    def inherit(self, base: GenerateConfig) -> JudgeConfig:
        """This config with every unset backend field taken from generation's config."""
        same_backend = self.backend in (None, base.backend)
        update = {
            name: getattr(base, name)
            for name in inherited_fields()
            if getattr(self, name) is None and (same_backend or name not in BACKEND_SPECIFIC)
        }
        return self.model_copy(update=update)

    def llm_config(self) -> GenerateConfig:
        """The GenerateConfig the shared backend machinery runs the judge with (unset fields take
        GenerateConfig's defaults)."""
        if self.backend == "template":
            raise ConfigError("the LLM judge needs an LLM: set filter.judge_llm.backend to local or openai")
        values = {n: getattr(self, n) for n in inherited_fields() if getattr(self, n) is not None}
        try:
            return GenerateConfig(
                **values,
                prompt_set=self.prompt_set,
                prompt_version=self.prompt_version,
                vision_prompt_set=self.vision_prompt_set,
                vision_prompt_version=self.vision_prompt_version,
                prompts_dir=self.prompts_dir,
            )
        except ValidationError as e:
            raise ConfigError(f"filter.judge_llm: {e.errors()[0]['msg']}") from None


def inherited_fields() -> tuple[str, ...]:
    """JudgeConfig fields that mirror (and may inherit) a GenerateConfig field; the prompt set is
    the judge's own."""
    own = {"prompt_set", "prompt_version", "vision_prompt_set", "vision_prompt_version", "prompts_dir"}
    return tuple(n for n in JudgeConfig.model_fields if n in GenerateConfig.model_fields and n not in own)


class FilterConfig(BaseModel):
    """Thresholds of `filter_chats`; defaults suit a small model's output (expect garbage)."""

    model_config = ConfigDict(extra="forbid")

    min_turns: int = Field(2, ge=2, description="Fewest turns (user + assistant) a dialogue may have.")
    max_turns: int = Field(40, ge=2)
    min_turn_chars: int = Field(2, ge=1, description="Shortest allowed turn after stripping.")
    max_turn_chars: int = Field(2000, ge=1)
    exported: bool = Field(
        False,
        description="True for shard/export chats: exactly one <image> placeholder, in the first user "
        "turn; False for generation output: no placeholder anywhere.",
    )
    refusal_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_REFUSAL_PATTERNS))
    leak_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_LEAK_PATTERNS))
    markup_patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_MARKUP_PATTERNS))
    prompt_text: str = Field(
        "",
        description="The generation prompt's instruction lines (system prompt); a turn that repeats "
        "`echo_ngram` consecutive words of one of them is a prompt echo.",
    )
    echo_ngram: int = Field(6, ge=3)
    question_match: float = Field(
        85.0,
        ge=0,
        le=100,
        description="rapidfuzz token_sort_ratio above which a generated question restates an annotated one.",
    )
    answer_match: float = Field(
        90.0,
        ge=0,
        le=100,
        description="rapidfuzz ratio at which a normalised answer equals an annotated one.",
    )
    check_open_answers: bool = Field(
        True,
        description="Count open (non yes/no, non count) answers as checkable: they must contain an annotated answer.",
    )
    min_grounding: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Reject a dialogue whose grounding score is below this (None never rejects).",
    )
    reject_hard_contradictions: bool = Field(
        True, description="Reject on any yes/no or count contradiction, whatever the score."
    )
    grounding_checks: list[CheckKind] = Field(
        default_factory=lambda: list(get_args(CheckKind)),
        description="Grounding checks to run: object (CHAIR-style hallucination), count, existence, "
        "attribute (colour), qa (agreement with annotated questions), judge (LLM verdicts).",
    )
    reject_hallucinations: bool = Field(
        True,
        description="Reject on any failed object, count, existence or attribute check "
        "(hallucinated_object:, count_mismatch:, existence_mismatch:, attribute_mismatch:).",
    )
    reject_judge_unsupported: bool = Field(
        True, description="Reject when the LLM judge marks an assistant turn unsupported."
    )
    absence_from_vg: bool = Field(
        True,
        description="Treat Visual Genome's dense objects and regions as exhaustive: an object they never "
        "name is absent (COCO instances are always exhaustive for the 80 COCO categories).",
    )
    min_coverage: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Reject a dialogue whose share of checked assistant turns is below this "
        "(unverifiable:<coverage>); 0 keeps dialogues with nothing checkable.",
    )
    vocabulary: str = Field("v1", description="Version of the object vocabulary (unimm/grounding/data).")
    ground_rejected: bool = Field(
        False,
        description="Also ground (and judge) dialogues the structure and boilerplate checks already "
        "reject, so that their rejects list every reason that applies. Off: the grounding checks and "
        "the LLM judge, the costly ones, see only dialogues that pass the cheap checks.",
    )
    judge: bool = Field(
        False,
        description="Run the LLM judge (unimm.grounding.judge) before filtering: it rates every assistant "
        "turn supported / unsupported / not_checkable against the annotations; unsupported turns become "
        "judge_unsupported:<turn> reasons and count in the grounding score.",
    )
    judge_llm: JudgeConfig = Field(
        default_factory=JudgeConfig,
        description="The judge's backend and prompt set; unset fields inherit the `generate` section.",
    )

    @field_validator("refusal_patterns", "leak_patterns", "markup_patterns")
    @classmethod
    def _patterns_compile(cls, v: list[str]) -> list[str]:
        # A bad pattern must fail when the config is read, not after hours of generation.
        for i, pattern in enumerate(v):
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"pattern {i} {pattern!r} is not a valid regular expression: {e}") from None
        return v
