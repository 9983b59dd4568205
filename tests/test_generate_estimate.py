"""`unimm estimate`: request/token/GPU-hour figures before launch, assumed or calibrated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fault_server import MODEL as FAULT_MODEL
from tests.fault_server import FaultServer, Seen, dialogue_reply, models_reply
from tests.test_generate_template import fixture_records, write_merged
from unimm.errors import ConfigError
from unimm.generate import GenerateConfig
from unimm.generate.estimate import (
    DEFAULT_THROUGHPUT,
    Calibration,
    Spread,
    calibrate,
    estimate,
    model_free_prompt_tokens,
)
from unimm.generate.prompts import prompt_set_for


def test_estimate_figures() -> None:
    recs = fixture_records()
    cfg = GenerateConfig(backend="openai", model="m")
    est = estimate(recs, cfg)
    prefix = prompt_set_for(cfg).prefix_tokens
    assert est.requests == est.records == 3
    assert est.prompt_tokens > 3 * prefix and est.shared_prefix_tokens == prefix
    # The conservative published default: MLPerf Inference v5.1, server scenario.
    assert est.throughput_tokens_per_s == DEFAULT_THROUGHPUT == 5_103.0
    assert "MLPerf Inference v5.1, Llama-3.1-8B, 1x H100, server scenario" in est.throughput_source
    assert abs(est.gpu_hours - est.completion_tokens / DEFAULT_THROUGHPUT / 3600) < 1e-3
    assert est.completion_tokens_low == est.completion_tokens == est.completion_tokens_high
    assert not est.measured
    slow = estimate(recs, cfg, throughput=100.0)
    assert slow.gpu_hours > est.gpu_hours and slow.throughput_source == "given with --throughput"


def test_spread() -> None:
    one = Spread.of([7])
    assert one is not None and (one.min, one.p10, one.p50, one.p90, one.max, one.sd) == (7, 7, 7, 7, 7, 0)
    s = Spread.of(list(range(1, 11)))
    assert s is not None and s.mean == 5.5 and s.min == 1 and s.max == 10
    assert s.p10 == pytest.approx(1.9) and s.p50 == pytest.approx(5.5) and s.p90 == pytest.approx(9.1)
    assert Spread.of([]) is None


def fixed_calibration(**kw: object) -> Calibration:
    """2 records, 4 calls (one retry each), 900 completion tokens in 9 s on 2 servers; valid
    dialogues of 300 and 500 tokens; the server counted 1,250 prompt tokens per request against a
    model-free 1,000."""
    base = dict(records=2, backend="openai", model="m", servers=2, in_flight=2, wall_s=9.0, requests_sent=4,
                chats=2, failures=0, completion_tokens=900, prompt_tokens=5000,
                dialogue_completion_tokens=[300, 500], request_prompt_tokens=[1200, 1300],
                estimated_prompt_tokens=2000)  # fmt: skip
    return Calibration(**{**base, **kw})


def test_extrapolation_from_a_calibration() -> None:
    recs = fixture_records()
    cfg = GenerateConfig(backend="openai", model="m")
    cal = fixed_calibration()
    assert cal.completion_tokens_per_s == 100.0
    est = estimate(recs, cfg, calibration=cal)
    assert est.measured and est.records == 3 and est.requests == 6  # 2 calls per record
    # 450 completion tokens per record; the p10/p90 of the dialogues (320/480) scaled by the
    # retry overhead 450/400 gives 360/540 per record.
    assert (est.completion_tokens, est.completion_tokens_low, est.completion_tokens_high) == (
        1350,
        1080,
        1620,
    )
    # Measured aggregate of 2 servers: GPU-hours count both, wall hours one clock.
    assert est.throughput_tokens_per_s == 100.0 and est.servers == 2
    assert est.gpu_hours == round(1350 / 100 / 3600 * 2, 3) and est.wall_hours == round(1350 / 100 / 3600, 3)
    assert est.gpu_hours_low < est.gpu_hours < est.gpu_hours_high
    assert est.gpu_hours_high == round(1620 / 100 / 3600 * 2, 3)
    # Prompt tokens: the model-free count of every record x 1.25 (server / estimate) x 2 calls.
    prefix, record_tokens = model_free_prompt_tokens(recs, cfg)
    assert est.prompt_tokens == round((3 * prefix + record_tokens) * 1.25 * 2)
    assert est.shared_prefix_tokens == round(prefix * 1.25)
    assert "measured by --calibrate 2" in est.throughput_source and "in flight" in est.throughput_source
    assert any("first 2 records stand for all 3" in a for a in est.assumptions)
    assert any("p10 320" in a and "p90 480" in a for a in est.assumptions)


def test_calibrated_tokens_with_a_given_throughput() -> None:
    recs = fixture_records()
    cfg = GenerateConfig(backend="openai", model="m")
    est = estimate(recs, cfg, throughput=50.0, calibration=fixed_calibration())
    assert not est.measured and est.servers == 1 and est.throughput_tokens_per_s == 50.0
    assert est.completion_tokens == 1350 and est.gpu_hours == round(1350 / 50 / 3600, 3)
    assert "given with --throughput" in est.throughput_source


def test_calibration_without_valid_dialogues_has_no_spread() -> None:
    cal = fixed_calibration(chats=0, failures=2, dialogue_completion_tokens=[], request_prompt_tokens=[])
    est = estimate(fixture_records(), GenerateConfig(backend="openai", model="m"), calibration=cal)
    assert est.completion_tokens_low == est.completion_tokens == est.completion_tokens_high == 1350
    prefix, record_tokens = model_free_prompt_tokens(
        fixture_records(), GenerateConfig(backend="openai", model="m")
    )
    assert est.prompt_tokens == (3 * prefix + record_tokens) * 2  # no server counts: ratio 1
    assert any("no valid dialogue" in a for a in est.assumptions)


def _instant(seen: Seen):
    return models_reply() if seen.path.endswith("/models") else dialogue_reply()


def test_calibrate_against_a_server(tmp_path: Path) -> None:
    """A real run through the openai backend against a server that answers at once (8 completion
    and 12 prompt tokens per answer); nothing is left behind."""
    recs = fixture_records()[:2]
    with FaultServer(_instant) as srv:
        cfg = GenerateConfig(backend="openai", base_urls=[srv.url, srv.url], concurrency=8)
        cal = calibrate(recs, cfg, log=lambda _: None)
        assert srv.chat_requests() == 2
    assert (cal.records, cal.backend, cal.model, cal.servers, cal.in_flight) == (
        2,
        "openai",
        FAULT_MODEL,
        2,
        2,
    )
    assert (cal.chats, cal.failures, cal.requests_sent, cal.completion_tokens) == (2, 0, 2, 16)
    assert cal.dialogue_completion_tokens == [8, 8] and cal.request_prompt_tokens == [12, 12]
    prefix, record_tokens = model_free_prompt_tokens(recs, cfg)
    assert cal.estimated_prompt_tokens == 2 * prefix + record_tokens
    assert cal.wall_s > 0 and cal.completion_tokens_per_s > 0
    with pytest.raises(ConfigError, match="--calibrate needs a model"):
        calibrate(recs, GenerateConfig(backend="template"))


def test_cli_estimate(tmp_path: Path, cli) -> None:
    write_merged(tmp_path, fixture_records())
    r = cli("estimate", "--work", tmp_path, "--throughput", "2500")
    assert r.returncode == 0, r.stderr
    assert "GPU-hours" in r.stdout and "2,500" in r.stdout and "assumption" in r.stdout
    r = cli("estimate", "--work", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "5,103" in r.stdout and "MLPerf Inference v5.1" in r.stdout
    r = cli("estimate", "--work", tmp_path / "nothing")
    assert r.returncode == 2 and "unimm merge" in r.stderr


def _files(work: Path) -> dict[str, int]:
    return {str(p.relative_to(work)): p.stat().st_mtime_ns for p in work.rglob("*")}


def test_cli_calibrate_against_a_server(tmp_path: Path, cli) -> None:
    work = tmp_path / "work"
    write_merged(work, fixture_records())
    before = _files(work)
    with FaultServer(_instant) as srv:
        r = cli("estimate", "--work", work, "--calibrate", "2", "--llm", "openai", "--base-url", srv.url,
                "--concurrency", "4", "--json")  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert srv.chat_requests() == 2  # the first 2 records, sent for real
    doc = json.loads(r.stdout)
    cal, est = doc["calibration"], doc["estimate"]
    assert cal["records"] == 2 and cal["model"] == FAULT_MODEL and cal["in_flight"] == 2
    assert est["records"] == 3 and est["completion_tokens"] == 3 * 8 and est["measured"]
    assert _files(work) == before  # a throwaway cache: the work dir is untouched
    with FaultServer(_instant) as srv:
        r = cli("estimate", "--work", work, "--calibrate", "1", "--llm", "openai", "--base-url", srv.url)
    assert r.returncode == 0, r.stderr
    assert "estimate (calibrated)" in r.stdout and "measured by --calibrate 1" in r.stdout
    assert "1 request(s) in flight" in r.stdout and "completion tokens/s" in r.stdout
    r = cli("estimate", "--work", work, "--calibrate", "2", "--llm", "template")
    assert r.returncode == 2 and "--calibrate needs a model" in r.stderr


@pytest.mark.slow
def test_cli_calibrate_with_the_embedded_model(tmp_path: Path, cli) -> None:
    """`--calibrate 2` for real: in-process llama.cpp on the embedded SmolLM2-135M GGUF."""
    work = tmp_path / "work"
    write_merged(work, fixture_records())
    before = _files(work)
    r = cli("estimate", "--work", work, "--calibrate", "2", "--llm", "local", "--max-tokens", "48",
            "--n-ctx", "2048", "--invalid-retries", "0", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    cal, est = doc["calibration"], doc["estimate"]
    assert cal["backend"] == "local" and cal["model"] == "SmolLM2-135M-Instruct" and cal["records"] == 2
    assert cal["requests_sent"] == 2 and cal["completion_tokens"] > 0 and cal["completion_tokens_per_s"] > 0
    assert all(0 < t <= 48 for t in cal["dialogue_completion_tokens"])
    assert all(t > 500 for t in cal["request_prompt_tokens"])  # the system prompt + examples
    assert est["measured"] and est["throughput_tokens_per_s"] == pytest.approx(cal["completion_tokens_per_s"])
    assert est["completion_tokens_low"] <= est["completion_tokens"] <= est["completion_tokens_high"]
    assert est["completion_tokens"] == round(3 * cal["completion_tokens"] / 2)
    assert _files(work) == before
