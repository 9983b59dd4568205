"""Start an OpenAI-compatible server for `--llm openai`: vLLM on a GPU, or llama.cpp's server on
the embedded GGUF. Both wait until `/v1/models` answers."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from unimm.errors import ConfigError, UnimmError


class ServerError(UnimmError):
    """The server process exited or never became ready."""


def models_ready(base_url: str, timeout: float = 2.0) -> dict | None:
    """The `/v1/models` answer, or None while the server is not up."""
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=timeout) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def wait_ready(proc: subprocess.Popen, base_url: str, timeout_s: float) -> dict:
    """Poll until the server answers; a dead process or a timeout is a ServerError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(
                f"server exited with status {proc.returncode} before answering {base_url}/models"
            )
        answer = models_ready(base_url)
        if answer is not None:
            return answer
        time.sleep(0.2)
    stop(proc)
    raise ServerError(f"server did not answer {base_url}/models within {timeout_s:.0f}s")


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """Terminate the server we started (then kill it if it lingers)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cuda_available() -> bool:
    """True when a CUDA device is visible (torch if installed, else nvidia-smi)."""
    if importlib.util.find_spec("torch") is not None:
        import torch

        return bool(torch.cuda.is_available())
    return shutil.which("nvidia-smi") is not None


# One picture per request is all generation and the judge send. vLLM >= 0.9 takes the limit as
# JSON (`'{"image": 1}'`); 0.8 took `image=1`, which newer releases reject: the `gpu` extra needs
# vllm>=0.9. Capping it also keeps vLLM from reserving memory for more images (or videos) per
# sequence when it profiles the worst case at start-up.
IMAGES_PER_PROMPT = 1


def vllm_command(
    model: str,
    *,
    host: str,
    port: int,
    tensor_parallel_size: int,
    gpu_memory_utilization: float,
    max_model_len: int,
    max_num_seqs: int,
    seed: int,
    extra: list[str],
    vision: bool = False,
    mm_processor_kwargs: dict | None = None,
) -> list[str]:
    """`vllm serve` with batch-friendly flags: prefix caching on, a deep batch; with `vision`,
    the multimodal flags of a vision-language model (one image per prompt, and the model's
    processor options, e.g. Qwen2.5-VL's `{"max_pixels": ...}`, passed as given)."""
    multimodal: list[str] = []
    if vision:
        multimodal += ["--limit-mm-per-prompt", json.dumps({"image": IMAGES_PER_PROMPT})]
        if mm_processor_kwargs:
            multimodal += ["--mm-processor-kwargs", json.dumps(mm_processor_kwargs, sort_keys=True)]
    elif mm_processor_kwargs is not None:
        raise ConfigError("--mm-processor-kwargs is for a vision-language model: add --vision")
    return [
        *(["vllm"] if shutil.which("vllm") else [sys.executable, "-m", "vllm.entrypoints.cli.main"]),
        "serve",
        model,
        "--host", host,
        "--port", str(port),
        "--tensor-parallel-size", str(tensor_parallel_size),
        "--gpu-memory-utilization", str(gpu_memory_utilization),
        "--max-model-len", str(max_model_len),
        "--max-num-seqs", str(max_num_seqs),
        "--enable-prefix-caching",
        "--seed", str(seed),
        *multimodal,
        *extra,
    ]  # fmt: skip


def check_vllm() -> None:
    """vLLM must be installed and see a CUDA GPU; otherwise one clear error (exit 2)."""
    if importlib.util.find_spec("vllm") is None and shutil.which("vllm") is None:
        raise ConfigError("vllm is not installed: pip install 'unimm[gpu]' on a machine with a CUDA GPU")
    if not cuda_available():
        raise ConfigError("vllm needs a CUDA GPU and none is visible (use `unimm serve llamacpp` on CPU)")


def llamacpp_command(
    model_path: Path,
    *,
    host: str,
    port: int,
    n_ctx: int,
    model_alias: str | None,
    n_threads: int | None = None,
) -> list[str]:
    """llama-cpp-python's OpenAI-compatible server (one request at a time; fine for CPU)."""
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host", host]
    # Its default is half the cores; it serves one request at a time, so give it all of them.
    cmd += ["--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads or os.cpu_count() or 1)]
    if model_alias:
        cmd += ["--model_alias", model_alias]
    return cmd


def start(cmd: list[str], base_url: str, timeout_s: float, log: Path | None = None) -> subprocess.Popen:
    """Start a server and return once it answers; output goes to `log` (or is discarded)."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    finally:
        if log:
            out.close()  # the child holds its own descriptor
    try:
        wait_ready(proc, base_url, timeout_s)
    except BaseException:
        stop(proc)
        raise
    return proc
