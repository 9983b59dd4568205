"""When Python's cycle collector runs during bulk work.

A unit of work builds millions of small objects that live until it ends (a partition's records,
dialogues, claims). The collector's default thresholds make it walk them again and again, and a
full collection is triggered each time the surviving objects grow by a quarter: parsing one
partition's records (8M objects) took 6.7 CPU-s with the default thresholds, 3.5 with rare
collections, and 2.7 with none at all."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def rare_collections() -> Iterator[None]:
    """The cycle collector 100x less often while a unit runs; cycles are still collected, later.
    When the unit ends, what it leaves alive (what `bulk_parse` froze, and the records and
    dialogues it hands to the next step of its chain) goes to the oldest generation at once:
    left in the younger ones, the first collection after the unit walked them all (~0.3 s of a
    ~7 CPU-s template chain of one partition)."""
    before = gc.get_threshold()
    gc.set_threshold(100_000, 50, 1000)
    try:
        yield
    finally:
        gc.freeze()  # then unfreeze: every object of every generation moves to the oldest
        gc.unfreeze()
        gc.set_threshold(*before)


@contextlib.contextmanager
def bulk_parse() -> Iterator[None]:
    """A bulk parse whose objects hold no reference cycles (pydantic models validated from JSON or
    rows) and live on: no collection while it runs, and its objects are then frozen (`gc.freeze`)
    instead of being walked by the next collections. They are still freed by reference counting;
    `rare_collections` unfreezes whatever is left when the unit ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
