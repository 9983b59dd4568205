"""The environment a local pool's workers start with: polars' threads and allocator settings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from unimm.pipeline.executors import _child_env

POLARS_DEFAULT = "dirty_decay_ms:500,muzzy_decay_ms:1000"  # what polars writes on import


def _child_conf() -> str:
    """The allocator setting a worker's polars ends up with (a real child process: polars
    rewrites the variable when it is imported)."""
    code = "import os, polars; print(os.environ['_RJEM_MALLOC_CONF'])"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POLARS_MAX_THREADS", raising=False)
    monkeypatch.setenv("_RJEM_MALLOC_CONF", POLARS_DEFAULT)


def _last(conf: str, option: str) -> str:
    """jemalloc's reading of a repeated option: the last one wins."""
    return [kv.split(":", 1)[1] for kv in conf.split(",") if kv.startswith(option + ":")][-1]


@pytest.mark.usefixtures("clean_env")
def test_workers_that_run_several_units_keep_freed_pages_and_the_parent_is_restored() -> None:
    with _child_env(1, keep_pages=True):
        assert os.environ["POLARS_MAX_THREADS"] == "1"
        conf = _child_conf()
    assert _last(conf, "dirty_decay_ms") == "10000" and _last(conf, "muzzy_decay_ms") == "10000"
    assert os.environ["_RJEM_MALLOC_CONF"] == POLARS_DEFAULT
    assert "POLARS_MAX_THREADS" not in os.environ


@pytest.mark.usefixtures("clean_env")
def test_workers_of_uneven_units_keep_polars_default() -> None:
    with _child_env(2, keep_pages=False):
        assert os.environ["POLARS_MAX_THREADS"] == "2"
        conf = _child_conf()
    assert _last(conf, "dirty_decay_ms") == "500"


@pytest.mark.usefixtures("clean_env")
def test_settings_the_user_made_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLARS_MAX_THREADS", "7")
    # what a user's `_RJEM_MALLOC_CONF=dirty_decay_ms:0` looks like once polars has appended it
    monkeypatch.setenv("_RJEM_MALLOC_CONF", POLARS_DEFAULT + ",dirty_decay_ms:0")
    with _child_env(1, keep_pages=True):
        assert os.environ["POLARS_MAX_THREADS"] == "7"
        conf = _child_conf()
    assert _last(conf, "dirty_decay_ms") == "0"
    assert os.environ["POLARS_MAX_THREADS"] == "7"
