"""`unimm build` on its first real run: every setting that changes the output reruns what it
affects (no stale reuse), a bad config fails before any work, and the corpus stage does not load
the merged records it does not need."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_unimm
from tests.test_build import _build, _stages
from unimm.redact import is_secret_key
from unimm.shards.manifest import REDACTED, scrub
from unimm.stagecache import fingerprint


@pytest.fixture(scope="module")
def sample_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sample") / "data"
    assert run_unimm("sample", "--out", root).returncode == 0
    return root


@pytest.mark.parametrize("key", ["max_tokens", "token_budget", "prompt_tokens", "api_key_env", "image_key"])
def test_settings_named_like_secrets_are_not_secrets(key: str):
    assert not is_secret_key(key)
    assert fingerprint({key: 1}) != fingerprint({key: 2})
    assert scrub({key: 7}) == {key: 7}


@pytest.mark.parametrize(
    "key", ["api_key", "OPENAI_API_KEY", "hf_token", "token", "password", "client_secret"]
)
def test_real_secrets_are_neither_hashed_nor_stored(key: str):
    assert is_secret_key(key)
    assert fingerprint({key: "sk-a"}) == fingerprint({key: "sk-b"})
    assert scrub({"llm": {key: "sk-a"}}) == {"llm": {key: REDACTED}}


def test_changed_max_tokens_reruns_generation_and_shows_in_the_manifest(sample_root: Path, tmp_path: Path):
    r = _build(tmp_path, sample_root, "--set", "generate.max_tokens=512")
    assert r.returncode == 0, r.stderr
    r = _build(
        tmp_path, sample_root, "--set", "generate.max_tokens=256", "--set", "generate.token_budget=999"
    )
    assert r.returncode == 0, r.stderr
    stages = _stages(r.stdout)
    assert stages["merge"] == "cached"
    assert stages["generate"] == "ran"  # not the dialogues of max_tokens=512, marked cached
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    gen = manifest["build_config"]["generate"]
    assert gen["max_tokens"] == 256 and gen["token_budget"] == 999


def test_invalid_regex_fails_before_any_work(sample_root: Path, tmp_path: Path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        (REPO / "pipelines" / "llava_reformat.yaml").read_text()
        + "\nfilter:\n  refusal_patterns: ['as an ai', '(unclosed']\n"
    )
    r = run_unimm(
        "build",
        "--config",
        cfg,
        "--data-root",
        sample_root,
        "--work",
        tmp_path / "w",
        "--out",
        tmp_path / "o",
    )
    assert r.returncode == 2
    assert "filter.refusal_patterns" in r.stderr and "(unclosed" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "w").exists() and not (tmp_path / "o").exists()


def test_bad_evaluation_file_fails_before_any_work(sample_root: Path, tmp_path: Path):
    bad = tmp_path / "eval.json"
    bad.write_text('{"questions": [{"image_id": "x"}]}')
    r = _build(tmp_path, sample_root, "--set", f"decontaminate.eval_files=[{{path: {bad}}}]")
    assert r.returncode == 2
    assert str(bad) in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "work" / "ingest").exists()


def test_dedup_and_decontamination_read_no_merged_record_without_evaluation_files(
    sample_root: Path, tmp_path: Path
):
    """At full scale the merged records do not fit in memory as objects: dedup needs the kept
    dialogues only, and decontamination (when configured) two columns."""
    r = _build(tmp_path, sample_root, "--until", "filter")
    assert r.returncode == 0, r.stderr
    shutil.rmtree(tmp_path / "work" / "merged")
    (tmp_path / "work" / "merged").mkdir()  # the partitions are gone; only their listing is needed
    for p in (tmp_path / "work" / "filter").glob("chats-*.parquet"):
        (tmp_path / "work" / "merged" / p.name.replace("chats-", "part-")).write_bytes(b"not parquet")
    (tmp_path / "work" / "merged" / "summary.json").write_text("{}")
    r = _build(tmp_path, sample_root, "--until", "filter", "--set", "dedup.threshold=0.8")
    assert r.returncode == 0, r.stderr
    st = _stages(r.stdout)
    assert st["filter"] == "cached" and st["dedup"] == st["decontaminate"] == "ran"


def test_summary_counts_what_was_written(sample_root: Path, tmp_path: Path):
    r = _build(tmp_path, sample_root)
    assert r.returncode == 0, r.stderr
    written = json.loads((tmp_path / "shards" / "manifest.json").read_text())["total_samples"]
    assert f"{written:,} dialogues in" in r.stdout
    r = _build(tmp_path, sample_root)  # cached: still the manifest's count
    assert f"{written:,} dialogues in" in r.stdout


def _shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


@pytest.mark.slow
def test_killed_anywhere_then_rerun_gives_the_same_shards(sample_root: Path, tmp_path: Path):
    """SIGKILL at a spread of moments (inside ingest, merge, generate, filter, corpus, shards),
    restarting each time: the final shards and manifest are byte for byte those of a build that
    was never interrupted, and no temporary file is left behind."""
    args = ["build", "--config", REPO / "pipelines" / "llava_reformat.yaml", "--data-root", sample_root,
            "--work", tmp_path / "work", "--out", tmp_path / "shards"]  # fmt: skip
    t0 = time.monotonic()
    assert run_unimm(*args).returncode == 0
    uninterrupted = time.monotonic() - t0
    reference = _shard_bytes(tmp_path / "shards")
    shutil.rmtree(tmp_path / "work")
    shutil.rmtree(tmp_path / "shards")

    cmd = [sys.executable, "-m", "unimm", *map(str, args)]
    kills = 0
    # kills spread over the time an uninterrupted build takes here (each restart resumes, so
    # later ones land in later stages)
    for delay in [uninterrupted * k / 10 for k in range(1, 11)]:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 3, "the build finished before it could be killed: lower the delays"
    r = run_unimm(*args)
    assert r.returncode == 0, r.stderr
    assert _shard_bytes(tmp_path / "shards") == reference
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".old"))]
    assert not leftovers
