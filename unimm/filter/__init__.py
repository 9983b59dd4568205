"""Dialogue filters: structure, boilerplate/leakage, prompt echo and grounding against annotations.

`unimm.filter.judged.judge_and_filter` is the filter step's work on one partition (the pipeline's
`unimm filter` command then runs dedup and decontamination, see unimm.pipeline).
"""

from unimm.lazy import exports

__all__, __getattr__ = exports(
    __name__,
    {
        "unimm.filter.config": ["FilterConfig"],
        "unimm.filter.core": ["FilterResult", "chat_reasons", "filter_chats"],
        "unimm.filter.reasons": ["count_reasons", "reason_code"],
    },
)
