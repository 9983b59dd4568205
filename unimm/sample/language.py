"""Texts that are true of a `Scene`: captions, VQA questions, knowledge questions, VG regions and QA.

Every function reads only the scene (and an rng for choosing among true statements), so the
demo corpus never says anything the picture contradicts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from unimm.sample.formats import NUMBER_WORDS
from unimm.sample.scene import KINDS, PALETTE, Scene, Shape


def plural(kind: str, n: int) -> str:
    return kind if n == 1 else f"{kind}es" if kind.endswith("s") else f"{kind}s"


def position(s: Shape) -> str:
    """`top left`, `bottom middle`, ..."""
    return f"{s.vertical} {s.horizontal}"


def where(s: Shape) -> str:
    """A preposition phrase placing the shape: `on the left`, `at the top in the middle`."""
    if s.horizontal == "middle":
        return f"at the {s.vertical} in the middle"
    return f"at the {s.vertical} {s.horizontal}"


def ref(scene: Scene, s: Shape) -> str:
    """The shortest unambiguous noun phrase for a shape in its scene."""
    if scene.count(kind=s.kind) == 1:
        return f"the {s.kind}"
    if scene.count(kind=s.kind, colour=s.colour) == 1:
        return f"the {s.name}"
    return f"the {s.name} {where(s)}"


def ref_without(scene: Scene, s: Shape, omit: str) -> str:
    """A noun phrase that does not give away the shape's colour (omit="colour") or kind (omit="kind")."""
    if omit == "colour":
        return f"the {s.kind}" if scene.count(kind=s.kind) == 1 else f"the {s.kind} {where(s)}"
    return f"the {s.colour} object" if scene.count(colour=s.colour) == 1 else f"the object {where(s)}"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def inventory(scene: Scene) -> str:
    """`two red circles and a blue square` (grouped by colour and kind, in drawing order)."""
    groups: dict[tuple[str, str], int] = {}
    for s in scene.shapes:
        groups[(s.colour, s.kind)] = groups.get((s.colour, s.kind), 0) + 1
    parts = [
        f"{_article(c)} {c} {k}" if n == 1 else f"{NUMBER_WORDS[n]} {c} {plural(k, n)}"
        for (c, k), n in groups.items()
    ]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def captions(scene: Scene, rng: random.Random) -> list[str]:
    """Five COCO-style captions, each true of the picture (with COCO's occasional quirks)."""
    n = len(scene.shapes)
    inv = inventory(scene)
    out = [f"{inv[0].upper()}{inv[1:]} on a {scene.background} background."]
    if n == 1:
        out.append(f"A single {scene.shapes[0].kind} drawn in {scene.shapes[0].colour}.")
    else:
        out.append(f"{NUMBER_WORDS[n].capitalize()} colored shapes on a plain {scene.background} background.")
    a = rng.choice(scene.shapes)
    out.append(f"{_article(a.colour).capitalize()} {a.name} {where(a)} of the picture.")
    if n >= 2:
        a, b = rng.sample(scene.shapes, 2)
        out.append(
            f"{_article(a.colour)} {a.name} and {_article(b.colour)} {b.name} in a simple drawing "
        )  # lower case + trailing space, as in COCO
    else:
        out.append(f"a simple drawing of one {scene.shapes[0].kind} ")
    big = [s for s in scene.shapes if s.large]
    if big:
        s = rng.choice(big)
        out.append(f"A LARGE {s.name.upper()} IN A PLAIN PICTURE.")
    else:
        out.append(f"Simple geometric {plural('shape', n)} with no people in the image.")
    return out


@dataclass(frozen=True)
class QA:
    """A question with its true answer and VQA-style type labels."""

    question: str
    answer: str
    question_type: str
    answer_type: str


def vqa_questions(scene: Scene, rng: random.Random, k: int) -> list[QA]:
    """k distinct VQAv2-style questions (answers normalised as VQA does: digits, lower case)."""
    pool: list[QA] = []
    for s in scene.shapes:
        pool.append(
            QA(f"What color is {ref_without(scene, s, 'colour')}?", s.colour, "what color is the", "other")
        )
        pool.append(QA(f"What shape is {where(s)}?", s.kind, "what", "other"))
    colour, kind = rng.choice(list(PALETTE)), rng.choice(KINDS)
    pool.append(
        QA(
            f"How many {colour} {plural(kind, 2)} are there?",
            str(scene.count(kind=kind, colour=colour)),
            "how many",
            "number",
        )
    )
    s = rng.choice(scene.shapes)
    pool.append(
        QA(
            f"How many {plural(s.kind, 2)} are in the picture?",
            str(scene.count(kind=s.kind)),
            "how many",
            "number",
        )
    )
    pool.append(QA("How many shapes are there?", str(len(scene.shapes)), "how many", "number"))
    for colour, kind in ((s.colour, s.kind), (rng.choice(list(PALETTE)), rng.choice(KINDS))):
        yes = scene.count(kind=kind, colour=colour) > 0
        pool.append(
            QA(
                f"Is there {_article(colour)} {colour} {kind}?",
                "yes" if yes else "no",
                "is there a",
                "yes/no",
            )
        )
    pool.append(
        QA("Is the background white?", "yes" if scene.background == "white" else "no", "is the", "yes/no")
    )
    left, right = len(scene.at(col=0)), len(scene.at(col=2))
    pool.append(
        QA(
            "Are there more shapes on the left than on the right?",
            "yes" if left > right else "no",
            "are there",
            "yes/no",
        )
    )
    rng.shuffle(pool)
    seen: set[str] = set()
    out = []
    for qa in pool:
        if qa.question not in seen:
            seen.add(qa.question)
            out.append(qa)
    return out[:k]


@dataclass(frozen=True)
class Knowledge:
    """An outside-knowledge fact tied to a colour or a shape kind."""

    question: str  # `{ref}` is replaced by the shape's noun phrase
    answer: str
    raw_variants: tuple[str, ...]  # what other annotators typed (OK-VQA `raw_answer`)
    distractors: tuple[str, ...]
    fact: str
    question_type: str  # OK-VQA code
    by: str  # "colour" or "kind"


KNOWLEDGE: dict[str, Knowledge] = {
    "red": Knowledge(
        "Which fruit is often the same color as {ref}?",
        "apple",
        ("apples", "cherry", "strawberry"),
        ("banana", "lime", "blueberry"),
        "Apples are often red.",
        "five",
        "colour",
    ),
    "yellow": Knowledge(
        "Which fruit is usually the color of {ref} when ripe?",
        "banana",
        ("bananas", "lemon"),
        ("apple", "grape", "plum"),
        "Ripe bananas are yellow.",
        "five",
        "colour",
    ),
    "green": Knowledge(
        "What vegetable is usually the same color as {ref}?",
        "broccoli",
        ("brocolli", "lettuce"),
        ("carrot", "tomato", "eggplant"),
        "Broccoli is green.",
        "five",
        "colour",
    ),
    "orange": Knowledge(
        "Which citrus fruit shares its name with the color of {ref}?",
        "orange",
        ("oranges",),
        ("lemon", "lime", "grapefruit"),
        "The orange fruit gave its name to the color.",
        "five",
        "colour",
    ),
    "blue": Knowledge(
        "On a clear day, what above us has the same color as {ref}?",
        "sky",
        ("the sky", "ocean"),
        ("grass", "sun", "cloud"),
        "A clear daytime sky is blue.",
        "ten",
        "colour",
    ),
    "purple": Knowledge(
        "Which fruit used to make wine is often the color of {ref}?",
        "grape",
        ("grapes", "plum"),
        ("apple", "banana", "orange"),
        "Many wine grapes are purple.",
        "five",
        "colour",
    ),
    "triangle": Knowledge(
        "Which ancient Egyptian monuments have faces shaped like {ref}?",
        "pyramid",
        ("pyramids", "the pyramids"),
        ("sphinx", "obelisk", "temple"),
        "The faces of the Egyptian pyramids are triangles.",
        "six",
        "kind",
    ),
    "square": Knowledge(
        "Which board game is played on a grid of shapes like {ref}?",
        "chess",
        ("checkers", "chess"),
        ("poker", "darts", "bowling"),
        "A chessboard is a grid of 64 squares.",
        "four",
        "kind",
    ),
    "circle": Knowledge(
        "Which part of a car has the same outline as {ref}?",
        "wheel",
        ("wheels", "tire"),
        ("door", "roof", "seat"),
        "Car wheels are round.",
        "one",
        "kind",
    ),
    "star": Knowledge(
        "Which sea creature is named after the shape of {ref}?",
        "starfish",
        ("star fish", "sea star"),
        ("octopus", "jellyfish", "crab"),
        "A starfish has five arms like the points of a star.",
        "eight",
        "kind",
    ),
}


def knowledge_for(scene: Scene, s: Shape, rng: random.Random) -> tuple[str, Knowledge]:
    """A knowledge question about the shape's colour or its kind, and the fact it rests on.

    The question names the shape without the property it asks about, so the picture is needed."""
    k = KNOWLEDGE[rng.choice((s.colour, s.kind))]
    return k.question.format(ref=ref_without(scene, s, k.by)), k


def rationales(scene: Scene, s: Shape, k: Knowledge) -> list[str]:
    """Three A-OKVQA-style rationales: what is seen, the fact, the conclusion."""
    phrase = ref_without(scene, s, k.by)
    seen = f"{phrase[0].upper()}{phrase[1:]} is " + (
        s.colour if k.by == "colour" else f"{_article(s.kind)} {s.kind}"
    )
    return [seen + ".", k.fact, f"{seen}, and {k.fact[0].lower()}{k.fact[1:]}"]


def vg_regions(scene: Scene, rng: random.Random) -> list[tuple[str, tuple[int, int, int, int]]]:
    """VG region phrases with their true boxes: each shape, some pairs, and the background."""
    out: list[tuple[str, tuple[int, int, int, int]]] = []
    for s in scene.shapes:
        size = "large" if s.large else "small"
        out.append(
            (
                rng.choice((f"{s.name} {where(s)}", f"{s.name} is {size}", f"{s.colour} {s.kind} shape ")),
                s.bbox,
            )
        )
        out.append((f"{s.colour} {s.kind}", s.bbox))
    for a, b in zip(scene.shapes, scene.shapes[1:], strict=False):
        if a.row == b.row and b.col == a.col + 1:
            ax, ay, aw, ah = a.bbox
            bx, by, bw, bh = b.bbox
            x0, y0 = min(ax, bx), min(ay, by)
            box = (x0, y0, max(ax + aw, bx + bw) - x0, max(ay + ah, by + bh) - y0)
            out.append((f"{a.name} next to {b.name}", box))
    out.append((f"plain {scene.background} background", (0, 0, scene.width, scene.height)))
    return out


def vg_qas(scene: Scene, rng: random.Random) -> list[tuple[str, str]]:
    """VG-style QA: capitalised answers ending with a period."""
    out = [
        ("How many shapes are in the image?", f"{NUMBER_WORDS[len(scene.shapes)].capitalize()}."),
        ("What color is the background?", f"{scene.background.capitalize()}."),
    ]
    for s in rng.sample(list(scene.shapes), min(3, len(scene.shapes))):
        out.append((f"What color is the {s.kind} {where(s)}?", f"{s.colour.capitalize()}."))
        if scene.count(kind=s.kind, colour=s.colour) == 1:
            out.append((f"Where is the {s.name}?", f"{where(s).capitalize()}."))
    return out


# Other answers a VisDial answer option list draws from, besides the sample's own answers.
VISDIAL_OTHER_ANSWERS: tuple[str, ...] = (
    *(str(n) for n in range(50)),
    *PALETTE,
    *(f"{_article(k)} {k}" for k in KINDS),
    *("white", "light gray", "black", "brown", "pink", "gray", "dark blue", "light green"),
    *("yes", "no", "yes, it is", "no, it isn't", "yes, there are", "no, there aren't", "i think so"),
    *("not that i can see", "i can't tell", "maybe", "probably not", "a few", "several", "many"),
    *("on the left", "on the right", "in the middle", "at the top", "at the bottom", "outside", "inside"),
    *("daytime", "at night", "a table", "grass", "the sky", "a tree", "a dog", "a car", "one man"),
    *("it's sunny", "it's cloudy", "no, just one", "yes, two", "very", "a little"),
)


def visdial_caption(scene: Scene) -> str:
    """The caption a VisDial questioner is shown: a COCO-style caption, lower case, no period."""
    return f"{inventory(scene)} on a {scene.background} background"


def visdial_rounds(scene: Scene, rng: random.Random, k: int = 10) -> list[tuple[str, str]]:
    """k VisDial-style rounds true of the picture, in the order they were asked: lower-case
    questions without "?", short conversational answers (VisDial stores questions that way)."""
    n = len(scene.shapes)
    bg = scene.background
    pool = [
        ("is the picture in color", "yes"),
        ("is it a photo", "no, it's a drawing"),
        ("are there any people", "no"),
        ("is it daytime", "i can't tell"),
        ("how many shapes are there", str(n)),
        ("is the background white", "yes" if bg == "white" else f"no, it's {bg}"),
        ("do any of the shapes overlap", "no"),
    ]
    for s in scene.shapes:
        pool.append((f"what color is {ref_without(scene, s, 'colour')}", s.colour))
        pool.append((f"what shape is {where(s)}", f"{_article(s.kind)} {s.kind}"))
    s = rng.choice(scene.shapes)
    pool.append((f"how many {plural(s.kind, 2)} are there", str(scene.count(kind=s.kind))))
    colour, kind = rng.choice(list(PALETTE)), rng.choice(KINDS)
    there = scene.count(kind=kind, colour=colour)
    pool.append((f"is there {_article(colour)} {colour} {kind}", "yes" if there else "no, there isn't"))
    rng.shuffle(pool)
    return list(dict(pool).items())[:k]
