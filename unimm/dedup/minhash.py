"""Vectorised MinHash + LSH over a whole corpus with numpy.

All words of all documents are tokenised and hashed in one polars pass; word n-gram shingles are
combined from consecutive token hashes in numpy. Signatures come in two flavours:
- `kperm` (classic MinHash): num_perm multiply-shift hash functions per shingle, minima by
  `np.minimum.reduceat` over each document's shingle segment, in cache-sized chunks;
- `oph` (default; one-permutation hashing with rotation densification, Li et al. 2012,
  Shrivastava & Li 2014): each shingle is hashed once into one of num_perm bins and each bin keeps
  its minimum (`np.minimum.at` over doc x bin); an empty bin borrows the next non-empty bin's value
  shifted by the distance. Same signature length and the same Jaccard estimator (share of equal
  slots), at 1/num_perm of the hashing work.
Band keys are grouped by sorting, candidate pairs verified by the signature agreement (estimated
Jaccard) and joined into clusters by a vectorised union-find whose root is the smallest index.
"""

from __future__ import annotations

import numpy as np
import polars as pl

_MIX = np.uint64(0x9E3779B97F4A7C15)
_FNV = np.uint64(0x100000001B3)
_MAX32 = np.uint64(0xFFFFFFFF)
_TOKEN_SEED = 42


def token_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 hash of every word of every text in order, words per text). Text is lower-cased
    and split on \\w+ runs."""
    s = pl.Series("t", texts, dtype=pl.Utf8).str.to_lowercase().str.extract_all(r"\w+")
    lens = s.list.len().fill_null(0).to_numpy().astype(np.int64)
    flat = s.explode().drop_nulls()
    return flat.hash(seed=_TOKEN_SEED).to_numpy().astype(np.uint64), lens


def shingle_hashes(h: np.ndarray, lens: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(32-bit shingle hashes, their doc index (sorted), shingles per doc) for word n-grams; a doc
    shorter than n words (but not empty) becomes one shingle of all its words."""
    doc = np.repeat(np.arange(len(lens)), lens)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]]) if len(lens) else np.zeros(0, np.int64)
    with np.errstate(over="ignore"):
        if len(h) >= n:
            m = len(h) - n + 1
            valid = doc[:m] == doc[n - 1 :]
            sh = h[:m].copy()
            for j in range(1, n):
                sh = sh * _MIX + h[j : j + m]
            sh, sdoc = sh[valid], doc[:m][valid]
        else:
            sh, sdoc = np.zeros(0, np.uint64), np.zeros(0, np.int64)
        short = np.flatnonzero((lens > 0) & (lens < n))
        if len(short):  # rare: pad with one whole-document shingle each
            extra = np.empty(len(short), np.uint64)
            for k, d in enumerate(short):
                v = np.uint64(0)
                for x in h[starts[d] : starts[d] + lens[d]]:
                    v = v * _MIX + x
                extra[k] = v
            sh = np.concatenate([sh, extra])
            sdoc = np.concatenate([sdoc, short])
            order = np.argsort(sdoc, kind="stable")
            sh, sdoc = sh[order], sdoc[order]
    sh32 = ((sh >> np.uint64(32)) ^ sh) & _MAX32
    return sh32, sdoc, np.bincount(sdoc, minlength=len(lens)).astype(np.int64)


def oph_signatures(sh: np.ndarray, sdoc: np.ndarray, n: int, num_perm: int, seed: int) -> np.ndarray:
    """One-permutation MinHash with rotation densification: uint32 [n_docs, num_perm]; rows of
    documents without shingles stay all-max."""
    rng = np.random.default_rng(seed)
    a1, a2 = rng.integers(1, 2**63, size=2, dtype=np.uint64) | np.uint64(1)
    b1, b2 = rng.integers(0, 2**63, size=2, dtype=np.uint64)
    x = sh.astype(np.uint64)
    with np.errstate(over="ignore"):
        bins = (((x * a1 + b1) >> np.uint64(32)) * np.uint64(num_perm)) >> np.uint64(32)
        vals = ((x * a2 + b2) >> np.uint64(32)).astype(np.uint32)
    flat = np.full(n * num_perm, 0xFFFFFFFF, dtype=np.uint32)
    key = sdoc * num_perm
    key += bins.astype(np.int64)
    np.minimum.at(flat, key, vals)
    sig = flat.reshape(n, num_perm)
    empty = sig == 0xFFFFFFFF  # a genuine value of 2^32-1 is treated as empty: harmless (1 in 4e9)
    if empty.any():
        # next non-empty bin to the right (circularly), via a reversed running minimum of positions
        pos = np.where(~empty, np.arange(num_perm), 2 * num_perm)
        pos2 = np.concatenate([pos, np.where(pos < 2 * num_perm, pos + num_perm, 2 * num_perm)], axis=1)
        nxt = np.minimum.accumulate(pos2[:, ::-1], axis=1)[:, ::-1][:, :num_perm]
        rows = np.flatnonzero(~empty.all(axis=1))
        nx = nxt[rows]
        dist = (nx - np.arange(num_perm)).astype(np.uint32)
        src = sig[rows[:, None], nx % num_perm]
        with np.errstate(over="ignore"):
            dense = src + dist * np.uint32(0x9E3779B1)
        sig[rows] = np.where(empty[rows], dense, sig[rows])
    return sig


def signatures(
    texts: list[str],
    num_perm: int = 128,
    shingle: int = 3,
    seed: int = 1,
    chunk_elements: int = 1 << 16,
    method: str = "oph",
) -> tuple[np.ndarray, np.ndarray]:
    """(MinHash signatures uint32 [n_docs, num_perm], has_shingles bool [n_docs]).

    `kperm`: permutation p of shingle x is the multiply-shift hash ((a_p * x + b_p) mod 2^64) >> 32
    with odd a_p. `oph`: see oph_signatures. Empty documents get an all-max signature and
    has_shingles False.
    """
    h, lens = token_hashes(texts)
    sh, sdoc, counts = shingle_hashes(h, lens, shingle)
    n = len(texts)
    if method == "oph":
        return oph_signatures(sh, sdoc, n, num_perm, seed), counts > 0
    if method != "kperm":
        raise ValueError(f"unknown MinHash method {method!r}")
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    sig = np.full((n, num_perm), 0xFFFFFFFF, dtype=np.uint32)
    has = counts > 0
    docs = np.flatnonzero(has)
    if not len(docs):
        return sig, has
    seg_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    per_chunk = max(1, chunk_elements // num_perm)
    ends = seg_start[docs] + counts[docs]
    i = 0
    with np.errstate(over="ignore"):
        while i < len(docs):
            # take whole documents until the chunk holds per_chunk shingles (at least one doc)
            lo = seg_start[docs[i]]
            j = int(np.searchsorted(ends, lo + per_chunk, side="right"))
            j = max(j, i + 1)
            chunk_docs = docs[i:j]
            hi = seg_start[chunk_docs[-1]] + counts[chunk_docs[-1]]
            x = sh[lo:hi]
            hv = np.multiply.outer(x, a)
            hv += b
            hv >>= np.uint64(32)
            sig[chunk_docs] = np.minimum.reduceat(hv, seg_start[chunk_docs] - lo, axis=0).astype(np.uint32)
            i = j
    return sig, has


def band_keys(sig: np.ndarray, bands: int) -> np.ndarray:
    """uint64 key per (band, doc): shape [bands, n_docs]."""
    n, p = sig.shape
    r = p // bands
    keys = np.empty((bands, n), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for bi in range(bands):
            k = np.full(n, np.uint64(bi) * _MIX + np.uint64(0xCBF29CE484222325), dtype=np.uint64)
            for c in sig[:, bi * r : (bi + 1) * r].T:
                k = (k ^ c.astype(np.uint64)) * _FNV
            keys[bi] = k
    return keys


def candidate_pairs(
    sig: np.ndarray, bands: int, active: np.ndarray | None = None, window: int = 64
) -> np.ndarray:
    """Distinct (i, j) index pairs, i < j, sharing at least one band key; int64 [m, 2].

    Members of a bucket are sorted by index; each pairs with the next `window` members of the
    same bucket (all pairs for buckets up to window + 1)."""
    n = sig.shape[0]
    idx = np.flatnonzero(active) if active is not None else np.arange(n)
    if len(idx) < 2:
        return np.zeros((0, 2), np.int64)
    keys = band_keys(sig[idx], bands)
    found = []
    for k in keys:
        order = np.lexsort((idx, k))  # by key, then index: buckets in id order
        ks, members = k[order], idx[order]
        for d in range(1, window + 1):
            same = ks[:-d] == ks[d:]
            if not same.any():
                break
            found.append(members[:-d][same] * n + members[d:][same])
    if not found:
        return np.zeros((0, 2), np.int64)
    code = np.unique(np.concatenate(found))
    return np.stack([code // n, code % n], axis=1)


def estimated_jaccard(sig: np.ndarray, pairs: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """Share of equal signature slots per pair (the MinHash estimate of Jaccard similarity)."""
    out = np.empty(len(pairs), dtype=np.float64)
    for s in range(0, len(pairs), chunk):
        p = pairs[s : s + chunk]
        out[s : s + chunk] = (sig[p[:, 0]] == sig[p[:, 1]]).mean(axis=1)
    return out


def connected_roots(n: int, pairs: np.ndarray) -> np.ndarray:
    """Root of each node's component = the smallest index in it (vectorised union-find)."""
    parent = np.arange(n, dtype=np.int64)
    if not len(pairs):
        return parent
    i, j = pairs[:, 0], pairs[:, 1]
    while True:
        ri, rj = parent[i], parent[j]
        if np.array_equal(ri, rj):
            return parent
        m = np.minimum(ri, rj)
        np.minimum.at(parent, ri, m)
        np.minimum.at(parent, rj, m)
        while True:  # pointer jumping until every node points at a root
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt


def near_duplicate_roots(
    texts: list[str],
    *,
    num_perm: int = 128,
    bands: int = 32,
    shingle: int = 3,
    threshold: float = 0.7,
    seed: int = 1,
    window: int = 64,
    chunk_elements: int = 1 << 16,
    method: str = "oph",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(root index per text, verified pairs [m, 2], their estimated Jaccard). A text whose root is
    itself is kept; the others are near duplicates of their root (the smallest index of the cluster)."""
    sig, has = signatures(texts, num_perm, shingle, seed, chunk_elements, method)
    return roots_from_signatures(sig, has, bands=bands, threshold=threshold, window=window)


def roots_from_signatures(
    sig: np.ndarray, has: np.ndarray, *, bands: int, threshold: float, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """near_duplicate_roots from signatures already computed (per partition, then joined)."""
    pairs = candidate_pairs(sig, bands, has, window)
    sims = estimated_jaccard(sig, pairs)
    ok = sims >= threshold
    return connected_roots(len(sig), pairs[ok]), pairs[ok], sims[ok]
