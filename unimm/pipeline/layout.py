"""Every path of the work directory, in one place.

    config.json                         the pipeline config of the last run (secrets left out)
    ingest/<unit>.parquet               Annotation rows       ingest/<source>.images.parquet  ImageRef rows
    ingest/<unit>.json                  what was read (files, rows per kind); a unit is a source,
                                        or `<source>.<part>` of one read in parts (VG's regions)
    merged/part-<pid>.parquet           MergedImage rows      merged/summary-<pid>.json
    generate/chats-<pid>.parquet        Chat rows             generate/failures-<pid>.parquet
    generate/cache/<pid>/               the partition's append-only response cache (resume)
    filter/chats-<pid>.parquet          kept Chat rows
    filter/judge-cache/<pid>/           the LLM judge's answers
    dedup_sign/chats-<pid>.parquet      the dialogues after turn dedup
    dedup_sign/signatures-<pid>.parquet one row per dialogue: id, exact hash, MinHash signature
    dedup_join/duplicates.parquet       the dialogues the corpus-wide pass drops, with the reason
    dedup/chats-<pid>.parquet           decontaminate/chats-<pid>.parquet
    rejects/<step>/<unit>.parquet       every dialogue a step rejected, with its reasons (Reject
                                        rows of filter, dedup, decontaminate, shards)
    report/summary.json                 the build's counts per step
    markers/<step>/<unit>.done.json     fingerprint + counts of every finished unit of work

A partition id (`<pid>`) is the five-digit number of a merged partition; a source-scoped unit is
the source's name (or `<source>.<part>`); a corpus-wide unit is `corpus`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from unimm.errors import MissingStageOutputError

CORPUS = "corpus"


@dataclass(frozen=True)
class Layout:
    """The paths under one work directory."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # -- the run as a whole ---------------------------------------------------------------------
    @property
    def config(self) -> Path:
        return self.root / "config.json"

    def marker(self, step: str, unit: str) -> Path:
        return self.root / "markers" / step / f"{unit}.done.json"

    def step_dir(self, step: str) -> Path:
        return self.root / step

    # -- ingest + merge ---------------------------------------------------------------------------
    def ingest_table(self, unit: str) -> Path:
        return self.root / "ingest" / f"{unit}.parquet"

    def ingest_images(self, source: str) -> Path:
        return self.root / "ingest" / f"{source}.images.parquet"

    def ingest_summary(self, unit: str) -> Path:
        return self.root / "ingest" / f"{unit}.json"

    @property
    def merged_dir(self) -> Path:
        return self.root / "merged"

    def merged_summary(self, pid: str) -> Path:
        return self.merged_dir / f"summary-{pid}.json"

    def merged_part(self, pid: str) -> Path:
        return self.merged_dir / f"part-{pid}.parquet"

    def partitions(self) -> list[str]:
        """The merged partition ids, in order; an error naming the folder when there are none."""
        pids = sorted(p.stem.removeprefix("part-") for p in self.merged_dir.glob("part-*.parquet"))
        if not pids:
            raise MissingStageOutputError(self.merged_dir / "part-*.parquet", "unimm merge")
        return pids

    # -- per-partition dialogue tables -----------------------------------------------------------
    def chats(self, step: str, unit: str) -> Path:
        """The dialogues `step` passes on for `unit` (Chat rows)."""
        return self.root / step / (f"chats-{unit}.parquet" if unit != CORPUS else "chats.parquet")

    def rejects(self, step: str, unit: str) -> Path:
        """The dialogues `step` rejected for `unit`, each with its reasons (Reject rows)."""
        return self.root / "rejects" / step / f"{unit}.parquet"

    def failures(self, pid: str) -> Path:
        return self.root / "generate" / f"failures-{pid}.parquet"

    def generate_cache(self, pid: str) -> Path:
        return self.root / "generate" / "cache" / pid

    def judge_cache(self, pid: str) -> Path:
        return self.root / "filter" / "judge-cache" / pid

    def signatures(self, pid: str) -> Path:
        return self.root / "dedup_sign" / f"signatures-{pid}.parquet"

    @property
    def duplicates(self) -> Path:
        return self.root / "dedup_join" / "duplicates.parquet"

    @property
    def report(self) -> Path:
        return self.root / "report" / "summary.json"
