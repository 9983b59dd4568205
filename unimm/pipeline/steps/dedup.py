"""dedup in three steps, so that no process holds the corpus (see unimm.dedup.core):

- dedup_sign, per partition: turn dedup, exact hash and MinHash signature of every dialogue;
- dedup_join, corpus-wide over the signatures only: which dialogues repeat another;
- dedup, per partition: kept dialogues + rejects with every dedup reason.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from unimm.dedup.config import DedupConfig
from unimm.pipeline.step import Context, Scope, Step, StepResult
from unimm.pipeline.tables import read_chats, write_chats
from unimm.stagecache import code_fingerprint
from unimm.workdir import write_parquet_atomic


class DedupSignStep(Step):
    name = "dedup_sign"
    scope = Scope.PARTITION
    reads = "filter"

    def config(self, ctx: Context) -> DedupConfig:
        return ctx.cfg.dedup

    def key(self, ctx: Context, unit: str) -> list[object]:
        # How a signature is computed lives in code: signature tables written by other code are
        # rebuilt, never compared with these (the later dedup steps inherit this key).
        return [ctx.cfg.dedup, code_fingerprint("unimm.dedup")]

    def outputs(self, ctx: Context, unit: str) -> list[Path]:
        return [ctx.layout.chats(self.name, unit), ctx.layout.signatures(unit)]

    def process(self, ctx: Context, unit: str) -> StepResult:
        from unimm.dedup.core import local_pass, signature_frame

        lay = ctx.layout
        chats = read_chats(lay.chats(self.reads, unit))
        local = local_pass(chats, ctx.cfg.dedup)
        write_chats(local.chats, lay.chats(self.name, unit))
        write_parquet_atomic(signature_frame(local, ctx.cfg.dedup), lay.signatures(unit))
        return StepResult(input=len(chats), output=len(local.chats), extra=local.turn_pairs)


class DedupJoinStep(Step):
    name = "dedup_join"
    scope = Scope.CORPUS

    def config(self, ctx: Context) -> DedupConfig:
        return ctx.cfg.dedup

    def outputs(self, ctx: Context, unit: str) -> list[Path]:
        return [ctx.layout.duplicates]

    def process(self, ctx: Context, unit: str) -> StepResult:
        from unimm.dedup.core import corpus_duplicates

        lay = ctx.layout
        paths = [lay.signatures(pid) for pid in lay.partitions()]
        sigs = pl.scan_parquet(paths)
        n = int(sigs.select(pl.len()).collect().item())
        dups = corpus_duplicates(sigs, ctx.cfg.dedup)
        write_parquet_atomic(dups, lay.duplicates)
        kinds = dups["reason"].str.extract(r"^([a-z_]+)").value_counts()
        # Counted as drops by the dedup step, per partition; here only as tallies.
        return StepResult(input=n, output=n, extra=dict(kinds.iter_rows()))


class DedupStep(Step):
    name = "dedup"
    scope = Scope.PARTITION
    writes_rejects = True

    def config(self, ctx: Context) -> DedupConfig:
        return ctx.cfg.dedup

    def outputs(self, ctx: Context, unit: str) -> list[Path]:
        return [ctx.layout.chats(self.name, unit)]

    def process(self, ctx: Context, unit: str) -> StepResult:
        from unimm.dedup.core import LocalPass, apply_duplicates

        lay = ctx.layout
        chats = read_chats(lay.chats(DedupSignStep.name, unit))
        sig = pl.read_parquet(lay.signatures(unit), columns=["id", "reason"])
        local = LocalPass(chats, dict(sig.drop_nulls("reason").iter_rows()), {})
        dups = pl.scan_parquet(lay.duplicates).join(sig.lazy().select("id"), on="id").collect()
        kept, rejects = apply_duplicates(local, dict(dups.iter_rows()))
        write_chats(kept, lay.chats(self.name, unit))
        return StepResult(input=len(chats), output=len(kept), rejects=rejects)
