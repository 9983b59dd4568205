"""manifest.json beside the shards: per-shard counts, bytes and sha256, totals, provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unimm.errors import InputError
from unimm.redact import REDACTED, is_secret_key

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = "1"


class ShardEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    samples: int
    bytes: int
    sha256: str


class ShardReject(BaseModel):
    """A chat the shards stage could not ship (e.g. image_missing); the full Reject goes to the caller."""

    model_config = ConfigDict(extra="forbid")

    id: str
    image_key: str
    reasons: list[str]


class Manifest(BaseModel):
    """Everything needed to check and reproduce a shard set."""

    model_config = ConfigDict(extra="forbid")

    manifest_version: str = MANIFEST_VERSION
    tool_version: str
    prefix: str
    extensions: list[str] = Field(description="Member extensions every sample has, e.g. ['jpg', 'json'].")
    shards: list[ShardEntry]
    total_samples: int
    total_bytes: int
    prompt_fingerprints: list[str] = Field(
        description="Distinct generator prompt fingerprints of the samples."
    )
    counts_by_source: dict[str, int] = Field(
        description="Samples per annotation source (a chat counts under each of its sources)."
    )
    rejects_by_reason: dict[str, int] = Field(
        description="Rejected dialogues per reason code, all stages (caller's + shards')."
    )
    shard_rejects: list[ShardReject] = Field(
        default_factory=list, description="Chats this stage rejected, by id."
    )
    shard_config: dict[str, Any]
    build_config: dict[str, Any] = Field(
        default_factory=dict, description="The caller's config, secrets scrubbed."
    )
    extra: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def scrub(obj: Any) -> Any:
    """Copy of `obj` with the value of every mapping key that names a credential replaced."""
    if isinstance(obj, dict):
        return {k: (REDACTED if is_secret_key(k) and v else scrub(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def read_manifest(shard_dir: Path) -> Manifest:
    """Load and validate `shard_dir/manifest.json` (InputError when absent or malformed)."""
    path = Path(shard_dir) / MANIFEST_NAME
    if not path.is_file():
        raise InputError(path, "manifest not found (not a complete shard directory)")
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as e:
        err = e.errors()[0]
        raise InputError(path, err["msg"], field=".".join(str(p) for p in err["loc"])) from None
