"""Cold start on generated data: users held out of training entirely (``cold_users`` split).

Each cold user reveals ``KNOWN`` (5) tracks at query time ("a few liked
tracks"); the rest of their tracks are held out (validation + test, scored on
test). The hybrid (ALS folded in from the revealed tracks, blended 0.8/0.2 with
content, as in params.yaml) must serve them clearly better than popularity on
nDCG@10 averaged over the cold users.

Content alone (tags + audio of the revealed tracks) is far better than a random
ranking but, on this generated data, *worse* than popularity (about 0.45x its
nDCG@10 on seeds 3, 7 and 11): it ignores how popular a track is, and the data
are strongly Zipf-distributed. That gap is documented in README and pinned by a test.
Measured (seed 7): popularity 0.198, ALS 0.246, content 0.097, hybrid 0.250, random 0.014;
with 3 revealed tracks the hybrid's lead shrinks to a few percent.
``benchmarks/cold_start.py`` records these numbers over several seeds in ``reports/cold_start.json``.
"""

from __future__ import annotations

import numpy as np
import pytest

SEED = 7
K = 10
KNOWN = 5


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    from musicrec.evaluation.cold_start import cold_start_study

    r = cold_start_study(tmp_path_factory.mktemp("cold"), seed=SEED, known=KNOWN, k=K)
    return r["inter"], r["users"], r["ndcg"], r["data"]


def test_cold_users_are_really_cold(cold):
    inter, users, _, data = cold
    assert len(users) >= 100 and data["split"]["cold_users"] == len(users) == data["cold_users"]
    assert inter.train[users].nnz == 0, "cold users have no training interactions"
    assert (np.diff(inter.query[users].indptr) == KNOWN).all()
    assert (np.diff(inter.test[users].indptr) > 0).all()


def test_hybrid_beats_popularity_on_cold_users(cold):
    _, _, ndcg, _ = cold
    assert ndcg["hybrid"] > 1.15 * ndcg["popularity"], ndcg
    assert ndcg["hybrid"] - ndcg["popularity"] > 0.02, ndcg
    assert ndcg["hybrid"] > 2 * ndcg["content"], ndcg


def test_userknn_and_adaptive_hybrid_serve_cold_users(cold):
    """Neighbours of the revealed tracks (user-kNN) and the adaptive blend beat popularity, as README states."""
    _, _, ndcg, _ = cold
    assert ndcg["userknn"] > 1.15 * ndcg["popularity"], ndcg
    assert ndcg["adaptive_hybrid"] > 1.15 * ndcg["popularity"], ndcg
    assert ndcg["adaptive_hybrid"] > ndcg["content"] and ndcg["adaptive_hybrid"] > ndcg["popularity"], ndcg


def test_content_uses_the_revealed_tracks(cold):
    _, _, ndcg, _ = cold
    assert ndcg["content"] > 5 * ndcg["random"], ndcg


def test_content_alone_trails_popularity_as_documented(cold):
    """README (Results, cold start) states that content alone is below popularity on this data: keep it true.

    If content ever beats popularity here, update README and reports/cold_start.json rather than this test.
    """
    _, _, ndcg, _ = cold
    assert ndcg["random"] < ndcg["content"] < ndcg["popularity"] < ndcg["hybrid"], ndcg
