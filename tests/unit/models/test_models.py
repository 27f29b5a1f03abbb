"""Model-specific known answers for musicrec.models."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from musicrec.config import MODELS
from musicrec.models.features import build_item_features
from musicrec.models.factory import MODEL_NAMES, build_model, default_params, load_model
from musicrec.models.ranking import minmax_rows, top_n


def csr(rows):
    return sp.csr_matrix(np.asarray(rows, dtype=np.float32))


# --------------------------------------------------------------------------- registry


def test_registry_matches_config():
    assert MODEL_NAMES == MODELS


def test_build_model_validates_params():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        build_model("nope", {}, seed=0)
    with pytest.raises(ValueError, match=r"train\.als\.factorz: unknown key"):
        build_model("als", {**default_params("als"), "factorz": 3}, seed=0)
    with pytest.raises(ValueError, match=r"train\.als\.factors"):
        build_model("als", {**default_params("als"), "factors": -4}, seed=0)
    with pytest.raises(ValueError, match="only accepted by the hybrid"):
        build_model("als", default_params("als"), seed=0, component_params={"als": {}})
    with pytest.raises(ValueError, match=r"train\.bpr\.factors"):
        build_model("hybrid", {**default_params("hybrid"), "collaborative": "bpr"}, seed=0,
                    component_params={"bpr": {"factors": 0}})
    with pytest.raises(ValueError, match="component_params has keys"):
        build_model("hybrid", default_params("hybrid"), seed=0, component_params={"ease": {}})


def test_fit_input_errors():
    model = build_model("popularity", {"recent_days": None}, seed=0)
    with pytest.raises(ValueError, match="CSR"):
        model.fit(np.ones((2, 2)))
    with pytest.raises(ValueError, match="no interactions"):
        model.fit(sp.csr_matrix((3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="NaN"):
        model.fit(csr([[np.nan, 1], [1, 0]]))
    with pytest.raises(ValueError, match="needs item_features"):
        build_model("content", default_params("content"), seed=0).fit(csr([[1, 0], [0, 1]]))


# --------------------------------------------------------------------------- popularity


def test_popularity_order_and_ties():
    # users per item: [1, 3, 2, 2]; items 2 and 3 tie on users, item 3 has more weight
    X = csr([[1, 1, 1, 0], [0, 1, 0, 5], [0, 1, 1, 5]])
    model = build_model("popularity", {"recent_days": None}, seed=0).fit(X)
    empty = sp.csr_matrix((1, 4), dtype=np.float32)
    ids, scores = model.recommend(np.array([-1]), empty, N=4)
    assert ids.tolist() == [[1, 3, 2, 0]]
    assert scores.tolist() == [[3, 2, 2, 1]]
    ids, _ = model.recommend(np.array([0]), X[:1], N=4)
    assert ids.tolist() == [[3, -1, -1, -1]]


def test_popularity_recency_half_life():
    X = csr([[1, 1, 0], [1, 1, 1], [1, 0, 1]])  # users per item: [3, 2, 2]
    day = 86_400.0
    ts = np.array([0.0, 10 * day, 10 * day])  # item 0 last played 10 days before the others
    model = build_model("popularity", {"recent_days": 5.0}, seed=0).fit(X, item_last_ts=ts)
    np.testing.assert_allclose(model.scores_, [3 * 0.25, 2, 2])
    ids, _ = model.recommend(np.array([-1]), sp.csr_matrix((1, 3), dtype=np.float32), N=3)
    assert ids.tolist() == [[1, 2, 0]]
    dt = np.array(["2020-01-01", "2020-01-11", "NaT"], dtype="datetime64[s]")
    model2 = build_model("popularity", {"recent_days": 5.0}, seed=0).set_item_last_ts(dt).fit(X)
    np.testing.assert_allclose(model2.scores_, [0.75, 2, 0.5])  # unknown time = oldest known
    with pytest.raises(ValueError, match="recent_days is set but fit"):
        build_model("popularity", {"recent_days": 5.0}, seed=0).fit(X)
    with pytest.raises(ValueError, match="one entry per item"):
        build_model("popularity", {"recent_days": 5.0}, seed=0).fit(X, item_last_ts=ts[:2])


# --------------------------------------------------------------------------- EASE


def test_ease_closed_form_3x3():
    X = csr([[1, 1, 0], [0, 1, 1], [1, 1, 1]])
    l2 = 0.5
    model = build_model("ease", {"l2": l2, "max_items": 10}, seed=0).fit(X)
    G = X.toarray().T.astype(np.float64) @ X.toarray() + l2 * np.eye(3)
    P = np.linalg.inv(G)
    B = np.eye(3) - P / np.diag(P)
    np.testing.assert_allclose(np.diag(B), 0, atol=1e-12)
    np.testing.assert_allclose(model.W, B, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.score(np.arange(3), X), X.toarray() @ B, rtol=1e-5, atol=1e-6)
    # B is the minimiser of ||X - XB||^2 + l2 ||B||^2 with diag(B)=0: check stationarity off the diagonal
    grad = -2 * X.toarray().T @ (X.toarray() - X.toarray() @ B) + 2 * l2 * B
    np.testing.assert_allclose(grad - np.diag(np.diag(grad)), 0, atol=1e-9)


def test_ease_too_many_items():
    X = sp.random(10, 20, density=0.3, format="csr", random_state=0, dtype=np.float32)
    with pytest.raises(ValueError, match=r"train\.ease\.max_items=10"):
        build_model("ease", {"l2": 1.0, "max_items": 10}, seed=0).fit(X)


# --------------------------------------------------------------------------- RP3beta / itemknn


def test_rp3beta_tiny_graph():
    X = csr([[1, 1, 0], [0, 1, 1], [1, 0, 0]])
    model = build_model("rp3beta", {"alpha": 1.0, "beta": 0.5, "k": 10}, seed=0).fit(X)
    r = 1 / np.sqrt(2)
    expected = np.array([[0, 0.25 * r, 0], [0.25 * r, 0, 0.25], [0, 0.5 * r, 0]])
    np.testing.assert_allclose(model.W.toarray(), expected, rtol=1e-6)
    top1 = build_model("rp3beta", {"alpha": 1.0, "beta": 0.5, "k": 1}, seed=0).fit(X)
    np.testing.assert_allclose(top1.W.toarray(), [[0, 0.25 * r, 0], [0, 0, 0.25], [0, 0.5 * r, 0]], rtol=1e-6)
    # alpha != 1 raises transition probabilities element-wise; beta = 0 removes the penalty
    sq = build_model("rp3beta", {"alpha": 2.0, "beta": 0.0, "k": 10}, seed=0).fit(X)
    assert sq.W[0, 1] == pytest.approx(0.5**2 * 0.5**2)  # via user 0 only: Piu(0->u0)^2 * Pui(u0->1)^2
    ids, _ = model.recommend(np.array([2]), X[2:], N=2)
    assert ids.tolist() == [[1, 2]]  # from item 0 the walk reaches item 1 only (item 2 is a zero-score tie)


def test_itemknn_cosine_matches_manual():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random((30, 8)) < 0.4).astype(np.float32))
    model = build_model("itemknn", {"similarity": "cosine", "k": 50}, seed=0).fit(X)
    A = X.toarray()
    norms = np.linalg.norm(A, axis=0)
    C = (A.T @ A) / np.outer(norms, norms)
    np.fill_diagonal(C, 0)
    np.testing.assert_allclose(model.W.toarray(), C, rtol=1e-5, atol=1e-6)
    k2 = build_model("itemknn", {"similarity": "cosine", "k": 2}, seed=0).fit(X)
    assert np.diff(k2.W.indptr).max() <= 2
    assert k2.W.diagonal().sum() == 0


# --------------------------------------------------------------------------- factor models


def test_bpr_is_reproducible_with_threads():
    X = sp.random(100, 40, density=0.1, format="csr", random_state=1, dtype=np.float32)
    params = {"factors": 8, "learning_rate": 0.05, "regularization": 0.01, "iterations": 20}
    a = build_model("bpr", params, seed=3, num_threads=2).fit(X)
    b = build_model("bpr", params, seed=3, num_threads=2).fit(X)
    np.testing.assert_array_equal(a.item_factors, b.item_factors)
    c = build_model("bpr", params, seed=4).fit(X)
    assert not np.array_equal(a.item_factors, c.item_factors)


def test_als_cold_user_is_recalculated():
    X = sp.random(100, 40, density=0.1, format="csr", random_state=1, dtype=np.float32)
    model = build_model("als", {"factors": 8, "regularization": 0.05, "alpha": 2.0, "iterations": 10}, seed=0).fit(X)
    row = X[5]
    # an unseen user with the same history as user 5 gets (nearly) the same factors and scores
    cold = model._user_vectors(np.array([-1]), row)[0]
    np.testing.assert_allclose(cold, model.user_factors[5], atol=0.05)
    np.testing.assert_array_equal(model.recommend(np.array([-1]), row, N=3)[0],
                                  model.recommend(np.array([5]), row, N=3)[0])


def test_every_model_fits_with_config_defaults():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix((rng.random((60, 30)) < 0.2).astype(np.float32))
    items = pd.DataFrame({"item_id": [str(i) for i in range(30)], "tags": ["a,b"] * 15 + ["c"] * 15})
    feats = build_item_features(items, np.array([str(i) for i in range(30)]), tag_weight=1.0, audio_weight=0.5)
    for name in MODEL_NAMES:
        model = build_model(name, default_params(name), seed=1).fit(X, item_features=feats)
        ids, _ = model.recommend(np.arange(60), X, N=5)
        assert ids.shape == (60, 5)


# --------------------------------------------------------------------------- content / hybrid


def _content_setup():
    tags = ["rock"] * 5 + ["jazz"] * 5 + ["rock"]  # item 10 is a new rock track without plays
    items = pd.DataFrame({"item_id": [f"t{i}" for i in range(11)], "tags": tags})
    feats = build_item_features(items, items["item_id"].to_numpy(), tag_weight=1.0, audio_weight=0.0)
    X = sp.lil_matrix((6, 11), dtype=np.float32)
    for u in range(3):
        X[u, [0, 1, 2, 3]] = 1
    for u in range(3, 6):
        X[u, [5, 6, 7, 8]] = 1
    return X.tocsr(), feats


def test_content_serves_new_tracks_and_new_users():
    X, feats = _content_setup()
    model = build_model("content", {"tag_weight": 1.0, "audio_weight": 0.0}, seed=0).fit(X, item_features=feats)
    assert model.item_popularity[10] == 0
    row = csr([[1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]])  # a new user who liked two rock tracks
    ids, scores = model.recommend(np.array([-1]), row, N=3)
    assert set(ids[0]) == {2, 3, 4} or 10 in ids[0]
    assert set(ids[0]) <= {2, 3, 4, 10}
    s = model.score(np.array([-1]), row)[0]
    assert s[10] == pytest.approx(1.0) and s[5] == 0.0
    assert model.explain(row, 10)[0][0] == "tag:rock"
    sim_ids, _ = model.similar_items(np.array([10]), N=4)
    assert set(sim_ids[0]) == {0, 1, 2, 3}


def test_content_params_reweight_features():
    X, feats = _content_setup()
    assert feats.audio_weight == 0.0
    model = build_model("content", {"tag_weight": 1.0, "audio_weight": 0.5}, seed=0).fit(X, item_features=feats)
    assert model.features.audio_weight == 0.5


def _hybrid_data():
    rng = np.random.default_rng(1)
    n_items = 60
    block = np.arange(n_items) // 20
    X = sp.csr_matrix((rng.random((80, n_items)) < np.where(block[None, :] == (np.arange(80) % 3)[:, None], 0.4, 0.03)).astype(np.float32))
    tags = [f"g{b},s{rng.integers(0, 4)}" for b in block]
    items = pd.DataFrame({"item_id": [str(i) for i in range(n_items)], "tags": tags,
                          "energy": rng.normal(size=n_items)})
    feats = build_item_features(items, items["item_id"].to_numpy(), tag_weight=1.0, audio_weight=0.5)
    return X, feats


def _hybrid(mmr, collaborative="itemknn", **kw):
    params = {**default_params("hybrid"), "collaborative": collaborative, "mmr_lambda": mmr, **kw}
    return build_model("hybrid", params, seed=0)


def test_hybrid_blend_is_weighted_minmax():
    X, feats = _hybrid_data()
    model = _hybrid(None).fit(X, item_features=feats)
    users = np.arange(10)
    expected = 0.8 * minmax_rows(model.collab.score(users, X[:10])) + 0.2 * minmax_rows(
        model.content.score(users, X[:10]))
    np.testing.assert_allclose(model.score(users, X[:10]), expected, rtol=1e-6)


def test_hybrid_component_params_are_used():
    X, feats = _hybrid_data()
    model = build_model("hybrid", {**default_params("hybrid"), "collaborative": "als"}, seed=0,
                        component_params={"als": {**default_params("als"), "factors": 8, "iterations": 3}})
    model.fit(X, item_features=feats)
    assert model.collab.item_factors.shape == (60, 8)


def test_mmr_lambda_one_equals_no_rerank():
    X, feats = _hybrid_data()
    plain = _hybrid(None).fit(X, item_features=feats)
    mmr1 = _hybrid(1.0).fit(X, item_features=feats)
    users = np.arange(80)
    a_ids, a_scores = plain.recommend(users, X, N=10)
    b_ids, b_scores = mmr1.recommend(users, X, N=10)
    np.testing.assert_array_equal(a_ids, b_ids)
    np.testing.assert_allclose(b_scores, a_scores / 1.0, rtol=1e-6)  # weights sum to 1


def test_mmr_diversifies():
    X, feats = _hybrid_data()
    plain = _hybrid(None).fit(X, item_features=feats)
    diverse = _hybrid(0.3).fit(X, item_features=feats)
    users = np.arange(80)
    V = feats.vectors

    def intra(ids):
        sims = []
        for row in ids:
            S = (V[row] @ V[row].T).toarray()
            sims.append((S.sum() - np.trace(S)) / (len(row) * (len(row) - 1)))
        return float(np.mean(sims))

    p_ids, _ = plain.recommend(users, X, N=10)
    d_ids, d_scores = diverse.recommend(users, X, N=10)
    assert intra(d_ids) < intra(p_ids) - 0.05
    assert (np.diff(d_scores, axis=1) <= 0).all()
    for u in users:
        assert not set(d_ids[u]) & set(X[u].indices)


def test_hybrid_popularity_recency_forwarded(tmp_path):
    X, feats = _hybrid_data()
    ts = np.arange(60, dtype=np.float64) * 86_400
    model = build_model("hybrid", {**default_params("hybrid"), "collaborative": "popularity"}, seed=0,
                        component_params={"popularity": {"recent_days": 3.0}})
    model.fit(X, item_features=feats, item_last_ts=ts)
    model.save(tmp_path / "h")
    loaded = load_model(tmp_path / "h")
    assert loaded.collab.recent_days == 3.0
    np.testing.assert_array_equal(loaded.collab.scores_, model.collab.scores_)


def test_tampered_component_raises(tmp_path):
    X, feats = _hybrid_data()
    model = _hybrid(None).fit(X, item_features=feats)
    model.save(tmp_path / "h")
    f = tmp_path / "h" / "collaborative" / "arrays.npz"
    raw = bytearray(f.read_bytes())
    raw[-100] ^= 0x01
    f.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"collaborative/arrays\.npz"):
        load_model(tmp_path / "h")


def test_load_rejects_wrong_dir(tmp_path):
    with pytest.raises(ValueError, match="model.json"):
        load_model(tmp_path)


# --------------------------------------------------------------------------- ranking helper


def test_top_n_ties_follow_order_and_pad():
    scores = np.array([[1, 3, 3, -np.inf, 0]], dtype=np.float32)
    ids, vals = top_n(scores, 6, order=np.array([4, 2, 1, 0, 3]))
    assert ids.tolist() == [[2, 1, 0, 4, -1, -1]]
    assert vals[0, :4].tolist() == [3, 3, 1, 0] and np.isneginf(vals[0, 4:]).all()
    ids, _ = top_n(scores, 2, order=np.array([0, 1, 2, 3, 4]))
    assert ids.tolist() == [[1, 2]]
