"""`unimm filter`: (LLM judge,) structure/leakage/grounding filters, dedup and decontamination of
generated chats."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import typer
import yaml
from pydantic import ValidationError

from unimm.decontam import EvalFile
from unimm.errors import ConfigError, InputError
from unimm.filter.config import JudgeConfig
from unimm.filter.pipeline import FilterStageConfig, run_filter_stage
from unimm.filter.tables import rejects_to_frame
from unimm.merge import load_merged
from unimm.tables import chats_to_frame, frame_to_chats
from unimm.workdir import atomic_path, exclusive_work, merged_dir, write_parquet_atomic


def load_stage_config(path: Path | None) -> FilterStageConfig:
    """FilterStageConfig from a YAML file (sections filter/dedup/decontam/generate), defaults without one."""
    if path is None:
        return FilterStageConfig()
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        return FilterStageConfig.model_validate(data)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise InputError(path, f"invalid YAML: {e}") from None
    except ValidationError as e:
        err = e.errors()[0]
        raise InputError(path, err["msg"], field=".".join(map(str, err["loc"]))) from None


def register(app: typer.Typer) -> None:
    @app.command("filter")
    def filter_cmd(
        work: Path = typer.Option(
            Path("work"), help="Work directory (reads generate/chats.parquet, merged/)."
        ),
        config: Path | None = typer.Option(
            None, help="YAML with sections filter/dedup/decontam/generate (the judge inherits generate)."
        ),
        prompt_file: list[Path] = typer.Option(
            [], help="Prompt text files (e.g. system.md) whose lines a turn must not echo."
        ),
        eval_file: list[Path] = typer.Option(
            [], "--eval", help="Evaluation file to decontaminate against (repeatable)."
        ),
        min_grounding: float | None = typer.Option(None, help="Override filter.min_grounding."),
        dedup: bool = typer.Option(True, help="Run dedup (turns, exact, MinHash)."),
        judge: bool | None = typer.Option(
            None, "--judge/--no-judge", help="Run the LLM judge first (default: filter.judge)."
        ),
        judge_llm: str | None = typer.Option(
            None, help="Override filter.judge_llm.backend (local | openai)."
        ),
        judge_model: str | None = typer.Option(None, help="Override filter.judge_llm.model."),
        judge_base_url: list[str] = typer.Option(
            [], help="Override filter.judge_llm.base_urls (repeatable)."
        ),
        progress: bool = typer.Option(True, help="Show the judge's progress bar."),
    ) -> None:
        """Filter generated dialogues; writes filter/kept.parquet, filter/rejects.parquet, filter/summary.json."""
        cfg = load_stage_config(config)
        cfg.run_dedup = dedup
        if prompt_file:
            texts = []
            for p in prompt_file:
                if not p.is_file():
                    raise ConfigError(f"{p}: prompt file not found")
                texts.append(p.read_text(encoding="utf-8"))
            cfg.filter.prompt_text = "\n".join([cfg.filter.prompt_text, *texts]).strip()
        if min_grounding is not None:
            cfg.filter.min_grounding = min_grounding
        cfg.decontam.eval_files += [EvalFile(path=p) for p in eval_file]
        if judge is not None:
            cfg.filter.judge = judge
        judge_overrides = {"backend": judge_llm, "model": judge_model, "base_urls": judge_base_url or None}
        cfg.filter.judge_llm = _with_overrides(cfg.filter.judge_llm, judge_overrides)

        with exclusive_work(work):
            src = Path(work) / "generate" / "chats.parquet"
            if not src.is_file():
                raise InputError(src, "not found (run `unimm generate` first)")
            try:
                chats = frame_to_chats(pl.read_parquet(src))
            except ValidationError as e:
                err = e.errors()[0]
                raise InputError(src, err["msg"], field=".".join(map(str, err["loc"]))) from None
            # No merged partitions (chats from elsewhere): every check that needs annotations abstains.
            merged = load_merged(
                sorted(merged_dir(work).glob("part-*.parquet")), {c.image_key for c in chats}
            )
            out = Path(work) / "filter"
            kept, rejects, summary = run_filter_stage(
                chats, merged, cfg, judge_cache=out / "judge-cache", progress=progress
            )

            write_parquet_atomic(chats_to_frame(kept), out / "kept.parquet")
            write_parquet_atomic(rejects_to_frame(rejects), out / "rejects.parquet")
            with atomic_path(out / "summary.json") as tmp:
                tmp.write_text(json.dumps(summary.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
        typer.echo(f"filter: {summary.input} in, {summary.kept} kept, {summary.rejected} rejected")
        for reason, n in summary.rejects_by_reason.items():
            typer.echo(f"  {reason}: {n}")
        if summary.judge is not None:
            typer.echo("judge: " + ", ".join(f"{k} {v}" for k, v in summary.judge.items()))


def _with_overrides(cfg: JudgeConfig, overrides: dict[str, object]) -> JudgeConfig:
    """`cfg` with the CLI's judge options that were given, validated."""
    try:
        return JudgeConfig.model_validate(
            {**cfg.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
        )
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(f"option judge {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
