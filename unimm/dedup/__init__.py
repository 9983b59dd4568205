"""Deduplication: repeated turns inside a dialogue, exact duplicate dialogues, MinHash LSH near duplicates."""

from unimm.dedup.config import DedupConfig
from unimm.dedup.core import DedupResult, dedup_chats, dialogue_hash, dialogue_text
from unimm.dedup.minhash import near_duplicate_roots, signatures

__all__ = [
    "DedupConfig",
    "DedupResult",
    "dedup_chats",
    "dialogue_hash",
    "dialogue_text",
    "near_duplicate_roots",
    "signatures",
]
