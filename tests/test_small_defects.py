"""Small defects of issue 9: `--llm openai` without `--model` uses the only model the server
serves, and `unimm train` fits its default workers to a one-shard corpus."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.conftest import REPO, run_unimm
from tests.fault_server import FaultServer, Reply, Seen, dialogue_reply, json_reply
from unimm.errors import ConfigError
from unimm.generate import GenerateConfig

SERVED = "served-model"


def vllm(*models: str):
    """A behaviour for tests/fault_server.FaultServer that stands in for a vLLM server serving
    `models`: `/v1/models` lists them (owned by vllm), a chat completion gets a valid dialogue."""

    def behaviour(seen: Seen) -> Reply:
        if seen.path.endswith("/models"):
            data = [{"id": m, "object": "model", "owned_by": "vllm"} for m in models]
            return json_reply({"object": "list", "data": data})
        return dialogue_reply()

    return behaviour


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "data"
    r = run_unimm("sample", "--out", root, "--images", "4")
    assert r.returncode == 0, r.stderr
    return root


def test_openai_build_without_model_uses_the_only_served_model(demo_root: Path, tmp_path: Path):
    with FaultServer(vllm(SERVED)) as srv:
        r = run_unimm(
            "build", "--sources", "coco", "--data-root", demo_root, "--llm", "openai",
            "--base-url", srv.url, "--work", tmp_path / "work", "--out", tmp_path / "shards",
        )  # fmt: skip
        chat_bodies = [json.loads(s.body) for s in srv.seen if s.path.endswith("/chat/completions")]
        model_lists = [s for s in srv.seen if s.path.endswith("/models")]
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"using model {SERVED}, the only one served by {srv.url}" in " ".join(r.stdout.split())
    assert chat_bodies and {b["model"] for b in chat_bodies} == {SERVED}
    assert model_lists  # asked, not guessed
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert manifest["build_config"]["generate"]["model"] == SERVED


def test_several_served_models_or_no_server_is_a_config_error_naming_them():
    with FaultServer(vllm("model-a", "model-b")) as srv:
        cfg = GenerateConfig(backend="openai", base_urls=[srv.url])
        with pytest.raises(ConfigError, match="2 models") as e:
            cfg.with_served_model(print)
        assert "model-a, model-b" in str(e.value) and srv.url in str(e.value)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    cfg = GenerateConfig(backend="openai", base_urls=[url], connect_timeout_s=2, models_timeout_s=2)
    with pytest.raises(ConfigError, match="cannot be reached") as e:
        cfg.with_served_model(print)
    assert url in str(e.value)
    # a model given is used as given: no server is asked
    assert GenerateConfig(backend="openai", model="m", base_urls=[url]).with_served_model(print).model == "m"


def test_train_default_workers_fit_a_one_shard_corpus(demo_root: Path, tmp_path: Path):
    shards, run = tmp_path / "shards", tmp_path / "run"
    r = run_unimm(
        "build", "--config", REPO / "pipelines" / "llava_reformat.yaml", "--data-root", demo_root,
        "--work", tmp_path / "work", "--out", shards,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(json.loads((shards / "manifest.json").read_text())["shards"]) == 1
    r = run_unimm(
        "train", "--shards", shards, "--out", run, "--steps", "1", "--batch-size", "2",
        "--max-len", "64", "--image-size", "32", "--patch-size", "8", "--llm-dim", "64",
        "--device", "cpu",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    said = " ".join(r.stdout.split())
    assert "1 shard(s) for 1 rank(s): using 1 DataLoader worker(s) per rank instead of 2" in said
    assert json.loads((run / "config.json").read_text())["train"]["workers"] == 1
