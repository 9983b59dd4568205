"""Checkpoints: `RUN_DIR/checkpoints/step-<N>/` = model.safetensors (weights) + state.pt
(optimiser, scheduler, step, data position, RNG; tensors and plain containers only) + config.json.

Each folder is written beside its final place and swapped in atomically, so a crash mid-save
leaves the earlier checkpoints intact; only then are the ones past the newest `keep` removed
(renamed away first, so a removal cut short never leaves a half folder under a step name).
Resume takes the newest. Loading never unpickles arbitrary objects: weights come from
safetensors, the rest through `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from unimm.errors import ConfigError
from unimm.train.config import RunConfig
from unimm.train.model import MultimodalLM, build_model
from unimm.train.tokenizer import Tokenizer, load_tokenizer
from unimm.workdir import atomic_dir, temp_path

WEIGHTS, STATE, CONFIG = "model.safetensors", "state.pt", "config.json"
CHECKPOINTS = "checkpoints"  # under the run folder
_STEP = re.compile(r"^step-(?P<step>[0-9]+)$")


def step_folder(run: Path, step: int) -> Path:
    """Where the checkpoint of `step` of the run in `run` lives."""
    return Path(run) / CHECKPOINTS / f"step-{step:06d}"


def list_checkpoints(run: Path) -> list[tuple[int, Path]]:
    """The complete checkpoints of a run folder as (step, folder), oldest first (temporaries of
    a save in progress or cut short have other names and are not listed)."""
    root = Path(run) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for entry in os.scandir(root):
        m = _STEP.match(entry.name)
        if m and entry.is_dir() and os.path.isfile(os.path.join(entry.path, STATE)):
            found.append((int(m["step"]), Path(entry.path)))
    return sorted(found)


def latest(run: Path) -> Path | None:
    """The newest checkpoint folder of a run folder, or None when it has none."""
    found = list_checkpoints(run)
    return found[-1][1] if found else None


def resolve(path: Path) -> Path:
    """A checkpoint folder, or a run folder standing for its newest checkpoint (`--init-from`)."""
    path = Path(path)
    if (path / WEIGHTS).is_file():
        return path
    newest = latest(path)
    if newest is None:
        raise ConfigError(f"{path}: neither a checkpoint folder nor a run folder with checkpoints")
    return newest


def prune(run: Path, keep: int, spare: Path | None = None) -> list[Path]:
    """Remove all but the newest `keep` checkpoints of `run` (0: remove none), never `spare`;
    returns the removed folders."""
    found = list_checkpoints(run)
    doomed = [p for _, p in found[:-keep] if p != spare] if keep else []
    for folder in doomed:
        # renamed to a temporary of this process first: a removal cut short is swept later
        # (workdir's sweep of dead writers' temporaries), never read as a checkpoint
        gone = temp_path(folder)
        os.rename(folder, gone)
        shutil.rmtree(gone, ignore_errors=True)
    return doomed


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


def save_step(
    run: Path, weights: dict[str, torch.Tensor], state: TrainState, config: RunConfig, keep: int
) -> Path:
    """Write the checkpoint of `state.step` atomically, then prune the run to the newest `keep`."""
    folder = save_checkpoint(step_folder(run, state.step), weights, state, config)
    prune(run, keep, spare=folder)
    return folder


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


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[MultimodalLM, Tokenizer, RunConfig]:
    """A trained model back from a checkpoint folder (or a run folder: its newest checkpoint), in
    eval mode: the saved weights over the towers of the folders its config names (a frozen Hugging
    Face tower is not saved; it comes back from its folder). Returns the model, its tokenizer and
    the run configuration (`ChatTemplate` renders inputs as in training)."""
    folder = resolve(Path(path))
    cfg = load_config(folder)
    tok = load_tokenizer(cfg.model.tokenizer)
    model = build_model(
        cfg.model,
        tok.vocab_size,
        tok.pad_id,
        freeze_vision=cfg.train.freeze_vision,
        freeze_llm=cfg.train.freeze_llm,
        device=device,
    )
    apply_weights(model, load_weights(folder), set(model.checkpoint_state()), folder)
    return model.eval(), tok, cfg
