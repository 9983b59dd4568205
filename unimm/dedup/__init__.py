"""Deduplication: repeated turns inside a dialogue, exact duplicate dialogues, MinHash LSH near duplicates."""

from unimm.dedup.config import DedupConfig
from unimm.dedup.core import (
    DedupResult,
    LocalPass,
    apply_duplicates,
    corpus_duplicates,
    dedup_chats,
    dialogue_hash,
    dialogue_text,
    local_pass,
    signature_frame,
)
from unimm.dedup.minhash import near_duplicate_roots, signatures

__all__ = [
    "DedupConfig",
    "DedupResult",
    "LocalPass",
    "apply_duplicates",
    "corpus_duplicates",
    "dedup_chats",
    "dialogue_hash",
    "dialogue_text",
    "local_pass",
    "near_duplicate_roots",
    "signature_frame",
    "signatures",
]
