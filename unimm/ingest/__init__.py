"""Ingest: the official annotation files of each source -> `work/ingest/<source>.parquet`
(`Annotation` rows) and `work/ingest/<source>.images.parquet` (`ImageRef` rows).

One module per source family (coco, vqa [VQAv2 + OK-VQA], aokvqa, vg, visdial), a registry, and the
runner. Decoding uses typed msgspec Structs and column building; see each module's memory note.
"""

from unimm.lazy import exports

_OWNERS = {
    "Ingester": "unimm.ingest.base",
    "IngestResult": "unimm.ingest.base",
    "SourceTables": "unimm.ingest.base",
    "INGESTERS": "unimm.ingest.registry",
    "check_inputs": "unimm.ingest.registry",
    "present_sources": "unimm.ingest.registry",
    "ingest_unit": "unimm.ingest.runner",
    "run_ingest": "unimm.ingest.runner",
}
__all__ = list(_OWNERS)
__getattr__ = exports(__name__, _OWNERS)
