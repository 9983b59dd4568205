"""The training data path: unimm WebDataset shards -> decoded, tokenised, collated batches.

Order of one DataLoader worker's stream, per epoch: shard list shuffled with a seed shared by all
ranks -> `wds.split_by_node` -> split by worker (wds.split_by_worker's rule on a rotated worker id,
see `_logical_worker`), so ranks and workers read disjoint shards
-> tar samples -> a seeded sample shuffle buffer (flushed at the end of each epoch, so an epoch
never leaks into the next) -> decode + render -> batches of `batch_size`. Epochs repeat forever;
the training loop decides when to stop. `resampled=True` instead draws each worker's shards with
replacement (webdataset's resampled mode): no epoch boundaries, no disjointness guarantee.

Every random choice is seeded by (seed, epoch, rank, worker), so the stream is a pure function
of its arguments. Resume uses that: a DataLoader hands out worker batches round-robin, so after
`consumed` batches on a rank, worker w has produced exactly ceil((consumed - w) / W) of them;
the resumed loader rotates worker ids so its round-robin picks up at the right worker, and each re-reads and drops that many batches' raw samples (tar bytes only, nothing decoded)
and the run continues on exactly the batches an uninterrupted run would have seen next.

Images reach the model as uint8 [3, S, S]; the model normalises on its device (4x less data
moved between processes than float32).

With `skip_bad=True` a sample that cannot be decoded (image or json) is dropped through a counting
webdataset handler (`SkipLog`) and its record travels with the batch under `SKIPPED`; a batch is
the good samples among the next `batch_size` raw ones (possibly none), so the resume arithmetic
above holds whatever is skipped. The training loop counts the records and enforces the bound.
"""

from __future__ import annotations

import glob
import io
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import webdataset as wds
from PIL import Image
from pydantic import ValidationError
from torch.utils.data import DataLoader, IterableDataset

from unimm.errors import ConfigError, InputError, UnimmError
from unimm.schema import Chat
from unimm.train.template import IGNORE, ChatTemplate, pretrain_turns

_ERROR = "__error__"
SKIPPED = "skipped"
REASONS = ("image", "json")


class ShardDataError(UnimmError):
    """A bad sample met inside a DataLoader worker, re-raised in the training process."""


@dataclass(frozen=True)
class SkippedSample:
    """One dropped sample: where it was, why (`image` or `json`) and the full error text."""

    shard: str
    key: str | None
    reason: str
    text: str


class SkipLog:
    """A webdataset exception handler that records each bad sample, then defers to `inner`
    (webdataset's own handlers keep no count). Only sample errors (`InputError`) are skippable:
    anything else is a bug or an unreadable shard, and is re-raised."""

    def __init__(self, inner: Callable[[Exception], bool] = wds.ignore_and_continue) -> None:
        self.inner = inner
        self.records: list[SkippedSample] = []

    def __call__(self, exn: Exception) -> bool:
        if not isinstance(exn, InputError):
            return wds.reraise_exception(exn)
        reason = "image" if exn.field == "jpg" else "json"
        key = None if exn.record is None else str(exn.record)
        self.records.append(SkippedSample(exn.file, key, reason, str(exn)))
        return self.inner(exn)

    def drain(self) -> list[SkippedSample]:
        """The records since the last drain."""
        out, self.records = self.records, []
        return out


def resolve_shards(pattern: str) -> list[str]:
    """Shard paths from a glob (`shards/*.tar`), a brace pattern (`s-{000000..000003}.tar`), a
    folder (its *.tar) or a `manifest.json` (its `shards[].name`, relative to the manifest)."""
    p = Path(pattern)
    if p.name == "manifest.json" or (p.suffix == ".json" and p.is_file()):
        try:
            manifest = json.loads(p.read_text())
            names = [s["name"] for s in manifest["shards"]]
        except FileNotFoundError as e:
            raise InputError(p, "manifest not found") from e
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise InputError(p, f"not a unimm shard manifest ({e})", field="shards") from e
        urls = [str(p.parent / n) for n in names]
    elif p.is_dir():
        urls = sorted(glob.glob(str(p / "*.tar")))
    elif any(c in pattern for c in "*?["):
        urls = sorted(glob.glob(pattern))
    else:
        urls = list(wds.shardlists.expand_urls(pattern))
    if not urls:
        raise InputError(pattern, "no shards match")
    missing = [u for u in urls if not Path(u).is_file()]
    if missing:
        raise InputError(missing[0], f"shard not found ({len(missing)} of {len(urls)} missing)")
    return urls


def decode_image(data: bytes, size: int) -> torch.Tensor:
    """JPEG/PNG bytes -> uint8 tensor [3, size, size] (RGB, bicubic resize, aspect not kept)."""
    img = Image.open(io.BytesIO(data))
    # let libjpeg decode at a reduced DCT scale when the target is much smaller (never below `size`)
    img.draft("RGB", (size, size))
    img = img.convert("RGB").resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(img).transpose(2, 0, 1).copy())


@dataclass
class SampleEncoder:
    """Raw tar sample (`jpg` + `json` bytes) -> model inputs; raises InputError on bad samples."""

    template: ChatTemplate
    image_size: int
    stage: str = "sft"
    pretrain_prompt: str | None = None

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        url, key = sample.get("__url__", "<shard>"), sample.get("__key__")
        for ext in ("jpg", "json"):
            if ext not in sample:
                raise InputError(url, f"sample has no .{ext} member", record=key, field=ext)
        try:
            chat = Chat.model_validate_json(sample["json"])
        except ValidationError as e:
            err = e.errors()[0]
            raise InputError(
                url, err["msg"], record=key, field=".".join(map(str, err["loc"])) or "json"
            ) from e
        turns = pretrain_turns(chat.turns, self.pretrain_prompt) if self.stage == "pretrain" else chat.turns
        enc = self.template.encode(turns, source=url, key=key)
        try:
            pixels = decode_image(sample["jpg"], self.image_size)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise InputError(url, f"cannot decode image: {e}", record=key, field="jpg") from e
        return {"key": key, "pixel_values": pixels, "input_ids": enc.input_ids, "labels": enc.labels}


def collate(samples: list[dict[str, Any]], pad_id: int, image_token_id: int) -> dict[str, Any]:
    """Right-pad to the longest sample: ids with `pad_id`, labels with -100, attention mask 0."""
    width = max(len(s["input_ids"]) for s in samples)
    n = len(samples)
    ids = np.full((n, width), pad_id, dtype=np.int64)
    labels = np.full((n, width), IGNORE, dtype=np.int64)
    attn = np.zeros((n, width), dtype=np.int64)
    for i, s in enumerate(samples):
        k = len(s["input_ids"])
        ids[i, :k] = s["input_ids"]
        labels[i, :k] = s["labels"]
        attn[i, :k] = 1
    t_ids = torch.from_numpy(ids)
    return {
        "keys": [s["key"] for s in samples],
        "pixel_values": torch.stack([s["pixel_values"] for s in samples]),
        "input_ids": t_ids,
        "labels": torch.from_numpy(labels),
        "attention_mask": torch.from_numpy(attn),
        "image_mask": t_ids == image_token_id,
    }


class ShardStream(IterableDataset):
    """Endless, seeded stream of collated batches for this rank (see the module docstring)."""

    def __init__(
        self,
        urls: list[str],
        encoder: SampleEncoder,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle_buffer: int = 256,
        resampled: bool = False,
        consumed_batches: int = 0,
        skip_bad: bool = False,
    ) -> None:
        super().__init__()
        self.urls, self.encoder, self.batch_size = urls, encoder, batch_size
        self.seed, self.shuffle_buffer, self.resampled = seed, shuffle_buffer, resampled
        self.consumed_batches = consumed_batches
        self.skip_bad = skip_bad

    def _epoch_shards(self, epoch: int, rank: int, worker: int, num_workers: int) -> Iterator[dict[str, str]]:
        if self.resampled:
            rng = random.Random(f"{self.seed}/shards/{epoch}/{rank}/{worker}")
            yield from ({"url": u} for u in rng.choices(self.urls, k=len(self.urls)))
            return
        order = list(self.urls)
        random.Random(f"{self.seed}/shards/{epoch}").shuffle(order)  # same order on every rank
        # wds.split_by_worker's rule (islice by worker), applied to the *logical* worker id
        yield from islice(wds.split_by_node({"url": u} for u in order), worker, None, num_workers)

    def _logical_worker(self) -> tuple[int, int]:
        """(logical worker, workers). A fresh DataLoader starts its round-robin at physical worker 0,
        while the batch due next came from worker `consumed % W` in the interrupted run: rotating
        the ids keeps every batch on the same stream after a resume."""
        _, _, worker, num_workers = wds.utils.pytorch_worker_info()
        return (worker + self.consumed_batches) % num_workers, num_workers

    def raw_samples(self) -> Iterator[dict[str, Any]]:
        """This worker's undecoded samples, epoch after epoch, forever."""
        rank = wds.utils.pytorch_worker_info()[0]
        worker, num_workers = self._logical_worker()
        epoch = 0
        while True:
            shards = self._epoch_shards(epoch, rank, worker, num_workers)
            samples = wds.tarfile_to_samples(handler=wds.reraise_exception)(shards)
            if self.shuffle_buffer > 1:
                rng = random.Random(f"{self.seed}/samples/{epoch}/{rank}/{worker}")
                samples = wds.filters._shuffle(
                    iter(samples), self.shuffle_buffer, self.shuffle_buffer // 4 + 1, rng=rng
                )
            n = 0
            for s in samples:
                n += 1
                yield s
            if n == 0:
                raise ConfigError(f"rank {rank} worker {worker} got no samples from its shards")
            epoch += 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker, num_workers = self._logical_worker()
        skip = max(0, -(-(self.consumed_batches - worker) // num_workers))
        stream = islice(self.raw_samples(), skip * self.batch_size, None)
        tok = self.encoder.template.tok
        log = SkipLog()
        decode = wds.map(self.encoder, handler=log if self.skip_bad else wds.reraise_exception)
        try:
            while True:
                good = list(decode(islice(stream, self.batch_size)))
                batch = collate(good, tok.pad_id, tok.image_token_id) if good else {"keys": []}
                if self.skip_bad:
                    batch[SKIPPED] = log.drain()
                yield batch
        except UnimmError as e:
            # exceptions with custom constructors do not survive the worker -> main hop; send the text
            yield {_ERROR: str(e)}


def clamp_workers(shards: int, world_size: int, workers: int, resampled: bool) -> int:
    """DataLoader workers per rank that `shards` can feed: disjoint reading gives every (rank,
    worker) reader shards of its own, so at most shards // world_size (never below one reader;
    resampled reading draws with replacement and needs no cap)."""
    if resampled or workers <= 1:
        return workers
    return max(1, min(workers, shards // world_size))


def check_shard_count(urls: list[str], world_size: int, workers: int, resampled: bool) -> None:
    """Disjoint reading needs at least one shard per (rank, worker) reader."""
    readers = world_size * max(1, workers)
    if not resampled and len(urls) < readers:
        raise ConfigError(
            f"{len(urls)} shard(s) for {world_size} rank(s) x {max(1, workers)} worker(s): every reader needs a shard; "
            "write more shards, use fewer workers, or pass --resampled"
        )


def batches(loader: DataLoader) -> Iterator[dict[str, Any]]:
    """Iterate a loader built on ShardStream, turning worker-side sample errors into ShardDataError."""
    for batch in loader:
        if _ERROR in batch:
            raise ShardDataError(batch[_ERROR])
        yield batch


def make_loader(stream: ShardStream, workers: int, pin_memory: bool = False) -> DataLoader:
    """DataLoader over already-collated batches (batch_size=None) with `workers` processes."""
    return DataLoader(
        stream,
        batch_size=None,
        num_workers=workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
