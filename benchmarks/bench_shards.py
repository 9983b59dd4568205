"""Shard-writing throughput: unimm.shards.write_shards (one-pass tar writer with planned sizes,
sha256 while writing, atomic renames, manifest and card) vs plain `tarfile` writing the very same
members (same names, headers, payload bytes from the same source files, same order).

Samples are chats over the 80 real COCO-mini JPEGs (cycled), so payloads are realistic image
sizes. The writers run in alternating rounds (the order rotates each round), each into a fresh
temp folder, `--repeat` rounds; medians count, the ratio is median(plain) / median(unimm). The
two writers' shards are checked byte-identical first, so both really write the same bytes.

    python benchmarks/bench_shards.py [--quick] [--repeat N]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from _common import machine_line, record, update_section  # noqa: E402

from unimm.schema import Chat, GeneratorInfo, Turn  # noqa: E402
from unimm.shards import ShardConfig, write_shards  # noqa: E402
from unimm.shards.writer import to_shard_chat  # noqa: E402

REALDATA = REPO.parent / "shared" / "realdata"


def make_chats(n: int) -> list[Chat]:
    files = sorted((REALDATA / "coco-mini" / "train2017").glob("*.jpg"))
    gen = GeneratorInfo(
        backend="template", model="m", prompt_version="v", prompt_fingerprint="f", request_id="r"
    )
    turns = [
        Turn(role=r, content=f"{r} says something about the picture, turn {i}.")
        for i in range(8)
        for r in (("user", "assistant")[i % 2],)
    ]
    return [
        Chat(
            id=f"coco_{i:012d}",
            image_key=f"coco_{i:012d}",
            image_file=str(files[i % len(files)].relative_to(REALDATA)),
            turns=turns,
            sources=["coco"],
            generator=gen,
        )
        for i in range(n)
    ]


def plain_tarfile(chats: list[Chat], out: Path, maxcount: int) -> int:
    """Baseline: the same members with tarfile (read each image, encode each chat's JSON, add both
    with the shards' header fields); no planning, hashing, renames or manifest."""
    total = 0
    for s in range(0, len(chats), maxcount):
        path = out / f"plain-{s // maxcount:06d}.tar"
        with tarfile.open(path, "w") as tf:
            for c in chats[s : s + maxcount]:
                for ext, data in (
                    ("jpg", (REALDATA / c.image_file).read_bytes()),
                    ("json", to_shard_chat(c).model_dump_json().encode()),
                ):
                    ti = tarfile.TarInfo(f"{c.id}.{ext}")
                    ti.size, ti.mtime, ti.mode, ti.uname, ti.gname = len(data), 0, 0o444, "unimm", "unimm"
                    tf.addfile(ti, io.BytesIO(data))
        total += path.stat().st_size
    return total


def unimm_writer(chats: list[Chat], out: Path, maxcount: int, fsync: bool) -> int:
    return write_shards(chats, out, ShardConfig(maxcount=maxcount, fsync=fsync), REALDATA).total_bytes


def same_bytes(chats: list[Chat], maxcount: int) -> bool:
    """Whether write_shards and the baseline write byte-identical tar files (checked once, untimed)."""

    def digests(d: Path, pattern: str) -> list[str]:
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.glob(pattern))]

    with tempfile.TemporaryDirectory() as d:
        unimm_writer(chats, Path(d), maxcount, fsync=False)
        plain_tarfile(chats, Path(d), maxcount)
        return digests(Path(d), "unimm-*.tar") == digests(Path(d), "plain-*.tar")


def alternate(writers: dict[str, Callable[[Path], int]], rounds: int) -> dict[str, dict[str, float]]:
    """Each writer once per round, into a fresh folder, the order rotating each round; per writer
    the median and best wall seconds, the median CPU seconds (all threads), the bytes written."""
    wall: dict[str, list[float]] = {k: [] for k in writers}
    cpu: dict[str, list[float]] = {k: [] for k in writers}
    size: dict[str, int] = {}
    names = list(writers)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            with tempfile.TemporaryDirectory() as d:
                c0, t0 = time.process_time(), time.perf_counter()
                size[name] = writers[name](Path(d))
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    for k in writers:
        print(f"{k}: wall s {[round(x, 2) for x in wall[k]]}, CPU s {[round(x, 2) for x in cpu[k]]}")
    return {
        k: {
            "median": statistics.median(wall[k]),
            "best": min(wall[k]),
            "cpu": statistics.median(cpu[k]),
            "bytes": size[k],
        }
        for k in writers
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=5_000)
    ap.add_argument("--repeat", type=int, default=7, help="alternating rounds")
    a = ap.parse_args()
    n = 2_000 if a.quick else a.n
    chats = make_chats(n)
    maxcount = 1000
    import webdataset  # noqa: F401  (import cost, torch included, is not shard-writing time)

    identical = same_bytes(chats, maxcount)  # also warms the page cache with the source images
    load_before = os.getloadavg()[0]
    res = alternate(
        {
            "unimm": lambda d: unimm_writer(chats, d, maxcount, fsync=False),
            "plain": lambda d: plain_tarfile(chats, d, maxcount),
        },
        a.repeat,
    )
    load_after = os.getloadavg()[0]
    # after the comparison: fsync's disk traffic would slow whichever run came next
    res |= alternate({"synced": lambda d: unimm_writer(chats, d, maxcount, fsync=True)}, 3)
    ours, plain, synced = res["unimm"], res["plain"], res["synced"]
    ratio = plain["median"] / ours["median"]
    nbytes = ours["bytes"]

    def row(label: str, m: dict[str, float]) -> str:
        sec = m["median"]
        return (
            f"| {label} | {sec:.2f} | {m['best']:.2f} | {m['cpu']:.2f} | {n / sec:,.0f} | "
            f"{m['bytes'] / 2**20 / sec:,.0f} | {int(m['bytes']):,} |"
        )

    body = f"""## Shard writing

Machine: {machine_line()}; load average {load_before:.1f} before, {load_after:.1f} after (other jobs
share the 2 cores when it is above ~1). {n:,} samples (8-turn chat JSON + a real COCO JPEG, ~{nbytes / n / 1024:.0f} KiB per
sample), {maxcount} samples per shard; {a.repeat} alternating rounds of unimm and baseline (order rotated
each round), medians; then 3 runs with fsync (its disk traffic would slow the next run).
unimm = `write_shards` (plans sizes, writes each shard in one pass through 256 KiB buffers: tar
headers, JSON, image bytes read straight into the buffer; each buffer sha256-hashed by a helper
thread while it is written; temp file + rename per shard; card and manifest). Baseline = plain `tarfile` writing
the same members from the same files (read, JSON-encode, `addfile`; no hashing, planning, fsync or
manifest). Both write byte-identical tar files: **{"yes" if identical else "NO"}**. Source images are
in the page cache. CPU = process CPU seconds, all threads.

| writer | median s | best s | CPU s | samples/s | MB/s | bytes written |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
{row("unimm write_shards, fsync=False", ours)}
{row("unimm write_shards, fsync=True (default)", synced)}
{row("plain tarfile", plain)}

Without fsync (the baseline's durability) unimm reaches **{ratio:.0%}** of plain tarfile's throughput
(median over median; target >= 85%); with the default fsync, {plain["median"] / synced["median"]:.0%}
(the difference is the disk, not the writer). The hash costs no wall time only while a core is
free; with both busy it adds its CPU time (~0.6 ns/byte). The writer before issue 11 (webdataset's
TarWriter, whose `w|` stream re-slices each payload in 10240-byte pieces, each queued to the hash
thread; the temp file reopened with O_TRUNC, which makes ext4 start writeback on close) reached 38-55%.
{"(--quick run.)" if a.quick else ""}
"""
    print(body)
    update_section("shards", body)
    record("shards", unimm_s=ours["median"], tarfile_s=plain["median"], ratio=ratio, samples=n, bytes=nbytes)


if __name__ == "__main__":
    main()
