"""The pruned top-N of the factor models (``pruned_topn.pruned_top_n``) equals full scoring.

Catalogues of ``PRUNE_MIN_ITEMS`` items or more are ranked by visiting items in
descending factor norm and stopping each user at the Cauchy-Schwarz bound. The
factors here are small integers, so every dot product is exact in float32 and the
comparison with the full users x items scoring is bit-for-bit, ties included
(many exact ties: the tie-break by popularity is exercised).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import musicrec.models.pruned_topn as pruned_topn
from musicrec.models.factory import build_model, default_params
from musicrec.models.ranking import mask_rows, top_n

N_ITEMS = pruned_topn.PRUNE_MIN_ITEMS + 500


def _model(name: str, seed: int, factors: int = 6, n_users: int = 400):
    rng = np.random.default_rng(seed)
    pop = rng.zipf(1.3, N_ITEMS * 3) % N_ITEMS  # long-tailed item popularity, as in real data
    X = sp.csr_matrix((np.ones(pop.size, np.float32), (rng.integers(0, n_users, pop.size), pop)),
                      shape=(n_users, N_ITEMS))
    X.sum_duplicates()
    params = {**default_params(name), "factors": factors, "iterations": 1}
    model = build_model(name, params, seed=seed, num_threads=2).fit(X)
    # integer factors, item norms skewed like popularity: exact float32 dot products, many ties
    scale = 1 + (np.bincount(X.indices, minlength=N_ITEMS) > 2) * 2
    model.item_factors = (rng.integers(-2, 3, (N_ITEMS, factors)) * scale[:, None]).astype(np.float32)
    model.user_factors = rng.integers(-3, 4, (n_users, factors)).astype(np.float32)
    return model, X


def _full(model, users, X, N, filt=True):
    scores = (model.user_factors[users] @ model.item_factors.T).astype(np.float32)
    if filt:
        mask_rows(scores, X)
    return top_n(scores, N, model._order)


@pytest.mark.parametrize("name, N, seed", [("als", 10, 0), ("als", 50, 1), ("bpr", 20, 2), ("als", 1, 3)])
def test_pruned_recommend_equals_full_scoring(name, N, seed):
    model, X = _model(name, seed)
    users = np.arange(X.shape[0])
    ids, scores = model.recommend(users, X, N=N)
    ref_ids, ref_scores = _full(model, users, X, N)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_scores)
    ids2, _ = model.recommend(users, X, N=N, filter_already_liked_items=False)
    np.testing.assert_array_equal(ids2, _full(model, users, X, N, filt=False)[0])


def test_pruned_path_pads_users_with_fewer_candidates_than_n():
    model, X = _model("als", 4)
    X = X.tolil()
    X[0, :] = 0
    X[0, 5:] = 1  # user 0 has seen every item but the first 5
    X = X.tocsr()
    ids, scores = model.recommend(np.array([0, 1]), X[[0, 1]], N=12)
    ref_ids, ref_scores = _full(model, np.array([0, 1]), X[[0, 1]], 12)
    np.testing.assert_array_equal(ids, ref_ids)
    assert (ids[0, 5:] == -1).all() and np.isneginf(scores[0, 5:]).all() and set(ids[0, :5]) == set(range(5))


def test_pruning_skips_most_of_the_catalogue(monkeypatch):
    """The point of the bound: on norm-skewed factors most users stop early."""
    model, X = _model("als", 5)
    scored = []
    real = pruned_topn.top_n

    def counting(scores, N, order=None, **kw):
        scored.append(scores.size)
        return real(scores, N, order, **kw)

    monkeypatch.setattr(pruned_topn, "top_n", counting)
    users = np.arange(X.shape[0])
    model.recommend(users, X, N=10)
    assert 0 < sum(scored) < 0.8 * users.size * N_ITEMS
