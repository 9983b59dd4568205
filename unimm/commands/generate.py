"""`unimm generate` (merged records -> dialogues) and `unimm estimate` (its cost before launch)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from unimm.commands.runstage import CONFIG, EXECUTOR, PROGRESS, RAY_ADDRESS, SET, WORK, WORKERS, run_stage

# The generation options `unimm generate` and `unimm estimate` share, named as `generate.*` keys
# except for these four, which the commands spell for the command line.
_SHARED_FLAGS = (
    "model", "concurrency", "max_tokens", "temperature", "top_p", "seed", "retries",
    "invalid_retries", "timeout_s", "connect_timeout_s", "request_deadline_s", "response_format",
    "prompt_set", "prompt_version", "token_budget", "n_ctx", "vision", "vision_max_side",
)  # fmt: skip
# The vision options' help, written once for both commands.
_VISION_HELP = (
    "Send each picture with its annotations to a vision-language model (--llm openai; a VLM such as "
    "Qwen2.5-VL served by `unimm serve vllm --vision`)."
)
_VISION_MAX_SIDE_HELP = "Longest side in pixels of the picture sent (default 768; never upscaled)."


def _generation_keys(args: dict[str, object]) -> dict[str, object]:
    """The shared generation flags among a command's arguments (`locals()`), as `generate.*`
    config keys (None: not given, the config's value stands)."""
    flags = {k: args[k] for k in _SHARED_FLAGS}
    model_path, base_url, prompts_dir = args["model_path"], args["base_url"], args["prompts_dir"]
    flags.update(
        backend=args["llm"],
        model_path=str(model_path) if model_path else None,
        base_urls=list(base_url) if base_url else None,  # type: ignore[call-overload]
        prompts_dir=str(prompts_dir) if prompts_dir else None,
    )
    return {f"generate.{k}": v for k, v in flags.items()}


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        config: Path = CONFIG,
        work: Path = WORK,
        llm: str = typer.Option(
            None, help="Backend: template | local | openai (default: the config's, local)."
        ),
        model: str = typer.Option(None, help="Model name (openai: as the server serves it)."),
        model_path: Path = typer.Option(None, help="GGUF for --llm local (default: embedded SmolLM2-135M)."),
        base_url: list[str] = typer.Option(
            None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (repeatable)."
        ),
        api_key_env: str = typer.Option(
            None, help="Env var with the API key (default UNIMM_API_KEY, then OPENAI_API_KEY)."
        ),
        concurrency: int = typer.Option(None, help="Requests in flight (openai; default 64)."),
        max_tokens: int = typer.Option(None, help="Most completion tokens per dialogue (default 1024)."),
        temperature: float = typer.Option(None, help="Default 0.7."),
        top_p: float = typer.Option(None, help="Default 0.95."),
        seed: int = typer.Option(None, help="Default 0."),
        retries: int = typer.Option(None, help="Retries of 429/5xx/timeouts/connection errors (default 5)."),
        invalid_retries: int = typer.Option(
            None, help="Retries of output that is not a valid dialogue (default 2)."
        ),
        timeout_s: float = typer.Option(
            None, help="Read timeout of one attempt (default: 30 s + 0.05 s per max token)."
        ),
        connect_timeout_s: float = typer.Option(
            None, help="Seconds to open a connection to a server (default 10)."
        ),
        request_deadline_s: float = typer.Option(
            None, help="Most seconds one request may take, retries included (default: derived)."
        ),
        response_format: str = typer.Option(None, help="auto | json_schema | json_object | none."),
        prompt_set: str = typer.Option(None, help="Default unimm_chat."),
        prompt_version: str = typer.Option(None, help="Default v1."),
        prompts_dir: Path = typer.Option(None, help="Root of prompt sets (default: the repo's prompts/)."),
        token_budget: int = typer.Option(
            None, help="Most estimated tokens of one rendered record (default 1536)."
        ),
        n_ctx: int = typer.Option(None, help="Context of the in-process model (local; default 4096)."),
        vision: bool = typer.Option(None, "--vision/--no-vision", help=_VISION_HELP),
        vision_max_side: int = typer.Option(None, help=_VISION_MAX_SIDE_HELP),
        limit: int = typer.Option(None, help="Only the first N records (quick partial run)."),
        retry_failures: bool = typer.Option(
            None, "--retry-failures", help="Re-send requests whose cached result is a failure."
        ),
        set_: list[str] = SET,
        executor: str = EXECUTOR,
        workers: int = WORKERS,
        ray_address: str = RAY_ADDRESS,
        progress: bool = PROGRESS,
    ) -> None:
        """Rewrite each merged record into one multi-turn dialogue, partition by partition
        (WORK/generate/chats-*.parquet, failures-*.parquet). Exit 3 when the server left requests
        unanswered (run again to send only those), 2 when every request failed."""
        flags = _generation_keys(locals())
        flags.update({"generate.limit": limit, "generate.retry_failures": retry_failures})
        report = run_stage(
            config=config,
            work=work,
            overrides=flags,
            set_=set_,
            executor=executor,
            workers=workers,
            ray_address=ray_address,
            progress=progress,
            only="generate",
        )
        counts = report.stages[-1].counts
        if counts.input and not counts.output:
            from unimm.errors import UnimmError
            from unimm.pipeline.layout import Layout

            raise UnimmError(
                f"every one of the {counts.input} requests failed "
                f"({', '.join(f'{k} x{v}' for k, v in counts.dropped.items())}); see {Layout(work).failures('*')}"
            )

    @app.command("estimate")
    def estimate_cmd(
        config: Path = CONFIG,
        work: Path = WORK,
        throughput: float = typer.Option(
            None,
            min=0.001,
            help="Decode throughput in completion tokens/s per GPU (default: measured with --calibrate, "
            "else MLPerf Inference v5.1's Llama-3.1-8B on one H100, 5,103).",
        ),
        calibrate: int = typer.Option(
            None,
            "--calibrate",
            min=1,
            help="Generate the first N merged records for real with the configured backend (throwaway "
            "cache) and extrapolate tokens and hours from what they cost.",
        ),
        llm: str = typer.Option(
            None, help="Backend for --calibrate: local | openai (default: the config's)."
        ),
        model: str = typer.Option(None, help="Model name (openai: as the server serves it)."),
        model_path: Path = typer.Option(None, help="GGUF for --llm local (default: embedded SmolLM2-135M)."),
        base_url: list[str] = typer.Option(None, help="OpenAI-compatible base URL (repeatable)."),
        api_key_env: str = typer.Option(None, help="Env var with the API key."),
        concurrency: int = typer.Option(None, help="Requests in flight (openai; default 64)."),
        max_tokens: int = typer.Option(None, help="Most completion tokens per dialogue (default 1024)."),
        temperature: float = typer.Option(None, help="Default 0.7."),
        top_p: float = typer.Option(None, help="Default 0.95."),
        seed: int = typer.Option(None, help="Default 0."),
        retries: int = typer.Option(None, help="Retries of transient errors (default 5)."),
        invalid_retries: int = typer.Option(None, help="Retries of invalid output (default 2)."),
        timeout_s: float = typer.Option(None, help="Read timeout of one attempt (default: derived)."),
        connect_timeout_s: float = typer.Option(None, help="Connect timeout (default 10)."),
        request_deadline_s: float = typer.Option(None, help="Most seconds per request (default: derived)."),
        response_format: str = typer.Option(None, help="auto | json_schema | json_object | none."),
        prompt_set: str = typer.Option(None, help="Default unimm_chat."),
        prompt_version: str = typer.Option(None, help="Default v1."),
        prompts_dir: Path = typer.Option(None, help="Root of prompt sets (default: the repo's prompts/)."),
        token_budget: int = typer.Option(None, help="Most estimated tokens of one rendered record."),
        n_ctx: int = typer.Option(None, help="Context of the in-process model (local; default 4096)."),
        vision: bool = typer.Option(None, "--vision/--no-vision", help=_VISION_HELP),
        vision_max_side: int = typer.Option(None, help=_VISION_MAX_SIDE_HELP),
        set_: list[str] = SET,
        as_json: bool = typer.Option(False, "--json", help="Print the estimate (and calibration) as JSON."),
    ) -> None:
        """Expected requests, prompt/completion tokens and GPU-hours for the merged corpus: from
        stated assumptions, or measured on the first N records with --calibrate N. The generation
        options are those of `unimm generate` (config file, else the work dir's last run, then flags)."""
        from unimm.config import load_config, parse_set_option
        from unimm.generate.estimate import calibrate as run_calibration
        from unimm.generate.estimate import estimate
        from unimm.pipeline.layout import Layout

        flags = _generation_keys(locals())
        records = _merged_records(work)
        overrides = {**flags, **parse_set_option(set_ or [])}
        pipeline = load_config(config, overrides, saved=Layout(work).config)
        cfg = pipeline.generate
        console = Console(highlight=False, soft_wrap=True)
        cal = None
        if calibrate:
            sample = records[:calibrate]
            err = Console(stderr=True, highlight=False, soft_wrap=True)
            err.print(
                f"calibrating: generating the first {len(sample)} of {len(records):,} records with "
                f"--llm {cfg.backend} (throwaway cache) ..."
            )
            cal = run_calibration(sample, cfg, log=err.print, image_root=pipeline.image_dir)
        est = estimate(records, cfg, throughput, cal)
        if as_json:
            import json

            doc = {
                "estimate": est.model_dump(mode="json"),
                "calibration": cal.model_dump(mode="json") if cal else None,
            }
            print(json.dumps(doc, indent=2))
            return
        ranged = est.completion_tokens_low != est.completion_tokens_high
        rows = [
            (
                f"records / requests{' (retries included)' if cal else ''}",
                f"{est.records:,} / {est.requests:,}",
            ),
            ("prompt tokens", f"{est.prompt_tokens:,}"),
            *([("of which image tokens", f"{est.image_tokens:,}")] if est.image_tokens else []),
            ("shared prefix tokens (cached)", f"{est.shared_prefix_tokens:,}"),
            (
                "prompt tokens without the cached prefix",
                f"{est.uncached_prompt_tokens - est.shared_prefix_tokens:,}",
            ),
            ("completion tokens", f"{est.completion_tokens:,}"),
            ("throughput (completion tokens/s)", f"{est.throughput_tokens_per_s:,.0f}"),
            ("GPU-hours", f"{est.gpu_hours:,.3f}"),
        ]
        if ranged:
            low_high = f"{est.completion_tokens_low:,} - {est.completion_tokens_high:,}"
            at = [k for k, _ in rows].index("completion tokens") + 1
            rows.insert(at, ("completion tokens, low - high", low_high))
            rows.append(("GPU-hours, low - high", f"{est.gpu_hours_low:,.3f} - {est.gpu_hours_high:,.3f}"))
        if est.servers > 1:
            rows.append((f"wall hours on {est.servers} servers", f"{est.wall_hours:,.3f}"))
        t = Table(title="estimate (calibrated)" if cal else "estimate", show_header=False)
        for k, v in rows:
            t.add_row(k, v)
        console.print(t)
        if cal is not None:
            d, p = cal.dialogue_spread, cal.prompt_spread
            console.print(
                f"measured on {cal.records} records: {cal.completion_tokens_per_s:,.1f} completion tokens/s, "
                + (f"{d.mean:,.0f} completion tokens per dialogue (sd {d.sd:,.0f}, p10/p50/p90 "
                   f"{d.p10:,.0f}/{d.p50:,.0f}/{d.p90:,.0f}), " if d else "no valid dialogue, ")
                + (f"{p.mean:,.0f} prompt tokens per request" if p else "no prompt-token counts")
            )  # fmt: skip
        console.print(f"throughput: {est.throughput_source}")
        for a in est.assumptions:
            console.print(f"assumption: {a}")


def _merged_records(work: Path) -> list:
    """Every merged record of the work dir (the estimate renders each prompt)."""
    from unimm.merge import read_partition
    from unimm.pipeline.layout import Layout

    lay = Layout(work)
    return [r for pid in lay.partitions() for r in read_partition(lay.merged_part(pid))]
