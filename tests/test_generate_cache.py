"""The response cache: append-only, durable, tolerant of a torn last line."""

from __future__ import annotations

import json
from pathlib import Path

from unimm.generate.cache import CACHE_FILE, ResponseCache


def _entry(rid: str, status: str = "ok") -> dict:
    return {
        "request_id": rid,
        "status": status,
        "turns": [{"question": "q", "answer": "a"}],
        "reason": "invalid_json",
    }


def test_roundtrip_and_later_lines_win(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as c:
        c.put(_entry("a", "failure"))
        c.put(_entry("b"))
        c.put(_entry("a"))
    c2 = ResponseCache(tmp_path)
    assert c2.get("a")["status"] == "ok" and c2.get("b") is not None and c2.get("zzz") is None
    c2.close()


def test_torn_last_line_is_skipped_and_next_append_is_clean(tmp_path: Path) -> None:
    with ResponseCache(tmp_path) as c:
        c.put(_entry("a"))
    path = tmp_path / CACHE_FILE
    with open(path, "ab") as f:  # a crash in the middle of writing the second record
        f.write(b'{"request_id": "b", "status": "o')
    with ResponseCache(tmp_path) as c:
        assert c.torn_lines == 1 and c.get("b") is None and c.get("a") is not None
        c.put(_entry("b"))
    with ResponseCache(tmp_path) as c:
        assert c.torn_lines == 1 and c.get("b")["status"] == "ok"
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["request_id"] == "b"
