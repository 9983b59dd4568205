"""Checkpoints: `RUN_DIR/checkpoint/` = model.safetensors (weights) + state.pt (optimiser,
scheduler, step, data position, RNG; tensors and plain containers only) + config.json.

The folder is written beside its final place and swapped in atomically, so a crash mid-save
leaves the previous checkpoint intact. Loading never unpickles arbitrary objects: weights come
from safetensors, the rest through `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from unimm.errors import ConfigError
from unimm.train.config import RunConfig
from unimm.workdir import atomic_dir

WEIGHTS, STATE, CONFIG = "model.safetensors", "state.pt", "config.json"


@dataclass
class TrainState:
    step: int
    consumed_batches: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    torch_rng: torch.Tensor
    # bad samples skipped so far, by reason, over all ranks (checkpoints before it lack the key)
    skipped: dict[str, int] = field(default_factory=dict)


def _unshared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors that share storage (tied weights); give repeats their own copy
    seen: set[int] = set()
    out = {}
    for k, v in state.items():
        v = v.detach().contiguous().cpu()
        ptr = v.untyped_storage().data_ptr()
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def save_checkpoint(
    folder: Path, weights: dict[str, torch.Tensor], state: TrainState, config: RunConfig
) -> Path:
    """Write a complete checkpoint folder atomically (replacing an older one)."""
    with atomic_dir(Path(folder)) as tmp:
        save_file(_unshared(weights), str(tmp / WEIGHTS))
        torch.save(
            {
                "step": state.step,
                "consumed_batches": state.consumed_batches,
                "optimizer": state.optimizer,
                "scheduler": state.scheduler,
                "torch_rng": state.torch_rng,
                "skipped": dict(state.skipped),
            },
            tmp / STATE,
        )
        config.save(tmp / CONFIG)
    return Path(folder)


def load_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of a checkpoint folder (safetensors: no code runs while loading)."""
    path = Path(folder) / WEIGHTS
    if not path.is_file():
        raise ConfigError(f"{folder}: no {WEIGHTS} (not a unimm checkpoint)")
    return load_file(str(path))


def load_state(folder: Path) -> TrainState:
    """Optimiser/scheduler/step/data position of a checkpoint, loaded with weights_only=True."""
    path = Path(folder) / STATE
    if not path.is_file():
        raise ConfigError(f"{folder}: no {STATE} (not a unimm checkpoint)")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ConfigError(
            f"{path}: refuses to load (holds objects beyond tensors and plain containers)"
        ) from e
    return TrainState(
        raw["step"],
        raw["consumed_batches"],
        raw["optimizer"],
        raw["scheduler"],
        raw["torch_rng"],
        dict(raw.get("skipped", {})),
    )


def load_config(folder: Path) -> RunConfig:
    """The run configuration saved with a checkpoint."""
    return RunConfig.load(Path(folder) / CONFIG)


def apply_weights(
    model: torch.nn.Module, weights: dict[str, torch.Tensor], expected: set[str], source: Path
) -> None:
    """Load `weights` into `model`; every key of `expected` (the model's checkpoint_state) must be present."""
    missing = sorted(expected - weights.keys())
    unexpected = sorted(weights.keys() - set(model.state_dict().keys()))
    if missing or unexpected:
        raise ConfigError(
            f"{source}: checkpoint does not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    model.load_state_dict(weights, strict=False)
