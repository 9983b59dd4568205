"""`unimm serve vllm|llamacpp`: start an OpenAI-compatible server for `unimm generate --llm openai`."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import typer

# unimm.generate (pydantic, polars) is imported inside the commands: `unimm --help` skips it


class _Stopped(Exception):
    """SIGTERM arrived."""


def _raise_stopped(signum: int, frame: object) -> None:
    raise _Stopped


def _serve_forever(proc: subprocess.Popen, base_url: str) -> None:
    """Print the URL, then stay in the foreground until the server exits or we are stopped
    (SIGTERM or Ctrl-C stop the server too)."""
    from unimm.generate.serve import stop

    typer.echo(base_url)
    sys.stdout.flush()
    signal.signal(signal.SIGTERM, _raise_stopped)
    try:
        # Poll rather than proc.wait(): a signal arriving inside wait() would leave Popen's
        # internal lock held while the handler stops the server.
        while proc.poll() is None:
            time.sleep(0.2)
    except (KeyboardInterrupt, _Stopped):
        stop(proc)
        raise typer.Exit(0) from None
    raise typer.Exit(proc.returncode)


def default_max_model_len(max_tokens: int = 1024, vision_max_side: int | None = None) -> int:
    """Context that fits the shared prompt prefix, the largest record budget and the answer; with
    `vision_max_side`, the vision prompt set and the largest picture (a square of that side)."""
    from unimm.generate import GenerateConfig
    from unimm.generate.prompts import prompt_set_for
    from unimm.generate.vision import qwen_image_tokens

    vision = {} if vision_max_side is None else {"vision": True, "vision_max_side": vision_max_side}
    cfg = GenerateConfig(backend="openai", model="serve", max_tokens=max_tokens, **vision)
    need = prompt_set_for(cfg).prefix_tokens + cfg.token_budget + max_tokens + 256
    if cfg.vision:
        need += qwen_image_tokens(cfg.vision_max_side, cfg.vision_max_side)
    # Estimates are model-free; round up to a power of two to leave tokenizer slack.
    size = 2048
    while size < need * 1.25:
        size *= 2
    return size


def register(app: typer.Typer) -> None:
    serve_app = typer.Typer(
        help="Start an OpenAI-compatible LLM server for --llm openai.", no_args_is_help=True
    )

    @serve_app.command("vllm")
    def vllm(
        model: str = typer.Option(..., help="Hugging Face id or local path of the model."),
        host: str = typer.Option("127.0.0.1"),
        port: int = typer.Option(8000),
        tensor_parallel_size: int = typer.Option(1),
        gpu_memory_utilization: float = typer.Option(0.9),
        max_model_len: int = typer.Option(None, help="Default: from the prompt budget."),
        max_num_seqs: int = typer.Option(256, help="Sequences per batch (keep it >= --concurrency)."),
        seed: int = typer.Option(0),
        ready_timeout: float = typer.Option(1800.0, help="Seconds to wait for the model to load."),
        extra: list[str] = typer.Option(None, help="More `vllm serve` arguments (repeatable)."),
        vision: bool = typer.Option(
            False,
            "--vision",
            help="Serve a vision-language model (e.g. Qwen/Qwen2.5-VL-7B-Instruct) for generate.vision: "
            "one image per prompt, and a context with room for the picture.",
        ),
        vision_max_side: int = typer.Option(
            None, help="Longest side of the pictures sent, for the default context (default 768)."
        ),
        mm_processor_kwargs: str = typer.Option(
            None,
            help="JSON for the model's multimodal processor, passed to vLLM as given, e.g. "
            "'{\"max_pixels\": 602112}' for Qwen2.5-VL (needs --vision).",
        ),
        print_command: bool = typer.Option(
            False, "--print-command", help="Print the `vllm serve` command line and exit (starts nothing)."
        ),
    ) -> None:
        """Start `vllm serve` with prefix caching and a deep batch; prints the base URL when ready."""
        import json
        import shlex

        from unimm.errors import ConfigError
        from unimm.generate import GenerateConfig
        from unimm.generate.serve import check_vllm, start, vllm_command

        kwargs = None
        if mm_processor_kwargs is not None:
            try:
                kwargs = json.loads(mm_processor_kwargs)
            except ValueError as e:
                raise ConfigError(f"--mm-processor-kwargs is not JSON: {e}") from None
            if not isinstance(kwargs, dict):
                raise ConfigError(
                    "--mm-processor-kwargs must be a JSON object, e.g. '{\"max_pixels\": 602112}'"
                )
        side = vision_max_side or GenerateConfig.model_fields["vision_max_side"].default
        cmd = vllm_command(
            model,
            host=host,
            port=port,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len or default_max_model_len(vision_max_side=side if vision else None),
            max_num_seqs=max_num_seqs,
            seed=seed,
            extra=extra or [],
            vision=vision,
            mm_processor_kwargs=kwargs,
        )
        if print_command:
            typer.echo(shlex.join(cmd))
            return
        check_vllm()
        base_url = f"http://{host}:{port}/v1"
        _serve_forever(start(cmd, base_url, ready_timeout), base_url)

    @serve_app.command("llamacpp")
    def llamacpp(
        model_path: Path = typer.Option(
            None, help="GGUF file (default: the embedded SmolLM2-135M-Instruct)."
        ),
        host: str = typer.Option("127.0.0.1"),
        port: int = typer.Option(8080),
        n_ctx: int = typer.Option(4096),
        model_alias: str = typer.Option(None, help="Model name the server answers to."),
        ready_timeout: float = typer.Option(120.0),
        log: Path = typer.Option(None, help="Server log file (default: discarded)."),
    ) -> None:
        """Start llama-cpp-python's server on a GGUF (CPU); prints the base URL when ready."""
        from unimm.generate.local import embedded_gguf
        from unimm.generate.serve import llamacpp_command, start

        path = model_path or embedded_gguf()
        cmd = llamacpp_command(path, host=host, port=port, n_ctx=n_ctx, model_alias=model_alias)
        base_url = f"http://{host}:{port}/v1"
        _serve_forever(start(cmd, base_url, ready_timeout, log), base_url)

    app.add_typer(serve_app, name="serve")
