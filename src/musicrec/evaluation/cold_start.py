"""Small, reproducible studies run outside the DVC pipeline (tests and ``benchmarks/`` scripts).

:func:`cold_start_study`: users held out of training entirely (the ``cold_users``
split) reveal ``known`` tracks at query time, the rest of their tracks are held
out; every model recommends from the revealed tracks only and is scored on
nDCG@k / recall@k over the cold users, next to the expected score of a random
ranking. Used by ``tests/unit/evaluation/test_cold_start.py`` and ``benchmarks/cold_start.py``
(which writes ``reports/cold_start.json``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

COLD_START_MODELS = ("popularity", "userknn", "als", "content", "hybrid", "adaptive_hybrid")


def cold_start_study(work: Path, *, seed: int, known: int = 5, k: int = 10, n_tracks: int = 1500,
                     n_users: int = 1200, n_plays: int = 45_000, cold_user_fraction: float = 0.2,
                     models: tuple[str, ...] = COLD_START_MODELS) -> dict[str, Any]:
    """Generate data in ``work``, train on warm users, score cold users; returns a JSON-able dict.

    ``result["ndcg"][model]`` / ``result["recall"][model]`` are means over the cold
    users; ``result["ndcg"]["random"]`` is a random ranking's expected nDCG (about its
    precision: held-out items / catalogue size). ``result["inter"]`` and
    ``result["users"]`` are the interactions and cold user rows (not JSON; pop them
    before writing).
    """
    from musicrec.evaluation.metrics import accuracy_metrics
    from musicrec.pipeline.evaluate import recommend_batched
    from musicrec.pipeline.local import LocalPaths, params_for, run_local

    split = {"method": "cold_users", "cold_user_fraction": cold_user_fraction, "cold_known_items": known}
    params = params_for(
        seed, data={"chunk_rows": 100_000},
        generate={"n_tracks": n_tracks, "n_users": n_users, "n_plays": n_plays, "n_genres": 8,
                  "n_artists": max(1, n_tracks // 5)},
        transform={"partitions": 1}, dask={"scheduler": "synchronous", "num_workers": 1},
        interactions={"split": split},  # every model weighs the counts by its train.<model>.weighting
        # the hyper-parameters of params.yaml's defaults (userknn and adaptive_hybrid: the registry
        # defaults, which params.yaml repeats)
        train={"models": list(models), "als": {"factors": 32, "regularization": 1.0, "alpha": 10.0, "iterations": 15},
               "hybrid": {"collaborative": "als", "weight_collaborative": 0.8, "weight_content": 0.2},
               "content": {"tag_weight": 1.0, "audio_weight": 0.5}})
    run = run_local(params, LocalPaths.under(work), stop="train")
    inter, report = run.interactions(), run.built.report
    trained = {t.name: t.model for t in run.trained}
    users = np.flatnonzero(np.diff(inter.query.indptr) > 0)
    query = inter.query_rows()
    rel = inter.test[users]
    ndcg: dict[str, float] = {}
    recall: dict[str, float] = {}
    for name, model in trained.items():
        recs = recommend_batched(model, users, query, k)
        acc = accuracy_metrics(recs, rel, [k])
        ndcg[name] = round(float(np.nanmean(acc[f"ndcg@{k}"])), 6)
        recall[name] = round(float(np.nanmean(acc[f"recall@{k}"])), 6)
    n_items = inter.test.shape[1]
    ndcg["random"] = round(float(np.mean(np.diff(rel.indptr) / n_items)), 6)
    return {
        "seed": seed, "known_items": known, "k": k,
        "data": {"users": int(inter.train.shape[0]), "items": int(n_items), "cold_users": int(len(users)),
                 "split": report["split"]},
        "ndcg": ndcg, "recall": recall,
        "inter": inter, "users": users,
    }
