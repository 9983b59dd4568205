"""The local backend: real generations with the embedded SmolLM2-135M-Instruct (llama.cpp in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_generate_template import fixture_records
from unimm.errors import ConfigError
from unimm.generate import GenerateConfig, generate_chats
from unimm.generate.cache import CACHE_FILE
from unimm.generate.local import embedded_gguf
from unimm.schema import Chat


def test_embedded_model_is_found_without_download() -> None:
    path = embedded_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 10_000_000


def test_context_too_small_is_a_config_error(tmp_path: Path) -> None:
    cfg = GenerateConfig(backend="local", n_ctx=1024, max_tokens=512)
    with pytest.raises(ConfigError, match="n_ctx"):
        generate_chats(fixture_records()[:1], cfg, tmp_path)


@pytest.mark.slow
def test_local_generation_validates_or_fails_cleanly(tmp_path: Path) -> None:
    recs = fixture_records()[:2]
    cfg = GenerateConfig(backend="local", max_tokens=96, n_ctx=2048, invalid_retries=1, seed=3)
    res = generate_chats(recs, cfg, tmp_path / "cache")
    assert len(res.chats) + len(res.failures) == 2
    for chat in res.chats:
        Chat.model_validate(chat.model_dump())
        assert chat.generator.backend == "local" and chat.generator.model == "SmolLM2-135M-Instruct"
        assert (
            chat.generator.prompt_version == "unimm_chat/v1" and len(chat.generator.prompt_fingerprint) == 64
        )
        assert [t.role for t in chat.turns][:2] == ["user", "assistant"]
    for f in res.failures:
        assert (
            f.reason in {"invalid_json", "truncated", "schema_mismatch", "empty_output"} and f.attempts == 2
        )
    s = res.summary
    assert s.requests_sent >= 2 and s.completion_tokens > 0 and s.prompt_tokens > 0
    assert len((tmp_path / "cache" / CACHE_FILE).read_text().splitlines()) == 2
    # Same config again: answered from the cache, the model is not even loaded.
    again = generate_chats(recs, cfg, tmp_path / "cache")
    assert again.summary.requests_sent == 0 and again.summary.cache_hits == 2
    assert [c.model_dump() for c in again.chats] == [c.model_dump() for c in res.chats]
