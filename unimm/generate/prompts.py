"""Versioned prompt sets (`prompts/<name>/<version>/`) and the chat messages built from them.

A set holds `system.md` (the requirements), `user.md` (the per-record message, with an
`{annotations}` slot), `examples.json` (few-shot records and the dialogues written for them) and
the response schema (always `DialogueResponse.model_json_schema()`). Messages put the shared part
(system + examples) first, so servers with prefix caching (vLLM, llama.cpp) reuse it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from unimm.errors import ConfigError, InputError
from unimm.generate.backends import ResponseSchema
from unimm.generate.config import GenerateConfig
from unimm.generate.render import RENDER_VERSION, estimate_tokens, render_record
from unimm.schema import DialogueResponse, MergedImage

# A chat message: `content` is text, or (vision) a list of text and image_url parts.
Message = dict[str, Any]
E = TypeVar("E", bound=BaseModel)
SCHEMA_NAME = "dialogue_response"


def default_prompts_dir() -> Path:
    """The repo's `prompts/` (beside the `unimm` package in a source checkout)."""
    return Path(__file__).resolve().parents[2] / "prompts"


def response_schema() -> dict:
    """The JSON Schema the model must answer (DialogueResponse)."""
    return DialogueResponse.model_json_schema()


def dialogue_response() -> ResponseSchema:
    """Generation's response schema with the name servers see in a `json_schema` envelope."""
    return ResponseSchema(SCHEMA_NAME, response_schema())


def canonical_json(obj: object) -> str:
    """Stable JSON text: sorted keys, no whitespace (hashing, request ids)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class FewShot(BaseModel):
    """One few-shot example: a merged record and the dialogue written for it."""

    model_config = ConfigDict(extra="forbid")
    input: MergedImage
    output: DialogueResponse


@dataclass(frozen=True)
class PromptFiles(ABC):
    """A loaded prompt folder (generation's or the judge's): system prompt, user template with
    `{slot}`s, few-shot examples (each with an `output` model) and the response schema.
    `fingerprint` identifies all of them + the renderer; subclasses say how an example is asked."""

    name: str
    version: str
    system: str
    user_template: str
    examples: tuple
    schema: dict

    @functools.cached_property
    def fingerprint(self) -> str:
        return prompt_hash(self.system, self.user_template, self.examples, self.schema)

    def fill(self, **slots: str) -> str:
        """The user template with each `{slot}` replaced."""
        text = self.user_template
        for slot, value in slots.items():
            text = text.replace("{" + slot + "}", value)
        return text

    @abstractmethod
    def example_user(self, example: BaseModel) -> str:
        """The user message of one few-shot example."""

    @functools.cached_property
    def prefix(self) -> list[Message]:
        """System prompt + few-shot turns: identical for every request (prefix-cache friendly)."""
        msgs: list[Message] = [{"role": "system", "content": self.system}]
        for ex in self.examples:
            msgs.append({"role": "user", "content": self.example_user(ex)})
            msgs.append({"role": "assistant", "content": ex.output.model_dump_json()})
        return msgs

    @functools.cached_property
    def prefix_tokens(self) -> int:
        # +4 per message for chat-template role markers.
        return sum(estimate_tokens(m["content"]) + 4 for m in self.prefix)


@dataclass(frozen=True)
class PromptSet(PromptFiles):
    """Generation's prompt set: examples are `FewShot` records, the slot is `{annotations}`."""

    def user_message(self, annotations: str) -> str:
        return self.fill(annotations=annotations)

    def example_user(self, example: BaseModel) -> str:
        return self.user_message(render_record(example.input, None).text)  # type: ignore[attr-defined]

    def messages(self, record: MergedImage, budget: int | None) -> list[Message]:
        """The full request for one record: shared prefix, then the record's annotations."""
        rendered = render_record(record, budget)
        return [*self.prefix, {"role": "user", "content": self.user_message(rendered.text)}]


def prompt_hash(system: str, user: str, examples: Sequence[BaseModel], schema: dict) -> str:
    """sha256 of everything that shapes a request besides the record: system prompt, user
    template, canonical examples, response schema and renderer version."""
    payload = canonical_json(
        {
            "system": system,
            "user": user,
            "examples": [e.model_dump(mode="json") for e in examples],
            "schema": schema,
            "render": RENDER_VERSION,
        }
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def read_prompt_folder(
    root: Path, name: str, version: str, example_model: type[E], slots: tuple[str, ...] = ("{annotations}",)
) -> tuple[str, str, tuple[E, ...]]:
    """system.md, user.md (which must hold every slot) and examples.json validated as
    `example_model`, from `root/name/version/`; a missing or malformed file is a
    ConfigError/InputError."""
    folder = Path(root) / name / version
    if not folder.is_dir():
        available = sorted(str(p.relative_to(root)) for p in Path(root).glob("*/*") if p.is_dir())
        raise ConfigError(f"prompt set {name}/{version} not found under {root} (available: {available})")
    try:
        system = (folder / "system.md").read_text(encoding="utf-8").strip()
        user = (folder / "user.md").read_text(encoding="utf-8").strip()
    except FileNotFoundError as e:
        raise ConfigError(f"prompt set {folder} is missing {Path(e.filename).name}") from e
    for slot in slots:
        if slot not in user:
            raise InputError(folder / "user.md", f"has no {slot} slot")
    examples_path = folder / "examples.json"
    try:
        raw = json.loads(examples_path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConfigError(f"prompt set {folder} is missing examples.json") from e
    except json.JSONDecodeError as e:
        raise InputError(examples_path, f"not valid JSON: {e}") from e
    if not isinstance(raw, list):
        raise InputError(examples_path, "must be a JSON list of {input, output} objects")
    examples = []
    for i, item in enumerate(raw):
        try:
            examples.append(example_model.model_validate(item))
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            raise InputError(examples_path, err["msg"], record=i, field=field) from e
    return system, user, tuple(examples)


def load_prompt_set(root: Path, name: str, version: str) -> PromptSet:
    """Read `root/name/version/`; a missing or malformed file is a ConfigError/InputError."""
    system, user, examples = read_prompt_folder(root, name, version, FewShot)
    return PromptSet(name, version, system, user, examples, response_schema())


def prompts_root(prompts_dir: Path | None) -> Path:
    """The resolved root of the prompt sets (default: the repo's prompts/)."""
    return (prompts_dir or default_prompts_dir()).resolve()


def prompt_set_for(cfg: GenerateConfig) -> PromptSet:
    """The prompt set a config uses (the vision set when vision is on; cached per folder)."""
    root = prompts_root(cfg.prompts_dir)
    name, version = cfg.prompt_folder()
    return _cached_load(str(root), name, version, folder_key(root / name / version))


def folder_key(folder: Path) -> tuple:
    """Names, mtimes and sizes of a prompt folder's files: a cache key that changes when one is
    edited (tests and prompt authors edit them in place)."""
    return (
        tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in folder.glob("*")))
        if folder.is_dir()
        else ()
    )


@functools.lru_cache(maxsize=16)
def _cached_load(root: str, name: str, version: str, _key: tuple) -> PromptSet:
    return load_prompt_set(Path(root), name, version)


def prompt_fingerprint(cfg: GenerateConfig) -> str:
    """Hash of the prompt set the config uses (system + user template + examples + schema)."""
    return prompt_set_for(cfg).fingerprint


def record_budget(cfg: GenerateConfig, prompts: PromptSet) -> int:
    """Tokens the rendered record may use; the in-process model must also fit its context."""
    if cfg.backend == "local":
        room = cfg.n_ctx - prompts.prefix_tokens - cfg.max_tokens - 64
        if room < 64:
            raise ConfigError(
                f"n_ctx {cfg.n_ctx} leaves no room for a record: the prompt prefix takes ~{prompts.prefix_tokens} "
                f"tokens and max_tokens is {cfg.max_tokens}; raise --n-ctx or lower --max-tokens"
            )
        return min(cfg.token_budget, room)
    return cfg.token_budget
