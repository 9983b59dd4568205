"""Canonical image keys: one per physical picture, safe as a WebDataset key (no dots).

COCO ids are identical across the 2014 and 2017 releases, so VQAv2/OK-VQA (2014 ids), A-OKVQA
(2017 ids) and COCO captions land on the same key. A Visual Genome image with a `coco_id` maps
to that COCO key; the rest get `vg_<id>`. Visual Dialog's train images are COCO pictures (COCO
keys); its val and test pictures come from Flickr with ids of their own, one collection per split
(`VisualDialog_val2018_<id>.jpg`, `VisualDialog_test2018_<id>.jpg`): `visdial_val_<id:012d>` and
`visdial_test_<id:012d>`.

COCO's own file names are here too (`coco_file_name`, `coco_file_name_expr`, parsed back by
`coco_id_from_file_name`): `COCO_<split>_%012d.jpg` in the 2014 splits, `%012d.jpg` in 2017.
"""

from __future__ import annotations

import re
import string
from pathlib import PurePosixPath

import polars as pl

COCO_ID_DIGITS = 12  # COCO ids are zero-padded to 12 digits in keys and in file names
COCO_IMAGE_EXT = ".jpg"
# any spelling of a COCO picture: COCO_train2014_000000033471.jpg, 000000033471.jpg, 33471.jpg
_COCO_NAME = re.compile(r"^(?:COCO_[a-z]+20\d\d_)?0*(\d+)\.(?:jpe?g|png)$", re.IGNORECASE)


def coco_key(coco_id: int) -> str:
    """`coco_000000391895` for COCO id 391895."""
    return f"coco_{int(coco_id):0{COCO_ID_DIGITS}d}"


def _coco_name_prefix(split: str) -> str:
    # the 2014 release names its files COCO_<split>_<id>, the 2017 one <id> alone
    return f"COCO_{split}_" if split.endswith("2014") else ""


def coco_file_name(coco_id: int, split: str) -> str:
    """COCO's file name of an image in `split`: `COCO_train2014_000000391895.jpg` in the 2014
    splits, `000000391895.jpg` in the 2017 ones."""
    return f"{_coco_name_prefix(split)}{int(coco_id):0{COCO_ID_DIGITS}d}{COCO_IMAGE_EXT}"


def coco_file_name_expr(col: str | pl.Expr, split: str) -> pl.Expr:
    """Polars version of coco_file_name for a column of integer ids (one split)."""
    c = pl.col(col) if isinstance(col, str) else col
    return (
        pl.lit(_coco_name_prefix(split))
        + c.cast(pl.Int64).cast(pl.Utf8).str.zfill(COCO_ID_DIGITS)
        + pl.lit(COCO_IMAGE_EXT)
    )


def coco_id_from_file_name(name: str) -> int | None:
    """The COCO id in a file name of any COCO spelling (2014 `COCO_val2014_<id>.jpg`, 2017
    `<id:012d>.jpg`, or the bare id; .jpg/.jpeg/.png), folders ignored; None for anything else."""
    m = _COCO_NAME.match(PurePosixPath(name.replace("\\", "/")).name)
    return int(m.group(1)) if m else None


def vg_key(vg_id: int, coco_id: int | None = None) -> str:
    """The COCO key when VG knows the COCO id, else `vg_<id>`."""
    return coco_key(coco_id) if coco_id is not None else f"vg_{int(vg_id)}"


# VisDial's own (non-COCO) splits: key prefix and the folder/file prefix of its pictures
VISDIAL_IMAGE_SPLITS: dict[str, str] = {"val": "VisualDialog_val2018", "test": "VisualDialog_test2018"}


def visdial_key(image_id: int, split: str) -> str:
    """`coco_<id>` for a VisDial train image (a COCO picture), `visdial_<split>_<id:012d>` for
    the val and test pictures."""
    if split not in VISDIAL_IMAGE_SPLITS:
        return coco_key(image_id)
    return f"visdial_{split}_{int(image_id):0{COCO_ID_DIGITS}d}"


def visdial_file_name(image_id: int, split: str) -> str:
    """The file name of a VisDial val/test picture: `VisualDialog_val2018_000000185565.jpg`."""
    return f"{VISDIAL_IMAGE_SPLITS[split]}_{int(image_id):0{COCO_ID_DIGITS}d}{COCO_IMAGE_EXT}"


def visdial_key_expr(col: str | pl.Expr, split: str) -> pl.Expr:
    """Polars version of visdial_key for a column of integer ids of one split."""
    c = pl.col(col) if isinstance(col, str) else col
    if split not in VISDIAL_IMAGE_SPLITS:
        return coco_key_expr(c)
    return pl.lit(f"visdial_{split}_") + c.cast(pl.Int64).cast(pl.Utf8).str.zfill(COCO_ID_DIGITS)


def visdial_file_name_expr(col: str | pl.Expr, split: str) -> pl.Expr:
    """Polars version of visdial_file_name (one val/test split)."""
    c = pl.col(col) if isinstance(col, str) else col
    return (
        pl.lit(VISDIAL_IMAGE_SPLITS[split] + "_")
        + c.cast(pl.Int64).cast(pl.Utf8).str.zfill(COCO_ID_DIGITS)
        + pl.lit(COCO_IMAGE_EXT)
    )


def coco_key_expr(col: str | pl.Expr) -> pl.Expr:
    """Polars version of coco_key for a column of integer ids."""
    c = pl.col(col) if isinstance(col, str) else col
    return pl.lit("coco_") + c.cast(pl.Int64).cast(pl.Utf8).str.zfill(COCO_ID_DIGITS)


def vg_key_expr(vg_id: str | pl.Expr, coco_id: str | pl.Expr) -> pl.Expr:
    """Polars version of vg_key: COCO key where coco_id is set, else vg_<id>."""
    v = pl.col(vg_id) if isinstance(vg_id, str) else vg_id
    c = pl.col(coco_id) if isinstance(coco_id, str) else coco_id
    return (
        pl.when(c.is_not_null())
        .then(coco_key_expr(c))
        .otherwise(pl.lit("vg_") + v.cast(pl.Int64).cast(pl.Utf8))
    )


# Partitions are ranges of a 32-bit hash of the image number, so that a table sorted by the hash
# (each ingest table is) hands any partition of any partition count to merge as one contiguous
# run of row groups. Fibonacci hashing: multiply by 2^64/phi, keep the top 32 bits.
PARTITION_HASH = "_part_hash"
# Beside it, each ingest row keeps its image's number (`image_number_expr`): merge groups by it,
# and computing it from the key strings cost ~55 ms of each ~0.6 CPU-s merge partition.
IMAGE_NUMBER = "_image_number"
# Merge's default partition size (its `partitions: 0`): small enough that two partitions'
# generate/filter chains (about 230 KB of Python objects per image at full scale) run side by
# side on 2 cores within the build's 8 GB.
IMAGES_PER_PARTITION = 10_000
_FIB = 0x9E3779B97F4A7C15
# Each id space but COCO's is shifted by its own offset, so that no two prefixes share an image
# number (ids stay far below 2^40). Any other prefix counts as VG's, as before VisDial.
_VG_OFFSET = 1 << 40
_OFFSETS: dict[str, int] = {"visdial_val_": 2 << 40, "visdial_test_": 3 << 40}


def image_number(image_key: str) -> int:
    """The number of an image key: its digits, shifted by the offset of its id space."""
    n = int(image_key.rsplit("_", 1)[-1])  # every key is <prefix>_<digits>
    if image_key.startswith("coco_"):
        return n
    return n + next((off for p, off in _OFFSETS.items() if image_key.startswith(p)), _VG_OFFSET)


def image_number_expr(col: str = "image_key") -> pl.Expr:
    """Polars: the 64-bit number of a `<prefix>_<digits>` key (the id spaces of COCO, VG and
    VisDial's own splits kept apart); cheaper than the string as a group key."""
    key = pl.col(col)
    # prefixes are lower-case words: stripping their letters is 3x cheaper than a regex
    digits = key.str.strip_chars_start(string.ascii_lowercase + "_").cast(pl.Int64)
    expr = pl.when(key.str.starts_with("coco_")).then(digits)
    for prefix, off in _OFFSETS.items():
        expr = expr.when(key.str.starts_with(prefix)).then(digits + off)
    return expr.otherwise(digits + _VG_OFFSET)


def partition_hash(image_key: str) -> int:
    """The 32-bit partition hash of an image key: same on every machine and version."""
    return ((image_number(image_key) * _FIB) % (1 << 64)) >> 32


def partition_hash_expr(col: str = "image_key") -> pl.Expr:
    """Polars version of partition_hash (UInt32)."""
    return number_hash_expr(image_number_expr(col))


def number_hash_expr(number: pl.Expr) -> pl.Expr:
    """partition_hash of image numbers (`image_number_expr`) already computed."""
    n = number.cast(pl.UInt64)
    return ((n * pl.lit(_FIB, pl.UInt64)) // pl.lit(1 << 32, pl.UInt64)).cast(pl.UInt32)


def partition_of(image_key: str, partitions: int) -> int:
    """Partition of an image key among `partitions`: the hash's range it falls in."""
    return (partition_hash(image_key) * partitions) >> 32


def partition_range(partition: int, partitions: int) -> tuple[int, int]:
    """The hashes [lo, hi) of one partition (partition_of is `p` exactly for these)."""

    def lo(p: int) -> int:
        return -(-(p << 32) // partitions)  # smallest h with h * partitions >> 32 >= p

    return lo(partition), lo(partition + 1)
