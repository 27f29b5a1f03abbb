"""Exact top-N of user x item factor products without scoring every item.

For large catalogues the factor models (:mod:`musicrec.models.mf`) rank with
:func:`pruned_top_n`: items are scored in blocks in descending order of their factor
norm (:func:`norm_index`), and a user stops as soon as the Cauchy-Schwarz bound
``|u| |v|`` of every item left is below the user's current ``N``-th best score. The
result equals the full scoring's, tie-break included (``tests/unit/models/test_mf_pruned.py``
checks it bit for bit). Used for catalogues of at least ``PRUNE_MIN_ITEMS`` items.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from musicrec.models.ranking import top_n

PRUNE_MIN_ITEMS = 8192
PRUNE_USERS = 1024              # users scored together in the pruned path
_PRUNE_BLOCK_MIN = 1024          # items per block (at least 64 N, so that top_n's block pass applies)
_PRUNE_SLACK = 1e-4              # relative margin on the bound, far above float32 GEMM rounding (~f * 6e-8)


class NormIndex(NamedTuple):
    """Items by descending factor norm."""

    perm: np.ndarray  # item indices, largest factor norm first
    inv: np.ndarray  # position of each item in perm
    ftp: np.ndarray  # item_factors.T with its columns in perm order (C-contiguous)
    norms: np.ndarray  # factor norms in perm order
    tie: np.ndarray  # tie ranks in perm order


def norm_index(item_factors: np.ndarray, factors_t: np.ndarray, tie: np.ndarray) -> NormIndex:
    """:class:`NormIndex` of ``item_factors`` (``factors_t`` its C-contiguous transpose) and tie ranks ``tie``."""
    m = len(item_factors)
    norms = np.linalg.norm(item_factors.astype(np.float64), axis=1)
    perm = np.argsort(-norms, kind="stable")
    inv = np.empty(m, dtype=np.int64)
    inv[perm] = np.arange(m)
    ftp = np.ascontiguousarray(factors_t[:, perm])
    return NormIndex(perm, inv, ftp, norms[perm], tie[perm])


def pruned_top_n(index: NormIndex, U: np.ndarray, X: sp.csr_matrix | None, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``N`` of ``U @ item_factors.T`` (rows of ``X`` masked), scoring only what can matter.

    ``index`` is :func:`norm_index` of the item factors and the model's tie ranks.

    Items are visited in blocks in descending order of ``|v|``. After each block
    the user's ``N``-th best score so far is a threshold ``t``; no item left can
    score above ``|u| * |v_next|`` (Cauchy-Schwarz), so once that bound, widened
    by ``_PRUNE_SLACK`` for float32 rounding, is below ``t`` the user is done.
    Per block: GEMM of the users still active, masking, :func:`top_n` with the
    same tie-break order, and a merge with the running top-``N`` by (score
    descending, tie rank ascending), so the result equals the full scoring's
    (tested against it). On ALS factors, where norms follow popularity, most
    users stop after the first block or two.
    """
    perm, inv, ftp, vnorm, tie = index
    m, c = len(perm), U.shape[0]
    block = max(_PRUNE_BLOCK_MIN, 64 * N)
    unorm = np.linalg.norm(U.astype(np.float64), axis=1)
    best_s = np.full((c, N), -np.inf, dtype=np.float32)
    best_p = np.full((c, N), -1, dtype=np.int64)
    if X is not None and X.nnz:
        ex_r = np.repeat(np.arange(c), np.diff(X.indptr))
        ex_p = inv[X.indices]
        o = np.argsort(ex_p, kind="stable")
        ex_r, ex_p = ex_r[o], ex_p[o]
    else:
        ex_r = ex_p = np.empty(0, dtype=np.int64)
    slot = np.full(c, -1, dtype=np.int64)  # row -> position among the active rows
    active = np.arange(c)
    big = np.iinfo(np.int64).max
    start = 0
    while active.size and start < m:
        stop = min(m, start + block)
        scores = U[active] @ ftp[:, start:stop]
        lo, hi = np.searchsorted(ex_p, [start, stop])
        if hi > lo:
            slot[active] = np.arange(active.size)
            r = slot[ex_r[lo:hi]]
            keep = r >= 0
            scores[r[keep], ex_p[lo:hi][keep] - start] = -np.inf
            slot[active] = -1
        bi, bs = top_n(scores, N, tie_rank=tie[start:stop])
        cs = np.concatenate([best_s[active], bs], axis=1)
        cp = np.concatenate([best_p[active], np.where(bi >= 0, bi + start, -1)], axis=1)
        ct = np.where(cp >= 0, tie[np.maximum(cp, 0)], big)
        o = np.lexsort((ct, -cs), axis=1)[:, :N]
        best_s[active] = np.take_along_axis(cs, o, axis=1)
        best_p[active] = np.take_along_axis(cp, o, axis=1)
        if stop < m:
            bound = unorm[active] * vnorm[stop] * (1.0 + _PRUNE_SLACK)
            active = active[bound >= best_s[active, N - 1]]
        start = stop
    ids = np.where(best_p >= 0, perm[np.maximum(best_p, 0)], -1)
    return ids, best_s
