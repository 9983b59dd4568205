"""Tiny random Hugging Face checkpoints, built offline for the trainer tests.

Real transformers classes and real `save_pretrained` folders, only small and randomly initialised
(a stand-in for released weights, which cannot be downloaded here): a byte-level BPE tokenizer
trained on the demo dialogues with ChatML specials, two causal LMs (initialised wider than usual; Llama, fp32 with untied
embeddings; Qwen2 saved in bf16 with tied embeddings, as released LLMs usually are) sized to that
tokenizer, and two vision towers with their image processors (CLIP: a CLS token and CLIP's
normalisation; SigLIP: no CLS, [-1, 1]). Every weight comes from a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
IMAGE_SIZE, PATCH = 32, 8  # 16 patches: 16 visual tokens through the MLP adapter


@dataclass(frozen=True)
class TinyHF:
    """Folders of one set of tiny checkpoints."""

    tokenizer: Path
    llama: Path
    qwen2: Path
    clip: Path
    siglip: Path


def _tokenizer(folder: Path, texts: list[str]):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = CHATML
    tok.save_pretrained(folder)
    return tok


def _image_processor(name: str, **kwargs):
    import transformers as tf

    # the PIL flavour where transformers has one: the default wants torchvision, absent here
    cls = getattr(tf, f"{name}Pil", None) or getattr(tf, name)
    return cls(**kwargs)


def build_tiny_hf(root: Path, texts: list[str], seed: int = 0) -> TinyHF:
    """Write the tokenizer, LMs and vision towers under `root` (no network); returns their folders.
    `texts`: the demo dialogues the tokenizer is trained on."""
    import transformers as tf

    root.mkdir(parents=True, exist_ok=True)
    out = TinyHF(*(root / n for n in ("tokenizer", "llama", "qwen2", "clip", "siglip")))
    tok = _tokenizer(out.tokenizer, texts)
    ids = {"vocab_size": len(tok), "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    lm = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        # at the usual 0.02 a random LM's logits hardly depend on its input, and an adapter
        # trained into it (stage 1) moves the loss by hundredths in a test's few steps
        "initializer_range": 0.1,
    }
    vision = {
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    torch.manual_seed(seed)
    llama = tf.LlamaForCausalLM(tf.LlamaConfig(**ids, **lm, tie_word_embeddings=False))
    qwen = tf.Qwen2ForCausalLM(tf.Qwen2Config(**ids, **lm, tie_word_embeddings=True))
    llama.save_pretrained(out.llama)
    qwen.to(torch.bfloat16).save_pretrained(out.qwen2)
    for folder in (out.llama, out.qwen2):
        tok.save_pretrained(folder)  # as released LLM folders are: the tokenizer beside the weights
    tf.CLIPVisionModel(tf.CLIPVisionConfig(**vision)).save_pretrained(out.clip)
    _image_processor(
        "CLIPImageProcessor",
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    ).save_pretrained(out.clip)
    tf.SiglipVisionModel(tf.SiglipVisionConfig(**vision)).save_pretrained(out.siglip)
    _image_processor(
        "SiglipImageProcessor", size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ).save_pretrained(out.siglip)
    return out
