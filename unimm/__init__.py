"""unimm: build UniMM-Chat-style multimodal instruction corpora."""

__version__ = "0.1.0"
