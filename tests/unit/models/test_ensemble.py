"""The ensemble: a weighted min-max blend of its members, their params, persistence and params errors."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest
import scipy.sparse as sp

from musicrec.models.ensemble import EnsembleRecommender
from musicrec.models.factory import build_model, component_names, default_params, load_model, validate_params
from musicrec.models.ranking import minmax_rows

N_ITEMS = 60
FAST = {"als": {**default_params("als"), "factors": 8, "iterations": 3},
        "ease": {**default_params("ease"), "l2": 10.0}}


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(5)
    block = np.arange(N_ITEMS) // 20
    p = np.where(block[None, :] == (np.arange(90) % 3)[:, None], 0.4, 0.03)
    return sp.csr_matrix((rng.random((90, N_ITEMS)) < p).astype(np.float32))


def ensemble(**kw) -> EnsembleRecommender:
    params = {**default_params("ensemble"), **kw}
    comps = {n: FAST[n] for n in component_names("ensemble", params) if n in FAST}
    return build_model("ensemble", params, seed=0, component_params=comps or None)


def test_the_score_is_the_weighted_sum_of_the_members_minmax_scores(X):
    model = ensemble(model_1="als", weight_1=0.5, model_2="ease", weight_2=0.3, model_3="rp3beta",
                     weight_3=0.2).fit(X)
    assert sorted(model.parts) == ["model_1", "model_2", "model_3"]
    assert [p.name for p in model.parts.values()] == ["als", "ease", "rp3beta"]
    users = np.arange(10)
    expected = sum(w * minmax_rows(model.parts[role].score(users, X[users]))
                   for role, w in (("model_1", 0.5), ("model_2", 0.3), ("model_3", 0.2)))
    np.testing.assert_allclose(model.score(users, X[users]), expected, rtol=1e-5, atol=1e-6)


def test_two_members_and_a_zero_weight(X):
    model = ensemble(model_1="rp3beta", weight_1=1.0, model_2="itemknn", weight_2=0.0, model_3=None).fit(X)
    assert list(model.parts) == ["model_1", "model_2"]
    users = np.arange(5)
    np.testing.assert_allclose(model.score(users, X[users]), minmax_rows(model.parts["model_1"].score(users, X[users])))


def test_members_take_their_own_sections():
    from musicrec.pipeline.local import params_for
    from musicrec.pipeline.train import build

    assert component_names("ensemble", default_params("ensemble")) == ("als", "ease", "rp3beta")
    params = params_for(0, train={"models": ["popularity", "ensemble"], "als": FAST["als"],
                                  "ensemble": {"model_3": None}})
    model = build("ensemble", params.train, 0)
    als = model.parts["model_1"].get_params()
    assert (als["factors"], als["iterations"]) == (8, 3)
    assert component_names("ensemble", params.train.model_params("ensemble")) == ("als", "ease")


def test_save_load_keeps_members_and_weights(X, tmp_path):
    model = ensemble(model_1="ease", weight_1=2.0, model_2="userknn", weight_2=1.0, model_3=None).fit(X)
    model.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir() if p.is_dir()) == ["model_1", "model_2"]
    loaded = load_model(tmp_path / "m")
    assert loaded.get_params() == model.get_params()
    assert [p.name for p in loaded.parts.values()] == ["ease", "userknn"]
    users = np.array([0, 1, 2, -1])
    Q = sp.vstack([X[:3], sp.csr_matrix((1, N_ITEMS), dtype=np.float32)]).tocsr()
    np.testing.assert_array_equal(loaded.score(users, Q), model.score(users, Q))
    np.testing.assert_array_equal(loaded.item_similarity(np.array([0, 7])), model.item_similarity(np.array([0, 7])))


@pytest.mark.parametrize("kw, message", [
    ({"model_2": "als"}, r"model_1 \.\. model_3 must be distinct models \(got \['als', 'als', 'rp3beta'\]\)"),
    ({"model_3": "content"}, r"model_3: .*must be one of the collaborative models"),
    ({"model_1": "ensemble"}, r"model_1: .*must be one of the collaborative models"),
    ({"weight_1": 0.0, "weight_2": 0.0, "weight_3": 0.0}, r"must not all be 0"),
    ({"weight_2": -1.0}, r"weight_2: Input should be greater than or equal to 0"),
])
def test_constructor_errors_name_the_argument(kw, message):
    with pytest.raises(ValueError, match=message):
        EnsembleRecommender(**kw)


@pytest.mark.parametrize("kw, message", [
    ({"model_2": "hybrid"}, r"train\.ensemble\.model_2: must be one of the collaborative models"),
    ({"model_1": None}, r"train\.ensemble\.model_1: must be one of the collaborative models"),
    ({"model_3": "ease"}, r"train\.ensemble: .*must be distinct models"),
    ({"weight_3": True}, r"train\.ensemble\.weight_3"),
    ({"weight_1": 0.0, "weight_2": 0.0, "model_3": None},
     r"train\.ensemble: .*weight_1 \.\. weight_3 .*must not all be 0"),
    ({"model_4": "bpr"}, r"train\.ensemble\.model_4: unknown"),
])
def test_params_errors_name_the_key(kw, message):
    with pytest.raises(ValueError, match=message):
        validate_params("ensemble", {**default_params("ensemble"), **kw})


def test_with_weights_reblends_the_fitted_members(X):
    from musicrec.models.base import NotFittedError

    model = ensemble(model_1="rp3beta", model_2="itemknn", model_3=None)
    with pytest.raises(NotFittedError):
        model.with_weights(weight_1=0.5)
    model.fit(X)
    other = model.with_weights(weight_1=0.25, weight_2=0.75)
    assert other.parts["model_1"] is model.parts["model_1"] and model.get_params()["weight_1"] == 1.0
    users = np.arange(6)
    expected = 0.25 * minmax_rows(model.parts["model_1"].score(users, X[users])) \
        + 0.75 * minmax_rows(model.parts["model_2"].score(users, X[users]))
    np.testing.assert_allclose(other.score(users, X[users]), expected, rtol=1e-5, atol=1e-6)
    ids, _ = other.recommend(users, X[users], N=5)
    assert not any(set(ids[u]) & set(X[u].indices) for u in users)
    with pytest.raises(ValueError, match="with_weights takes only weight_1, weight_2, weight_3"):
        model.with_weights(model_2="als")
    with pytest.raises(ValueError, match="must not all be 0"):
        model.with_weights(weight_1=0.0, weight_2=0.0)
