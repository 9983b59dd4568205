"""The reason codes grounding gives a rejected dialogue (`code:detail`, see unimm.filter.reasons).

Each code is built here, so the checks and the reports agree on its spelling.
"""

from __future__ import annotations

HALLUCINATED_OBJECT = "hallucinated_object"  # hallucinated_object:giraffe
COUNT_MISMATCH = "count_mismatch"  # count_mismatch:bus:5!=2 (stated != annotated)
EXISTENCE_MISMATCH = "existence_mismatch"  # existence_mismatch:dog:yes!=no
ATTRIBUTE_MISMATCH = "attribute_mismatch"  # attribute_mismatch:bus:red
QA_CONTRADICTION = "grounding_contradiction"  # grounding_contradiction:yesno|count
QA_MISMATCH = "qa_mismatch"  # qa_mismatch:open (lowers the score only)
JUDGE_UNSUPPORTED = "judge_unsupported"  # judge_unsupported:<turn index>
BELOW_THRESHOLD = "grounding_below_threshold"  # grounding_below_threshold:0.333
UNVERIFIABLE = "unverifiable"  # unverifiable:0.250 (coverage below filter.min_coverage)

GROUNDING_REASON_CODES = frozenset(
    {
        HALLUCINATED_OBJECT,
        COUNT_MISMATCH,
        EXISTENCE_MISMATCH,
        ATTRIBUTE_MISMATCH,
        QA_CONTRADICTION,
        JUDGE_UNSUPPORTED,
        BELOW_THRESHOLD,
        UNVERIFIABLE,
    }
)


def reason(code: str, *details: object) -> str:
    """`reason("count_mismatch", "bus", "5!=2")` -> `count_mismatch:bus:5!=2`."""
    return ":".join([code, *(str(d) for d in details)])
