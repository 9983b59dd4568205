"""Model output -> DialogueResponse: validated always, with a precise reason when unusable."""

from __future__ import annotations

import json

import pytest

from unimm.generate.openai_backend import format_for_owner, response_format_body
from unimm.generate.parse import OutputError, parse_response
from unimm.generate.prompts import response_schema

GOOD = {"turns": [{"question": "What is on the couch?", "answer": "A black dog."}]}


def test_valid_and_fenced_json() -> None:
    assert parse_response(json.dumps(GOOD)).turns[0].answer == "A black dog."
    assert (
        parse_response("```json\n" + json.dumps(GOOD) + "\n```").turns[0].question == "What is on the couch?"
    )


def test_image_placeholder_is_removed() -> None:
    doc = {"turns": [{"question": "<image>\nWhat is on the couch?", "answer": "A dog <image>."}]}
    turn = parse_response(json.dumps(doc)).turns[0]
    assert "<image>" not in turn.question + turn.answer and turn.question == "What is on the couch?"


@pytest.mark.parametrize(
    ("text", "finish", "reason"),
    [
        ("", "stop", "empty_output"),
        ('{"turns": [{"question": "a", "ans', "length", "truncated"),
        ("not json at all", "stop", "invalid_json"),
        ('{"turns": []}', "stop", "schema_mismatch"),
        ('{"turns": [{"question": "q"}]}', "stop", "schema_mismatch"),
        ('{"turns": [{"question": "q", "answer": "a", "extra": 1}]}', "stop", "schema_mismatch"),
        ('{"turns": [{"question": "<image>", "answer": "a"}]}', "stop", "schema_mismatch"),
    ],
)
def test_unusable_output_has_a_reason(text: str, finish: str, reason: str) -> None:
    with pytest.raises(OutputError) as e:
        parse_response(text, finish)
    assert e.value.reason == reason


def test_response_format_shapes() -> None:
    schema = response_schema()
    assert response_format_body("json_schema", schema) == {
        "type": "json_schema",
        "json_schema": {"name": "dialogue_response", "schema": schema, "strict": True},
    }
    assert response_format_body("json_object", schema) == {"type": "json_object", "schema": schema}
    assert response_format_body("none", schema) is None
    assert format_for_owner("vllm") == "json_schema" and format_for_owner("me") == "json_object"
    assert format_for_owner("openai") == "json_schema" and format_for_owner(None) == "json_schema"
