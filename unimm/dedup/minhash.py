"""Vectorised MinHash + LSH over a whole corpus with numpy.

Documents are processed in blocks of about a megabyte of text, so that the arrays of a block stay
in the CPU cache and numpy's temporaries reuse the same memory instead of faulting in fresh pages.
A block is one byte buffer: ASCII letters are lower-cased and every byte outside \\w becomes a
separator in place, words start and end where the word/separator mask changes, and each word is
hashed from its bytes, read eight at a time (unaligned 64-bit gathers; a rare non-ASCII document is
first rewritten to its lower-cased \\w+ words). Word n-gram shingles are combined from consecutive
word hashes. A document's signature depends only on its own text, never on its block, its
neighbours or its partition. Signatures come in two flavours:
- `oph` (default): one-permutation hashing (Li et al. 2012) in rounds, as in fast similarity
  sketching (Dahlgaard, Knudsen & Thorup 2017): in round r every shingle goes to one of num_perm
  bins with a value, and a bin keeps the minimum of the first round that reaches it
  (`np.minimum.at` over doc x bin, cache-resident); rounds go on, for the documents with an empty
  bin only, up to _ROUNDS. Bins still empty then (documents of a few shingles) are densified
  optimally (Shrivastava 2017): bin j copies bin probe(j, t) for the first t that is non-empty,
  the probe table being the same for every document. Same signature length and estimator (share
  of equal slots) as classic MinHash, the estimate as tight for short documents, at a few hash
  evaluations per shingle instead of num_perm;
- `kperm` (classic MinHash): num_perm multiply-shift hash functions per shingle, minima by
  `np.minimum.reduceat` over each document's shingle segment, in cache-sized chunks.
Band keys of all bands are sorted in one go, candidate pairs verified by the signature agreement
(estimated Jaccard) and joined into clusters by a vectorised union-find whose root is the smallest
index.
"""

from __future__ import annotations

import functools
import re
import sys

import numpy as np

_MIX = np.uint64(0x9E3779B97F4A7C15)
_FNV = np.uint64(0x100000001B3)
_EMPTY = np.uint32(0xFFFFFFFF)
_FMIX1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_TOKEN_SEED = np.uint64(42)
_WORD = re.compile(r"\w+")
# _MASKS[k] keeps the first k bytes of a little-endian 64-bit load (k = 0..8)
_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], dtype=np.uint64)
_BLOCK_CHARS = 1 << 20  # text per block: its arrays stay in cache
_ROUNDS = 12  # oph rounds at most; a document leaves them once every bin is filled
_PROBES = 16  # densification probes before the last resort: the next non-empty bin to the right


def _fmix(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place."""
    t = np.empty_like(x)
    for c in (_FMIX1, _FMIX2, None):
        np.right_shift(x, np.uint64(33), out=t)
        x ^= t
        if c is not None:
            x *= c
    return x


def _blocks(texts: list[str]) -> list[tuple[int, int]]:
    """[start, end) ranges of consecutive texts holding about _BLOCK_CHARS characters each."""
    if not texts:
        return []
    ends = np.cumsum(np.fromiter(map(len, texts), np.int64, len(texts)) + 1)
    cuts = np.searchsorted(ends, np.arange(_BLOCK_CHARS, int(ends[-1]), _BLOCK_CHARS), side="right")
    bounds = np.unique(np.concatenate([[0], cuts, [len(texts)]]))
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def token_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 hash of every word of every text in order, words per text). Text is lower-cased
    and split on \\w+ runs; a word's hash depends only on the word."""
    parts = [_token_block(texts[a:b]) for a, b in _blocks(texts)]
    if not parts:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _token_block(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """token_hashes of one block (about a megabyte of text)."""
    joined = "\n".join(texts)
    if joined.isascii():
        nbytes = np.fromiter(map(len, texts), np.int64, len(texts))
    else:  # rare: documents outside ASCII become their lower-cased \w+ words, space-separated
        texts = [t if t.isascii() else " ".join(_WORD.findall(t.lower())) for t in texts]
        joined = "\n".join(texts)
        nbytes = np.fromiter((len(t.encode()) for t in texts), np.int64, len(texts))
    raw = np.frombuffer(joined.encode(), np.uint8)
    # one separator in front, one behind and 8 bytes of padding for the last 64-bit load; a load
    # reads past the end of its word, _MASKS keeps the word's bytes
    buf = np.zeros(len(raw) + 10, np.uint8)
    buf[1 : len(raw) + 1] = raw
    buf |= ((buf - np.uint8(65)) < 26).view(np.uint8) << np.uint8(5)  # A-Z -> a-z
    word = (buf - np.uint8(97)) < 26
    word |= (buf - np.uint8(48)) < 10
    word |= buf == 95
    word |= buf >= 128  # only inside the \w+ words of a rewritten document
    edges = np.flatnonzero(word[1:] != word[:-1])
    edges += 1
    starts, ends = edges[0::2], edges[1::2]
    lens = ends - starts
    # words per text: text i spans [first[i], first[i] + nbytes[i]) of buf
    first = np.empty(len(texts) + 1, np.int64)
    first[0] = 1
    np.cumsum(nbytes + 1, out=first[1:])
    first[1:] += 1
    counts = np.diff(np.searchsorted(starts, first))
    load = np.ndarray((len(buf) - 7,), dtype="<u8", buffer=buf, offset=0, strides=(1,))
    h = load[starts]
    h &= _MASKS[np.minimum(lens, 8)]
    long = np.flatnonzero(lens > 8)
    k = 8
    while len(long):  # words longer than 8 bytes: the next 8 bytes, polynomially
        rest = lens[long] - k
        g = load[starts[long] + k] & _MASKS[np.minimum(rest, 8)]
        h[long] = h[long] * _MIX + g
        long = long[rest > 8]
        k += 8
    h ^= _TOKEN_SEED
    return _fmix(h), counts


def _ngrams(h: np.ndarray, n: int) -> np.ndarray:
    """64-bit hash of the n words from every position (len(h) - n + 1 of them), crossing documents."""
    m = len(h) - n + 1
    if m <= 0:
        return np.zeros(0, np.uint64)
    with np.errstate(over="ignore"):
        sh = h[:m] * _MIX
        for j in range(1, n):
            sh += h[j : j + m]
            if j < n - 1:
                sh *= _MIX
    return sh


def _crossing(lens: np.ndarray, n: int, m: int) -> np.ndarray:
    """Positions (of the m n-gram positions) whose n-gram crosses the end of a document."""
    bad = (np.cumsum(lens)[:, None] - np.arange(1, n)).ravel()
    return bad[(bad >= 0) & (bad < m)]


def _short(h: np.ndarray, lens: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(documents of 1 to n-1 words, the hash of all their words as one n-gram)."""
    short = np.flatnonzero((lens > 0) & (lens < n))
    starts = np.cumsum(lens) - lens
    extra = h[starts[short]]
    with np.errstate(over="ignore"):
        extra = extra * _MIX  # as the first word of an n-gram
        for j in range(1, n - 1):
            more = lens[short] > j
            extra[more] += h[starts[short[more]] + j]
            extra[more] *= _MIX
    return short, extra


def shingle_hashes(h: np.ndarray, lens: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(64-bit shingle hashes, their doc index (sorted), shingles per doc) for word n-grams; a doc
    shorter than n words (but not empty) becomes one shingle of all its words."""
    sh = _ngrams(h, n)
    if n > 1 and len(sh):
        valid = np.ones(len(sh), bool)
        valid[_crossing(lens, n, len(sh))] = False
        sh = sh[valid]
    counts = np.maximum(lens - (n - 1), 0)
    short, extra = _short(h, lens, n)
    if len(short):  # rare: inserted where the document's shingles would be
        sh = np.insert(sh, (np.cumsum(counts) - counts)[short], extra)
        counts[short] = 1
    return sh, np.repeat(np.arange(len(lens)), counts), counts


@functools.lru_cache(maxsize=16)
def _oph_params(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a [_ROUNDS], b [_ROUNDS]) of the shingle hash of each round and the densification probes
    as flat-index shifts int64 [_PROBES, num_perm]: probe t of bin j is bin j + shift[t, j]."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=_ROUNDS, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=_ROUNDS, dtype=np.uint64)
    shift = rng.integers(0, num_perm, size=(_PROBES, num_perm)) - np.arange(num_perm)
    for x in (a, b, shift):
        x.flags.writeable = False
    return a, b, shift


def _low32(v: np.ndarray) -> np.ndarray:
    """The low 32 bits of uint64 values below 2^32, as a uint32 view (no copy)."""
    return v.view(np.uint32)[0 if sys.byteorder == "little" else 1 :: 2]


def _oph_sketch(x: np.ndarray, key: np.ndarray, slots: int, num_perm: int, seed: int) -> np.ndarray:
    """Minimum per slot (key + bin) of the values of shingle hashes x over up to _ROUNDS rounds: a
    slot takes round r only if rounds before r left it empty; a document leaves the rounds once it
    has no empty slot. uint32 [slots]; slots still empty are max.

    Round r gives x the value v = ((a_r x + b_r) mod 2^64) >> 32 and the bin (v * num_perm) >> 32, so
    a bin's values share their leading bits: a slot borrowed from another bin never equals one of
    its own."""
    a, b, _ = _oph_params(num_perm, seed)
    pow2 = num_perm & (num_perm - 1) == 0
    sig = np.full(slots, _EMPTY, dtype=np.uint32)
    v = np.empty_like(x)
    k = np.empty(len(x), np.int64)
    doc = None
    for r in range(_ROUNDS):
        with np.errstate(over="ignore"):
            np.multiply(x, a[r], out=v)
            v += b[r]
            v >>= np.uint64(32)
            if pow2:
                np.right_shift(v, np.uint64(32 - (num_perm.bit_length() - 1)), out=k.view(np.uint64))
            else:
                np.multiply(v, np.uint64(num_perm), out=k.view(np.uint64))
                np.right_shift(k.view(np.uint64), np.uint64(32), out=k.view(np.uint64))
        k += key
        if r == 0:
            np.minimum.at(sig, k, _low32(v))
        else:  # only the shingles that fall into a slot still empty
            hit = np.flatnonzero(sig[k] == _EMPTY)
            np.minimum.at(sig, k[hit], _low32(v)[hit])
        if r == _ROUNDS - 1:
            break
        open_docs = (sig.reshape(-1, num_perm) == _EMPTY).any(axis=1)
        n_open = np.count_nonzero(open_docs)
        if not n_open:
            break
        if n_open < len(open_docs) // 2:  # the next rounds only for the documents with an empty slot
            if doc is None:
                doc = key // num_perm
            live = open_docs[doc]
            x, key, doc = x[live], key[live], doc[live]
            v, k = v[: len(x)], k[: len(x)]
    return sig


def oph_signatures(sh: np.ndarray, sdoc: np.ndarray, n: int, num_perm: int, seed: int) -> np.ndarray:
    """One-permutation MinHash with _ROUNDS rounds and optimal densification: uint32
    [n_docs, num_perm]; rows of documents without shingles stay all-max. See _oph_sketch, _densify."""
    sig = _oph_sketch(sh.astype(np.uint64), sdoc * num_perm, n * num_perm, num_perm, seed)
    _densify(sig, num_perm, _oph_params(num_perm, seed)[2])
    return sig.reshape(n, num_perm)


def _oph_block(h: np.ndarray, lens: np.ndarray, shingle: int, num_perm: int, seed: int) -> np.ndarray:
    """oph_signatures(*shingle_hashes(h, lens, shingle), ...) of one block without compacting the
    shingles: an n-gram crossing a document's end is sent to a spare row instead."""
    n = len(lens)
    x = _ngrams(h, shingle)
    key = np.repeat(np.arange(0, n * num_perm, num_perm), lens)[: len(x)]
    if shingle > 1:
        key[_crossing(lens, shingle, len(x))] = n * num_perm
    short, extra = _short(h, lens, shingle)
    if len(short):
        x, key = np.concatenate([x, extra]), np.concatenate([key, short * num_perm])
    sig = _oph_sketch(x, key, (n + 1) * num_perm, num_perm, seed)[: n * num_perm]
    _densify(sig, num_perm, _oph_params(num_perm, seed)[2])
    return sig.reshape(n, num_perm)


def _densify(flat: np.ndarray, num_perm: int, shift: np.ndarray) -> None:
    """Fill the empty bins of the rows of `flat` ([n * num_perm]) that have a non-empty one, in place:
    empty bin j takes bin j + shift[t, j] for the first t that is non-empty (read before any filling);
    what is still empty after all probes (documents of a few shingles) takes the next non-empty
    bin to its right, circularly."""
    empty = flat == _EMPTY  # a genuine value of 2^32-1 is treated as empty: harmless (1 in 4e9)
    em = np.flatnonzero(empty)
    if not len(em):
        return
    col = em & (num_perm - 1) if num_perm & (num_perm - 1) == 0 else em % num_perm
    out = flat[em + shift[0][col]]
    todo = np.flatnonzero(out == _EMPTY)
    for t in range(1, len(shift)):
        if not len(todo):
            break
        val = flat[em[todo] + shift[t][col[todo]]]
        got = val != _EMPTY
        out[todo[got]] = val[got]
        todo = todo[~got]
    if len(todo):
        rows, inv = np.unique(em[todo] // num_perm, return_inverse=True)
        nonempty = ~empty.reshape(-1, num_perm)[rows]
        pos = np.where(nonempty, np.arange(num_perm), 2 * num_perm)
        pos = np.minimum.accumulate(np.concatenate([pos, pos + num_perm], axis=1)[:, ::-1], axis=1)[:, ::-1]
        nxt = pos[inv, col[todo]]
        ok = nxt < 2 * num_perm  # rows without any shingle stay empty
        out[todo[ok]] = flat[em[todo[ok]] - col[todo[ok]] + nxt[ok] % num_perm]
    flat[em] = out


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
    has_shingles False. Texts are hashed in blocks: each row depends only on its own text.
    """
    if method not in ("oph", "kperm"):
        raise ValueError(f"unknown MinHash method {method!r}")
    n = len(texts)
    sig = np.empty((n, num_perm), dtype=np.uint32)
    has = np.zeros(n, bool)
    for lo, hi in _blocks(texts):
        h, lens = _token_block(texts[lo:hi])
        has[lo:hi] = lens > 0
        if method == "oph":
            sig[lo:hi] = _oph_block(h, lens, shingle, num_perm, seed)
        else:
            sh, _, counts = shingle_hashes(h, lens, shingle)
            sig[lo:hi] = _kperm_signatures(sh, counts, num_perm, seed, chunk_elements)
    return sig, has


def _kperm_signatures(
    sh: np.ndarray, counts: np.ndarray, num_perm: int, seed: int, chunk_elements: int
) -> np.ndarray:
    """Classic MinHash of the shingles of consecutive documents (`counts` each)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    sig = np.full((len(counts), num_perm), _EMPTY, dtype=np.uint32)
    docs = np.flatnonzero(counts > 0)
    if not len(docs):
        return sig
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
    return sig


def _band_hashes(sig: np.ndarray, bands: int) -> np.ndarray:
    """uint64 hash of each (doc, band) of the signatures: shape [n_docs, bands]."""
    n, p = sig.shape
    r = p // bands
    seeds = np.arange(bands, dtype=np.uint64) * _MIX + np.uint64(0xCBF29CE484222325)
    with np.errstate(over="ignore"):
        if r % 2 == 0:  # two slots at a time
            u = np.ascontiguousarray(sig[:, : bands * r]).view(np.uint64).reshape(n, bands, r // 2)
            k = u[:, :, 0] ^ seeds
            for c in range(1, r // 2):
                k *= _MIX
                k ^= u[:, :, c]
        else:
            rows = sig[:, : bands * r].reshape(n, bands, r)
            k = np.broadcast_to(seeds, (n, bands)).copy()
            for c in range(r):
                k ^= rows[:, :, c]
                k *= _FNV
    return _fmix(k)


def band_keys(sig: np.ndarray, bands: int) -> np.ndarray:
    """uint64 key per (band, doc): shape [bands, n_docs]; keys of different bands differ."""
    return np.ascontiguousarray(_band_hashes(sig, bands).T)


def candidate_pairs(
    sig: np.ndarray, bands: int, active: np.ndarray | None = None, window: int = 64
) -> np.ndarray:
    """Distinct (i, j) index pairs, i < j, sharing at least one band key; int64 [m, 2].

    Members of a bucket are sorted by index; each pairs with the next `window` members of the
    same bucket (all pairs for buckets up to window + 1)."""
    n = sig.shape[0]
    idx = np.flatnonzero(active) if active is not None else np.arange(n)
    m = len(idx)
    if m < 2:
        return np.zeros((0, 2), np.int64)
    # one sort of every band's keys: the top bits hold the key, the low bits the member's index
    bits = np.uint64(int(m - 1).bit_length())
    code = _band_hashes(sig if m == n else sig[idx], bands).ravel()
    code >>= bits
    code <<= bits
    code |= np.repeat(np.arange(m, dtype=np.uint64), bands)
    code.sort()
    bucket = code >> bits
    same = bucket[1:] == bucket[:-1]
    if not same.any():
        return np.zeros((0, 2), np.int64)
    shared = np.zeros(len(code), bool)  # members of buckets of two or more
    shared[1:] = same
    shared[:-1] |= same
    sel = np.flatnonzero(shared)
    bucket = bucket[sel]
    member = (code[sel] & ((np.uint64(1) << bits) - np.uint64(1))).astype(np.int64)
    found = []
    for d in range(1, window + 1):
        hit = bucket[:-d] == bucket[d:]
        if not hit.any():
            break
        hit &= member[:-d] != member[d:]  # one document under two colliding band keys
        found.append(member[:-d][hit] * m + member[d:][hit])
    pair = np.unique(np.concatenate(found))
    return np.stack([idx[pair // m], idx[pair % m]], axis=1)


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
