"""Before launch: how many requests and tokens generation will take, and the GPU-hours at a
given decode throughput."""

from __future__ import annotations

from pydantic import BaseModel

from unimm.generate.config import GenerateConfig
from unimm.generate.prompts import prompt_set_for, record_budget
from unimm.generate.render import render_record
from unimm.schema import MergedImage

# Published figure: vLLM, Llama 3.1 8B BF16 on one H100 80GB, ~12,500 output tokens/s at full
# batch (FlashInfer, gpu-memory-utilization 0.8), compiled from third-party benchmarks at
# https://www.morphllm.com/vllm-benchmarks (2026). A peak figure: long prompts lower it.
DEFAULT_THROUGHPUT = 12_500.0
THROUGHPUT_SOURCE = (
    "vLLM, Llama 3.1 8B BF16, 1x H100 80GB: ~12,500 output tokens/s at full batch "
    "(third-party benchmark compilation, https://www.morphllm.com/vllm-benchmarks; a peak figure)"
)
# Assumption, not a measurement: UniMM-Chat averages 9.89 turns per dialogue; ~60 tokens per
# question/answer pair including the JSON around it.
TURNS_PER_DIALOGUE = 9.89
TOKENS_PER_TURN = 60


class Estimate(BaseModel):
    """Expected cost of generating one dialogue per merged record."""

    records: int
    requests: int
    prompt_tokens: int
    shared_prefix_tokens: int
    uncached_prompt_tokens: int
    completion_tokens: int
    throughput_tokens_per_s: float
    throughput_source: str
    gpu_hours: float
    assumptions: list[str]


def estimate(records: list[MergedImage], cfg: GenerateConfig, throughput: float | None = None) -> Estimate:
    """Requests = records; prompt tokens from the real rendered prompts (model-free estimate);
    completion tokens from the UniMM-Chat average length; GPU-hours = completion / throughput."""
    prompts = prompt_set_for(cfg)
    budget = record_budget(cfg, prompts)
    record_tokens = sum(render_record(r, budget).tokens + 20 for r in records)
    n = len(records)
    completion = int(round(n * min(TURNS_PER_DIALOGUE * TOKENS_PER_TURN, cfg.max_tokens)))
    tput = throughput or DEFAULT_THROUGHPUT
    source = THROUGHPUT_SOURCE if throughput is None else "given with --throughput"
    return Estimate(
        records=n,
        requests=n,
        prompt_tokens=n * prompts.prefix_tokens + record_tokens,
        shared_prefix_tokens=prompts.prefix_tokens,
        uncached_prompt_tokens=prompts.prefix_tokens + record_tokens,
        completion_tokens=completion,
        throughput_tokens_per_s=tput,
        throughput_source=source,
        gpu_hours=round(completion / tput / 3600, 3),
        assumptions=[
            f"completion tokens: {TURNS_PER_DIALOGUE} turns x {TOKENS_PER_TURN} tokens per dialogue "
            "(UniMM-Chat average length; tokens per turn assumed)",
            "token counts are a model-free estimate (4 characters per token)",
            "with prefix caching the shared system prompt + examples are prefilled once; "
            "GPU-hours count decode only, at the stated throughput",
        ],
    )
