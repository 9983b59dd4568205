"""Vision encoder -> adapter -> causal LM.

Adapters: `mlp` (two linear layers with GELU, one visual token per patch: LLaVA / OmniFusion's MLP
adapter) and `query` (N trainable queries cross-attending to the patch features, then living in
the LLM embedding space: Muffin's query vectors / OmniFusion's transformer adapter). Visual tokens
replace the reserved image ids of the input by a boolean mask. `tiny` encoders and decoders are
built in for CPU tests; local Hugging Face folders are used for real runs (`transformers` is
imported only then), frozen ones in bf16 on CUDA, trainable ones always in fp32.

Gradient checkpointing recomputes each transformer layer in the backward pass instead of keeping
its activations: the LM's layers (also when frozen, since the adapter's gradient crosses it) and
the vision tower's when it trains; never the adapter (small).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from unimm.errors import ConfigError
from unimm.train.config import TINY, ModelConfig
from unimm.train.template import IGNORE


def _transformers():
    try:
        import transformers
    except ImportError as e:
        raise ConfigError("Hugging Face models need `transformers` (pip install 'unimm[train]')") from e
    return transformers


def _from_pretrained(auto: type, folder: str, dtype: torch.dtype) -> nn.Module:
    """Load a local HF folder in exactly `dtype`. Never left to transformers: from v5 its default
    is the dtype saved in the folder (bf16 for most released LLMs), and a trainable tower loaded
    so would train without fp32 master weights. The keyword was `torch_dtype` before 4.56."""
    from packaging.version import Version

    tf = _transformers()
    key = "dtype" if Version(tf.__version__) >= Version("4.56") else "torch_dtype"
    return auto.from_pretrained(folder, local_files_only=True, **{key: dtype})


def _enable_hf_checkpointing(model: nn.Module) -> None:
    # non-reentrant: needs no input that requires grad, so a frozen tower between trainable parts
    # checkpoints too (and it is what torch recommends)
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # the newer name; the old one warns there
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _stack(layers: Iterable[nn.Module], x: torch.Tensor, checkpointed: bool) -> torch.Tensor:
    """Run `layers` in turn; `checkpointed` (while grad is on): recompute each one's activations
    in the backward pass instead of keeping them."""
    for layer in layers:
        x = (
            checkpoint(layer, x, use_reentrant=False)
            if checkpointed and torch.is_grad_enabled()
            else layer(x)
        )
    return x


# --------------------------------------------------------------------------------------------
# vision encoders: [B, 3, S, S] normalised float -> [B, P, D]
# --------------------------------------------------------------------------------------------
class TinyViT(nn.Module):
    """A small ViT: conv patch embedding, learned positions, pre-norm transformer encoder."""

    def __init__(self, cfg: ModelConfig, checkpointing: bool = False) -> None:
        super().__init__()
        self.checkpointing = checkpointing
        d = cfg.vision_dim
        self.patch = nn.Conv2d(3, d, cfg.patch_size, stride=cfg.patch_size)
        self.pos = nn.Parameter(torch.randn(1, cfg.num_patches, d) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d, cfg.vision_heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, cfg.vision_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch(pixels).flatten(2).transpose(1, 2) + self.pos
        return self.norm(_stack(self.blocks.layers, x, self.checkpointing))


class HFVision(nn.Module):
    """A local Hugging Face vision tower (CLIP / SigLIP style); CLS dropped where there is one.

    What cannot reach the chosen hidden state is dropped at load: the encoder layers after it and
    the pooling parts (CLIP's and SigLIP's `post_layernorm`, SigLIP's attention-pooling `head`).
    Less to compute, and a trainable tower has no parameter without a gradient (which DDP
    refuses)."""

    def __init__(self, cfg: ModelConfig, dtype: torch.dtype, checkpointing: bool = False) -> None:
        super().__init__()
        model = _from_pretrained(_transformers().AutoModel, cfg.vision, dtype)
        if checkpointing:
            _enable_hf_checkpointing(model)
        self.model = getattr(model, "vision_model", model)  # full CLIP/SigLIP checkpoints: keep the tower
        self.layer, self.drop_cls = cfg.vision_feature_layer, cfg.vision_has_cls
        layers = getattr(getattr(self.model, "encoder", None), "layers", None)
        if isinstance(layers, nn.ModuleList):
            # hidden_states[i] is the output of the first i layers (0: the embeddings)
            keep = self.layer % (len(layers) + 1)
            self.model.encoder.layers = layers[:keep]
            self.layer = -1
        for name in ("post_layernorm", "head"):
            if isinstance(getattr(self.model, name, None), nn.Module):
                setattr(self.model, name, nn.Identity())

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model(
            pixel_values=pixels.to(next(self.model.parameters()).dtype), output_hidden_states=True
        )
        feats = out.hidden_states[self.layer]
        return feats[:, 1:] if self.drop_cls else feats


# --------------------------------------------------------------------------------------------
# adapters: [B, P, D_vision] -> [B, N, D_llm]
# --------------------------------------------------------------------------------------------
class MLPAdapter(nn.Module):
    """Two-layer MLP with GELU; one visual token per patch."""

    def __init__(self, d_vision: int, d_llm: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_vision, d_llm), nn.GELU(), nn.Linear(d_llm, d_llm))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats)


class QueryAdapter(nn.Module):
    """N trainable queries cross-attend to the projected patch features (pre-norm blocks with an
    MLP), so the LLM always sees N visual tokens whatever the patch count."""

    def __init__(self, d_vision: int, d_llm: int, num_queries: int, layers: int = 1, heads: int = 4) -> None:
        super().__init__()
        heads = heads if d_llm % heads == 0 else 1
        self.queries = nn.Parameter(torch.randn(1, num_queries, d_llm) * 0.02)
        self.kv = nn.Sequential(nn.Linear(d_vision, d_llm), nn.LayerNorm(d_llm))
        self.attn = nn.ModuleList(
            nn.MultiheadAttention(d_llm, heads, batch_first=True) for _ in range(layers)
        )
        self.norm_q = nn.ModuleList(nn.LayerNorm(d_llm) for _ in range(layers))
        self.norm_ff = nn.ModuleList(nn.LayerNorm(d_llm) for _ in range(layers))
        self.ff = nn.ModuleList(
            nn.Sequential(nn.Linear(d_llm, 4 * d_llm), nn.GELU(), nn.Linear(4 * d_llm, d_llm))
            for _ in range(layers)
        )
        self.out = nn.Linear(d_llm, d_llm)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        kv = self.kv(feats)
        q = self.queries.expand(feats.shape[0], -1, -1)
        for attn, nq, nf, ff in zip(self.attn, self.norm_q, self.norm_ff, self.ff, strict=True):
            q = q + attn(nq(q), kv, kv, need_weights=False)[0]
            q = q + ff(nf(q))
        return self.out(q)


# --------------------------------------------------------------------------------------------
# causal LMs: embed(ids) -> hidden(embeds, mask) -> head(selected hidden)
# --------------------------------------------------------------------------------------------
class _Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.n1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # right padding: a causal mask alone keeps real tokens from seeing the pads after them
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.ff(self.n2(x))


class TinyLM(nn.Module):
    """A small pre-norm GPT decoder with learned positions and tied input/output embeddings."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, checkpointing: bool = False) -> None:
        super().__init__()
        self.checkpointing = checkpointing
        d = cfg.llm_dim
        self.tok = nn.Embedding(vocab_size, d)
        self.pos = nn.Embedding(cfg.max_len, d)
        self.blocks = nn.ModuleList(_Block(d, cfg.llm_heads) for _ in range(cfg.llm_layers))
        self.norm = nn.LayerNorm(d)
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.hidden_size = d

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.tok(ids)

    def hidden(self, embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = embeds + self.pos(torch.arange(embeds.shape[1], device=embeds.device))
        return self.norm(_stack(self.blocks, x, self.checkpointing))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.tok.weight.T


class HFLM(nn.Module):
    """A local Hugging Face causal LM; logits are computed only where a label needs them."""

    def __init__(
        self, cfg: ModelConfig, vocab_size: int, dtype: torch.dtype, checkpointing: bool = False
    ) -> None:
        super().__init__()
        self.model = _from_pretrained(_transformers().AutoModelForCausalLM, cfg.llm, dtype)
        if checkpointing:
            _enable_hf_checkpointing(self.model)
        rows = self.model.get_input_embeddings().weight.shape[0]
        if vocab_size > rows:
            raise ConfigError(f"tokenizer has {vocab_size} tokens but {cfg.llm} embeds only {rows}")
        self.hidden_size = int(self.model.config.hidden_size)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids)

    def hidden(self, embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        decoder = self.model.get_decoder()  # the base model: last_hidden_state is already final-normed
        return decoder(inputs_embeds=embeds, attention_mask=attention_mask, use_cache=False).last_hidden_state

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.model.get_output_embeddings()(h)


# --------------------------------------------------------------------------------------------
class MultimodalLM(nn.Module):
    """The whole model; `forward` returns (mean loss over supervised tokens, their count)."""

    def __init__(
        self,
        cfg: ModelConfig,
        vocab_size: int,
        pad_id: int,
        *,
        freeze_vision: bool = True,
        freeze_llm: bool = False,
        frozen_dtype: torch.dtype = torch.float32,
        gradient_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        if cfg.num_visual_tokens <= 0:
            raise ConfigError("ModelConfig.derive() was not called")
        self.cfg, self.pad_id = cfg, pad_id
        # a frozen vision tower runs without grad (nothing to recompute); the LM is checkpointed
        # even when frozen: the adapter's gradient flows back through it
        ckpt_vision = gradient_checkpointing and not freeze_vision
        self.vision = (
            TinyViT(cfg, ckpt_vision)
            if cfg.vision == TINY
            else HFVision(cfg, frozen_dtype if freeze_vision else torch.float32, ckpt_vision)
        )
        self.lm = (
            TinyLM(cfg, vocab_size, gradient_checkpointing)
            if cfg.llm == TINY
            else HFLM(cfg, vocab_size, frozen_dtype if freeze_llm else torch.float32, gradient_checkpointing)
        )
        d_llm = self.lm.hidden_size
        if cfg.adapter == "mlp":
            self.adapter: nn.Module = MLPAdapter(cfg.vision_hidden, d_llm)
        else:
            self.adapter = QueryAdapter(cfg.vision_hidden, d_llm, cfg.num_queries, cfg.adapter_layers)
        self.register_buffer("mean", torch.tensor(cfg.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.image_std).view(1, 3, 1, 1), persistent=False)
        self.frozen = {"vision": freeze_vision, "lm": freeze_llm}
        for name, frozen in self.frozen.items():
            for p in getattr(self, name).parameters():
                p.requires_grad_(not frozen)

    def train(self, mode: bool = True) -> MultimodalLM:
        super().train(mode)
        for name, frozen in self.frozen.items():
            if frozen:
                part = getattr(self, name)
                part.eval()  # frozen parts keep inference behaviour (dropout off)
                if mode:
                    # transformers checkpoints a layer only while it is in training mode: flag the
                    # checkpointed layers alone (their dropout submodules stay off)
                    for m in part.modules():
                        if getattr(m, "gradient_checkpointing", False) is True:
                            m.training = True
        return self

    def visual_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, S, S] -> [B, N, D_llm] visual tokens."""
        x = (pixels.float() / 255.0 - self.mean) / self.std
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen["vision"]):
            feats = self.vision(x)
        return self.adapter(feats)

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        image_mask: torch.Tensor,
        labels: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n_img, want = int(image_mask.sum()), pixel_values.shape[0] * self.cfg.num_visual_tokens
        if n_img != want:
            raise ValueError(f"{n_img} image positions for {want} visual tokens")
        vis = self.visual_tokens(pixel_values)
        embeds = self.lm.embed(input_ids.masked_fill(image_mask, self.pad_id))
        embeds = embeds.masked_scatter(image_mask.unsqueeze(-1), vis.to(embeds.dtype))
        h = self.lm.hidden(embeds, attention_mask)
        target = labels[:, 1:]
        keep = target != IGNORE
        n = keep.sum()
        # project only the supervised positions: the vocab-sized logits are the biggest tensor by far
        logits = self.lm.head(h[:, :-1][keep]).float()
        loss = F.cross_entropy(logits, target[keep], reduction="sum") / n.clamp(min=1)
        return loss, n

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """Weights a checkpoint must hold: everything except frozen towers loaded from HF folders
        (those come back from their folder); built-in tiny parts are always saved."""
        skip = [
            f"{name}."
            for name, src in (("vision", self.cfg.vision), ("lm", self.cfg.llm))
            if src != TINY and self.frozen[name]
        ]
        return {k: v for k, v in self.state_dict().items() if not any(k.startswith(s) for s in skip)}


def build_model(
    cfg: ModelConfig,
    vocab_size: int,
    pad_id: int,
    *,
    freeze_vision: bool,
    freeze_llm: bool,
    device: torch.device | str = "cpu",
    gradient_checkpointing: bool = False,
) -> MultimodalLM:
    """Build (and move to `device`) the model of a derived ModelConfig. Frozen HF parts load in
    bf16 on CUDA, everything else in fp32 (autocast computes in bf16 there)."""
    if cfg.vision != TINY and not Path(cfg.vision).is_dir():
        raise ConfigError(f"vision model {cfg.vision}: not a local folder (nothing is downloaded)")
    if cfg.llm != TINY and not Path(cfg.llm).is_dir():
        raise ConfigError(f"LLM {cfg.llm}: not a local folder (nothing is downloaded)")
    frozen_dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    model = MultimodalLM(
        cfg,
        vocab_size,
        pad_id,
        freeze_vision=freeze_vision,
        freeze_llm=freeze_llm,
        frozen_dtype=frozen_dtype,
        gradient_checkpointing=gradient_checkpointing,
    )
    return model.to(device)
