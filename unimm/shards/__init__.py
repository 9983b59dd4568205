"""WebDataset shards: deterministic writing, manifest, verification and exports."""

from unimm.lazy import exports

# The exports live in unimm.export, which reads shards through this package: resolved on first
# use, they are no import cycle either.
__all__, __getattr__ = exports(
    __name__,
    {
        "unimm.shards.config": ["ShardConfig"],
        "unimm.shards.manifest": ["MANIFEST_NAME", "Manifest", "ShardEntry", "read_manifest", "scrub"],
        "unimm.shards.verify": ["ShardVerifyError", "VerifyReport", "verify_shards"],
        "unimm.shards.writer": ["ShardResult", "to_shard_chat", "write_shards", "write_shards_result"],
        "unimm.export": ["export_llava", "export_unimm_parquet", "iter_shard_chats"],
    },
)
