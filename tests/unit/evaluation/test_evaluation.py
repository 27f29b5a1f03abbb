"""Evaluation protocol: means, counts, bootstrap CIs, segments, paired tests, curves."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from musicrec.evaluation import protocol as E
from musicrec.evaluation import beyond_accuracy as B
from musicrec.evaluation import reference_metrics as R
from musicrec.evaluation import metrics as M

KS = [5, 10]


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(7)
    n_users, n_items = 240, 80
    train = sp.random(n_users, n_items, density=0.12, format="csr", random_state=1)
    test = sp.random(n_users, n_items, density=0.05, format="csr", random_state=2)
    test = test - test.multiply(train > 0)  # held-out items disjoint from train
    test = sp.csr_matrix(test)
    test.eliminate_zeros()
    keep = np.ones(n_users)
    keep[:7] = 0  # some users without test items
    test = sp.csr_matrix(sp.diags(keep) @ test)
    test.eliminate_zeros()
    # popularity-ish recs: noisy ranking biased to popular train items
    score = np.asarray(train.sum(axis=0)).ravel()[None, :] + rng.random((n_users, n_items)) * 3
    score[train.toarray() > 0] = -np.inf
    recs = np.argsort(-score, axis=1)[:, :10]
    vectors = rng.random((n_items, 6))
    return recs, test, train, vectors


def test_report_structure_counts_and_means(problem):
    recs, test, train, vectors = problem
    res = E.evaluate_model(recs, test, train, ks=KS, item_vectors=vectors, bootstrap=50, rng=0)
    json.dumps(res, allow_nan=False)  # plain JSON, no NaN
    nrel = M.n_relevant(test)
    assert res["n_users"] == recs.shape[0]
    assert res["n_users_evaluated"] == int((nrel > 0).sum())
    assert res["n_users_skipped"] == int((nrel == 0).sum()) >= 7
    pu = M.accuracy_metrics(recs, test, KS)
    for k in KS:
        for m in ("precision", "recall", "ndcg", "map", "hit_rate"):
            key = f"{m}@{k}"
            assert res["metrics"][key] == pytest.approx(np.nanmean(pu[key]), abs=1e-6)
            assert res["metrics"][key] == round(res["metrics"][key], 6)
            lo, hi = res["ci"][key]
            assert lo <= res["metrics"][key] <= hi
        for m in ("coverage", "novelty", "arp", "arp_norm", "ild"):
            assert res["metrics"][f"{m}@{k}"] is not None
    mask = nrel > 0
    pop = B.item_popularity(train)
    n_train = int((M.n_relevant(train) > 0).sum())
    assert res["metrics"]["novelty@10"] == pytest.approx(
        np.nanmean(R.reference_novelty(recs[mask], pop, n_train, 10)), abs=1e-6
    )
    assert res["metrics"]["coverage@10"] == pytest.approx(B.catalogue_coverage(recs[mask], 80, 10), abs=1e-6)
    assert res["metrics"]["ild@5"] == pytest.approx(np.nanmean(R.reference_ild(recs[mask], vectors, 5)), abs=1e-6)
    assert 0 <= res["metrics"]["arp_norm@10"] <= 1


def test_deterministic_and_bootstrap_off(problem):
    recs, test, train, _ = problem
    a = E.evaluate_model(recs, test, train, ks=KS, bootstrap=30, rng=np.random.default_rng(5))
    b = E.evaluate_model(recs, test, train, ks=KS, bootstrap=30, rng=np.random.default_rng(5))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    off = E.evaluate_model(recs, test, train, ks=KS, bootstrap=0, rng=None)
    assert off["ci"] == {} and off["metrics"] == a["metrics"]
    assert "ild@5" not in off["metrics"]


def test_users_subset_matches_full(problem):
    recs, test, train, _ = problem
    users = np.arange(20, 200, 3)
    sub = E.evaluate_model(recs[users], test, train, ks=KS, bootstrap=0, rng=0, users=users)
    direct = E.evaluate_model(
        recs[users], sp.csr_matrix(test)[users], sp.csr_matrix(train)[users], ks=KS, bootstrap=0, rng=0
    )
    for key in ("precision@5", "recall@10", "ndcg@10", "map@5", "hit_rate@10", "coverage@10"):
        assert sub["metrics"][key] == direct["metrics"][key]
    assert sub["n_users"] == len(users)
    with pytest.raises(ValueError, match="rows"):
        E.evaluate_model(recs, test, train, ks=KS, bootstrap=0, rng=0, users=users)


def test_segments_are_train_activity_terciles(problem):
    recs, test, train, _ = problem
    res = E.evaluate_model(recs, test, train, ks=KS, bootstrap=0, rng=0)
    seg = res["segments"]
    mask = M.n_relevant(test) > 0
    act = M.n_relevant(train)[mask]
    t1, t2 = np.quantile(act, [1 / 3, 2 / 3])
    assert seg["thresholds"] == {"light_max": round(float(t1), 6), "medium_max": round(float(t2), 6)}
    sizes = [seg[s]["n_users"] for s in E.SEGMENTS]
    assert sum(sizes) == res["n_users_evaluated"]
    assert sizes == [int((act <= t1).sum()), int(((act > t1) & (act <= t2)).sum()), int((act > t2).sum())]
    ndcg = M.accuracy_metrics(recs, test, [10])["ndcg@10"][mask]
    assert seg["heavy"]["metrics"]["ndcg@10"] == pytest.approx(ndcg[act > t2].mean(), abs=1e-6)


def test_bootstrap_means_equals_naive_resampling():
    rng = np.random.default_rng(0)
    x = rng.random((50, 3))
    fast = E.bootstrap_means(x, 40, np.random.default_rng(9))
    idx = np.random.default_rng(9).integers(0, 50, size=(40, 50))
    naive = np.stack([x[i].mean(axis=0) for i in idx])
    np.testing.assert_allclose(fast, naive, rtol=1e-12)
    np.testing.assert_allclose(E.bootstrap_means(np.full(30, 0.25), 10, 1), 0.25)


def test_bootstrap_chunking_is_consistent(monkeypatch):
    x = np.random.default_rng(1).random(1000)
    monkeypatch.setattr(E, "_BOOT_CHUNK_ELEMS", 3000)  # 3 resamples per block
    chunked = E.bootstrap_means(x, 20, 4)
    assert chunked.shape == (20, 1)
    assert np.all((chunked > x.mean() - 0.1) & (chunked < x.mean() + 0.1))


def test_paired_comparison():
    rng = np.random.default_rng(2)
    b = rng.random(300)
    a = b + 0.05 + rng.normal(0, 0.02, 300)
    a[:5] = np.nan
    res = E.paired_comparison(a, b, bootstrap=200, rng=3)
    json.dumps(res, allow_nan=False)
    keep = np.isfinite(a)
    assert res["n_users"] == 295
    assert res["mean_diff"] == pytest.approx(np.mean(a[keep] - b[keep]), abs=1e-6)
    assert res["ci"][0] > 0 and res["ci"][0] <= res["mean_diff"] <= res["ci"][1]
    w = stats.wilcoxon(a[keep] - b[keep])
    assert res["wilcoxon_p"] == round(float(w.pvalue), 6) and res["wilcoxon_p"] < 1e-6

    same = E.paired_comparison(b, b, bootstrap=10, rng=0)
    assert same["mean_diff"] == 0 and same["wilcoxon_p"] == 1.0 and same["ci"] == [0.0, 0.0]
    empty = E.paired_comparison(np.full(3, np.nan), np.ones(3), bootstrap=10, rng=0)
    assert empty["n_users"] == 0 and empty["mean_diff"] is None
    with pytest.raises(ValueError, match="aligned"):
        E.paired_comparison(np.ones(3), np.ones(4), bootstrap=0, rng=0)


def test_compare_to_baseline_and_curve(problem):
    recs, test, train, _ = problem
    rng = np.random.default_rng(0)
    rand_recs = np.argsort(rng.random(recs.shape[0:1] + (80,)), axis=1)[:, :10]
    per_user = {
        "popularity": E.per_user_metrics(rand_recs, test, ks=KS),
        "als": E.per_user_metrics(recs, test, ks=KS),
    }
    cmp = E.compare_to_baseline(per_user, metrics=["ndcg@10", "recall@5"], bootstrap=20, rng=1)
    assert list(cmp) == ["als"] and set(cmp["als"]) == {"ndcg@10", "recall@5"}
    with pytest.raises(ValueError, match="baseline"):
        E.compare_to_baseline({"als": per_user["als"]}, metrics=["ndcg@10"], bootstrap=0, rng=0)

    results = {
        name: E.evaluate_model(r, test, train, ks=KS, bootstrap=0, rng=0, per_user=per_user[name])
        for name, r in (("popularity", rand_recs), ("als", recs))
    }
    rows = E.metrics_curve(results, [10, 5])
    assert [(r["model"], r["k"]) for r in rows] == [("als", 5), ("als", 10), ("popularity", 5), ("popularity", 10)]
    assert set(rows[0]) == {"model", "k", "precision", "recall", "ndcg", "map", "hit_rate"}
    assert rows[1]["ndcg"] == results["als"]["metrics"]["ndcg@10"]
    json.dumps(rows, allow_nan=False)


def test_no_evaluable_users():
    test = sp.csr_matrix((3, 4))
    train = sp.csr_matrix(np.eye(3, 4))
    res = E.evaluate_model(np.zeros((3, 2), dtype=int), test, train, ks=[2], bootstrap=10, rng=0)
    json.dumps(res, allow_nan=False)
    assert res["n_users_evaluated"] == 0 and res["n_users_skipped"] == 3
    assert res["metrics"]["ndcg@2"] is None and res["ci"] == {}
