"""What the report needs from a shard folder's `manifest.json`, read defensively.

The manifest is written by `unimm shards`; when its pydantic model (`unimm.shards.manifest.Manifest`)
is importable the file is checked against it first, but the report only ever *looks up* keys: a
key that is missing (older manifest, different layout) leaves that part of the report out instead
of failing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from unimm.errors import InputError
from unimm.filter.reasons import reason_code

MANIFEST_NAME = "manifest.json"
STAGES: tuple[str, ...] = ("filter", "dedup", "decontaminate")
# Integer entries of a stage's counts that are bookkeeping, not rejection reasons.
_BOOKKEEPING = {"input", "kept", "rejected", "output", "total", "in", "out", "dialogues_in", "dialogues_out"}
_NESTS = ("totals", "total", "counts", "stats", "summary", "pipeline", "stages", "extra")
# Reason codes each stage writes (unimm.dedup.core, unimm.decontam, unimm.shards.writer): the
# manifest keeps rejects per code only, so the stage of a code is known from the code itself.
DEDUP_CODES = frozenset({"duplicate_id", "exact_duplicate", "near_duplicate", "too_few_turns_after_dedup"})
DECONTAM_PREFIX = "eval_"
SHARD_CODES = frozenset({"image_missing", "unexpected_placeholder", "bad_role_order"})


class ShardEntry(BaseModel):
    name: str
    samples: int | None = None
    bytes: int | None = None
    sha256: str | None = None


class ManifestInfo(BaseModel):
    """The parts of a manifest the report shows; every field may be absent."""

    path: str
    shards: list[ShardEntry] = Field(default_factory=list)
    num_shards: int | None = None
    samples: int | None = None
    bytes: int | None = None
    dialogues_in: int | None = Field(None, description="Dialogues entering dedup.")
    dedup_rejects: int | None = None
    rejection_reasons: dict[str, int] = Field(
        default_factory=dict,
        description="Rejected dialogues per reason code, keyed `stage: code` when staged.",
    )
    by_source: dict[str, int] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    generator: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)

    @property
    def dup_rate(self) -> float | None:
        """Dedup rejects / dialogues in, when both are known."""
        if self.dedup_rejects is None or not self.dialogues_in:
            return None
        return self.dedup_rejects / self.dialogues_in


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _lookup(m: dict, names: tuple[str, ...]) -> Any:
    """First of `names` at the top level, then inside the usual nesting dicts (totals, counts...)."""
    for n in names:
        if n in m:
            return m[n]
    for nest in _NESTS:
        sub = m.get(nest)
        if isinstance(sub, dict):
            for n in names:
                if n in sub:
                    return sub[n]
    return None


def _int_dict(v: Any) -> dict[str, int] | None:
    if isinstance(v, dict) and v and all(_int(x) is not None for x in v.values()):
        return {str(k): int(x) for k, x in v.items()}
    return None


def _stage_counts(m: dict) -> dict[str, dict[str, int]]:
    """{stage: {counter: n}} wherever the manifest keeps per-stage counts."""
    candidates = [m] + [m[n] for n in (*_NESTS, "rejects", "rejections") if isinstance(m.get(n), dict)]
    for c in candidates:
        staged = {s: d for s in STAGES if (d := _int_dict(c.get(s))) is not None}
        if staged:
            return staged
    return {}


def _reasons(m: dict, staged: dict[str, dict[str, int]]) -> dict[str, int]:
    flat = _lookup(
        m,
        (
            "rejects_by_reason",
            "rejection_reasons",
            "reject_reasons",
            "rejected_by_reason",
            "by_reason",
            "reasons",
        ),
    )
    if (d := _int_dict(flat)) is not None:
        return dict(sorted(d.items(), key=lambda kv: -kv[1]))
    if isinstance(flat, dict):  # nested by stage
        staged = {s: d for s, v in flat.items() if (d := _int_dict(v)) is not None} or staged
    out: dict[str, int] = {}
    for stage, counts in staged.items():
        for code, n in counts.items():
            if code not in _BOOKKEEPING and not code.startswith("turn_pairs"):
                out[f"{stage}: {code}"] = n
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _dedup_counts(
    raw: dict, staged: dict[str, dict[str, int]], info: ManifestInfo
) -> tuple[int | None, int | None]:
    """(dialogues removed by dedup, dialogues entering dedup).

    Explicit keys win. A staged layout gives dedup's own `rejected`/`input`. The flat
    `rejects_by_reason` of `unimm shards` gives the dedup codes; dedup's input is then rebuilt as
    samples shipped + removed at dedup and later (decontamination, shards stage): every later reject
    has one reason except a decontamination hit on two eval files, so it is exact or a hair over.
    """
    explicit_rej = _int(_lookup(raw, ("dedup_rejects", "duplicates", "duplicates_removed")))
    explicit_in = _int(_lookup(raw, ("dialogues_in", "dedup_in", "chats_in")))
    if "dedup" in staged:
        d = staged["dedup"]
        return (
            explicit_rej if explicit_rej is not None else _int(d.get("rejected")),
            explicit_in if explicit_in is not None else _int(d.get("input")),
        )
    codes = {reason_code(k.split(": ", 1)[-1]): v for k, v in info.rejection_reasons.items()}
    if explicit_rej is None and codes:
        explicit_rej = sum(n for c, n in codes.items() if c in DEDUP_CODES)
    if explicit_in is None and explicit_rej is not None and info.samples is not None:
        shard_rejects = raw.get("shard_rejects")
        later = sum(n for c, n in codes.items() if c.startswith(DECONTAM_PREFIX))
        later += (
            len(shard_rejects)
            if isinstance(shard_rejects, list)
            else sum(n for c, n in codes.items() if c in SHARD_CODES)
        )
        explicit_in = info.samples + explicit_rej + later
    return explicit_rej, explicit_in


def _validate_with_model(raw: dict) -> str | None:
    """Check against the shard writer's own model when it exists; a mismatch becomes a warning."""
    try:
        from unimm.shards.manifest import Manifest  # written by the shards stage
    except ImportError:
        return None
    try:
        Manifest.model_validate(raw)
    except ValidationError as e:  # say what the model says, then carry on with the keys that are there
        errs = e.errors()
        where = ".".join(str(p) for p in errs[0]["loc"]) if errs else "?"
        more = f" (+{len(errs) - 1} more)" if len(errs) > 1 else ""
        return (
            f"manifest does not match unimm.shards.manifest.Manifest: field '{where}': {errs[0]['msg']}{more}"
        )
    return None


def parse_manifest(raw: dict, path: str = MANIFEST_NAME) -> ManifestInfo:
    """Pick the report's fields out of a manifest dict; unknown layouts give empty fields."""
    info = ManifestInfo(path=path)
    if (w := _validate_with_model(raw)) is not None:
        info.warnings.append(w)
    shards = raw.get("shards")
    if isinstance(shards, list):
        for s in shards:
            if isinstance(s, dict) and isinstance(s.get("name"), str):
                info.shards.append(
                    ShardEntry(
                        name=s["name"],
                        samples=_int(s.get("samples")),
                        bytes=_int(s.get("bytes")),
                        sha256=s.get("sha256") if isinstance(s.get("sha256"), str) else None,
                    )
                )
    info.num_shards = _int(_lookup(raw, ("num_shards", "n_shards", "shard_count"))) or (
        len(info.shards) if info.shards else None
    )
    info.samples = _int(_lookup(raw, ("samples", "total_samples", "num_samples", "n_samples", "dialogues")))
    if info.samples is None and info.shards and all(s.samples is not None for s in info.shards):
        info.samples = sum(s.samples or 0 for s in info.shards)
    info.bytes = _int(_lookup(raw, ("bytes", "total_bytes", "size_bytes")))
    if info.bytes is None and info.shards and all(s.bytes is not None for s in info.shards):
        info.bytes = sum(s.bytes or 0 for s in info.shards)

    staged = _stage_counts(raw)
    info.rejection_reasons = _reasons(raw, staged)
    info.dedup_rejects, info.dialogues_in = _dedup_counts(raw, staged, info)
    if (
        d := _int_dict(_lookup(raw, ("counts_by_source", "by_source", "samples_by_source", "source_counts")))
    ) is not None:
        info.by_source = d
    for key in ("build_config", "config", "shard_config"):
        if isinstance(raw.get(key), dict) and raw[key]:
            info.config[key] = raw[key]
    gen = _lookup(raw, ("generator", "generation"))
    info.generator = dict(gen) if isinstance(gen, dict) else {}
    for key in (
        "prompt_fingerprints",
        "prompt_fingerprint",
        "tool_version",
        "build_fingerprint",
        "prefix",
        "extensions",
    ):
        if (v := _lookup(raw, (key,))) not in (None, [], ""):
            info.generator.setdefault(key, v)
    return info


def load_manifest(shard_dir: Path) -> ManifestInfo | None:
    """The manifest beside the shards, or None when there is none; InputError if it is not JSON."""
    path = Path(shard_dir) / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"not valid JSON: {e}") from e
    if not isinstance(raw, dict):
        raise InputError(path, "expected a JSON object at the top level")
    return parse_manifest(raw, str(path))
