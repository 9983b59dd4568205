"""The openai backend against faulty servers (tests/fault_server.py on 127.0.0.1): bad response
bodies, servers that hang, and servers that echo the API key in their error text."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest

from tests.fault_server import MODEL, FaultServer, Reply, Seen, dialogue_reply, json_reply
from tests.test_generate_template import fixture_records, write_merged
from unimm.generate import GenerateConfig, generate_chats
from unimm.generate.cache import CACHE_FILE

SECRET = "sk-unimm-faults-SECRET-41d2e8"
GOOD_KEY, BAD_KEY = "coco_000000000042", "vg_2417"  # the dog record and the kite record
BAD_BODIES = {
    "truncated_json": Reply(200, dialogue_reply().body[:57]),
    "non_utf8": Reply(200, b'{"id": "cmpl-1", "choices": "\xff\xfe\xfa"}'),
    "text_plain": Reply(200, b"upstream busy, try again later", content_type="text/plain"),
}


def records() -> list:
    return fixture_records()[:2]


def fast_cfg(url: str, **kw: object) -> GenerateConfig:
    """An openai config with backoffs short enough for tests."""
    base = dict(backend="openai", model=MODEL, base_urls=[url], concurrency=2, backoff_s=0.01,
                backoff_max_s=0.05, retries=2)  # fmt: skip
    return GenerateConfig(**{**base, **kw})


def is_models(seen: Seen) -> bool:
    return seen.path.endswith("/models")


@pytest.mark.parametrize("kind", sorted(BAD_BODIES))
def test_bad_body_is_retried_then_counted(tmp_path: Path, kind: str) -> None:
    def behaviour(seen: Seen) -> Reply:
        # The kite record and the model list get the broken body; the dog record a good answer.
        return BAD_BODIES[kind] if is_models(seen) or b"kite" in seen.body else dialogue_reply()

    with FaultServer(behaviour) as srv:
        cfg = fast_cfg(srv.url)
        res = generate_chats(records(), cfg, tmp_path / "cache")
        assert [c.image_key for c in res.chats] == [GOOD_KEY]
        assert [(f.image_key, f.reason, f.attempts) for f in res.failures] == [(BAD_KEY, "bad_response", 3)]
        assert srv.chat_requests(b"kite") == 3 and res.summary.retries == 2
        assert res.summary.failures_by_reason == {"bad_response": 1}
        # Transient: not cached as final, so the next run sends it again.
        again = generate_chats(records(), cfg, tmp_path / "cache")
        assert again.summary.cache_hits == 1 and srv.chat_requests(b"kite") == 6
    lines = (tmp_path / "cache" / CACHE_FILE).read_text().splitlines()
    assert [json.loads(line)["status"] for line in lines] == ["ok"]


def run_cli(cli, work: Path, fault: Reply):
    """`unimm generate` on the two records against a server that answers the kite record with
    `fault` and the dog record with a valid dialogue."""

    def behaviour(seen: Seen) -> Reply:
        return fault if b"kite" in seen.body else dialogue_reply()

    write_merged(work, records())
    with FaultServer(behaviour) as srv:
        return cli("generate", "--work", work, "--llm", "openai", "--model", MODEL, "--base-url", srv.url,
                   "--retries", "1", "--no-progress", timeout=60)  # fmt: skip


def test_cli_bad_body_does_not_kill_the_run(tmp_path: Path, cli) -> None:
    # Beside it, the same run against a server that answers 503 instead: the two must end alike.
    faults = {"bad": BAD_BODIES["text_plain"], "503": json_reply({"error": {"message": "overloaded"}}, 503)}
    with ThreadPoolExecutor(2) as pool:
        runs = dict(
            zip(faults, pool.map(lambda k: run_cli(cli, tmp_path / k, faults[k]), faults), strict=True)
        )
    r = runs["bad"]
    assert "Traceback" not in r.stdout + r.stderr
    failures = pl.read_parquet(tmp_path / "bad" / "generate" / "failures-00000.parquet")
    assert failures.select("image_key", "reason", "attempts").rows() == [(BAD_KEY, "bad_response", 2)]
    chats = pl.read_parquet(tmp_path / "bad" / "generate" / "chats-00000.parquet")
    assert chats["image_key"].to_list() != [BAD_KEY] and chats.height == 1
    assert r.returncode == runs["503"].returncode != 1, r.stderr


def test_hung_server_times_out_naming_the_server(tmp_path: Path) -> None:
    with FaultServer(lambda seen: None) as srv:
        cfg = fast_cfg(srv.url, connect_timeout_s=0.5, models_timeout_s=0.2, timeout_s=0.3, retries=1)
        t0 = time.monotonic()
        res = generate_chats(records()[:1], cfg, tmp_path / "cache")
        elapsed = time.monotonic() - t0
    assert elapsed < 3.0
    [f] = res.failures
    assert (f.reason, f.attempts) == ("timeout", 2)
    assert srv.url in f.detail and "timeout after" in f.detail


def test_request_deadline_bounds_retries_of_a_hung_server(tmp_path: Path) -> None:
    with FaultServer(lambda seen: None) as srv:
        # Each attempt alone could wait 30 s and there are 6 of them: the deadline must cut in.
        cfg = fast_cfg(srv.url, models_timeout_s=0.2, timeout_s=30, retries=5, request_deadline_s=1.0)
        t0 = time.monotonic()
        res = generate_chats(records()[:1], cfg, tmp_path / "cache")
        elapsed = time.monotonic() - t0
    assert elapsed < 3.0
    [f] = res.failures
    assert f.reason == "timeout" and srv.url in f.detail and "deadline" in f.detail
    assert res.summary.failures_by_reason == {"timeout": 1}


def test_hung_model_list_costs_one_short_wait(tmp_path: Path) -> None:
    def behaviour(seen: Seen) -> Reply | None:
        return None if is_models(seen) else dialogue_reply()

    with FaultServer(behaviour) as srv:
        cfg = fast_cfg(srv.url, models_timeout_s=0.3, timeout_s=10)
        t0 = time.monotonic()
        res = generate_chats(records(), cfg, tmp_path / "cache")
        elapsed = time.monotonic() - t0
        models_calls = sum(map(is_models, srv.seen))
    assert [c.image_key for c in res.chats] == [GOOD_KEY, BAD_KEY] and not res.failures
    assert models_calls == 1 and elapsed < 2.0


def test_default_timeouts_are_derived_and_bounded() -> None:
    t = GenerateConfig(backend="openai", model=MODEL).timeouts()
    assert t.connect_s <= 10 and t.models_s <= 10
    assert t.deadline_s is not None and t.read_s < t.deadline_s <= 300  # a few minutes at most
    longer = GenerateConfig(backend="openai", model=MODEL, max_tokens=4096).timeouts()
    assert longer.read_s > t.read_s  # the read timeout scales with the answer's length
    # `timeout_s` (the key older configs use) is the read timeout of one attempt; the deadline
    # always leaves room for one full attempt.
    explicit = GenerateConfig(backend="openai", model=MODEL, timeout_s=600).timeouts()
    assert explicit.read_s == 600 and explicit.deadline_s is not None and explicit.deadline_s >= 600
    assert GenerateConfig(backend="openai", model=MODEL, request_deadline_s=42).timeouts().deadline_s == 42
    assert GenerateConfig(backend="local").timeouts().deadline_s is None  # no server to hang


@pytest.mark.parametrize(("status", "retries"), [(401, "2"), (500, "1")])
def test_key_echoed_by_the_server_is_never_stored(tmp_path: Path, cli, status: int, retries: str) -> None:
    def behaviour(seen: Seen) -> Reply:
        # Like a proxy that quotes the credentials it rejects.
        auth = seen.headers.get("authorization", "")
        return json_reply({"error": {"message": f"invalid key {auth} (key: {auth[7:]})"}}, status)

    write_merged(tmp_path, records()[:1])
    with FaultServer(behaviour) as srv:
        r = cli("generate", "--work", tmp_path, "--llm", "openai", "--model", MODEL, "--base-url", srv.url,
                "--retries", retries, "--no-progress", env={"UNIMM_API_KEY": SECRET}, timeout=60)  # fmt: skip
        sent = {s.headers.get("authorization") for s in srv.seen}
    assert r.returncode != 1 and "Traceback" not in r.stderr, r.stderr  # a recorded failure, no crash
    assert sent == {f"Bearer {SECRET}"}  # the server did get (and echo) the key
    assert SECRET not in r.stdout + r.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert CACHE_FILE in {p.name for p in files}
    for p in files:
        # Parquet pages may be compressed: look at the decoded values as well as the raw bytes.
        decoded = pl.read_parquet(p).write_ndjson().encode() if p.suffix == ".parquet" else b""
        assert SECRET.encode() not in p.read_bytes() + decoded, p
    failures = pl.read_parquet(tmp_path / "generate" / "failures-00000.parquet")
    assert failures["reason"].to_list() == [f"http_{status}"]
    assert "invalid key" in failures["detail"][0]  # the server's message is kept, minus the key
