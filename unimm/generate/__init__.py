"""Chat generation: an LLM (or the template baseline) rewrites each merged record into a dialogue.

Public entry points for the CLI and the build orchestrator:
`GenerateConfig`, `generate_chats(records, cfg, cache_dir, progress=False) -> GenerateResult`,
`prompt_fingerprint(cfg)`.
"""

from unimm.generate.config import GenerateConfig
from unimm.generate.prompts import prompt_fingerprint
from unimm.generate.runner import GenerateResult, GenerateSummary, generate_chats

__all__ = ["GenerateConfig", "GenerateResult", "GenerateSummary", "generate_chats", "prompt_fingerprint"]
