"""`train()`: the training loop behind `unimm train`.

AdamW with warmup + cosine, gradient accumulation and clipping; bf16 autocast on CUDA, fp32 on
CPU; DDP when started by `torchrun` (nccl on CUDA, gloo on CPU). Rank 0 writes `config.json`,
`metrics.jsonl` and `checkpoints/step-<N>/` (the newest `keep_checkpoints` of them).

Resume is exact on the data: the checkpoint stores how many batches this rank consumed and the
stream (seeded by seed, epoch, rank, worker) skips exactly those, so a resumed run sees the same
batches as an uninterrupted one, neither repeating nor skipping any (same seed, world size,
workers, batch size and shards required). The costs: the skipped samples are re-read (not decoded)
once at restart.

A sample that cannot be decoded (image or json) is skipped, logged and counted over all ranks
(`skipped_samples` in the metrics; the count is carried in the checkpoint); past
`max_bad_samples` the run saves a checkpoint at the last finished step and stops with an error
naming the last bad sample. The count is checked before each micro-step (a collective when
world > 1, so every rank stops at the same point).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator
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
    REASONS,
    SKIPPED,
    SampleEncoder,
    ShardDataError,
    ShardStream,
    SkippedSample,
    batches,
    check_shard_count,
    clamp_workers,
    make_loader,
    resolve_shards,
)
from unimm.train.model import MultimodalLM, build_model
from unimm.train.schedule import warmup_cosine
from unimm.train.template import ChatTemplate
from unimm.train.tokenizer import load_tokenizer


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
    `stop_after`, `save_every`, `log_every`, `workers`, `max_bad_samples`, `keep_checkpoints` and
    `gradient_checkpointing` may change; changing `steps` changes the lr schedule; changing
    `workers` changes which worker reads what, so the data order is no longer the same); SFT from
    a pretrain checkpoint keeps its model config.
    The run folder is always the one given now: the saved `out` is where the run was, and a
    moved or copied run must neither train from nor write into that place. A fresh run into a
    folder that holds checkpoints is refused: its steps would mix with theirs."""
    out = Path(train_cfg.out)
    newest = ckpt.latest(out)
    if train_cfg.resume and newest is not None:
        saved = RunConfig.load(out / "config.json")
        t = saved.train.model_copy(
            update={
                "out": train_cfg.out,
                "max_bad_samples": train_cfg.max_bad_samples,
                "steps": train_cfg.steps,
                "save_every": train_cfg.save_every,
                "log_every": train_cfg.log_every,
                "resume": True,
                "stop_after": train_cfg.stop_after,
                "workers": train_cfg.workers,
                "keep_checkpoints": train_cfg.keep_checkpoints,
                "gradient_checkpointing": train_cfg.gradient_checkpointing,
            }
        )
        return saved.model, t, f"resuming from {newest}"
    if newest is not None:
        raise ConfigError(
            f"{out}: already holds checkpoints (newest {newest.name}); pass --resume to continue "
            "that run, or choose another --out"
        )
    if train_cfg.init_from:
        # recorded as the checkpoint folder itself: a run folder's newest one changes as it trains
        src = ckpt.resolve(Path(train_cfg.init_from))
        return (
            ckpt.load_config(src).model.model_copy(update={"num_patches": 0, "num_visual_tokens": 0}),
            train_cfg.model_copy(update={"init_from": str(src)}),
            f"init from {src}",
        )
    return model_cfg, train_cfg, "fresh run"


class BadSamples:
    """Bad samples skipped by this run: this rank's records, and the counts by reason over all
    ranks (plus those carried over from the checkpoint) that `bound` applies to."""

    def __init__(
        self,
        carried: dict[str, int],
        bound: int,
        world: int,
        device: torch.device,
        echo: Callable[[str], Any],
    ) -> None:
        self.carried = torch.tensor([carried.get(r, 0) for r in REASONS], dtype=torch.int64)
        self.local = torch.zeros(len(REASONS), dtype=torch.int64)
        self.total = self.carried.clone()
        self.bound, self.world, self.device, self.echo = bound, world, device, echo
        self.last: SkippedSample | None = None

    def add(self, records: list[SkippedSample]) -> None:
        """Count and report the records one loader batch brought."""
        for r in records:
            self.local[REASONS.index(r.reason)] += 1
            self.last = r
            self.echo(f"skipped a bad sample: {r.text}")

    def locally_past_bound(self) -> bool:
        """Past the bound on this rank's count alone (then it is past it over all ranks too)."""
        return int((self.carried + self.local).sum()) > self.bound

    def sync(self) -> bool:
        """Refresh the counts over all ranks (a collective when world > 1); True past the bound."""
        counts = self.local.clone()
        if self.world > 1:
            # nccl reduces only device tensors, gloo only host ones
            on = self.device if dist.get_backend() == "nccl" else torch.device("cpu")
            counts = counts.to(on)
            dist.all_reduce(counts)
            counts = counts.cpu()
        self.total = self.carried + counts
        return self.count > self.bound

    @property
    def count(self) -> int:
        """Samples skipped over all ranks as of the last `sync`."""
        return int(self.total.sum())

    def by_reason(self) -> dict[str, int]:
        """The counts of `count` by reason (`image`, `json`)."""
        return {r: int(n) for r, n in zip(REASONS, self.total.tolist(), strict=True)}

    def stop_message(self, step: int, saved: Path | None) -> str:
        """Why the run stops: the count, the bound, the last bad sample this rank met, and where
        the checkpoint of `step` was saved (None: no step trained in this invocation)."""
        last = self.last.text if self.last else "(met on another rank)"
        where = (
            f"; checkpoint of step {step} saved to {saved}" if saved else "; no step trained, nothing saved"
        )
        return (
            f"{self.count} bad sample(s) skipped, more than --max-bad-samples {self.bound}; "
            f"the last: {last}{where}"
        )


def _next_batch(data: Iterator[dict[str, Any]], bad: BadSamples) -> tuple[dict[str, Any] | None, int]:
    """The next loader batch holding samples and how many loader batches that took (all count as
    consumed: resume skips loader batches, whatever they held); None once this rank alone is
    past the bound (a shard of nothing but bad samples must not spin forever)."""
    fetched = 0
    while True:
        batch = next(data)
        fetched += 1
        bad.add(batch.pop(SKIPPED, []))
        if batch["keys"]:
            return batch, fetched
        if bad.locally_past_bound():
            return None, fetched


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
    workers = clamp_workers(len(urls), world, cfg.workers, cfg.resampled)
    if workers != cfg.workers:
        if rank == 0:
            echo(
                f"{len(urls)} shard(s) for {world} rank(s): using {workers} DataLoader worker(s) per rank "
                f"instead of {cfg.workers} (every worker reads shards of its own; --resampled lifts this)"
            )
        cfg = cfg.model_copy(update={"workers": workers})  # config.json records what ran
    check_shard_count(urls, world, cfg.workers, cfg.resampled)

    model = build_model(
        model_cfg,
        tok.vocab_size,
        tok.pad_id,
        freeze_vision=cfg.freeze_vision,
        freeze_llm=cfg.freeze_llm,
        device=device,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )
    expected = set(model.checkpoint_state())
    optimizer = _optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(cfg.steps, cfg.warmup, cfg.min_lr_ratio)
    )
    step = consumed = 0
    skipped: dict[str, int] = {}
    resume_from = ckpt.latest(out) if cfg.resume else None
    if resume_from is not None:
        ckpt.apply_weights(model, ckpt.load_weights(resume_from), expected, resume_from)
        state = ckpt.load_state(resume_from)
        optimizer.load_state_dict(state.optimizer)
        scheduler.load_state_dict(state.scheduler)
        step, consumed, skipped = state.step, state.consumed_batches, state.skipped
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
        skip_bad=True,
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
    bad = BadSamples(skipped, cfg.max_bad_samples, world, device, echo)
    start_step = step

    def save(at: ckpt.TrainState) -> Path:
        return ckpt.save_step(out, model.checkpoint_state(), at, run_cfg, cfg.keep_checkpoints)

    model.train()
    try:
        while step < end:
            lr = scheduler.get_last_lr()[0]
            # the state a stop before this step's update must checkpoint (optimiser and scheduler
            # only change at optimizer.step(), so they are still at this point then)
            at_step = (step, consumed, torch.get_rng_state(), bad.by_reason())
            for micro in range(cfg.grad_accum):
                batch, fetched = _next_batch(data, bad)
                consumed += fetched
                if bad.sync():
                    trained = step > start_step  # else the checkpoint there (if any) is this state
                    if trained and rank == 0:
                        s, c, rng, sk = at_step
                        save(ckpt.TrainState(s, c, optimizer.state_dict(), scheduler.state_dict(), rng, sk))
                    if world > 1:
                        dist.barrier()  # rank 0's checkpoint is complete before any rank exits
                    saved = ckpt.step_folder(out, step) if trained else None
                    raise ShardDataError(bad.stop_message(step, saved))
                assert batch is not None  # None only past the bound
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
                    # sums over ranks; nccl reduces only device tensors, gloo only host ones
                    on = device if dist.get_backend() == "nccl" else torch.device("cpu")
                    reduced = window.to(on)
                    dist.all_reduce(reduced)
                    window = reduced.cpu()
                elapsed = time.perf_counter() - t_window
                last = {
                    "step": step,
                    "loss": round(window[0].item() / max(1.0, window[1].item()), 5),
                    "lr": lr,
                    "grad_norm": round(float(grad_norm), 4),
                    "samples_per_s": round(window[2].item() / elapsed, 2),
                    "tokens_per_s": round(window[3].item() / elapsed, 1),
                    "consumed_batches": consumed,
                    "skipped_samples": bad.count,
                    "skipped_reasons": {r: n for r, n in bad.by_reason().items() if n},
                }
                if metrics:
                    metrics.write(json.dumps(last) + "\n")
                    metrics.flush()
                    echo(" ".join(f"{k}={v}" for k, v in last.items() if not isinstance(v, dict)))
                window.zero_()
                t_window = time.perf_counter()
            if (cfg.save_every and step % cfg.save_every == 0) or step == end:
                if rank == 0:
                    save(
                        ckpt.TrainState(
                            step,
                            consumed,
                            optimizer.state_dict(),
                            scheduler.state_dict(),
                            torch.get_rng_state(),
                            bad.by_reason(),
                        )
                    )
                if world > 1:
                    dist.barrier()
        if rank == 0:
            reasons = ", ".join(f"{r} {n}" for r, n in bad.by_reason().items())
            echo(f"finished at step {step}; {bad.count} bad sample(s) skipped ({reasons})")
    finally:
        for f in (metrics, keys_log):
            if f:
                f.close()
        del data, loader
    return last
