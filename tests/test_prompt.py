"""Prompt sets: rendering, the budget's cutting order, the fingerprint, message layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_generate_template import fixture_records
from unimm.errors import ConfigError, InputError
from unimm.generate import GenerateConfig, prompt_fingerprint
from unimm.generate.prompts import default_prompts_dir, load_prompt_set, prompt_set_for
from unimm.generate.render import CUT_ORDER, render_record
from unimm.generate.runner import request_id
from unimm.schema import DialogueResponse, MergedImage


def big_record(n: int = 30) -> MergedImage:
    rec = fixture_records()[0]
    qa = rec.qas[0]
    return rec.model_copy(
        update={
            "captions": [
                rec.captions[0].model_copy(update={"text": f"Caption number {i} of a dog on a couch."})
                for i in range(n)
            ],
            "qas": [qa.model_copy(update={"question": f"Question {i} about the couch?"}) for i in range(n)],
            "regions": [
                rec.regions[0].model_copy(update={"text": f"region {i} of the scene"}) for i in range(n)
            ],
            "objects": [rec.objects[0].model_copy(update={"name": f"object{i}"}) for i in range(n)],
        }
    )


def test_render_contains_every_source_kind() -> None:
    text = render_record(fixture_records()[0], None).text
    assert "A dog lying on a brown couch" in text
    assert "Q: What color is the couch? A: brown (other answers: tan)" in text
    assert "A: television" in text and "Because: Remotes like this one" in text  # A-OKVQA choice + rationale
    assert "Q: How many dogs? A: 1" in text  # majority of the human answers
    assert "Unanswerable" not in text  # no answer at all: nothing to ground on
    assert '"a black dog" [0.10, 0.20, 0.40, 0.60]' in text
    assert "remote [0.60, 0.50, 0.70, 0.55]" in text


def test_budget_cuts_objects_then_regions_then_qas_then_captions() -> None:
    rec = big_record()
    full = render_record(rec, None)
    assert sum(full.dropped.values()) == 0
    seen_order: list[str] = []
    for budget in range(full.tokens, 0, -15):
        r = render_record(rec, budget)
        assert r.tokens <= budget or r.dropped["captions"] == len(rec.captions) - 1
        cut = [k for k in CUT_ORDER if r.dropped[k]]
        # A kind is cut only once every lower-priority kind is gone entirely.
        for k in cut[:-1]:
            total = {"objects": len(rec.objects), "regions": len(rec.regions), "qas": len(rec.qas)}[k]
            assert r.dropped[k] == total
        if cut and (not seen_order or seen_order[-1] != cut[-1]):
            seen_order.append(cut[-1])
        # Cuts come from the end: the first items of each kind survive longest.
        if 0 < r.dropped["regions"] < len(rec.regions):
            assert '"region 0 of the scene"' in r.text and f'"region {len(rec.regions) - 1} ' not in r.text
    assert seen_order == ["objects", "regions", "qas", "captions"]
    tiny = render_record(rec, 1)
    assert (
        "Caption number 0" in tiny.text and "Caption number 1 " not in tiny.text
    )  # one caption always stays
    assert render_record(rec, 300) == render_record(rec, 300)  # deterministic


def test_messages_share_a_prefix_and_examples_are_valid() -> None:
    ps = prompt_set_for(GenerateConfig())
    a, b = (ps.messages(r, 1000) for r in fixture_records()[:2])
    assert a[:-1] == b[:-1] and a[-1] != b[-1]
    assert a[0]["role"] == "system" and "never" in a[0]["content"].lower()
    assert [m["role"] for m in a[1:-1]] == ["user", "assistant"] * len(ps.examples)
    assert 2 <= len(ps.examples) <= 3
    for m in a[2:-1:2]:
        DialogueResponse.model_validate_json(m["content"])
    assert ps.schema == DialogueResponse.model_json_schema()


def _copy_set(tmp_path: Path) -> GenerateConfig:
    shutil.copytree(default_prompts_dir() / "unimm_chat", tmp_path / "unimm_chat")
    return GenerateConfig(prompts_dir=tmp_path)


def test_fingerprint_tracks_template_examples_only(tmp_path: Path) -> None:
    cfg = _copy_set(tmp_path)
    base = prompt_fingerprint(cfg)
    assert base == prompt_fingerprint(GenerateConfig())  # same content, other folder
    # Sampling, model, backend and budget are not part of the prompt.
    assert base == prompt_fingerprint(
        cfg.model_copy(update={"temperature": 0.1, "model": "x", "backend": "openai"})
    )
    folder = tmp_path / "unimm_chat" / "v1"
    # Reformatting examples.json without changing content keeps the fingerprint.
    ex = json.loads((folder / "examples.json").read_text())
    (folder / "examples.json").write_text(json.dumps(ex, indent=4))
    assert prompt_fingerprint(cfg) == base
    ex[0]["output"]["turns"][0]["answer"] += " It is parked."
    (folder / "examples.json").write_text(json.dumps(ex))
    changed_examples = prompt_fingerprint(cfg)
    assert changed_examples != base
    (folder / "system.md").write_text((folder / "system.md").read_text() + "\n7. Be brief.\n")
    assert prompt_fingerprint(cfg) not in {base, changed_examples}


def test_request_id_covers_model_input_sampling_seed() -> None:
    cfg = GenerateConfig()
    rid = request_id("m", "fp", "input", cfg)
    assert rid == request_id("m", "fp", "input", cfg.model_copy(update={"concurrency": 3, "limit": 5}))
    for other in [
        request_id("m2", "fp", "input", cfg),
        request_id("m", "fp2", "input", cfg),
        request_id("m", "fp", "input2", cfg),
        request_id("m", "fp", "input", cfg.model_copy(update={"temperature": 0.2})),
        request_id("m", "fp", "input", cfg.model_copy(update={"seed": 1})),
        request_id("m", "fp", "input", cfg.model_copy(update={"max_tokens": 99})),
    ]:
        assert other != rid


def test_bad_prompt_sets_are_clear_errors(tmp_path: Path) -> None:
    cfg = _copy_set(tmp_path)
    with pytest.raises(ConfigError, match="v9 not found"):
        load_prompt_set(tmp_path, "unimm_chat", "v9")
    folder = tmp_path / "unimm_chat" / "v1"
    ex = json.loads((folder / "examples.json").read_text())
    ex[1]["output"]["turns"] = []
    (folder / "examples.json").write_text(json.dumps(ex))
    with pytest.raises(InputError) as e:
        prompt_fingerprint(cfg)
    assert "examples.json" in str(e.value) and "record 1" in str(e.value) and "output.turns" in str(e.value)
