"""Dialogue filters: structure, boilerplate/leakage, prompt echo and grounding against annotations.

The whole stage (filters -> dedup -> decontamination) is `unimm.filter.pipeline.run_filter_stage`;
reject Parquet helpers are in `unimm.filter.tables`.
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
