"""Cold start on generated data: users held out of training entirely (``cold_users`` split).

Each cold user reveals ``KNOWN`` (5) tracks at query time ("a few liked
tracks"); the rest of their tracks are held out (validation + test, scored on
test). The hybrid (ALS folded in from the revealed tracks, blended 0.8/0.2 with
content, as in params.yaml) must serve them clearly better than popularity on
nDCG@10 averaged over the cold users.

Content alone (tags + audio of the revealed tracks) is far better than a random
ranking but, on this generated data, *worse* than popularity (about 0.45x its
nDCG@10 on seeds 3, 7 and 11): it ignores how popular a track is, and the data
are strongly Zipf-distributed. That gap is recorded as an expected failure.
Measured (seed 7): popularity 0.198, ALS 0.246, content 0.097, hybrid 0.250, random 0.014;
with 3 revealed tracks the hybrid's lead shrinks to a few percent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

SEED = 7
K = 10
KNOWN = 5


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    from musicrec.assessment import recommend_batched
    from musicrec.clean import clean
    from musicrec.config import TrainParams
    from musicrec.interactions import Interactions, build_interactions, load_processed_plays
    from musicrec.metrics import accuracy_metrics
    from musicrec.synth import write_synthetic
    from musicrec.training import train_all
    from musicrec.transform import FilterSpec, run_transform

    root = tmp_path_factory.mktemp("cold")
    write_synthetic(root / "raw", n_tracks=1500, n_users=1200, n_plays=45_000, n_genres=8, n_artists=300, seed=SEED)
    clean("synthetic", root / "raw", root / "interim", chunk_rows=100_000, max_playcount=100_000, unmatched="keep")
    run_transform(root / "interim", root / "plays", root / "items.parquet", spec=FilterSpec(5, 5, 20), partitions=1,
                  scheduler="synchronous", num_workers=1)
    maps, parts, weighted, report = build_interactions(
        load_processed_plays(root / "plays"), weighting="log1p", bm25_k1=100.0, bm25_b=0.8,
        split_method="cold_users", test_fraction=0.2, validation_fraction=0.1, min_user_items=5,
        cold_user_fraction=0.2, cold_known_items=KNOWN, seed=SEED)
    inter = Interactions(maps=maps, train=parts.train, validation=parts.validation, test=parts.test,
                         query=parts.query, train_weighted=weighted["train"], query_weighted=weighted["query"])
    items = pd.read_parquet(root / "items.parquet")
    params = TrainParams(models=["popularity", "als", "content", "hybrid"],
                         als={"factors": 32, "regularization": 1.0, "alpha": 10.0, "iterations": 15},
                         hybrid={"collaborative": "als", "weight_collaborative": 0.8, "weight_content": 0.2},
                         content={"tag_weight": 1.0, "audio_weight": 0.5})
    trained = {t.name: t.model for t in train_all(inter, items, params, SEED)}
    users = np.flatnonzero(np.diff(inter.query.indptr) > 0)
    query = inter.query_rows()
    ndcg = {}
    for name, model in trained.items():
        recs = recommend_batched(model, users, query, K)
        ndcg[name] = float(np.nanmean(accuracy_metrics(recs, inter.test[users], [K])[f"ndcg@{K}"]))
    # a random ranking's expected nDCG@10 is about its precision: held-out items / items
    n_items = inter.test.shape[1]
    ndcg["random"] = float(np.mean(np.diff(inter.test[users].indptr) / n_items))
    return inter, users, ndcg, report


def test_cold_users_are_really_cold(cold):
    inter, users, _, report = cold
    assert len(users) >= 100 and report["split"]["cold_users"] == len(users)
    assert inter.train[users].nnz == 0, "cold users have no training interactions"
    assert (np.diff(inter.query[users].indptr) == KNOWN).all()
    assert (np.diff(inter.test[users].indptr) > 0).all()


def test_hybrid_beats_popularity_on_cold_users(cold):
    _, _, ndcg, _ = cold
    assert ndcg["hybrid"] > 1.15 * ndcg["popularity"], ndcg
    assert ndcg["hybrid"] - ndcg["popularity"] > 0.02, ndcg
    assert ndcg["hybrid"] > 2 * ndcg["content"], ndcg


def test_content_uses_the_revealed_tracks(cold):
    _, _, ndcg, _ = cold
    assert ndcg["content"] > 5 * ndcg["random"], ndcg


@pytest.mark.xfail(reason="content alone ranks by taste only and loses to popularity on the Zipf-like generated "
                          "data (about 0.45x its nDCG@10); the hybrid is the cold-start model", strict=False)
def test_content_alone_beats_popularity_on_cold_users(cold):
    _, _, ndcg, _ = cold
    assert ndcg["content"] > 1.1 * ndcg["popularity"], ndcg
