"""WebDataset shards: deterministic writing, manifest, verification and exports."""

from unimm.lazy import exports

# The exports live in unimm.export, which reads shards through this package: resolved on first
# use, they are no import cycle either.
_OWNERS = {
    "ShardConfig": "unimm.shards.config",
    "MANIFEST_NAME": "unimm.shards.manifest",
    "Manifest": "unimm.shards.manifest",
    "ShardEntry": "unimm.shards.manifest",
    "read_manifest": "unimm.shards.manifest",
    "scrub": "unimm.shards.manifest",
    "ShardVerifyError": "unimm.shards.verify",
    "VerifyReport": "unimm.shards.verify",
    "verify_shards": "unimm.shards.verify",
    "ShardResult": "unimm.shards.writer",
    "to_shard_chat": "unimm.shards.writer",
    "write_shards": "unimm.shards.writer",
    "write_shards_result": "unimm.shards.writer",
    "export_llava": "unimm.export",
    "export_unimm_parquet": "unimm.export",
    "iter_shard_chats": "unimm.export",
}
__all__ = list(_OWNERS)
__getattr__ = exports(__name__, _OWNERS)
