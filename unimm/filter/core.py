"""filter_chats: structure, boilerplate/leakage and grounding filters over an in-memory list."""

from __future__ import annotations

from dataclasses import dataclass

from unimm.filter.boilerplate import boilerplate_reasons
from unimm.filter.config import FilterConfig
from unimm.filter.grounding import ground
from unimm.filter.reasons import count_reasons
from unimm.filter.structure import structure_reasons
from unimm.schema import Chat, MergedImage, Reject


@dataclass
class FilterResult:
    """kept (with grounding_score set) + rejects == input; counts = rejected dialogues per reason code
    plus `input`, `kept`, `rejected`."""

    kept: list[Chat]
    rejects: list[Reject]
    counts: dict[str, int]


def chat_reasons(chat: Chat, merged: MergedImage | None, cfg: FilterConfig) -> tuple[list[str], float | None]:
    """Every reason that applies to one dialogue, and its grounding score."""
    reasons = structure_reasons(chat, cfg) + boilerplate_reasons(chat, cfg)
    g = ground(chat, merged, cfg)
    if cfg.reject_hard_contradictions:
        reasons += [f"grounding_contradiction:{k}" for k in g.contradictions if k in ("yesno", "count")]
    if g.score is not None and g.score < cfg.min_grounding:
        reasons.append(f"grounding_below_threshold:{g.score:.3f}")
    return reasons, g.score


def filter_chats(
    chats: list[Chat], merged: dict[str, MergedImage], cfg: FilterConfig | None = None
) -> FilterResult:
    """Split `chats` into kept and rejected. `merged` maps image_key -> MergedImage; a chat whose
    image has no merged record is still filtered but not grounded (score None)."""
    cfg = cfg or FilterConfig()
    kept: list[Chat] = []
    rejects: list[Reject] = []
    for chat in chats:
        reasons, score = chat_reasons(chat, merged.get(chat.image_key), cfg)
        scored = chat.model_copy(update={"grounding_score": score})
        if reasons:
            rejects.append(
                Reject(id=chat.id, image_key=chat.image_key, stage="filter", reasons=reasons, chat=scored)
            )
        else:
            kept.append(scored)
    counts = {"input": len(chats), "kept": len(kept), "rejected": len(rejects), **count_reasons(rejects)}
    return FilterResult(kept, rejects, counts)
