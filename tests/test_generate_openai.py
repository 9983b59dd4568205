"""The openai backend against a real OpenAI-compatible server on 127.0.0.1: llama-cpp-python's
server on the embedded SmolLM2 GGUF, with a small fault-injecting proxy in front of it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import run_unimm
from tests.test_generate_template import fixture_records, write_merged
from unimm.generate import GenerateConfig, generate_chats
from unimm.generate.cache import CACHE_FILE
from unimm.generate.local import embedded_gguf
from unimm.generate.serve import llamacpp_command, start, stop
from unimm.schema import Chat, MergedImage

pytestmark = pytest.mark.slow
MODEL = "smollm2"
SECRET = "sk-unimm-test-SECRET-7f3a9c"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, log: Path) -> subprocess.Popen:
    cmd = llamacpp_command(embedded_gguf(), host="127.0.0.1", port=port, n_ctx=2048, model_alias=MODEL)
    return start(cmd, f"http://127.0.0.1:{port}/v1", timeout_s=90, log=log)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    proc = start_server(port, tmp_path_factory.mktemp("srv") / "server.log")
    try:
        yield port
    finally:
        stop(proc)


class Proxy:
    """Forwards to the real server; can fail every Nth chat request with a status, rewrite the
    server's `owned_by`, or corrupt the model's answer. Counts what passes through."""

    def __init__(self, upstream: int, fail_every: int = 0, fail_status: int = 500, owner: str | None = None,
                 corrupt: bool = False) -> None:  # fmt: skip
        self.upstream, self.fail_every, self.fail_status = upstream, fail_every, fail_status
        self.owner, self.corrupt = owner, corrupt
        self.chat_requests = self.injected = self.completed = 0
        self.auth_headers: set[str] = set()
        self.formats: list[str | None] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self, None)

            def do_POST(self) -> None:
                proxy.handle(self, self.rfile.read(int(self.headers.get("Content-Length", 0))))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def handle(self, h: BaseHTTPRequestHandler, body: bytes | None) -> None:
        self.auth_headers.add(h.headers.get("Authorization", ""))
        is_chat = h.path.endswith("/chat/completions")
        if is_chat:
            with self.lock:
                self.chat_requests += 1
                n = self.chat_requests
                self.formats.append((json.loads(body).get("response_format") or {}).get("type"))
            if self.fail_every and n % self.fail_every == 0:
                with self.lock:
                    self.injected += 1
                extra = {"Retry-After": "0"} if self.fail_status == 429 else {}
                return self.reply(
                    h, self.fail_status, json.dumps({"error": {"message": "injected fault"}}).encode(), extra
                )
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=120)
        conn.request(h.command, h.path, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data, status = resp.read(), resp.status
        conn.close()
        if h.path.endswith("/models") and self.owner:
            doc = json.loads(data)
            for m in doc["data"]:
                m["owned_by"] = self.owner
            data = json.dumps(doc).encode()
        if is_chat and status == 200:
            with self.lock:
                self.completed += 1
            if self.corrupt:
                doc = json.loads(data)
                content = doc["choices"][0]["message"]["content"] or ""
                doc["choices"][0]["message"]["content"] = content[: len(content) // 2] + " <garbled"
                data = json.dumps(doc).encode()
        self.reply(h, status, data)

    @staticmethod
    def reply(
        h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str] | None = None
    ) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def proxy_factory(server: int) -> Iterator:
    made: list[Proxy] = []

    def make(**kw: object) -> Proxy:
        made.append(Proxy(server, **kw))
        return made[-1]

    yield make
    for p in made:
        p.close()


def records(n: int) -> list[MergedImage]:
    base = fixture_records()[0]
    texts = ["A dog lying on a couch.", "Two cats on a bed.", "A red bus on a street.", "A man riding a horse.",
             "A plate of pasta on a table.", "A boat on a lake."]  # fmt: skip
    return [
        base.model_copy(
            update={
                "image_key": f"coco_{i:012d}",
                "captions": [base.captions[0].model_copy(update={"text": t})],
            }
        )
        for i, t in enumerate(texts[:n])
    ]


def cfg_for(url: str | list[str], **kw: object) -> GenerateConfig:
    urls = [url] if isinstance(url, str) else url
    base = dict(backend="openai", model=MODEL, base_urls=urls, max_tokens=96, concurrency=2, backoff_s=0.05,
                backoff_max_s=0.5, timeout_s=60, retries=6)  # fmt: skip
    return GenerateConfig(**{**base, **kw})


def assert_outcome(res, recs: list[MergedImage]) -> None:
    """Every record yields exactly one chat or one recorded failure, in order."""
    keys = [c.image_key for c in res.chats] + [f.image_key for f in res.failures]
    assert sorted(keys) == sorted(r.image_key for r in recs)
    for c in res.chats:
        Chat.model_validate(c.model_dump())
        assert c.generator.backend == "openai" and c.generator.model == MODEL


def cache_ids(cache: Path) -> list[str]:
    return [json.loads(line)["request_id"] for line in (cache / CACHE_FILE).read_text().splitlines()]


def test_run_cache_and_format_detection(
    tmp_path: Path, proxy_factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNIMM_API_KEY", SECRET)
    # The proxy claims to be vLLM: auto sends the json_schema envelope, llama-cpp-python's server
    # rejects it with a 500 validation error, and the backend falls back to json_object.
    proxy = proxy_factory(owner="vllm")
    recs = records(2)
    cfg = cfg_for(proxy.url, concurrency=1)
    res = generate_chats(recs, cfg, tmp_path / "cache")
    assert_outcome(res, recs)
    assert res.chats, res.failures  # the real model answers most requests with a valid dialogue
    assert proxy.formats[0] == "json_schema" and set(proxy.formats[1:]) == {"json_object"}
    assert res.summary.response_formats == {proxy.url: "json_object"}
    assert res.summary.requests_sent == len(proxy.formats) - 1  # the refused envelope was re-sent at once
    assert res.summary.prompt_tokens > 0 and res.summary.completion_tokens > 0
    assert proxy.auth_headers >= {f"Bearer {SECRET}"}  # the key comes from the environment
    sent = proxy.chat_requests
    # An identical re-run sends nothing; a longer run sends only what is new.
    again = generate_chats(recs, cfg, tmp_path / "cache")
    assert proxy.chat_requests == sent and again.summary.cache_hits == 2 and again.summary.requests_sent == 0
    assert [c.model_dump() for c in again.chats] == [c.model_dump() for c in res.chats]
    more = generate_chats(records(3), cfg_for(proxy.url, response_format="json_object"), tmp_path / "cache")
    assert more.summary.cache_hits == 2 and proxy.chat_requests > sent
    assert len(set(cache_ids(tmp_path / "cache"))) == len(cache_ids(tmp_path / "cache"))
    # A direct server (owned_by "me") is detected as llama.cpp: json_object from the start.
    direct = proxy_factory()
    generate_chats(records(5)[4:], cfg_for(direct.url), tmp_path / "cache2")
    assert direct.formats[0] == "json_object"
    for p in (tmp_path / "cache").rglob("*"):
        assert SECRET not in p.read_text()
    assert SECRET not in res.summary.model_dump_json()


@pytest.mark.parametrize("status", [500, 429])
def test_transient_errors_are_retried(tmp_path: Path, proxy_factory, status: int) -> None:
    proxy = proxy_factory(fail_every=2, fail_status=status)
    recs = records(2)
    res = generate_chats(recs, cfg_for(proxy.url, response_format="json_object"), tmp_path / "cache")
    assert_outcome(res, recs)
    assert proxy.injected >= 1 and res.summary.retries >= proxy.injected
    assert not any(f.reason.startswith("http_") for f in res.failures)  # every fault was retried through
    assert len(cache_ids(tmp_path / "cache")) == 2


def test_malformed_output_becomes_failure_after_bounded_retries(tmp_path: Path, proxy_factory) -> None:
    proxy = proxy_factory(corrupt=True)
    recs = records(1)
    cfg = cfg_for(proxy.url, response_format="json_object", invalid_retries=1)
    res = generate_chats(recs, cfg, tmp_path / "cache")
    assert res.chats == []
    assert [(f.reason, f.attempts) for f in res.failures] == [("invalid_json", 2)]
    assert proxy.chat_requests == 2 and res.summary.failures_by_reason == {"invalid_json": 1}
    # The failure is recorded: a re-run does not send it again unless asked to.
    generate_chats(recs, cfg, tmp_path / "cache")
    assert proxy.chat_requests == 2
    generate_chats(recs, cfg.model_copy(update={"retry_failures": True}), tmp_path / "cache")
    assert proxy.chat_requests == 4


def test_base_urls_round_robin(tmp_path: Path, proxy_factory) -> None:
    a, b = proxy_factory(), proxy_factory()
    recs = records(2)
    res = generate_chats(recs, cfg_for([a.url, b.url], response_format="json_object"), tmp_path / "cache")
    assert_outcome(res, recs)
    assert a.chat_requests >= 1 and b.chat_requests >= 1


def test_permanent_error_is_not_retried(tmp_path: Path, proxy_factory) -> None:
    proxy = proxy_factory(fail_every=1, fail_status=400)
    res = generate_chats(records(1), cfg_for(proxy.url), tmp_path / "cache")
    assert [(f.reason, f.attempts) for f in res.failures] == [("http_400", 1)]


def test_server_killed_mid_run_and_restarted(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    proc = start_server(port, log)
    cache = tmp_path / "cache"
    recs = records(2)
    cfg = cfg_for(f"http://127.0.0.1:{port}/v1", response_format="json_object", retries=40, backoff_max_s=0.5)
    box: dict = {}
    runner = threading.Thread(target=lambda: box.update(res=generate_chats(recs, cfg, cache)))
    try:
        runner.start()
        deadline = time.monotonic() + 60
        while not ((cache / CACHE_FILE).exists() and (cache / CACHE_FILE).read_text().count("\n") >= 1):
            assert time.monotonic() < deadline, "no request finished"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)  # mid-run: the other requests are queued or in flight
        proc.wait()
        time.sleep(1.0)
        proc = start_server(port, log)
        runner.join(timeout=120)
        assert not runner.is_alive()
    finally:
        stop(proc)
    res = box["res"]
    assert_outcome(res, recs)
    assert res.summary.retries >= 1
    ids = cache_ids(cache)
    assert len(ids) == len(set(ids)) == 2  # nothing lost, nothing answered twice
    assert not any(f.reason in {"connection_error", "timeout"} for f in res.failures)


def test_interrupted_run_resumes(tmp_path: Path, server: int, proxy_factory) -> None:
    """A crashed client (here: a run cut short by --limit, then a torn cache line) resumes
    without re-sending finished requests."""
    proxy = proxy_factory()
    cfg = cfg_for(proxy.url, response_format="json_object")
    generate_chats(records(1), cfg, tmp_path / "cache")
    first = proxy.chat_requests
    with open(tmp_path / "cache" / CACHE_FILE, "ab") as f:
        f.write(b'{"request_id": "torn')
    res = generate_chats(records(2), cfg, tmp_path / "cache")
    assert res.summary.cache_hits == 1 and proxy.chat_requests - first == res.summary.requests_sent >= 1
    assert len(set(cache_ids_clean(tmp_path / "cache"))) == 2


def cache_ids_clean(cache: Path) -> list[str]:
    out = []
    for line in (cache / CACHE_FILE).read_text().splitlines():
        try:
            out.append(json.loads(line)["request_id"])
        except json.JSONDecodeError:
            continue
    return out


def test_cli_openai_never_leaks_the_key(tmp_path: Path, proxy_factory, cli) -> None:
    proxy = proxy_factory()
    write_merged(tmp_path, records(1))
    r = cli("generate", "--work", tmp_path, "--llm", "openai", "--model", MODEL, "--base-url", proxy.url,
            "--max-tokens", "96", "--no-progress", env={"UNIMM_API_KEY": SECRET})  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"Bearer {SECRET}" in proxy.auth_headers
    assert SECRET not in r.stdout + r.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"chats-00000.parquet", "failures-00000.parquet", "config.json", CACHE_FILE} <= {
        p.name for p in files
    }
    for p in files:
        assert SECRET.encode() not in p.read_bytes(), p
    counts = json.loads((tmp_path / "markers" / "generate" / "00000.done.json").read_text())["counts"]
    assert counts["input"] == 1 and counts["extra"]["requests_sent"] >= 1
    assert os.environ.get("UNIMM_API_KEY") != SECRET  # the test itself did not leak it either


def test_build_sends_again_after_an_outage(tmp_path: Path, proxy_factory) -> None:
    """The proxy answers every chat request 503 (the real server stands behind it): the build
    stops short with exit 3 naming the server and marks no generation done; once the server is
    back, the same command sends the requests and finishes."""
    data, work, out = tmp_path / "data", tmp_path / "work", tmp_path / "shards"
    assert run_unimm("sample", "--out", data).returncode == 0
    proxy = proxy_factory(fail_every=1, fail_status=503)
    args = ["build", "--sources", "coco,vqav2", "--data-root", data, "--work", work, "--out", out,
            "--llm", "openai", "--model", MODEL, "--base-url", proxy.url, "--limit", "2",
            "--set", "generate.max_tokens=96", "--set", "generate.retries=1", "--set", "generate.backoff_s=0.05",
            "--set", "filter.reject_hallucinations=false", "--set", "filter.min_grounding=0"]  # fmt: skip
    r = run_unimm(*args)
    assert r.returncode == 3, r.stderr
    assert "generation incomplete" in r.stderr and proxy.url in r.stderr and "http_503" in r.stderr
    assert not list((work / "markers").glob("generate/*.done.json"))
    assert not out.exists()

    proxy.fail_every = 0  # the server is back
    r = run_unimm(*args)
    assert r.returncode == 0, r.stderr
    counts = json.loads((work / "markers" / "generate" / "00000.done.json").read_text())["counts"]
    assert counts["extra"]["requests_sent"] >= 2 and counts["extra"]["transient_failures"] == 0
    assert counts["output"] + sum(counts["dropped"].values()) == counts["input"] == 2
    assert json.loads((out / "manifest.json").read_text())["total_samples"] <= 2


def test_generate_exits_non_zero_when_the_server_never_answers(tmp_path: Path, proxy_factory, cli) -> None:
    proxy = proxy_factory(fail_every=1, fail_status=503)
    write_merged(tmp_path, records(2))
    r = cli("generate", "--work", tmp_path, "--llm", "openai", "--model", MODEL, "--base-url", proxy.url,
            "--retries", "0", "--no-progress")  # fmt: skip
    assert r.returncode == 3
    assert "generation incomplete: 2 request(s)" in r.stderr and "http_503" in r.stderr
    assert (tmp_path / "generate" / "failures-00000.parquet").exists()  # the failures are still recorded
    assert not (tmp_path / "markers" / "generate").exists()  # and the next run sends them again
