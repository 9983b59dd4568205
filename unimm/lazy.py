"""Package re-exports resolved on first use (PEP 562).

Importing any submodule of a package (`unimm.filter.config`) runs the package's `__init__` first.
Eager re-exports there made every config model pull in its whole stage: the pipeline config alone
imported the filter, grounding, generation and decontamination code (1 s), and so did each
spawned worker, whatever its step. A package lists its public names with the module that owns
each, and a name is imported when it is first used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def exports(package: str, modules: dict[str, list[str]]) -> tuple[list[str], Callable[[str], object]]:
    """`__all__` and `__getattr__` of `package`, whose public names are those of `modules`
    (owning module -> the names it defines)."""
    owners = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> object:
        if name not in owners:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(owners[name]), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    return list(owners), __getattr__
