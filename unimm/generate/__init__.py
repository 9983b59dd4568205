"""Chat generation: an LLM (or the template baseline) rewrites each merged record into a dialogue.

Public entry points for the CLI and the build orchestrator:
`GenerateConfig`, `generate_chats(records, cfg, cache_dir, progress=False) -> GenerateResult`,
`prompt_fingerprint(cfg)`.
"""

from unimm.lazy import exports

__all__, __getattr__ = exports(
    __name__,
    {
        "unimm.generate.config": ["GenerateConfig"],
        "unimm.generate.prompts": ["prompt_fingerprint"],
        "unimm.generate.runner": ["GenerateResult", "GenerateSummary", "generate_chats"],
    },
)
