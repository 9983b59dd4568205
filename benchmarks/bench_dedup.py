"""Near-duplicate dedup at UniMM-Chat scale: unimm's vectorised MinHash LSH vs rensa and datasketch.

A seeded synthetic corpus (117k dialogues, ~1.1M turns, Zipf vocabulary) with a known share of
planted near duplicates (a copy with ~3% of its words replaced). Every implementation runs on the
full corpus in its own subprocess (wall time and peak RSS of the process tree via _common.measure),
the three alternating, `--runs` times each; the table gives medians.

The anchors get what unimm gets: the same texts (already normalised: lower-case words separated by
single spaces and newlines, so `text.split()` gives the words unimm's \\w+ tokeniser finds), the
same word 3-gram shingles (the words joined by spaces), num_perm, bands x rows and seed, and their
LSH candidates are verified with their own Jaccard estimate at the same threshold:
- rensa (Rust): `RMinHash.from_token_sets` + `RMinHashLSH` (`insert_many`, `query_all`), as its
  README and docstrings show; the shingle lists are built in Python and streamed to it.
- datasketch: `MinHash.bulk` + `MinHashLSH` with params=(bands, rows), full set (no subsample).

Recall = planted pairs among the verified pairs. Precision = verified pairs whose true Jaccard of
the shingle sets (exact, in Python) reaches the threshold, over all verified pairs (a seeded sample
of 20,000 if there are more): an unplanted pair is a false positive only if it is not a near
duplicate in fact.

    python benchmarks/bench_dedup.py [--quick] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import machine_line, measure, record, update_section  # noqa: E402

NUM_PERM, BANDS, SHINGLE, THRESHOLD = 128, 32, 3, 0.7
SEED = 1
IMPLS = ("unimm", "rensa", "datasketch")
LABELS = {
    "unimm": "unimm (numpy: byte-level tokeniser, one-permutation hashing in rounds, one-sort LSH)",
    "rensa": "rensa (Rust R-MinHash + RMinHashLSH)",
    "datasketch": "datasketch (MinHash.bulk + MinHashLSH)",
}


def make_corpus(n_docs: int, seed: int = 0, dup_frac: float = 0.05) -> tuple[list[str], np.ndarray, int]:
    """(dialogue texts, planted pairs [m, 2] as (original, copy), turns). Dialogues have 4-5
    question/answer pairs (8-10 turns, ~9.4 on average: 117k dialogues ~ 1.1M turns)."""
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20000)])
    p = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    p /= p.sum()
    n_dup = int(n_docs * dup_frac)
    n_orig = n_docs - n_dup
    pairs_per_doc = rng.choice([4, 5], size=n_orig, p=[0.3, 0.7])
    n_turns = int(pairs_per_doc.sum()) * 2
    # questions 8-12 words, answers 10-30 words; all words drawn in one call
    qlen = rng.integers(8, 13, size=n_turns)
    alen = rng.integers(10, 31, size=n_turns)
    tlen = np.where(np.arange(n_turns) % 2 == 0, qlen, alen)
    words = vocab[rng.choice(len(vocab), int(tlen.sum()), p=p)].tolist()
    ends = np.cumsum(tlen).tolist()
    starts = [0, *ends[:-1]]
    lines = [" ".join(words[a:b]) for a, b in zip(starts, ends, strict=True)]
    texts: list[str] = []
    t = 0
    for k in pairs_per_doc.tolist():
        texts.append("\n".join(lines[t : t + 2 * k]))
        t += 2 * k
    turns = n_turns
    originals = rng.choice(n_orig, size=n_dup, replace=False)
    planted = []
    for o in originals:
        w = texts[o].split(" ")
        for i in rng.choice(len(w), max(1, len(w) * 3 // 100), replace=False):
            w[i] = vocab[rng.integers(len(vocab))]
        planted.append((int(o), len(texts)))
        texts.append(" ".join(w))
        turns += texts[o].count("\n") + 1
    return texts, np.array(planted, dtype=np.int64), turns


def shingles(text: str) -> list[str]:
    """Word 3-grams of a normalised text, as unimm forms them (a text of 1-2 words is one shingle)."""
    w = text.split()
    if len(w) < SHINGLE:
        return [" ".join(w)] if w else []
    return [" ".join(g) for g in zip(*(w[k:] for k in range(SHINGLE)), strict=False)]


def _shingle_stream(texts: list[str]) -> Iterator[list[str]]:
    return (shingles(t) for t in texts)


def run_unimm(texts: list[str]) -> set[tuple[int, int]]:
    from unimm.dedup.minhash import near_duplicate_roots

    _, pairs, _ = near_duplicate_roots(
        texts, num_perm=NUM_PERM, bands=BANDS, shingle=SHINGLE, threshold=THRESHOLD, seed=SEED
    )
    return set(zip(pairs[:, 0].tolist(), pairs[:, 1].tolist(), strict=True))


def run_rensa(texts: list[str]) -> set[tuple[int, int]]:
    from rensa import RMinHash, RMinHashLSH

    mh = RMinHash.from_token_sets(_shingle_stream(texts), num_perm=NUM_PERM, seed=SEED)
    lsh = RMinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, num_bands=BANDS)
    lsh.insert_many(mh)
    found = set()
    for i, cands in enumerate(lsh.query_all(mh)):
        for j in cands:
            if j > i and mh[i].jaccard(mh[j]) >= THRESHOLD:
                found.add((i, j))
    return found


def run_datasketch(texts: list[str]) -> set[tuple[int, int]]:
    from datasketch import MinHash, MinHashLSH

    mh = MinHash.bulk(
        ([s.encode() for s in sh] for sh in _shingle_stream(texts)), num_perm=NUM_PERM, seed=SEED
    )
    lsh = MinHashLSH(num_perm=NUM_PERM, params=(BANDS, NUM_PERM // BANDS))
    with lsh.insertion_session() as session:
        for i, m in enumerate(mh):
            session.insert(i, m)
    found = set()
    for i, m in enumerate(mh):
        for j in lsh.query(m):
            if j > i and m.jaccard(mh[j]) >= THRESHOLD:
                found.add((i, j))
    return found


def true_jaccard(texts: list[str], pairs: list[tuple[int, int]]) -> np.ndarray:
    out = np.empty(len(pairs))
    for k, (i, j) in enumerate(pairs):
        a, b = set(shingles(texts[i])), set(shingles(texts[j]))
        out[k] = len(a & b) / max(1, len(a | b))
    return out


def _status_mb(field: str) -> float | None:
    """A memory figure of this process from /proc/self/status (Linux), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS count of this process (Linux), so that VmHWM measures what
    follows rather than the corpus generation."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def worker(impl: str, n: int, seed: int) -> dict:
    texts, planted, turns = make_corpus(n, seed)
    run = {"unimm": run_unimm, "rensa": run_rensa, "datasketch": run_datasketch}[impl]
    # imports are not timed (unimm.dedup pulls in polars and pydantic with the pipeline code)
    __import__({"unimm": "unimm.dedup.minhash", "rensa": "rensa", "datasketch": "datasketch"}[impl])
    rss_before = _status_mb("VmRSS")
    reset = _reset_peak_rss()
    t0, c0 = time.perf_counter(), time.process_time()
    found = run(texts)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = _status_mb("VmHWM") if reset else None
    planted_set = set(zip(planted[:, 0].tolist(), planted[:, 1].tolist(), strict=True))
    checked = sorted(found)
    if len(checked) > 20_000:
        pick = np.random.default_rng(seed).choice(len(checked), 20_000, replace=False)
        checked = [checked[k] for k in sorted(pick)]
    tj = true_jaccard(texts, checked)
    return {
        "impl": impl,
        "docs": len(texts),
        "turns": turns,
        "planted": len(planted_set),
        "seconds": dt,
        "cpu_seconds": cpu,
        "found": len(found),
        "recall": len(found & planted_set) / max(1, len(planted_set)),
        "unplanted": len(found - planted_set),
        "precision": float((tj >= THRESHOLD).mean()) if len(tj) else 1.0,
        "precision_checked": len(checked),
        "min_true_jaccard": float(tj.min()) if len(tj) else None,
        "rss_before_mb": rss_before,
        "dedup_peak_rss_mb": peak,
    }


def run_worker(impl: str, n: int, seed: int) -> dict:
    m = measure([sys.executable, __file__, "--worker", impl, "--n", str(n), "--seed", str(seed)])
    if m.returncode != 0:
        raise SystemExit(f"{impl} worker failed: {m.stdout[-2000:]}")
    out = json.loads(m.stdout.strip().splitlines()[-1])
    out["wall"], out["rss"] = m.wall_s, m.peak_rss_mb
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10k dialogues")
    ap.add_argument("--worker", choices=IMPLS)
    ap.add_argument("--n", type=int, default=117_000)
    ap.add_argument("--runs", type=int, default=3, help="runs of each implementation, alternating")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker, a.n, a.seed)))
        return
    n = 10_000 if a.quick else a.n
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {k: [] for k in IMPLS}
    for r in range(a.runs):
        for impl in IMPLS:
            res = run_worker(impl, n, a.seed)
            runs[impl].append(res)
            print(
                f"run {r + 1} {impl:10s} {res['seconds']:7.2f} s  recall {res['recall']:.3f}  "
                f"precision {res['precision']:.3f}  cpu {res['cpu_seconds']:.2f} s  "
                f"dedup peak {res['dedup_peak_rss_mb'] or 0:,.0f} MB  wall {res['wall']:.1f} s",
                flush=True,
            )
    load_after = os.getloadavg()

    def med(impl: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[impl])

    def med_mb(impl: str, key: str) -> str:
        vals = [r[key] for r in runs[impl] if r[key] is not None]
        return f"{statistics.median(vals):,.0f}" if vals else "n/a"

    base = runs["unimm"][0]
    rensa_s = med("rensa", "seconds")
    rows = []
    for impl in IMPLS:
        rs = runs[impl]
        secs = [r["seconds"] for r in rs]
        recall = sorted({f"{r['recall']:.3f}" for r in rs})
        precision = sorted({f"{r['precision']:.3f}" for r in rs})
        rows.append(
            f"| {LABELS[impl]} | {med(impl, 'seconds'):.2f} | {min(secs):.2f}-{max(secs):.2f} "
            f"| {rensa_s / med(impl, 'seconds'):.2f}x | {' / '.join(recall)} | {' / '.join(precision)} "
            f"| {rs[0]['found']:,} | {rs[0]['unplanted']:,} | {med(impl, 'cpu_seconds'):.2f} "
            f"| {med_mb(impl, 'rss_before_mb')} | {med_mb(impl, 'dedup_peak_rss_mb')} "
            f"| {med(impl, 'wall'):.1f} | {med(impl, 'rss'):,.0f} |"
        )
    speedup = rensa_s / med("unimm", "seconds")
    body = f"""## Near-duplicate dedup (MinHash LSH)

Machine: {machine_line()}. Load average {load_before[0]:.1f} before and {load_after[0]:.1f} after the run
(the benchmark keeps about one core busy: more means other jobs shared the machine).
Synthetic corpus (seed {a.seed}): {base["docs"]:,} dialogues, {base["turns"]:,} turns, {base["planted"]:,} planted
near duplicates (~3% of words replaced). num_perm {NUM_PERM}, {BANDS} bands x {NUM_PERM // BANDS} rows, word
{SHINGLE}-gram shingles of the same normalised text, candidates verified at estimated Jaccard >= {THRESHOLD}.
All three on the full set, each in its own process, {a.runs} runs each alternating; medians.
Dedup time = texts in, verified pairs out (unimm also joins them into clusters), wall clock; CPU
= CPU seconds of the process over the same span (all its threads). RSS before = the process
holding the corpus and the imported library; peak RSS in dedup = the kernel's high-water mark
restarted just before the dedup call. Process wall and process-tree peak RSS (sampled by the
parent) include generating the corpus, whose peak (~1.4 GB of Python strings) dominates them.

| implementation | dedup time (s) | range (s) | vs rensa | recall of planted pairs | precision | pairs found | unplanted | CPU (s) | RSS before (MB) | peak RSS in dedup (MB) | process wall (s) | process peak RSS (MB) |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

unimm is **{speedup:.1f}x** faster than rensa (target >= 2x) at recall {runs["unimm"][0]["recall"]:.3f} vs
{runs["rensa"][0]["recall"]:.3f}. Precision: share of the pairs found whose exact Jaccard of the shingle
sets is >= {THRESHOLD}. rensa and datasketch receive their shingle lists from Python (built from
`text.split()`, streamed); that Python work is part of their time, as it is of any caller's.
{"(--quick run: small corpus.)" if a.quick else ""}
"""
    print(body)
    update_section("dedup", body)
    record(
        "dedup",
        unimm_s=med("unimm", "seconds"),
        rensa_s=rensa_s,
        datasketch_s=med("datasketch", "seconds"),
        unimm_recall=runs["unimm"][0]["recall"],
        rensa_recall=runs["rensa"][0]["recall"],
        datasketch_recall=runs["datasketch"][0]["recall"],
        ratio=speedup,
    )


if __name__ == "__main__":
    main()
