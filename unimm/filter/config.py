"""FilterConfig: every threshold and pattern list of the dialogue filters."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

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
