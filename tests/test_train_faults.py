"""Reference trainer under faults: a run folder moved or copied before `--resume`, and shards
holding samples that cannot be decoded (skipped, counted, bounded)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import webdataset as wds

from tests.test_train_data import coco_chats, write_shards
from unimm.schema import Chat
from unimm.train import checkpoint as ckpt
from unimm.train.data import SKIPPED, SampleEncoder, ShardStream
from unimm.train.template import ChatTemplate
from unimm.train.tokenizer import load_tokenizer

# one shard, no shuffle, no workers: the sample order is the tar order, so a bad sample's step is known
TINY = [
    "--batch-size",
    "4",
    "--workers",
    "0",
    "--shuffle-buffer",
    "0",
    "--warmup",
    "1",
    "--max-len",
    "64",
    "--image-size",
    "32",
    "--patch-size",
    "8",
    "--llm-dim",
    "64",
    "--llm-layers",
    "1",
]
N = 16  # samples per shard: 4 batches of 4 are exactly one epoch


@pytest.fixture(scope="module")
def items(realdata) -> list[tuple[Chat, bytes]]:
    return coco_chats(realdata)[:N]


@pytest.fixture(scope="module")
def good_shards(tmp_path_factory, items) -> Path:
    d = tmp_path_factory.mktemp("good")
    write_shards(d, items, 1)
    return d


def _with_truncated_jpeg(folder: Path, items: list[tuple[Chat, bytes]], at: int) -> str:
    """Shards of `items` whose sample `at` has its JPEG cut to a third; returns that sample's key."""
    chat, jpg = items[at]
    bad = list(items)
    bad[at] = (chat, jpg[: len(jpg) // 3])
    write_shards(folder, bad, 1)
    return chat.id


def _train(cli, shards: Path, out: Path, *extra: str):
    return cli("train", "--shards", shards, "--out", out, *TINY, *extra)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder`: bytes and mtime (ns), by relative path."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("how", ["move", "copy"])
def test_resume_continues_in_the_folder_given(cli, good_shards, tmp_path, how):
    first, second = tmp_path / "first", tmp_path / "second"
    r = _train(cli, good_shards, first, "--steps", "4", "--stop-after", "2")
    assert r.returncode == 0, r.stderr
    if how == "move":
        first.rename(second)
    else:
        shutil.copytree(first, second)
    before = _snapshot(first) if how == "copy" else {}

    r = _train(cli, good_shards, second, "--steps", "4", "--resume")
    assert r.returncode == 0, r.stderr
    assert f"resuming from {ckpt.step_folder(second, 2)}" in r.stdout
    # continued from the saved step 2, not from scratch
    assert [m["step"] for m in _metrics(second)] == [1, 2, 3, 4]
    state = ckpt.load_state(ckpt.latest(second))
    assert (state.step, state.consumed_batches) == (4, 4)
    for cfg in (second / "config.json", ckpt.latest(second) / ckpt.CONFIG):
        assert json.loads(cfg.read_text())["train"]["out"] == str(second)
    if how == "move":
        assert not first.exists()
    else:
        assert _snapshot(first) == before


def test_corrupt_jpeg_is_skipped_counted_and_reported(cli, items, tmp_path):
    shards, run = tmp_path / "shards", tmp_path / "run"
    key = _with_truncated_jpeg(shards, items, at=5)
    # one worker process: the skip records must survive the worker -> trainer hop
    r = _train(cli, shards, run, "--steps", "4", "--workers", "1", "--debug-keys")
    assert r.returncode == 0, r.stderr
    assert f"skipped a bad sample: {shards / 'shards-000000.tar'}: record {key}: field 'jpg'" in r.stdout
    assert "finished at step 4; 1 bad sample(s) skipped (image 1, json 0)" in r.stdout
    last = _metrics(run)[-1]
    assert last["skipped_samples"] == 1 and last["skipped_reasons"] == {"image": 1}
    # one epoch read: every good sample trained once, the bad one never
    keys = (run / "keys" / "rank0.txt").read_text().split()
    assert sorted(keys) == sorted(c.id for c, _ in items if c.id != key)
    state = ckpt.load_state(ckpt.latest(run))
    assert (state.step, state.consumed_batches) == (4, 4)
    assert state.skipped == {"image": 1, "json": 0}


def test_past_the_bound_stops_after_a_checkpoint_and_resumes(cli, items, tmp_path):
    shards, run = tmp_path / "shards", tmp_path / "run"
    key = _with_truncated_jpeg(shards, items, at=9)  # in batch 3, met after 2 trained steps
    r = _train(cli, shards, run, "--steps", "4", "--max-bad-samples", "0")
    assert r.returncode == 2
    err = " ".join(r.stderr.split())  # the console may wrap the line
    assert "1 bad sample(s) skipped, more than --max-bad-samples 0" in err
    assert f"shards-000000.tar: record {key}: field 'jpg'" in err
    assert f"checkpoint of step 2 saved to {ckpt.step_folder(run, 2)}" in err
    state = ckpt.load_state(ckpt.latest(run))
    assert (state.step, state.consumed_batches, state.skipped) == (2, 2, {"image": 0, "json": 0})
    assert [m["step"] for m in _metrics(run)] == [1, 2]

    # a looser bound lets the same run go on from step 2, meeting (and skipping) the sample again
    r = _train(cli, shards, run, "--steps", "4", "--max-bad-samples", "1", "--resume")
    assert r.returncode == 0, r.stderr
    assert [m["step"] for m in _metrics(run)] == [1, 2, 3, 4]
    assert _metrics(run)[-1]["skipped_samples"] == 1
    assert ckpt.load_state(ckpt.latest(run)).step == 4


def test_stream_skips_bad_json_and_image_keeping_batch_boundaries(items, tmp_path):
    (chat, jpg), (c2, _), (c3, jpg3), (c4, _) = items[:4]
    shard = tmp_path / "bad-000000.tar"
    with wds.TarWriter(str(shard)) as w:
        w.write({"__key__": chat.id, "jpg": jpg, "json": chat.model_dump_json().encode()})
        w.write({"__key__": c2.id, "jpg": jpg, "json": b'{"id": "cut'})
        w.write({"__key__": c3.id, "jpg": b"not a jpeg", "json": c3.model_dump_json().encode()})
        w.write({"__key__": c4.id, "json": c4.model_dump_json().encode()})  # no image at all
    tok = load_tokenizer(None)
    enc = SampleEncoder(ChatTemplate(tok, 16, 96), image_size=32)
    it = iter(ShardStream([str(shard)], enc, 2, shuffle_buffer=0, skip_bad=True))
    one, two = next(it), next(it)
    # a batch is the good samples among its batch_size raw ones, even none: resume counts batches
    assert one["keys"] == [chat.id] and one["input_ids"].shape[0] == 1
    assert [(s.key, s.reason) for s in one[SKIPPED]] == [(c2.id, "json")]
    assert two["keys"] == [] and [(s.key, s.reason) for s in two[SKIPPED]] == [
        (c3.id, "image"),
        (c4.id, "image"),
    ]
    assert all(s.shard == str(shard) for s in one[SKIPPED] + two[SKIPPED])
    assert next(it)["keys"] == [chat.id]  # the next epoch starts over
