"""`unimm audit`: unimm's grounding checks on a corpus unimm did not write (LLaVA instruction JSON,
the UniMM-Chat release) or on unimm's own shards, against the annotations of a data root."""

from __future__ import annotations

from unimm.audit.readers import AuditDialogue, detect_format, read_corpus
from unimm.audit.run import AuditOptions, AuditResult, AuditSummary, run_audit

__all__ = [
    "AuditDialogue",
    "AuditOptions",
    "AuditResult",
    "AuditSummary",
    "detect_format",
    "read_corpus",
    "run_audit",
]
