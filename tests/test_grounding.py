"""Grounding checks on real COCO-MINI and Visual Genome records: objects (CHAIR), counts,
existence, colours, QA agreement, judge verdicts, and what the filter makes of them."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from unimm.filter import FilterConfig, filter_chats
from unimm.grounding import ground_turns
from unimm.grounding.claims import text_claims
from unimm.grounding.vocab import load_vocabulary
from unimm.ingest import run_ingest
from unimm.merge import MergeConfig, merge, merged_parts, read_partition
from unimm.schema import JudgeVerdict, MergedImage, Turn

from .test_filter import make_chat
from .test_ingest_realdata import data_root


@pytest.fixture(scope="module")
def images(realdata: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, MergedImage]:
    """The real excerpts ingested and merged by unimm itself, by image key."""
    tmp = tmp_path_factory.mktemp("grounding")
    work = tmp / "work"
    run_ingest(data_root(realdata, tmp), work, ["coco", "vg"], jobs=1)
    merge(work, MergeConfig(sources=["coco", "vg"]))
    return {m.image_key: m for part in merged_parts(work) for m in read_partition(part)}


def turns(*pairs: tuple[str, str]) -> list[Turn]:
    return [Turn(role=r, content=c) for q, a in pairs for r, c in (("user", q), ("assistant", a))]


def check(images, key: str, *pairs: tuple[str, str], **cfg):
    """Grounding of the pairs on a real image; the score threshold is off so reasons name checks."""
    return ground_turns(turns(*pairs), images[key], FilterConfig(**{"min_grounding": 0.0, **cfg}))


ELEPHANTS = "coco_000000054718"  # 4 elephants, nothing else annotated
STREET = "coco_000000252639"  # 10 cars, 3 buses, 1 truck, 1 person; "a long green and white bus"
MOTORBIKE = "coco_000000084533"  # a woman on a motorcycle (1 person, 1 motorcycle)
CROWD = "coco_000000433998"  # a crowd box of people


def test_synonyms_are_supported_by_instances(images):
    for text in ("A woman is posing on a motorcycle.", "A man sits on the motorbike.", "The lady rides it."):
        out = check(images, MOTORBIKE, ("Who is in the picture?", text))
        assert out.reasons == [], text
        assert "object" in out.report.turns[0].checks
        assert out.report.chair_i == 0.0 and out.report.chair_s is False


def test_inserted_object_is_a_hallucination(images):
    out = check(images, STREET, ("What is on the street?", "Right next to the bus there is a giraffe."))
    assert out.reasons == ["hallucinated_object:giraffe"]
    t = out.report.turns[0]
    assert t.objects == ["bus", "giraffe"] and t.hallucinated == ["giraffe"]
    assert out.report.mentioned == 2 and out.report.chair_i == 0.5 and out.report.chair_s is True


def test_caption_mention_supports_an_object_without_instance(images):
    # 408805 has no instance of any person/dog but its captions name a stove (oven instance) and walls
    out = check(
        images, "coco_000000408805", ("Describe the kitchen.", "There is a microwave above the oven.")
    )
    assert out.reasons == []


@pytest.mark.parametrize(
    ("answer", "reasons"),
    [
        ("There are four elephants.", []),
        ("I can count 4 elephants standing by the rocks.", []),
        ("There are seven elephants in the mud.", ["count_mismatch:elephant:7!=4"]),
        ("Two elephants are standing by the rocks.", ["count_mismatch:elephant:2!=4"]),
        ("At least three elephants are visible.", []),
        ("There are about six elephants.", []),  # approximate: not checked
    ],
)
def test_counts_against_instances(images, answer, reasons):
    out = check(images, ELEPHANTS, ("What animals are there?", answer))
    assert out.reasons == reasons


def test_how_many_question_checks_a_bare_number(images):
    assert check(images, STREET, ("How many buses are there?", "Three.")).reasons == []
    out = check(images, STREET, ("How many buses can you see?", "I can see 6 of them."))
    assert out.reasons == ["count_mismatch:bus:6!=3"]
    assert out.report.turns[0].checks == ["count"]


def test_plural_synonym_counts_people(images):
    assert (
        check(images, "coco_000000211891", ("Who is there?", "Ten people wait for the train.")).reasons == []
    )
    out = check(images, "coco_000000211891", ("Who is there?", "Three men wait for the train."))
    assert out.reasons == ["count_mismatch:person:3!=10"]


def test_crowd_box_makes_the_count_a_lower_bound(images):
    m = images[CROWD]
    n = sum(1 for o in m.objects if o.name == "person" and "coco" in o.sources and not o.iscrowd)
    assert any(o.iscrowd for o in m.objects if o.name == "person")
    assert check(images, CROWD, ("How many people?", f"There are {n + 20} people.")).reasons == []
    if n > 1:
        out = check(images, CROWD, ("How many people?", f"There are {n - 1} people."))
        assert out.reasons == [f"count_mismatch:person:{n - 1}!=>={n}"]


@pytest.mark.parametrize(
    ("q", "a", "reasons"),
    [
        ("Is there a dog in the picture?", "No, there is no dog.", []),
        (
            "Is there a dog in the picture?",
            "Yes, there is a dog near the rocks.",
            ["existence_mismatch:dog:yes!=no"],
        ),
        ("Are there any elephants?", "Yes.", []),
        ("Are there any elephants?", "No, I don't see any.", ["existence_mismatch:elephant:no!=yes"]),
        ("Can you see a giraffe?", "There is no giraffe here.", []),
        ("What else is there?", "There are no cats, dogs or giraffes, only elephants.", []),
        ("What else is there?", "There are no elephants here.", ["existence_mismatch:elephant:no!=yes"]),
    ],
)
def test_existence(images, q, a, reasons):
    out = check(images, ELEPHANTS, (q, a))
    assert out.reasons == reasons
    if reasons:
        assert "existence" in out.report.turns[0].checks


def test_negated_mentions_are_not_hallucinations(images):
    out = check(images, ELEPHANTS, ("Is it a zoo?", "The elephants are not near a fence or a car."))
    assert out.reasons == []
    assert out.report.turns[0].hallucinated == []


def test_colour_against_captions(images):
    assert check(images, STREET, ("Describe the bus.", "It is a long green bus.")).reasons == []
    out = check(images, STREET, ("What colour is the bus?", "The bus is red."))
    assert out.reasons == ["attribute_mismatch:bus:red"]
    assert "attribute" in out.report.turns[0].checks


def test_colour_against_vg_attributes(images):
    vg = [m for m in images.values() if any(o.attributes for o in m.objects)]
    assert vg, "the VG excerpt carries attributes.json"
    vocab = load_vocabulary()
    for m in vg:
        for o in m.objects:
            colours = [a for a in o.attributes if a in ("white", "black", "green", "red", "blue", "brown")]
            canon = vocab.canonical(o.name)
            if not colours or canon is None:
                continue
            good = ground_turns(turns(("Describe it.", f"The {o.name} is {colours[0]}.")), m)
            assert not [r for r in good.reasons if r.startswith("attribute")], (o, good.reasons)
            known = {a for x in m.objects if vocab.canonical(x.name) == canon for a in x.attributes}
            wrong = next(c for c in ("purple", "pink", "orange", "yellow") if c not in known)
            bad = ground_turns(turns(("Describe it.", f"The {o.name} is {wrong}.")), m)
            if any(r.startswith("attribute_mismatch") for r in bad.reasons):
                return
    pytest.fail("no VG object colour could be checked")


def test_unannotated_object_is_not_checkable_without_exhaustive_evidence(images):
    m = msgspec.structs.replace(images[ELEPHANTS], objects=[])  # captions only: nothing exhaustive
    out = ground_turns(turns(("What else?", "A giraffe stands behind the elephants.")), m)
    assert out.reasons == []
    assert out.report.turns[0].objects == ["giraffe", "elephant"]
    assert out.report.mentioned == 1  # the elephant: supported by the captions; the giraffe undecidable


def test_coverage_counts_turns_with_a_check(images):
    out = check(
        images,
        ELEPHANTS,
        ("What animals are there?", "Elephants."),
        ("What is the weather like?", "It looks warm and sunny."),
    )
    assert out.report.coverage == 0.5
    assert out.report.turns[1].checks == []


def test_qa_checks_stay(images):
    vg = next(m for m in images.values() if m.qas)
    qa = next(q for q in vg.qas if q.answer)
    out = ground_turns(turns((qa.question, f"{qa.answer}.")), vg)
    assert "qa" in out.report.turns[0].checks


def test_judge_verdicts_fold_into_score_and_reasons(images):
    t = turns(("What animals are there?", "Elephants."), ("Why?", "They like mud."))
    verdicts = [
        JudgeVerdict(turn=1, verdict="supported"),
        JudgeVerdict(turn=3, verdict="unsupported", reason="mud not mentioned"),
    ]
    out = ground_turns(t, images[ELEPHANTS], FilterConfig(min_grounding=0.0), verdicts)
    assert out.reasons == ["judge_unsupported:3"]
    assert out.report.turns[1].judge == "unsupported" and out.report.turns[1].checks == ["judge"]
    assert out.report.coverage == 1.0


def test_filter_rejects_with_precise_reasons_and_keeps_the_report(images):
    good = make_chat(ELEPHANTS, [("What is there?", "Four elephants stand by the rocks.")])
    bad = make_chat(
        STREET, [("What is on the street?", "A giraffe walks by the five buses.")], image_key=STREET
    )
    res = filter_chats([good, bad], images, FilterConfig())
    assert [c.id for c in res.kept] == [ELEPHANTS]
    assert res.kept[0].grounding is not None and res.kept[0].grounding.score == 1.0
    reasons = res.rejects[0].reasons
    assert "hallucinated_object:giraffe" in reasons and "count_mismatch:bus:5!=3" in reasons
    assert res.rejects[0].chat.grounding.chair_s is True
    assert res.counts["hallucinated_object"] == 1 and res.counts["count_mismatch"] == 1


def test_checks_can_be_switched_off(images):
    pair = ("What is on the street?", "Right next to the bus there is a giraffe.")
    assert check(images, STREET, pair, grounding_checks=["count"]).reasons == []
    assert check(images, STREET, pair, reject_hallucinations=False).reasons == []


def test_claims_read_lists_numbers_and_colours():
    vocab = load_vocabulary()
    cl = text_claims("Two brown dogs and a white cat, but no birds.", vocab)
    assert [(c.canonical, c.count, c.colours, c.negated) for c in cl] == [
        ("dog", 2, ["brown"], False),
        ("cat", None, ["white"], False),
        ("bird", None, [], True),
    ]


def test_comparisons_and_qualified_denials_are_no_existence_claims(images):
    # there are elephants, but "no" answers a comparison / denies only the qualified one
    pairs = [
        ("Are there more elephants on the left than on the right?", "No."),
        ("Is there a pink elephant?", "No, there is not."),
    ]
    for pair in pairs:
        out = check(images, ELEPHANTS, pair)
        assert out.reasons == [], pair


def test_yes_to_a_colour_question_is_a_colour_claim(images):
    assert check(images, STREET, ("Is the bus green?", "Yes.")).reasons == []
    assert check(images, STREET, ("Is the bus red?", "Yes, it is.")).reasons == ["attribute_mismatch:bus:red"]
    assert check(images, STREET, ("Is the bus red?", "No.")).reasons == []


def test_min_coverage_rejects_what_nothing_can_check(images):
    pairs = [("What animals are there?", "Elephants."), ("What is the weather like?", "It looks warm.")]
    assert check(images, ELEPHANTS, *pairs).reasons == []  # by default unverifiable turns pass
    assert check(images, ELEPHANTS, *pairs, min_coverage=0.8).reasons == ["unverifiable:0.500"]


def test_comparisons_and_examples_do_not_assert_an_object(images):
    answers = [
        "Unlike horses, elephants have trunks.",
        "Each elephant is much bigger than a car.",
        "Other animals such as giraffes also like mud.",
        "If a dog came by, the elephants would ignore it.",
    ]
    for a in answers:
        out = check(images, ELEPHANTS, ("Tell me about them.", a))
        assert out.reasons == [], a
        objects = out.report.turns[0].objects
        assert not {"horse", "car", "giraffe", "dog"} & set(objects), a


GENERIC = [
    ("What is in the picture?", "There are two dogs, a red bus and three people near a green car."),
    ("Is there a cat?", "No, there is no cat, but a man holds an umbrella."),
    ("How many cars are there?", "5"),
    ("What colour is the bus?", "White."),
    ("Are there any elephants?", "Yes, four elephants stand by the water."),
]


def test_evidence_focused_on_the_named_objects_decides_as_the_full_evidence(images):
    """ground_turns reads only the annotations that can name an object the dialogue names: on
    every real image, dialogues restating each annotation (and generic ones) get the same report
    and reasons as with the evidence of every annotation."""
    from unimm.grounding import image_evidence

    cfg = FilterConfig(min_grounding=0.0)
    for key, m in images.items():
        texts = [c.text for c in m.captions] + [r.text for r in m.regions] + [q.answer or "" for q in m.qas]
        pairs = [("Describe the image.", t) for t in texts if t] + GENERIC
        for i in range(0, len(pairs), 6):
            t = turns(*pairs[i : i + 6])
            focused = ground_turns(t, m, cfg)
            full = ground_turns(t, m, cfg, evidence=image_evidence(m, cfg))
            assert (focused.report, focused.reasons) == (full.report, full.reasons), (key, i)


def test_focused_evidence_skips_annotations_that_name_none_of_its_objects(images):
    from unimm.grounding import image_evidence

    m = images[STREET]
    full = image_evidence(m)
    focused = image_evidence(m, focus={"truck"})  # no caption names the truck: none is read
    assert "truck" in focused.present and focused.coco_counts["truck"] == full.coco_counts["truck"] == 1
    assert {"road", "street"} <= full.present - focused.present  # named only by skipped captions
