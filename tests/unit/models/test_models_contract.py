"""One contract suite, parametrised over every model in musicrec.models.MODEL_NAMES."""

from __future__ import annotations

import json
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from musicrec.models.features import build_item_features
from musicrec.models.factory import MODEL_NAMES, Recommender, build_model, default_params, load_model
from musicrec.models.base import NotFittedError

SEED = 7
N_USERS, N_ITEMS, N_BLOCKS = 200, 120, 6
# fast but still meaningful settings; every other param keeps the config default
FAST = {
    "als": {"factors": 16, "iterations": 10, "regularization": 0.05, "alpha": 2.0},
    "bpr": {"factors": 16, "learning_rate": 0.05, "regularization": 0.01, "iterations": 60},
    "ease": {"l2": 50.0, "max_items": 30_000},
    "itemknn": {"similarity": "cosine", "k": 30},
    "rp3beta": {"alpha": 1.0, "beta": 0.5, "k": 30},
}


def params_for(name: str) -> dict:
    return FAST.get(name, default_params(name))


def make(name: str, seed: int = SEED) -> Recommender:
    if name == "hybrid":
        return build_model(name, default_params(name), seed=seed, component_params={"als": FAST["als"]})
    return build_model(name, params_for(name), seed=seed)


def planted(seed: int = 0):
    """Users in 6 taste blocks of 20 items each (plus Zipf-popular noise); 20 % of each user's items held out."""
    rng = np.random.default_rng(seed)
    block_of_item = np.arange(N_ITEMS) // (N_ITEMS // N_BLOCKS)
    block_of_user = rng.integers(0, N_BLOCKS, N_USERS)
    pop = 1.0 / np.arange(1, N_ITEMS + 1) ** 0.7
    pop = pop[rng.permutation(N_ITEMS)]
    rows, cols = [], []
    for u in range(N_USERS):
        inside = np.flatnonzero(block_of_item == block_of_user[u])
        liked = rng.choice(inside, size=12, replace=False)
        noise = rng.choice(N_ITEMS, size=3, replace=False, p=pop / pop.sum())
        items = np.unique(np.concatenate([liked, noise]))
        rows += [u] * len(items)
        cols += list(items)
    data = rng.uniform(1.0, 5.0, len(rows)).astype(np.float32)
    full = sp.csr_matrix((data, (rows, cols)), shape=(N_USERS, N_ITEMS), dtype=np.float32)
    test_mask = rng.random(full.nnz) < 0.2
    coo = full.tocoo()
    train = sp.csr_matrix(
        (coo.data[~test_mask], (coo.row[~test_mask], coo.col[~test_mask])), shape=full.shape, dtype=np.float32
    )
    test = sp.csr_matrix(
        (coo.data[test_mask], (coo.row[test_mask], coo.col[test_mask])), shape=full.shape, dtype=np.float32
    )
    # content: a block tag (noisy) and audio features shifted per block, some nulls
    genres = ["rock", "jazz", "techno", "folk", "metal", "soul"]
    tags = []
    for i in range(N_ITEMS):
        b = block_of_item[i] if rng.random() > 0.1 else rng.integers(0, N_BLOCKS)
        tags.append(f"{genres[b]},tag{rng.integers(0, 20)}")
    items = pd.DataFrame({"item_id": [f"t{i}" for i in range(N_ITEMS)], "tags": tags})
    items["energy"] = block_of_item + rng.normal(0, 0.3, N_ITEMS)
    items.loc[rng.random(N_ITEMS) < 0.1, "energy"] = np.nan
    items["tempo"] = rng.normal(120, 10, N_ITEMS)
    feats = build_item_features(
        items, np.array([f"t{i}" for i in range(N_ITEMS)]), tag_weight=1.0, audio_weight=0.5
    )
    return train, test, feats


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def fitted(data):
    train, _, feats = data
    return {name: make(name).fit(train, item_features=feats) for name in MODEL_NAMES}


def recs_equal(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("name", MODEL_NAMES)
class TestContract:
    def test_shapes_dtypes_sorted_no_seen(self, name, fitted, data):
        train = data[0]
        model = fitted[name]
        users = np.arange(N_USERS)
        ids, scores = model.recommend(users, train, N=10)
        assert ids.shape == scores.shape == (N_USERS, 10)
        assert ids.dtype == np.int64 and scores.dtype == np.float32
        assert (np.diff(scores, axis=1) <= 0).all(), "scores must be sorted descending"
        assert ((ids >= 0) & (ids < N_ITEMS)).all()
        for u in range(N_USERS):
            assert not set(ids[u]) & set(train[u].indices), f"user {u} got a seen item"
            assert len(set(ids[u])) == 10
        dense = model.score(users[:5], train[:5])
        assert dense.shape == (5, N_ITEMS) and dense.dtype == np.float32

    def test_unfiltered_may_return_seen(self, name, fitted, data):
        train = data[0]
        ids, scores = fitted[name].recommend(np.arange(3), train[:3], N=N_ITEMS, filter_already_liked_items=False)
        assert (ids >= 0).all() and sorted(ids[0]) == list(range(N_ITEMS))

    def test_deterministic_same_seed(self, name, data, fitted):
        train, _, feats = data
        again = make(name).fit(train, item_features=feats)
        users = np.arange(N_USERS)
        recs_equal(fitted[name].recommend(users, train, N=10), again.recommend(users, train, N=10))

    def test_users_without_history(self, name, fitted, data):
        model = fitted[name]
        empty = sp.csr_matrix((3, N_ITEMS), dtype=np.float32)
        ids, scores = model.recommend(np.array([-1, N_USERS + 5, 0]), empty, N=5)
        assert (ids >= 0).all() and np.isfinite(scores).all()
        # unknown users with no history all get the same (popularity-like) list
        np.testing.assert_array_equal(ids[0], ids[1])

    def test_cold_start_rows(self, name, fitted, data):
        """New users (ids unseen at fit) described only by a few liked items."""
        model = fitted[name]
        block0 = np.arange(0, N_ITEMS // N_BLOCKS)
        row = sp.csr_matrix((np.ones(4, np.float32), ([0] * 4, block0[:4])), shape=(1, N_ITEMS))
        ids, scores = model.recommend(np.array([-1]), row, N=5)
        assert (ids >= 0).all() and not set(ids[0]) & set(block0[:4])
        assert np.isfinite(scores).all()
        if name not in ("popularity",):
            # a personalised model recommends mostly from the liked block
            assert np.isin(ids[0], block0).sum() >= 3, ids

    def test_n_larger_than_catalogue_pads(self, name, fitted, data):
        train = data[0]
        ids, scores = fitted[name].recommend(np.array([0, 1]), train[:2], N=N_ITEMS + 10)
        for u in range(2):
            n_cand = N_ITEMS - train[u].nnz
            assert (ids[u, :n_cand] >= 0).all()
            assert (ids[u, n_cand:] == -1).all() and np.isneginf(scores[u, n_cand:]).all()
            assert sorted(set(ids[u, :n_cand])) == sorted(set(range(N_ITEMS)) - set(train[u].indices))

    def test_similar_items_excludes_self(self, name, fitted):
        items = np.array([0, 5, 50, 119])
        ids, scores = fitted[name].similar_items(items, N=10)
        assert ids.shape == (4, 10) and ids.dtype == np.int64 and scores.dtype == np.float32
        for r, i in enumerate(items):
            assert i not in ids[r]
        assert (np.diff(scores, axis=1) <= 0).all()
        ids, _ = fitted[name].similar_items(np.array([3]), N=N_ITEMS + 5)
        assert (ids[0, : N_ITEMS - 1] >= 0).all() and (ids[0, N_ITEMS - 1 :] == -1).all()

    def test_item_similarity_is_what_similar_items_ranks(self, name, fitted):
        items = np.array([0, 5, 119])
        sims = fitted[name].item_similarity(items)
        assert sims.shape == (3, N_ITEMS) and sims.dtype == np.float32
        ids, scores = fitted[name].similar_items(items, N=10)
        np.testing.assert_array_equal(scores, sims[np.arange(3)[:, None], ids])
        with pytest.raises(ValueError, match=rf"itemids must lie in \[0, {N_ITEMS}\)"):
            fitted[name].item_similarity(np.array([N_ITEMS]))

    def test_save_load_round_trip(self, name, fitted, data, tmp_path):
        train = data[0]
        model = fitted[name]
        model.save(tmp_path / "m")
        doc = json.loads((tmp_path / "m" / "model.json").read_text())
        assert doc["model"] == name and doc["format_version"] == 1
        loaded = load_model(tmp_path / "m")
        assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
        users = np.arange(N_USERS)
        recs_equal(model.recommend(users, train, N=10), loaded.recommend(users, train, N=10))
        cold = sp.csr_matrix((np.ones(2, np.float32), ([0, 0], [1, 2])), shape=(1, N_ITEMS))
        recs_equal(model.recommend(np.array([-1]), cold, N=5), loaded.recommend(np.array([-1]), cold, N=5))
        recs_equal(model.similar_items(np.array([1, 2]), 5), loaded.similar_items(np.array([1, 2]), 5))
        assert type(model).load(tmp_path / "m").get_params() == model.get_params()

    def test_tampered_files_raise(self, name, fitted, tmp_path):
        model = fitted[name]
        model.save(tmp_path / "m")
        npz = tmp_path / "m" / "arrays.npz"
        raw = bytearray(npz.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        npz.write_bytes(bytes(raw))
        with pytest.raises(ValueError, match="arrays.npz"):
            load_model(tmp_path / "m")
        model.save(tmp_path / "m")
        js = tmp_path / "m" / "model.json"
        doc = json.loads(js.read_text())
        doc["n_items"] += 1
        js.write_text(json.dumps(doc))
        with pytest.raises(ValueError, match="model.json"):
            load_model(tmp_path / "m")
        js.write_text("{not json")
        with pytest.raises(ValueError, match="model.json"):
            load_model(tmp_path / "m")

    def test_bad_input_errors(self, name, fitted, data):
        train = data[0]
        model = fitted[name]
        with pytest.raises(ValueError, match="1 row for every user"):
            model.recommend(np.arange(3), train[:2], N=5)
        with pytest.raises(ValueError, match="CSR"):
            model.recommend(np.arange(2), train[:2].toarray(), N=5)
        with pytest.raises(ValueError, match="columns"):
            model.recommend(np.arange(2), train[:2, :10], N=5)
        with pytest.raises(ValueError, match="N must be"):
            model.recommend(np.arange(2), train[:2], N=0)
        with pytest.raises(ValueError, match="itemids"):
            model.similar_items(np.array([N_ITEMS]), N=5)
        with pytest.raises(NotFittedError):
            make(name).recommend(np.arange(2), train[:2], N=5)


def precision_at(model: Recommender, train, test, k: int = 5) -> float:
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    ids, _ = model.recommend(users, train[users], N=k)
    hits = [np.isin(ids[r], test[u].indices).sum() for r, u in enumerate(users)]
    return float(np.mean(hits)) / k


def test_every_model_beats_popularity_on_planted_blocks(fitted, data):
    train, test, _ = data
    base = precision_at(fitted["popularity"], train, test)
    results = {name: precision_at(fitted[name], train, test) for name in MODEL_NAMES}
    for name, p in results.items():
        if name != "popularity":
            assert p > max(2 * base, base + 0.08), f"{name} precision@5 {p:.3f} does not beat popularity {base:.3f}: {results}"
