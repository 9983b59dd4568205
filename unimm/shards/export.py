"""Moved to `unimm.export` (one module per format); these names stay importable from here."""

from unimm.export import conversations, export_llava, export_unimm_parquet, iter_shard_chats, llava_record

__all__ = ["conversations", "export_llava", "export_unimm_parquet", "iter_shard_chats", "llava_record"]
