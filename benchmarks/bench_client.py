"""Requests/s the `openai` backend's client sustains against loopback servers that answer at once,
and how many H100 servers that keeps busy at the throughput `unimm estimate` assumes.

A raw asyncio HTTP/1.1 server (keep-alive, one child process serving every port) answers
`/v1/models` and every `/v1/chat/completions` with the same valid ~400-token dialogue, so the
only work is the client's: rendering prompts, request ids, the HTTP client, parsing and
validating answers, and the fsync'ed cache line per request. The server alone is measured too
(a raw asyncio client over keep-alive connections), to show the server is not the bottleneck.
CPU seconds per request (client process only) are reported besides requests/s: on a busy
machine they are steadier than wall time. Writes the `client` section of docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import machine_line, record, update_section  # noqa: E402

N = 2_000
CONCURRENCY = (16, 64, 256)
SERVERS = (1, 2, 4)
DIALOGUE_TOKENS = 400  # completion tokens the fake server reports per dialogue
MODEL = "bench-model"

_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


def dialogue_content() -> str:
    """A valid dialogue of about DIALOGUE_TOKENS tokens (~4 characters per token)."""
    turns = []
    for i in range(10):
        turns.append(
            {
                "question": f"What is happening in part {i} of the picture, and what colour is the main object there?",
                "answer": "A black dog is lying on a brown couch next to a remote control; the couch is brown "
                f"and the light comes from a window on the left (detail {i}).",
            }
        )
    return json.dumps({"turns": turns})


def _response(doc: object) -> bytes:
    body = json.dumps(doc).encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


MODELS = _response({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "vllm"}]})
CHAT = _response(
    {
        "id": "cmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": dialogue_content()},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1500, "completion_tokens": DIALOGUE_TOKENS, "total_tokens": 1900},
    }
)


class _Http(asyncio.Protocol):
    """Minimal HTTP/1.1: read a request head and its Content-Length body, answer a canned reply."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            m = _CONTENT_LENGTH.search(self.buf, 0, end + 2)
            total = end + 4 + (int(m.group(1)) if m else 0)
            if len(self.buf) < total:
                return
            line = self.buf[: self.buf.find(b"\r\n")]
            self.buf = self.buf[total:]
            self.t.write(MODELS if b"/models" in line else CHAT)  # type: ignore[attr-defined]


def _serve(socks: list[socket.socket], ready: mp.Event) -> None:  # type: ignore[valid-type]
    async def main() -> None:
        loop = asyncio.get_running_loop()
        for s in socks:
            await loop.create_server(_Http, sock=s, backlog=1024)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


class Servers:
    """`n` listening ports served by one child process (the client gets the other core)."""

    def __init__(self, n: int) -> None:
        self.socks = []
        for _ in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            s.listen(1024)
            self.socks.append(s)
        self.ports = [s.getsockname()[1] for s in self.socks]
        ctx = mp.get_context("fork")
        ready = ctx.Event()
        self.proc = ctx.Process(target=_serve, args=(self.socks, ready), daemon=True)
        self.proc.start()
        if not ready.wait(30):
            raise RuntimeError("bench server did not start")

    def cpu_s(self) -> float:
        import psutil

        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def close(self) -> None:
        self.proc.kill()
        self.proc.join()
        for s in self.socks:
            s.close()

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bench_records(n: int) -> list:
    """`n` distinct merged records (distinct prompts, so distinct request ids)."""
    from unimm.schema import MergedImage

    return [
        MergedImage.model_validate(
            {
                "image_key": f"coco_{i:012d}",
                "coco_id": i,
                "width": 640,
                "height": 480,
                "sources": ["coco", "vg", "vqav2"],
                "captions": [
                    {
                        "sources": ["coco"],
                        "source_ids": [f"c{i}"],
                        "text": f"A dog number {i} on a brown couch.",
                    },
                    {"sources": ["coco"], "source_ids": [f"d{i}"], "text": "A black dog naps on a sofa."},
                ],
                "qas": [
                    {
                        "sources": ["vqav2"],
                        "source_ids": [f"q{i}"],
                        "question": "What color is the couch?",
                        "answer": "brown",
                    },
                ],
                "regions": [
                    {
                        "sources": ["vg"],
                        "source_ids": [f"r{i}"],
                        "text": "a black dog",
                        "bbox": [0.1, 0.2, 0.3, 0.4],
                    }
                ],
            }
        )  # fmt: skip
        for i in range(n)
    ]


def run_client(records: list, ports: list[int], concurrency: int, servers: Servers) -> dict:
    """One generate_chats run through the openai backend; wall, client CPU and server CPU."""
    from unimm.generate import GenerateConfig, generate_chats

    cfg = GenerateConfig(
        backend="openai",
        base_urls=[f"http://127.0.0.1:{p}/v1" for p in ports],
        model=MODEL,
        concurrency=concurrency,
        max_tokens=1024,
        response_format="auto",
    )
    with tempfile.TemporaryDirectory() as d:
        srv0, cpu0, t0 = servers.cpu_s(), time.process_time(), time.perf_counter()
        res = generate_chats(records, cfg, Path(d), log=lambda _: None)
        wall = time.perf_counter() - t0
        cpu, srv = time.process_time() - cpu0, servers.cpu_s() - srv0
    s = res.summary
    assert s.chats == len(records) and s.failures == 0, s
    return {"wall": wall, "rps": len(records) / wall, "cpu_ms": 1000 * cpu / len(records),
            "srv_ms": 1000 * srv / len(records)}  # fmt: skip


async def _raw_load(port: int, body: bytes, n: int, connections: int) -> float:
    """Requests/s of the server alone: `connections` keep-alive connections, one request at a time each."""
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    left = n

    async def conn() -> None:
        nonlocal left
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while left > 0:
            left -= 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(_CONTENT_LENGTH.search(head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(conn() for _ in range(connections)))
    return n / (time.perf_counter() - t0)


def sample_body(records: list) -> bytes:
    """A chat request body of the size the client sends (prefix + one rendered record)."""
    from unimm.generate import GenerateConfig
    from unimm.generate.prompts import prompt_set_for, record_budget

    cfg = GenerateConfig(backend="openai", model=MODEL)
    p = prompt_set_for(cfg)
    return json.dumps(
        {"model": MODEL, "messages": p.messages(records[0], record_budget(cfg, p)), "max_tokens": 1024}
    ).encode()


def main() -> None:
    from unimm.generate.estimate import DEFAULT_THROUGHPUT

    records = bench_records(N)
    h100_rps = DEFAULT_THROUGHPUT / DIALOGUE_TOKENS
    rows = []
    with Servers(max(SERVERS)) as servers:
        server_alone = asyncio.run(_raw_load(servers.ports[0], sample_body(records), N, 64))
        run_client(records[:200], servers.ports[:1], 64, servers)  # warm-up (imports, prompt cache)
        for n_servers in SERVERS:
            for c in CONCURRENCY:
                r = run_client(records, servers.ports[:n_servers], c, servers)
                rows.append((n_servers, c, r))
                print(f"servers={n_servers} concurrency={c}: {r['rps']:.0f} req/s, "
                      f"client {r['cpu_ms']:.2f} CPU-ms/req, server {r['srv_ms']:.2f}", flush=True)  # fmt: skip
    best = max(r["rps"] for _, _, r in rows)
    cpu_med = statistics.median(r["cpu_ms"] for _, _, r in rows)
    lines = [
        "## client: requests/s of the openai backend against instant loopback servers",
        "",
        f"Machine: {machine_line()}; other jobs were running on the same cores. {N:,} distinct records per "
        "run through `generate_chats` (`--llm openai`, response format auto-detected, fresh cache dir, "
        "fsync per cache line), against a raw asyncio HTTP/1.1 server in one child process serving "
        f"1-4 ports that answers every chat request at once with the same valid 10-turn dialogue "
        f"({len(dialogue_content()):,} characters, reported as {DIALOGUE_TOKENS} completion tokens). "
        "Wall time includes rendering the prompts and the `/v1/models` check.",
        "",
        "| servers | concurrency | requests/s | completion tok/s ceiling (x400) | H100s kept busy | "
        "client CPU ms/request | server CPU ms/request |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n_servers, c, r in rows:
        lines.append(
            f"| {n_servers} | {c} | {r['rps']:,.0f} | {r['rps'] * DIALOGUE_TOKENS:,.0f} | "
            f"{r['rps'] / h100_rps:,.1f} | {r['cpu_ms']:.2f} | {r['srv_ms']:.2f} |"
        )
    lines += [
        "",
        f"Server alone (raw asyncio client, 64 keep-alive connections, request bodies of "
        f"{len(sample_body(records)):,} bytes): **{server_alone:,.0f} requests/s**, so the client, not the "
        "server, sets the figures above.",
        "",
        f"One H100 at the throughput `unimm estimate` assumes ({DEFAULT_THROUGHPUT:,.0f} completion tok/s, "
        "MLPerf Inference v5.1, Llama-3.1-8B, 1x H100, server scenario) finishes "
        f"{h100_rps:,.1f} dialogues/s of {DIALOGUE_TOKENS} tokens. The best run above ({best:,.0f} requests/s) "
        f"keeps about **{best / h100_rps:,.0f} such H100s** busy from one unimm process; at the median "
        f"{cpu_med:.2f} client CPU-ms per request, one free core would sustain ~{1000 / cpu_med:,.0f} "
        f"requests/s (~{1000 / cpu_med / h100_rps:,.0f} H100s). At real latencies the concurrency must "
        f"also cover the requests in flight: dialogues/s x latency, e.g. {h100_rps:,.1f}/s x 20 s = "
        f"~{h100_rps * 20:,.0f} per H100 (`--concurrency`).",
    ]
    md = "\n".join(lines)
    print(md)
    update_section("client", md)
    record(
        "client", best_rps=best, h100_rps=h100_rps, h100s=best / h100_rps, default_tok_s=DEFAULT_THROUGHPUT
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
