"""decontaminate, per partition: drop dialogues on evaluation images or whose questions overlap
evaluation questions (a pass-through copy without evaluation files)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from unimm.decontam.config import DecontamConfig
from unimm.pipeline.step import Context, Scope, Step, StepResult
from unimm.pipeline.tables import read_chats, rows, write_chats
from unimm.stagecache import files_fingerprint
from unimm.workdir import atomic_path


class DecontaminateStep(Step):
    name = "decontaminate"
    scope = Scope.PARTITION
    writes_rejects = True
    reads = "dedup"

    def config(self, ctx: Context) -> DecontamConfig:
        return ctx.cfg.decontaminate

    def check(self, ctx: Context) -> None:
        from unimm.decontam.core import load_eval_file

        for ef in ctx.cfg.decontaminate.eval_files:
            load_eval_file(ef)

    def key(self, ctx: Context, unit: str) -> list[object]:
        cfg = ctx.cfg.decontaminate
        return [cfg, files_fingerprint([Path(p) for p in cfg.files()])]

    def outputs(self, ctx: Context, unit: str) -> list[Path]:
        return [ctx.layout.chats(self.name, unit)]

    def process(self, ctx: Context, unit: str) -> StepResult:
        lay = ctx.layout
        src, dst = lay.chats(self.reads, unit), lay.chats(self.name, unit)
        cfg = ctx.cfg.decontaminate
        if not cfg.eval_files:
            n = rows(src)
            with atomic_path(dst) as tmp:
                tmp.write_bytes(src.read_bytes())
            return StepResult(input=n, output=n)
        from unimm.decontam.core import decontaminate

        chats = read_chats(src)
        res = decontaminate(chats, _coco_ids(lay.merged_part(unit), {c.image_key for c in chats}), cfg)
        write_chats(res.kept, dst)
        return StepResult(input=len(chats), output=len(res.kept), rejects=res.rejects)


def _coco_ids(part: Path, keys: set[str]) -> dict[str, int]:
    """image key -> COCO id for the VG-keyed images among `keys` that know one (decontamination
    matches those against COCO evaluation images). Two columns of the partition, not records."""
    df = (
        pl.scan_parquet(part)
        .select("image_key", "coco_id")
        .filter(pl.col("coco_id").is_not_null() & pl.col("image_key").is_in(sorted(keys)))
        .collect()
    )
    return dict(zip(df["image_key"].to_list(), df["coco_id"].to_list(), strict=True))
