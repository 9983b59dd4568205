"""A Hugging Face `DatasetDict` saved with `save_to_disk`, for `datasets.load_from_disk`.

Split "train", Features:
- `id` (string): the sample key; `image_key` (string): the picture's canonical key;
- `image` (Image): the picture's original bytes (path `coco/coco_000000014732.jpg`), null for
  shards written without images; `image_file` (string): its path in the source release;
- `messages` (list of {role: "user"|"assistant", content: string}): the dialogue as HF chat
  datasets hold it, without the "<image>" placeholder (the picture belongs to the first user
  turn; a processor's chat template places its image tokens);
- `sources` (list of string): annotation sources the dialogue was made from;
- `grounding_score` (float64): the filter's grounding score, null where nothing was checkable.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from unimm.export.hfdata import arrow_tables, require_datasets
from unimm.export.output import ExportResult, owned_dir
from unimm.export.samples import ExportSample, image_relpath, iter_shard_samples
from unimm.export.turns import messages

if TYPE_CHECKING:
    import datasets

SPLIT = "train"


def chat_features() -> datasets.Features:
    """The Features of the `hf` export, in column order."""
    ds = require_datasets()
    return ds.Features(
        {
            "id": ds.Value("string"),
            "image_key": ds.Value("string"),
            "image": ds.Image(),
            "image_file": ds.Value("string"),
            "messages": ds.List({"role": ds.Value("string"), "content": ds.Value("string")}),
            "sources": ds.List(ds.Value("string")),
            "grounding_score": ds.Value("float64"),
        }
    )


def chat_row(sample: ExportSample) -> dict[str, Any]:
    """One row of the `hf` export (the image as an Image feature value, not yet encoded)."""
    chat = sample.chat
    image = None if sample.image is None else {"bytes": sample.image, "path": image_relpath(sample)}
    return {
        "id": chat.id,
        "image_key": chat.image_key,
        "image": image,
        "image_file": chat.image_file,
        "messages": messages(chat),
        "sources": list(chat.sources),
        "grounding_score": chat.grounding_score,
    }


def _save(rows_file: Path, split: str, folder: Path) -> None:
    ds = require_datasets()
    ds.DatasetDict({split: ds.Dataset.from_file(str(rows_file))}).save_to_disk(str(folder))


def export_hf(shard_dir: Path, out: Path, split: str = SPLIT) -> ExportResult:
    """Save a DatasetDict {split: Dataset} to the folder `out` (replaced whole, atomically)."""
    features = chat_features()
    samples = iter_shard_samples(shard_dir)  # verified before anything is written
    records = images = 0
    with owned_dir(out, "hf") as tmp:
        # Rows go to an Arrow stream file batch by batch and are memory-mapped back, so the corpus
        # is never in memory at once; save_to_disk copies them into place, then the file goes.
        rows_file = tmp / "rows.arrow"
        with pa.OSFile(str(rows_file), "wb") as sink, pa.ipc.new_stream(sink, features.arrow_schema) as w:
            for table in arrow_tables((chat_row(s) for s in samples), features):
                w.write_table(table)
                records += table.num_rows
                images += table.num_rows - table["image"].null_count
        _save(rows_file, split, tmp)
        rows_file.unlink()
    return ExportResult(format="hf", out=Path(out), records=records, images=images)
