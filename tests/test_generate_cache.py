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


def test_concurrent_aput_commits_in_groups_and_every_line_is_durable(tmp_path: Path) -> None:
    import asyncio

    async def run() -> None:
        with ResponseCache(tmp_path) as c:
            await asyncio.gather(*(c.aput(_entry(f"r{i}")) for i in range(200)))
            assert all(c.get(f"r{i}") is not None for i in range(200))

    asyncio.run(run())
    lines = (tmp_path / CACHE_FILE).read_text().splitlines()
    assert sorted(json.loads(line)["request_id"] for line in lines) == sorted(f"r{i}" for i in range(200))


def test_a_failed_group_commit_fails_every_waiter_of_that_group(tmp_path: Path) -> None:
    import asyncio

    async def run() -> list:
        c = ResponseCache(tmp_path)
        c.close()  # every write now fails
        return await asyncio.gather(*(c.aput(_entry(f"r{i}")) for i in range(5)), return_exceptions=True)

    results = asyncio.run(run())
    assert len(results) == 5 and all(isinstance(r, ValueError) and "closed" in str(r) for r in results)
    assert ResponseCache(tmp_path).entries == {}
