"""Ingest: the official annotation files of each source -> `work/ingest/<source>.parquet`
(`Annotation` rows) and `work/ingest/<source>.images.parquet` (`ImageRef` rows).

One module per source family (coco, vqa [VQAv2 + OK-VQA], aokvqa, vg, visdial), a registry, and the
runner. Decoding uses typed msgspec Structs and column building; see each module's memory note.
"""

from unimm.lazy import exports

__all__, __getattr__ = exports(
    __name__,
    {
        "unimm.ingest.base": ["Ingester", "SourceTables"],
        "unimm.ingest.result": ["IngestResult"],
        "unimm.ingest.registry": ["INGESTERS"],
        "unimm.ingest.inputs": ["check_inputs", "present_sources"],
        "unimm.ingest.runner": ["ingest_unit", "run_ingest"],
    },
)
