"""`train()`: the training loop behind `unimm train`.

AdamW with warmup + cosine, gradient accumulation and clipping; bf16 autocast on CUDA, fp32 on
CPU; DDP when started by `torchrun` (nccl on CUDA, gloo on CPU). Rank 0 writes `config.json`,
`metrics.jsonl` and `checkpoint/`.

Resume is exact on the data: the checkpoint stores how many batches this rank consumed and the
stream (seeded by seed, epoch, rank, worker) skips exactly those, so a resumed run sees the same
batches as an uninterrupted one, neither repeating nor skipping any (same seed, world size,
workers, batch size and shards required). The costs: the skipped samples are re-read (not decoded)
once at restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from unimm.errors import ConfigError
from unimm.train import checkpoint as ckpt
from unimm.train.config import ModelConfig, RunConfig, TrainConfig
from unimm.train.data import (
    SampleEncoder,
    ShardStream,
    batches,
    check_shard_count,
    make_loader,
    resolve_shards,
)
from unimm.train.model import MultimodalLM, build_model
from unimm.train.schedule import warmup_cosine
from unimm.train.template import ChatTemplate
from unimm.train.tokenizer import load_tokenizer

CHECKPOINT = "checkpoint"


def _setup_distributed(device_opt: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device_opt in ("auto", "cuda")
    if device_opt == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but no CUDA GPU is visible")
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return rank, world, device


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _optimizer(model: MultimodalLM, cfg: TrainConfig) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]  # biases, norms: decaying them only hurts
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.95), fused=False)


def resolve_configs(model_cfg: ModelConfig, train_cfg: TrainConfig) -> tuple[ModelConfig, TrainConfig, str]:
    """Apply --resume / --init-from: a resumed run keeps its saved configs (only `steps`,
    `stop_after`, `save_every`, `log_every` may change; changing `steps` changes the lr schedule;
    changing `workers` changes which worker reads what, so the data order is no longer the same); SFT from a pretrain checkpoint keeps its model config."""
    out = Path(train_cfg.out)
    if train_cfg.resume and (out / CHECKPOINT / ckpt.STATE).is_file():
        saved = RunConfig.load(out / "config.json")
        t = saved.train.model_copy(
            update={
                "steps": train_cfg.steps,
                "save_every": train_cfg.save_every,
                "log_every": train_cfg.log_every,
                "resume": True,
                "stop_after": train_cfg.stop_after,
                "workers": train_cfg.workers,
            }
        )
        return saved.model, t, f"resuming from {out / CHECKPOINT}"
    if train_cfg.init_from:
        src = ckpt.load_config(Path(train_cfg.init_from)).model
        return (
            src.model_copy(update={"num_patches": 0, "num_visual_tokens": 0}),
            train_cfg,
            f"init from {train_cfg.init_from}",
        )
    return model_cfg, train_cfg, "fresh run"


def train(model_cfg: ModelConfig, train_cfg: TrainConfig, echo: Any = print) -> dict[str, Any]:
    """Run (or resume) a training run; returns the last logged metrics."""
    rank, world, device = _setup_distributed(train_cfg.device)
    try:
        return _train(model_cfg, train_cfg, rank, world, device, echo)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _train(
    model_cfg: ModelConfig, train_cfg: TrainConfig, rank: int, world: int, device: torch.device, echo: Any
) -> dict[str, Any]:
    model_cfg, cfg, how = resolve_configs(model_cfg, train_cfg)
    out = Path(cfg.out)
    _seed_all(cfg.seed)
    tok = load_tokenizer(model_cfg.tokenizer)
    model_cfg = model_cfg.derive()
    template = ChatTemplate(tok, model_cfg.num_visual_tokens, model_cfg.max_len, model_cfg.system_prompt)
    urls = resolve_shards(cfg.shards)
    check_shard_count(urls, world, cfg.workers, cfg.resampled)

    model = build_model(
        model_cfg,
        tok.vocab_size,
        tok.pad_id,
        freeze_vision=cfg.freeze_vision,
        freeze_llm=cfg.freeze_llm,
        device=device,
    )
    expected = set(model.checkpoint_state())
    optimizer = _optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(cfg.steps, cfg.warmup, cfg.min_lr_ratio)
    )
    step = consumed = 0
    if cfg.resume and (out / CHECKPOINT / ckpt.STATE).is_file():
        ckpt.apply_weights(model, ckpt.load_weights(out / CHECKPOINT), expected, out / CHECKPOINT)
        state = ckpt.load_state(out / CHECKPOINT)
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        step, consumed = state.step, state.consumed_batches
        torch.set_rng_state(state.torch_rng)
    elif cfg.init_from:
        src = Path(cfg.init_from)
        weights = ckpt.load_weights(src)
        # the new stage may unfreeze towers the old one skipped; those keep their HF weights
        ckpt.apply_weights(
            model, weights, expected & weights.keys() | {k for k in expected if k.startswith("adapter.")}, src
        )
    run_cfg = RunConfig(model=model_cfg, train=cfg)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        run_cfg.save(out / "config.json")
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        n_all = sum(p.numel() for p in model.parameters())
        echo(
            f"{how}: stage {cfg.stage}, {len(urls)} shards, world {world}, device {device}, "
            f"{n_train:,} of {n_all:,} parameters trainable, {model_cfg.num_visual_tokens} visual tokens"
        )
    end = min(cfg.steps, cfg.stop_after or cfg.steps)
    if step >= end:
        if rank == 0:
            echo(
                f"already at step {step}; nothing to do (--steps {cfg.steps}, --stop-after {cfg.stop_after})"
            )
        return {"step": step}

    net: torch.nn.Module = (
        DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model
    )
    encoder = SampleEncoder(template, model_cfg.image_size, cfg.stage, cfg.pretrain_prompt)
    stream = ShardStream(
        urls,
        encoder,
        cfg.batch_size,
        seed=cfg.seed,
        shuffle_buffer=cfg.shuffle_buffer,
        resampled=cfg.resampled,
        consumed_batches=consumed,
    )
    loader = make_loader(stream, cfg.workers, pin_memory=device.type == "cuda")
    data = batches(loader)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    )
    metrics = (out / "metrics.jsonl").open("a") if rank == 0 else None
    keys_log = None
    if cfg.debug_keys:
        (out / "keys").mkdir(parents=True, exist_ok=True)
        keys_log = (out / "keys" / f"rank{rank}.txt").open("a")
    last: dict[str, Any] = {}
    window = torch.zeros(4, dtype=torch.float64)  # loss sum, micro-steps, samples, tokens
    t_window = time.perf_counter()
    model.train()
    try:
        while step < end:
            lr = scheduler.get_last_lr()[0]
            for micro in range(cfg.grad_accum):
                batch = next(data)
                consumed += 1
                if keys_log:
                    keys_log.write("\n".join(batch["keys"]) + "\n")
                tensors = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "keys"}
                sync = world == 1 or micro == cfg.grad_accum - 1
                with contextlib.nullcontext() if sync else net.no_sync(), autocast:
                    loss, _ = net(**tensors)
                (loss / cfg.grad_accum).backward()
                window += torch.tensor(
                    [loss.item(), 1, len(batch["keys"]), float(batch["attention_mask"].sum())],
                    dtype=torch.float64,
                )
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], cfg.clip
            )
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % cfg.log_every == 0 or step == end:
                if world > 1:
                    dist.all_reduce(window)  # gloo/nccl: sums over ranks
                elapsed = time.perf_counter() - t_window
                last = {
                    "step": step,
                    "loss": round(window[0].item() / max(1.0, window[1].item()), 5),
                    "lr": lr,
                    "grad_norm": round(float(grad_norm), 4),
                    "samples_per_s": round(window[2].item() / elapsed, 2),
                    "tokens_per_s": round(window[3].item() / elapsed, 1),
                    "consumed_batches": consumed,
                }
                if metrics:
                    metrics.write(json.dumps(last) + "\n")
                    metrics.flush()
                    echo(" ".join(f"{k}={v}" for k, v in last.items()))
                window.zero_()
                t_window = time.perf_counter()
            if (cfg.save_every and step % cfg.save_every == 0) or step == end:
                if rank == 0:
                    state = ckpt.TrainState(
                        step, consumed, optimizer.state_dict(), scheduler.state_dict(), torch.get_rng_state()
                    )
                    ckpt.save_checkpoint(out / CHECKPOINT, model.checkpoint_state(), state, run_cfg)
                if world > 1:
                    dist.barrier()
    finally:
        for f in (metrics, keys_log):
            if f:
                f.close()
        del data, loader
    return last
