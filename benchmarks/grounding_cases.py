"""Labelled dialogues for the grounding benchmark, built from the real annotation excerpts.

The COCO-MINI train2017 captions + instances (80 images) and the Visual Genome excerpt (5 images)
in `../shared/realdata/` are ingested and merged with unimm's own library. For each merged image
we write *clean* dialogues that state only facts the annotations support, and *corrupted* copies
that carry exactly one false fact of a known kind:

- `object`: an object the image does not contain is inserted ("Right next to the bus there is a giraffe.");
- `count`: a COCO count is changed (+1..+3, or -1 when above 1);
- `existence`: a yes/no answer is flipped (yes for an absent category, no for a present one);
- `colour`: a Visual Genome object's colour is changed (VG images only).

Each kind is phrased with several templates (number words and digits, plurals, synonyms, different
positions) so a checker cannot pass by matching one sentence shape. The truth comes from the
merged record; the surface words (synonyms, plurals) are this module's own table, written
independently of `unimm.grounding.vocab`, so the benchmark does not grade the vocabulary against
itself. Everything is deterministic: one `random.Random(seed)` drives every choice.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from unimm.schema import MergedImage, MergedObject, Turn

REPO = Path(__file__).resolve().parent.parent
REALDATA = REPO.parent / "shared" / "realdata"
KINDS = ("object", "count", "existence", "colour")

# --- surface forms ------------------------------------------------------------------------------

# COCO category -> natural names a dialogue may use for it (first = the plain form).
SYNONYMS: dict[str, list[str]] = {
    "person": ["person", "man", "woman", "people"],
    "bicycle": ["bicycle", "bike"],
    "motorcycle": ["motorcycle", "motorbike"],
    "airplane": ["airplane", "plane", "jet"],
    "boat": ["boat", "ship"],
    "fire hydrant": ["fire hydrant", "hydrant"],
    "cat": ["cat", "kitten"],
    "dog": ["dog", "puppy"],
    "handbag": ["handbag", "purse"],
    "tie": ["tie", "necktie"],
    "suitcase": ["suitcase", "luggage bag"],
    "sports ball": ["ball"],
    "baseball glove": ["baseball glove", "baseball mitt"],
    "tennis racket": ["tennis racket", "racket"],
    "wine glass": ["wine glass"],
    "cup": ["cup", "mug"],
    "donut": ["donut", "doughnut"],
    "couch": ["couch", "sofa"],
    "potted plant": ["potted plant", "houseplant"],
    "dining table": ["dining table", "table"],
    "tv": ["tv", "television"],
    "remote": ["remote", "remote control"],
    "cell phone": ["cell phone", "phone", "mobile phone"],
    "refrigerator": ["refrigerator", "fridge"],
    "hair drier": ["hair drier", "hair dryer"],
    "teddy bear": ["teddy bear"],
}
# Extra words that mean a category is mentioned in the annotations' text (for choosing objects
# that are really absent: broader than SYNONYMS on purpose, a false "absent" would mislabel a case).
MENTION_WORDS: dict[str, list[str]] = {
    "person": [
        "men",
        "women",
        "boy",
        "girl",
        "child",
        "children",
        "kid",
        "player",
        "guy",
        "lady",
        "skier",
        "surfer",
        "skateboarder",
        "rider",
        "someone",
        "crowd",
        "baby",
        "adult",
        "chef",
        "people",
    ],  # fmt: skip
    "car": ["van", "taxi", "suv", "vehicle"],
    "truck": ["pickup", "lorry"],
    "bus": ["coach"],
    "dining table": ["desk", "table"],
    "laptop": ["computer", "notebook"],
    "tv": ["monitor", "screen", "television"],
    "cell phone": ["telephone", "phone", "smartphone"],
    "cow": ["cattle", "bull", "calf", "ox"],
    "sheep": ["lamb", "goat"],
    "bird": ["pigeon", "duck", "goose", "seagull", "gull", "parrot", "swan", "chicken"],
    "couch": ["futon", "loveseat"],
    "cup": ["glass", "mug"],
    "wine glass": ["glass"],
    "bowl": ["dish"],
    "donut": ["pastry"],
    "cake": ["dessert", "cupcake"],
    "teddy bear": ["stuffed animal", "toy", "doll"],
    "sports ball": ["soccer", "football", "baseball", "tennis", "basketball"],
    "chair": ["seat", "stool", "seats"],
    "bench": ["seat"],
}
# Categories left out of counts and of inserted / asked objects: pair and mass nouns read
# awkwardly with numbers ("three skis"), so any verdict on them would measure grammar, not grounding.
NOT_COUNTABLE = frozenset({"skis", "scissors", "broccoli"})
IRREGULAR_PLURAL = {
    "person": "people",
    "man": "men",
    "woman": "women",
    "mouse": "mice",
    "knife": "knives",
    "sheep": "sheep",
    "skis": "skis",
    "scissors": "scissors",
    "broccoli": "broccoli",
}
NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
]
COLOURS = ("white", "black", "red", "green", "blue", "yellow", "brown", "gray", "orange", "pink", "purple")
# Colours too close to call wrong: a checker need not reject "gray" for a silver object.
CLOSE_COLOURS: dict[str, set[str]] = {
    "gray": {"grey", "silver", "white", "black"},
    "grey": {"gray", "silver", "white", "black"},
    "silver": {"gray", "grey", "white"},
    "brown": {"tan", "beige", "orange", "red", "wooden", "wood", "cream"},
    "tan": {"brown", "beige", "cream", "yellow"},
    "beige": {"brown", "tan", "cream", "white"},
    "cream": {"white", "beige", "tan", "yellow"},
    "white": {"cream", "gray", "grey", "silver", "beige"},
    "black": {"gray", "grey", "dark"},
    "red": {"orange", "pink", "brown", "maroon"},
    "orange": {"red", "yellow", "brown"},
    "yellow": {"orange", "gold", "tan", "cream"},
    "purple": {"blue", "pink", "violet"},
    "blue": {"purple", "navy"},
    "pink": {"red", "purple"},
    "green": set(),
}
COLOUR_WORDS = frozenset({*COLOURS, "grey", "silver", "tan", "beige", "cream", "gold", "maroon", "navy"})


def plural(noun: str) -> str:
    """English plural of a (possibly multi-word) noun: only the last word changes."""
    head, _, last = noun.rpartition(" ")
    if last in IRREGULAR_PLURAL:
        out = IRREGULAR_PLURAL[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        out = last + "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        out = last[:-1] + "ies"
    else:
        out = last + "s"
    return f"{head} {out}" if head else out


def article(noun: str) -> str:
    """`a dog` / `an elephant`."""
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def number(n: int, digits: bool) -> str:
    """A count as a word (up to twenty) or in digits."""
    return str(n) if digits or n >= len(NUMBER_WORDS) else NUMBER_WORDS[n]


def counted(n: int, noun: str, digits: bool) -> str:
    """`one dog`, `three dogs`, `12 dogs`."""
    return f"{number(n, digits)} {noun if n == 1 else plural(noun)}"


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# --- facts from the merged record ---------------------------------------------------------------


@dataclass
class ImageFacts:
    """What the merged record supports, read once per image."""

    image_key: str
    source: str  # "coco" or "vg"
    counts: dict[str, int]  # COCO category -> non-crowd boxes
    crowd: set[str]  # COCO categories with a crowd box (their count is only a lower bound)
    vg_names: Counter[str]  # VG object name -> objects
    colours: dict[str, set[str]]  # VG object name -> colour attributes of any object of that name
    captions: list[str]
    text: str  # every annotation text, lower-cased, for "is this mentioned anywhere?"
    person_word: str  # how the captions call a lone person (man/woman/...), else "person"

    @property
    def present(self) -> list[str]:
        """Categories (COCO) or plain singular object names (VG) the image is annotated with, sorted."""
        if self.source == "coco":
            return sorted(set(self.counts) | self.crowd)
        return sorted(n for n in self.vg_names if plain_singular(n))


def plain_singular(name: str) -> bool:
    """A VG name a template can use as a singular noun: one or two plain words, not a plural
    ("pants", "trees") and not a meta word ("color")."""
    if not re.fullmatch(r"[a-z]+( [a-z]+)?", name) or name in ("color", "colour"):
        return False
    return not name.endswith("s") or name.endswith(("ss", "us"))


def mentioned(category: str, text: str) -> bool:
    """Whether `category` (or a synonym / related word, singular or plural) occurs in `text`."""
    words = {category, *SYNONYMS.get(category, []), *MENTION_WORDS.get(category, [])}
    return any(re.search(rf"\b{re.escape(w)}(?:s|es)?\b", text) for w in words | {plural(w) for w in words})


def _person_word(captions: list[str]) -> str:
    low = " ".join(captions).lower()
    for w in ("woman", "man", "boy", "girl"):
        if re.search(rf"\b(?:a|an|one) {w}\b", low):
            return w
    return "person"


def image_facts(m: MergedImage) -> ImageFacts:
    """The facts a clean dialogue about `m` may state."""
    coco = [o for o in m.objects if "coco" in o.sources]
    vg = [o for o in m.objects if "vg" in o.sources and "coco" not in o.sources]
    counts = Counter(o.name for o in coco if not o.iscrowd)
    crowd = {o.name for o in coco if o.iscrowd}
    colours: dict[str, set[str]] = {}
    for o in vg:
        colours.setdefault(o.name, set()).update(a for a in o.attributes if a in COLOUR_WORDS)
    texts = [c.text for c in m.captions] + [r.text for r in m.regions]
    for q in m.qas:
        texts += [q.question, q.answer or "", *(a.text for a in q.answers)]
    for o in m.objects:
        texts += [o.name, *o.names, *o.attributes]
    captions = [c.text.strip() for c in m.captions]
    return ImageFacts(
        image_key=m.image_key,
        source="coco" if coco or m.image_key.startswith("coco") else "vg",
        counts=dict(counts),
        crowd=crowd,
        vg_names=Counter(o.name for o in vg),
        colours={k: v for k, v in colours.items() if v},
        captions=captions,
        text=" ".join(texts).lower(),
        person_word=_person_word(captions),
    )


# --- cases --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corruption:
    """The one false fact of a corrupted dialogue."""

    kind: str  # object | count | existence | colour
    obj: str  # COCO category or VG object name the false fact is about
    surface: str  # the word the dialogue uses for it (a synonym or plural)
    fact: str  # e.g. "inserted giraffe", "bus: 2 -> 4", "dog: absent -> yes", "clock: green -> red"
    turn: int  # index in `turns` of the assistant turn carrying it


@dataclass
class Case:
    """One labelled dialogue."""

    case_id: str
    image_key: str
    source: str
    turns: list[Turn]
    corruption: Corruption | None = None
    templates: list[str] = field(default_factory=list)  # template id of each assistant turn
    claims: list[tuple[str, str] | None] = field(default_factory=list)  # fact stated by each assistant turn

    @property
    def kind(self) -> str:
        return self.corruption.kind if self.corruption else "clean"


class Pair(NamedTuple):
    """A QA pair under construction, with the template it came from and the fact it states
    ((object, value): value is a count, ">=N", "many", "yes", "no", a colour or "present")."""

    q: str
    a: str
    template: str
    claim: tuple[str, str] | None = None


NEUTRAL: list[tuple[str, str]] = [
    ("What is the overall mood of this picture?", "The mood feels calm and ordinary."),
    ("Would this make a good photograph for a magazine?", "It could, the composition is clear enough."),
    ("How would you describe the lighting?", "The lighting looks natural and even."),
    ("Is this a posed or a candid shot?", "It looks like a candid moment rather than a posed one."),
    ("What feeling does the photo give you?", "It gives an everyday, relaxed feeling."),
    ("Is the photo sharp?", "Yes, most of it looks reasonably sharp."),
]
DESCRIBE_Q = [
    "What do you see in this picture?",
    "Can you describe the image?",
    "What is in this photo?",
    "Tell me what the picture contains.",
]
DESCRIBE_A = ["The picture shows {L}.", "I can see {L}.", "This photo contains {L}.", "Here we have {L}."]


def surface(category: str, rng: random.Random, facts: ImageFacts | None = None) -> str:
    """A natural name for a category: the plain name or a synonym; for one person, the captions' word."""
    if category == "person":
        return facts.person_word if facts else "person"
    return rng.choice(SYNONYMS.get(category, [category]))


def mention_phrase(category: str, facts: ImageFacts, rng: random.Random) -> str:
    """How a clean description names a present object, true to its count."""
    if facts.source == "vg":
        n = facts.vg_names[category]
        return article(category) if n == 1 else f"some {plural(category)}"
    if category in facts.crowd:
        noun = "people" if category == "person" else plural(surface(category, rng))
        return f"{rng.choice(['many', 'lots of', 'a crowd of'] if category == 'person' else ['many', 'lots of'])} {noun}"
    n = facts.counts[category]
    if category == "person":
        return article(facts.person_word) if n == 1 else counted(n, "person", rng.random() < 0.3)
    name = surface(category, rng)
    if category in NOT_COUNTABLE:
        return {"skis": "a pair of skis", "scissors": "a pair of scissors"}.get(category, f"some {name}")
    return article(name) if n == 1 else counted(n, name, rng.random() < 0.3)


def join_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def describe_pair(facts: ImageFacts, rng: random.Random, avoid: str | None = None, k: int = 3) -> Pair:
    """A clean description of up to `k` present objects other than `avoid` (when others exist)."""
    pool = [c for c in facts.present if c != avoid] or facts.present
    objs = rng.sample(pool, min(k, len(pool)))
    q = rng.choice(DESCRIBE_Q)
    a = rng.choice(DESCRIBE_A).format(L=join_list([mention_phrase(c, facts, rng) for c in objs]))
    return Pair(q, a, "describe")


def caption_pair(facts: ImageFacts, rng: random.Random) -> Pair | None:
    """An annotated caption, restated: supported by definition."""
    if not facts.captions:
        return None
    c = rng.choice(facts.captions).strip().rstrip(".").lower()
    return Pair("Summarise the scene in one sentence.", cap(c) + ".", "caption")


# Count templates: (question, answer with {N} = count phrase, {n} = bare number), id.
COUNT_T: list[tuple[str, str, str]] = [
    ("How many {P} are there?", "There {be} {N}.", "count:there_are"),
    ("How many {P} can you see?", "I can see {N} in the picture.", "count:i_see"),
    ("Count the {P} in the photo.", "{N}.", "count:bare_phrase"),
    ("How many {P} are in the image?", "{n}.", "count:digits_only"),
    ("What can you tell me about the {P}?", "The image shows exactly {N}.", "count:exactly"),
    ("How many {P} does the picture show?", "In total, {N} {appear} in the scene.", "count:in_total"),
]


def count_name(category: str, rng: random.Random) -> str:
    """The word a count uses for a category ("person" pluralises to "people")."""
    return "person" if category == "person" else surface(category, rng)


def count_pair(
    category: str, n: int, rng: random.Random, t: int | None = None, name: str | None = None
) -> Pair:
    """A count statement `n` (true or not) about `category` called `name`, in template `t`
    (random if None)."""
    name = name or count_name(category, rng)
    q_t, a_t, tid = COUNT_T[rng.randrange(len(COUNT_T)) if t is None else t % len(COUNT_T)]
    digits = tid == "count:digits_only" or rng.random() < 0.35
    phrase = counted(n, name, digits)
    a = a_t.format(N=phrase, n=str(n), be="is" if n == 1 else "are", appear="appears" if n == 1 else "appear")
    return Pair(q_t.format(P=plural(name)), cap(a), tid, (category, str(n)))


def crowd_count_pair(category: str, facts: ImageFacts, rng: random.Random) -> Pair:
    """A true count for a category with a crowd box: a lower bound or a vague quantity."""
    noun = "people" if category == "person" else plural(surface(category, rng))
    n = facts.counts.get(category, 0)
    q = f"How many {noun} are there?"
    if n >= 2 and rng.random() < 0.6:
        a = f"There are at least {number(n, rng.random() < 0.5)} {noun}."
        return Pair(q, a, "count:at_least", (category, f">={n}"))
    a = f"There are {rng.choice(['many', 'several', 'lots of'])} {noun}."
    return Pair(q, a, "count:vague", (category, "many"))


EXIST_Q = [
    "Is there {a} in the image?",
    "Can you see any {P}?",
    "Does the photo contain {a}?",
    "Are there any {P} here?",
    "Do you notice {a} anywhere in the scene?",
]
EXIST_YES = [
    ("Yes, there is {a} in the image.", "exist:yes_there_is"),
    ("Yes, I can see {a}.", "exist:yes_i_see"),
    ("Yes.", "exist:yes_bare"),
    ("Yes, {a} is visible.", "exist:yes_visible"),
    ("I do, there is {a} in the picture.", "exist:i_do"),
]
EXIST_NO = [
    ("No, there is no {s} in the image.", "exist:no_there_is_no"),
    ("No, I don't see any {P}.", "exist:no_dont_see"),
    ("No.", "exist:no_bare"),
    ("There isn't {a} in this picture.", "exist:isnt"),
    ("No {P} can be seen here.", "exist:none_seen"),
]


def existence_pair(category: str, name: str, yes: bool, rng: random.Random) -> Pair:
    """A yes/no existence question about `category`, called `name`, and a yes or no answer."""
    fill = {"a": article(name), "P": plural(name), "s": name}
    a_t, tid = rng.choice(EXIST_YES if yes else EXIST_NO)
    return Pair(
        rng.choice(EXIST_Q).format(**fill), a_t.format(**fill), tid, (category, "yes" if yes else "no")
    )


COLOUR_T: list[tuple[str, str, str]] = [
    ("What color is the {o}?", "The {o} is {c}.", "colour:is"),
    ("What colour is the {o}?", "{C}.", "colour:bare"),
    ("Tell me about the {o}.", "There is {ac} {o} in the image.", "colour:adjective"),
    ("What does the {o} look like?", "The {o} looks {c}.", "colour:looks"),
    ("Which colours stand out?", "The {o} stands out because it is {c}.", "colour:stands_out"),
    ("Anything else worth noting?", "{AC} {o} is also visible.", "colour:also_visible"),
]


def colour_pair(obj: str, colour: str, rng: random.Random) -> Pair:
    q_t, a_t, tid = rng.choice(COLOUR_T)
    fill = {"o": obj, "c": colour, "C": cap(colour), "ac": article(colour), "AC": cap(article(colour))}
    return Pair(q_t.format(**fill), a_t.format(**fill), tid, (obj, colour))


OBJECT_T = [
    "Right next to the {Y} there is {aX}.",
    "{AX} is visible in the background.",
    "Two {Xs} stand beside the {Y}.",
    "On the left side you can also see some {Xs}.",
    "The {Y} is right next to {aX}.",
    "Besides the {Y}, the scene also includes {aX}.",
    "There is {aX} near the {Y}, which is a little unexpected.",
]
OBJECT_Q = ["What else is in the picture?", "Is there anything unusual?", "What is near the {Y}?"]


def absent_categories(facts: ImageFacts, categories: list[str]) -> list[str]:
    """COCO categories neither annotated nor mentioned anywhere in the record's text."""
    return [
        c
        for c in categories
        if c not in facts.counts
        and c not in facts.crowd
        and c not in NOT_COUNTABLE
        and c != "person"
        and not mentioned(c, facts.text)
    ]


def colour_facts(facts: ImageFacts) -> list[tuple[str, set[str]]]:
    """VG object names with colour attributes that a sentence can name plainly (one word, no digits)."""
    return [(o, cs) for o, cs in sorted(facts.colours.items()) if plain_singular(o)]


def wrong_colour(true: set[str], facts: ImageFacts, obj: str, rng: random.Random) -> str | None:
    """A basic colour clearly unlike every colour the annotations give `obj` (also in region text)."""
    near = set(true)
    for c in true:
        near |= CLOSE_COLOURS.get(c, set())
    for r in re.findall(rf"(\w+) {re.escape(obj)}\b", facts.text):
        near.add(r)  # a region saying "red car" supports red even without the attribute
    options = [c for c in COLOURS if c not in near]
    return rng.choice(options) if options else None


def _case(case_id: str, facts: ImageFacts, pairs: list[Pair], corruption: Corruption | None) -> Case:
    turns: list[Turn] = []
    for p in pairs:
        turns += [Turn(role="user", content=p.q), Turn(role="assistant", content=p.a)]
    templates = [p.template for p in pairs]
    return Case(
        case_id, facts.image_key, facts.source, turns, corruption, templates, [p.claim for p in pairs]
    )


class CaseBuilder:
    """Builds every case of one image; `rng` is shared so the whole set follows one seed."""

    def __init__(self, facts: ImageFacts, categories: list[str], rng: random.Random) -> None:
        self.f = facts
        self.rng = rng
        self.absent = absent_categories(facts, categories)
        self.countable = sorted(c for c in facts.counts if c not in facts.crowd and c not in NOT_COUNTABLE)

    def base(self, avoid: str | None = None) -> list[Pair]:
        """Clean turns any dialogue starts from: a description, maybe a caption, a neutral turn."""
        f, rng = self.f, self.rng
        pairs = [describe_pair(f, rng, avoid)]
        cap_pair = caption_pair(f, rng)
        if cap_pair and rng.random() < 0.5 and (avoid is None or not mentioned(avoid, cap_pair.a.lower())):
            pairs.append(cap_pair)
        q, a = rng.choice(NEUTRAL)
        pairs.insert(rng.randint(1, len(pairs)), Pair(q, a, "neutral"))
        return pairs

    def clean_facts(self, avoid: str | None = None) -> list[Pair]:
        """Supported fact turns: counts, existence yes/no, colours (about anything but `avoid`)."""
        f, rng = self.f, self.rng
        out: list[Pair] = []
        countable = [c for c in self.countable if c != avoid]
        if countable:
            c = rng.choice(countable)
            out.append(count_pair(c, f.counts[c], rng))
        crowd = sorted(f.crowd - {avoid})
        if crowd and rng.random() < 0.7:
            out.append(crowd_count_pair(rng.choice(crowd), f, rng))
        present = [c for c in f.present if c != avoid and c not in NOT_COUNTABLE]
        if present:
            c = rng.choice(present)
            out.append(existence_pair(c, c if f.source == "vg" else surface(c, rng, f), True, rng))
        absent = [c for c in self.absent if c != avoid]
        if absent:
            c = rng.choice(absent)
            out.append(existence_pair(c, surface(c, rng), False, rng))
        colours = [(o, cs) for o, cs in colour_facts(f) if o != avoid]
        if colours:
            o, cs = rng.choice(colours)
            out.append(colour_pair(o, rng.choice(sorted(c for c in cs if c in COLOURS) or sorted(cs)), rng))
        return out

    def clean(self, i: int) -> Case:
        """A clean dialogue: base turns plus 2-4 supported fact turns, in a shuffled order."""
        pairs = self.base()
        facts = self.clean_facts()
        self.rng.shuffle(facts)
        pairs += facts[: self.rng.randint(2, 4)]
        return _case(f"{self.f.image_key}/clean/{i}", self.f, pairs, None)

    def _corrupted(
        self, kind: str, i: int, obj: str, surface_: str, fact: str, bad: Pair, *, into_describe: bool = False
    ) -> Case:
        """Clean turns that avoid `obj`, plus the corrupted pair (or sentence) at a random place."""
        rng = self.rng
        pairs = self.base(avoid=obj)
        extra = [p for p in self.clean_facts(avoid=obj) if not mentioned(obj, p.a.lower())]
        rng.shuffle(extra)
        pairs += extra[: rng.randint(0, 2)]
        if into_describe:
            q, a, tid, _ = pairs[0]
            # the false sentence goes before or after the true description
            a = f"{bad.a} {a}" if rng.random() < 0.4 else f"{a} {bad.a}"
            pairs[0] = Pair(q, a, f"{tid}+{bad.template}", bad.claim)
            at = 0
        else:
            at = rng.randint(1, len(pairs))
            pairs.insert(at, bad)
        c = Corruption(kind, obj, surface_, fact, 2 * at + 1)
        return _case(f"{self.f.image_key}/{kind}/{i}", self.f, pairs, c)

    def object_case(self, i: int) -> Case | None:
        f, rng = self.f, self.rng
        if not self.absent or not f.present:
            return None
        x = rng.choice(self.absent)
        y_cat = rng.choice(f.present)
        y = y_cat if f.source == "vg" else ("person" if y_cat == "person" else surface(y_cat, rng))
        xs = surface(x, rng)
        t = rng.randrange(len(OBJECT_T))
        sent = OBJECT_T[t].format(Y=y, aX=article(xs), AX=cap(article(xs)), Xs=plural(xs))
        tid = f"object:{t}"
        into = rng.random() < 0.4
        bad = Pair(rng.choice(OBJECT_Q).format(Y=y), sent, tid, (x, "present"))
        return self._corrupted("object", i, x, xs, f"inserted {x}", bad, into_describe=into)

    def count_case(self, i: int) -> Case | None:
        f, rng = self.f, self.rng
        if not self.countable:
            return None
        c = rng.choice(self.countable)
        n = f.counts[c]
        wrong = n - 1 if n > 1 and rng.random() < 0.3 else n + rng.randint(1, 3)
        name = count_name(c, rng)
        bad = count_pair(c, wrong, rng, t=i + rng.randrange(len(COUNT_T)), name=name)
        return self._corrupted("count", i, c, name, f"{c}: {n} -> {wrong}", bad)

    def existence_case(self, i: int) -> Case | None:
        f, rng = self.f, self.rng
        present = [c for c in f.present if c not in NOT_COUNTABLE]
        to_yes = i % 2 == 0  # alternate: absent -> "yes", present -> "no"
        if to_yes and self.absent:
            c = rng.choice(self.absent)
            s = surface(c, rng)
            return self._corrupted(
                "existence", i, c, s, f"{c}: absent -> yes", existence_pair(c, s, True, rng)
            )
        if present:
            c = rng.choice(present)
            s = c if f.source == "vg" else surface(c, rng, f)
            return self._corrupted(
                "existence", i, c, s, f"{c}: present -> no", existence_pair(c, s, False, rng)
            )
        return None

    def colour_case(self, i: int) -> Case | None:
        f, rng = self.f, self.rng
        cands = colour_facts(f)
        if not cands:
            return None
        o, true = cands[(i + rng.randrange(len(cands))) % len(cands)]
        wrong = wrong_colour(true, f, o, rng)
        if wrong is None:
            return None
        bad = colour_pair(o, wrong, rng)
        return self._corrupted("colour", i, o, o, f"{o}: {'/'.join(sorted(true))} -> {wrong}", bad)


# --- data root, ingest, merge -------------------------------------------------------------------


def make_data_root(realdata: Path, root: Path) -> Path:
    """unimm's data-root layout (see unimm/sources.py) made of symlinks to the real excerpts:
    COCO-MINI train2017 captions + instances and every Visual Genome file."""
    ann = root / "coco" / "annotations"
    ann.mkdir(parents=True, exist_ok=True)
    for name in ("captions_train2017.json", "instances_train2017.json"):
        (ann / name).symlink_to(realdata / "coco-mini" / "annotations" / name)
    (root / "vg").mkdir(exist_ok=True)
    for f in sorted((realdata / "visual_genome").glob("*.json")):
        (root / "vg" / f.name).symlink_to(f)
    return root


def enrich(images: list[MergedImage], realdata: Path) -> dict[str, int]:
    """Fill COCO `iscrowd` and VG `attributes` from the official files where the merged record
    lacks them (an ingest that does not carry them yet), so the benchmark measures the checks and
    not that gap; returns how many objects were filled (0 once ingest carries both)."""
    inst = json.loads((realdata / "coco-mini" / "annotations" / "instances_train2017.json").read_text())
    crowd = {str(a["id"]) for a in inst["annotations"] if a.get("iscrowd")}
    attrs_doc = json.loads((realdata / "visual_genome" / "attributes.json").read_text())
    attrs = {str(o["object_id"]): o.get("attributes", []) for im in attrs_doc for o in im["attributes"]}
    filled = Counter()
    for m in images:
        for o in m.objects:
            _fill(o, crowd, attrs, filled)
    return dict(filled)


def _fill(o: MergedObject, crowd: set[str], attrs: dict[str, list[str]], filled: Counter) -> None:
    if "coco" in o.sources and o.iscrowd is None:
        o.iscrowd = any(s in crowd for s in o.source_ids)
        filled["iscrowd"] += 1
    if "vg" in o.sources and not o.attributes:
        found = sorted({a.strip().lower() for s in o.source_ids for a in attrs.get(s, [])})
        if found:
            o.attributes = found
            filled["attributes"] += 1


def merged_images(realdata: Path, tmp: Path) -> tuple[list[MergedImage], dict[str, int]]:
    """Ingest + merge the excerpts with unimm's library into `tmp`; the merged records (sorted by
    key) and the enrichment counts."""
    import polars as pl

    from unimm.ingest import run_ingest
    from unimm.merge import MergeConfig, merge, merged_parts

    root = make_data_root(realdata, tmp / "data")
    work = tmp / "work"
    run_ingest(root, work, ["coco", "vg"], jobs=1)
    merge(work, MergeConfig())
    images = [
        MergedImage.model_validate(r)
        for p in merged_parts(work)
        for r in pl.read_parquet(p).iter_rows(named=True)
    ]
    images.sort(key=lambda m: m.image_key)
    return images, enrich(images, realdata)


def coco_categories(realdata: Path) -> list[str]:
    doc = json.loads((realdata / "coco-mini" / "annotations" / "instances_train2017.json").read_text())
    return sorted(c["name"] for c in doc["categories"])


def build_cases(
    images: list[MergedImage],
    categories: list[str],
    *,
    seed: int = 0,
    clean_per_image: int = 2,
    per_kind: int = 2,
    colour_per_vg: int = 4,
) -> list[Case]:
    """Every labelled case: `clean_per_image` clean dialogues and `per_kind` corrupted ones per kind
    and image (`colour_per_vg` colour corruptions per VG image)."""
    rng = random.Random(seed)
    cases: list[Case] = []
    for m in images:
        facts = image_facts(m)
        if not facts.present:
            continue
        b = CaseBuilder(facts, categories, rng)
        cases += [b.clean(i) for i in range(clean_per_image)]
        made = [
            *(b.object_case(i) for i in range(per_kind)),
            *(b.count_case(i) for i in range(per_kind)),
            *(b.existence_case(i) for i in range(per_kind)),
            *(b.colour_case(i) for i in range(colour_per_vg if facts.source == "vg" else 0)),
        ]
        cases += [c for c in made if c is not None]
    return cases
