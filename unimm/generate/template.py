"""The `template` backend: no LLM, a deterministic LLaVA-1.5-style reformatting of one record.

A caption answers a describe request (the prompt rotates through a fixed list, chosen from the
key's hash), the answered rounds of the image's human dialogues (VisDial) follow as they were
held, in order (first letters capitalised, nothing else changed: they already are a multi-turn
chat), each VQA pair becomes a short-answer turn, and each region with a box becomes a
region-description turn. An image without captions is described by a dialogue's caption. It is
the baseline and the fast path for tests.
"""

from __future__ import annotations

import hashlib
import itertools

from unimm.generate.prompts import canonical_json
from unimm.generate.render import consensus_answer, format_box
from unimm.schema import DialogueResponse, MergedImage

TEMPLATE_VERSION = "template-2"
SHORT_ANSWER = "Answer the question using a single word or phrase."
REGION_PROMPT = "Please provide a short description for this region: {box}"
# The brief-description prompts of LLaVA-1.5's instruction mix.
DESCRIBE_PROMPTS: tuple[str, ...] = (
    "Describe the image concisely.",
    "Provide a brief description of the given image.",
    "Offer a succinct explanation of the picture presented.",
    "Summarize the visual content of the image.",
    "Give a short and clear explanation of the subsequent image.",
    "Share a concise interpretation of the image provided.",
    "Present a compact description of the photo's key features.",
    "Relay a brief, clear account of the picture shown.",
    "Render a clear and concise summary of the photo.",
    "Write a terse but informative summary of the picture.",
    "Create a compact narrative representing the image presented.",
)


def template_fingerprint() -> str:
    """Identifies the template wording; stored like an LLM prompt fingerprint."""
    payload = canonical_json([TEMPLATE_VERSION, SHORT_ANSWER, REGION_PROMPT, list(DESCRIBE_PROMPTS)])
    return hashlib.sha256(payload.encode()).hexdigest()


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def template_dialogue(record: MergedImage, max_turns: int) -> DialogueResponse | None:
    """The template dialogue of `record`, or None when it has nothing to ask about.

    Over `max_turns`, regions are cut first, then QA pairs, then the dialogue rounds from the
    last; the caption turn always stays.
    """
    h = _key_hash(record.image_key)
    describe: list[dict[str, str]] = []
    captions = [c.text for c in record.captions] or [_sentence(d.caption) for d in record.dialogs]
    if captions:
        caption = captions[h % len(captions)]
        prompt = DESCRIBE_PROMPTS[(h >> 16) % len(DESCRIBE_PROMPTS)]
        describe.append({"question": prompt, "answer": caption})
    room = max_turns - len(describe)
    rounds = (r for d in record.dialogs for r in d.rounds if r.answer)
    conversation = [
        {"question": _sentence(r.question), "answer": _sentence(r.answer or "")}
        for r in itertools.islice(rounds, max(room, 0))
    ]
    room -= len(conversation)
    # Only the turns that fit are built: a VG image has hundreds of regions, a dialogue a few.
    answered = ((qa, consensus_answer(qa)) for qa in record.qas)
    qas = [
        {"question": f"{qa.question}\n{SHORT_ANSWER}", "answer": answer}
        for qa, answer in itertools.islice(((q, a) for q, a in answered if a), max(room, 0))
    ]
    boxed = ((r, format_box(r.bbox)) for r in record.regions)
    regions = [
        {"question": REGION_PROMPT.format(box=box), "answer": r.text}
        for r, box in itertools.islice(((r, b) for r, b in boxed if b), max(room - len(qas), 0))
    ]
    turns = describe + conversation + qas + regions
    # validated as one tree (as an LLM's answer is), not turn by turn
    return DialogueResponse.model_validate({"turns": turns}) if turns else None
