"""Render one MergedImage as the annotation text the LLM reads, within a token budget.

What gets cut when the record is too long is fixed and deterministic: objects first, then
regions, then dialogues (each whole), then question/answer pairs (each with its rationales), then
captions (one caption is always kept); within a kind the last items go first, so the record's
own order is its priority.

A dialogue (VisDial) is one item: the caption its questioner saw, then its answered rounds in
order (a round whose answer was withheld, the last of a VisDial test dialog, says nothing).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from unimm.schema import MergedDialog, MergedImage, MergedQA

# Bumped whenever the rendered text changes shape; part of the prompt fingerprint.
RENDER_VERSION = "render-2"
# Removal order under a tight budget: lowest priority first.
CUT_ORDER: tuple[str, ...] = ("objects", "regions", "dialogs", "qas", "captions")
# Section order of the rendered text.
SECTIONS: tuple[str, ...] = ("captions", "qas", "dialogs", "regions", "objects")
# No tokenizer is available for every model (vLLM serves any), so budgets use a model-free
# estimate: English text averages about 4 characters per token for Llama/SmolLM-class BPEs.
CHARS_PER_TOKEN = 4.0


def estimate_tokens(text: str) -> int:
    """Model-free token estimate used for budgets and `unimm estimate` (deterministic)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0


def box_xyxy(bbox: list[float] | None) -> list[float] | None:
    """Normalised [x, y, w, h] -> [x1, y1, x2, y2] clamped to [0, 1], rounded to 2 decimals."""
    if bbox is None or len(bbox) != 4:
        return None
    x, y, w, h = bbox
    return [round(min(max(v, 0.0), 1.0), 2) for v in (x, y, x + w, y + h)]


def format_box(bbox: list[float] | None) -> str:
    """`[0.12, 0.30, 0.50, 0.77]` (always two decimals), or empty when there is no box."""
    xyxy = box_xyxy(bbox)
    return "[" + ", ".join(f"{v:.2f}" for v in xyxy) + "]" if xyxy else ""


def consensus_answer(qa: MergedQA) -> str | None:
    """The canonical answer: the record's own, else the correct choice, else the most given one."""
    if qa.answer:
        return qa.answer
    if qa.correct_choice is not None and 0 <= qa.correct_choice < len(qa.choices):
        return qa.choices[qa.correct_choice]
    if qa.answers:
        counts = Counter(a.text for a in qa.answers if a.text)
        if counts:
            # most_common keeps first-seen order on ties: deterministic.
            return counts.most_common(1)[0][0]
    return None


def _qa_line(qa: MergedQA) -> str | None:
    answer = consensus_answer(qa)
    if answer is None:
        return None
    others = sorted({a.text for a in qa.answers if a.text and a.text != answer})
    line = f"- Q: {qa.question} A: {answer}"
    if others:
        line += f" (other answers: {', '.join(others[:4])})"
    for r in qa.rationales:
        line += f"\n  Because: {r}"
    return line


def _dialog_item(dialog: MergedDialog) -> str:
    lines = [f"- Caption shown to the asker: {dialog.caption}"]
    lines += [f"  Q: {r.question} A: {r.answer}" for r in dialog.rounds if r.answer is not None]
    return "\n".join(lines)


@dataclass(frozen=True)
class Rendered:
    """The rendered annotation text plus what the budget removed (per kind)."""

    text: str
    tokens: int
    dropped: dict[str, int]


def _section_items(record: MergedImage) -> dict[str, list[str]]:
    qas = [line for line in (_qa_line(q) for q in record.qas) if line]
    regions = [f'- "{r.text}" {format_box(r.bbox)}'.rstrip() for r in record.regions]
    # Visual Genome repeats names (ten "window" objects); keep each (name, box) once.
    objects = list(dict.fromkeys(f"- {o.name} {format_box(o.bbox)}".rstrip() for o in record.objects))
    return {
        "captions": [f"- {c.text}" for c in record.captions],
        "qas": qas,
        "dialogs": [_dialog_item(d) for d in record.dialogs],
        "regions": regions,
        "objects": objects,
    }


_HEADINGS = {
    "captions": "Captions:",
    "qas": "Questions people asked, with the agreed answer:",
    "dialogs": "Conversations in which one person asked about the image and another, looking at it, answered:",
    "regions": "Regions [x1, y1, x2, y2]:",
    "objects": "Objects [x1, y1, x2, y2]:",
}


def render_record(record: MergedImage, budget: int | None) -> Rendered:
    """The annotation text for `record`; with a budget, cut by CUT_ORDER until it fits."""
    items = _section_items(record)
    header = f"Image size: {record.width}x{record.height}" if record.width and record.height else ""
    dropped = dict.fromkeys(CUT_ORDER, 0)

    def cost(lines: list[str]) -> int:
        return sum(estimate_tokens(line) + 1 for line in lines)

    # Per-line costs are summed rather than re-rendering the whole text after every cut.
    total = estimate_tokens(header) + sum(cost(v) + 8 for v in items.values() if v)
    if budget is not None:
        for kind in CUT_ORDER:
            keep_min = 1 if kind == "captions" else 0
            while total > budget and len(items[kind]) > keep_min:
                line = items[kind].pop()
                total -= estimate_tokens(line) + 1 + (8 if not items[kind] else 0)
                dropped[kind] += 1
            if total <= budget:
                break
    parts = [header] if header else []
    for kind in SECTIONS:
        if items[kind]:
            parts.append(_HEADINGS[kind] + "\n" + "\n".join(items[kind]))
    text = "\n\n".join(parts)
    return Rendered(text=text, tokens=estimate_tokens(text), dropped=dropped)
