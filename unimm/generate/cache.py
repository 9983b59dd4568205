"""Append-only, crash-safe response cache: one JSON line per finished request, keyed by request id.

Each line is written with a single `write` on an O_APPEND descriptor and fsync'ed before the
request counts as done, so a crash loses at most the line being written; a torn last line is
skipped on load and the next append starts on a fresh line.
"""

from __future__ import annotations

import json
import os
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

    def put(self, entry: dict) -> None:
        """Persist one finished request durably before returning."""
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
        if self._needs_newline:
            line = "\n" + line
            self._needs_newline = False
        os.write(self._fd, line.encode("utf-8"))
        os.fsync(self._fd)
        self.entries[entry["request_id"]] = entry

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
