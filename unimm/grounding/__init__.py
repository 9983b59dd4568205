"""Grounding: does a dialogue stay true to its image's annotations?

`ground_turns(turns, merged, cfg, verdicts)` runs every check on every assistant turn: object
hallucination (CHAIR-style), counts, existence and colours against the image's `Evidence`
(unimm.grounding.evidence), agreement with annotated QAs (unimm.grounding.qa; the rounds of human
dialogues count as annotated QAs), and the LLM judge's
verdicts when given (unimm.grounding.judge). It returns the `GroundingReport` stored on the Chat
and the reject reasons, so the filter stage and `unimm audit` decide alike.

Score = passed checks / checks (None when nothing was checkable); coverage = share of assistant
turns with at least one check; CHAIR-i = hallucinated / mentioned distinct objects (only objects
the annotations can decide count as mentioned); CHAIR-s = any hallucinated object.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from unimm.filter.config import FilterConfig
from unimm.filter.reasons import reason_code
from unimm.grounding.checks import Check, turn_checks
from unimm.grounding.claims import text_claims
from unimm.grounding.evidence import Evidence, build_evidence
from unimm.grounding.qa import qa_check
from unimm.grounding.reasons import BELOW_THRESHOLD, JUDGE_UNSUPPORTED, QA_CONTRADICTION, UNVERIFIABLE, reason
from unimm.grounding.vocab import Vocabulary, load_vocabulary
from unimm.placeholder import remove_placeholders
from unimm.schema import (
    Chat,
    GroundingReport,
    JudgeVerdict,
    MergedImage,
    Turn,
    TurnGrounding,
)

# Failed checks of these kinds reject the dialogue (when cfg.reject_hallucinations); a failed
# open-QA check only lowers the score, and hard QA contradictions follow reject_hard_contradictions.
RULE_KINDS = ("object", "count", "existence", "attribute")


@dataclass
class GroundingOutcome:
    """The report stored on the Chat and the reasons to reject it (empty: keep)."""

    report: GroundingReport
    reasons: list[str]


def _turn_pairs(turns: Sequence[Turn]) -> list[tuple[int, str, str]]:
    """(assistant turn index, preceding user text, assistant text) for every assistant turn."""
    out = []
    for i, t in enumerate(turns):
        if t.role == "assistant":
            prev = turns[i - 1].content if i > 0 and turns[i - 1].role == "user" else ""
            out.append((i, remove_placeholders(prev), t.content))
    return out


def _judge_check(v: JudgeVerdict) -> Check | None:
    if v.verdict == "not_checkable":
        return None
    ok = v.verdict == "supported"
    return Check("judge", ok, None if ok else reason(JUDGE_UNSUPPORTED, v.turn))


def image_evidence(
    merged: MergedImage, cfg: FilterConfig | None = None, focus: Collection[str] | None = None
) -> Evidence:
    """The `Evidence` of one image under `cfg`, to share between that image's dialogues; with
    `focus`, only as much as checks of those objects need (`build_evidence`)."""
    cfg = cfg or FilterConfig()
    vocab = load_vocabulary(cfg.vocabulary)
    return build_evidence(merged, vocab, absence_from_vg=cfg.absence_from_vg, focus=focus)


def named_objects(pairs: Sequence[tuple[int, str, str]], vocab: Vocabulary) -> set[str]:
    """Every object (canonical name) the questions and answers of `pairs` name, negated or not:
    the only ones `turn_checks` asks the evidence about."""
    return {c.canonical for _, q, a in pairs for text in (q, a) for c in text_claims(text, vocab)}


def ground_turns(
    turns: Sequence[Turn],
    merged: MergedImage | None,
    cfg: FilterConfig | None = None,
    verdicts: Sequence[JudgeVerdict] | None = None,
    *,
    evidence: Evidence | None = None,
    judge_fingerprint: str | None = None,
) -> GroundingOutcome:
    """Check every assistant turn of a dialogue against `merged` (None: only the judge applies).
    Pass `evidence` to reuse one `image_evidence` for several dialogues of one image, and the
    judge prompt's `judge_fingerprint` with its `verdicts`."""
    cfg = cfg or FilterConfig()
    vocab = load_vocabulary(cfg.vocabulary)
    pairs = _turn_pairs(turns)
    if merged is not None and evidence is None:
        evidence = image_evidence(merged, cfg, focus=named_objects(pairs, vocab))
    qas = evidence.qas if evidence is not None else []
    questions = evidence.questions if evidence is not None else []
    by_turn = {v.turn: v for v in verdicts or []}

    report_turns: list[TurnGrounding] = []
    mentioned: list[str] = []
    all_checks: list[Check] = []
    for idx, question, answer in pairs:
        checks: list[Check] = []
        asserted: list[str] = []
        if evidence is not None:
            rule, asserted = turn_checks(question, answer, evidence, vocab)
            checks += [c for c in rule if c.kind in cfg.grounding_checks]
            if "qa" in cfg.grounding_checks and (chk := qa_check(question, answer, qas, questions, cfg)):
                checks.append(chk)
        v = by_turn.get(idx)
        if v is not None and (chk := _judge_check(v)):
            checks.append(chk)
        decidable = [o for o in asserted if evidence is not None and evidence.decidable(o, vocab)]
        hallucinated = [o for o in decidable if o not in evidence.present] if evidence else []
        mentioned += [o for o in decidable if o not in mentioned]
        all_checks += checks
        report_turns.append(
            TurnGrounding(
                turn=idx,
                checks=list(dict.fromkeys(c.kind for c in checks)),
                failures=[c.reason for c in checks if c.reason],
                objects=asserted,
                hallucinated=hallucinated,
                judge=v.verdict if v else None,
                judge_reason=v.reason if v else None,
            )
        )

    hallucinated_all = sorted({o for t in report_turns for o in t.hallucinated})
    passed = sum(c.passed for c in all_checks)
    report = GroundingReport(
        score=passed / len(all_checks) if all_checks else None,
        coverage=sum(bool(t.checks) for t in report_turns) / len(report_turns) if report_turns else 0.0,
        checks=len(all_checks),
        passed=passed,
        mentioned=len(mentioned),
        hallucinated=len(hallucinated_all),
        chair_i=len(hallucinated_all) / len(mentioned) if mentioned else None,
        chair_s=bool(hallucinated_all) if mentioned else None,
        turns=report_turns,
        judge_fingerprint=judge_fingerprint,
    )
    return GroundingOutcome(report, _reasons(all_checks, report, cfg))


def _reasons(checks: list[Check], report: GroundingReport, cfg: FilterConfig) -> list[str]:
    out: list[str] = []
    for c in checks:
        if c.reason is None:
            continue
        hard = (
            (c.kind in RULE_KINDS and cfg.reject_hallucinations)
            or (c.kind == "judge" and cfg.reject_judge_unsupported)
            or (
                c.kind == "qa"
                and cfg.reject_hard_contradictions
                and reason_code(c.reason) == QA_CONTRADICTION
            )
        )
        if hard and c.reason not in out:
            out.append(c.reason)
    if report.score is not None and report.score < cfg.min_grounding:
        out.append(reason(BELOW_THRESHOLD, f"{report.score:.3f}"))
    if report.coverage < cfg.min_coverage:
        out.append(reason(UNVERIFIABLE, f"{report.coverage:.3f}"))
    return out


def ground_chat(
    chat: Chat,
    merged: MergedImage | None,
    cfg: FilterConfig | None = None,
    verdicts: Sequence[JudgeVerdict] | None = None,
    *,
    judge_fingerprint: str | None = None,
) -> GroundingOutcome:
    """`ground_turns` over a Chat's turns."""
    return ground_turns(chat.turns, merged, cfg, verdicts, judge_fingerprint=judge_fingerprint)


__all__ = ["GroundingOutcome", "ground_chat", "ground_turns", "image_evidence"]
