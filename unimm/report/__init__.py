"""Corpus report over finished shards: `unimm stats` (summary + self-contained HTML) and
`unimm show` (dialogues in the terminal).

    read (webdataset) -> frames (polars) -> summary (pydantic) -> console (rich) / html (+ plots)
"""

from __future__ import annotations

from unimm.report.frames import Corpus, load_corpus
from unimm.report.manifest import ManifestInfo, load_manifest, manifest_info, parse_manifest
from unimm.report.read import Sample, find_shards, iter_samples
from unimm.report.show import pick_samples
from unimm.report.summary import Summary, summarize

__all__ = [
    "Corpus",
    "ManifestInfo",
    "Sample",
    "Summary",
    "find_shards",
    "iter_samples",
    "load_corpus",
    "load_manifest",
    "manifest_info",
    "parse_manifest",
    "pick_samples",
    "summarize",
]
