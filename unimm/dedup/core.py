"""Deduplication in three phases, so the corpus-wide part never holds the dialogues:

1. `local_pass`, per partition: repeated turns inside a dialogue are dropped; a dialogue left too
   short, or repeating an id, is marked; every dialogue gets its exact hash and MinHash signature
   (`signature_frame`).
2. `corpus_duplicates`, corpus-wide over the signatures only: in id order, the first dialogue of
   every exact-hash group and of every near-duplicate cluster is kept, the others are listed with
   the id they duplicate.
3. `apply_duplicates`, per partition: kept dialogues + `Reject`s with their reasons.

`dedup_chats` runs the three on one list (tests, benchmarks, audits).
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np
import polars as pl

from unimm.dedup.config import DedupConfig
from unimm.dedup.minhash import roots_from_signatures, signatures
from unimm.dedup.turns import dedup_turns
from unimm.filter.normalize import normalize_text
from unimm.filter.reasons import count_reasons
from unimm.schema import Chat, Reject

DUPLICATES_SCHEMA = pl.Schema({"id": pl.Utf8, "reason": pl.Utf8})
SIGNATURE_SCHEMA = pl.Schema(
    {
        "id": pl.Utf8,
        "reason": pl.Utf8,
        "hash": pl.Utf8,
        "has_shingles": pl.Boolean,
        "signature": pl.List(pl.UInt32),
    }
)


class DedupResult(NamedTuple):
    """kept + rejects == input (by id); counts: rejected dialogues per reason code, dropped turn
    pairs (`turn_pairs_dropped_duplicate`, `turn_pairs_dropped_near_duplicate`), input/kept/rejected."""

    kept: list[Chat]
    rejects: list[Reject]
    counts: dict[str, int]


class LocalPass(NamedTuple):
    """Phase 1 of one partition: the dialogues after turn dedup (id order), the reason of those
    rejected already (by id) and the turn pairs dropped."""

    chats: list[Chat]
    reasons: dict[str, str]
    turn_pairs: dict[str, int]


def dialogue_text(chat: Chat) -> str:
    """Normalised text of every turn, one per line (what the exact and MinHash passes compare)."""
    return "\n".join(normalize_text(t.content) for t in chat.turns)


def dialogue_hash(chat: Chat) -> str:
    """Content hash of the normalised dialogue."""
    return hashlib.blake2b(dialogue_text(chat).encode(), digest_size=16).hexdigest()


def local_pass(chats: list[Chat], cfg: DedupConfig) -> LocalPass:
    """Turn dedup of each dialogue, repeated ids and dialogues left too short marked."""
    out: list[Chat] = []
    reasons: dict[str, str] = {}
    dropped_exact = dropped_near = 0
    seen: set[str] = set()
    for chat in sorted(chats, key=lambda c: c.id):
        if chat.id in seen:
            # the second of two equal ids cannot sit beside the first in the output: its own entry
            out.append(chat)
            reasons[f"{chat.id}#{len(out)}"] = "duplicate_id"
            continue
        seen.add(chat.id)
        new, ex, nr = dedup_turns(chat, cfg)
        dropped_exact += ex
        dropped_near += nr
        out.append(new)
        if len(new.turns) < cfg.min_turns:
            reasons[new.id] = "too_few_turns_after_dedup"
    return LocalPass(
        out,
        reasons,
        {"turn_pairs_dropped_duplicate": dropped_exact, "turn_pairs_dropped_near_duplicate": dropped_near},
    )


def _row_keys(chats: list[Chat], reasons: dict[str, str]) -> list[str]:
    """Each dialogue's key in the signature table: its id, or `id#n` for a repeated id."""
    keys, seen = [], set()
    for n, c in enumerate(chats, 1):
        k = c.id if c.id not in seen else f"{c.id}#{n}"
        seen.add(c.id)
        keys.append(k)
    return keys


def signature_frame(local: LocalPass, cfg: DedupConfig) -> pl.DataFrame:
    """One row per dialogue of the partition: key, local reject reason (or null), exact hash,
    whether it has shingles and its MinHash signature (empty without the MinHash pass)."""
    keys = _row_keys(local.chats, local.reasons)
    texts = [dialogue_text(c) for c in local.chats]
    if cfg.minhash and texts:
        sig, has = signatures(texts, cfg.num_perm, cfg.shingle, cfg.seed, cfg.chunk_elements, cfg.method)
    else:
        sig, has = np.zeros((len(texts), 0), np.uint32), np.zeros(len(texts), bool)
    return pl.DataFrame(
        {
            "id": keys,
            "reason": [local.reasons.get(k) for k in keys],
            "hash": [hashlib.blake2b(t.encode(), digest_size=16).hexdigest() for t in texts],
            "has_shingles": has,
            "signature": pl.Series("signature", sig).cast(pl.List(pl.UInt32)),
        },
        schema=SIGNATURE_SCHEMA,
    )


def corpus_duplicates(frames: list[pl.DataFrame] | pl.LazyFrame, cfg: DedupConfig) -> pl.DataFrame:
    """(id, reason) of every dialogue the corpus-wide pass drops: `exact_duplicate:<id>` or
    `near_duplicate:<id>`, the kept one being the smallest id of its group. Reads only the
    signature tables (ids, hashes, signatures), never the dialogues."""
    lf = frames if isinstance(frames, pl.LazyFrame) else pl.concat([f.lazy() for f in frames])
    live = lf.filter(pl.col("reason").is_null()).sort("id").collect()
    if live.is_empty():
        return pl.DataFrame(schema=DUPLICATES_SCHEMA)
    first = pl.col("id").first().over("hash")
    exact = (
        live.with_columns(first.alias("_first"))
        .filter(pl.col("id") != pl.col("_first"))
        .select("id", pl.concat_str(pl.lit("exact_duplicate:"), pl.col("_first")).alias("reason"))
    )
    stage2 = live.filter(pl.col("id") == first)
    out = [exact]
    if cfg.minhash and stage2.height > 1:
        lengths = stage2["signature"].list.len()
        if lengths.min() != cfg.num_perm or lengths.max() != cfg.num_perm:
            raise ValueError(f"signature tables do not hold {cfg.num_perm} MinHash values per dialogue")
        sig = stage2["signature"].explode().to_numpy().astype(np.uint32, copy=False)
        sig = sig.reshape(stage2.height, cfg.num_perm)
        roots, _, _ = roots_from_signatures(
            sig,
            stage2["has_shingles"].to_numpy(),
            bands=cfg.bands,
            threshold=cfg.threshold,
            window=cfg.max_bucket_window,
        )
        ids = stage2["id"]
        dup = np.flatnonzero(roots != np.arange(len(roots)))
        out.append(
            pl.DataFrame(
                {
                    "id": ids.gather(dup),
                    "reason": ("near_duplicate:" + ids.gather(roots[dup])),
                }
            )
        )
    return pl.concat([o.cast(DUPLICATES_SCHEMA) for o in out]).sort("id")


def apply_duplicates(local: LocalPass, duplicates: dict[str, str]) -> tuple[list[Chat], list[Reject]]:
    """The partition's kept dialogues (id order) and rejects: its local reasons plus the corpus
    pass's `duplicates` (id -> reason)."""
    kept: list[Chat] = []
    rejects: list[Reject] = []
    for key, chat in zip(_row_keys(local.chats, local.reasons), local.chats, strict=True):
        reason = local.reasons.get(key) or duplicates.get(key)
        if reason is None:
            kept.append(chat)
        else:
            rejects.append(
                Reject(id=chat.id, image_key=chat.image_key, stage="dedup", reasons=[reason], chat=chat)
            )
    return kept, rejects


def dedup_chats(chats: list[Chat], cfg: DedupConfig | None = None) -> DedupResult:
    """Deduplicate deterministically: chats are processed in id order and the smallest id of every
    duplicate group is kept; the order of the input does not matter."""
    cfg = cfg or DedupConfig()
    local = local_pass(chats, cfg)
    dups = corpus_duplicates([signature_frame(local, cfg)], cfg)
    kept, rejects = apply_duplicates(local, dict(dups.iter_rows()))
    counts = {
        "input": len(chats),
        "kept": len(kept),
        "rejected": len(rejects),
        **local.turn_pairs,
        **count_reasons(rejects),
    }
    return DedupResult(kept, rejects, counts)
