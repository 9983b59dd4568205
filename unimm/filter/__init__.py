"""Dialogue filters: structure, boilerplate/leakage, prompt echo and grounding against annotations.

`unimm.filter.judged.judge_and_filter` is the filter step's work on one partition (the pipeline's
`unimm filter` command then runs dedup and decontamination, see unimm.pipeline).
"""

from unimm.lazy import exports

_OWNERS = {
    "FilterConfig": "unimm.filter.config",
    "FilterResult": "unimm.filter.core",
    "chat_reasons": "unimm.filter.core",
    "filter_chats": "unimm.filter.core",
    "count_reasons": "unimm.filter.reasons",
    "reason_code": "unimm.filter.reasons",
}
__all__ = list(_OWNERS)
__getattr__ = exports(__name__, _OWNERS)
