"""Object vocabulary for CHAIR-style object-hallucination checks (Rohrbach et al. 2018).

The vocabulary is a versioned data file shipped in the package (`data/objects-<version>.json`):
the 80 COCO 2017 categories with the CHAIR synonym table (LisaAnne/Hallucination
`data/synonyms.txt`) and a Visual Genome extension (`"coco": false`) of frequent object nouns
with their WordNet synsets. Every synonym, plural forms included, is listed in the file: nothing
is inflected at runtime, so a version's behaviour is fixed by its file.

Matching works on `Vocabulary.tokenize` tokens, longest n-gram first, left to right, without
overlaps, so "hot dog" is a hot dog (not a dog) and "teddy bear" a teddy bear. Rules beyond plain
lookup, all driven by the file:
- `modifiers`: words that are also nouns but act as adjectives when directly followed by another
  vocabulary noun or a colour ("orange cat", "glass table", "baby elephant", "passenger jet");
  this generalises CHAIR's baby/adult/passenger rules;
- `blockers`: phrases that consume their tokens without naming an object ("glasses" is too
  ambiguous between drinking glasses and spectacles; "bus stop" is no bus);
- `suppressed_by`: CHAIR's "toilet seat" rule: "seat" is no chair when a toilet is mentioned;
- `support_only`: names that annotations can support but never refute (hypernyms, scene words,
  body parts): no annotation set lists them exhaustively, so their absence proves nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable
    from importlib.resources.abc import Traversable

# Lower-cased word runs; a hyphen inside a word keeps it whole ("t-shirt"), everything else splits.
_TOKEN = re.compile(r"[^\W_]+(?:-[^\W_]+)*")


@dataclass(frozen=True)
class Mention:
    """One vocabulary object named in a text."""

    canonical: str  # vocabulary name, e.g. "person"
    surface: str  # the synonym matched, e.g. "men"
    start: int  # token index (inclusive) into Vocabulary.tokenize(text)
    end: int  # token index (exclusive)
    plural: bool  # the surface form is plural ("men", "dogs", "people")


@dataclass(frozen=True)
class _Entry:
    canonical: str | None  # None: a blocker, matched to consume tokens only
    plural: bool


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens: letters and digits, punctuation split off, hyphenated words kept whole."""
    return _TOKEN.findall(text.lower())


class Vocabulary:
    """A loaded object vocabulary; build it with `load_vocabulary`."""

    def __init__(self, doc: dict) -> None:
        self.version: str = doc["version"]
        self._coco: dict[str, bool] = {}
        self._synset: dict[str, str] = {}
        self._index: dict[tuple[str, ...], _Entry] = {}
        self._triggers: dict[str, set[str]] = {}  # canonical -> first tokens of its phrases
        for obj in doc["objects"]:
            name = obj["name"]
            self._coco[name] = bool(obj["coco"])
            plurals = set(obj.get("plurals", []))
            for synset in obj["synsets"]:
                self._claim(self._synset, synset, name)
            for syn in obj["synonyms"]:
                self._add(syn, _Entry(name, syn in plurals))
        for phrase in doc.get("blockers", []):
            self._add(phrase, _Entry(None, False))
        self._modifiers = frozenset(doc.get("modifiers", []))
        self._colors = frozenset(doc.get("colors", []))
        self._suppressed_by = {k: frozenset(v) for k, v in doc.get("suppressed_by", {}).items()}
        self._support_only = frozenset(doc.get("support_only", []))
        self._max_len = max(len(key) for key in self._index)
        # most words start no entry: one set lookup rules them out before any phrase is tried
        self._first_words = frozenset(key[0] for key in self._index)

    @staticmethod
    def _claim(table: dict[str, str], key: str, name: str) -> None:
        # A word or synset naming two objects would make results depend on file order.
        if table.get(key, name) != name:
            raise ValueError(f"{key!r} belongs to both {table[key]!r} and {name!r}")
        table[key] = name

    def _add(self, phrase: str, entry: _Entry) -> None:
        key = tuple(tokenize(phrase))
        keys = {key}
        if len(key) > 1:
            # "hot-dog" tokenizes as one token; let it mean what "hot dog" means
            keys.add(("-".join(key),))
        for k in keys:
            old = self._index.get(k)
            if old is not None and old.canonical != entry.canonical:
                raise ValueError(f"{' '.join(k)!r} belongs to both {old.canonical!r} and {entry.canonical!r}")
            self._index[k] = entry
            if entry.canonical is not None:
                self._triggers.setdefault(entry.canonical, set()).add(k[0])

    def tokenize(self, text: str) -> list[str]:
        """Lower-case word tokens of `text`; `Mention.start`/`end` index into this list."""
        return tokenize(text)

    def _match(self, tokens: list[str], i: int) -> tuple[int, _Entry] | None:
        """Longest (length, entry) starting at token i, or None."""
        if tokens[i] not in self._first_words:
            return None
        for n in range(min(self._max_len, len(tokens) - i), 0, -1):
            entry = self._index.get(tuple(tokens[i : i + n]))
            if entry is not None:
                return n, entry
        return None

    def _is_modifier(self, tokens: list[str], i: int) -> bool:
        """Token i is an adjective-like use of a noun: followed directly by a noun or a colour."""
        if tokens[i] not in self._modifiers or i + 1 >= len(tokens):
            return False
        nxt = tokens[i + 1]
        if nxt in self._colors:
            return True
        following = self._match(tokens, i + 1)
        return following is not None and following[1].canonical is not None

    def mentions(self, text: str) -> list[Mention]:
        """Vocabulary objects named in `text`, in order: longest match first, non-overlapping."""
        tokens = tokenize(text)
        found: list[Mention] = []
        i = 0
        while i < len(tokens):
            match = self._match(tokens, i)
            if match is None:
                i += 1
                continue
            n, entry = match
            if entry.canonical is not None and not (n == 1 and self._is_modifier(tokens, i)):
                found.append(Mention(entry.canonical, " ".join(tokens[i : i + n]), i, i + n, entry.plural))
            i += n
        return self._apply_suppression(found)

    def _apply_suppression(self, found: list[Mention]) -> list[Mention]:
        if not any(m.surface in self._suppressed_by for m in found):
            return found
        named = {m.canonical for m in found}
        return [m for m in found if not (self._suppressed_by.get(m.surface, frozenset()) & named)]

    def trigger_words(self, canonicals: Iterable[str]) -> frozenset[str]:
        """Tokens at least one of which a text must contain to name any of `canonicals`: the first
        token of each of their phrases. A text without them yields no mention of those objects,
        so it can be skipped unread."""
        return frozenset(w for c in canonicals for w in self._triggers.get(c, ()))

    def canonical(self, name: str) -> str | None:
        """Canonical object for a word or phrase ("men" -> "person", "Dogs" -> "dog"); None if unknown."""
        entry = self._index.get(tuple(tokenize(name)))
        return entry.canonical if entry is not None else None

    def canonical_synset(self, synset: str) -> str | None:
        """Canonical object for a WordNet synset name ("man.n.01" -> "person"); None if unknown."""
        return self._synset.get(synset.strip().lower())

    def is_coco(self, canonical: str) -> bool:
        """Whether a canonical name is one of the 80 COCO categories (False for unknown names)."""
        return self._coco.get(canonical, False)

    def absence_decidable(self, canonical: str) -> bool:
        """False for names no annotation set lists exhaustively (hypernyms such as animal or food,
        scene words such as sky or street, body parts): they can be supported, never refuted."""
        return canonical not in self._support_only

    def names(self) -> list[str]:
        """Every canonical name, COCO categories first, in file order."""
        return list(self._coco)


def data_file(version: str = "v1") -> Traversable:
    """The packaged data file of a vocabulary version."""
    return resources.files("unimm.grounding") / "data" / f"objects-{version}.json"


def vocabulary_fingerprint(version: str = "v1") -> str:
    """sha256 of a version's data file: an edited file reruns the stages that checked with it."""
    return hashlib.sha256(data_file(version).read_bytes()).hexdigest()[:16]


def load_vocabulary(version: str = "v1") -> Vocabulary:
    """The object vocabulary of `version` from the package data, loaded once per process."""
    return _load(version)


# Cached behind a plain function so that load_vocabulary() and load_vocabulary("v1") share an entry.
@functools.cache
def _load(version: str) -> Vocabulary:
    path = data_file(version)
    if not path.is_file():
        raise FileNotFoundError(f"no object vocabulary {version!r} in unimm/grounding/data")
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("version") != version:
        raise ValueError(f"{path} declares version {doc.get('version')!r}, expected {version!r}")
    return Vocabulary(doc)
