"""Append-only, crash-safe response cache: one JSON line per finished request, keyed by request id.

Each line is written on an O_APPEND descriptor and fsync'ed before the request counts as done, so
a crash loses at most the lines being written; a torn last line is skipped on load and the next
append starts on a fresh line. `aput` (the dispatcher's path) commits in groups: lines that finish
while an fsync runs are written and fsync'ed together by the next one, in a worker thread, so the
event loop never blocks on the disk and one fsync covers many requests; each caller still returns
only once its own line is durable.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

CACHE_FILE = "responses.jsonl"


class ResponseCache:
    """request_id -> cached entry (`status` "ok" with `turns`, or "failure" with `reason`)."""

    def __init__(self, cache_dir: Path) -> None:
        self.path = Path(cache_dir) / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, dict] = {}
        self.torn_lines = 0
        self._load()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._needs_newline = self.path.stat().st_size > 0 and not self._ends_with_newline()
        # Group commit (aput): lines waiting for the next fsync, and whether a flush is running.
        self._pending: list[tuple[bytes, dict, asyncio.Future[None]]] = []
        self._flushing = False
        self._flusher: asyncio.Task[None] | None = None
        # Held while a worker thread writes: close() waits for it, so the descriptor is never
        # closed (and its number reused) under a write.
        self._io = threading.Lock()

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            return f.read(1) == b"\n"

    def _load(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for raw in f:
                try:
                    entry = json.loads(raw)
                    rid = entry["request_id"]
                except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
                    self.torn_lines += 1  # a crash mid-write; the request is simply sent again
                    continue
                # Later lines win: an ok answer after a re-sent failure replaces it.
                self.entries[rid] = entry

    def get(self, request_id: str) -> dict | None:
        return self.entries.get(request_id)

    @staticmethod
    def _line(entry: dict) -> bytes:
        return (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")

    def _write_durably(self, data: bytes) -> None:
        """Append `data` (whole lines) and fsync; a torn previous line is ended first."""
        with self._io:
            if self._fd < 0:
                raise ValueError(f"{self.path}: cache is closed")
            if self._needs_newline:
                data = b"\n" + data
                self._needs_newline = False
            view = memoryview(data)
            while view:  # O_APPEND: a short write's remainder still lands at the end
                view = view[os.write(self._fd, view) :]
            os.fsync(self._fd)

    def put(self, entry: dict) -> None:
        """Persist one finished request durably before returning."""
        self._write_durably(self._line(entry))
        self.entries[entry["request_id"]] = entry

    async def aput(self, entry: dict) -> None:
        """Persist one finished request durably before returning, without blocking the event
        loop: lines that arrive while an fsync runs share the next one (group commit)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((self._line(entry), entry, fut))
        if not self._flushing:
            self._flushing = True
            self._flusher = asyncio.get_running_loop().create_task(self._flush())  # held: not GC'd
        await fut

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await asyncio.to_thread(self._write_durably, b"".join(line for line, _, _ in batch))
                except BaseException as e:  # the waiters of this batch share its fate
                    for _, _, fut in batch:
                        if fut.done():
                            continue
                        if isinstance(e, asyncio.CancelledError):
                            fut.cancel()
                        else:
                            fut.set_exception(e)
                    if not isinstance(e, Exception):
                        raise
                    continue
                for _, entry, fut in batch:
                    self.entries[entry["request_id"]] = entry
                    if not fut.done():
                        fut.set_result(None)
        finally:
            self._flushing = False

    def close(self) -> None:
        with self._io:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
