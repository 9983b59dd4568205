"""manifest.json beside the shards: per-shard counts, bytes and sha256, totals, provenance."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unimm.errors import InputError
from unimm.pipeline.counts import StepCounts
from unimm.redact import REDACTED, is_secret_key
from unimm.schema import Chat, GeneratorInfo

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


class GeneratorUse(BaseModel):
    """One generator (backend, model, prompt) and how many of the shipped samples it wrote."""

    model_config = ConfigDict(extra="forbid")

    backend: str
    model: str
    prompt_version: str
    prompt_fingerprint: str
    samples: int


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
        description="Rejected dialogues per reason code, all steps (the sum of `steps[*].dropped`)."
    )
    steps: dict[str, StepCounts] = Field(
        default_factory=dict,
        description="What each pipeline step did (input, output, dropped by reason), by step name.",
    )
    shard_rejects: list[ShardReject] = Field(
        default_factory=list, description="Chats this stage rejected, by id."
    )
    generators: list[GeneratorUse] = Field(
        default_factory=list, description="Samples per generator (backend, model, prompt)."
    )
    rounds_per_dialogue: dict[int, int] = Field(
        default_factory=dict,
        description="Dialogues per number of question-answer rounds (assistant turns).",
    )
    shard_config: dict[str, Any]
    build_config: dict[str, Any] = Field(
        default_factory=dict, description="The caller's config, secrets scrubbed."
    )
    extra: dict[str, Any] = Field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def generator_uses(chats: Iterable[Chat]) -> list[GeneratorUse]:
    """Samples per generator, the request id aside (it differs per sample), sorted."""
    per_request = set(GeneratorInfo.model_fields) - set(GeneratorUse.model_fields)
    counts = Counter(tuple(sorted(c.generator.model_dump(exclude=per_request).items())) for c in chats)
    return [GeneratorUse(**dict(key), samples=n) for key, n in sorted(counts.items())]


def rounds_per_dialogue(chats: Iterable[Chat]) -> dict[int, int]:
    """Dialogues per number of assistant turns (question-answer rounds), by ascending rounds."""
    counts = Counter(sum(t.role == "assistant" for t in c.turns) for c in chats)
    return dict(sorted(counts.items()))


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
