"""Reason strings and counting.

A reason is `code` or `code:detail` (e.g. `near_duplicate:coco_000000000139`); counts are kept
per code so the detail never splits a count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from unimm.schema import Reject


def reason_code(reason: str) -> str:
    """`near_duplicate:coco_1` -> `near_duplicate`."""
    return reason.split(":", 1)[0]


def count_reasons(rejects: Iterable[Reject]) -> dict[str, int]:
    """Rejected dialogues per reason code (a dialogue with two codes counts under both), sorted."""
    c: Counter[str] = Counter()
    for r in rejects:
        c.update({reason_code(x) for x in r.reasons})
    return dict(sorted(c.items()))
