"""`unimm serve`: vLLM's clear error without vllm/CUDA; llama.cpp's server for real."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.test_generate_openai import free_port
from unimm.generate.serve import vllm_command


def test_serve_vllm_without_vllm_exits_2(cli) -> None:
    # vllm is never installed in CI: the command must say so in one line, exit 2.
    r = cli("serve", "vllm", "--model", "meta-llama/Llama-3.1-8B-Instruct")
    assert r.returncode == 2
    assert "vllm" in r.stderr and ("not installed" in r.stderr or "CUDA" in r.stderr)
    assert "Traceback" not in r.stderr


def test_vllm_command_is_batch_friendly() -> None:
    cmd = vllm_command("m", host="0.0.0.0", port=8001, tensor_parallel_size=2, gpu_memory_utilization=0.85,
                       max_model_len=8192, max_num_seqs=256, seed=0, extra=["--dtype", "bfloat16"])  # fmt: skip
    assert "--enable-prefix-caching" in cmd and cmd[cmd.index("--max-num-seqs") + 1] == "256"
    assert cmd[cmd.index("--tensor-parallel-size") + 1] == "2" and cmd[-2:] == ["--dtype", "bfloat16"]


@pytest.mark.slow
def test_serve_llamacpp_starts_and_stops(tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "unimm", "serve", "llamacpp", "--port", str(port), "--n-ctx", "1024",
         "--model-alias", "smollm2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline().strip()  # printed once /v1/models answers
        assert line == f"http://127.0.0.1:{port}/v1", proc.stderr.read() if proc.poll() is not None else line
        with urllib.request.urlopen(f"{line}/models", timeout=10) as resp:
            assert json.loads(resp.read())["data"][0]["id"] == "smollm2"
        proc.send_signal(signal.SIGTERM)  # stops the server it started, too
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{line}/models", timeout=1)
            except OSError:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the llama.cpp server outlived `unimm serve`")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
