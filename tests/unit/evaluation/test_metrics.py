"""Ranking metrics: hand-computed cases, hypothesis cross-checks, implicit agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicrec.evaluation import beyond_accuracy as B
from musicrec.evaluation import reference_metrics as R
from musicrec.evaluation import metrics as M

def csr(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


def one(recs, rel_rows, n_items, k):
    out = M.accuracy_metrics(np.array(recs), csr(rel_rows, n_items), [k])
    return {m: out[f"{m}@{k}"] for m in M.ACCURACY_METRICS}


# --------------------------------------------------------------------------- hand-computed


def test_perfect_ranking_is_one():
    out = one([[2, 0, 1]], [[0, 1, 2]], 5, 3)
    for m, v in out.items():
        assert v[0] == pytest.approx(1.0), m


def test_no_hits_is_zero():
    out = one([[3, 4]], [[0, 1]], 5, 2)
    for m, v in out.items():
        assert v[0] == 0.0, m


def test_known_values():
    # relevant {1, 3}; hits at ranks 2 and 4
    out = one([[0, 1, 2, 3]], [[1, 3]], 5, 4)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert out["ndcg"][0] == pytest.approx(dcg / idcg)
    assert out["ndcg"][0] == pytest.approx(0.650921, abs=1e-6)
    assert out["map"][0] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert out["precision"][0] == pytest.approx(0.5)
    assert out["recall"][0] == pytest.approx(1.0)
    assert out["hit_rate"][0] == 1.0


def test_capped_recall_divides_by_min_r_k():
    # Liang et al.'s Recall@k: 5 relevant, k=2, both top-2 relevant -> 2 / min(5, 2) = 1 (plain recall: 2/5)
    recs, rel = np.array([[0, 1, 9], [7, 3, 8]]), csr([[0, 1, 2, 3, 4], [3]], 10)
    capped = M.capped_recall_metrics(recs, rel, [2, 3])
    assert capped["recall_capped@2"].tolist() == [1.0, 1.0]
    assert capped["recall_capped@3"][0] == pytest.approx(2 / 3)
    assert M.accuracy_metrics(recs, rel, [2])["recall@2"][0] == pytest.approx(2 / 5)
    empty = M.capped_recall_metrics(recs, csr([[], [3]], 10), [2])["recall_capped@2"]
    assert math.isnan(empty[0]) and empty[1] == 1.0


def test_ap_denominator_is_min_r_k():
    # 5 relevant, k=2, both top-2 relevant -> AP = (1 + 1) / min(5, 2) = 1
    out = one([[0, 1, 9]], [[0, 1, 2, 3, 4]], 10, 2)
    assert out["map"][0] == pytest.approx(1.0)
    assert out["ndcg"][0] == pytest.approx(1.0)
    assert out["recall"][0] == pytest.approx(2 / 5)


def test_padding_and_k_beyond_list_length():
    out = one([[0, -1]], [[0]], 3, 5)
    assert out["precision"][0] == pytest.approx(1 / 5)  # short lists are not forgiven
    assert out["recall"][0] == 1.0
    assert out["ndcg"][0] == 1.0
    assert out["map"][0] == 1.0


def test_users_without_relevant_items_are_nan():
    out = M.accuracy_metrics(np.array([[0, 1], [0, 1]]), csr([[0], []], 3), [2])
    for m in M.ACCURACY_METRICS:
        assert not np.isnan(out[f"{m}@2"][0])
        assert np.isnan(out[f"{m}@2"][1])
    assert M.n_relevant(csr([[0], []], 3)).tolist() == [1, 0]


def test_duplicate_recommendation_counts_once():
    h = M.hits_matrix(np.array([[0, 0, 1, 0]]), csr([[0]], 3))
    assert h.tolist() == [[True, False, False, False]]
    assert one([[0, 0]], [[0, 1]], 3, 2)["recall"][0] == 0.5


def test_padding_never_hits_even_when_key_collides():
    # recs -1 in row 1 -> key 1*n - 1 == key of (row 0, item n-1): must not be a hit
    rel = csr([[2], [0]], 3)
    assert M.hits_matrix(np.array([[2], [-1]]), rel).tolist() == [[True], [False]]


def test_noncanonical_csr_and_explicit_zeros():
    rel = sp.csr_matrix(
        (np.array([1.0, 0.0, 2.0]), np.array([3, 1, 0]), np.array([0, 3])), shape=(1, 4)
    )  # unsorted, explicit zero at item 1
    assert not rel.has_sorted_indices
    h = M.hits_matrix(np.array([[0, 1, 3]]), rel)
    assert h.tolist() == [[True, False, True]]
    assert M.n_relevant(rel).tolist() == [2]


def test_bad_inputs():
    with pytest.raises(ValueError, match="n_items"):
        M.hits_matrix(np.array([[5]]), csr([[0]], 3))
    with pytest.raises(ValueError, match="rows"):
        M.hits_matrix(np.array([[0], [1]]), csr([[0]], 3))
    with pytest.raises(ValueError, match="2-D"):
        M.hits_matrix(np.array([0]), csr([[0]], 3))
    with pytest.raises(ValueError, match="positive"):
        M.accuracy_metrics(np.array([[0]]), csr([[0]], 3), [0])


def test_empty_recs_columns():
    out = M.accuracy_metrics(np.zeros((2, 0), dtype=np.int64), csr([[0], [1]], 3), [3])
    assert out["precision@3"].tolist() == [0.0, 0.0]
    assert out["ndcg@3"].tolist() == [0.0, 0.0]


# --------------------------------------------------------------------------- hypothesis


@st.composite
def problems(draw):
    n_users = draw(st.integers(1, 8))
    n_items = draw(st.integers(1, 12))
    kmax = draw(st.integers(0, 7))
    item = st.integers(-1, n_items - 1)
    recs = np.array(
        [[draw(item) for _ in range(kmax)] for _ in range(n_users)], dtype=np.int64
    ).reshape(n_users, kmax)
    rel_rows = [sorted(draw(st.sets(st.integers(0, n_items - 1), max_size=n_items))) for _ in range(n_users)]
    ks = sorted(draw(st.sets(st.integers(1, 9), min_size=1, max_size=4)))
    return recs, csr(rel_rows, n_items), ks


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_vectorised_matches_reference(problem):
    recs, rel, ks = problem
    fast = M.accuracy_metrics(recs, rel, ks)
    ref = R.reference_accuracy(recs, rel, ks)
    assert fast.keys() == ref.keys()
    for key in ref:
        np.testing.assert_allclose(fast[key], ref[key], rtol=1e-12, atol=1e-12, err_msg=key)


@settings(max_examples=100, deadline=None)
@given(problems())
def test_small_functions_match_fused(problem):
    recs, rel, ks = problem
    fused = M.accuracy_metrics(recs, rel, ks)
    hits = M.hits_matrix(recs, rel)
    nrel = M.n_relevant(rel)
    fns = {
        "precision": M.precision_at_k,
        "recall": M.recall_at_k,
        "ndcg": M.ndcg_at_k,
        "map": M.average_precision_at_k,
        "hit_rate": M.hit_rate_at_k,
    }
    for k in ks:
        for m, fn in fns.items():
            np.testing.assert_allclose(fn(hits, nrel, k), fused[f"{m}@{k}"], rtol=1e-12, err_msg=f"{m}@{k}")


@settings(max_examples=100, deadline=None)
@given(problems())
def test_properties(problem):
    recs, rel, ks = problem
    all_ks = sorted(set(ks) | {1, 9})
    out = M.accuracy_metrics(recs, rel, all_ks)
    hits = M.hits_matrix(recs, rel)
    ok = M.n_relevant(rel) > 0
    for key, v in out.items():
        v = v[ok]
        assert np.all((v >= -1e-12) & (v <= 1 + 1e-12)), key
    for k in all_ks:
        hk = hits[:, :k].sum(axis=1)[ok]
        np.testing.assert_allclose(out[f"precision@{k}"][ok] * k, hk)
        assert set(np.unique(out[f"hit_rate@{k}"][ok])) <= {0.0, 1.0}
    for k1, k2 in zip(all_ks, all_ks[1:]):
        assert np.all(out[f"recall@{k2}"][ok] >= out[f"recall@{k1}"][ok] - 1e-12)
        assert np.all(out[f"hit_rate@{k2}"][ok] >= out[f"hit_rate@{k1}"][ok])


def test_large_random_matches_reference():
    rng = np.random.default_rng(3)
    n, ni, K = 400, 60, 12
    recs = np.argsort(rng.random((n, ni)), axis=1)[:, :K]
    recs[rng.random((n, K)) < 0.05] = -1
    rel = sp.random(n, ni, density=0.08, format="csr", random_state=4)
    ks = [1, 5, 10, 12, 20]
    fast, ref = M.accuracy_metrics(recs, rel, ks), R.reference_accuracy(recs, rel, ks)
    for key in ref:
        np.testing.assert_allclose(fast[key], ref[key], rtol=1e-12, err_msg=key)


# --------------------------------------------------------------------------- beyond accuracy


def test_item_popularity_and_coverage():
    train = csr([[0, 1], [1], [1, 2]], 5)
    assert B.item_popularity(train).tolist() == [1, 3, 1, 0, 0]
    recs = np.array([[0, 1, 2], [1, 3, -1]])
    assert B.catalogue_coverage(recs, 5, 1) == pytest.approx(2 / 5)
    assert B.catalogue_coverage(recs, 5, 3) == pytest.approx(4 / 5)


def test_novelty_and_arp_hand_case():
    pop = np.array([4, 2, 1, 0])
    recs = np.array([[0, 1], [2, 3], [-1, -1]])
    nov = B.novelty(recs, pop, 4, 2)
    assert nov[0] == pytest.approx((0 + 1) / 2)  # -log2(4/4)=0, -log2(2/4)=1
    assert nov[1] == pytest.approx(2.0)  # pop 1 and unseen (counted as 1): -log2(1/4)=2
    assert np.isnan(nov[2])
    arp = B.average_recommendation_popularity(recs, pop, 2)
    assert arp[:2].tolist() == [3.0, 0.5]
    arpn = B.average_recommendation_popularity(recs, pop, 2, normalise_by=4)
    assert arpn[:2].tolist() == [0.75, 0.125]
    np.testing.assert_allclose(R.reference_novelty(recs, pop, 4, 2), nov)


def test_ild_hand_cases_dense_and_sparse():
    v = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    recs = np.array([[0, 1, -1], [0, 2, -1], [0, 1, 2], [0, -1, -1], [0, 3, -1], [1, 1, -1]])
    expect = [0.0, 1.0, (0 + 1 + 1) / 3, np.nan, 1.0, 0.0]
    for vec in (v, sp.csr_matrix(v)):
        np.testing.assert_allclose(B.intra_list_diversity(recs, vec, 3), expect)
    np.testing.assert_allclose(R.reference_ild(recs, v, 3), expect)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_ild_matches_reference_random(seed):
    rng = np.random.default_rng(seed)
    ni, d = int(rng.integers(1, 15)), int(rng.integers(1, 6))
    v = rng.normal(size=(ni, d)) * (rng.random((ni, 1)) > 0.1)
    recs = rng.integers(-1, ni, size=(int(rng.integers(1, 6)), int(rng.integers(0, 7))))
    k = int(rng.integers(1, 8))
    ref = R.reference_ild(recs, v, k)
    np.testing.assert_allclose(B.intra_list_diversity(recs, v, k), ref, atol=1e-9)
    np.testing.assert_allclose(B.intra_list_diversity(recs, sp.csr_matrix(v), k), ref, atol=1e-9)


# --------------------------------------------------------------------------- implicit


def test_agrees_with_implicit_where_definitions_coincide():
    pytest.importorskip("implicit")
    from implicit.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k, train_test_split

    rng = np.random.default_rng(0)
    n_users, n_items = 300, 120
    # clustered preferences so the model has something to learn
    user_grp, item_grp = rng.integers(0, 4, n_users), rng.integers(0, 4, n_items)
    p = np.where(user_grp[:, None] == item_grp[None, :], 0.15, 0.02)
    dense = (rng.random((n_users, n_items)) < p).astype(np.float32)
    ratings = sp.csr_matrix(dense)
    train, test = train_test_split(ratings, 0.8, random_state=1)
    train, test = train.tocsr().astype(np.float32), test.tocsr().astype(np.float32)

    model = AlternatingLeastSquares(factors=8, iterations=4, random_state=0, use_gpu=False)
    model.fit(train, show_progress=False)
    users = np.arange(n_users, dtype=np.int32)
    for K in (5, 10):
        ids, _ = model.recommend(users, train[users], N=K)
        ours = M.accuracy_metrics(ids, test, [K])
        theirs = ranking_metrics_at_k(model, train, test, K=K, show_progress=False)
        nrel = M.n_relevant(test)
        assert np.nanmean(ours[f"ndcg@{K}"]) == pytest.approx(theirs["ndcg"], rel=1e-9)
        assert np.nanmean(ours[f"map@{K}"]) == pytest.approx(theirs["map"], rel=1e-9)
        hits_k = M.hits_matrix(ids, test)[:, :K].sum(axis=1)
        assert M.implicit_precision(hits_k, nrel, K) == pytest.approx(theirs["precision"], rel=1e-9)
        assert theirs["ndcg"] > 0.05  # the model learned something: a non-trivial check
