"""dedup_chats: in-dialogue turn dedup, exact dialogue dedup and MinHash near-duplicate dedup."""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from unimm.dedup.config import DedupConfig
from unimm.dedup.minhash import near_duplicate_roots
from unimm.dedup.turns import dedup_turns
from unimm.filter.normalize import normalize_text
from unimm.filter.reasons import count_reasons
from unimm.schema import Chat, Reject


class DedupResult(NamedTuple):
    """kept + rejects == input (by id); counts: rejected dialogues per reason code, dropped turn
    pairs (`turn_pairs_dropped_duplicate`, `turn_pairs_dropped_near_duplicate`), input/kept/rejected."""

    kept: list[Chat]
    rejects: list[Reject]
    counts: dict[str, int]


def dialogue_text(chat: Chat) -> str:
    """Normalised text of every turn, one per line (what the exact and MinHash passes compare)."""
    return "\n".join(normalize_text(t.content) for t in chat.turns)


def dialogue_hash(chat: Chat) -> str:
    """Content hash of the normalised dialogue."""
    return hashlib.blake2b(dialogue_text(chat).encode(), digest_size=16).hexdigest()


def _reject(chat: Chat, reason: str) -> Reject:
    return Reject(id=chat.id, image_key=chat.image_key, stage="dedup", reasons=[reason], chat=chat)


def dedup_chats(chats: list[Chat], cfg: DedupConfig | None = None) -> DedupResult:
    """Deduplicate deterministically: chats are processed in id order and the smallest id of every
    duplicate group is kept; the order of the input does not matter."""
    cfg = cfg or DedupConfig()
    rejects: list[Reject] = []
    dropped_exact = dropped_near = 0
    stage1: list[Chat] = []
    seen_ids: set[str] = set()
    for chat in sorted(chats, key=lambda c: c.id):
        if chat.id in seen_ids:
            rejects.append(_reject(chat, "duplicate_id"))
            continue
        seen_ids.add(chat.id)
        new, ex, nr = dedup_turns(chat, cfg)
        dropped_exact += ex
        dropped_near += nr
        if len(new.turns) < cfg.min_turns:
            rejects.append(_reject(new, "too_few_turns_after_dedup"))
        else:
            stage1.append(new)

    stage2: list[Chat] = []
    first_of: dict[str, str] = {}
    for chat in stage1:
        h = dialogue_hash(chat)
        if h in first_of:
            rejects.append(_reject(chat, f"exact_duplicate:{first_of[h]}"))
        else:
            first_of[h] = chat.id
            stage2.append(chat)

    kept = stage2
    if cfg.minhash and len(stage2) > 1:
        roots, _, _ = near_duplicate_roots(
            [dialogue_text(c) for c in stage2],
            num_perm=cfg.num_perm,
            bands=cfg.bands,
            shingle=cfg.shingle,
            threshold=cfg.threshold,
            seed=cfg.seed,
            window=cfg.max_bucket_window,
            chunk_elements=cfg.chunk_elements,
            method=cfg.method,
        )
        kept = []
        for i, chat in enumerate(stage2):
            if roots[i] == i:
                kept.append(chat)
            else:
                rejects.append(_reject(chat, f"near_duplicate:{stage2[roots[i]].id}"))

    counts = {
        "input": len(chats),
        "kept": len(kept),
        "rejected": len(rejects),
        "turn_pairs_dropped_duplicate": dropped_exact,
        "turn_pairs_dropped_near_duplicate": dropped_near,
        **count_reasons(rejects),
    }
    return DedupResult(kept, rejects, counts)
