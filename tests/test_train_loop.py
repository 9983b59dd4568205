"""Reference trainer: model, loss, stages, checkpoint/resume, DDP and the `unimm train` CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.test_train_data import coco_chats, write_shards
from tests.train_helpers import assert_resume_matches, metrics, quiet
from unimm.errors import ConfigError
from unimm.train import checkpoint as ckpt
from unimm.train.config import ModelConfig, TrainConfig
from unimm.train.loop import train
from unimm.train.model import build_model
from unimm.train.schedule import warmup_cosine

SMALL = {"llm_dim": 64, "max_len": 64, "image_size": 32, "patch_size": 8}


@pytest.fixture(scope="module")
def shards(tmp_path_factory, realdata) -> Path:
    d = tmp_path_factory.mktemp("train_shards")
    write_shards(d, coco_chats(realdata), 4)
    return d


def test_schedule_warmup_then_cosine_to_floor():
    f = warmup_cosine(steps=100, warmup=10, min_lr_ratio=0.1)
    assert [round(f(i), 3) for i in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.55) and f(100) == pytest.approx(0.1)
    assert all(f(i) >= f(i + 1) for i in range(10, 120))


@pytest.mark.parametrize("adapter", ["mlp", "query"])
def test_visual_tokens_replace_image_positions(adapter):
    torch.manual_seed(0)
    cfg = ModelConfig(adapter=adapter, num_queries=5, **SMALL).derive()
    n = cfg.num_visual_tokens
    assert n == (16 if adapter == "mlp" else 5)
    model = build_model(cfg, vocab_size=100, pad_id=0, freeze_vision=True, freeze_llm=False)
    image_id = 100
    ids = torch.tensor([[1, 7] + [image_id] * n + [8, 9, 10, 2], [1, 7] + [image_id] * n + [11, 2, 0, 0]])
    mask = ids == image_id
    labels = torch.full_like(ids, -100)
    labels[:, -3:-1] = ids[:, -3:-1]
    labels[1, -3:] = torch.tensor([11, 2, -100])
    pixels = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    seen = {}
    orig_hidden = model.lm.hidden

    def spy(embeds, attention_mask):
        seen["embeds"] = embeds
        return orig_hidden(embeds, attention_mask)

    model.lm.hidden = spy
    loss, count = model(pixels, ids, (ids != 0).long(), mask, labels)
    assert count.item() == 4 and torch.isfinite(loss)
    vis = model.visual_tokens(pixels)
    assert torch.allclose(seen["embeds"][mask].view(2, n, -1), vis, atol=1e-6)
    assert torch.allclose(seen["embeds"][:, :2], model.lm.embed(ids[:, :2]))
    short = mask.clone()
    short[0, 2] = False  # one visual token would have nowhere to go
    with pytest.raises(ValueError, match="image positions"):
        model(pixels, ids, (ids != 0).long(), short, labels)


@pytest.mark.slow
def test_sft_loss_falls_through_cli(cli, shards, tmp_path):
    run = tmp_path / "sft"
    r = cli(
        "train",
        "--shards",
        shards / "*.tar",
        "--stage",
        "sft",
        "--steps",
        "30",
        "--batch-size",
        "8",
        "--lr",
        "3e-3",
        "--warmup",
        "3",
        "--workers",
        "1",
        "--max-len",
        "64",
        "--image-size",
        "32",
        "--patch-size",
        "8",
        "--llm-dim",
        "64",
        "--out",
        run,
        "--save-every",
        "10",
    )
    assert r.returncode == 0, r.stderr
    m = metrics(run)
    assert [x["step"] for x in m] == list(range(1, 31))
    first, last = m[0]["loss"], sum(x["loss"] for x in m[-5:]) / 5
    assert first > 9.5 and last < first - 3.0, (first, last)
    assert all(x["samples_per_s"] > 0 and x["tokens_per_s"] > 0 for x in m)
    assert "loss=" in r.stdout and "tokens_per_s=" in r.stdout
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["model"]["num_visual_tokens"] == 16 and cfg["train"]["stage"] == "sft"
    assert ckpt.load_state(ckpt.latest(run)).step == 30


@pytest.mark.slow
def test_pretrain_trains_only_the_adapter_then_sft_inits_from_it(shards, tmp_path):
    pre = tmp_path / "pre"
    mcfg = ModelConfig(adapter="query", num_queries=8, **SMALL)
    train(
        mcfg,
        TrainConfig(
            shards=str(shards),
            out=str(pre),
            stage="pretrain",
            steps=8,
            batch_size=4,
            lr=1e-2,
            warmup=1,
            workers=0,
            seed=5,
        ),
        echo=quiet,
    )
    saved = load_file(str(ckpt.latest(pre) / ckpt.WEIGHTS))
    torch.manual_seed(5)
    fresh = build_model(mcfg.derive(), 49152, 0, freeze_vision=True, freeze_llm=True).state_dict()
    for k, v in saved.items():
        same = torch.equal(v, fresh[k])
        assert same == (not k.startswith("adapter.")), k
    m = metrics(pre)
    assert m[-1]["loss"] < m[0]["loss"]
    # stage 2 from the stage-1 checkpoint: with a vanishing lr the weights are the stage-1 ones
    sft = tmp_path / "sft"
    train(
        ModelConfig(),
        TrainConfig(
            shards=str(shards),
            out=str(sft),
            stage="sft",
            steps=1,
            batch_size=4,
            lr=1e-12,
            warmup=0,
            workers=0,
            init_from=str(pre),  # a run folder: its newest checkpoint
        ),
        echo=quiet,
    )
    after = load_file(str(ckpt.latest(sft) / ckpt.WEIGHTS))
    assert after.keys() == saved.keys()
    assert all(torch.allclose(after[k], saved[k], atol=1e-6) for k in saved)
    assert json.loads((sft / "config.json").read_text())["model"]["adapter"] == "query"


@pytest.mark.slow
def test_resume_matches_uninterrupted_run(shards, tmp_path):
    assert_resume_matches(ModelConfig(**SMALL), shards, tmp_path)


def test_checkpoint_load_refuses_arbitrary_objects(tmp_path):
    (tmp_path / "checkpoint").mkdir()
    torch.save({"step": 1, "evil": ConfigError("x")}, tmp_path / "checkpoint" / ckpt.STATE)
    with pytest.raises(ConfigError, match="refuses to load"):
        ckpt.load_state(tmp_path / "checkpoint")


@pytest.mark.slow
def test_cli_errors_are_one_line_exit_2(cli, shards, tmp_path):
    r = cli("train", "--shards", tmp_path / "none-*.tar", "--out", tmp_path / "r", "--steps", "1")
    assert r.returncode == 2 and "no shards match" in r.stderr
    r = cli("train", "--shards", shards, "--out", tmp_path / "r", "--adapter", "resampler")
    assert r.returncode == 2 and "--adapter" in r.stderr
    assert not (tmp_path / "r" / ckpt.CHECKPOINTS).exists()
    # more workers than shards is not an error: they are lowered to the shards available
    # (tests/test_small_defects.py)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_ranks_read_disjoint_samples(shards, tmp_path):
    run = tmp_path / "ddp"
    # 4 shards x 20 samples; each rank owns 2 shards = 40 samples = 10 batches of 4: one epoch each
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--nnodes",
        "1",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "unimm",
        "train",
        "--shards",
        str(shards / "manifest.json"),
        "--out",
        str(run),
        "--steps",
        "10",
        "--batch-size",
        "4",
        "--workers",
        "1",
        "--shuffle-buffer",
        "8",
        "--max-len",
        "64",
        "--image-size",
        "32",
        "--patch-size",
        "8",
        "--llm-dim",
        "64",
        "--debug-keys",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    keys = [(run / "keys" / f"rank{i}.txt").read_text().split() for i in range(2)]
    assert [len(k) for k in keys] == [40, 40] and all(len(set(k)) == 40 for k in keys)
    assert not set(keys[0]) & set(keys[1])
    assert len(set(keys[0]) | set(keys[1])) == 80
    assert "world 2" in r.stdout
    assert [x["step"] for x in metrics(run)] == list(range(1, 11))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_training(shards, tmp_path):
    run = tmp_path / "gpu"
    last = train(
        ModelConfig(**SMALL),
        TrainConfig(
            shards=str(shards),
            out=str(run),
            steps=20,
            batch_size=8,
            lr=3e-3,
            warmup=2,
            workers=2,
            device="cuda",
        ),
        echo=quiet,
    )
    m = metrics(run)
    assert last["step"] == 20 and m[-1]["loss"] < m[0]["loss"] - 1.0
    assert ckpt.load_state(ckpt.latest(run)).step == 20
