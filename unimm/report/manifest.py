"""What the report needs from a shard folder's `manifest.json`, read through its model.

The manifest is written by the shards step as `unimm.shards.manifest.Manifest`, and every step's
counts are stored there in one vocabulary (`steps: {name: StepCounts}`). The report validates the
file against that model and takes each figure from the one field that holds it: a manifest that
does not validate is an InputError naming the file and the field, never half-read. A folder
without a manifest is still reported (its part is left out).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from unimm.errors import InputError
from unimm.pipeline.counts import StepCounts, rejected_by_reason
from unimm.shards.manifest import MANIFEST_NAME, Manifest, ShardEntry

# The pipeline's steps in the order they run; the manifest's JSON is written with sorted keys, so
# its `steps` are put back in this order for display. A step not listed here (an internal step
# such as `dedup_sign`) goes right after the listed step its name starts with, else at the end.
STEP_ORDER: tuple[str, ...] = ("ingest", "merge", "generate", "filter", "dedup", "decontaminate", "shards")


class ManifestInfo(BaseModel):
    """The parts of a validated manifest the report shows."""

    path: str
    shards: list[ShardEntry] = Field(default_factory=list)
    num_shards: int = 0
    samples: int = 0
    bytes: int = 0
    steps: dict[str, StepCounts] = Field(
        default_factory=dict, description="What each pipeline step did, in pipeline order."
    )
    dialogues_in: int | None = Field(None, description="Dialogues entering dedup (`steps.dedup.input`).")
    dedup_rejects: int | None = Field(None, description="Dialogues dedup dropped (`steps.dedup.rejected`).")
    rejection_reasons: dict[str, int] = Field(
        default_factory=dict,
        description="Rejected dialogues per reason, keyed `step: code` (from `steps[*].dropped`); "
        "a manifest without steps gives its flat `rejects_by_reason` codes. Most first.",
    )
    by_source: dict[str, int] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    generator: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)

    @property
    def dup_rate(self) -> float | None:
        """Dedup rejects / dialogues in, when the manifest records the dedup step."""
        if self.dedup_rejects is None or not self.dialogues_in:
            return None
        return self.dedup_rejects / self.dialogues_in


def _step_key(name: str) -> tuple[int, int, str]:
    if name in STEP_ORDER:
        return STEP_ORDER.index(name), 0, name
    parent = next((s for s in STEP_ORDER if name.startswith(s + "_")), None)
    return (STEP_ORDER.index(parent), 1, name) if parent else (len(STEP_ORDER), 0, name)


def ordered_steps(steps: dict[str, StepCounts]) -> dict[str, StepCounts]:
    """`steps` in pipeline order (see STEP_ORDER)."""
    return {name: steps[name] for name in sorted(steps, key=_step_key)}


def _most_first(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))  # stable: ties keep pipeline order


def manifest_info(m: Manifest, path: str = MANIFEST_NAME) -> ManifestInfo:
    """The report's view of a validated manifest."""
    steps = ordered_steps(m.steps)
    info = ManifestInfo(
        path=path,
        shards=list(m.shards),
        num_shards=len(m.shards),
        samples=m.total_samples,
        bytes=m.total_bytes,
        steps=steps,
        by_source=dict(m.counts_by_source),
    )
    if steps:
        info.rejection_reasons = _most_first(
            {f"{name}: {code}": n for name, s in steps.items() for code, n in s.dropped.items() if n}
        )
        summed = rejected_by_reason(m.steps)
        if differ := sorted(
            c
            for c in summed.keys() | m.rejects_by_reason.keys()
            if summed.get(c, 0) != m.rejects_by_reason.get(c, 0)
        ):
            where = ", ".join(f"{c} ({m.rejects_by_reason.get(c, 0)} vs {summed.get(c, 0)})" for c in differ)
            info.warnings.append(
                f"{path}: rejects_by_reason is not the sum of the steps' dropped records "
                f"(flat vs steps): {where}; the report shows the steps'"
            )
    else:
        info.rejection_reasons = _most_first(m.rejects_by_reason)
        info.warnings.append(
            f"{path}: no per-step counts (`steps`, manifests written before them): "
            "dialogues into dedup, dedup rejects and dup rate omitted"
        )
    if (dedup := steps.get("dedup")) is not None:
        info.dialogues_in, info.dedup_rejects = dedup.input, dedup.rejected
    info.config = {k: v for k, v in (("build_config", m.build_config), ("shard_config", m.shard_config)) if v}
    info.generator = {
        "generators": [g.model_dump() for g in m.generators],
        "prompt_fingerprints": m.prompt_fingerprints,
        "tool_version": m.tool_version,
        "prefix": m.prefix,
        "extensions": m.extensions,
    }
    return info


def parse_manifest(raw: str | bytes | dict[str, Any], path: str | Path = MANIFEST_NAME) -> ManifestInfo:
    """Validate a manifest (its JSON text or the decoded object) against `Manifest` and take the
    report's view of it; InputError naming `path` and the first failing field otherwise."""
    try:
        m = Manifest.model_validate(raw) if isinstance(raw, dict) else Manifest.model_validate_json(raw)
    except ValidationError as e:
        errs = e.errors()
        first = errs[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
        raise InputError(path, f"not a valid manifest: {first['msg']}{more}", field=field) from None
    return manifest_info(m, str(path))


def load_manifest(shard_dir: Path) -> ManifestInfo | None:
    """The manifest beside the shards, or None when there is none; InputError when it is not a
    valid `Manifest` (bad JSON, a missing or mistyped field)."""
    path = Path(shard_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        text = path.read_bytes()
    except OSError as e:
        raise InputError(path, f"unreadable: {e}") from e
    return parse_manifest(text, path)
