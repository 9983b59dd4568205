"""Ingest: the official annotation files of each source -> `work/ingest/<source>.parquet`
(`Annotation` rows) and `work/ingest/<source>.images.parquet` (`ImageRef` rows).

One module per source family (coco, vqa [VQAv2 + OK-VQA], aokvqa, vg, visdial), a registry, and the
runner. Decoding uses typed msgspec Structs and column building; see each module's memory note.
"""

from __future__ import annotations

from unimm.ingest.base import Ingester, IngestResult, SourceTables
from unimm.ingest.registry import INGESTERS, check_inputs, present_sources
from unimm.ingest.runner import ingest_source, run_ingest

__all__ = [
    "INGESTERS",
    "IngestResult",
    "Ingester",
    "SourceTables",
    "check_inputs",
    "present_sources",
    "ingest_source",
    "run_ingest",
]
