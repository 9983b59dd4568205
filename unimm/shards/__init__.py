"""WebDataset shards: deterministic writing, manifest, verification and exports."""

from unimm.shards.config import ShardConfig
from unimm.shards.export import export_llava, export_unimm_parquet, iter_shard_chats
from unimm.shards.manifest import MANIFEST_NAME, Manifest, ShardEntry, read_manifest, scrub
from unimm.shards.verify import ShardVerifyError, VerifyReport, verify_shards
from unimm.shards.writer import ShardResult, to_shard_chat, write_shards, write_shards_result

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "ShardConfig",
    "ShardEntry",
    "ShardResult",
    "ShardVerifyError",
    "VerifyReport",
    "export_llava",
    "export_unimm_parquet",
    "iter_shard_chats",
    "read_manifest",
    "scrub",
    "to_shard_chat",
    "verify_shards",
    "write_shards",
    "write_shards_result",
]
