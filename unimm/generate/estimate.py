"""Before launch: how many requests and tokens generation will take, and the GPU-hours at a
given decode throughput.

Without a calibration the figures rest on stated assumptions: a published throughput and the
UniMM-Chat dialogue length. `calibrate` replaces both with measurements: it generates the first N
records for real with the configured backend (into a throwaway cache) and `estimate` extrapolates
the corpus from what that sample cost.
"""

from __future__ import annotations

import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field, computed_field

from unimm.generate.config import GenerateConfig
from unimm.generate.prompts import prompt_set_for, record_budget
from unimm.generate.render import render_record
from unimm.generate.vision import QWEN_FACTOR, sent_image_tokens
from unimm.schema import MergedImage

# Published, measured, conservative: MLPerf Inference v5.1 (Datacenter, 2025) measured
# Llama-3.1-8B (FP8) served by vLLM on one H100 at 5,777 output tokens/s offline and 5,103 tokens/s
# in the server scenario (requests arriving under a latency bound). The server figure is taken:
# it is the lower one and is closer to a generation client streaming requests at a server.
DEFAULT_THROUGHPUT = 5_103.0
THROUGHPUT_SOURCE = (
    "MLPerf Inference v5.1, Llama-3.1-8B, 1x H100, server scenario: 5,103 output tokens/s "
    "(vLLM, FP8; the offline scenario measured 5,777; a published figure, not measured here: "
    "use --calibrate N or --throughput for your server)"
)
# Assumption, not a measurement: UniMM-Chat averages 9.89 turns per dialogue; ~60 tokens per
# question/answer pair including the JSON around it.
TURNS_PER_DIALOGUE = 9.89
TOKENS_PER_TURN = 60
# Tokens of the chat template around the rendered record (role markers), model-free.
RECORD_OVERHEAD_TOKENS = 20


class Spread(BaseModel):
    """Summary of a sample of token counts."""

    n: int
    mean: float
    sd: float
    min: int
    p10: float
    p50: float
    p90: float
    max: int

    @classmethod
    def of(cls, values: list[int]) -> Spread | None:
        """None for an empty sample; percentiles interpolate between the sample's values."""
        if not values:
            return None
        if len(values) == 1:
            p10 = p50 = p90 = float(values[0])
        else:
            cuts = statistics.quantiles(values, n=10, method="inclusive")
            p10, p50, p90 = cuts[0], cuts[4], cuts[8]
        return cls(
            n=len(values),
            mean=statistics.fmean(values),
            sd=statistics.stdev(values) if len(values) > 1 else 0.0,
            min=min(values),
            p10=p10,
            p50=p50,
            p90=p90,
            max=max(values),
        )


class Calibration(BaseModel):
    """What a short real generation of the first records cost (see `calibrate`)."""

    records: int = Field(ge=1, description="Records sent (the first N of the corpus).")
    backend: str
    model: str
    servers: int = Field(1, ge=1, description="Servers (base URLs) the requests went to; 1 in-process.")
    in_flight: int = Field(1, ge=1, description="Most requests in flight during the measurement.")
    wall_s: float = Field(gt=0, description="Wall time of the run (model load / model check included).")
    requests_sent: int = Field(description="Calls made, retries included.")
    chats: int
    failures: int
    completion_tokens: int = Field(description="Every completion token produced, retries included.")
    prompt_tokens: int
    dialogue_completion_tokens: list[int] = Field(
        default_factory=list, description="Completion tokens of each valid dialogue's answer."
    )
    request_prompt_tokens: list[int] = Field(
        default_factory=list, description="Prompt tokens the server counted for each answered request."
    )
    estimated_prompt_tokens: int = Field(
        0, description="Model-free estimate of the sample's prompt tokens per request, summed."
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def completion_tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s

    @computed_field  # type: ignore[prop-decorator]
    @property
    def dialogue_spread(self) -> Spread | None:
        return Spread.of(self.dialogue_completion_tokens)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def prompt_spread(self) -> Spread | None:
        return Spread.of(self.request_prompt_tokens)


class Estimate(BaseModel):
    """Expected cost of generating one dialogue per merged record."""

    records: int
    requests: int
    prompt_tokens: int
    image_tokens: int = Field(0, description="Of prompt_tokens, the pictures' (vision only).")
    shared_prefix_tokens: int
    uncached_prompt_tokens: int
    completion_tokens: int
    completion_tokens_low: int
    completion_tokens_high: int
    throughput_tokens_per_s: float
    throughput_source: str
    measured: bool = Field(False, description="Whether the figures come from a --calibrate run.")
    servers: int = Field(1, description="Devices the throughput is the aggregate of.")
    gpu_hours: float
    gpu_hours_low: float
    gpu_hours_high: float
    wall_hours: float = Field(description="Hours with `servers` devices at the stated throughput.")
    assumptions: list[str]


def image_tokens(records: list[MergedImage], cfg: GenerateConfig) -> tuple[int, int]:
    """(image tokens of every record's picture as sent, records whose size is unknown and were
    counted at the worst case); (0, 0) without vision. Counted as Qwen2.5-VL does
    (unimm.generate.vision.qwen_image_tokens) at the recorded size fitted to vision_max_side."""
    if not cfg.vision:
        return 0, 0
    counts = [sent_image_tokens(r, cfg) for r in records]
    return sum(n for n, _ in counts), sum(not known for _, known in counts)


def model_free_prompt_tokens(records: list[MergedImage], cfg: GenerateConfig) -> tuple[int, int]:
    """(shared prefix tokens, sum of the per-record parts) of the rendered prompts, estimated at
    4 characters per token, plus (vision) each picture's image tokens."""
    prompts = prompt_set_for(cfg)
    budget = record_budget(cfg, prompts)
    record_tokens = sum(render_record(r, budget).tokens + RECORD_OVERHEAD_TOKENS for r in records)
    return prompts.prefix_tokens, record_tokens + image_tokens(records, cfg)[0]


def _hours(tokens: float, tput: float, servers: int) -> float:
    return round(tokens / tput / 3600 * servers, 3)


def estimate(
    records: list[MergedImage],
    cfg: GenerateConfig,
    throughput: float | None = None,
    calibration: Calibration | None = None,
) -> Estimate:
    """Requests = records; prompt tokens from the real rendered prompts (model-free estimate);
    GPU-hours = completion tokens / throughput.

    Without `calibration`, completion tokens come from the UniMM-Chat average length and the
    throughput is `throughput` or the published DEFAULT_THROUGHPUT (per GPU). With it, both are
    extrapolated from the sample: requests and completion tokens per record (retries and failed
    attempts included), the spread of dialogue lengths (low/high: every dialogue at the sample's
    p10/p90), prompt tokens scaled by what the server counted against the model-free estimate,
    and the measured throughput (the aggregate of `calibration.servers` servers) unless
    `throughput` is given.
    """
    prefix, record_tokens = model_free_prompt_tokens(records, cfg)
    n = len(records)
    images, unsized = image_tokens(records, cfg)
    vision_notes = _vision_assumptions(cfg, n, images, unsized)
    if calibration is None:
        est = _assumed(n, cfg, prefix, record_tokens, throughput)
        return est.model_copy(update={"image_tokens": images, "assumptions": est.assumptions + vision_notes})
    cal = calibration
    per_record = cal.completion_tokens / cal.records
    spread = cal.dialogue_spread
    if spread is not None and spread.mean > 0:
        # Retries and failed attempts cost tokens too: scale the dialogue spread to the spend.
        overhead = per_record / spread.mean
        low_per, high_per = spread.p10 * overhead, spread.p90 * overhead
    else:
        low_per = high_per = per_record
    completion = round(n * per_record)
    low, high = round(n * low_per), round(n * high_per)
    requests_per_record = cal.requests_sent / cal.records
    answered = cal.request_prompt_tokens
    ratio = 1.0
    if answered and cal.estimated_prompt_tokens > 0:
        ratio = statistics.fmean(answered) / (cal.estimated_prompt_tokens / cal.records)
    if throughput is None:
        tput, servers, measured_tput = cal.completion_tokens_per_s, cal.servers, True
        source = (
            f"measured by --calibrate {cal.records}: --llm {cal.backend}, model {cal.model}, "
            f"{cal.servers} server(s), {cal.in_flight} request(s) in flight, "
            f"{cal.completion_tokens:,} completion tokens in {cal.wall_s:.1f} s wall "
            "(model load / model check included). Throughput grows with the requests in flight until "
            "the server is saturated: calibrate with N >= --concurrency x servers for a full-load figure"
        )
    else:
        tput, servers, measured_tput = throughput, 1, False
        source = "given with --throughput (per GPU); token counts measured by --calibrate"
    assumptions = [
        f"the first {cal.records} records stand for all {n:,}: {cal.chats} valid dialogue(s), "
        f"{cal.failures} failure(s), {requests_per_record:.2f} requests per record (retries included)",
        f"completion tokens: {per_record:,.0f} per record measured (retries and failures included)"
        + (
            f"; valid dialogues {spread.min}-{spread.max} tokens (p10 {spread.p10:,.0f}, "
            f"p50 {spread.p50:,.0f}, p90 {spread.p90:,.0f}, sd {spread.sd:,.0f}); "
            f"low/high: every dialogue at the sample's p10/p90 (a wide band: the mean's 95% interval "
            f"is +-{1.96 * spread.sd / math.sqrt(spread.n) * n * per_record / spread.mean:,.0f} tokens "
            "over the corpus)"
            if spread is not None and spread.mean > 0
            else "; no valid dialogue came back, so no spread"
        ),
        f"prompt tokens: the model-free estimate of every record (4 characters per token) x {ratio:.2f}, "
        "the server's count over the estimate on the sample"
        if answered and cal.estimated_prompt_tokens > 0
        else "prompt tokens: model-free estimate (4 characters per token); the server counted none",
        "with prefix caching the shared system prompt + examples are prefilled once; "
        "GPU-hours count decode only, at the stated throughput"
        + (f", x {servers} servers" if servers > 1 else ""),
        *vision_notes,
    ]
    return Estimate(
        records=n,
        requests=round(n * requests_per_record),
        prompt_tokens=round((n * prefix + record_tokens) * ratio * requests_per_record),
        image_tokens=round(images * requests_per_record),
        shared_prefix_tokens=round(prefix * ratio),
        uncached_prompt_tokens=round((prefix + record_tokens) * ratio),
        completion_tokens=completion,
        completion_tokens_low=low,
        completion_tokens_high=high,
        throughput_tokens_per_s=tput,
        throughput_source=source,
        measured=measured_tput,
        servers=servers,
        gpu_hours=_hours(completion, tput, servers),
        gpu_hours_low=_hours(low, tput, servers),
        gpu_hours_high=_hours(high, tput, servers),
        wall_hours=_hours(completion, tput, 1),
        assumptions=assumptions,
    )


def _vision_assumptions(cfg: GenerateConfig, n: int, images: int, unsized: int) -> list[str]:
    """What the image-token count assumes (nothing without vision)."""
    if not cfg.vision or not n:
        return []
    side = cfg.vision_max_side
    note = (
        f"image tokens: {images:,} in all, {images / n:,.0f} per request, counted as Qwen2.5-VL does "
        f"(each side of the picture fitted to {side} px rounded to a multiple of {QWEN_FACTOR}, one token "
        f"per {QWEN_FACTOR}x{QWEN_FACTOR} px, + 2 for vision start/end); other VLMs count differently: "
        "measure with --calibrate N"
    )
    if unsized:
        note += f"; {unsized:,} record(s) with no recorded size counted as a {side}x{side} square"
    return [note]


def _assumed(
    n: int, cfg: GenerateConfig, prefix: int, record_tokens: int, throughput: float | None
) -> Estimate:
    completion = int(round(n * min(TURNS_PER_DIALOGUE * TOKENS_PER_TURN, cfg.max_tokens)))
    tput = throughput or DEFAULT_THROUGHPUT
    source = THROUGHPUT_SOURCE if throughput is None else "given with --throughput"
    hours = _hours(completion, tput, 1)
    return Estimate(
        records=n,
        requests=n,
        prompt_tokens=n * prefix + record_tokens,
        shared_prefix_tokens=prefix,
        uncached_prompt_tokens=prefix + record_tokens,
        completion_tokens=completion,
        completion_tokens_low=completion,
        completion_tokens_high=completion,
        throughput_tokens_per_s=tput,
        throughput_source=source,
        gpu_hours=hours,
        gpu_hours_low=hours,
        gpu_hours_high=hours,
        wall_hours=hours,
        assumptions=[
            f"completion tokens: {TURNS_PER_DIALOGUE} turns x {TOKENS_PER_TURN} tokens per dialogue "
            "(UniMM-Chat average length; tokens per turn assumed; measure with --calibrate N)",
            "token counts are a model-free estimate (4 characters per token)",
            "with prefix caching the shared system prompt + examples are prefilled once; "
            "GPU-hours count decode only, at the stated throughput",
        ],
    )


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def calibrate(
    records: list[MergedImage],
    cfg: GenerateConfig,
    log: Callable[[str], None] = _stderr,
    image_root: Path | None = None,
) -> Calibration:
    """Generate `records` for real with `cfg`'s backend into a throwaway cache (never the work
    dir's: every request is sent, nothing is kept) and measure what they cost (with vision, the
    pictures under `image_root` are sent too)."""
    from unimm.errors import ConfigError, UnimmError
    from unimm.generate.cache import ResponseCache
    from unimm.generate.runner import generate_chats

    if cfg.backend == "template":
        raise ConfigError(
            "--calibrate needs a model: --llm local or --llm openai (the template has no tokens)"
        )
    if not records:
        raise ConfigError("--calibrate: no merged records to send")
    cfg = cfg.model_copy(update={"limit": None, "retry_failures": False})
    with tempfile.TemporaryDirectory(prefix="unimm-calibrate-") as d:
        t0 = time.perf_counter()
        res = generate_chats(records, cfg, Path(d), log=log, image_root=image_root)
        wall = time.perf_counter() - t0
        with ResponseCache(Path(d)) as cache:
            entries = list(cache.entries.values())
    s = res.summary
    if s.completion_tokens <= 0:
        why = (
            ", ".join(f"{k} x{v}" for k, v in s.failures_by_reason.items()) or "no completion tokens reported"
        )
        raise UnimmError(f"--calibrate {len(records)}: nothing to measure, no completion came back ({why})")
    ok = [e for e in entries if e.get("status") == "ok"]
    prefix, record_tokens = model_free_prompt_tokens(records, cfg)
    return Calibration(
        records=len(records),
        backend=cfg.backend,
        model=s.model,
        servers=max(1, len(cfg.base_urls)) if cfg.backend == "openai" else 1,
        in_flight=min(cfg.concurrency, len(records)) if cfg.backend == "openai" else 1,
        wall_s=max(wall, 1e-6),
        requests_sent=s.requests_sent,
        chats=s.chats,
        failures=s.failures,
        completion_tokens=s.completion_tokens,
        prompt_tokens=s.prompt_tokens,
        dialogue_completion_tokens=[int(e.get("completion_tokens") or 0) for e in ok],
        request_prompt_tokens=[int(e["prompt_tokens"]) for e in ok if e.get("prompt_tokens")],
        estimated_prompt_tokens=len(records) * prefix + record_tokens,
    )
