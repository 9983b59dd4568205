"""Stage caching: every stage output is keyed by the fingerprint of its inputs and config.

A unit of a step writes its outputs atomically, then a small `<unit>.done.json` marker holding its
fingerprint. A rerun whose fingerprint matches the marker (and whose outputs still exist) does no
work; a changed config or input changes the fingerprint and only the stages downstream of it run
again. A run killed at any point leaves either a complete output + marker or no marker at all.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from unimm import __version__
from unimm.pipeline.counts import StepCounts
from unimm.redact import is_secret_key
from unimm.workdir import atomic_path


def _canonical(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return _canonical(obj.model_dump(mode="json"))
    if isinstance(obj, dict):
        # Secrets are never hashed: they must not leak, and rotating a key must not invalidate
        # a cache.
        return {str(k): _canonical(v) for k, v in sorted(obj.items()) if not is_secret_key(str(k))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def fingerprint(*parts: Any) -> str:
    """sha256 (first 16 hex chars) of the canonical JSON of `parts` (secrets dropped)."""
    blob = json.dumps([_canonical(p) for p in parts], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def files_fingerprint(paths: list[Path]) -> str:
    """Cheap identity of input files: path, size and mtime (content hashing 1.5 GB on every run
    would cost more than some stages)."""
    stats = []
    for p in sorted(paths):
        st = os.stat(p)
        stats.append([str(p), st.st_size, st.st_mtime_ns])
    return fingerprint(stats)


def code_fingerprint(*names: str) -> str:
    """sha256 of the source of packages or modules (e.g. "unimm.grounding", "unimm.card"): a
    stage whose rules live in code reruns when the code changes, not only when its config does."""
    h = hashlib.sha256()
    for name in names:
        spec = importlib.util.find_spec(name)
        origin = Path(spec.origin)  # type: ignore[union-attr, arg-type]
        is_package = spec.submodule_search_locations is not None  # type: ignore[union-attr]
        root = origin.parent if is_package else origin
        for f in sorted(root.rglob("*.py")) if is_package else [origin]:
            h.update(f"{name}/{f.relative_to(origin.parent)}".encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


class StageMarker(BaseModel):
    stage: str
    fingerprint: str
    version: str = __version__
    outputs: list[str]
    counts: StepCounts
    seconds: float = 0.0


def is_done(p: Path, fp: str) -> StageMarker | None:
    """The marker at `p` if its unit already ran with fingerprint `fp` and its outputs exist."""
    if not p.exists():
        return None
    try:
        m = StageMarker.model_validate_json(p.read_text())
    except ValueError:
        return None
    if m.fingerprint != fp or not all(Path(o).exists() for o in m.outputs):
        return None
    return m


def mark_done(p: Path, marker: StageMarker) -> None:
    """Write the marker at `p` (after the unit's outputs: a marker means they are complete)."""
    with atomic_path(p) as tmp:
        tmp.write_text(marker.model_dump_json(indent=2) + "\n")
