"""The top-N kernel and the score helpers the recommenders share.

:func:`top_n` picks the best ``N`` columns of each row of a dense score block, ties
broken by a popularity order (:func:`popularity_order`) through the inverse
permutation of that order, its tie ranks, which are cached for the last order seen
(one entry, read once per call, so threads sharing a model agree). Also the dense
row helpers used while scoring: masking a user's known items, per-row min-max
scaling, cosine similarity and keeping the ``k`` largest entries of each row as CSR.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# top_n: blocks per wanted item when bounding the N-th largest score (see top_n).
_TOPN_BLOCKS_PER_K = 16


def popularity_order(popularity: np.ndarray) -> np.ndarray:
    """Item indices by descending popularity, then ascending index (the tie-break order)."""
    return np.lexsort((np.arange(len(popularity)), -np.asarray(popularity, dtype=np.float64)))


_RANK_CACHE: list[tuple[np.ndarray, np.ndarray]] = []


def order_rank(order: np.ndarray, m: int) -> np.ndarray:
    """Inverse permutation of ``order`` (position of each column), cached for the last order seen."""
    cached = _RANK_CACHE[0] if _RANK_CACHE else None  # read once: other threads may replace it
    if cached is not None and cached[0] is order and len(cached[1]) == m:
        return cached[1]
    rank = np.empty(m, dtype=np.int64)
    rank[np.asarray(order)] = np.arange(m)
    if isinstance(order, np.ndarray):
        _RANK_CACHE[:] = [(order, rank)]
    return rank


def top_n(scores: np.ndarray, N: int, order: np.ndarray | None = None, *,
          tie_rank: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top ``N`` columns of each row of ``scores`` (n, m), best first.

    Ties are broken by position in ``order`` (a permutation of the columns;
    default: column index), or, given ``tie_rank`` instead (distinct keys, one
    per column), by that key ascending: ``tie_rank = position in order``. Entries equal to ``-inf`` are not candidates: their
    slots are returned as id ``-1`` / score ``-inf`` (padding), as are the slots
    beyond the number of columns. NaN counts as ``-inf``.

    The result is the first ``N`` columns of each row in the order (score
    descending, ``order`` position ascending). Selection without a per-row
    partition: each row is cut into ``_TOPN_BLOCKS_PER_K * N`` blocks; the
    ``N``-th largest block maximum is a lower bound of the row's ``N``-th largest
    score (``N`` distinct blocks reach it), so only entries at or above it, in
    the about ``N`` blocks whose maximum reaches it, are candidates (ties at the
    bound all kept). One vectorised max-reduce over the scores, then work on a
    fraction of them; only the candidates are sorted.
    """
    scores = np.asarray(scores, dtype=np.float32)
    n, m = scores.shape
    ids = np.full((n, N), -1, dtype=np.int64)
    out = np.full((n, N), -np.inf, dtype=np.float32)
    k = min(N, m)
    if n == 0 or k == 0:
        return ids, out
    blocks = _TOPN_BLOCKS_PER_K * k
    if m < 2 * blocks:
        if np.isnan(scores).any():
            scores = np.where(np.isnan(scores), np.float32(-np.inf), scores)
        rows, cols = np.divmod(np.arange(n * m, dtype=np.int64), m)
    else:
        bs = m // blocks
        # block b = columns b, b + blocks, b + 2 * blocks, ...: the max over the middle axis is an
        # element-wise maximum of contiguous rows (SIMD), several times faster than over short runs
        body = scores[:, : blocks * bs].reshape(n, bs, blocks)
        tail = scores[:, blocks * bs:]
        bmax = body.max(axis=1)
        if tail.shape[1]:  # the tail is one more block
            bmax = np.concatenate([bmax, tail.max(axis=1, keepdims=True)], axis=1)
        if np.isnan(bmax).any():  # max propagates NaN: only then pay for the replacement
            return top_n(np.where(np.isnan(scores), np.float32(-np.inf), scores), N, order, tie_rank=tie_rank)
        nb = bmax.shape[1]
        bound = np.partition(bmax, nb - k, axis=1)[:, nb - k]
        # only blocks whose maximum reaches the bound hold candidates (about k of them)
        br, bb = np.nonzero(bmax >= bound[:, None])
        inb = bb < blocks
        r_b, b_b = br[inb], bb[inb]
        i, j = np.nonzero(body[r_b, :, b_b] >= bound[r_b][:, None])  # (selected blocks, bs)
        rows, cols = r_b[i], j * blocks + b_b[i]
        r_t = br[~inb]
        if r_t.size:
            i, j = np.nonzero(tail[r_t] >= bound[r_t][:, None])
            rows, cols = np.concatenate([rows, r_t[i]]), np.concatenate([cols, blocks * bs + j])
    vals = scores[rows, cols]
    # tie-break position of each candidate
    tie = tie_rank[cols] if tie_rank is not None else cols if order is None else order_rank(order, m)[cols]
    srt = np.lexsort((tie, -vals, rows))  # by row, then score descending, then tie-break rank
    rows, cols, vals = rows[srt], cols[srt], vals[srt]
    counts = np.bincount(rows, minlength=n)  # >= k for every row
    take = (np.cumsum(counts) - counts)[:, None] + np.arange(k)
    sel, v = cols[take], vals[take]
    cand = v > -np.inf
    ids[:, :k] = np.where(cand, sel, -1)
    out[:, :k] = np.where(cand, v, -np.inf)
    return ids, out


def mask_rows(scores: np.ndarray, rows: sp.csr_matrix, value: float = -np.inf) -> None:
    """Set ``scores[r, j] = value`` for every stored entry (r, j) of ``rows`` (in place)."""
    r = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    scores[r, rows.indices] = value


def minmax_rows(scores: np.ndarray) -> np.ndarray:
    """Per-row min-max scaling to [0, 1]; constant rows become 0. Ignores non-finite entries."""
    s = np.asarray(scores, dtype=np.float32)
    finite = np.isfinite(s)
    lo = np.where(finite, s, np.inf).min(axis=1, keepdims=True)
    hi = np.where(finite, s, -np.inf).max(axis=1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1), 0).astype(np.float32)
    return np.where(finite, out, 0).astype(np.float32)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with each row of ``b`` (zero rows give 0)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    a = a / np.where(na > 0, na, 1)
    b = b / np.where(nb > 0, nb, 1)
    return (a @ b.T).astype(np.float32)


def topk_csr_rows(rows: np.ndarray, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest positive entries of each row of a dense block, as CSR."""
    rows = np.asarray(rows, dtype=np.float32)
    n, m = rows.shape
    k = min(k, m)
    if k < m:
        idx = np.argpartition(-rows, k - 1, axis=1)[:, :k]
    else:
        idx = np.broadcast_to(np.arange(m), (n, m))
    vals = np.take_along_axis(rows, idx, axis=1)
    keep = vals > 0
    r = np.broadcast_to(np.arange(n)[:, None], idx.shape)[keep]
    out = sp.csr_matrix((vals[keep], (r, idx[keep])), shape=(n, m), dtype=np.float32)
    out.sort_indices()
    return out
