"""Dialogue filters: structure, boilerplate/leakage, prompt echo and grounding against annotations.

`unimm.filter.judged.judge_and_filter` is the filter step's work on one partition (the pipeline's
`unimm filter` command then runs dedup and decontamination, see unimm.pipeline).
"""

from unimm.filter.config import FilterConfig
from unimm.filter.core import FilterResult, chat_reasons, filter_chats
from unimm.filter.reasons import count_reasons, reason_code

__all__ = [
    "FilterConfig",
    "FilterResult",
    "chat_reasons",
    "count_reasons",
    "filter_chats",
    "reason_code",
]
