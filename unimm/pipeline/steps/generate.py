"""generate, per partition: merged records -> dialogues (template, llama.cpp or an OpenAI-compatible
server), with the partition's append-only response cache so a killed run re-sends nothing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import polars as pl

from unimm.generate.config import GenerateConfig
from unimm.merge import image_files, read_partition
from unimm.pipeline.step import Context, Scope, Step, StepResult
from unimm.pipeline.tables import write_chats
from unimm.workdir import write_parquet_atomic

CHAIN_BASE_BYTES = 300 * 2**20
CHAIN_BYTES_PER_IMAGE = 230 * 2**10


def chain_memory(ctx: Context, unit: str) -> int:
    """Estimated peak of a partition's generate -> filter -> dedup_sign chain: it holds the
    merged records, the dialogues and their grounding reports, ~230 KB per image at full scale
    (measured: two chains of 18k images peaked at 9.1 GB together)."""
    rows = ctx.budgets.get(unit)
    if rows is None:
        rows = int(pl.scan_parquet(ctx.layout.merged_part(unit)).select(pl.len()).collect().item())
    return CHAIN_BASE_BYTES + rows * CHAIN_BYTES_PER_IMAGE


def pictures_key(ctx: Context, unit: str) -> str:
    """With vision on, which picture each of the partition's images has and whether it changed
    (one stat per file, unimm.generate.vision.images_fingerprint): a picture added, removed or
    rewritten reruns the partition, whose requests for unchanged pictures the cache answers."""
    from unimm.generate.vision import images_fingerprint

    names = image_files([ctx.layout.merged_part(unit)], None)
    return images_fingerprint(Path(ctx.cfg.image_dir), names)


def record_budgets(ctx: Context, pids: list[str]) -> dict[str, int]:
    """With `generate.limit`, how many records each partition generates (the first N overall)."""
    remaining = ctx.cfg.generate.limit
    if remaining is None:
        return {}
    out: dict[str, int] = {}
    for pid in pids:
        rows = int(pl.scan_parquet(ctx.layout.merged_part(pid)).select(pl.len()).collect().item())
        out[pid] = min(rows, remaining)
        remaining -= out[pid]
    return out


class GenerateStep(Step):
    name = "generate"
    scope = Scope.PARTITION

    def config(self, ctx: Context) -> GenerateConfig:
        return ctx.cfg.generate

    def key(self, ctx: Context, unit: str) -> list[object]:
        # Without --limit the partition is the unit: nothing of it is read unless the step runs.
        key: list[object] = [ctx.cfg.generate, ctx.derived.prompt_fp, ctx.budgets.get(unit)]
        if ctx.cfg.generate.vision:
            key.append(pictures_key(ctx, unit))
        return key

    def outputs(self, ctx: Context, unit: str) -> list[Path]:
        return [ctx.layout.chats(self.name, unit), ctx.layout.failures(unit)]

    def memory(self, ctx: Context, unit: str) -> int:
        return chain_memory(ctx, unit)

    def process(self, ctx: Context, unit: str) -> StepResult:
        from unimm.generate.dispatch import is_transient
        from unimm.generate.runner import generate_chats
        from unimm.tables import failures_to_frame

        lay = ctx.layout
        records = read_partition(lay.merged_part(unit), n_rows=ctx.budgets.get(unit))
        cfg = ctx.cfg.generate.model_copy(update={"limit": None})
        res = generate_chats(
            records, cfg, lay.generate_cache(unit), progress=ctx.progress, image_root=ctx.cfg.image_dir
        )
        write_chats(res.chats, lay.chats(self.name, unit))  # handed on to filter (unimm.handoff)
        write_parquet_atomic(failures_to_frame(res.failures), lay.failures(unit))
        s = res.summary
        transient = sum(is_transient(f.reason) for f in res.failures)
        return StepResult(
            input=len(records),
            output=len(res.chats),
            dropped=dict(Counter(f"generation:{f.reason}" for f in res.failures)),
            extra={
                "requests_sent": s.requests_sent,
                "cache_hits": s.cache_hits,
                "prompt_tokens": s.prompt_tokens,
                "completion_tokens": s.completion_tokens,
                "transient_failures": transient,
            },
            # A server outage is not a result: those requests are re-sent by the next run.
            complete=transient == 0,
        )
