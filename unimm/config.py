"""A whole run as one validated config: `pipelines/*.yaml` -> `PipelineConfig`.

Each stage owns its config model; this file only composes them. CLI flags override file values
through `apply_overrides` (dotted keys), so flags and YAML cannot drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from unimm.decontam import DecontamConfig
from unimm.dedup import DedupConfig
from unimm.errors import ConfigError
from unimm.filter import FilterConfig
from unimm.generate import GenerateConfig
from unimm.merge import MergeConfig
from unimm.shards import ShardConfig
from unimm.sources import DEFAULT_DATA_ROOT, SOURCE_SPECS, parse_sources


class ExecutorConfig(BaseModel):
    """Where the units of work run. Never part of a fingerprint or manifest: a Ray run's output is
    byte for byte a local run's."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["local", "ray"] = Field(
        "local", description="local: a process pool on this machine; ray: tasks on a Ray cluster."
    )
    workers: int | None = Field(
        None, ge=1, description="Units run at once (local); default: the machine's cores."
    )
    memory_gb: float = Field(
        6.0,
        gt=0,
        description="local: units start only while their estimated peaks fit this budget (the rest of "
        "the build, this process included, stays within about 8 GB at full scale).",
    )
    ray_address: str | None = Field(
        None, description="Ray cluster to join (`auto`, `ray://host:10001`); default: start a local one."
    )


class PipelineConfig(BaseModel):
    """Everything a `unimm build` needs; defaults: every source of the catalogue, `--out shards/`."""

    model_config = ConfigDict(extra="forbid")

    name: str = "unimm"
    sources: list[str] = Field(default_factory=lambda: list(SOURCE_SPECS))
    data_root: Path = Path(DEFAULT_DATA_ROOT)
    image_root: Path | None = Field(None, description="Where image files live; default: the data root.")
    no_images: bool = Field(
        False, description="Write shards without images (JSON only); the manifest's extensions say so."
    )
    merge: MergeConfig = Field(default_factory=MergeConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontaminate: DecontamConfig = Field(default_factory=DecontamConfig)
    shards: ShardConfig = Field(default_factory=ShardConfig)
    out: Path = Field(Path("shards"), description="Folder for the WebDataset shards and manifest.json.")
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)

    @property
    def image_dir(self) -> Path:
        """The folder image file names are relative to (vision reads pictures from it, whether or
        not the shards carry them)."""
        return self.image_root or self.data_root

    @property
    def images(self) -> Path | None:
        """The folder image file names are relative to; None for shards without images."""
        return None if self.no_images else self.image_dir


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted}: {p} is not a section")
    node[leaf] = value


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted keys (`generate.model`) on a raw config dict; None values are ignored."""
    for key, value in overrides.items():
        if value is not None:
            _set_dotted(data, key, value)
    return data


def parse_set_option(items: list[str]) -> dict[str, Any]:
    """`--set generate.max_tokens=256` -> {'generate.max_tokens': 256} (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def load_config(
    path: Path | None, overrides: dict[str, Any] | None = None, saved: Path | None = None
) -> PipelineConfig:
    """Read a pipeline YAML (or, without one, the `saved` config of a work dir's last run, or
    start from defaults), apply overrides, validate.

    Relative paths in a config file are taken from the working directory, as on the command line.
    """
    data: dict[str, Any] = {}
    if path is None and saved is not None and Path(saved).is_file():
        try:
            data = json.loads(Path(saved).read_text())
        except ValueError as e:
            raise ConfigError(f"{saved}: not valid JSON ({e}); remove it or pass --config") from None
        path = saved
    elif path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a pipeline config must be a mapping")
    data = apply_overrides(data, overrides or {})
    if isinstance(data.get("sources"), str):
        data["sources"] = parse_sources(data["sources"])
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{path or 'config'}: field '{loc}': {first['msg']}") from None
    cfg.sources = parse_sources(cfg.sources)
    return cfg
