"""The packaged object vocabulary: CHAIR synonyms, plurals, two-word precedence, ambiguity, VG."""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

import pytest

from unimm.grounding.vocab import Mention, Vocabulary, load_vocabulary

COCO_INSTANCES = Path("../shared/realdata/coco-mini/annotations/instances_train2017.json")


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_vocabulary()


def found(vocab: Vocabulary, text: str) -> list[tuple[str, str, bool]]:
    return [(m.canonical, m.surface, m.plural) for m in vocab.mentions(text)]


def test_version_and_cache(vocab: Vocabulary) -> None:
    assert vocab.version == "v1"
    assert load_vocabulary("v1") is vocab


def test_unknown_version() -> None:
    with pytest.raises(FileNotFoundError):
        load_vocabulary("v0")


def test_data_file_is_package_data() -> None:
    path = resources.files("unimm.grounding") / "data" / "objects-v1.json"
    assert path.is_file()
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["version"] == "v1"
    assert {"name", "coco", "synsets", "synonyms"} <= set(doc["objects"][0])


def test_synonyms(vocab: Vocabulary) -> None:
    assert found(vocab, "a man") == [("person", "man", False)]
    assert found(vocab, "two women") == [("person", "women", True)]
    assert found(vocab, "A skier and a kid") == [("person", "skier", False), ("person", "kid", False)]
    assert vocab.canonical("men") == "person"
    assert vocab.canonical("Dogs") == "dog"
    assert vocab.canonical("sofa") == "couch"
    assert vocab.canonical("spaceship") is None


@pytest.mark.parametrize(
    ("word", "canonical"),
    [
        ("dogs", "dog"),
        ("buses", "bus"),
        ("knives", "knife"),
        ("mice", "mouse"),
        ("people", "person"),
        ("children", "person"),
        ("ladies", "person"),
        ("puppies", "dog"),
        ("calves", "cow"),
        ("benches", "bench"),
    ],
)
def test_plurals(vocab: Vocabulary, word: str, canonical: str) -> None:
    (m,) = vocab.mentions(f"there are {word} here")
    assert (m.canonical, m.surface, m.plural) == (canonical, word, True)


def test_singular_and_invariant_forms_are_not_plural(vocab: Vocabulary) -> None:
    assert [m.plural for m in vocab.mentions("a dog, a sheep, a bus, scissors")] == [False] * 4


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("a hot dog", "hot dog"),
        ("a teddy bear", "teddy bear"),
        ("her cell phone", "cell phone"),
        ("the traffic light", "traffic light"),
        ("a motor bike", "motorcycle"),
        ("a baseball bat", "baseball bat"),
        ("a tennis racket", "tennis racket"),
        ("two hot dogs", "hot dog"),
        ("a hot-dog", "hot dog"),
    ],
)
def test_two_word_precedence(vocab: Vocabulary, text: str, canonical: str) -> None:
    assert [m.canonical for m in vocab.mentions(text)] == [canonical]


def test_mention_positions_index_tokens(vocab: Vocabulary) -> None:
    text = "A dog eats a hot dog, near the traffic lights."
    tokens = vocab.tokenize(text)
    ms = vocab.mentions(text)
    assert [" ".join(tokens[m.start : m.end]) for m in ms] == [m.surface for m in ms]
    assert ms[2] == Mention("traffic light", "traffic lights", 8, 10, True)


def test_tokenize(vocab: Vocabulary) -> None:
    assert vocab.tokenize("A man's T-shirt, 2 dogs!") == ["a", "man", "s", "t-shirt", "2", "dogs"]


def test_ambiguous_modifiers(vocab: Vocabulary) -> None:
    assert found(vocab, "an orange cat") == [("cat", "cat", False)]
    assert found(vocab, "an orange on the plate")[0] == ("orange", "orange", False)
    assert found(vocab, "an orange and white cat")[0] == ("orange", "orange", False)  # CHAIR misses it too
    assert [m.canonical for m in vocab.mentions("a glass table")] == ["dining table"]
    assert [m.canonical for m in vocab.mentions("a glass of water")] == ["glass", "water"]
    assert [m.canonical for m in vocab.mentions("a baby elephant")] == ["elephant"]
    assert [m.canonical for m in vocab.mentions("a passenger jet")] == ["airplane"]
    assert [m.canonical for m in vocab.mentions("a light blue shirt")] == ["shirt"]


def test_chair_special_cases(vocab: Vocabulary) -> None:
    assert [m.canonical for m in vocab.mentions("the toilet seat is up")] == ["toilet"]
    assert [m.canonical for m in vocab.mentions("a seat next to the toilet")] == ["toilet"]
    assert [m.canonical for m in vocab.mentions("a seat by the window")] == ["chair", "window"]
    assert [m.canonical for m in vocab.mentions("a man wearing a bow tie")] == ["person", "tie"]
    assert vocab.mentions("he swings the bat") == []  # CHAIR: only "baseball bat" is the object
    assert [m.canonical for m in vocab.mentions("a mouse next to the keyboard")] == ["mouse", "keyboard"]
    assert [m.canonical for m in vocab.mentions("train tracks near the bus stop")] == ["track"]
    assert vocab.mentions("he wears glasses") == []


def test_visual_genome_extension(vocab: Vocabulary) -> None:
    assert found(vocab, "a red shirt") == [("shirt", "shirt", False)]
    assert found(vocab, "tall trees") == [("tree", "trees", True)]
    assert vocab.canonical("t-shirt") == "shirt"
    assert vocab.is_coco("person") and not vocab.is_coco("shirt") and not vocab.is_coco("nonsense")
    assert 140 <= sum(not vocab.is_coco(n) for n in vocab.names()) <= 200


def test_synset_lookup(vocab: Vocabulary) -> None:
    assert vocab.canonical_synset("man.n.01") == "person"
    assert vocab.canonical_synset("shirt.n.01") == "shirt"
    assert vocab.canonical_synset("trouser.n.01") == "pants"
    assert vocab.canonical_synset("no_such.n.01") is None


def test_every_coco_category(vocab: Vocabulary) -> None:
    categories = [c["name"] for c in json.loads(COCO_INSTANCES.read_text())["categories"]]
    assert len(categories) == 80
    coco = [n for n in vocab.names() if vocab.is_coco(n)]
    assert sorted(coco) == sorted(categories)
    for name in categories:
        assert vocab.canonical(name) == name
        assert [m.canonical for m in vocab.mentions(f"I see a {name}.")] == [name]


def test_speed(vocab: Vocabulary) -> None:
    text = " ".join(["the man in a red t-shirt holds a cell phone by the traffic light with two dogs"] * 6)
    assert len(vocab.tokenize(text)) > 100
    start = time.perf_counter()
    for _ in range(200):
        vocab.mentions(text)
    assert (time.perf_counter() - start) / 200 < 1e-3
