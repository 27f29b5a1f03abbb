"""Top-k accuracy metrics, vectorised over all users at once.

Beyond-accuracy metrics (coverage, novelty, popularity, diversity) are in
:mod:`musicrec.evaluation.beyond_accuracy`; slow reference implementations used to
cross-check both in :mod:`musicrec.evaluation.reference_metrics`.

Inputs shared by every function
-------------------------------
``recs``
    int array ``(n_users, Kmax)``: row ``u`` holds the recommended item indices for
    user ``u``, best first. Negative entries (``-1``) are padding: "no item at this
    rank" (a short list). Items must be ``< n_items``.
``relevant``
    CSR ``(n_users, n_items)``, rows aligned with ``recs``: the held-out (test)
    items; an entry is relevant when it is stored *and* nonzero.
``ks``
    cut-offs. A cut-off larger than ``Kmax`` treats the missing ranks as misses.

Accuracy (per-user arrays; users with no relevant item get ``NaN``)
-------------------------------------------------------------------
With ``hit_i`` = 1 when the item at rank ``i`` (1-based) is relevant, ``H_k`` =
``sum_{i<=k} hit_i`` and ``R`` = number of relevant items of the user:

* ``precision@k = H_k / k`` (short or padded lists are not forgiven)
* ``recall@k = H_k / R``
* ``ndcg@k = DCG_k / IDCG_k`` with ``DCG_k = sum_{i<=k} hit_i / log2(i + 1)`` and
  ``IDCG_k = sum_{i <= min(R, k)} 1 / log2(i + 1)`` (binary gains)
* ``ap@k = sum_{i<=k} hit_i * (H_i / i) / min(R, k)``; MAP@k is its mean over users
* ``hit_rate@k = 1 if H_k > 0 else 0``
* ``recall_capped@k = H_k / min(R, k)``: the Recall@k of the MSD strong-generalisation
  protocol (Liang et al. 2018, ``Recall_at_k_batch``; Steck 2019), which can reach 1
  when a user has more than k relevant items. Reported when the split is
  ``strong_generalization`` (:func:`recall_capped_at_k`), not in ``ACCURACY_METRICS``.

An item recommended twice to the same user counts as a hit only at its first rank,
so every metric stays in ``[0, 1]``.

Differences from ``implicit.evaluation.ranking_metrics_at_k`` (implicit 0.7.3)
------------------------------------------------------------------------------
implicit scores users whose test row is non-empty (as we do), recommends with
``model.recommend(users, train[users], N=K)`` (train items filtered out), and returns
global numbers for a single ``K``:

* ``precision`` is **micro-averaged with denominator min(K, R)**:
  ``sum_u H_K(u) / sum_u min(K, R_u)``. That is neither our macro ``precision@K``
  (``H/K``) nor recall; :func:`implicit_precision` reproduces it from our arrays.
* ``map`` = mean of our ``ap@K`` (same ``min(R, K)`` denominator) - coincides.
* ``ndcg`` = mean of our ``ndcg@K`` (binary gains, ideal over ``min(R, K)``) - coincides.
* ``auc`` is a "limited AUC" over the top K; we do not compute it.
* implicit treats every *stored* test entry as relevant (explicit zeros included)
  and counts duplicate recommended items at every rank; we drop explicit zeros and
  count a duplicate once. Recommenders do not return duplicates, and pipeline CSR
  files hold no explicit zeros, so in practice the numbers agree (tested).
* implicit has no recall, hit rate or beyond-accuracy metrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

__all__ = [
    "ACCURACY_METRICS",
    "hits_matrix",
    "n_relevant",
    "precision_at_k",
    "recall_at_k",
    "recall_capped_at_k",
    "ndcg_at_k",
    "average_precision_at_k",
    "hit_rate_at_k",
    "accuracy_metrics",
    "capped_recall_metrics",
    "implicit_precision",
]

ACCURACY_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")
USER_BLOCK = 1 << 16  # users per block: keeps float temporaries ~ tens of MB


# --------------------------------------------------------------------------- inputs


def as_recs(recs: np.ndarray, n_items: int | None = None) -> np.ndarray:
    """``recs`` as a 2-D int64 array of item indices (< ``n_items`` when given), or ValueError."""
    recs = np.asarray(recs)
    if recs.ndim != 2:
        raise ValueError(f"recs must be a 2-D (n_users, K) array, got shape {recs.shape}")
    if recs.size and not np.issubdtype(recs.dtype, np.integer):
        raise ValueError(f"recs must hold integer item indices, got dtype {recs.dtype}")
    if n_items is not None and recs.size and recs.max(initial=-1) >= n_items:
        raise ValueError(f"recs holds item index {recs.max()} >= n_items={n_items}")
    return recs.astype(np.int64, copy=False)


def canonical_csr(relevant: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """CSR with sorted, unique indices and no explicit zeros (copy only when needed)."""
    m = relevant if isinstance(relevant, sp.csr_matrix) else sp.csr_matrix(relevant)
    needs_copy = not m.has_canonical_format or (m.data.size and not np.all(m.data != 0))
    if needs_copy:
        m = m.copy()
        m.sum_duplicates()
        m.eliminate_zeros()
    return m


def cutoffs(ks: int | Iterable[int]) -> list[int]:
    """``ks`` (one cut-off or several) as a list of positive ints, or ValueError."""
    ks = [int(ks)] if np.isscalar(ks) else [int(k) for k in ks]
    if not ks or any(k <= 0 for k in ks):
        raise ValueError(f"ks must be positive cut-offs, got {ks}")
    return ks


def n_relevant(relevant: sp.spmatrix) -> np.ndarray:
    """Number of relevant (stored, nonzero) items per row."""
    return np.diff(canonical_csr(relevant).indptr).astype(np.int64)


# --------------------------------------------------------------------------- hits


def hits_matrix(recs: np.ndarray, relevant: sp.spmatrix) -> np.ndarray:
    """Boolean ``(n_users, Kmax)``: is ``recs[u, j]`` one of row ``u``'s relevant items?

    Binary search of the keys ``u * n_items + item`` in the (already sorted) CSR keys,
    by blocks of rows (each block searches only its own slice: no per-user loop,
    ~3 s for 1M users x K=50 against 10M relevant entries on one core); padding (negative) entries are never hits, and an item
    repeated in a row is a hit only at its first rank.
    """
    rel = canonical_csr(relevant)
    n_users, n_items = rel.shape
    recs = as_recs(recs, n_items)
    if recs.shape[0] != n_users:
        raise ValueError(f"recs has {recs.shape[0]} rows but relevant has {n_users}")
    hits = np.zeros(recs.shape, dtype=bool)
    if recs.size == 0 or rel.nnz == 0:
        return hits
    row_of = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(rel.indptr))
    keys = row_of * n_items + rel.indices  # sorted: rows ascending, indices sorted
    del row_of
    indptr = rel.indptr
    step = 4096  # search each block of rows only in its own slice of keys (cache friendly)
    for lo in range(0, n_users, step):
        hi = min(lo + step, n_users)
        kk = keys[indptr[lo] : indptr[hi]]
        if kk.size == 0:
            continue
        block = recs[lo:hi]
        q = np.arange(lo, hi, dtype=np.int64)[:, None] * n_items + block
        pos = np.searchsorted(kk, q)
        np.minimum(pos, kk.size - 1, out=pos)
        hits[lo:hi] = (kk[pos] == q) & (block >= 0)
    # duplicates: keep only the first occurrence of each (user, item) hit
    r, c = np.nonzero(hits)
    if r.size:
        hk = r * n_items + recs[r, c]
        _, first = np.unique(hk, return_index=True)
        if first.size != hk.size:
            keep = np.zeros(hk.size, dtype=bool)
            keep[first] = True
            hits[r[~keep], c[~keep]] = False
    return hits


# --------------------------------------------------------------------------- small accuracy functions


def _discount(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _upto(hits: np.ndarray, k: int) -> np.ndarray:
    """First ``k`` columns of hits, padded with misses when ``k > Kmax``."""
    if hits.shape[1] >= k:
        return hits[:, :k]
    return np.pad(hits, ((0, 0), (0, k - hits.shape[1])))


def _nan_where_empty(values: np.ndarray, nrel: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64, copy=False)
    values[nrel <= 0] = np.nan
    return values


def precision_at_k(hits: np.ndarray, nrel: np.ndarray, k: int) -> np.ndarray:
    """``H_k / k`` per user (NaN where ``nrel == 0``)."""
    return _nan_where_empty(_upto(hits, k).sum(axis=1) / k, nrel)


def recall_at_k(hits: np.ndarray, nrel: np.ndarray, k: int) -> np.ndarray:
    """``H_k / R`` per user."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _nan_where_empty(_upto(hits, k).sum(axis=1) / nrel, nrel)


def recall_capped_at_k(hits: np.ndarray, nrel: np.ndarray, k: int) -> np.ndarray:
    """``H_k / min(R, k)`` per user (Liang et al.'s Recall@k)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return _nan_where_empty(_upto(hits, k).sum(axis=1) / np.minimum(nrel, k), nrel)


def _idcg(nrel: np.ndarray, k: int) -> np.ndarray:
    cum = np.concatenate([[np.nan], np.cumsum(_discount(k))])  # cum[0]=NaN: no relevant items
    return cum[np.minimum(nrel, k)]


def ndcg_at_k(hits: np.ndarray, nrel: np.ndarray, k: int) -> np.ndarray:
    """Binary-gain nDCG@k, ideal DCG over ``min(R, k)`` relevant items."""
    dcg = _upto(hits, k) @ _discount(k)
    with np.errstate(invalid="ignore"):
        return _nan_where_empty(dcg / _idcg(nrel, k), nrel)


def average_precision_at_k(hits: np.ndarray, nrel: np.ndarray, k: int) -> np.ndarray:
    """``sum_{i<=k, hit} P@i / min(R, k)`` per user (MAP@k = nanmean)."""
    h = _upto(hits, k)
    prec_i = np.cumsum(h, axis=1) / np.arange(1, k + 1, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _nan_where_empty((prec_i * h).sum(axis=1) / np.minimum(nrel, k), nrel)


def hit_rate_at_k(hits: np.ndarray, nrel: np.ndarray, k: int) -> np.ndarray:
    """1 if any of the top k is relevant, else 0."""
    return _nan_where_empty(_upto(hits, k).any(axis=1).astype(np.float64), nrel)


# --------------------------------------------------------------------------- fused


def accuracy_metrics(
    recs: np.ndarray,
    relevant: sp.spmatrix,
    ks: int | Sequence[int],
    *,
    hits: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every accuracy metric at every k in one pass: ``{"ndcg@10": per-user array, ...}``.

    Same values as the small functions above, but cumulative sums are computed once
    per block of users and read at each cut-off. Rows with no relevant item are NaN.
    """
    ks = cutoffs(ks)
    if hits is None:
        hits = hits_matrix(recs, relevant)
    nrel = n_relevant(relevant)
    n_users = hits.shape[0]
    kmax = max(ks)
    h_all = _upto(hits, kmax)
    disc = _discount(kmax)
    ranks = np.arange(1, kmax + 1, dtype=np.float64)
    cols = [k - 1 for k in ks]
    out = {f"{m}@{k}": np.empty(n_users) for k in ks for m in ACCURACY_METRICS}
    for lo in range(0, n_users, USER_BLOCK):
        hi = min(lo + USER_BLOCK, n_users)
        h = h_all[lo:hi]
        cumh = np.cumsum(h, axis=1, dtype=np.int32)
        hf = h.astype(np.float64)
        cumdcg = np.cumsum(hf * disc, axis=1)
        cumap = np.cumsum(hf * (cumh / ranks), axis=1)
        nr = nrel[lo:hi]
        for k, c in zip(ks, cols):
            hk = cumh[:, c].astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[f"precision@{k}"][lo:hi] = hk / k
                out[f"recall@{k}"][lo:hi] = hk / nr
                out[f"ndcg@{k}"][lo:hi] = cumdcg[:, c] / _idcg(nr, k)
                out[f"map@{k}"][lo:hi] = cumap[:, c] / np.minimum(nr, k)
            out[f"hit_rate@{k}"][lo:hi] = hk > 0
    empty = nrel <= 0
    for v in out.values():
        v[empty] = np.nan
    return out


def capped_recall_metrics(recs: np.ndarray, relevant: sp.spmatrix, ks: int | Sequence[int]) -> dict[str, np.ndarray]:
    """``{"recall_capped@k": per-user array}`` for every k (NaN: no relevant item)."""
    hits = hits_matrix(recs, relevant)
    nrel = n_relevant(relevant)
    return {f"recall_capped@{k}": recall_capped_at_k(hits, nrel, k) for k in cutoffs(ks)}


def implicit_precision(hits_at_k: np.ndarray, nrel: np.ndarray, k: int) -> float:
    """implicit's ``precision``: ``sum H_k / sum min(k, R)`` over users with ``R > 0``."""
    mask = nrel > 0
    return float(hits_at_k[mask].sum() / np.minimum(nrel[mask], k).sum())
