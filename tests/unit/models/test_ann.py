"""FAISS ANN retrieval (musicrec.models.ann): index build / search / persistence, the models' ANN paths, params."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from musicrec.errors import DataError
from musicrec.models.ann import ANNIndex, ANNSettings
from musicrec.models.factory import build_model, load_model
from musicrec.models.persist import MODEL_JSON

N_ITEMS, N_USERS, D = 3000, 400, 16


def clustered(rng: np.random.Generator, n: int, d: int, centres: np.ndarray) -> np.ndarray:
    """Vectors around ``centres`` with log-normal norms (the shape of MF factors)."""
    c = centres[rng.integers(0, len(centres), n)]
    v = c + 0.35 * rng.standard_normal((n, d))
    return (v * rng.lognormal(0, 0.3, (n, 1))).astype(np.float32)


@pytest.fixture(scope="module")
def factors():
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((24, D))
    return clustered(rng, N_ITEMS, D, centres), clustered(rng, 200, D, centres)


def exact_top(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    s = queries @ items.T
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want)]))


@pytest.fixture(scope="module")
def interactions():
    rng = np.random.default_rng(3)
    X = sp.random(N_USERS, N_ITEMS, density=0.01, format="csr", random_state=rng, dtype=np.float32)
    X.data[:] = 1.0
    return X


def ann_params(**kw):
    return {"enabled": True, "min_items": 100, "ivf_nlist": 64, "nprobe": 16, **kw}


# ---- the index ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind, floor", [("flat", 1.0), ("hnsw", 0.97), ("ivf", 0.9)])
def test_recall_at_10_against_exact_inner_product(factors, kind, floor):
    items, queries = factors
    index = ANNIndex.build(items, ANNSettings.from_params(ann_params(kind=kind)))
    ids, scores = index.search(queries, 10)
    assert ids.shape == scores.shape == (len(queries), 10) and ids.dtype == np.int64 and scores.dtype == np.float32
    assert recall(ids, exact_top(items, queries, 10)) >= floor
    # the scores are the true inner products of the returned items, descending
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ items.T, ids, axis=1), rtol=1e-4, atol=1e-4)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


def test_excluded_items_are_never_returned_and_rows_stay_full(factors):
    items, queries = factors
    index = ANNIndex.build(items, ANNSettings.from_params(ann_params(kind="hnsw")))
    best = exact_top(items, queries[:5], 30)
    exclude = sp.csr_matrix((np.ones(best.size, dtype=np.float32), best.ravel(), np.arange(0, best.size + 1, 30)),
                            shape=(5, N_ITEMS))
    ids, _ = index.search(queries[:5], 10, exclude=exclude)
    assert (ids >= 0).all()
    for r in range(5):
        assert not set(ids[r]) & set(best[r])
    assert recall(ids, exact_top(items, queries[:5], 40)[:, 30:]) >= 0.9  # the next ten


def test_k_above_the_catalogue_pads_with_minus_one(factors):
    items, queries = factors
    index = ANNIndex.build(items[:20], ANNSettings.from_params(ann_params(kind="flat")))
    ids, scores = index.search(queries[:2], 25)
    assert (ids[:, :20] >= 0).all() and (ids[:, 20:] == -1).all() and np.isneginf(scores[:, 20:]).all()


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_building_twice_writes_the_same_bytes(factors, tmp_path, kind):
    items, _ = factors
    settings = ANNSettings.from_params(ann_params(kind=kind))
    for name in ("a", "b"):
        ANNIndex.build(items, settings).save(tmp_path / name)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_load_checks_the_shape_and_refuses_garbage(factors, tmp_path):
    items, queries = factors
    settings = ANNSettings.from_params(ann_params(kind="hnsw"))
    ANNIndex.build(items, settings).save(tmp_path / "i.faiss")
    back = ANNIndex.load(tmp_path / "i.faiss", settings, n_items=N_ITEMS, d=D)
    assert back.memory_bytes() > items.nbytes
    with pytest.raises(DataError, match="expected 10 of dimension 16"):
        ANNIndex.load(tmp_path / "i.faiss", settings, n_items=10, d=D)
    (tmp_path / "bad.faiss").write_bytes(b"not an index at all")
    with pytest.raises(DataError, match="bad.faiss: not a valid FAISS index"):
        ANNIndex.load(tmp_path / "bad.faiss", settings, n_items=N_ITEMS, d=D)


# ---- the models ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["als", "bpr"])
def test_mf_model_round_trip_with_sha_and_ann_answers(interactions, tmp_path, name):
    X = interactions
    model = build_model(name, {"factors": 8, "iterations": 3, "ann": ann_params(kind="hnsw")}, seed=1).fit(X)
    assert model.has_ann and set(model.ann_indexes) == {"recommend", "similar"}
    model.save(tmp_path / name)
    doc = json.loads((tmp_path / name / MODEL_JSON).read_text())
    assert {"ann_recommend.faiss", "ann_similar.faiss"} <= set(doc["files"])  # SHA-256 recorded
    assert doc["meta"]["ann"]["settings"]["kind"] == "hnsw" and "ann" not in doc["params"]
    back = load_model(tmp_path / name)
    users = np.arange(60)
    got, _ = back.ann_recommend(users, X[users], N=10)
    want, _ = back.recommend(users, X[users], N=10)
    assert recall(got, want) >= 0.95
    for r in range(60):  # filter_already_liked_items: over-fetch, then drop the user's items
        assert not set(got[r]) & set(X[r].indices)
    got, _ = back.ann_similar_items(np.arange(30), N=10)
    want, _ = back.similar_items(np.arange(30), N=10)
    assert recall(got, want) >= 0.95 and not (got == np.arange(30)[:, None]).any()
    # a tampered index is refused, naming the file
    path = tmp_path / name / "ann_recommend.faiss"
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    with pytest.raises(DataError, match="ann_recommend.faiss: checksum mismatch"):
        load_model(tmp_path / name)


def test_below_min_items_no_index_and_the_saved_model_is_unchanged(interactions, tmp_path):
    X = interactions
    base = {"factors": 8, "iterations": 3}
    plain = build_model("als", base, seed=1).fit(X)
    small = build_model("als", {**base, "ann": ann_params(min_items=N_ITEMS + 1)}, seed=1).fit(X)
    assert not small.has_ann
    plain.save(tmp_path / "plain")
    small.save(tmp_path / "small")
    assert sorted(p.name for p in (tmp_path / "small").iterdir()) == ["arrays.npz", MODEL_JSON]
    assert (tmp_path / "plain" / MODEL_JSON).read_bytes() == (tmp_path / "small" / MODEL_JSON).read_bytes()
    users = np.arange(10)  # without an index the ANN methods answer exactly
    np.testing.assert_array_equal(small.ann_recommend(users, X[users], N=5)[0], small.recommend(users, X[users], N=5)[0])


def test_users_without_signal_get_the_exact_fallback(interactions):
    X = interactions
    model = build_model("als", {"factors": 8, "iterations": 3, "ann": ann_params(kind="flat")}, seed=1).fit(X)
    empty = sp.csr_matrix((2, N_ITEMS), dtype=np.float32)
    got, scores = model.ann_recommend(np.asarray([-1, -1]), empty, N=5)
    want, _ = model.recommend(np.asarray([-1, -1]), empty, N=5)
    np.testing.assert_array_equal(got, want)


@pytest.fixture(scope="module")
def item_features():
    from musicrec.models.features import build_item_features
    from musicrec.schema import AUDIO_FEATURES

    rng = np.random.default_rng(5)
    vocab = [f"tag{i}" for i in range(200)]
    tags = [",".join(rng.choice(vocab, size=rng.integers(1, 6), replace=False)) for _ in range(N_ITEMS)]
    tags[:5] = [None] * 5  # no tags (audio only)
    items = pd.DataFrame({"item_id": [f"T{i}" for i in range(N_ITEMS)], "tags": tags,
                          **{c: rng.normal(size=N_ITEMS) for c in AUDIO_FEATURES}})
    return build_item_features(items, items["item_id"].to_numpy(), tag_weight=1.0, audio_weight=0.5)


def test_content_tfidf_svd_embeddings_index_and_round_trip(interactions, item_features, tmp_path):
    X = interactions
    params = {"embedding": "tfidf_svd", "svd_dim": 24, "ann": ann_params(kind="hnsw")}
    model = build_model("content", params, seed=3).fit(X, item_features=item_features)
    E = model.embeddings
    assert E.shape[0] == N_ITEMS and E.dtype == np.float32 and E.shape[1] <= 24 + item_features.audio.shape[1]
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0, rtol=1e-5)
    again = build_model("content", params, seed=3).fit(X, item_features=item_features)
    np.testing.assert_array_equal(E, again.embeddings)  # fitted with the seed: reproducible
    assert set(model.ann_indexes) == {"items"}
    model.save(tmp_path / "content")
    back = load_model(tmp_path / "content")
    assert back.get_params() == {"tag_weight": 1.0, "audio_weight": 0.5, "embedding": "tfidf_svd", "svd_dim": 24}
    np.testing.assert_array_equal(back.embeddings, E)
    users = np.arange(50)
    assert recall(back.ann_recommend(users, X[users], N=10)[0], back.recommend(users, X[users], N=10)[0]) >= 0.95
    assert recall(back.ann_similar_items(np.arange(40), N=10)[0], back.similar_items(np.arange(40), N=10)[0]) >= 0.95


def test_content_tfidf_default_params_are_unchanged():
    model = build_model("content", {}, seed=0)
    assert model.get_params() == {"tag_weight": 1.0, "audio_weight": 0.5} and not model.ann_settings.enabled


# ---- params ---------------------------------------------------------------------------------
@pytest.mark.parametrize("section, value, key", [
    ("als", {"ann": {"nprobe": 2000, "ivf_nlist": 100}}, "train.als.ann"),
    ("bpr", {"ann": {"kind": "lsh"}}, "train.bpr.ann.kind"),
    ("als", {"ann": {"hnsw_m": 1}}, "train.als.ann.hnsw_m"),
    ("als", {"ann": {"enabled": 1}}, "train.als.ann.enabled"),
    ("content", {"ann": {"enabled": True}, "embedding": "tfidf"}, "train.content"),
    ("content", {"embedding": "bert"}, "train.content.embedding"),
])
def test_invalid_ann_params_are_a_params_error_naming_the_key(tmp_path, section, value, key):
    import yaml

    from musicrec.config import load_params
    from musicrec.params_file import ParamsError

    doc = yaml.safe_load((Path(__file__).resolve().parents[3] / "params.yaml").read_text())
    doc["train"][section] = {**doc["train"][section], **value}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ParamsError) as err:
        load_params(tmp_path / "params.yaml")
    assert key in str(err.value)


def test_importing_faiss_leaves_numpys_blas_threads_alone():
    code = ("from threadpoolctl import threadpool_info as t; import numpy; "
            "b = [(i['filepath'], i['num_threads']) for i in t() if i['user_api'] == 'blas']; "
            "import faiss; a = [(i['filepath'], i['num_threads']) for i in t() if i['user_api'] == 'blas']; "
            "print(all(x in a for x in b))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


# ---- serving: the threshold switch -------------------------------------------------------------
def models_folder(root: Path, X: sp.csr_matrix, min_items: int) -> Path:
    from musicrec.io import write_parquet

    root.mkdir()
    build_model("als", {"factors": 8, "iterations": 3, "ann": ann_params(min_items=min_items)}, seed=1).fit(X).save(root / "als")
    write_parquet(pd.DataFrame({"item_id": [f"T{i}" for i in range(N_ITEMS)], "name": None, "artist": None,
                                "tags": None}), root / "catalog.parquet")
    write_parquet(pd.DataFrame({"user_id": [f"U{i}" for i in range(N_USERS)]}), root / "users.parquet")
    return root


@pytest.mark.parametrize("min_items, approximate", [(100, True), (N_ITEMS + 1, False)])
def test_model_server_uses_the_index_above_the_threshold(interactions, tmp_path, monkeypatch, min_items, approximate):
    from musicrec.serving.recommender import ModelServer

    server = ModelServer.load(models_folder(tmp_path / "models", interactions, min_items), matrices_dir=None)
    assert server.approximate is approximate
    calls = []
    for meth in ("ann_recommend", "ann_similar_items", "recommend", "similar_items"):
        orig = getattr(server.model, meth)
        monkeypatch.setattr(server.model, meth, lambda *a, _o=orig, _m=meth, **k: calls.append(_m) or _o(*a, **k))
    sim = server.similar("T3", n=5, explain=False)
    rec = server.recommend_liked(["T1", "T2"], n=5, explain=False)
    assert len(sim) == len(rec) == 5 and "T3" not in set(sim["item_id"]) and not {"T1", "T2"} & set(rec["item_id"])
    assert calls[0] == ("ann_similar_items" if approximate else "similar_items")
    assert ("ann_recommend" in calls) is approximate


def test_dense_embeddings_keep_a_small_vocabulary_and_zero_rows_without_metadata():
    from musicrec.models.features import build_item_features, dense_embeddings

    items = pd.DataFrame({"item_id": ["a", "b", "c"], "tags": ["rock, pop", "jazz", None]})
    F = build_item_features(items, np.asarray(["a", "b", "c", "d"]), tag_weight=1.0, audio_weight=0.5)
    E = dense_embeddings(F, 64, seed=0)  # 3 tags <= 64 components: the TF-IDF block is kept as it is
    assert E.shape == (4, 3 + F.audio.shape[1]) and E.dtype == np.float32
    np.testing.assert_allclose(E[:3] @ E[:3].T, (F.vectors[:3] @ F.vectors[:3].T).toarray(), atol=1e-6)
    assert not E[3].any()  # "d" has no metadata
