"""Training data loader throughput: unimm's loader (decode + resize + render + tokenise + collate)
against a bare webdataset iteration that only decodes the same images, same shards, same workers.

Shards: the 80 real COCO-mini JPEGs with their real captions as dialogues, repeated to 2,000
samples in 8 shards. Model geometry of a real run: 224 px images, 256 visual tokens (ViT-L/14
style, MLP adapter), max_len 512, SmolLM2 BPE. Writes the `loader` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import webdataset as wds  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from benchmarks._common import machine_line, update_section  # noqa: E402
from tests.test_train_data import coco_chats, write_shards  # noqa: E402
from unimm.train.data import SampleEncoder, ShardStream, batches, decode_image, make_loader  # noqa: E402
from unimm.train.template import ChatTemplate  # noqa: E402
from unimm.train.tokenizer import load_tokenizer  # noqa: E402

REALDATA = REPO.parent / "shared" / "realdata"


def bare_rate(urls: list[str], n: int, workers: int, mode: str) -> float:
    """Samples/s of webdataset alone: `pil` = wds.decode('pil') (full decode), `resize` = the
    loader's own image decode (draft + resize) and nothing else."""
    ds = wds.WebDataset(
        urls, shardshuffle=False, nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker
    )
    if mode == "pil":
        ds = ds.decode("pil").map(lambda s: s["jpg"].size)
    else:
        ds = ds.map(lambda s: decode_image(s["jpg"], 224).shape)
    t0 = time.perf_counter()
    seen = sum(1 for _ in DataLoader(ds, batch_size=None, num_workers=workers))
    assert seen == n, seen
    return n / (time.perf_counter() - t0)


def loader_rate(urls: list[str], n: int, workers: int, batch_size: int) -> tuple[float, float]:
    """Samples/s and tokens/s of unimm's training loader over one epoch (n samples)."""
    tok = load_tokenizer(None)
    enc = SampleEncoder(ChatTemplate(tok, num_visual_tokens=256, max_len=512), image_size=224)
    loader = make_loader(ShardStream(urls, enc, batch_size, seed=0, shuffle_buffer=256), workers)
    t0 = time.perf_counter()
    it = batches(loader)
    samples = tokens = 0
    for _ in range(n // batch_size):
        b = next(it)
        samples += len(b["keys"])
        tokens += int(b["attention_mask"].sum())
    dt = time.perf_counter() - t0
    del it, loader
    return samples / dt, tokens / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3, help="best of N for each measurement")
    args = ap.parse_args()
    items = coco_chats(REALDATA)
    repeat = -(-args.samples // len(items))
    with tempfile.TemporaryDirectory() as d:
        write_shards(Path(d), items, 8, repeat=repeat)
        n = len(items) * repeat
        urls = sorted(str(p) for p in Path(d).glob("*.tar"))
        full = max(bare_rate(urls, n, args.workers, "pil") for _ in range(args.repeats))
        same = max(bare_rate(urls, n, args.workers, "resize") for _ in range(args.repeats))
        ours = max(
            (loader_rate(urls, n, args.workers, args.batch_size) for _ in range(args.repeats)),
            key=lambda r: r[0],
        )
    rows = [
        ("bare webdataset + `decode('pil')` (full JPEG decode)", full, ""),
        ("bare webdataset + the loader's image decode (draft + resize to 224)", same, ""),
        (
            "unimm training loader (decode + resize + chat render + BPE + collate)",
            ours[0],
            f"{ours[1]:,.0f} tokens/s",
        ),
    ]
    body = [
        "## Training data loader (`benchmarks/bench_loader.py`)",
        "",
        f"{n:,} samples (80 real COCO JPEGs with their captions as dialogues, repeated) in 8 shards; "
        f"{args.workers} DataLoader workers, batch {args.batch_size}, 224 px, 256 visual tokens, max_len 512, "
        f"SmolLM2 BPE; best of {args.repeats}. Machine: {machine_line()}.",
        "",
        "| pipeline | samples/s | note |",
        "| --- | ---: | --- |",
        *[f"| {name} | {rate:,.0f} | {note} |" for name, rate, note in rows],
        "",
        f"Loader / bare full decode: **{ours[0] / full:.0%}** (target >= 80%). "
        f"Loader / bare with the same image decode: **{ours[0] / same:.0%}**. The gap between the first two "
        "rows is the 224 px bicubic resize the vision encoder needs; the gap between the last two is chat "
        "rendering, BPE, collation and moving batches from the workers.",
    ]
    update_section("loader", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
