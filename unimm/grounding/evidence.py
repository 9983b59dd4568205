"""What the annotations of one image say about its objects: which are there, how many, what colour,
and when absence itself is known.

COCO instances are exhaustive for the 80 COCO categories (Rohrbach et al. 2018 build CHAIR on
that), so on an image with instances a COCO object that no annotation names is absent. Visual
Genome's dense objects and regions play the same role for the whole vocabulary when
`absence_from_vg` is on. Captions, regions, QA answers and rationales only ever add support.

The rounds of human dialogues (VisDial) are human answers about the image like VQA's: each
answered round is read as one more annotated QA (`dialog_qas`), its caption as one more caption.
A dialogue answer is free text ("no, it's dirt"), so a yes/no question takes the polarity the
answer opens with as its answer, and an answer that only says the answerer could not tell ("i
can't tell", "not sure") is no evidence at all.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field

from unimm.filter.normalize import answer_tokens, normalize_answer, normalize_text, polarity
from unimm.grounding.claims import Claim, colour_family, text_claims, text_colours, text_numbers
from unimm.grounding.vocab import Vocabulary, tokenize
from unimm.schema import Answer, MergedImage, MergedObject, MergedQA

_EXISTENCE_OPENERS = ("is there", "are there", "was there", "were there", "do you see", "can you see")
# Words a question answerable by yes or no opens with (VisDial's questions also say just "any cars").
_YES_NO_OPENER = re.compile(
    r"^(?:is|are|was|were|am|do|does|did|can|could|has|have|had|will|would|should|any)\b"
)
# Dialogue answers that only say the answerer could not tell, as normalize_text writes them.
_UNSURE = re.compile(
    r"\b(?:cant|cannot|can not|couldnt|hard to|difficult to) (?:tell|see|say|know)\b"
    r"|\b(?:not sure|unsure|no idea|dont know|do not know|unclear)\b"
)


@dataclass
class Evidence:
    """Object facts of one image, keyed by canonical vocabulary name."""

    present: set[str] = field(default_factory=set)
    absent_qa: set[str] = field(default_factory=set)  # an annotated yes/no says it is not there
    coco_exhaustive: bool = False
    vg_exhaustive: bool = False
    coco_counts: Counter[str] = field(default_factory=Counter)  # non-crowd instances
    crowd: set[str] = field(default_factory=set)  # categories with a crowd box (counts are lower bounds)
    vg_counts: dict[str, tuple[int, int]] = field(default_factory=dict)  # (distinct boxes, all boxes)
    text_counts: defaultdict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    colours: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    qas: list[MergedQA] = field(default_factory=list)  # the annotated QAs: merged.qas + dialog_qas
    questions: list[str] = field(default_factory=list)  # normalised questions of `qas`, in order

    def absent(self, canonical: str, vocab: Vocabulary) -> bool:
        """True when the annotations show `canonical` is not in the picture."""
        if canonical in self.present:
            return False
        if canonical in self.absent_qa:
            return True
        if not vocab.absence_decidable(canonical):
            return False
        return (self.coco_exhaustive and vocab.is_coco(canonical)) or self.vg_exhaustive

    def decidable(self, canonical: str, vocab: Vocabulary) -> bool:
        """Whether presence of `canonical` can be checked at all on this image."""
        return canonical in self.present or self.absent(canonical, vocab)


def _iou(a: list[float], b: list[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def distinct_boxes(boxes: list[list[float]], iou: float = 0.5) -> int:
    """Boxes left after greedily merging those overlapping at `iou` or more: VG annotators often
    box one object several times, so raw VG counts over-count."""
    kept: list[list[float]] = []
    for b in boxes:
        if all(_iou(b, k) < iou for k in kept):
            kept.append(b)
    return len(kept)


def object_canonicals(obj: MergedObject, vocab: Vocabulary) -> set[str]:
    """Canonical names of an annotated object: its names, then its synsets, then the nouns inside
    multi-word names ("white shirt" -> shirt)."""
    out: set[str] = set()
    for name in [obj.name, *obj.names]:
        c = vocab.canonical(name)
        if c:
            out.add(c)
        else:
            out.update(cl.canonical for cl in text_claims(name, vocab) if not cl.negated)
    for syn in obj.synsets:
        c = vocab.canonical_synset(syn)
        if c:
            out.add(c)
    return out


def _add_text(ev: Evidence, claims: list[Claim]) -> None:
    for cl in claims:
        if cl.negated:
            continue
        ev.present.add(cl.canonical)
        if cl.count is not None and cl.count_op == "eq":
            ev.text_counts[cl.canonical].add(cl.count)
        ev.colours[cl.canonical].update(cl.colours)


def _qa_answers(qa: MergedQA) -> list[str]:
    raw = [qa.answer] if qa.answer else []
    raw += [a.text for a in qa.answers]
    if qa.correct_choice is not None and 0 <= qa.correct_choice < len(qa.choices):
        raw.append(qa.choices[qa.correct_choice])
    return [r for r in raw if r]


def dialog_qas(merged: MergedImage) -> list[MergedQA]:
    """The answered rounds of the image's dialogues as annotated QAs (provenance: the dialogue's
    source ids + `#<round>`); a yes/no question's answer is the polarity its answer opens with
    (the full answer kept in `answers`); rounds whose answer only says "can't tell" are left out."""
    out: list[MergedQA] = []
    for d in merged.dialogs:
        for i, r in enumerate(d.rounds):
            if r.answer is None or _UNSURE.search(normalize_text(r.answer)):
                continue
            yes_no = _YES_NO_OPENER.match(normalize_text(r.question)) is not None
            pol = polarity(answer_tokens(r.answer)) if yes_no else None
            out.append(
                MergedQA(
                    sources=d.sources,
                    source_ids=[f"{sid}#{i}" for sid in d.source_ids],
                    question=r.question,
                    answer=pol or r.answer,
                    answers=[Answer(text=r.answer)],
                )
            )
    return out


def _add_qa(ev: Evidence, qa: MergedQA, vocab: Vocabulary) -> None:
    answers = _qa_answers(qa)
    q_claims = [c for c in text_claims(qa.question, vocab) if not c.negated]
    canon = normalize_answer(qa.answer) if qa.answer else ""
    q_norm = normalize_text(qa.question)
    ev.qas.append(qa)
    ev.questions.append(q_norm)
    if canon in ("yes", "no"):
        if canon == "yes":
            ev.present.update(c.canonical for c in q_claims)
        elif q_claims and q_norm.startswith(_EXISTENCE_OPENERS):
            ev.absent_qa.add(q_claims[0].canonical)
        return
    # An open question presupposes its object ("What colour is the cat?" -> there is a cat).
    ev.present.update(c.canonical for c in q_claims)
    for a in answers:
        _add_text(ev, text_claims(a, vocab))
    for r in qa.rationales:
        _add_text(ev, text_claims(r, vocab))
    if q_claims and q_norm.startswith("how many"):
        for a in answers:
            ev.text_counts[q_claims[0].canonical].update(text_numbers(a))
    if q_claims and ("color" in q_norm or "colour" in q_norm):
        for a in answers:
            ev.colours[q_claims[0].canonical].update(text_colours(a))


def build_evidence(
    merged: MergedImage,
    vocab: Vocabulary,
    *,
    absence_from_vg: bool = True,
    focus: Collection[str] | None = None,
) -> Evidence:
    """Everything the annotations of `merged` say about its objects; with `focus`, everything
    they say about those objects (canonical names), which is all a dialogue's checks ask.

    A focused Evidence answers exactly as the full one for the focus objects and may know less of
    the others. It reads only the captions and regions that contain a word naming a focus object
    (a region phrase that names none cannot support one), and box-counts only focus objects:
    ~50 region phrases an image are most of the cost of the full read."""
    ev = Evidence()
    triggers = vocab.trigger_words(focus) if focus is not None else None

    def read(text: str) -> None:
        if triggers is None or not triggers.isdisjoint(tokenize(text)):
            _add_text(ev, text_claims(text, vocab))

    vg_boxes: defaultdict[str, list[list[float]]] = defaultdict(list)
    for obj in merged.objects:
        canon = object_canonicals(obj, vocab)
        ev.present.update(canon)
        is_coco = "coco" in obj.sources
        if is_coco:
            ev.coco_exhaustive = True
            for c in canon:
                if obj.iscrowd:
                    ev.crowd.add(c)
                else:
                    ev.coco_counts[c] += 1
        if "vg" in obj.sources:
            ev.vg_exhaustive = absence_from_vg
            for c in canon:
                vg_boxes[c].append(obj.bbox or [0.0, 0.0, 0.0, 0.0])
                ev.colours[c].update(f for f in map(colour_family, obj.attributes) if f)
    for c, boxes in vg_boxes.items():
        if focus is None or c in focus:
            ev.vg_counts[c] = (distinct_boxes(boxes), len(boxes))
    for text in [*(c.text for c in merged.captions), *(d.caption for d in merged.dialogs)]:
        read(text)
    for reg in merged.regions:
        read(reg.text)
    if merged.regions:
        ev.vg_exhaustive = ev.vg_exhaustive or absence_from_vg
    # QAs (dialog rounds included) are read whole: an existence or "how many" question is about
    # its first object, which only the full reading of the question tells.
    for qa in [*merged.qas, *dialog_qas(merged)]:
        _add_qa(ev, qa, vocab)
    ev.absent_qa -= ev.present
    return ev
