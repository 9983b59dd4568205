"""Hugging Face `datasets` for the exports that carry its Features (Image columns, metadata)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from unimm.errors import UnimmError

if TYPE_CHECKING:
    import datasets

# Rows per Arrow batch / Parquet row group: images make rows large, and the datasets library
# itself writes image datasets in row groups of about 100.
BATCH_ROWS = 100


def require_datasets() -> ModuleType:
    """The `datasets` module, imported late (it is slow to import and only exports need it)."""
    try:
        import datasets
    except ModuleNotFoundError as e:
        raise UnimmError(
            f"this export format needs the Hugging Face `datasets` library ({e}); "
            "install it with `pip install datasets`"
        ) from None
    return datasets


def arrow_tables(
    rows: Iterable[dict[str, Any]], features: datasets.Features, batch_rows: int = BATCH_ROWS
) -> Iterator[pa.Table]:
    """`rows` encoded by `features` (an Image value {bytes, path} -> its struct) as tables of at
    most `batch_rows` rows, with the features' Arrow schema and its `huggingface` metadata."""
    schema = features.arrow_schema
    it = iter(rows)
    while batch := list(itertools.islice(it, batch_rows)):
        yield pa.Table.from_pylist([features.encode_example(r) for r in batch], schema=schema)
