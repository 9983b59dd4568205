"""Deduplication: repeated turns inside a dialogue, exact duplicate dialogues, MinHash LSH near duplicates."""

from unimm.lazy import exports

__all__, __getattr__ = exports(
    __name__,
    {
        "unimm.dedup.config": ["DedupConfig"],
        "unimm.dedup.core": [
            "DedupResult",
            "LocalPass",
            "apply_duplicates",
            "corpus_duplicates",
            "dedup_chats",
            "dialogue_hash",
            "dialogue_text",
            "local_pass",
            "signature_frame",
        ],
        "unimm.dedup.minhash": ["near_duplicate_roots", "signatures"],
    },
)
