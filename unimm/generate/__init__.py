"""Chat generation: an LLM (or the template baseline) rewrites each merged record into a dialogue.

Public entry points for the CLI and the build orchestrator:
`GenerateConfig`, `generate_chats(records, cfg, cache_dir, progress=False) -> GenerateResult`,
`prompt_fingerprint(cfg)`.
"""

from unimm.lazy import exports

_OWNERS = {
    "GenerateConfig": "unimm.generate.config",
    "prompt_fingerprint": "unimm.generate.prompts",
    "GenerateResult": "unimm.generate.runner",
    "GenerateSummary": "unimm.generate.runner",
    "generate_chats": "unimm.generate.runner",
}
__all__ = list(_OWNERS)
__getattr__ = exports(__name__, _OWNERS)
