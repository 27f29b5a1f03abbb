"""Top-k ranking metrics, vectorised over all users at once.

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

An item recommended twice to the same user counts as a hit only at its first rank,
so every metric stays in ``[0, 1]``.

Beyond accuracy (explicit arrays in, no hidden state)
-----------------------------------------------------
* ``catalogue_coverage@k`` = distinct items in the top-k lists of the users passed
  / ``n_items``.
* ``novelty@k`` (per user) = mean over the user's top-k of ``-log2(pop_i / n_users)``
  where ``pop_i`` = number of train users who interacted with item ``i`` (items never
  seen in train are counted as ``pop_i = 1``, the most novel finite value).
* ``arp@k`` (per user) = mean train popularity ``pop_i`` of the top-k items
  (Average Recommendation Popularity); ``arp_norm@k`` = the same divided by
  ``n_users`` (mean share of train users who played the recommended items, in [0, 1]).
* ``ild@k`` (per user) = mean over unordered pairs of top-k positions of the cosine
  distance ``1 - cos(v_a, v_b)`` between item content vectors (dense or CSR);
  a zero vector has similarity 0 with everything. ``NaN`` for lists of < 2 items.

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
    "ndcg_at_k",
    "average_precision_at_k",
    "hit_rate_at_k",
    "accuracy_metrics",
    "implicit_precision",
    "item_popularity",
    "catalogue_coverage",
    "novelty",
    "average_recommendation_popularity",
    "intra_list_diversity",
]

ACCURACY_METRICS = ("precision", "recall", "ndcg", "map", "hit_rate")
_CHUNK = 1 << 16  # users per block: keeps float temporaries ~ tens of MB


# --------------------------------------------------------------------------- inputs


def _as_recs(recs: np.ndarray, n_items: int | None = None) -> np.ndarray:
    recs = np.asarray(recs)
    if recs.ndim != 2:
        raise ValueError(f"recs must be a 2-D (n_users, K) array, got shape {recs.shape}")
    if recs.size and not np.issubdtype(recs.dtype, np.integer):
        raise ValueError(f"recs must hold integer item indices, got dtype {recs.dtype}")
    if n_items is not None and recs.size and recs.max(initial=-1) >= n_items:
        raise ValueError(f"recs holds item index {recs.max()} >= n_items={n_items}")
    return recs.astype(np.int64, copy=False)


def _canonical_csr(relevant: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """CSR with sorted, unique indices and no explicit zeros (copy only when needed)."""
    m = relevant if isinstance(relevant, sp.csr_matrix) else sp.csr_matrix(relevant)
    needs_copy = not m.has_canonical_format or (m.data.size and not np.all(m.data != 0))
    if needs_copy:
        m = m.copy()
        m.sum_duplicates()
        m.eliminate_zeros()
    return m


def _ks(ks: int | Iterable[int]) -> list[int]:
    ks = [int(ks)] if np.isscalar(ks) else [int(k) for k in ks]
    if not ks or any(k <= 0 for k in ks):
        raise ValueError(f"ks must be positive cut-offs, got {ks}")
    return ks


def n_relevant(relevant: sp.spmatrix) -> np.ndarray:
    """Number of relevant (stored, nonzero) items per row."""
    return np.diff(_canonical_csr(relevant).indptr).astype(np.int64)


# --------------------------------------------------------------------------- hits


def hits_matrix(recs: np.ndarray, relevant: sp.spmatrix) -> np.ndarray:
    """Boolean ``(n_users, Kmax)``: is ``recs[u, j]`` one of row ``u``'s relevant items?

    Binary search of the keys ``u * n_items + item`` in the (already sorted) CSR keys,
    by blocks of rows (each block searches only its own slice: no per-user loop,
    ~3 s for 1M users x K=50 against 10M relevant entries on one core); padding (negative) entries are never hits, and an item
    repeated in a row is a hit only at its first rank.
    """
    rel = _canonical_csr(relevant)
    n_users, n_items = rel.shape
    recs = _as_recs(recs, n_items)
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
    ks = _ks(ks)
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
    for lo in range(0, n_users, _CHUNK):
        hi = min(lo + _CHUNK, n_users)
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


def implicit_precision(hits_at_k: np.ndarray, nrel: np.ndarray, k: int) -> float:
    """implicit's ``precision``: ``sum H_k / sum min(k, R)`` over users with ``R > 0``."""
    mask = nrel > 0
    return float(hits_at_k[mask].sum() / np.minimum(nrel[mask], k).sum())


# --------------------------------------------------------------------------- beyond accuracy


def item_popularity(train: sp.spmatrix) -> np.ndarray:
    """Number of distinct users with a stored nonzero train entry, per item."""
    m = _canonical_csr(train)
    return np.bincount(m.indices, minlength=m.shape[1]).astype(np.int64)


def _topk_valid(recs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    top = _as_recs(recs)[:, :k]
    return top, top >= 0


def catalogue_coverage(recs: np.ndarray, n_items: int, k: int) -> float:
    """Distinct items appearing in any top-k list / ``n_items``."""
    top, valid = _topk_valid(recs, k)
    if n_items <= 0:
        raise ValueError("n_items must be positive")
    seen = np.zeros(n_items, dtype=bool)
    seen[top[valid]] = True
    return float(seen.sum() / n_items)


def _per_user_mean(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    n = valid.sum(axis=1)
    total = np.where(valid, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, total / np.maximum(n, 1), np.nan)


def novelty(recs: np.ndarray, item_pop: np.ndarray, n_users: int, k: int) -> np.ndarray:
    """Per-user mean self-information ``-log2(pop_i / n_users)`` of the top-k items."""
    top, valid = _topk_valid(recs, k)
    info = -np.log2(np.maximum(np.asarray(item_pop, dtype=np.float64), 1.0) / n_users)
    return _per_user_mean(info[np.where(valid, top, 0)], valid)


def average_recommendation_popularity(
    recs: np.ndarray, item_pop: np.ndarray, k: int, *, normalise_by: float | None = None
) -> np.ndarray:
    """Per-user mean train popularity of the top-k items (ARP); divided by
    ``normalise_by`` (use ``n_users`` for the share of users) when given."""
    top, valid = _topk_valid(recs, k)
    pop = np.asarray(item_pop, dtype=np.float64)
    if normalise_by is not None:
        pop = pop / float(normalise_by)
    return _per_user_mean(pop[np.where(valid, top, 0)], valid)


def _unit_rows(vectors: np.ndarray | sp.spmatrix) -> tuple[np.ndarray | sp.csr_matrix, np.ndarray]:
    """Row-normalised vectors and per-row squared norm after normalising (1 or 0)."""
    if sp.issparse(vectors):
        v = sp.csr_matrix(vectors, dtype=np.float64)
        norms = np.sqrt(np.asarray(v.multiply(v).sum(axis=1)).ravel())
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return sp.csr_matrix(sp.diags(inv) @ v), (norms > 0).astype(np.float64)
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"item vectors must be 2-D, got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1)
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return v * inv[:, None], (norms > 0).astype(np.float64)


def intra_list_diversity(recs: np.ndarray, item_vectors: np.ndarray | sp.spmatrix, k: int) -> np.ndarray:
    """Per-user mean pairwise cosine distance of the top-k items (NaN if < 2 items).

    Uses ``sum_{a<b} cos(a, b) = (||sum_a v_a||^2 - sum_a ||v_a||^2) / 2`` on unit
    vectors, so a block of users costs one sparse (users x items) @ (items x d) product.
    """
    top, valid = _topk_valid(recs, k)
    unit, sqn = _unit_rows(item_vectors)
    n_items = unit.shape[0]
    if top.size and top.max(initial=-1) >= n_items:
        raise ValueError(f"recs holds item index {top.max()} >= {n_items} item vectors")
    n_users, kk = top.shape
    out = np.full(n_users, np.nan)
    for lo in range(0, n_users, _CHUNK):
        t, vmask = top[lo : lo + _CHUNK], valid[lo : lo + _CHUNK]
        b = t.shape[0]
        m = vmask.sum(axis=1)
        sel = sp.csr_matrix(
            (np.ones(int(m.sum())), t[vmask], np.concatenate([[0], np.cumsum(m)])), shape=(b, n_items)
        )  # duplicate indices are summed by the product, as they should be
        s = sel @ unit
        if sp.issparse(s):
            ss = np.asarray(s.multiply(s).sum(axis=1)).ravel()
        else:
            ss = np.einsum("ij,ij->i", s, s)
        self_sq = np.where(vmask, sqn[np.where(vmask, t, 0)], 0.0).sum(axis=1)
        pairs = m * (m - 1) / 2.0
        with np.errstate(invalid="ignore", divide="ignore"):
            out[lo : lo + b] = np.where(m >= 2, 1.0 - (ss - self_sq) / 2.0 / pairs, np.nan)
    return out


# --------------------------------------------------------------------------- reference (slow, for tests)


def _reference_accuracy(recs: np.ndarray, relevant: sp.spmatrix, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Plain per-user Python loops over the definitions in the module docstring.

    Deliberately naive (sets, explicit ranks); used only to cross-check the
    vectorised code in tests and in ``benchmarks/bench_metrics.py``.
    """
    import math

    rel = sp.csr_matrix(relevant)
    recs = np.asarray(recs)
    out = {f"{m}@{k}": np.full(rel.shape[0], np.nan) for k in ks for m in ACCURACY_METRICS}
    for u in range(rel.shape[0]):
        row = rel.getrow(u)
        truth = {int(i) for i, v in zip(row.indices, row.data) if v != 0}
        if not truth:
            continue
        ranked = [int(i) for i in recs[u]]
        for k in ks:
            seen: set[int] = set()
            hits_list = []
            for i in ranked[:k]:
                hit = i >= 0 and i in truth and i not in seen
                if i >= 0:
                    seen.add(i)
                hits_list.append(hit)
            hits_list += [False] * (k - len(hits_list))
            h = sum(hits_list)
            dcg = sum(1.0 / math.log2(r + 2) for r, x in enumerate(hits_list) if x)
            idcg = sum(1.0 / math.log2(r + 2) for r in range(min(len(truth), k)))
            ap, running = 0.0, 0
            for r, x in enumerate(hits_list):
                if x:
                    running += 1
                    ap += running / (r + 1)
            out[f"precision@{k}"][u] = h / k
            out[f"recall@{k}"][u] = h / len(truth)
            out[f"ndcg@{k}"][u] = dcg / idcg
            out[f"map@{k}"][u] = ap / min(len(truth), k)
            out[f"hit_rate@{k}"][u] = float(h > 0)
    return out


def _reference_novelty(recs, item_pop, n_users, k):
    import math

    out = []
    for row in np.asarray(recs)[:, :k]:
        items = [int(i) for i in row if i >= 0]
        out.append(
            sum(-math.log2(max(item_pop[i], 1) / n_users) for i in items) / len(items) if items else np.nan
        )
    return np.array(out, dtype=np.float64)


def _reference_ild(recs, item_vectors, k):
    dense = item_vectors.toarray() if sp.issparse(item_vectors) else np.asarray(item_vectors, dtype=np.float64)
    out = []
    for row in np.asarray(recs)[:, :k]:
        items = [int(i) for i in row if i >= 0]
        if len(items) < 2:
            out.append(np.nan)
            continue
        dists = []
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                va, vb = dense[items[a]], dense[items[b]]
                na, nb = np.linalg.norm(va), np.linalg.norm(vb)
                sim = float(va @ vb / (na * nb)) if na > 0 and nb > 0 else 0.0
                dists.append(1.0 - sim)
        out.append(float(np.mean(dists)))
    return np.array(out, dtype=np.float64)
