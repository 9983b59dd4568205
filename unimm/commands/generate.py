"""`unimm generate` (merged records -> dialogues) and `unimm estimate` (its cost before launch)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from unimm.errors import ConfigError, IncompleteError, UnimmError
from unimm.generate import GenerateConfig, GenerateSummary, generate_chats
from unimm.generate.dispatch import is_transient
from unimm.generate.estimate import estimate
from unimm.generate.io import generate_dir, read_merged, write_outputs
from unimm.workdir import DEFAULT_WORK, exclusive_work


def summary_table(s: GenerateSummary) -> Table:
    """The run summary as a two-column table."""
    t = Table(title="generate", show_header=False)
    rows = [
        ("backend / model", f"{s.backend} / {s.model}"),
        ("prompt", f"{s.prompt_version} ({s.prompt_fingerprint[:12]})"),
        ("records", s.records),
        ("chats", s.chats),
        ("failures", s.failures),
        ("requests sent", s.requests_sent),
        ("cache hits", s.cache_hits),
        ("retries", s.retries),
        ("prompt tokens", s.prompt_tokens),
        ("completion tokens", s.completion_tokens),
        ("completion tokens/s", s.completion_tokens_per_s),
        ("wall s", s.wall_s),
    ]
    rows += [(f"failures: {k}", v) for k, v in s.failures_by_reason.items()]
    rows += [(f"cut from prompts: {k}", v) for k, v in s.budget_cuts.items()]
    rows += [(f"format @ {u}", f or "-") for u, f in s.response_formats.items()]
    for k, v in rows:
        t.add_row(k, str(v))
    return t


def _config(**kw: object) -> GenerateConfig:
    from pydantic import ValidationError

    try:
        return GenerateConfig(**{k: v for k, v in kw.items() if v is not None})
    except ValidationError as e:
        err = e.errors()[0]
        raise ConfigError(f"option {'.'.join(map(str, err['loc']))}: {err['msg']}") from e


def _exit_status(s: GenerateSummary) -> None:
    """Exit non-zero when the run is not a result: requests the server never answered (3: rerun to
    send them) or no dialogue at all (2)."""
    transient = {k: v for k, v in s.failures_by_reason.items() if is_transient(k)}
    if transient:
        raise IncompleteError(
            f"{sum(transient.values())} of {s.records} requests got no answer from the server "
            f"({', '.join(f'{k} x{v}' for k, v in transient.items())}); the answers received are cached: "
            "run the same command again to send only the missing requests"
        )
    if s.records and not s.chats:
        raise UnimmError(
            f"every one of the {s.records} requests failed "
            f"({', '.join(f'{k} x{v}' for k, v in s.failures_by_reason.items())}); see failures.parquet"
        )


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        work: Path = typer.Option(DEFAULT_WORK, help="Work folder (reads merged/, writes generate/)."),
        llm: str = typer.Option("local", help="Backend: template | local | openai."),
        model: str = typer.Option(None, help="Model name (openai: as the server serves it)."),
        model_path: Path = typer.Option(None, help="GGUF for --llm local (default: embedded SmolLM2-135M)."),
        base_url: list[str] = typer.Option(
            None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (repeatable)."
        ),
        api_key_env: str = typer.Option(
            None, help="Env var with the API key (default UNIMM_API_KEY, then OPENAI_API_KEY)."
        ),
        concurrency: int = typer.Option(64, help="Requests in flight (openai)."),
        max_tokens: int = typer.Option(1024, help="Most completion tokens per dialogue."),
        temperature: float = typer.Option(0.7),
        top_p: float = typer.Option(0.95),
        seed: int = typer.Option(0),
        retries: int = typer.Option(5, help="Retries of 429/5xx/timeouts/connection errors."),
        invalid_retries: int = typer.Option(2, help="Retries of output that is not a valid dialogue."),
        timeout_s: float = typer.Option(
            None, help="Read timeout of one attempt (default: 30 s + 0.05 s per max token)."
        ),
        connect_timeout_s: float = typer.Option(10.0, help="Seconds to open a connection to a server."),
        request_deadline_s: float = typer.Option(
            None, help="Most seconds one request may take, retries included (default: derived)."
        ),
        response_format: str = typer.Option("auto", help="auto | json_schema | json_object | none."),
        prompt_set: str = typer.Option("unimm_chat"),
        prompt_version: str = typer.Option("v1"),
        prompts_dir: Path = typer.Option(None, help="Root of prompt sets (default: the repo's prompts/)."),
        token_budget: int = typer.Option(1536, help="Most estimated tokens of one rendered record."),
        n_ctx: int = typer.Option(4096, help="Context of the in-process model (local)."),
        limit: int = typer.Option(None, help="Only the first N records (quick partial run)."),
        retry_failures: bool = typer.Option(False, help="Re-send requests whose cached result is a failure."),
        progress: bool = typer.Option(True, help="Show a progress bar."),
    ) -> None:
        """Rewrite each merged record into one multi-turn dialogue (chats.parquet, failures.parquet, summary.json)."""
        cfg = _config(
            backend=llm, model=model, model_path=model_path, base_urls=base_url or [], api_key_env=api_key_env,
            concurrency=concurrency, max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
            retries=retries, invalid_retries=invalid_retries, timeout_s=timeout_s, response_format=response_format,
            connect_timeout_s=connect_timeout_s, request_deadline_s=request_deadline_s,
            prompt_set=prompt_set, prompt_version=prompt_version, prompts_dir=prompts_dir, token_budget=token_budget,
            n_ctx=n_ctx, limit=limit, retry_failures=retry_failures,
        )  # fmt: skip
        with exclusive_work(work):
            records = read_merged(work, cfg.limit)
            out = generate_dir(work)
            result = generate_chats(records, cfg, out / "cache", progress=progress)
            paths = write_outputs(result, out)
        console = Console(highlight=False)
        console.print(summary_table(result.summary))
        for p in paths.values():
            console.print(str(p))
        _exit_status(result.summary)

    @app.command("estimate")
    def estimate_cmd(
        work: Path = typer.Option(DEFAULT_WORK, help="Work folder with merged/part-*.parquet."),
        throughput: float = typer.Option(
            None, help="Decode throughput in completion tokens/s (default: published vLLM 8B/H100 figure)."
        ),
        max_tokens: int = typer.Option(1024),
        token_budget: int = typer.Option(1536),
        prompt_set: str = typer.Option("unimm_chat"),
        prompt_version: str = typer.Option("v1"),
        prompts_dir: Path = typer.Option(None),
    ) -> None:
        """Expected requests, prompt/completion tokens and GPU-hours for the merged corpus."""
        cfg = _config(
            backend="openai", model="estimate", max_tokens=max_tokens, token_budget=token_budget,
            prompt_set=prompt_set, prompt_version=prompt_version, prompts_dir=prompts_dir,
        )  # fmt: skip
        est = estimate(read_merged(work), cfg, throughput)
        t = Table(title="estimate", show_header=False)
        for k, v in [
            ("records / requests", f"{est.records:,} / {est.requests:,}"),
            ("prompt tokens", f"{est.prompt_tokens:,}"),
            ("shared prefix tokens (cached)", f"{est.shared_prefix_tokens:,}"),
            (
                "prompt tokens without the cached prefix",
                f"{est.uncached_prompt_tokens - est.shared_prefix_tokens:,}",
            ),
            ("completion tokens", f"{est.completion_tokens:,}"),
            ("throughput (completion tokens/s)", f"{est.throughput_tokens_per_s:,.0f}"),
            ("GPU-hours", f"{est.gpu_hours:,.3f}"),
        ]:
            t.add_row(k, v)
        console = Console(highlight=False, soft_wrap=True)
        console.print(t)
        console.print(f"throughput: {est.throughput_source}")
        for a in est.assumptions:
            console.print(f"assumption: {a}")
