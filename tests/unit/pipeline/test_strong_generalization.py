"""interactions.split.method: strong_generalization, the MSD protocol of Liang et al. (2018) and Steck (2019)."""

import numpy as np
import pytest
import scipy.sparse as sp

from musicrec.config import SplitParams
from musicrec.errors import DataError
from musicrec.models import collaborative_models
from musicrec.params_file import ParamsError
from musicrec.pipeline.interactions import split
from musicrec.pipeline.local import LocalPaths, params_for, run_local

SG = SplitParams(method="strong_generalization", heldout_users=6, query_fraction=0.8, min_user_items=5)


def _counts(seed=0, n_users=40, n_items=30, density=0.35):
    rng = np.random.default_rng(seed)
    m = sp.random(n_users, n_items, density=density, format="csr", random_state=seed,
                  data_rvs=lambda k: rng.integers(1, 9, k).astype(float))
    m.sort_indices()
    return m


def _users(m):
    return set(np.flatnonzero(np.diff(m.indptr) > 0).tolist())


def test_heldout_users_are_disjoint_sized_and_absent_from_train():
    counts = _counts()
    parts = split(counts, SG, np.random.default_rng(1))
    val, test, train, query = (_users(parts.validation), _users(parts.test), _users(parts.train),
                               _users(parts.query))
    assert len(val) == len(test) == 6 and not val & test
    assert not (val | test) & train, "held-out users have no training rows"
    assert query == val | test, "every held-out user reveals items at query time"


def test_each_heldout_user_is_scored_on_floor_20_percent_of_the_items_training_knows():
    counts = _counts(3)
    parts = split(counts, SG, np.random.default_rng(2))
    seen = np.asarray(parts.train.sum(axis=0)).ravel() > 0
    for scored in (parts.validation, parts.test):
        for u in _users(scored):
            kept = int(seen[counts[u].indices].sum())
            assert scored[u].nnz == int(np.floor(kept * 0.2 + 1e-9))
            assert parts.query[u].nnz == kept - scored[u].nnz
            assert set(scored[u].indices).isdisjoint(parts.query[u].indices)


def test_pairs_are_a_partition_except_heldout_pairs_on_items_no_training_user_has():
    counts = _counts(5)
    parts = split(counts, SG, np.random.default_rng(4))
    total = parts.train + parts.validation + parts.test + parts.query
    masks = [(m > 0).astype(int) for m in (parts.train, parts.validation, parts.test, parts.query)]
    assert (sum(masks) > 1).nnz == 0, "parts are disjoint"
    dropped = (counts != 0).astype(int) - (total != 0).astype(int)
    assert dropped.min() >= 0 and ((total - counts).multiply(total != 0)).nnz == 0, "values unchanged"
    seen = np.asarray(parts.train.sum(axis=0)).ravel() > 0
    dropped = dropped.tocoo()
    assert not seen[dropped.col].any(), "only pairs on items unknown to training are dropped"


def test_an_item_only_a_heldout_user_played_is_dropped_and_counted():
    # user 0 is the only one with item 5; with 2 of 3 users held out... make 12 users so user 0 can be held out
    dense = np.ones((12, 6))
    dense[:, 5] = 0
    dense[0, 5] = 4
    counts = sp.csr_matrix(dense)
    params = SplitParams(method="strong_generalization", heldout_users=5, min_user_items=5)
    for seed in range(30):
        parts = split(counts, params, np.random.default_rng(seed))
        if 0 in _users(parts.query):
            break
    else:
        pytest.fail("user 0 never held out")
    total = parts.train + parts.validation + parts.test + parts.query
    assert total[0, 5] == 0 and total.nnz == counts.nnz - 1


def test_same_seed_same_split_other_seed_other_users():
    counts = _counts(7)
    a, b, c = (split(counts, SG, np.random.default_rng(s)) for s in (9, 9, 10))
    for name in ("train", "validation", "test", "query"):
        assert (getattr(a, name) != getattr(b, name)).nnz == 0
    assert _users(a.test) != _users(c.test)


def test_heldout_fraction_when_no_count_is_given():
    counts = _counts(1, n_users=100)
    eligible = int((np.diff(counts.indptr) >= 5).sum())
    parts = split(counts, SplitParams(method="strong_generalization", heldout_fraction=0.2), np.random.default_rng(0))
    assert len(_users(parts.test)) == round(eligible * 0.2)


def test_too_many_heldout_users_is_a_message_naming_the_param():
    with pytest.raises(DataError, match=r"interactions\.split\.heldout_users below 19"):
        split(_counts(), SplitParams(method="strong_generalization", heldout_users=25), np.random.default_rng(0))


def _params(split, k):
    from musicrec.config import parse_params

    return parse_params({"seed": 1, "data": {"source": "synthetic"},
                         "generate": {"n_tracks": 1, "n_users": 1, "n_plays": 1, "n_artists": 1},
                         "train": {"models": ["popularity"]}, "interactions": {"split": split},
                         "evaluate": {"k": k, "main_k": k[0]}})


def test_the_protocol_cutoffs_must_be_evaluated():
    with pytest.raises(ParamsError, match=r"add \[100\] to evaluate\.k"):
        _params({"method": "strong_generalization"}, [20, 50])
    assert _params({"method": "strong_generalization"}, [20, 50, 100]).interactions.split.query_fraction == 0.8


@pytest.mark.parametrize("bad", [{"query_fraction": 1.0}, {"query_fraction": 0}, {"heldout_users": 0},
                                 {"heldout_fraction": 0.5}])
def test_split_params_bounds(bad):
    with pytest.raises(ParamsError, match=r"interactions\.split\." + next(iter(bad))):
        _params({"method": "strong_generalization", **bad}, [20, 50, 100])


def test_the_protocol_runs_end_to_end_and_reports_capped_recall(tmp_path):
    params = params_for(3, data={"chunk_rows": 2_000},
                        generate={"n_tracks": 300, "n_users": 400, "n_plays": 12_000, "n_genres": 4, "n_artists": 60},
                        transform={"partitions": 1}, dask={"scheduler": "synchronous", "num_workers": 1},
                        interactions={"split": {"method": "strong_generalization", "heldout_users": 40}},
                        train={"models": ["popularity", "itemknn"]},
                        evaluate={"k": [20, 50, 100], "main_k": 20, "bootstrap": 0, "sample_users": 0})
    run = run_local(params, LocalPaths.under(tmp_path))
    report = run.built.report["split"]
    assert report["method"] == "strong_generalization" and report["test_users"] == 40
    assert report["validation_users"] == 40 and "dropped_unseen_items" in report
    metrics = {name: r["metrics"] for name, r in run.assessment.results.items()}
    for name in ("popularity", "itemknn"):
        m = metrics[name]
        assert {"recall_capped@20", "recall_capped@50", "ndcg@100"} <= set(m)
        assert m["recall_capped@20"] >= m["recall@20"] - 1e-12, "capping the denominator only raises recall"
    assert metrics["itemknn"]["ndcg@100"] > metrics["popularity"]["ndcg@100"]


def _two_taste_groups(n_users=240, n_items=60, seed=0):
    """Users of group g play mostly items of half g: a held-out user's query rows say which half they like."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    half = n_items // 2
    for u in range(n_users):
        g = u % 2
        own = rng.choice(half, size=12, replace=False) + g * half
        other = rng.choice(half, size=2, replace=False) + (1 - g) * half
        for i in np.concatenate([own, other]):
            rows.append(u)
            cols.append(int(i))
    m = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n_users, n_items))
    m.sort_indices()
    return m


@pytest.mark.parametrize("name", [n for n in collaborative_models() if n != "popularity"])
def test_every_collaborative_model_folds_in_heldout_users_from_their_query_rows(name):
    """ALS/BPR fold the user in (recalculate_user / a solve), the neighbourhood models score from the query row."""
    from musicrec.models.factory import build_model, default_params

    counts = _two_taste_groups()
    parts = split(counts, SplitParams(method="strong_generalization", heldout_users=20, min_user_items=5),
                  np.random.default_rng(0))
    model = build_model(name, default_params(name), seed=0).fit(parts.train)
    users = np.array(sorted(_users(parts.test)))
    ids, _ = model.recommend(users, parts.query[users], N=5, filter_already_liked_items=True)
    half = counts.shape[1] // 2
    own = (ids // half) == (users % 2)[:, None]
    assert own.mean() > 0.8, f"{name}: recommendations ignore the held-out users' query rows"
    for row, u in zip(ids, users):
        assert set(row.tolist()).isdisjoint(parts.query[u].indices), "revealed items are not recommended"
