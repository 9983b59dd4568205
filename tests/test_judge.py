"""The LLM judge: verdict mapping, config inheritance, failures recorded not raised, the build's
filter stage with `filter.judge: true` (against a small scripted OpenAI-compatible server), and
real verdicts from the embedded model and from llama.cpp's server (slow)."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import run_unimm
from tests.test_generate_openai import free_port, start_server
from tests.test_generate_template import fixture_records
from unimm.config import load_config
from unimm.errors import ConfigError
from unimm.filter.config import JudgeConfig
from unimm.generate import GenerateConfig, generate_chats
from unimm.generate.prompts import default_prompts_dir
from unimm.generate.serve import stop
from unimm.grounding.judge import (
    judge_chats,
    judge_fingerprint,
    load_judge_prompts,
    map_verdicts,
    render_dialogue,
)
from unimm.pipeline.runner import run_pipeline
from unimm.schema import Chat, JudgeResponse, JudgeVerdict, MergedImage, Turn
from unimm.tables import frame_to_chats, frame_to_rejects

ANSWER_LINE = re.compile(r"^A(\d+): ", re.M)


def template_chats(n: int = 2) -> tuple[list[Chat], dict[str, MergedImage]]:
    """Real dialogues (the template backend's) about the fixture records."""
    recs = fixture_records()[:n]
    res = generate_chats(recs, GenerateConfig(backend="template", template_max_turns=3), Path("/nonexistent"))
    return res.chats, {r.image_key: r for r in recs}


class ScriptedServer:
    """An OpenAI-compatible chat endpoint answering each judge request with `reply(n_answers)`."""

    def __init__(self, reply) -> None:
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # /v1/models: say "llama.cpp" so json_object is used
                self._send({"object": "list", "data": [{"id": "judge", "object": "model", "owned_by": "me"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                server.requests += 1
                n = len(ANSWER_LINE.findall(body["messages"][-1]["content"]))
                content = reply(n)
                self._send(
                    {
                        "id": "x",
                        "object": "chat.completion",
                        "created": 0,
                        "model": "judge",
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": content},
                            }
                        ],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
                    }
                )

            def _send(self, doc: dict) -> None:
                data = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def alternating(n: int) -> str:
    """Answer 1 supported, 2 unsupported, ...; plus a verdict for an answer that does not exist."""
    labels = ["supported", "unsupported"]
    verdicts = [{"answer": k, "verdict": labels[(k - 1) % 2], "reason": f"r{k}"} for k in range(1, n + 2)]
    return json.dumps({"verdicts": verdicts})


@pytest.fixture
def scripted() -> Iterator:
    made: list[ScriptedServer] = []

    def make(reply=alternating) -> ScriptedServer:
        made.append(ScriptedServer(reply))
        return made[-1]

    yield make
    for s in made:
        s.close()


def openai_judge(url: str, **kw: object) -> JudgeConfig:
    base = dict(backend="openai", model="judge", base_urls=[url], max_tokens=64, backoff_s=0.01, retries=1)
    return JudgeConfig(**{**base, **kw})


# -- pure pieces ---------------------------------------------------------------------------------
def test_answers_are_numbered_and_mapped_back_to_turn_indices() -> None:
    turns = [Turn(role=r, content=c) for r, c in
             [("user", "<image>\nWhat is it?"), ("assistant", "A dog."), ("user", "Color?"), ("assistant", "Black.")]]  # fmt: skip
    text, answers = render_dialogue(turns)
    assert text == "Q1: What is it?\nA1: A dog.\nQ2: Color?\nA2: Black." and answers == [1, 3]
    resp = JudgeResponse.model_validate(
        {
            "verdicts": [
                {"answer": 2, "verdict": "unsupported", "reason": " no "},
                {"answer": 9, "verdict": "supported"},  # no such answer: ignored
                {"answer": 2, "verdict": "supported"},  # repeated: the first one stands
                {"answer": 1, "verdict": "not_checkable"},
            ]
        }  # fmt: skip
    )
    assert map_verdicts(resp, answers) == [
        JudgeVerdict(turn=1, verdict="not_checkable"),
        JudgeVerdict(turn=3, verdict="unsupported", reason="no"),
    ]


def test_config_inherits_generation_backend_where_unset() -> None:
    gen = GenerateConfig(backend="openai", model="big", base_urls=["http://h:1/v1/"], max_tokens=700, seed=4)
    llm = JudgeConfig().inherit(gen).llm_config()
    assert (llm.backend, llm.model, llm.base_urls, llm.max_tokens, llm.seed) == (
        "openai",
        "big",
        ["http://h:1/v1"],
        700,
        4,
    )
    assert llm.temperature == 0.2 and (llm.prompt_set, llm.prompt_version) == ("judge", "v1")
    # Another backend takes none of generation's model or servers.
    local = JudgeConfig(backend="local").inherit(gen).llm_config()
    assert local.model is None and local.base_urls == [] and local.max_tokens == 700
    with pytest.raises(ConfigError, match="judge_llm.backend"):
        JudgeConfig().inherit(GenerateConfig(backend="template")).llm_config()


def test_fingerprint_tracks_the_judge_prompt(tmp_path: Path) -> None:
    cfg = JudgeConfig()
    assert len(judge_fingerprint(cfg)) == 64 and load_judge_prompts(cfg).examples
    shutil.copytree(default_prompts_dir() / "judge", tmp_path / "judge")
    copy = JudgeConfig(prompts_dir=tmp_path)
    assert judge_fingerprint(copy) == judge_fingerprint(cfg)
    system = tmp_path / "judge" / "v1" / "system.md"
    system.write_text(system.read_text() + "\nBe strict.")
    assert judge_fingerprint(copy) != judge_fingerprint(cfg)


# -- through the shared backend machinery, against scripted servers ---------------------------------
def test_verdicts_are_cached_and_failures_recorded_not_raised(tmp_path: Path, scripted) -> None:
    chats, merged = template_chats()
    orphan = chats[0].model_copy(update={"id": "coco_orphan", "image_key": "coco_orphan"})
    srv = scripted()
    res = judge_chats([*chats, orphan], merged, openai_judge(srv.url), tmp_path / "cache")
    assert res.failures == {"coco_orphan": "no_annotations"} and srv.requests == len(chats)
    for chat in chats:
        turns = [i for i, t in enumerate(chat.turns) if t.role == "assistant"]
        got = res.verdicts[chat.id]
        assert [v.turn for v in got] == turns  # the extra verdict for a missing answer was dropped
        assert [v.verdict for v in got][:2] == ["supported", "unsupported"][: len(turns)]
    assert res.requests_sent == len(chats) and res.fingerprint == judge_fingerprint(JudgeConfig())
    again = judge_chats(chats, merged, openai_judge(srv.url), tmp_path / "cache")
    assert again.requests_sent == 0 and again.cache_hits == len(chats) and again.verdicts == res.verdicts


def test_invalid_answers_are_retried_then_recorded(tmp_path: Path, scripted) -> None:
    chats, merged = template_chats(1)
    srv = scripted(lambda n: json.dumps({"verdicts": [{"answer": 1, "verdict": "maybe"}]}))
    res = judge_chats(chats, merged, openai_judge(srv.url, invalid_retries=1), tmp_path / "cache")
    assert res.verdicts == {} and res.failures == {chats[0].id: "schema_mismatch"}
    assert srv.requests == res.requests_sent == 2
    # A verdict list about answers the dialogue does not have is no answer either.
    srv2 = scripted(lambda n: json.dumps({"verdicts": [{"answer": n + 1, "verdict": "supported"}]}))
    res2 = judge_chats(chats, merged, openai_judge(srv2.url, invalid_retries=0), tmp_path / "cache2")
    assert res2.failures == {chats[0].id: "no_verdicts"}


def test_unreachable_server_is_a_failure(tmp_path: Path) -> None:
    chats, merged = template_chats(1)
    cfg = openai_judge(f"http://127.0.0.1:{free_port()}/v1", retries=0, timeout_s=5)
    res = judge_chats(chats, merged, cfg, tmp_path / "cache")
    assert res.failures == {chats[0].id: "connection_error"} and res.verdicts == {}


def test_build_filter_stage_runs_the_judge(tmp_path: Path, scripted) -> None:
    data, work = tmp_path / "data", tmp_path / "work"
    assert run_unimm("sample", "--out", data).returncode == 0
    srv = scripted()
    prompts = tmp_path / "prompts"  # a copy, edited in place below
    shutil.copytree(default_prompts_dir() / "judge", prompts / "judge")
    overrides = {
        "data_root": str(data),
        "generate.backend": "template",
        "generate.limit": 3,
        "generate.template_max_turns": 4,
        "filter.min_turn_chars": 1,  # the template's short VQA answers pass the cheap checks
        "filter.judge": True,
        "filter.judge_llm": {
            "backend": "openai",
            "model": "judge",
            "base_urls": [srv.url],
            "max_tokens": 64,
            "prompts_dir": str(prompts),
        },
    }
    cfg = load_config(None, overrides)
    run_pipeline(cfg, work, until="filter", log=lambda s: None)
    chats = [c for p in work.glob("filter/chats-*.parquet") for c in frame_to_chats(pl.read_parquet(p))]
    chats += [
        r.chat for p in work.glob("rejects/filter/*.parquet") for r in frame_to_rejects(pl.read_parquet(p))
    ]
    assert len(chats) == 3 and srv.requests == 3
    fp = judge_fingerprint(cfg.filter.judge_llm)
    for chat in chats:
        assert chat.grounding is not None and chat.grounding.judge_fingerprint == fp
        assert [t.judge for t in chat.grounding.turns][:2] == ["supported", "unsupported"][
            : len(chat.grounding.turns)
        ]
    marker = json.loads(next((work / "markers" / "filter").glob("*.done.json")).read_text())
    extra = marker["counts"]["extra"]
    assert extra["judge_requests_sent"] == 3 and extra["judge_failures"] == 0
    # Same config: the stage is cached. The same config with an edited judge prompt reruns it (fresh
    # requests: the prompt fingerprint is part of every request id).
    run_pipeline(cfg, work, until="filter", log=lambda s: None)
    assert srv.requests == 3
    user = prompts / "judge" / "v1" / "user.md"
    user.write_text(user.read_text() + "\nBe brief.")
    run_pipeline(cfg, work, until="filter", log=lambda s: None)
    assert srv.requests == 6
    # The judge (GPU time in production) sees only what passes the cheap structure and boilerplate
    # checks: with every dialogue too long, none is judged or grounded...
    strict = {**overrides, "filter.max_turns": 2}
    run_pipeline(load_config(None, strict), work, until="filter", log=lambda s: None)
    rejects = [r for p in work.glob("rejects/filter/*.parquet") for r in frame_to_rejects(pl.read_parquet(p))]
    assert srv.requests == 6 and len(rejects) == 3
    assert all(r.reasons == ["too_many_turns"] and r.chat.grounding is None for r in rejects)
    # ...unless every reject should list every reason (the verdicts come from the judge's cache).
    run_pipeline(
        load_config(None, {**strict, "filter.ground_rejected": True}),
        work,
        until="filter",
        log=lambda s: None,
    )
    rejects = [r for p in work.glob("rejects/filter/*.parquet") for r in frame_to_rejects(pl.read_parquet(p))]
    assert srv.requests == 6 and all(r.chat.grounding is not None for r in rejects)
    assert all(r.reasons[0] == "too_many_turns" for r in rejects)


# -- real models (slow) --------------------------------------------------------------------------------
def assert_valid(res, chats: list[Chat]) -> None:
    """Every chat is judged or recorded as failed; verdicts sit on assistant turns, in order."""
    assert set(res.verdicts) | set(res.failures) == {c.id for c in chats}
    for chat in chats:
        for v in res.verdicts.get(chat.id, []):
            JudgeVerdict.model_validate(v.model_dump())
            assert chat.turns[v.turn].role == "assistant"
        turns = [v.turn for v in res.verdicts.get(chat.id, [])]
        assert turns == sorted(set(turns))
    assert res.fingerprint == judge_fingerprint(JudgeConfig())


@pytest.mark.slow
def test_embedded_model_judges_real_dialogues(tmp_path: Path) -> None:
    chats, merged = template_chats()
    cfg = JudgeConfig(backend="local", max_tokens=128, n_ctx=2048, invalid_retries=1)
    res = judge_chats(chats, merged, cfg, tmp_path / "cache")
    assert_valid(res, chats)
    assert res.verdicts, res.failures  # constrained decoding: the small model answers the schema
    assert res.requests_sent >= len(chats) and res.completion_tokens > 0


@pytest.mark.slow
def test_llamacpp_server_judges_and_reruns_from_cache(tmp_path: Path) -> None:
    port = free_port()
    proc = start_server(port, tmp_path / "server.log")
    try:
        chats, merged = template_chats()
        cfg = JudgeConfig(backend="openai", model="smollm2", base_urls=[f"http://127.0.0.1:{port}/v1"],
                          max_tokens=128, invalid_retries=1, timeout_s=120)  # fmt: skip
        res = judge_chats(chats, merged, cfg, tmp_path / "cache")
        assert_valid(res, chats)
        assert res.verdicts, res.failures
        again = judge_chats(chats, merged, cfg, tmp_path / "cache")
        assert again.requests_sent == 0 and again.cache_hits == len(chats) - len(res.failures)
        assert again.verdicts == res.verdicts
    finally:
        stop(proc)
