"""Canonical image keys: one per physical picture, safe as a WebDataset key (no dots).

COCO ids are identical across the 2014 and 2017 releases, so VQAv2/OK-VQA (2014 ids), A-OKVQA
(2017 ids) and COCO captions land on the same key. A Visual Genome image with a `coco_id` maps
to that COCO key; the rest get `vg_<id>`.
"""

from __future__ import annotations

import polars as pl


def coco_key(coco_id: int) -> str:
    """`coco_000000391895` for COCO id 391895."""
    return f"coco_{int(coco_id):012d}"


def vg_key(vg_id: int, coco_id: int | None = None) -> str:
    """The COCO key when VG knows the COCO id, else `vg_<id>`."""
    return coco_key(coco_id) if coco_id is not None else f"vg_{int(vg_id)}"


def coco_key_expr(col: str | pl.Expr) -> pl.Expr:
    """Polars version of coco_key for a column of integer ids."""
    c = pl.col(col) if isinstance(col, str) else col
    return pl.lit("coco_") + c.cast(pl.Int64).cast(pl.Utf8).str.zfill(12)


def vg_key_expr(vg_id: str | pl.Expr, coco_id: str | pl.Expr) -> pl.Expr:
    """Polars version of vg_key: COCO key where coco_id is set, else vg_<id>."""
    v = pl.col(vg_id) if isinstance(vg_id, str) else vg_id
    c = pl.col(coco_id) if isinstance(coco_id, str) else coco_id
    return (
        pl.when(c.is_not_null())
        .then(coco_key_expr(c))
        .otherwise(pl.lit("vg_") + v.cast(pl.Int64).cast(pl.Utf8))
    )


def partition_of(image_key: str, partitions: int) -> int:
    """Stable partition of an image key (the numeric tail mod N): same on every machine and version."""
    digits = image_key.rsplit("_", 1)[-1]
    return int(digits) % partitions if digits.isdigit() else sum(image_key.encode()) % partitions


def partition_expr(partitions: int, col: str = "image_key") -> pl.Expr:
    """Polars version of partition_of for keys of the form <prefix>_<digits>."""
    return pl.col(col).str.extract(r"_(\d+)$", 1).cast(pl.Int64) % partitions
