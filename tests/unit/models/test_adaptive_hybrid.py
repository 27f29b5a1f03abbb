"""The activity-adaptive hybrid: tier selection, per-tier blends, component params, persistence, params errors."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from musicrec.models.adaptive_hybrid import AdaptiveHybridRecommender
from musicrec.models.factory import build_model, component_names, default_params, load_model, validate_params
from musicrec.models.features import build_item_features
from musicrec.models.ranking import minmax_rows

N_ITEMS = 60
FAST_ALS = {**default_params("als"), "factors": 8, "iterations": 3}
ONLY = {"popularity": {"popularity": 1.0}, "content": {"content": 1.0}, "collaborative": {"collaborative": 1.0}}


def rows_with(counts: list[int]) -> sp.csr_matrix:
    """One row per count, holding that many items (0, 1, 2, ...)."""
    return sp.csr_matrix(np.array([[1.0] * c + [0.0] * (N_ITEMS - c) for c in counts], dtype=np.float32))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    block = np.arange(N_ITEMS) // 20
    X = sp.csr_matrix((rng.random((90, N_ITEMS)) < np.where(block[None, :] == (np.arange(90) % 3)[:, None], 0.4, 0.03))
                      .astype(np.float32))
    items = pd.DataFrame({"item_id": [str(i) for i in range(N_ITEMS)],
                          "tags": [f"g{b},s{rng.integers(0, 4)}" for b in block], "energy": rng.normal(size=N_ITEMS)})
    feats = build_item_features(items, items["item_id"].to_numpy(), tag_weight=1.0, audio_weight=0.5)
    return X, feats


def adaptive(tiers, weights, **kw) -> AdaptiveHybridRecommender:
    params = {**default_params("adaptive_hybrid"), "collaborative": "als", "tiers": tiers, "weights": weights, **kw}
    fast = {"als": FAST_ALS} if params["collaborative"] == "als" else None
    return build_model("adaptive_hybrid", params, seed=0, component_params=fast)


def test_tier_of_counts_items_in_the_row():
    model = adaptive([5, 20], [ONLY["popularity"], ONLY["content"], ONLY["collaborative"]])
    counts = [0, 4, 5, 19, 20, 60]
    assert model.tier_of(rows_with(counts)).tolist() == [0, 0, 1, 1, 2, 2]
    assert adaptive([1], [ONLY["popularity"], ONLY["content"]]).tier_of(rows_with([0, 1, 2])).tolist() == [0, 1, 1]


def test_each_tier_gets_its_own_blend(data):
    X, feats = data
    model = adaptive([5, 20], [ONLY["popularity"], ONLY["content"], ONLY["collaborative"]]).fit(X, item_features=feats)
    Q = rows_with([3, 10, 30])
    ids = np.array([-1, -1, -1])
    s = model.score(ids, Q)
    np.testing.assert_allclose(s[0], minmax_rows(model.parts["popularity"].score(ids[:1], Q[0]))[0], rtol=1e-6)
    np.testing.assert_allclose(s[1], minmax_rows(model.content.score(ids[:1], Q[1]))[0], rtol=1e-6)
    np.testing.assert_allclose(s[2], minmax_rows(model.collab.score(ids[:1], Q[2]))[0], rtol=1e-6)


def test_mixed_weights_are_a_weighted_minmax_sum(data):
    X, feats = data
    w = [{"collaborative": 0.2, "content": 0.5, "popularity": 0.3}, {"collaborative": 0.9, "content": 0.1}]
    model = adaptive([8], w).fit(X, item_features=feats)
    users = np.arange(20)
    Q = X[users]
    parts = {role: minmax_rows(model.parts[role].score(users, Q)) for role in ("collaborative", "content", "popularity")}
    tier = model.tier_of(Q)
    expected = np.stack([sum(w[t].get(r, 0.0) * parts[r][i] for r in parts) for i, t in enumerate(tier)])
    assert set(tier) == {0, 1}
    np.testing.assert_allclose(model.score(users, Q), expected, rtol=1e-5, atol=1e-6)


def test_component_params_come_from_their_sections(data):
    X, feats = data
    assert component_names("adaptive_hybrid", default_params("adaptive_hybrid")) == ("userknn", "content", "popularity")
    assert component_names("adaptive_hybrid", {"collaborative": "als"}) == ("als", "content", "popularity")
    model = adaptive([5], [ONLY["popularity"], ONLY["collaborative"]]).fit(X, item_features=feats)
    assert model.collab.item_factors.shape == (N_ITEMS, 8)
    from musicrec.pipeline.local import params_for
    from musicrec.pipeline.train import build

    params = params_for(0, train={"models": ["popularity", "adaptive_hybrid"], "als": FAST_ALS,
                                  "adaptive_hybrid": {"collaborative": "als"}})
    als = build("adaptive_hybrid", params.train, 0).collab.get_params()
    assert (als["factors"], als["iterations"]) == (8, 3)


def test_save_load_keeps_tiers_weights_and_components(data, tmp_path):
    X, feats = data
    w = [{"collaborative": 0.1, "content": 0.6, "popularity": 0.3}, {"collaborative": 1.0}]
    model = adaptive([6], w, collaborative="userknn").fit(X, item_features=feats)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir() if p.is_dir()) == ["collaborative", "content", "popularity"]
    loaded = load_model(tmp_path / "m")
    assert loaded.get_params() == model.get_params() and loaded.tiers == [6]
    assert loaded.collab.name == "userknn"
    Q = sp.vstack([X[:5], rows_with([2])]).tocsr()
    np.testing.assert_array_equal(loaded.score(np.array([0, 1, 2, 3, 4, -1]), Q),
                                  model.score(np.array([0, 1, 2, 3, 4, -1]), Q))


def test_needs_item_features(data):
    with pytest.raises(ValueError, match="needs item_features at fit .for its content component"):
        adaptive([5], [ONLY["popularity"], ONLY["collaborative"]]).fit(data[0])


@pytest.mark.parametrize("kw, message", [
    ({"tiers": [20, 5]}, r"tiers must be strictly ascending \(got \[20, 5\]\)"),
    ({"tiers": [0, 5]}, r"tiers must be a list of positive integers"),
    ({"tiers": [5], "weights": [{"content": 1.0}]}, r"weights must hold one weight set per tier, len\(tiers\) \+ 1 = 2"),
    ({"tiers": [5], "weights": [{"content": -1.0}, {"content": 1.0}]},
     r"weights\[0\]\.content must be a finite number >= 0 \(got -1.0\)"),
    ({"tiers": [5], "weights": [{"content": 1.0}, {"content": 0.0}]}, r"weights\[1\]: .* must not all be 0"),
    ({"tiers": [5], "weights": [{"content": 1.0}, {"audio": 1.0}]}, r"weights\[1\] must be a mapping with keys among"),
    ({"collaborative": "content"}, r"collaborative must be one of"),
])
def test_constructor_errors_name_the_argument(kw, message):
    with pytest.raises(ValueError, match=message):
        AdaptiveHybridRecommender(**kw)


@pytest.mark.parametrize("kw, message", [
    ({"tiers": [20, 5]}, r"train\.adaptive_hybrid\.tiers: must be strictly ascending"),
    ({"tiers": [0]}, r"train\.adaptive_hybrid\.tiers\.0: Input should be greater than or equal to 1"),
    ({"tiers": [5, True]}, r"train\.adaptive_hybrid\.tiers\.1: Input should be a valid integer"),
    ({"tiers": [5]}, r"train\.adaptive_hybrid\.weights: must hold one weight set per tier: len\(tiers\) \+ 1 = 2 sets, 3"),
    ({"weights": [{"content": 1}, {"content": -1}, {"content": 1}]}, r"train\.adaptive_hybrid\.weights\.1\.content"),
    ({"weights": [{"content": 1}, {"content": 0}, {"content": 1}]},
     r"train\.adaptive_hybrid\.weights\.1: collaborative, content and popularity must not all be 0"),
    ({"weights": [{"content": 1}, {"contnt": 1}, {"content": 1}]}, r"train\.adaptive_hybrid\.weights\.1\.contnt: unknown"),
    ({"collaborative": "hybrid"}, r"train\.adaptive_hybrid\.collaborative: must be one of the collaborative models"),
])
def test_params_errors_name_the_key(kw, message):
    with pytest.raises(ValueError, match=message):
        validate_params("adaptive_hybrid", {**default_params("adaptive_hybrid"), **kw})
