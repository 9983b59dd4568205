"""What the trainer tests share: reading a run's metrics, a silent echo, and the resume check
(a run interrupted and resumed must equal the uninterrupted one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from unimm.train import checkpoint as ckpt
from unimm.train.config import ModelConfig, TrainConfig
from unimm.train.loop import train


def metrics(run: Path) -> list[dict]:
    """The per-step metrics a run folder logged."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def quiet(*_: object) -> None:
    pass


def assert_resume_matches(
    mcfg: ModelConfig, shards: Path, tmp: Path, **overrides: object
) -> tuple[Path, Path]:
    """Train 6 SFT steps uninterrupted (run a) and interrupted after step 3 then resumed (run b);
    optimizer state, weights, learning rates and losses must agree. Returns (a, b)."""

    def cfg(out: Path, **kw: object) -> TrainConfig:
        base = dict(
            shards=str(shards),
            out=str(out),
            stage="sft",
            steps=6,
            batch_size=4,
            lr=3e-3,
            warmup=2,
            workers=2,
            shuffle_buffer=16,
            seed=11,
            save_every=2,
        )
        return TrainConfig(**{**base, **overrides, **kw})

    a, b = tmp / "a", tmp / "b"
    train(mcfg, cfg(a), echo=quiet)
    # interrupted after step 3 (odd: the resumed loader must rotate its 2 workers), then resumed
    train(mcfg, cfg(b, stop_after=3), echo=quiet)
    assert ckpt.load_state(ckpt.latest(b)).step == 3
    train(mcfg, cfg(b, resume=True), echo=quiet)
    sa, sb = ckpt.load_state(ckpt.latest(a)), ckpt.load_state(ckpt.latest(b))
    assert sa.step == sb.step == 6 and sa.consumed_batches == sb.consumed_batches == 6
    assert sa.scheduler["_last_lr"] == sb.scheduler["_last_lr"]
    for pa, pb in zip(sa.optimizer["state"].values(), sb.optimizer["state"].values(), strict=True):
        assert pa["step"] == pb["step"]
        assert torch.allclose(pa["exp_avg"], pb["exp_avg"], atol=1e-6)
        assert torch.allclose(pa["exp_avg_sq"], pb["exp_avg_sq"], atol=1e-8)
    wa, wb = ckpt.load_weights(ckpt.latest(a)), ckpt.load_weights(ckpt.latest(b))
    assert wa.keys() == wb.keys()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
    ma, mb = metrics(a), metrics(b)
    assert [x["step"] for x in mb] == [1, 2, 3, 4, 5, 6]
    assert [x["lr"] for x in ma] == [x["lr"] for x in mb]
    assert [x["loss"] for x in ma] == pytest.approx([x["loss"] for x in mb], abs=1e-4)
    return a, b
