"""`unimm estimate`: request/token/GPU-hour figures before launch."""

from __future__ import annotations

from pathlib import Path

from tests.test_generate_template import fixture_records, write_merged
from unimm.generate import GenerateConfig
from unimm.generate.estimate import DEFAULT_THROUGHPUT, estimate
from unimm.generate.prompts import prompt_set_for


def test_estimate_figures() -> None:
    recs = fixture_records()
    cfg = GenerateConfig(backend="openai", model="m")
    est = estimate(recs, cfg)
    prefix = prompt_set_for(cfg).prefix_tokens
    assert est.requests == est.records == 3
    assert est.prompt_tokens > 3 * prefix and est.shared_prefix_tokens == prefix
    assert est.throughput_tokens_per_s == DEFAULT_THROUGHPUT and "H100" in est.throughput_source
    assert abs(est.gpu_hours - est.completion_tokens / DEFAULT_THROUGHPUT / 3600) < 1e-3
    slow = estimate(recs, cfg, throughput=100.0)
    assert slow.gpu_hours > est.gpu_hours and slow.throughput_source == "given with --throughput"


def test_cli_estimate(tmp_path: Path, cli) -> None:
    write_merged(tmp_path, fixture_records())
    r = cli("estimate", "--work", tmp_path, "--throughput", "2500")
    assert r.returncode == 0, r.stderr
    assert "GPU-hours" in r.stdout and "2,500" in r.stdout and "assumption" in r.stdout
    r = cli("estimate", "--work", tmp_path / "nothing")
    assert r.returncode == 2 and "unimm merge" in r.stderr
