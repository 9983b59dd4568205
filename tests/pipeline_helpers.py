"""Work dirs made by the real pipeline, with one table then replaced by hand-picked rows.

Tests of a later step often need exact inputs (two records whose dialogues a fault server tells
apart, a chat that contradicts its annotation). The runner only accepts work dirs whose earlier
steps ran with the same config, so the work dir is built by the pipeline itself (ingest + merge of
the official-format fixtures, one partition) and only the table the test is about is replaced:
every command then runs exactly as it does for users.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from unimm.config import PipelineConfig
from unimm.pipeline.runner import run_pipeline
from unimm.schema import Chat, MergedImage
from unimm.tables import MERGED_IMAGE_SCHEMA, chats_to_frame

FIXTURES = Path(__file__).parent / "fixtures" / "ingest" / "data"


def pipeline_work(work: Path, until: str, **settings: object) -> Path:
    """Run the pipeline on the fixtures up to `until` (one partition, template generation)."""
    cfg = PipelineConfig.model_validate(
        {
            "data_root": str(FIXTURES),
            "merge": {"partitions": 1},
            "generate": {"backend": "template"},
            **settings,
        }
    )
    run_pipeline(cfg, work, until=until, log=lambda _: None)
    return work


def replace_merged(work: Path, records: list[MergedImage]) -> None:
    df = pl.DataFrame([r.model_dump(mode="json") for r in records], schema=MERGED_IMAGE_SCHEMA)
    df.write_parquet(work / "merged" / "part-00000.parquet")


def replace_chats(work: Path, step: str, chats: list[Chat]) -> None:
    chats_to_frame(chats).write_parquet(work / step / "chats-00000.parquet")
