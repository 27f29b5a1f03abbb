"""User-kNN known answers: hand-computed scores, fold-in, shrink, BM25 = implicit's weighting, persistence, params."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest
import scipy.sparse as sp

from musicrec.models.factory import build_model, default_params, load_model, validate_params
from musicrec.models.userknn import UserKNNRecommender

# 3 listeners x 4 items; norms sqrt(2), sqrt(2), sqrt(3)
# cosine: sim(0,1) = 1/2, sim(0,2) = sim(1,2) = 1/sqrt(6)
X3 = sp.csr_matrix(np.array([[1, 1, 0, 0],
                             [1, 0, 1, 0],
                             [0, 1, 1, 1]], dtype=np.float32))
S6 = 1 / np.sqrt(6)


def knn(**kw) -> UserKNNRecommender:
    """User-kNN on the raw counts (``weighting: raw``), as the hand computations below assume."""
    return build_model("userknn", {**default_params("userknn"), "weighting": "raw", **kw}, seed=0).fit(X3)


def test_one_neighbour_hand_computed():
    s = knn(k=1).score(np.arange(3), X3)
    np.testing.assert_allclose(s[0], [0.5, 0, 0.5, 0], rtol=1e-6)      # 0's neighbour: 1 (1/2)
    np.testing.assert_allclose(s[1], [0.5, 0.5, 0, 0], rtol=1e-6)      # 1's neighbour: 0 (1/2)
    # 2 is as similar to 0 as to 1 (1/sqrt(6)): either one, with that weight
    assert s[2].max() == pytest.approx(S6) and np.isclose(s[2], S6).sum() == 2


def test_two_neighbours_hand_computed():
    s = knn(k=2).score(np.arange(3), X3)
    np.testing.assert_allclose(s[0], [0.5, S6, 0.5 + S6, S6], rtol=1e-6)
    np.testing.assert_allclose(s[2], [2 * S6, S6, S6, 0], rtol=1e-6)
    ids, scores = knn(k=2).recommend(np.array([0]), X3[:1], N=2)
    assert ids[0].tolist() == [2, 3] and scores[0, 0] == pytest.approx(0.5 + S6)  # items 0, 1 are seen


def test_shrink_damps_similarities():
    s = knn(k=2, shrink=1.0).score(np.array([0]), X3[:1])
    w01, w02 = 1 / (2 + 1), 1 / (np.sqrt(6) + 1)
    np.testing.assert_allclose(s[0], [w01, w02, w01 + w02, w02], rtol=1e-6)


def test_fold_in_of_an_unseen_listener():
    model = knn(k=2)
    row = sp.csr_matrix(np.array([[0, 0, 0, 2]], dtype=np.float32))    # only item 3: listener 2 alone shares it
    s = model.score(np.array([-1]), row)
    np.testing.assert_allclose(s[0], [0, 1 / np.sqrt(3), 1 / np.sqrt(3), 1 / np.sqrt(3)], rtol=1e-6)
    nb = model.neighbours(np.array([-1]), row)
    assert nb.indices.tolist() == [2] and nb.data[0] == pytest.approx(1 / np.sqrt(3))
    # a training listener's row given as a new listener finds itself (sim 1); by its id it does not
    assert model.neighbours(np.array([-1]), X3[:1]).toarray()[0, 0] == pytest.approx(1.0)
    assert model.neighbours(np.array([0]), X3[:1]).toarray()[0, 0] == 0.0


def test_rows_without_neighbours_get_popularity():
    X = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [1, 0, 1, 0, 0], [0, 1, 1, 0, 1]], dtype=np.float32))
    model = build_model("userknn", default_params("userknn"), seed=0).fit(X)
    lonely = sp.csr_matrix(np.array([[0, 0, 0, 1, 0]], dtype=np.float32))  # an item no training listener has
    empty = sp.csr_matrix((1, 5), dtype=np.float32)
    np.testing.assert_array_equal(model.recommend(np.array([-1]), lonely, N=3)[0],
                                  model.recommend(np.array([-1]), empty, N=3)[0])


def test_bm25_is_implicit_weighting_then_cosine():
    from implicit.nearest_neighbours import bm25_weight

    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random((30, 12)) < 0.3) * rng.integers(1, 6, (30, 12)), dtype=np.float32)
    X = X[np.diff(X.indptr) > 0]
    model = build_model("userknn", {"similarity": "bm25", "k": 5, "shrink": 0.0, "weighting": "raw"}, seed=0).fit(X)
    A = sp.csr_matrix(bm25_weight(X, K1=1.2, B=0.75)).toarray().astype(np.float64)
    n = np.linalg.norm(A, axis=1)
    sims = (A @ A.T) / np.outer(n, n)
    np.fill_diagonal(sims, 0)
    expected = np.zeros(X.shape, dtype=np.float64)
    for u in range(X.shape[0]):
        top = np.argsort(-sims[u], kind="stable")[:5]
        expected[u] = sims[u, top] @ X.toarray()[top]
    np.testing.assert_allclose(model.score(np.arange(X.shape[0]), X), expected, rtol=1e-4, atol=1e-6)


def test_save_keeps_the_training_matrix_without_pickle(tmp_path):
    model = knn(k=2, similarity="bm25", shrink=0.5)
    model.save(tmp_path / "m")
    with np.load(tmp_path / "m" / "arrays.npz", allow_pickle=False) as z:
        assert {"X__data", "X__indices", "X__indptr", "X__shape"} <= set(z.files)
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, UserKNNRecommender) and loaded.get_params() == model.get_params()
    row = sp.csr_matrix(np.array([[0, 1, 0, 1]], dtype=np.float32))
    np.testing.assert_array_equal(loaded.score(np.array([-1, 1]), sp.vstack([row, X3[1]]).tocsr()),
                                  model.score(np.array([-1, 1]), sp.vstack([row, X3[1]]).tocsr()))


def test_neighbour_blocks_do_not_change_scores(monkeypatch):
    import musicrec.models.userknn as userknn

    model = knn(k=2)
    whole = model.score(np.arange(3), X3)
    monkeypatch.setattr(userknn, "_BLOCK_FLOATS", 1)  # one query row per block
    np.testing.assert_array_equal(model.score(np.arange(3), X3), whole)


@pytest.mark.parametrize("kw, message", [
    ({"similarity": "jaccard"}, r"similarity must be one of \('cosine', 'bm25'\) \(got 'jaccard'\)"),
    ({"k": 0}, r"k must be a positive integer \(got 0\)"),
    ({"k": True}, r"k must be a positive integer \(got True\)"),
    ({"shrink": -1.0}, r"shrink must be a finite number >= 0 \(got -1.0\)"),
    ({"shrink": float("nan")}, r"shrink must be a finite number >= 0 \(got nan\)"),
])
def test_constructor_errors_name_the_argument(kw, message):
    with pytest.raises(ValueError, match=message):
        UserKNNRecommender(**kw)


@pytest.mark.parametrize("kw, key", [
    ({"similarity": "jaccard"}, r"train\.userknn\.similarity"),
    ({"k": 0}, r"train\.userknn\.k"),
    ({"shrink": -1}, r"train\.userknn\.shrink"),
    ({"kk": 3}, r"train\.userknn\.kk: unknown key"),
])
def test_params_errors_name_the_key(kw, key):
    with pytest.raises(ValueError, match=key):
        validate_params("userknn", {**default_params("userknn"), **kw})


def test_item_similarity_is_the_cosine_of_listener_columns():
    # columns of X3: item 0 = (1, 1, 0), 1 = (1, 0, 1), 2 = (0, 1, 1), 3 = (0, 0, 1)
    sims = knn(k=2).item_similarity(np.array([0, 3]))
    np.testing.assert_allclose(sims, [[1, 0.5, 0.5, 0], [0, 1 / np.sqrt(2), 1 / np.sqrt(2), 1]], rtol=1e-6)
