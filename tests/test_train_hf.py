"""The reference trainer on local Hugging Face towers (tiny random checkpoints built offline by
tests/hf_tiny.py): both adapters and both stages through the real CLI, frozen towers untouched
and kept out of the checkpoint, exact resume, a checkpoint loaded back, gradient checkpointing,
and keep-last-N checkpoints."""

from __future__ import annotations

import json
import shutil
from itertools import islice
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.hf_tiny import TinyHF, build_tiny_hf
from tests.test_train_data import coco_chats, write_shards
from tests.train_helpers import assert_resume_matches, metrics
from unimm.errors import ConfigError
from unimm.placeholder import IMAGE_PLACEHOLDER
from unimm.train import checkpoint as ckpt
from unimm.train import loop
from unimm.train.config import ModelConfig, RunConfig, TrainConfig
from unimm.train.data import SampleEncoder, ShardStream, resolve_shards
from unimm.train.model import build_model
from unimm.train.template import ChatTemplate
from unimm.train.tokenizer import load_tokenizer

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    for k, v in OFFLINE.items():
        monkeypatch.setenv(k, v)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # these models are tiny: a second intra-op thread only adds synchronisation, and on a shared
    # machine it made the runs 3-4x slower
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def hf(tmp_path_factory, realdata) -> TinyHF:
    turns = [t for chat, _ in coco_chats(realdata) for t in chat.turns]
    texts = [t.content.replace(IMAGE_PLACEHOLDER, "").strip() for t in turns] + ["user\n", "assistant\n"]
    return build_tiny_hf(tmp_path_factory.mktemp("hf"), texts)


@pytest.fixture(scope="module")
def shards(tmp_path_factory, realdata) -> Path:
    d = tmp_path_factory.mktemp("hf_shards")
    write_shards(d, coco_chats(realdata), 2)
    return d


# (adapter, vision, llm): CLIP (CLS dropped) under the MLP adapter, SigLIP under the query adapter
TOWERS = [("mlp", "clip", "llama"), ("query", "siglip", "qwen2")]


def _model_cfg(hf: TinyHF, adapter: str, vision: str, llm: str) -> ModelConfig:
    return ModelConfig(
        vision=str(getattr(hf, vision)),
        llm=str(getattr(hf, llm)),
        tokenizer=str(hf.tokenizer),
        adapter=adapter,
        num_queries=8,
        max_len=96,
    )


def _window_drop(run: Path, k: int = 5) -> float:
    """Mean loss of the first k steps minus that of the last k."""
    losses = [m["loss"] for m in metrics(run)]
    return sum(losses[:k]) / k - sum(losses[-k:]) / k


def _batch(cfg: ModelConfig, shards: Path, n: int = 8, stage: str = "sft") -> dict:
    """One collated batch of the demo shards rendered for `cfg` (derived)."""
    tok = load_tokenizer(cfg.tokenizer)
    enc = SampleEncoder(ChatTemplate(tok, cfg.num_visual_tokens, cfg.max_len), cfg.image_size, stage)
    batch = next(islice(ShardStream(resolve_shards(str(shards)), enc, n, shuffle_buffer=0), 1))
    return {k: v for k, v in batch.items() if k != "keys"}


def _hf_state(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _unimm(*args: object) -> str:
    """Run the real `unimm` CLI in this process (typer's runner): the spy on `build_model` sees
    the model it trains. Returns its output; raises what the command raised."""
    from typer.testing import CliRunner

    from unimm.cli import app

    r = CliRunner().invoke(app, [str(a) for a in args], prog_name="unimm")
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    assert r.exit_code == 0, r.output[-3000:]
    return r.output


@pytest.fixture
def built(monkeypatch) -> list:
    """The models `unimm train` builds, in order (the real ones, kept for inspection)."""
    models: list = []
    real = loop.build_model

    def spy(*args, **kwargs):
        models.append(real(*args, **kwargs))
        return models[-1]

    monkeypatch.setattr(loop, "build_model", spy)
    return models


def _same_as_folder(part: torch.nn.Module, folder: Path) -> bool:
    """Whether every tensor of the tower is the one saved in its HF folder (compared in the
    folder's dtype; a tied LM head is saved as the embedding alone)."""
    saved = {k.removeprefix("vision_model."): v for k, v in _hf_state(folder).items()}
    now = part.state_dict()
    assert now.keys() - saved.keys() <= {"lm_head.weight"}, now.keys() - saved.keys()
    return all(torch.equal(now[k].to(saved[k].dtype), saved[k]) for k in now.keys() & saved.keys())


@pytest.mark.parametrize(("adapter", "vision", "llm"), TOWERS)
def test_both_stages_through_cli(hf, shards, tmp_path, built, adapter, vision, llm):
    vis_dir, lm_dir = getattr(hf, vision), getattr(hf, llm)
    common = [
        "train", "--shards", shards, "--vision", vis_dir, "--llm", lm_dir, "--tokenizer", hf.tokenizer,
        "--adapter", adapter, "--num-queries", "8", "--max-len", "96", "--batch-size", "8",
        "--workers", "0", "--shuffle-buffer", "16", "--warmup", "2", "--device", "cpu", "--steps", "30",
    ]  # fmt: skip
    pre, sft = tmp_path / "pre", tmp_path / "sft"
    out = _unimm(*common, "--stage", "pretrain", "--lr", "2e-2", "--out", pre)
    assert _window_drop(pre) > 0.1, [m["loss"] for m in metrics(pre)]
    # stage 1: only the adapter learns; both towers are exactly their folders' weights still...
    model = built[-1]
    assert _same_as_folder(model.vision.model, vis_dir)
    assert _same_as_folder(model.lm.model, lm_dir)
    assert all(p.grad is None for p in [*model.vision.parameters(), *model.lm.parameters()])
    # ...and only the adapter is saved (the towers come back from their folders), with its optimiser state
    saved = ckpt.latest(pre)
    weights, state = ckpt.load_weights(saved), ckpt.load_state(saved)
    assert weights.keys() == {k for k in model.state_dict() if k.startswith("adapter.")}
    assert len(state.optimizer["state"]) == len(weights)
    assert f" {sum(v.numel() for v in weights.values()):,} of " in out  # the trainable count said

    out = _unimm(
        *common,
        "--stage",
        "sft",
        "--lr",
        "3e-3",
        "--init-from",
        pre,
        "--out",
        sft,
        "--gradient-checkpointing",
    )
    assert f"init from {saved}" in out
    assert _window_drop(sft) > 0.8, [m["loss"] for m in metrics(sft)]
    run_cfg = json.loads((sft / "config.json").read_text())
    assert run_cfg["train"]["init_from"] == str(saved) and run_cfg["train"]["gradient_checkpointing"]
    # stage 2: the LLM learns too (in fp32, though the Qwen2 folder holds bf16); the vision tower stays
    model = built[-1]
    assert _same_as_folder(model.vision.model, vis_dir)
    assert not _same_as_folder(model.lm.model, lm_dir)
    assert {p.dtype for p in model.lm.parameters()} == {torch.float32}
    weights = ckpt.load_weights(ckpt.latest(sft))
    assert weights.keys() == {k for k in model.state_dict() if not k.startswith("vision.")}
    assert all(v.dtype == torch.float32 for v in weights.values())
    # every trained tensor has its optimiser state (a tied head is the embedding: saved under both names)
    trained = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(ckpt.load_state(ckpt.latest(sft)).optimizer["state"]) == len(trained)

    # loaded back from the run folder (saved weights over the towers its config names), it is the
    # trained model: the same loss as in memory, well below an untrained one's
    back, tok, cfg = ckpt.load_model(sft)
    assert cfg.train.stage == "sft" and not back.training
    batch = _batch(cfg.model, shards)
    torch.manual_seed(0)
    fresh = build_model(cfg.model, tok.vocab_size, tok.pad_id, freeze_vision=True, freeze_llm=False)
    with torch.no_grad():
        loss_back, loss_mem, loss_fresh = (m.eval()(**batch)[0].item() for m in (back, model, fresh))
    assert loss_back == pytest.approx(loss_mem, abs=1e-5) and loss_back < loss_fresh - 1.0


def test_resume_matches_uninterrupted_run_with_hf_towers(hf, shards, tmp_path):
    mcfg = _model_cfg(hf, "query", "siglip", "qwen2")
    a, b = assert_resume_matches(mcfg, shards, tmp_path, keep_checkpoints=2)
    assert [s for s, _ in ckpt.list_checkpoints(a)] == [s for s, _ in ckpt.list_checkpoints(b)] == [4, 6]
    assert any(k.startswith("lm.") for k in ckpt.load_weights(ckpt.latest(a)))


def _probes(model) -> dict[str, torch.nn.Module]:
    """A module inside the first layer of each tower: it runs again when its layer is recomputed."""
    lm = model.lm.blocks[0].ff if hasattr(model.lm, "blocks") else model.lm.model.model.layers[0].mlp
    vision = (
        model.vision.blocks.layers[0].linear1
        if hasattr(model.vision, "blocks")
        else model.vision.model.encoder.layers[0].mlp
    )
    return {"vision": vision, "lm": lm}


@pytest.mark.parametrize(
    ("towers", "freeze_vision", "freeze_llm"),
    [
        ("hf", False, False),  # both HF towers train: both checkpointed
        ("hf", True, True),  # stage 1: the frozen LM still is (the adapter's gradient crosses it)
        ("tiny", False, False),
    ],
)
def test_gradient_checkpointing_keeps_loss_and_gradients(hf, shards, towers, freeze_vision, freeze_llm):
    if towers == "hf":
        cfg = _model_cfg(hf, "query", "siglip", "qwen2").derive()
    else:
        cfg = ModelConfig(
            tokenizer=str(hf.tokenizer),
            adapter="query",
            num_queries=8,
            max_len=96,
            image_size=32,
            patch_size=8,
        ).derive()
    tok = load_tokenizer(cfg.tokenizer)
    batch = _batch(cfg, shards, n=4)
    runs = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = build_model(
            cfg,
            tok.vocab_size,
            tok.pad_id,
            freeze_vision=freeze_vision,
            freeze_llm=freeze_llm,
            gradient_checkpointing=checkpointing,
        ).train()
        calls = dict.fromkeys(("vision", "lm"), 0)
        for name, m in _probes(model).items():
            m.register_forward_pre_hook(
                lambda *_, name=name, calls=calls: calls.__setitem__(name, calls[name] + 1)
            )
        loss = model(**batch)[0]
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        assert all(g is not None for g in grads.values())
        runs.append((loss.detach(), grads, calls))
    (loss0, grads0, calls0), (loss1, grads1, calls1) = runs
    assert torch.allclose(loss0, loss1, atol=1e-6)
    assert grads0.keys() == grads1.keys()
    for k in grads0:
        assert torch.allclose(grads0[k], grads1[k], atol=1e-6, rtol=1e-4), k
    # without: each layer runs once; with: the checkpointed ones run again in the backward pass
    # (a frozen vision tower runs without grad: nothing to recompute)
    assert calls0 == {"vision": 1, "lm": 1}
    assert calls1 == {"vision": 1 if freeze_vision else 2, "lm": 2}


TINY = [
    "--max-len", "64", "--image-size", "32", "--patch-size", "8", "--llm-dim", "64", "--llm-layers", "1",
    "--batch-size", "4", "--workers", "0", "--warmup", "1", "--device", "cpu",
]  # fmt: skip


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_keep_last_checkpoints_and_resume_from_the_newest(shards, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--shards", shards, "--out", run, *TINY, "--save-every", "2", "--keep-checkpoints", "2"]
    _unimm(*args, "--steps", "10")  # checkpoints at steps 2, 4, 6, 8, 10
    assert [s for s, _ in ckpt.list_checkpoints(run)] == [8, 10]
    assert sorted(p.name for p in (run / ckpt.CHECKPOINTS).iterdir()) == ["step-000008", "step-000010"]
    # a fresh run into it would mix its steps with these: refused, nothing touched
    before = _snapshot(run)
    with pytest.raises(ConfigError, match=r"already holds checkpoints \(newest step-000010\); pass --resume"):
        _unimm(*args, "--steps", "10")
    assert _snapshot(run) == before
    out = _unimm(*args, "--steps", "12", "--resume")
    assert f"resuming from {ckpt.step_folder(run, 10)}" in out
    assert [s for s, _ in ckpt.list_checkpoints(run)] == [10, 12]
    assert [m["step"] for m in metrics(run)] == list(range(1, 13))
    assert ckpt.load_state(ckpt.latest(run)).consumed_batches == 12


def test_checkpoint_folders_listing_pruning_and_resolving(tmp_path):
    run_cfg = RunConfig(model=ModelConfig(), train=TrainConfig(shards="s", out=str(tmp_path)))
    weights = {"adapter.w": torch.zeros(2)}

    def save(step: int, keep: int) -> Path:
        state = ckpt.TrainState(step, step, {}, {}, torch.get_rng_state())
        return ckpt.save_step(tmp_path, weights, state, run_cfg, keep)

    assert ckpt.latest(tmp_path) is None
    for step in (1, 2, 999_999):
        save(step, keep=0)  # 0: keep every one
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [1, 2, 999_999]
    # what is not a finished step folder is never a checkpoint
    (tmp_path / ckpt.CHECKPOINTS / "step-000005").mkdir()  # no state.pt
    (tmp_path / ckpt.CHECKPOINTS / "notes").mkdir()
    newest = save(1_000_000, keep=2)  # ordered by number, not by name
    assert newest == ckpt.step_folder(tmp_path, 1_000_000) == ckpt.latest(tmp_path) == ckpt.resolve(tmp_path)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [999_999, 1_000_000]
    assert not [p for p in (tmp_path / ckpt.CHECKPOINTS).iterdir() if p.name.endswith(".tmp")]
    older = ckpt.step_folder(tmp_path, 999_999)
    assert ckpt.resolve(older) == older and ckpt.load_state(older).step == 999_999
    with pytest.raises(ConfigError, match="neither a checkpoint folder nor a run folder"):
        ckpt.resolve(tmp_path / "elsewhere")


def test_hf_vision_facts_and_patch_tokens(hf, tmp_path):
    clip = ModelConfig(vision=str(hf.clip), tokenizer=str(hf.tokenizer)).derive()
    assert (clip.image_size, clip.patch_size, clip.vision_hidden, clip.num_visual_tokens) == (32, 8, 32, 16)
    assert clip.vision_has_cls and clip.image_mean == pytest.approx([0.48145466, 0.4578275, 0.40821073])
    # SigLIP: no CLS, [-1, 1] normalisation, also when its folder has no preprocessor config
    bare = tmp_path / "siglip"
    shutil.copytree(hf.siglip, bare)
    (bare / "preprocessor_config.json").unlink()
    for folder in (hf.siglip, bare):
        siglip = ModelConfig(vision=str(folder), tokenizer=str(hf.tokenizer)).derive()
        assert not siglip.vision_has_cls and siglip.image_mean == siglip.image_std == [0.5] * 3
    # one feature per patch reaches the adapter: CLIP's CLS dropped, SigLIP has none
    tok = load_tokenizer(str(hf.tokenizer))
    pixels = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    for cfg in (clip, siglip):
        model = build_model(cfg, tok.vocab_size, tok.pad_id, freeze_vision=True, freeze_llm=False)
        assert model.visual_tokens(pixels).shape == (2, 16, model.lm.hidden_size)
        assert len(model.vision.model.encoder.layers) == 2
    # LLaVA's penultimate layer: the tower keeps the layers up to it and gives the same features
    # as the whole tower's hidden_states[-2]
    import transformers

    whole = transformers.AutoModel.from_pretrained(str(hf.clip), local_files_only=True).eval()
    cut = ModelConfig(vision=str(hf.clip), tokenizer=str(hf.tokenizer), vision_feature_layer=-2).derive()
    model = build_model(cut, tok.vocab_size, tok.pad_id, freeze_vision=True, freeze_llm=False)
    assert len(model.vision.model.encoder.layers) == 1
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = whole(pixel_values=x, output_hidden_states=True).hidden_states[-2][:, 1:]
        assert torch.allclose(model.vision(x), want, atol=1e-6)
    with pytest.raises(ConfigError, match=r"--vision-feature-layer -4: .* has 2 layers"):
        ModelConfig(vision=str(hf.clip), vision_feature_layer=-4).derive()
