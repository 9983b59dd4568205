"""`unimm sample`: a small demo corpus whose annotations are true of rendered pictures, and a
full-scale synthetic generator for benchmarks. Both write the five sources' official files."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from unimm.sample.demo import annotation_files, image_files, plan_images
from unimm.sample.output import sample_dir, write_json, write_marker

DEFAULT_IMAGES = 24


def write_demo(
    out: Path, *, seed: int = 0, images: int = DEFAULT_IMAGES, with_images: bool = True
) -> dict[str, Any]:
    """Write the demo corpus under `out` (data-root layout); returns what the marker file records.

    Deterministic: the same seed and image count give the same bytes in every file."""
    from unimm.errors import ConfigError

    if images < 1:
        raise ConfigError(f"--images must be at least 1, got {images}")
    rng = random.Random(seed)
    plan = plan_images(images, rng)
    files = annotation_files(plan, rng)
    counts: dict[str, int] = {}
    with sample_dir(out) as root:
        for rel, doc in files.items():
            write_json(root / rel, doc)
            counts[rel] = (
                len(doc) if isinstance(doc, list) else len(doc.get("annotations", doc.get("questions", [])))
            )
        n_jpeg = 0
        if with_images:
            for rel, data in image_files(plan):
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(data)
                n_jpeg += 1
        info = {"kind": "demo", "seed": seed, "images": images, "jpeg_files": n_jpeg, "records": counts}
        write_marker(root, info)
    return info


__all__ = ["DEFAULT_IMAGES", "parse_scale", "write_demo", "write_full"]


def parse_scale(text: str) -> float:
    """`full` -> 1.0; `0.05` -> 0.05 (a fraction of the real sizes, in (0, 1])."""
    from unimm.errors import ConfigError

    if text.strip().lower() == "full":
        return 1.0
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--scale must be 'full' or a fraction like 0.05, got {text!r}") from None
    if not 0 < value <= 1:
        raise ConfigError(f"--scale must be in (0, 1], got {value}")
    return value


def write_full(out: Path, *, scale: float = 1.0, seed: int = 0, workers: int = 2) -> dict[str, Any]:
    """Write the synthetic corpus at `scale` of the real sizes under `out` (annotation files only).

    The texts describe no picture, so no images are written; use the demo corpus for that."""
    from unimm.sample.full import write_full_files

    with sample_dir(out) as root:
        counts = write_full_files(root, scale=scale, seed=seed, workers=workers)
        info = {"kind": "synthetic", "seed": seed, "scale": scale, "jpeg_files": 0, "records": counts}
        write_marker(root, info)
    return info
