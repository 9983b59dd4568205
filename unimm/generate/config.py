"""GenerateConfig: every knob of the generation stage, validated once at the boundary."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from unimm.errors import ConfigError

Backend = Literal["template", "local", "openai"]
ResponseFormat = Literal["auto", "json_schema", "json_object", "none"]

DEFAULT_LOCAL_MODEL = "SmolLM2-135M-Instruct"
# Environment variables searched, in order, for the API key. The key itself never enters a config.
API_KEY_ENVS: tuple[str, ...] = ("UNIMM_API_KEY", "OPENAI_API_KEY")
# The derived read timeout: a floor for queueing and prefill, plus time per answer token at a
# decode pace (20 tokens/s) far below what even a loaded server keeps up per request.
READ_TIMEOUT_BASE_S = 30.0
READ_TIMEOUT_PER_TOKEN_S = 0.05
# The derived request deadline leaves room for this many attempts at the derived pace.
DEADLINE_ATTEMPTS = 3
NEEDS_BASE_URL = "--llm openai needs at least one --base-url (e.g. http://127.0.0.1:8000/v1)"
VISION_NEEDS_OPENAI = (
    "generate.vision sends the picture to a vision-language model: it needs --llm openai (a VLM served "
    "by vLLM, e.g. Qwen2.5-VL); the {backend} backend cannot see images (turn it off with "
    "--set generate.vision=false)"
)


class Timeouts(NamedTuple):
    """How long the openai backend waits, in seconds (see GenerateConfig.timeouts)."""

    connect_s: float
    read_s: float
    models_s: float
    deadline_s: float | None


class GenerateConfig(BaseModel):
    """Options of `unimm generate` and of `generate_chats` (the build orchestrator's entry)."""

    model_config = ConfigDict(extra="forbid")

    backend: Backend = "local"
    model: str | None = Field(None, description="Model name; default: the embedded SmolLM2 for local.")
    model_path: Path | None = Field(
        None, description="GGUF for the local backend; default: the embedded one."
    )
    base_urls: list[str] = Field(
        default_factory=list, description="OpenAI-compatible endpoints, round-robin."
    )
    api_key_env: str | None = Field(
        None,
        description="Environment variable holding the API key (default: UNIMM_API_KEY, then OPENAI_API_KEY).",
    )
    concurrency: int = Field(64, ge=1, description="Requests in flight (openai backend).")
    max_tokens: int = Field(1024, ge=16)
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    seed: int = 0
    retries: int = Field(5, ge=0, description="Retries of transient errors (429, 5xx, timeouts, connection).")
    invalid_retries: int = Field(2, ge=0, description="Retries of output that is not a valid dialogue.")
    backoff_s: float = Field(0.5, gt=0.0, description="First backoff; doubles per retry, with jitter.")
    backoff_max_s: float = Field(20.0, gt=0.0)
    connect_timeout_s: float = Field(10.0, gt=0.0, description="Seconds to open a connection to a server.")
    timeout_s: float | None = Field(
        None,
        gt=0.0,
        description="Read timeout of one attempt; default: derived from max_tokens (see timeouts()).",
    )
    models_timeout_s: float = Field(
        10.0, gt=0.0, description="Timeout of the /v1/models check that detects the response format."
    )
    request_deadline_s: float | None = Field(
        None,
        gt=0.0,
        description="Most seconds one request may take, retries and backoff included; default: derived.",
    )
    response_format: ResponseFormat = "auto"
    prompt_set: str = "unimm_chat"
    prompt_version: str = "v1"
    prompts_dir: Path | None = Field(
        None, description="Root of the prompt sets; default: the repo's prompts/."
    )
    token_budget: int = Field(
        1536, ge=64, description="Most (estimated) tokens the rendered record may take."
    )
    limit: int | None = Field(None, ge=1, description="Only the first N records (quick partial run).")
    n_ctx: int = Field(4096, ge=512, description="Context of the in-process llama.cpp model.")
    n_threads: int | None = Field(None, ge=1, description="llama.cpp threads; default: all cores.")
    retry_failures: bool = Field(False, description="Re-send requests whose cached result is a failure.")
    template_max_turns: int = Field(24, ge=1, description="Most question/answer pairs of a template chat.")
    vision: bool = Field(
        False,
        description="Show the model the picture too (openai backend, a vision-language model): each "
        "request carries the image as a JPEG data URL beside the rendered annotations, with the "
        "vision prompt set.",
    )
    # 768: COCO pictures (longest side 640) reach the model at their own size, while Visual
    # Genome's larger ones (up to 1280 px wide) are capped at ~600 Qwen2.5-VL image tokens instead
    # of ~1,900 (one token per 28x28 pixels), which would dominate each request's prefill.
    vision_max_side: int = Field(
        768, ge=28, le=4096, description="Longest side of the image sent, in pixels (never upscaled)."
    )
    # 90: visibly clean for small text and fine texture, ~3x smaller than the PNG of the same pixels.
    vision_jpeg_quality: int = Field(90, ge=1, le=95, description="JPEG quality of the image sent.")
    vision_prompt_set: str = Field(
        "unimm_chat_vision", description="Prompt set used instead of prompt_set when vision is on."
    )
    vision_prompt_version: str = "v1"

    @field_validator("base_urls")
    @classmethod
    def _strip_urls(cls, v: list[str]) -> list[str]:
        return [u.rstrip("/") for u in v]

    @model_validator(mode="after")
    def _vision_needs_a_server(self) -> GenerateConfig:
        if self.vision and self.backend != "openai":
            raise ValueError(VISION_NEEDS_OPENAI.format(backend=self.backend))
        return self

    def prompt_folder(self) -> tuple[str, str]:
        """(name, version) of the prompt set in use: the vision set when vision is on."""
        if self.vision:
            return self.vision_prompt_set, self.vision_prompt_version
        return self.prompt_set, self.prompt_version

    def resolved_model(self) -> str:
        """The model name recorded with every chat and used in request ids."""
        if self.model:
            return self.model
        if self.backend == "openai":
            raise ConfigError(
                "--llm openai needs --model (the name the server serves; see with_served_model)"
            )
        if self.backend == "template":
            return "template"
        return DEFAULT_LOCAL_MODEL

    def with_served_model(self, log: Callable[[str], None]) -> GenerateConfig:
        """This config with `model` set: as given, else (openai) the only model the server(s)
        serve, logged. ConfigError when they serve several (listed), none, or cannot be asked."""
        if self.backend != "openai" or self.model:
            return self
        if not self.base_urls:
            raise ConfigError(NEEDS_BASE_URL)
        from unimm.generate.openai_backend import served_models  # imports openai: only when asked

        served = {url: served_models(self, url) for url in self.base_urls}
        names = sorted({m for ms in served.values() for m in ms})
        if len(names) == 1:
            log(f"using model {names[0]}, the only one served by {', '.join(self.base_urls)}")
            return self.model_copy(update={"model": names[0]})
        listing = "; ".join(f"{url} serves {', '.join(ms) or 'nothing'}" for url, ms in served.items())
        what = f"{len(names)} models" if names else "no model"
        raise ConfigError(f"--llm openai needs --model: the server(s) offer {what} ({listing})")

    def threads(self) -> int:
        return self.n_threads or os.cpu_count() or 1

    def timeouts(self) -> Timeouts:
        """Connect, read and model-list timeouts of one attempt, and the deadline of a request.

        The read timeout scales with max_tokens unless `timeout_s` sets it. The deadline bounds a
        request's attempts and backoffs together; it is None for in-process backends (no server
        can hang them, and a slow CPU is no fault).
        """
        derived_read = READ_TIMEOUT_BASE_S + self.max_tokens * READ_TIMEOUT_PER_TOKEN_S
        read = self.timeout_s or derived_read
        deadline = self.request_deadline_s
        if deadline is None and self.backend == "openai":
            # A few attempts at the derived pace, and never less than one full attempt at an
            # explicit (possibly longer) read timeout.
            deadline = max(
                DEADLINE_ATTEMPTS * (self.connect_timeout_s + derived_read), self.connect_timeout_s + read
            )
        return Timeouts(self.connect_timeout_s, read, self.models_timeout_s, deadline)

    def api_key(self) -> str | None:
        """The API key from the environment only; never stored, logged or hashed."""
        names = (self.api_key_env,) if self.api_key_env else API_KEY_ENVS
        for name in names:
            value = os.environ.get(name)
            if value:
                return value
        return None
