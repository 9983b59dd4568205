"""`unimm sample`: a small demo corpus whose annotations are true of rendered pictures, in the
six sources' official files. (The full-scale synthetic corpus of the benchmarks is
benchmarks/fullscale, outside the installed package.)"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from unimm.sample.demo import annotation_files, image_files, plan_images, plan_visdial, visdial_files
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
    plan = plan_visdial(plan, rng)
    files.update(visdial_files(plan, rng))
    counts: dict[str, int] = {}
    with sample_dir(out) as root:
        for rel, doc in files.items():
            write_json(root / rel, doc)
            counts[rel] = _records(doc)
        n_jpeg = 0
        if with_images:
            for rel, data in image_files(plan):
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(data)
                n_jpeg += 1
        info = {"kind": "demo", "seed": seed, "images": images, "jpeg_files": n_jpeg, "records": counts}
        write_marker(root, info)
    return info


def _records(doc: Any) -> int:
    """Records of one official file: its items, annotations, questions or (VisDial) dialogs."""
    if isinstance(doc, list):
        return len(doc)
    if "data" in doc:
        return len(doc["data"]["dialogs"])
    return len(doc.get("annotations", doc.get("questions", [])))


__all__ = ["DEFAULT_IMAGES", "write_demo"]
