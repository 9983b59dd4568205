"""Deduplication: repeated turns inside a dialogue, exact duplicate dialogues, MinHash LSH near duplicates."""

from unimm.lazy import exports

_OWNERS = {
    "DedupConfig": "unimm.dedup.config",
    "DedupResult": "unimm.dedup.core",
    "LocalPass": "unimm.dedup.core",
    "apply_duplicates": "unimm.dedup.core",
    "corpus_duplicates": "unimm.dedup.core",
    "dedup_chats": "unimm.dedup.core",
    "dialogue_hash": "unimm.dedup.core",
    "dialogue_text": "unimm.dedup.core",
    "local_pass": "unimm.dedup.core",
    "signature_frame": "unimm.dedup.core",
    "near_duplicate_roots": "unimm.dedup.minhash",
    "signatures": "unimm.dedup.minhash",
}
__all__ = list(_OWNERS)
__getattr__ = exports(__name__, _OWNERS)
