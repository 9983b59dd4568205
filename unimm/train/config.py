"""Model and training configuration: pydantic models, derived values computed after overrides,
saved together as `config.json` in the run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from unimm.errors import ConfigError
from unimm.train import TINY

Stage = Literal["pretrain", "sft"]
Adapter = Literal["mlp", "query"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class ModelConfig(_Strict):
    """Vision encoder -> adapter -> causal LM. `vision`/`llm` are `tiny` (built in, for CPU tests)
    or a local Hugging Face model folder; `tokenizer` is None (SmolLM2 GGUF) or a local HF folder."""

    vision: str = TINY
    llm: str = TINY
    tokenizer: str | None = Field(
        None, description="Local HF tokenizer folder; default: the SmolLM2 GGUF vocab."
    )
    adapter: Adapter = "mlp"
    num_queries: int = Field(
        16, ge=1, description="Query adapter: number of trainable queries = visual tokens."
    )
    adapter_layers: int = Field(1, ge=1, description="Query adapter: cross-attention blocks.")
    # tiny vision encoder (ignored for HF vision models, whose config.json decides)
    image_size: int = Field(64, ge=8)
    patch_size: int = Field(16, ge=2)
    vision_dim: int = Field(64, ge=8)
    vision_layers: int = Field(2, ge=1)
    vision_heads: int = Field(4, ge=1)
    vision_feature_layer: int = Field(
        -1, description="HF vision: which hidden_states entry feeds the adapter."
    )
    # tiny decoder (ignored for HF LLMs)
    llm_dim: int = Field(128, ge=8)
    llm_layers: int = Field(2, ge=1)
    llm_heads: int = Field(4, ge=1)
    max_len: int = Field(
        256, ge=8, description="Tokens per sample after rendering; longer dialogues are cut."
    )
    system_prompt: str | None = None
    # derived (filled by `derive`; never set by hand)
    num_patches: int = 0
    num_visual_tokens: int = 0
    vision_hidden: int = 0
    image_mean: list[float] = Field(default_factory=lambda: [0.48145466, 0.4578275, 0.40821073])
    image_std: list[float] = Field(default_factory=lambda: [0.26862954, 0.26130258, 0.27577711])
    vision_has_cls: bool = False

    def derive(self) -> ModelConfig:
        """Return a copy with the derived values computed from the (overridden) fields."""
        d = self.model_dump()
        if self.vision == TINY:
            if self.image_size % self.patch_size:
                raise ConfigError(
                    f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
                )
            if self.vision_dim % self.vision_heads:
                raise ConfigError("vision_dim must be a multiple of vision_heads")
            d.update(vision_hidden=self.vision_dim, vision_has_cls=False)
        else:
            d.update(_hf_vision_facts(Path(self.vision), self.vision_feature_layer))
        d["num_patches"] = (d["image_size"] // d["patch_size"]) ** 2
        d["num_visual_tokens"] = d["num_patches"] if self.adapter == "mlp" else self.num_queries
        if self.llm == TINY and self.llm_dim % self.llm_heads:
            raise ConfigError("llm_dim must be a multiple of llm_heads")
        return ModelConfig.model_validate(d)


def _hf_vision_facts(path: Path, feature_layer: int) -> dict:
    """Image size, patch size, width and normalisation of a local HF vision model, read from its
    config.json / preprocessor_config.json (plain JSON: no transformers needed to plan the data);
    `feature_layer` must name one of its hidden states."""
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ConfigError(f"{path}: not a Hugging Face model folder (no config.json)")
    cfg = json.loads(cfg_file.read_text())
    vcfg = cfg.get("vision_config", cfg)
    try:
        facts: dict = {
            "image_size": int(vcfg["image_size"]),
            "patch_size": int(vcfg["patch_size"]),
            "vision_hidden": int(vcfg["hidden_size"]),
        }
    except KeyError as e:
        raise ConfigError(f"{cfg_file}: vision config lacks {e.args[0]!r}") from e
    layers = vcfg.get("num_hidden_layers")
    if isinstance(layers, int) and not -(layers + 1) <= feature_layer <= layers:
        raise ConfigError(
            f"--vision-feature-layer {feature_layer}: {path} has {layers} layers, so hidden states "
            f"0..{layers} (or -1..-{layers + 1})"
        )
    # CLIP-style encoders prepend a CLS token; SigLIP does not
    siglip = "siglip" in str(cfg.get("model_type", "")).lower()
    facts["vision_has_cls"] = not siglip
    if siglip:  # SigLIP normalises to [-1, 1]; what its processors write when a folder has none
        facts["image_mean"], facts["image_std"] = [0.5] * 3, [0.5] * 3
    pre = path / "preprocessor_config.json"
    if pre.is_file():
        p = json.loads(pre.read_text())
        if "image_mean" in p and "image_std" in p:
            facts["image_mean"], facts["image_std"] = list(p["image_mean"]), list(p["image_std"])
    return facts


class TrainConfig(_Strict):
    """One `unimm train` run."""

    shards: str
    out: str
    stage: Stage = "sft"
    steps: int = Field(100, ge=1)
    batch_size: int = Field(8, ge=1, description="Per rank, per micro-step.")
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(1e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    warmup: int = Field(10, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    clip: float = Field(1.0, gt=0)
    workers: int = Field(0, ge=0)
    shuffle_buffer: int = Field(256, ge=0)
    resampled: bool = False
    seed: int = 0
    save_every: int = Field(0, ge=0, description="0: only at the end.")
    keep_checkpoints: int = Field(
        3, ge=0, description="Step checkpoints kept in the run folder, the newest ones; 0: all."
    )
    gradient_checkpointing: bool = Field(
        False,
        description="Recompute each transformer layer's activations in the backward pass (LLM, and "
        "the vision tower when it trains): much less activation memory for ~30% more compute.",
    )
    log_every: int = Field(1, ge=1)
    init_from: str | None = None
    resume: bool = False
    stop_after: int | None = Field(
        None,
        ge=1,
        description="End this invocation after this step (checkpointed) but keep the --steps schedule.",
    )
    freeze_vision: bool = True
    freeze_llm: bool = False
    pretrain_prompt: str | None = None
    debug_keys: bool = False
    device: str = "auto"
    max_bad_samples: int = Field(
        100,
        ge=0,
        description="Undecodable samples (image or json) skipped and counted over all ranks before "
        "the run stops; 0: stop at the first.",
    )

    @model_validator(mode="after")
    def _stage_rules(self) -> TrainConfig:
        # OmniFusion stage 1: only the adapter learns, so the LLM stays frozen whatever the flags say
        if self.stage == "pretrain" and not self.freeze_llm:
            self.freeze_llm = True
        return self


class RunConfig(_Strict):
    """What `config.json` in the run directory holds."""

    model: ModelConfig
    train: TrainConfig

    def save(self, path: Path) -> None:
        from unimm.workdir import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_text(self.model_dump_json(indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        try:
            return cls.model_validate_json(Path(path).read_text())
        except FileNotFoundError as e:
            raise ConfigError(f"{path}: no config.json (not a unimm run directory?)") from e
