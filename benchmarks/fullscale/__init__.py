"""The full-scale synthetic corpus the ingest and build benchmarks read: every source's
official annotation files at their real sizes (or a fraction), no pictures.

    python benchmarks/fullscale --out DIR [--scale full|0.05] [--seed 0] [--workers 2]

`write_full` writes the folder (atomically, never over real data: the same rules as `unimm sample
--out`, whose marker file it writes too); the generator is in `corpus`. Not part of the installed
package: the demo corpus (`unimm sample`) is what users get.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from unimm.errors import ConfigError
from unimm.sample.output import sample_dir, write_marker

from .corpus import FULL, scaled, write_full_files

__all__ = ["FULL", "main", "parse_scale", "scaled", "write_full"]


def parse_scale(text: str) -> float:
    """`full` -> 1.0; `0.05` -> 0.05 (a fraction of the real sizes, in (0, 1])."""
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
    with sample_dir(out) as root:
        counts = write_full_files(root, scale=scale, seed=seed, workers=workers)
        info = {"kind": "synthetic", "seed": seed, "scale": scale, "jpeg_files": 0, "records": counts}
        write_marker(root, info)
    return info


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python benchmarks/fullscale", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--out", type=Path, required=True, help="Data root to create (what `unimm ingest` reads)."
    )
    ap.add_argument("--scale", default="full", help="'full' (real sizes) or a fraction like 0.05.")
    ap.add_argument("--seed", type=int, default=0, help="Random seed; the same seed gives the same bytes.")
    ap.add_argument("--workers", type=int, default=2, help="Processes (one file per job).")
    args = ap.parse_args(argv)
    try:
        info = write_full(
            args.out, scale=parse_scale(args.scale), seed=args.seed, workers=max(1, args.workers)
        )
    except ConfigError as e:
        ap.error(str(e))
    total = sum(info["records"].values())
    print(f"wrote {len(info['records'])} annotation files ({total:,} records) to {args.out}")
