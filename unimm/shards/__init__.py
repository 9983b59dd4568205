"""WebDataset shards: deterministic writing, manifest, verification and exports."""

from typing import Any

from unimm.shards.config import ShardConfig
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

# The exports live in unimm.export, which reads shards through this package: importing them
# here eagerly would be an import cycle, so they resolve on first use (PEP 562).
_EXPORTS = {"export_llava", "export_unimm_parquet", "iter_shard_chats"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import unimm.export

        return getattr(unimm.export, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
