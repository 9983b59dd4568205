"""One module per stage; each exposes `register(app)`. Order here is the order users see."""

from __future__ import annotations

import importlib
from types import ModuleType

_NAMES = [
    "sample",
    "download",
    "build",
    "ingest",
    "merge",
    "generate",
    "serve",
    "filter",
    "shards",
    "train",
    "stats",
    "audit",
    "schema",
]


def _load() -> list[ModuleType]:
    mods = []
    for name in _NAMES:
        try:
            mods.append(importlib.import_module(f"unimm.commands.{name}"))
        except ModuleNotFoundError as e:  # a stage not written yet; never hide a broken import inside one
            if e.name != f"unimm.commands.{name}":
                raise
    return mods


STAGE_MODULES = _load()
