"""shards, corpus-wide: the dialogues that passed every step -> WebDataset tars with their images,
manifest.json (checksums, counts of every step) and the dataset card."""

from __future__ import annotations

from pathlib import Path

from unimm.errors import ConfigError
from unimm.merge import image_files
from unimm.pipeline.step import Context, Scope, Step, StepResult, step_totals
from unimm.pipeline.tables import read_chats
from unimm.shards.config import ShardConfig
from unimm.stagecache import code_fingerprint, fingerprint
from unimm.workdir import atomic_dir

# Where runs differ without their data differing: never in a manifest.
RUN_ONLY_KEYS = {"executor", "out"}


class ShardsStep(Step):
    name = "shards"
    scope = Scope.CORPUS
    writes_rejects = True
    reads = "decontaminate"

    def config(self, ctx: Context) -> ShardConfig:
        return ctx.cfg.shards

    def check(self, ctx: Context) -> None:
        images = ctx.cfg.images
        if images is not None and not images.is_dir():
            raise ConfigError(
                f"image root {images} is not a folder: pass --image-root, or --no-images for shards "
                "without images"
            )

    def _images(self, ctx: Context) -> Path | None:
        return ctx.cfg.images.resolve() if ctx.cfg.images else None

    def key(self, ctx: Context, unit: str) -> list[object]:
        # The writer's code is in the key: how it finds images (and what a sample holds) is code,
        # so a shard set written by an older unimm is not reused as if it were this one's.
        return [
            ctx.cfg.shards,
            str(self._images(ctx)),
            str(Path(ctx.cfg.out).resolve()),
            code_fingerprint("unimm.shards", "unimm.card", "unimm.schema"),
        ]

    def outputs(self, ctx: Context, unit: str) -> list[Path]:
        from unimm.card import CARD_NAME
        from unimm.shards.manifest import MANIFEST_NAME

        out = Path(ctx.cfg.out)
        return [out / MANIFEST_NAME, out / CARD_NAME]

    def process(self, ctx: Context, unit: str) -> StepResult:
        from unimm.pipeline.steps import PIPELINE  # the steps before this one, for the manifest
        from unimm.shards.writer import write_shards_result

        lay = ctx.layout
        pids = lay.partitions()
        chats = [c for pid in pids for c in read_chats(lay.chats(self.reads, pid))]
        images = self._images(ctx)
        before = PIPELINE[: [s.name for s in PIPELINE].index(self.name)]
        upstream = [ctx.fps[f"{self.reads}/{pid}"] for pid in pids]
        extra = {
            "config": ctx.cfg.model_dump(mode="json", exclude=RUN_ONLY_KEYS),
            "build_fingerprint": fingerprint(upstream, self.key(ctx, unit)[:2], self.key(ctx, unit)[3]),
            "prompt_fingerprint": ctx.derived.prompt_fp,
        }
        # Every name the sources know an image by is tried, not only the one the chat records.
        files = (
            image_files([lay.merged_part(p) for p in pids], {c.image_key for c in chats}) if images else None
        )
        with atomic_dir(Path(ctx.cfg.out)) as tmp:
            res = write_shards_result(
                chats, tmp, ctx.cfg.shards, images, extra, files, steps=step_totals(ctx, before)
            )
        return StepResult(
            input=len(chats),
            output=res.manifest.total_samples,
            rejects=res.rejects,
            extra={"shards": len(res.manifest.shards)},
        )
