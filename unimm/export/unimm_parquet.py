"""The Yirany/UniMM-Chat release layout: one Parquet file with the release's Features.

Columns, as the release's dataset card declares them (`dataset_info.features`) and Muffin
(thunlp/Muffin `muffin/data/data_processors.py`) reads them:

- `ds_name` (string): the corpus name, "unimm-chat".
- `image` (Image: struct<bytes: binary, path: string>): the picture's original bytes and its
  export path (`coco/coco_000000014732.jpg`); null for shards written without images.
- `conversation` (string): JSON of [{"from": "human"|"gpt", "value"}], "<image>\\n" opening the
  first human turn.
- `origin_dataset` (string): the annotation sources the dialogue was made from, comma-joined
  ("coco,vqav2,okvqa").
- `idx` (int64): the row's index in this export.
- `image_path` (string): the picture's path in its source release, relative to the data root
  (coco/train2014/COCO_train2014_000000014732.jpg), as the chat names it.

The file's Arrow schema carries the Features in its `huggingface` metadata, so
`datasets.load_dataset("parquet", ...)` decodes `image` to PIL images and the result
concatenates with the official release.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from unimm.export.hfdata import arrow_tables, require_datasets
from unimm.export.output import ExportResult
from unimm.export.samples import ExportSample, image_relpath, iter_shard_samples
from unimm.export.turns import conversations
from unimm.workdir import atomic_path

if TYPE_CHECKING:
    import datasets

DS_NAME = "unimm-chat"


def release_features() -> datasets.Features:
    """The Features of the Yirany/UniMM-Chat release, in its column order."""
    ds = require_datasets()
    return ds.Features(
        {
            "ds_name": ds.Value("string"),
            "image": ds.Image(),
            "conversation": ds.Value("string"),
            "origin_dataset": ds.Value("string"),
            "idx": ds.Value("int64"),
            "image_path": ds.Value("string"),
        }
    )


def release_row(sample: ExportSample, idx: int, ds_name: str = DS_NAME) -> dict[str, Any]:
    """One release row (the image as an Image feature value {bytes, path}, not yet encoded)."""
    chat = sample.chat
    image = None if sample.image is None else {"bytes": sample.image, "path": image_relpath(sample)}
    return {
        "ds_name": ds_name,
        "image": image,
        "conversation": json.dumps(conversations(chat), ensure_ascii=False),
        "origin_dataset": ",".join(chat.sources),
        "idx": idx,
        "image_path": chat.image_file,
    }


def export_unimm_parquet(shard_dir: Path, out: Path, ds_name: str = DS_NAME) -> ExportResult:
    """Write the release layout to the Parquet file `out`, streamed in row groups."""
    features = release_features()
    samples = iter_shard_samples(shard_dir)  # verified before anything is written
    rows = (release_row(s, i, ds_name) for i, s in enumerate(samples))
    records = images = 0
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, features.arrow_schema, compression="zstd") as w:
        for table in arrow_tables(rows, features):
            w.write_table(table)
            records += table.num_rows
            images += table.num_rows - table["image"].null_count
    return ExportResult(format="unimm-parquet", out=Path(out), records=records, images=images)
