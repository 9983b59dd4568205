"""A tiny HTTP server on 127.0.0.1 that stands in for a faulty vLLM server: each test decides, per
request, which (possibly broken) reply it sends, or that it never answers at all."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "fault-model"


@dataclass(frozen=True)
class Seen:
    """One request as the server received it (header names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    """What the server sends back: status, body and its Content-Type."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


# A handler returns the reply, or None to hold the connection open and never answer.
Behaviour = Callable[[Seen], "Reply | None"]


def json_reply(doc: object, status: int = 200) -> Reply:
    """A JSON reply."""
    return Reply(status, json.dumps(doc).encode())


def models_reply() -> Reply:
    """The `/v1/models` answer of a vLLM server serving MODEL."""
    return json_reply({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "vllm"}]})


def completion_reply(content: str, prompt_tokens: int = 12, completion_tokens: int = 8) -> Reply:
    """A well-formed chat completion of MODEL whose message is `content`."""
    return json_reply(
        {
            "id": "cmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": MODEL,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def dialogue_reply(question: str = "What is in the picture?", answer: str = "A dog on a couch.") -> Reply:
    """A well-formed chat completion whose content is a valid one-turn dialogue."""
    return completion_reply(json.dumps({"turns": [{"question": question, "answer": answer}]}))


class FaultServer:
    """Serves `behaviour` on an ephemeral port in a background thread; records every request.

    A request the behaviour leaves unanswered blocks its handler thread until `close`, like a
    server that accepted the connection and hung."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self)

            def do_POST(self) -> None:
                server._handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = h.rfile.read(int(h.headers.get("Content-Length", 0)))
        seen = Seen(h.command, h.path, {k.lower(): v for k, v in h.headers.items()}, body)
        with self._lock:
            self.seen.append(seen)
        reply = self.behaviour(seen)
        if reply is None:
            self._release.wait()
            return
        h.send_response(reply.status)
        h.send_header("Content-Type", reply.content_type)
        h.send_header("Content-Length", str(len(reply.body)))
        for k, v in reply.headers.items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(reply.body)

    def chat_requests(self, needle: bytes = b"") -> int:
        """How many chat completion requests arrived (whose body contains `needle`)."""
        with self._lock:
            return sum(s.path.endswith("/chat/completions") and needle in s.body for s in self.seen)

    def close(self) -> None:
        self._release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
