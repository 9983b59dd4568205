"""Reference trainer: streams unimm's WebDataset shards into a vision encoder -> adapter -> causal LM.

Follows OmniFusion (arXiv 2404.06212: adapter into a frozen or lightly tuned LLM, MLP or
transformer adapters, image-text pretraining then instruction dialogues) and Muffin (trainable
query vectors pulling visual features into the LLM embedding space).

Modules: `config` (ModelConfig, TrainConfig), `tokenizer` (GGUF / Hugging Face tokenizers),
`template` (chat rendering, label masking, truncation), `data` (shard streaming, decode, collate),
`model` (encoders, adapters, LMs), `checkpoint` (atomic save / safe load), `loop` (`train`).
"""

# Here rather than in `config` so that `unimm train --help` shows the default without importing pydantic.
TINY = "tiny"  # the built-in vision encoder / LLM (for CPU tests) instead of a Hugging Face folder
