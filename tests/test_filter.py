"""Filters: one test per reason code, grounding against annotated QAs, nothing lost."""

from __future__ import annotations

import pytest

from unimm.filter import FilterConfig, filter_chats, reason_code
from unimm.filter.normalize import normalize_answer
from unimm.schema import Answer, Chat, GeneratorInfo, MergedImage, MergedQA, Turn

GEN = GeneratorInfo(
    backend="template", model="t", prompt_version="v1", prompt_fingerprint="fp", request_id="r"
)


def make_chat(
    cid: str,
    pairs: list[tuple[str, str]],
    *,
    image_key: str | None = None,
    image_file: str | None = None,
    sources: tuple[str, ...] = ("coco",),
) -> Chat:
    """A chat from (question, answer) pairs (shared by the dedup/decontam/shards tests)."""
    turns = [Turn(role=r, content=c) for q, a in pairs for r, c in (("user", q), ("assistant", a))]
    return Chat(
        id=cid,
        image_key=image_key or cid,
        image_file=image_file,
        turns=turns,
        sources=list(sources),
        generator=GEN,
    )


def qa(question: str, answer: str, answers: list[str] | None = None, **kw) -> MergedQA:
    return MergedQA(
        sources=["vqav2"],
        source_ids=["1"],
        question=question,
        answer=answer,
        answers=[Answer(text=a) for a in (answers or [answer])],
        **kw,
    )


def merged(key: str, *qas: MergedQA) -> MergedImage:
    return MergedImage(image_key=key, sources=["vqav2"], qas=list(qas))


GOOD = [
    ("What is the man holding?", "He is holding a red umbrella."),
    ("Where is he standing?", "On a busy street."),
]


def reasons_of(chat: Chat, cfg: FilterConfig | None = None, m: dict | None = None) -> list[str]:
    res = filter_chats([chat], m or {}, cfg or FilterConfig())
    return res.rejects[0].reasons if res.rejects else []


def test_good_chat_kept_without_grounding():
    res = filter_chats([make_chat("coco_1", GOOD)], {}, FilterConfig())
    assert len(res.kept) == 1 and not res.rejects
    assert res.kept[0].grounding_score is None  # nothing checkable -> None, never rejected


@pytest.mark.parametrize(
    ("turns", "code"),
    [
        ([("user", "Q?"), ("user", "Q again?")], "bad_role_order"),
        ([("assistant", "Hi there."), ("user", "What is it?")], "bad_role_order"),
        ([("user", "What is it?"), ("assistant", "   ")], "empty_turn"),
    ],
)
def test_structure_roles_and_empty(turns, code):
    chat = Chat(
        id="coco_1",
        image_key="coco_1",
        turns=[Turn(role=r, content=c) for r, c in turns],
        sources=["coco"],
        generator=GEN,
    )
    assert code in reasons_of(chat)


def test_too_few_and_too_many_turns():
    assert reasons_of(make_chat("coco_1", GOOD), FilterConfig(min_turns=6)) == ["too_few_turns"]
    assert reasons_of(make_chat("coco_1", GOOD * 3), FilterConfig(max_turns=4)) == ["too_many_turns"]


def test_turn_length_bounds():
    assert reasons_of(make_chat("coco_1", [("What is it?", "A")]), FilterConfig(min_turn_chars=2)) == [
        "turn_too_short"
    ]
    long = [("What is it?", "word " * 100)]
    assert reasons_of(make_chat("coco_1", long), FilterConfig(max_turn_chars=200)) == ["turn_too_long"]


def test_placeholder_rules():
    raw = make_chat("coco_1", [("<image>\nWhat is it?", "A dog.")])
    assert reasons_of(raw) == ["unexpected_placeholder"]
    exported = FilterConfig(exported=True)
    assert reasons_of(raw, exported) == []
    assert reasons_of(make_chat("coco_1", [("What is it?", "A dog.")]), exported) == ["placeholder_count"]
    twice = make_chat("coco_1", [("<image>\nWhat is it?", "A dog <image>.")])
    assert reasons_of(twice, exported) == ["placeholder_count"]


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ("As an AI, I cannot see the image.", "refusal"),
        ("I'm sorry, but that is unclear.", "refusal"),
        ("I cannot see the image, but probably a dog.", "refusal"),
        ("The caption says a dog is running.", "annotation_leak"),
        ("According to the annotations, there are two dogs.", "annotation_leak"),
        ("The bounding box shows a dog on the left.", "annotation_leak"),
        ("The dog is at [0.12, 0.40, 0.2, 0.3].", "annotation_leak"),
        ('{"question": "what", "answer": "dog"}', "markup_leak"),
    ],
)
def test_boilerplate_and_leakage(answer, code):
    assert code in reasons_of(make_chat("coco_1", [("What is in the picture?", answer)]))


def test_prompt_echo():
    prompt = "You write a conversation between a curious person and a visual assistant.\nAnswer only from the annotations."
    cfg = FilterConfig(prompt_text=prompt)
    echo = make_chat(
        "coco_1",
        [("What is this?", "I write a conversation between a curious person and a visual assistant.")],
    )
    assert reasons_of(echo, cfg) == ["prompt_echo"]
    assert reasons_of(make_chat("coco_1", GOOD), cfg) == []


BOILERPLATE_MIX = [
    make_chat("coco_1", GOOD),
    make_chat("coco_2", [("What is it?", "As an AI I can't see it.")]),
    make_chat("coco_3", [("Describe the CAPTION.", "A dog.")]),
    make_chat("coco_4", [("What is it?", '{"answer": "dog"}')]),
    make_chat("coco_5", [("What is it?", "I'm sorry, the dataset says a dog.")]),
    make_chat("coco_6", [*GOOD, ("Ünïcode?", "Straße, ß.")]),
]


def test_boilerplate_batch_matches_python_re():
    """The pattern checks over a batch of dialogues (polars) give per dialogue what Python's `re`
    gives turn by turn with the same patterns."""
    import re

    from unimm.filter.boilerplate import boilerplate_reasons_batch

    cfg = FilterConfig()
    expected = []
    for chat in BOILERPLATE_MIX:
        codes = []
        for code, patterns in (
            ("refusal", cfg.refusal_patterns),
            ("annotation_leak", cfg.leak_patterns),
            ("markup_leak", cfg.markup_patterns),
        ):
            if any(re.search(p, t.content, re.I) for p in patterns for t in chat.turns):
                codes.append(code)
        expected.append(codes)
    assert boilerplate_reasons_batch(BOILERPLATE_MIX, cfg) == expected
    assert expected[1:5] == [
        ["refusal"],
        ["annotation_leak"],
        ["markup_leak"],
        ["refusal", "annotation_leak"],
    ]
    assert boilerplate_reasons_batch([], cfg) == []


def test_boilerplate_pattern_only_python_can_compile():
    """A user pattern with look-ahead (which Rust's regex engine rejects) still applies, through
    Python's `re`: same reasons as any other pattern."""
    cfg = FilterConfig(leak_patterns=[r"\bdog(?! park)\b"])
    chats = [
        make_chat("coco_1", [("Where?", "At the dog park.")]),
        make_chat("coco_2", [("What?", "A DOG.")]),
    ]
    assert [reasons_of(c, cfg) for c in chats] == [[], ["annotation_leak"]]


def test_vqa_answer_normalisation():
    assert normalize_answer("Two.") == "2"
    assert normalize_answer("The Dog") == "dog"
    assert normalize_answer("dont") == "don't"
    assert normalize_answer("1,000") == "1000"


def test_grounding_agreeing_answer_scores_one():
    m = {
        "coco_1": merged(
            "coco_1",
            qa("What color is the umbrella?", "red"),
            qa("Is it raining?", "yes"),
            qa("How many people are there?", "2", ["2", "2", "two", "3"]),
        )
    }
    chat = make_chat(
        "coco_1",
        [
            ("What colour is the umbrella?", "The umbrella is red."),
            ("Is it raining?", "Yes, it is raining heavily."),
            ("How many people are there?", "There are two people."),
        ],
    )
    res = filter_chats([chat], m, FilterConfig())
    assert len(res.kept) == 1
    assert res.kept[0].grounding_score == 1.0


def test_grounding_yes_no_contradiction_rejected():
    m = {"coco_1": merged("coco_1", qa("Is it raining?", "no"))}
    chat = make_chat("coco_1", [("Is it raining?", "Yes, it is raining."), *GOOD])
    res = filter_chats([chat], m, FilterConfig())
    assert not res.kept
    assert res.rejects[0].reasons == ["grounding_contradiction:yesno", "grounding_below_threshold:0.000"]
    assert res.rejects[0].chat.grounding_score == 0.0


def test_grounding_count_contradiction_rejected():
    m = {"coco_1": merged("coco_1", qa("How many dogs are in the picture?", "3", ["3", "three", "3"]))}
    chat = make_chat("coco_1", [("How many dogs are in the picture?", "There are five dogs."), *GOOD])
    # the QA check and the count check (the annotated count answer is evidence too) both catch it
    assert reasons_of(chat, FilterConfig(min_grounding=0.0), m) == [
        "count_mismatch:dog:5!=3",
        "grounding_contradiction:count",
    ]


def test_grounding_open_mismatch_lowers_score():
    m = {
        "coco_1": merged(
            "coco_1", qa("What is the man holding?", "umbrella"), qa("Where is he standing?", "beach")
        )
    }
    chat = make_chat("coco_1", GOOD)  # umbrella agrees, street contradicts beach
    qa_only = {"grounding_checks": ["qa"]}
    res = filter_chats([chat], m, FilterConfig(min_grounding=0.6, **qa_only))
    assert [reason_code(r) for r in res.rejects[0].reasons] == ["grounding_below_threshold"]
    assert res.rejects[0].chat.grounding_score == 0.5
    kept = filter_chats([chat], m, FilterConfig(min_grounding=0.5, **qa_only)).kept[0]
    assert kept.grounding_score == 0.5
    # with every check, the umbrella the answer names is a supported object too (2 of 3 checks pass)
    assert filter_chats([chat], m, FilterConfig(min_grounding=0.6)).kept[0].grounding_score == pytest.approx(
        2 / 3
    )


def test_grounding_uses_choices_and_unrelated_questions_unchecked():
    mc = MergedQA(
        sources=["aokvqa"],
        source_ids=["q"],
        question="What sport is being played?",
        choices=["golf", "tennis", "polo"],
        correct_choice=1,
    )
    m = {"coco_1": merged("coco_1", mc)}
    chat = make_chat(
        "coco_1",
        [
            ("What sport is being played here?", "They are playing tennis."),
            ("Is the sky blue?", "No, it is grey."),
        ],
    )
    res = filter_chats([chat], m, FilterConfig())
    assert res.kept[0].grounding_score == 1.0
    wrong = make_chat("coco_1", [("What sport is being played here?", "They are playing golf.")])
    assert filter_chats([wrong], m, FilterConfig()).rejects[0].chat.grounding_score == 0.0


def test_all_reasons_collected_and_nothing_lost():
    bad = make_chat("coco_2", [("What does the caption say?", "As an AI I cannot see it.")])
    chats = [make_chat("coco_1", GOOD), bad, make_chat("coco_3", GOOD)]
    res = filter_chats(chats, {}, FilterConfig())
    assert len(res.kept) + len(res.rejects) == len(chats)
    assert {c.id for c in res.kept} | {r.id for r in res.rejects} == {c.id for c in chats}
    assert res.rejects[0].reasons == ["refusal", "annotation_leak"]
    assert res.rejects[0].stage == "filter"
    assert res.counts == {"input": 3, "kept": 2, "rejected": 1, "annotation_leak": 1, "refusal": 1}


def test_cli_filter_writes_kept_and_rejects_per_step(tmp_path, cli):
    import json

    import polars as pl

    from tests.pipeline_helpers import pipeline_work, replace_chats, replace_merged
    from unimm.tables import frame_to_chats, frame_to_rejects

    work = pipeline_work(tmp_path / "work", "generate")
    replace_merged(work, [merged("coco_1", qa("Is it raining?", "no"))])
    chats = [
        make_chat("coco_1", [("Is it raining?", "Yes, it is raining."), *GOOD]),
        make_chat("coco_2", GOOD, image_key="coco_2"),
        make_chat("coco_3", GOOD, image_key="coco_3"),  # exact duplicate of coco_2
        make_chat("coco_4", [("What is this?", "As an AI, I cannot tell.")]),
    ]
    replace_chats(work, "generate", chats)
    evalf = tmp_path / "eval.txt"
    evalf.write_text("COCO_val2014_000000000099.jpg\n")
    r = cli("filter", "--work", work, "--eval", evalf)
    assert r.returncode == 0, r.stderr
    kept = frame_to_chats(pl.read_parquet(work / "decontaminate" / "chats-00000.parquet"))
    rejects = [
        r
        for step in ("filter", "dedup", "decontaminate")
        for r in frame_to_rejects(pl.read_parquet(work / "rejects" / step / "00000.parquet"))
    ]
    assert [c.id for c in kept] == ["coco_2"]
    assert {r.id: (r.stage, r.reasons[0]) for r in rejects} == {
        "coco_1": ("filter", "grounding_contradiction:yesno"),
        "coco_3": ("dedup", "exact_duplicate:coco_2"),
        "coco_4": ("filter", "refusal"),
    }
    counts = {
        step: json.loads((work / "markers" / step / "00000.done.json").read_text())["counts"]
        for step in ("filter", "dedup", "decontaminate")
    }
    assert (counts["filter"]["input"], counts["filter"]["output"]) == (4, 2)
    assert counts["dedup"]["dropped"] == {"exact_duplicate": 1}
    assert (counts["decontaminate"]["input"], counts["decontaminate"]["output"]) == (1, 1)

    r = cli("filter", "--work", tmp_path / "empty")
    assert r.returncode == 2 and "has not run" in r.stderr and "Traceback" not in r.stderr


def test_a_dialogue_the_cheap_checks_reject_is_not_grounded_unless_asked() -> None:
    """Grounding (and the judge) run on what passes the structure and boilerplate checks: a
    reject keeps the cheap reasons; `ground_rejected` adds every grounding reason too."""
    m = {"coco_1": merged("coco_1", qa("Is there a dog?", "no"), qa("How many people are there?", "2"))}
    chat = make_chat("coco_1", [("Is there a dog?", "Yes."), ("How many people are there?", "5")])
    res = filter_chats([chat], m, FilterConfig())
    [rej] = res.rejects
    assert rej.reasons == ["turn_too_short"] and rej.chat.grounding is None
    assert rej.chat.grounding_score is None
    [rej] = filter_chats([chat], m, FilterConfig(ground_rejected=True)).rejects
    assert rej.reasons[0] == "turn_too_short" and rej.chat.grounding is not None
    assert {reason_code(r) for r in rej.reasons[1:]} >= {"grounding_contradiction"}
