"""Per-model input weighting (``train.<model>.weighting``, :mod:`musicrec.models.weighting`), issue #15."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import scipy.sparse as sp

from musicrec.config import parse_params
from musicrec.models import MODELS, WEIGHTING_KEYS, WeightedParams
from musicrec.models.factory import build_model, load_model
from musicrec.models.weighting import SCHEMES, InputWeighting
from musicrec.params_file import ParamsError, read_params_file

# 2 users x 4 items (item 3 has no plays)
COUNTS = sp.csr_matrix(np.array([[1.0, 0, 3, 0], [0, 2, 0, 0]]))


def test_binary_raw_log1p_by_hand():
    got = {s: InputWeighting(s)(COUNTS) for s in ("binary", "raw", "log1p")}
    assert got["binary"].toarray().tolist() == [[1, 0, 1, 0], [0, 1, 0, 0]]
    assert got["raw"].toarray().tolist() == [[1, 0, 3, 0], [0, 2, 0, 0]]
    assert np.allclose(got["log1p"].toarray(), [[math.log(2), 0, math.log(4), 0], [0, math.log(3), 0, 0]])
    assert all(m.dtype == np.float32 and (m != 0).nnz == COUNTS.nnz for m in got.values())


def test_bm25_by_hand():
    # K1 = 1, B = 0.5: item lengths 1, 2, 3, 0 (mean 1.5) -> L = 5/6, 7/6, 3/2, 1/2;
    # idf_u = log(4) - log1p(items of u): user 0 log(4/3), user 1 log(2)
    w = InputWeighting("bm25", bm25_k1=1.0, bm25_b=0.5).fit(COUNTS)
    assert np.allclose(w.item_norm, [5 / 6, 7 / 6, 3 / 2, 1 / 2])
    expected = [[12 / 11 * math.log(4 / 3), 0, 4 / 3 * math.log(4 / 3), 0], [0, 24 / 19 * math.log(2), 0, 0]]
    got = w(COUNTS)
    assert got.dtype == np.float32 and np.allclose(got.toarray(), expected, rtol=1e-6)


def test_bm25_matches_implicit_on_the_item_user_matrix():
    from implicit.nearest_neighbours import bm25_weight

    m = sp.random(30, 20, density=0.3, format="csr", random_state=1,
                  data_rvs=lambda k: np.random.default_rng(1).integers(1, 50, k).astype(float))
    expected = bm25_weight(m.T.tocoo(), K1=100, B=0.8).T.toarray()
    got = InputWeighting("bm25", bm25_k1=100, bm25_b=0.8).fit(m)(m)
    assert np.allclose(got.toarray(), expected, rtol=1e-5)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_row_weighs_the_same_alone_as_in_the_train_matrix(scheme):
    m = sp.random(12, 9, density=0.4, format="csr", random_state=2,
                  data_rvs=lambda k: np.random.default_rng(2).integers(1, 9, k).astype(float))
    w = InputWeighting(scheme, bm25_k1=3.0, bm25_b=0.6).fit(m)
    assert np.array_equal(w(m[[4, 7]]).toarray(), w(m).toarray()[[4, 7]])


def test_bm25_needs_the_train_statistics():
    with pytest.raises(ValueError, match="fit"):
        InputWeighting("bm25")(COUNTS)
    with pytest.raises(ValueError, match="weighting must be one of"):
        InputWeighting("tfidf")


def test_every_model_but_the_hybrid_has_a_weighting():
    weighted = {name for name, spec in MODELS.items() if issubclass(spec.Params, WeightedParams)}
    assert weighted == set(MODELS) - {"hybrid", "adaptive_hybrid", "ensemble"}  # composites: their parts weigh
    assert set(WEIGHTING_KEYS) == {"weighting", "bm25_k1", "bm25_b"}
    assert MODELS["ease"].Params().weighting == "binary" and MODELS["als"].Params().weighting == "log1p"


def _counts(seed=0, n_users=40, n_items=25):
    return sp.random(n_users, n_items, density=0.3, format="csr", random_state=seed,
                     data_rvs=lambda k: np.random.default_rng(seed).integers(1, 30, k).astype(float))


@pytest.mark.parametrize("name", ["itemknn", "ease", "rp3beta", "als"])
def test_a_model_weighs_fit_and_query_rows_the_same(name):
    counts = _counts()
    binary = counts.copy()
    binary.data[:] = 1.0
    users = np.arange(10)
    on_counts = build_model(name, {"weighting": "binary"}, seed=3, num_threads=1).fit(counts)
    on_binary = build_model(name, {"weighting": "raw"}, seed=3, num_threads=1).fit(binary)
    a = on_counts.recommend(users, counts[users], N=5)
    b = on_binary.recommend(users, binary[users], N=5)
    assert np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1], rtol=1e-5)


def test_bm25_statistics_are_saved_with_the_model(tmp_path):
    counts = _counts(1)
    model = build_model("itemknn", {"weighting": "bm25", "bm25_k1": 5.0, "bm25_b": 0.5, "k": 10}, seed=0).fit(counts)
    model.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.all_params() == model.all_params()
    assert back.all_params()["weighting"] == "bm25" and back.input_weighting.bm25_k1 == 5.0
    assert np.array_equal(back.input_weighting.item_norm, model.input_weighting.item_norm)
    users = np.arange(counts.shape[0])
    assert np.array_equal(back.recommend(users, counts)[0], model.recommend(users, counts)[0])


def test_itemknn_bm25_similarity_uses_its_k1_and_b():
    counts = _counts(2)
    a = build_model("itemknn", {"similarity": "bm25", "weighting": "raw"}, seed=0).fit(counts)
    b = build_model("itemknn", {"similarity": "bm25", "weighting": "raw", "bm25_k1": 50.0, "bm25_b": 0.1},
                    seed=0).fit(counts)
    assert not np.allclose(a.W.toarray(), b.W.toarray())


def _params_with(edit):
    raw = copy.deepcopy(read_params_file("params.yaml"))
    edit(raw)
    return raw


def test_an_invalid_weighting_is_a_params_error_naming_the_key():
    raw = _params_with(lambda r: r["train"]["als"].update(weighting="tfidf"))
    with pytest.raises(ParamsError, match=r"train\.als\.weighting"):
        parse_params(raw)


def test_the_old_interactions_weighting_says_where_it_moved():
    raw = _params_with(lambda r: r["interactions"].update(weighting="log1p"))
    with pytest.raises(ParamsError, match=r"interactions\.weighting:? moved.*train\.<model>\.weighting"):
        parse_params(raw)


def test_ease_on_a_wide_matrix_matches_the_direct_inverse():
    """EASE with fewer users than items goes through the users x users matrix (Woodbury): same weights."""
    import scipy.linalg

    X = _counts(3, n_users=15, n_items=40)
    X.data[:] = 1.0
    model = build_model("ease", {"weighting": "binary", "l2": 3.0}, seed=0).fit(X)
    G = (X.T @ X).toarray() + 3.0 * np.eye(40)
    P = scipy.linalg.inv(G)
    B = P / (-np.diag(P))[None, :]
    np.fill_diagonal(B, 0.0)
    assert np.allclose(model.W, B, atol=1e-5)
