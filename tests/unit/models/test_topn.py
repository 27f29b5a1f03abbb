"""top_n (the ranking kernel of every model) and the fused matrix-factorisation recommend path.

``top_n`` bounds the N-th score with block maxima instead of a per-row partition;
these tests pin it to the straightforward definition (argpartition + tie rule),
including ties at the cut, -inf padding, NaN, and N close to the number of columns.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from musicrec.models.ranking import top_n


def reference_top_n(scores: np.ndarray, N: int, order: np.ndarray | None = None):
    """The definition: first N of (score desc, order position asc); -inf/NaN are padding."""
    scores = np.where(np.isnan(scores), np.float32(-np.inf), np.asarray(scores, dtype=np.float32))
    n, m = scores.shape
    rank = np.empty(m, dtype=np.int64)
    rank[np.arange(m) if order is None else np.asarray(order)] = np.arange(m)
    ids = np.full((n, N), -1, dtype=np.int64)
    out = np.full((n, N), -np.inf, dtype=np.float32)
    for r in range(n):
        idx = np.lexsort((rank, -scores[r]))[: min(N, m)]
        ok = scores[r, idx] > -np.inf
        ids[r, : len(idx)] = np.where(ok, idx, -1)
        out[r, : len(idx)] = np.where(ok, scores[r, idx], -np.inf)
    return ids, out


@pytest.mark.parametrize("m", [1, 7, 50, 401, 2000])
@pytest.mark.parametrize("N", [1, 5, 10, 50])
@pytest.mark.parametrize("kind", ["continuous", "ties", "neginf", "nan"])
def test_top_n_matches_definition(m, N, kind):
    rng = np.random.default_rng(m * 1000 + N)
    n = 23
    if kind == "continuous":
        s = rng.standard_normal((n, m)).astype(np.float32)
    else:  # few distinct values: many ties at the cut
        s = rng.integers(0, 4, size=(n, m)).astype(np.float32)
    if kind == "neginf":
        s[rng.random((n, m)) < 0.9] = -np.inf
        s[0] = -np.inf
    if kind == "nan":
        s[rng.random((n, m)) < 0.3] = np.nan
    s[1] = 0.0  # an all-tied row
    order = rng.permutation(m)
    for o in (None, order):
        got_ids, got_vals = top_n(s, N, o)
        ref_ids, ref_vals = reference_top_n(s, N, o)
        np.testing.assert_array_equal(got_ids, ref_ids)
        np.testing.assert_array_equal(got_vals, ref_vals)


def test_mf_recommend_equals_unfused_path():
    """ALS recommend (chunked, threaded, fused) == score + mask + top_n on the whole matrix."""
    from musicrec.models.ranking import mask_rows
    from musicrec.models.mf import ALSRecommender

    rng = np.random.default_rng(3)
    X = sp.random(300, 900, density=0.03, format="csr", random_state=4, dtype=np.float32)
    X.data[:] = rng.integers(1, 5, X.nnz)
    keep = np.ones(300, dtype=np.float32)
    keep[5] = 0  # a user without signal: popularity fallback
    X = (sp.diags(keep) @ X).tocsr()
    X.eliminate_zeros()
    m = ALSRecommender(factors=8, iterations=3, seed=1).fit(X)
    users = np.concatenate([np.arange(300), [-1, 400]])  # plus two cold-start users (folded in)
    Q = sp.vstack([X, X[[7]], sp.csr_matrix((1, 900), dtype=np.float32)]).tocsr()
    for N in (1, 10, 50):
        ids, vals = m.recommend(users, Q, N=N)
        s = m.score(users, Q).copy()
        mask_rows(s, Q)
        ref_ids, ref_vals = reference_top_n(s, N, m._order)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_array_equal(vals, ref_vals)
        ids2, _ = m.recommend(users, Q, N=N, filter_already_liked_items=False)
        ref2, _ = reference_top_n(m.score(users, Q), N, m._order)
        np.testing.assert_array_equal(ids2, ref2)


def test_tie_rank_equals_the_order_it_comes_from():
    rng = np.random.default_rng(11)
    scores = rng.integers(0, 4, (50, 3000)).astype(np.float32)  # many exact ties
    order = rng.permutation(3000)
    rank = np.empty(3000, dtype=np.int64)
    rank[order] = np.arange(3000)
    for N in (1, 7, 40):
        a = top_n(scores, N, order)
        b = top_n(scores, N, tie_rank=rank)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
