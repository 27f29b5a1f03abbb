"""Beyond-accuracy metrics of top-k lists: coverage, novelty, popularity, diversity.

Explicit arrays in, no hidden state; ``recs`` as in :mod:`musicrec.evaluation.metrics`
(int ``(n_users, Kmax)``, best first, ``-1`` padding).

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
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from musicrec.evaluation.metrics import USER_BLOCK, as_recs, canonical_csr

__all__ = [
    "item_popularity",
    "catalogue_coverage",
    "novelty",
    "average_recommendation_popularity",
    "intra_list_diversity",
]


def item_popularity(train: sp.spmatrix) -> np.ndarray:
    """Number of distinct users with a stored nonzero train entry, per item."""
    m = canonical_csr(train)
    return np.bincount(m.indices, minlength=m.shape[1]).astype(np.int64)


def _topk_valid(recs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    top = as_recs(recs)[:, :k]
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
    for lo in range(0, n_users, USER_BLOCK):
        t, vmask = top[lo : lo + USER_BLOCK], valid[lo : lo + USER_BLOCK]
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
