"""`unimm filter`: the cleaning of the generated dialogues, partition by partition: (the LLM judge,)
structure/leakage/grounding filters, dedup (corpus-wide) and decontamination."""

from __future__ import annotations

from pathlib import Path

import typer

from unimm.commands.runstage import CONFIG, EXECUTOR, PROGRESS, RAY_ADDRESS, SET, WORK, WORKERS, run_stage


def register(app: typer.Typer) -> None:
    @app.command("filter")
    def filter_cmd(
        config: Path = CONFIG,
        work: Path = WORK,
        prompt_file: list[Path] = typer.Option(
            None, help="Prompt text files (e.g. system.md) whose lines a turn must not echo."
        ),
        eval_file: list[Path] = typer.Option(
            None, "--eval", help="Evaluation file to decontaminate against (repeatable)."
        ),
        min_grounding: float = typer.Option(None, help="Override filter.min_grounding."),
        minhash: bool = typer.Option(
            None, "--minhash/--no-minhash", help="The corpus-wide near-duplicate pass."
        ),
        judge: bool = typer.Option(
            None, "--judge/--no-judge", help="Run the LLM judge first (default: filter.judge)."
        ),
        judge_llm: str = typer.Option(None, help="Override filter.judge_llm.backend (local | openai)."),
        judge_model: str = typer.Option(None, help="Override filter.judge_llm.model."),
        judge_base_url: list[str] = typer.Option(
            None, help="Override filter.judge_llm.base_urls (repeatable)."
        ),
        set_: list[str] = SET,
        executor: str = EXECUTOR,
        workers: int = WORKERS,
        ray_address: str = RAY_ADDRESS,
        progress: bool = PROGRESS,
    ) -> None:
        """Filter, deduplicate and decontaminate the generated dialogues (WORK/filter/, dedup/,
        decontaminate/: kept chats and rejects with reasons, per partition)."""
        from unimm.errors import ConfigError

        prompt_text = None
        if prompt_file:
            texts = []
            for p in prompt_file:
                if not p.is_file():
                    raise ConfigError(f"{p}: prompt file not found")
                texts.append(p.read_text(encoding="utf-8"))
            prompt_text = "\n".join(texts).strip()
        run_stage(
            config=config,
            work=work,
            overrides={
                "filter.prompt_text": prompt_text,
                "filter.min_grounding": min_grounding,
                "filter.judge": judge,
                "filter.judge_llm.backend": judge_llm,
                "filter.judge_llm.model": judge_model,
                "filter.judge_llm.base_urls": list(judge_base_url) if judge_base_url else None,
                "dedup.minhash": minhash,
                "decontaminate.eval_files": [{"path": str(p)} for p in eval_file] if eval_file else None,
            },
            set_=set_,
            executor=executor,
            workers=workers,
            ray_address=ray_address,
            progress=progress,
            only="filter",
        )
