"""The workers the driver measures, each in its own subprocess (``run.py --worker MODE ...``)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from duckdb_reference import worker_duckdb
from plan import SEED


def worker_transform_phases(argv: list[str]) -> None:
    """The transform again, in-process, with the peak RSS of each Dask compute (what dominates memory)."""
    import threading

    import dask
    import psutil

    from musicrec.pipeline import transform as T
    from musicrec.config import load_params

    ap = argparse.ArgumentParser()
    ap.add_argument("--interim", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--params", required=True)
    a = ap.parse_args(argv)
    p = load_params(a.params)
    proc = psutil.Process()
    phase = ["imports"]
    peaks: dict[str, float] = {}
    secs: dict[str, float] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss = proc.memory_info().rss / 2**20
            peaks[phase[0]] = max(peaks.get(phase[0], 0.0), rss)
            time.sleep(0.02)

    threading.Thread(target=sample, daemon=True).start()
    real = dask.compute
    n = [0]

    def compute(*args, **kw):  # noqa: ANN002, ANN003
        n[0] += 1
        phase[0] = f"compute {n[0]}"
        t = time.perf_counter()
        try:
            return real(*args, **kw)
        finally:
            secs[phase[0]] = round(time.perf_counter() - t, 2)
            phase[0] = f"between {n[0]}"

    dask.compute = compute
    shutil.rmtree(a.out, ignore_errors=True)
    phase[0] = "start"
    rep = T.run_transform(
        Path(a.interim), Path(a.out) / "plays", Path(a.out) / "items.parquet",
        p.transform, p.dask)
    done.set()
    k = n[0]
    names = {1: "shuffle by user + aggregate + spill"}
    names.update({i: f"filter pass {i - 1}" for i in range(2, k)})
    names[k] = "filter + sort + write"
    phases = [{"phase": names.get(i, f"compute {i}"), "peak_rss_mb": round(peaks.get(f"compute {i}", 0)),
               "seconds": secs.get(f"compute {i}")} for i in range(1, k + 1)]
    shutil.rmtree(a.out, ignore_errors=True)
    print(json.dumps({"phases": phases, "start_rss_mb": round(peaks.get("start", 0)),
                      "filter_passes": len(rep["filter"]["passes"]), "partitions": rep["partitions"]}))


def _als_params(params_path: str) -> dict[str, Any]:
    from musicrec.config import load_params

    p = load_params(params_path)
    return {**p.train.als.model_dump(), "seed": p.seed}


def worker_als(argv: list[str]) -> None:
    """A bare implicit ALS fit on the train stage's matrix with the train stage's ALS params."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--matrices", required=True)
    ap.add_argument("--params", required=True)
    a = ap.parse_args(argv)
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares

    from musicrec.models.weighting import InputWeighting

    pa = _als_params(a.params)
    counts = sp.load_npz(Path(a.matrices) / "train.npz").tocsr()
    X = InputWeighting.from_params(pa).fit(counts)(counts)  # as ALSRecommender.fit weighs it
    m = AlternatingLeastSquares(factors=pa["factors"], regularization=pa["regularization"], alpha=pa["alpha"],
                                iterations=pa["iterations"], random_state=pa["seed"])
    t0 = time.perf_counter()
    m.fit(X, show_progress=False)
    print(json.dumps({"fit_s": round(time.perf_counter() - t0, 3), "nnz": int(X.nnz), "params": pa}))


def worker_als_iter(argv: list[str]) -> None:
    """Seconds per ALS iteration per million non-zeros (implicit's own per-iteration callback)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--matrices", required=True)
    ap.add_argument("--factors", type=int, required=True)
    ap.add_argument("--iterations", type=int, default=5)
    a = ap.parse_args(argv)
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares

    X = sp.load_npz(Path(a.matrices) / "train.npz").tocsr()  # play counts; the timing does not depend on values
    times: list[float] = []
    last = [time.perf_counter()]

    def cb(iteration, elapsed, *rest):  # noqa: ANN001
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    m = AlternatingLeastSquares(factors=a.factors, iterations=a.iterations, random_state=SEED)
    last[0] = time.perf_counter()
    m.fit(X, show_progress=False, callback=cb)
    per = sorted(times)[len(times) // 2] if times else float("nan")
    print(json.dumps({"factors": a.factors, "iterations": a.iterations, "nnz": int(X.nnz),
                      "median_s_per_iter": round(per, 4), "s_per_iter_per_m_nnz": round(per / (X.nnz / 1e6), 4),
                      "threads": os.cpu_count()}))


def _gemm_floor(model: Any, users: Any) -> float:
    """Seconds for the users x items score GEMM alone (no masking, no top-N), chunked and threaded like
    ``ALSRecommender.recommend``: the part of recommending that no exact method can skip."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    from threadpoolctl import threadpool_limits

    from musicrec.models import mf

    U = model.user_factors[users]
    FT = np.ascontiguousarray(model.item_factors.T)
    step = mf.chunk_rows(model.n_items)
    local = threading.local()

    def gemm(start: int) -> None:
        stop = min(start + step, len(U))
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = np.empty((step, model.n_items), dtype=np.float32)
        np.matmul(U[start:stop], FT, out=buf[: stop - start])

    t = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(gemm, range(0, len(U), step)))
    return time.perf_counter() - t


def pruning_share(model: Any, users: Any, query: Any, n: int) -> dict[str, Any]:
    """Whether the recommend path prunes (catalogues large enough) and then, untimed on the first 5,000
    ``users``, the fraction of the users x items scores it computed for top-``n`` lists."""
    import musicrec.models.pruned_topn as pruned_topn
    from musicrec.pipeline.evaluate import recommend_batched

    pruning: dict[str, Any] = {"pruned": bool(model.n_items >= pruned_topn.PRUNE_MIN_ITEMS)}
    if pruning["pruned"]:
        scored: list[int] = []
        real_top_n = pruned_topn.top_n

        def counting(s, N, order=None, **kw):  # noqa: ANN001, ANN003, ANN202
            scored.append(s.size)
            return real_top_n(s, N, order, **kw)

        pruned_topn.top_n = counting
        try:
            sample = users[:5000]
            recommend_batched(model, sample, query, n)
        finally:
            pruned_topn.top_n = real_top_n
        pruning["pruned_item_fraction"] = round(sum(scored) / (sample.size * model.n_items), 3)
    return pruning


def worker_eval(argv: list[str]) -> None:
    """musicrec's evaluation core vs implicit.evaluation.ranking_metrics_at_k on the same model and split."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--matrices", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--max-users", type=int, default=0, help="evaluate a seeded sample of test users (0 = all)")
    a = ap.parse_args(argv)
    import numpy as np
    import scipy.sparse as sp
    from implicit.evaluation import ranking_metrics_at_k

    from musicrec.evaluation import metrics as M
    from musicrec.pipeline.evaluate import recommend_batched
    from musicrec.config import load_params
    from musicrec.pipeline.interactions import load_interactions
    from musicrec.models.factory import load_model

    p = load_params(a.params)
    ks = sorted(set(p.evaluate.k) | {a.k})
    inter = load_interactions(a.matrices)
    model = load_model(Path(a.models) / "als")
    query = inter.query_rows()
    test = inter.test.astype(np.float32).tocsr()
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    all_test_users = int(users.size)
    if a.max_users and users.size > a.max_users:
        users = np.sort(np.random.default_rng(SEED).choice(users, a.max_users, replace=False))
        keep = np.zeros(test.shape[0], dtype=bool)
        keep[users] = True
        test = (sp.diags(keep.astype(np.float32)) @ test).tocsr()
        test.eliminate_zeros()

    t = time.perf_counter()
    recs_u = recommend_batched(model, users, query, max(ks))
    t_rec = time.perf_counter() - t
    t = time.perf_counter()
    ours = M.accuracy_metrics(recs_u, test[users], ks)
    t_met = time.perf_counter() - t
    t = time.perf_counter()
    ours_k = M.accuracy_metrics(recs_u[:, : a.k], test[users], [a.k])
    t_met_k = time.perf_counter() - t

    imodel = model.implicit_model  # the implicit ALS object holding the same factors
    t = time.perf_counter()
    theirs = ranking_metrics_at_k(imodel, query, test, K=a.k, show_progress=False)
    t_imp = time.perf_counter() - t
    # breakdown: implicit's own batched recommend (GEMM + fused top-k) for the same users, and the
    # scoring floor both share: the users x items GEMM alone, in our chunks, on all cores
    t = time.perf_counter()
    for s0 in range(0, users.size, 10_000):
        imodel.recommend(users[s0:s0 + 10_000], query[users[s0:s0 + 10_000]], N=a.k, filter_already_liked_items=True)
    t_imp_rec = time.perf_counter() - t
    t_gemm = _gemm_floor(model, users)
    pruning = pruning_share(model, users, query, max(ks))

    hits_k = M.hits_matrix(recs_u[:, : a.k], test[users]).sum(axis=1)
    nrel = M.n_relevant(test[users])
    check = {
        "ndcg": (float(np.nanmean(ours_k[f"ndcg@{a.k}"])), float(theirs["ndcg"])),
        "map": (float(np.nanmean(ours_k[f"map@{a.k}"])), float(theirs["map"])),
        "precision_micro_min_k_r": (M.implicit_precision(hits_k, nrel, a.k), float(theirs["precision"])),
    }
    cross = {n: {"musicrec": round(x, 8), "implicit": round(y, 8), "abs_diff": float(abs(x - y)),
                 "agree": bool(abs(x - y) <= 1e-4 * max(1.0, abs(y)))} for n, (x, y) in check.items()}
    print(json.dumps({
        "test_users": int(users.size), "all_test_users": all_test_users, "ks": ks, "k_compared": a.k,
        "musicrec_recommend_s": round(t_rec, 3), "musicrec_metrics_all_ks_s": round(t_met, 3),
        "musicrec_metrics_single_k_s": round(t_met_k, 3), "musicrec_total_s": round(t_rec + t_met, 3),
        "implicit_ranking_metrics_at_k_s": round(t_imp, 3), "implicit_recommend_only_s": round(t_imp_rec, 3),
        "gemm_floor_s": round(t_gemm, 3),
        "n_items": int(model.n_items), "factors": int(model.item_factors.shape[1]), **pruning,
        "time_ratio_musicrec_over_implicit": round((t_rec + t_met) / t_imp, 3),
        "cross_check": cross, "all_agree": all(v["agree"] for v in cross.values()),
    }))


WORKERS = {"duckdb": worker_duckdb, "als": worker_als, "als-iter": worker_als_iter, "eval": worker_eval,
           "transform-phases": worker_transform_phases}
