"""Benchmark: approximate nearest neighbours (FAISS) vs exact top-10 over MF item factors.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_ann.py --sizes 20k,50k,375k     # `make bench-ann`

For each catalogue size, synthetic ALS-like factors (``--factors`` dimensions, default
64): item factors around 64 "genre" centres with log-normal norms (popular items have
longer vectors, as in an ALS fit), user factors (the queries) mixtures of one to three
centres. Every method answers the same ``--queries`` users with their top-10 by inner
product, unfiltered, and is compared with the exact top-10:

* ``exact numpy`` -- ``U @ F.T`` + ``argpartition`` (batch: chunks of 256 users);
* ``exact model`` -- :meth:`musicrec.models.mf.ALSRecommender.recommend` (the pipeline's
  exact path: pruned top-N by factor norm above 8,192 items), on a model saved in the
  project's format from these factors and loaded with :func:`~musicrec.models.factory.load_model`;
* ``faiss hnsw`` / ``faiss ivf`` -- :class:`musicrec.models.ann.ANNIndex` with the
  ``train.als.ann`` defaults (and other ``efSearch`` / ``nprobe`` values);
* ``model ann_recommend`` -- the model's ANN path as served (user vectors, over-fetch,
  filtering of the user's items: 20 random items per user here), HNSW defaults;
* ``implicit faiss`` -- ``implicit.ann.faiss.FaissModel`` (what
  ``implicit.approximate_als.FaissAlternatingLeastSquares`` returns: IVF, nlist 400,
  nprobe 20) over the same factors; ``implicit annoy`` is reported as not installed
  when ``annoy`` is missing.

Measured: recall@10 against the exact top-10, batch queries per second (all queries in
one call, best of three runs), p95 / median latency of single-user queries
(``--latency-queries``, each query's best of two rounds), index
build time and size (FAISS's serialised index, what it holds in memory). Everything runs
on one thread (OpenBLAS and FAISS's OpenMP) so that the methods are compared on equal
terms on a shared machine; index builds use one thread too, as the pipeline does (for
reproducible bytes). Plus the memory of the item x item similarity matrix that
item-kNN keeps (``k`` neighbours per item, float32 CSR: ``nnz * 8 + (n + 1) * 8`` bytes,
for ``k`` = ``train.itemknn.k`` of params.yaml and implicit's default 100), next to the
index, for the same catalogue.

With ``--content DATA`` (a pipeline's ``data/`` folder: ``processed/matrices`` and
``processed/items.parquet``, e.g. the default pipeline's), also the content model's two
embeddings, ``tfidf`` (sparse tags + audio) and ``tfidf_svd`` (dense: truncated SVD
of the tag TF-IDF + audio, ``train.content.svd_dim``), evaluated like the evaluate
stage (``musicrec.pipeline.evaluate.assess``: test users, top-10, no bootstrap) next to
popularity, plus recall@10 of the content model's HNSW index against its exact
recommendations and similar items.

Writes ``reports/ann_benchmark.json`` and the "Approximate nearest neighbours" section
of ``reports/benchmarks.md`` (:func:`render_section`; ``benchmarks/render.py`` keeps it
when ``run.py`` rewrites that report).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_env import REPO, use_checkout

use_checkout()

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from musicrec.models.ann import ANNSettings  # noqa: E402

SIZES = {"20k": 20_000, "50k": 50_000, "375k": 375_000}
SECTION = "## Approximate nearest neighbours (FAISS)"
OUT_JSON = REPO / "reports" / "ann_benchmark.json"
OUT_MD = REPO / "reports" / "benchmarks.md"
TARGET = {"size": "375k", "recall_at_10_min": 0.95, "qps_ratio_vs_exact_min": 10.0}
K = 10


# ---- data ---------------------------------------------------------------------------------
def synthetic_factors(n_items: int, n_users: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """ALS-like factors: items around genre centres with log-normal norms; users mixtures of 1-3 centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, d)) / np.sqrt(d)
    items = centres[rng.integers(0, 64, n_items)] + 0.6 * rng.standard_normal((n_items, d)) / np.sqrt(d)
    items *= rng.lognormal(0.0, 0.5, (n_items, 1))
    mix = rng.dirichlet(np.full(3, 0.7), n_users)
    picks = rng.integers(0, 64, (n_users, 3))
    users = np.einsum("uk,ukd->ud", mix, centres[picks]) + 0.3 * rng.standard_normal((n_users, d)) / np.sqrt(d)
    return np.ascontiguousarray(items, dtype=np.float32), np.ascontiguousarray(users, dtype=np.float32)


def exact_topk(U: np.ndarray, F: np.ndarray, k: int, chunk: int = 256) -> np.ndarray:
    out = np.empty((len(U), k), dtype=np.int64)
    FT = np.ascontiguousarray(F.T)
    for s in range(0, len(U), chunk):
        S = U[s:s + chunk] @ FT
        part = np.argpartition(-S, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(S, part, axis=1), axis=1, kind="stable")
        out[s:s + chunk] = np.take_along_axis(part, order, axis=1)
    return out


def recall(got: np.ndarray, want: np.ndarray) -> float:
    return round(float(np.mean([len(set(g[g >= 0]) & set(w)) / len(w) for g, w in zip(got, want)])), 4)


def saved_model(directory: Path, U: np.ndarray, F: np.ndarray):
    """An ALSRecommender in the project's saved format (model.json + arrays.npz) from given factors."""
    from musicrec.models.factory import load_model
    from musicrec.models.persist import ARRAYS_NPZ, FORMAT_VERSION, write_model_json, write_npz

    directory.mkdir(parents=True)
    pop = np.linalg.norm(F, axis=1).astype(np.float32)
    write_npz(directory / ARRAYS_NPZ, {"item_popularity": pop, "user_factors": U, "item_factors": F,
                                       "fitted_users": np.ones(len(U), dtype=bool)})
    write_model_json(directory, {"model": "als", "format_version": FORMAT_VERSION,
                                 "params": {"factors": F.shape[1], "regularization": 1.0, "alpha": 10.0,
                                            "iterations": 15},
                                 "seed": 0, "n_users": len(U), "n_items": len(F), "meta": {}})
    return load_model(directory, num_threads=1)


# ---- timing -------------------------------------------------------------------------------
def timed(fn, *args, **kw) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


REPEATS = 3  # batch timings: best of this many runs; latencies: each query's best of 2 (a shared machine)


def best_of(fn, *args, **kw) -> tuple[Any, float]:
    """``fn(*args, **kw)`` and its best wall time over :data:`REPEATS` runs."""
    out, best = timed(fn, *args, **kw)
    for _ in range(REPEATS - 1):
        best = min(best, timed(fn, *args, **kw)[1])
    return out, best


def latency(one, n: int) -> dict[str, float]:
    """Median and p95 milliseconds of ``one(i)`` for i in range(n), each query's best of two rounds
    (after 5 warm-up calls)."""
    for i in range(min(5, n)):
        one(i)
    ms = np.full(n, np.inf)
    for _ in range(2):
        for i in range(n):
            t0 = time.perf_counter()
            one(i)
            ms[i] = min(ms[i], (time.perf_counter() - t0) * 1e3)
    return {"p50_ms": round(float(np.median(ms)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def method_row(name: str, ids: np.ndarray, batch_s: float, exact: np.ndarray, lat: dict[str, float],
               **extra: Any) -> dict[str, Any]:
    return {"method": name, "recall_at_10": recall(ids, exact), "qps": round(len(ids) / batch_s, 1),
            **lat, **extra}


def itemknn_bytes(n_items: int, k: int) -> int:
    """float32 CSR with ``k`` neighbours per item: data + int32 indices + int64 indptr."""
    nnz = n_items * min(k, n_items - 1)
    return nnz * 4 + nnz * 4 + (n_items + 1) * 8


def rss_mb() -> float | None:
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return None
    return round(psutil.Process().memory_info().rss / 2**20, 1)


# ---- one size -----------------------------------------------------------------------------
def run_size(name: str, n_items: int, *, d: int, n_queries: int, n_latency: int, seed: int,
             knn_k: int, ef_values: list[int], nprobe_values: list[int]) -> dict[str, Any]:
    import faiss

    from musicrec.config import load_params
    from musicrec.models.ann import ANNIndex

    faiss.omp_set_num_threads(1)
    defaults = ANNSettings.from_params(load_params(REPO / "params.yaml").train.als.ann.model_dump())
    F, U = synthetic_factors(n_items, n_queries, d, seed)
    rows: list[dict[str, Any]] = []
    print(f"[{name}] {n_items} items x {d}, {n_queries} queries", flush=True)

    exact, t = best_of(exact_topk, U, F, K)
    FT = np.ascontiguousarray(F.T)

    def numpy_one(i: int) -> None:
        s = U[i] @ FT
        p = np.argpartition(-s, K)[:K]
        p[np.argsort(-s[p])]

    exact_row = method_row("exact numpy (matmul + argpartition)", exact, t, exact,
                           latency(numpy_one, n_latency), build_s=0.0, index_mb=round(F.nbytes / 2**20, 1))
    rows.append(exact_row)
    print(f"  exact numpy: {exact_row['qps']} qps", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        model = saved_model(Path(tmp) / "als", U, F)
        users = np.arange(n_queries)
        empty = sp.csr_matrix((n_queries, n_items), dtype=np.float32)
        (mids, _), t = best_of(model.recommend, users, empty, N=K, filter_already_liked_items=False)
        rows.append(method_row("exact model (ALSRecommender.recommend, pruned top-N)", mids, t, exact,
                               latency(lambda i: model.recommend(users[i:i + 1], empty[i:i + 1], N=K,
                                                                 filter_already_liked_items=False), n_latency),
                               build_s=0.0, index_mb=round(F.nbytes / 2**20, 1)))
        print(f"  exact model: {rows[-1]['qps']} qps", flush=True)

        hnsw = None
        for kind in ("hnsw", "ivf"):
            settings = ANNSettings(**{**defaults.as_dict(), "enabled": True, "kind": kind,
                                      "ivf_nlist": min(defaults.ivf_nlist, max(16, int(4 * np.sqrt(n_items))))})
            before = rss_mb()
            index, build_s = timed(ANNIndex.build, F, settings)
            after = rss_mb()
            if kind == "hnsw":
                hnsw = index
            sweep = ef_values if kind == "hnsw" else nprobe_values
            default = settings.ef_search if kind == "hnsw" else settings.nprobe
            for value in sorted(set(sweep) | {default}):
                if kind == "hnsw":
                    probe = ANNIndex(index.index, ANNSettings(**{**settings.as_dict(), "ef_search": value}))
                    label = f"faiss hnsw (M={settings.hnsw_m}, efConstruction={settings.ef_construction}, efSearch={value})"
                else:
                    index.index.nprobe = value
                    probe = ANNIndex(index.index, ANNSettings(**{**settings.as_dict(), "nprobe": value}))
                    label = f"faiss ivf (nlist={index.index.nlist}, nprobe={value})"
                (ids, _), t = best_of(probe.search, U, K)
                rows.append(method_row(label, ids, t, exact, latency(lambda i: probe.search(U[i:i + 1], K), n_latency),
                                       build_s=round(build_s, 2), index_mb=round(index.memory_bytes() / 2**20, 1),
                                       rss_delta_mb=None if before is None else round(after - before, 1),
                                       default=value == default))
                print(f"  {label}: recall {rows[-1]['recall_at_10']} {rows[-1]['qps']} qps", flush=True)

        # the served path: fold-in-free known users, their 20 played items filtered (over-fetch)
        rng = np.random.default_rng(seed + 1)
        played = sp.csr_matrix((np.ones(n_queries * 20, dtype=np.float32),
                                np.sort(rng.integers(0, n_items, (n_queries, 20)), axis=1).ravel(),
                                np.arange(0, n_queries * 20 + 1, 20)), shape=(n_queries, n_items))
        played.sum_duplicates()
        model.ann_settings = hnsw.settings
        model.ann_indexes = {"recommend": hnsw}
        (want, _), _ = timed(model.recommend, users, played, N=K)
        (got, _), t = best_of(model.ann_recommend, users, played, N=K)
        rows.append(method_row("model ann_recommend (HNSW defaults, 20 played items filtered)", got, t, want,
                               latency(lambda i: model.ann_recommend(users[i:i + 1], played[i:i + 1], N=K), n_latency),
                               build_s=rows[2]["build_s"], index_mb=rows[2]["index_mb"],
                               note="recall vs the exact filtered recommend"))
        print(f"  model ann_recommend: recall {rows[-1]['recall_at_10']} {rows[-1]['qps']} qps", flush=True)
        similar = similar_rows(model, hnsw.settings, n_queries, n_latency, seed)

    rows.extend(implicit_rows(F, U, exact, n_latency))
    knn = {str(k): round(itemknn_bytes(n_items, k) / 2**20, 1) for k in sorted({knn_k, 100})}
    return {"n_items": n_items, "factors": d, "queries": n_queries, "latency_queries": n_latency,
            "factors_mb": round(F.nbytes / 2**20, 1), "itemknn_similarity_mb": knn, "methods": rows, "similar": similar}


def similar_rows(model, settings, n_queries: int, n_latency: int, seed: int) -> list[dict[str, Any]]:
    """``similar_items`` (cosine of item factors: no norm pruning applies) exact vs the model's HNSW ``similar`` index."""
    from musicrec.models.ann import ANNIndex, unit_rows

    items = np.random.default_rng(seed + 2).choice(model.n_items, n_queries, replace=False)
    (want, _), t = best_of(model.similar_items, items, N=K)
    rows = [method_row("exact model (similar_items: cosine over every item)", want, t, want,
                       latency(lambda i: model.similar_items(items[i:i + 1], N=K), n_latency),
                       build_s=0.0, index_mb=round(model.item_factors.nbytes / 2**20, 1))]
    index, build_s = timed(ANNIndex.build, unit_rows(model.item_factors), settings)
    model.ann_indexes = {"similar": index}
    for ef in sorted({64, settings.ef_search}):
        index.settings = ANNSettings(**{**settings.as_dict(), "ef_search": ef})
        (got, _), t = best_of(model.ann_similar_items, items, N=K)
        rows.append(method_row(f"model ann_similar_items (faiss hnsw on normalised factors, efSearch={ef})", got, t,
                               want, latency(lambda i: model.ann_similar_items(items[i:i + 1], N=K), n_latency),
                               build_s=round(build_s, 2), index_mb=round(index.memory_bytes() / 2**20, 1),
                               default=ef == settings.ef_search))
        print(f"  {rows[-1]['method']}: recall {rows[-1]['recall_at_10']} {rows[-1]['qps']} qps", flush=True)
    return rows


def implicit_rows(F: np.ndarray, U: np.ndarray, exact: np.ndarray, n_latency: int) -> list[dict[str, Any]]:
    """implicit's approximate_als models over the same factors (their fit() would retrain ALS: skipped)."""
    import faiss
    from implicit.ann.faiss import FaissModel
    from implicit.cpu.als import AlternatingLeastSquares

    class Fitted(AlternatingLeastSquares):
        def fit(self, *args, **kwargs):  # the factors are given: no training
            return None

    als = Fitted(factors=F.shape[1], num_threads=1)
    als.item_factors, als.user_factors = F, U
    users = np.arange(len(U))
    out = []
    model = FaissModel(als, approximate_recommend=True, approximate_similar_items=False, use_gpu=False)
    _, build_s = timed(model.fit, None)
    (ids, _), t = best_of(model.recommend, users, None, N=K, filter_already_liked_items=False)
    out.append(method_row(f"implicit faiss (FaissModel: IVF nlist={model.nlist}, nprobe={model.nprobe})", ids, t, exact,
                          latency(lambda i: model.recommend(int(users[i]), None, N=K, filter_already_liked_items=False),
                                  n_latency),
                          build_s=round(build_s, 2),
                          index_mb=round(faiss.serialize_index(model.recommend_index).nbytes / 2**20, 1)))
    try:
        import annoy  # noqa: F401
    except ImportError:
        out.append({"method": "implicit annoy (AnnoyModel)", "recall_at_10": None, "qps": None, "p50_ms": None,
                    "p95_ms": None, "build_s": None, "index_mb": None, "note": "not installed (annoy is not a dependency)"})
    return out


# ---- content embeddings ---------------------------------------------------------------------
def content_study(data: Path, seed: int, n_queries: int) -> dict[str, Any]:
    """tfidf vs tfidf_svd content models on a pipeline's data, evaluated as the evaluate stage does."""
    from musicrec.config import load_params
    from musicrec.models.factory import build_model
    from musicrec.pipeline.evaluate import assess
    from musicrec.pipeline.interactions import load_inputs
    from musicrec.pipeline.train import item_features_for

    params = load_params(REPO / "params.yaml")
    inter, items = load_inputs(data / "processed" / "matrices", data / "processed" / "items.parquet")
    features = item_features_for(items, inter, params.train)
    content = params.train.model_params("content")
    models, fit_s = {}, {}
    for name, extra in (("popularity", None), ("content tfidf", {"embedding": "tfidf"}),
                        ("content tfidf_svd", {"embedding": "tfidf_svd"})):
        model = build_model("popularity", {}, seed=seed) if extra is None else \
            build_model("content", {**content, **extra, "ann": {"enabled": False}}, seed=seed)
        models[name], fit_s[name] = timed(model.fit, inter.train_weighted, item_features=features)
    print("  content: fitted", fit_s, flush=True)
    a = assess(models, inter, ks=[10], main_k=10, bootstrap=0, seed=seed, item_vectors=features.vectors)
    keep = ("ndcg@10", "recall@10", "precision@10", "map@10", "coverage@10", "novelty@10", "ild@10")
    metrics = {name: {k: v for k, v in res["metrics"].items() if k in keep} for name, res in a.results.items()}
    svd = models["content tfidf_svd"]
    settings = ANNSettings(**{**ANNSettings.from_params(content["ann"]).as_dict(), "enabled": True, "min_items": 1})
    _, build_s = timed(svd.build_ann, settings)
    users = a.test_users[:n_queries]
    query = inter.query_rows()
    got, want = svd.ann_recommend(users, query[users], N=K)[0], svd.recommend(users, query[users], N=K)[0]
    items_q = np.arange(min(n_queries, svd.n_items))
    sgot, swant = svd.ann_similar_items(items_q, N=K)[0], svd.similar_items(items_q, N=K)[0]
    return {"data": str(data), "n_items": int(svd.n_items), "n_users": int(inter.train.shape[0]),
            "svd_dim": int(content["svd_dim"]), "embedding_dims": int(svd.embeddings.shape[1]),
            "fit_s": {k: round(v, 2) for k, v in fit_s.items()}, "metrics": metrics,
            "ann": {"index": f"hnsw M={settings.hnsw_m} efSearch={settings.ef_search}", "build_s": round(build_s, 2),
                    "recommend_recall_at_10": recall(got, want), "similar_recall_at_10": recall(sgot, swant),
                    "index_mb": round(svd.ann_indexes["items"].memory_bytes() / 2**20, 1)}}


def render_content(c: dict[str, Any]) -> list[str]:
    cols = ["ndcg@10", "recall@10", "precision@10", "map@10", "coverage@10", "novelty@10", "ild@10"]
    L = ["### Content embeddings (tfidf vs tfidf_svd)", "",
         f"On `{c['data']}` ({c['n_users']:,} users, {c['n_items']:,} items), evaluated as the evaluate stage does "
         f"(test users, top-10, train items filtered). tfidf_svd: {c['svd_dim']} SVD components of the tag TF-IDF + "
         f"the standardised audio features = {c['embedding_dims']} dense dims.", "",
         "| model | fit s | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for name, m in c["metrics"].items():
        L.append(f"| {name} | {c['fit_s'][name]} | " + " | ".join(str(m.get(k, "—")) for k in cols) + " |")
    a = c["ann"]
    L += ["", f"FAISS index over the tfidf_svd embeddings ({a['index']}, built in {a['build_s']} s, {a['index_mb']} MB): "
              f"recall@10 vs exact {a['recommend_recall_at_10']} for recommend (cold-start profiles: the users' "
              f"query rows), {a['similar_recall_at_10']} for similar items.", ""]
    return L


# ---- report -------------------------------------------------------------------------------
def summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The target at 375k: the fastest FAISS setting with recall@10 >= 0.95 against both exact paths.

    ``met`` compares with exact scoring of every item (numpy matmul + argpartition, what
    "exact" means in the issue); the model's own exact path (norm-pruned top-N) is given
    beside it, batch and single-query.
    """
    res = doc["results"].get(TARGET["size"])
    if not res:
        return {"met": None, "reason": f"{TARGET['size']} not run"}
    by = {r["method"].split(" (")[0]: r for r in res["methods"]}
    brute, pruned = by["exact numpy"], by["exact model"]
    ok = [r for r in res["methods"] if r["method"].startswith("faiss") and r["recall_at_10"] >= TARGET["recall_at_10_min"]]
    if not ok:
        return {"met": False, "reason": f"no FAISS setting reached recall@10 >= {TARGET['recall_at_10_min']}"}
    best = max(ok, key=lambda r: r["qps"])
    ratio = round(best["qps"] / brute["qps"], 1)
    return {"met": ratio >= TARGET["qps_ratio_vs_exact_min"], "best": best["method"], "recall_at_10": best["recall_at_10"],
            "qps": best["qps"], "exact_qps": brute["qps"], "qps_ratio": ratio,
            "pruned_exact_qps": pruned["qps"], "qps_ratio_vs_pruned": round(best["qps"] / pruned["qps"], 2),
            "p50_ratio_vs_pruned": round(pruned["p50_ms"] / best["p50_ms"], 1),
            "p95_ratio_vs_pruned": round(pruned["p95_ms"] / best["p95_ms"], 1)}


def table_row(m: dict[str, Any]) -> str:
    def cell(v: Any) -> str:
        return "—" if v is None else f"{v:g}" if isinstance(v, float) else str(v)

    label = m["method"] + (" **(default)**" if m.get("default") else "") + (f" ({m['note']})" if m.get("note") else "")
    return (f"| {label} | {cell(m['recall_at_10'])} | {cell(m['qps'])} | {cell(m['p50_ms'])} | {cell(m['p95_ms'])} | "
            f"{cell(m['build_s'])} | {cell(m['index_mb'])} |")


def render_section(doc: dict[str, Any]) -> list[str]:
    """The Markdown section of ``reports/benchmarks.md`` for an ANN results document."""
    s = doc["summary"]
    L = [SECTION, "",
         f"Generated by `python benchmarks/bench_ann.py --sizes {','.join(doc['sizes'])}` on {doc['date']} "
         f"({doc['machine']}, total {doc['total_s']:.0f} s); see benchmarks/README.md. Synthetic ALS-like factors "
         f"({doc['factors']} dims), {doc['queries']} user queries, top-10 by inner product; one thread for every "
         "method (OpenBLAS and FAISS OpenMP), index builds single-threaded as in the pipeline; QPS best of 3 batch runs, "
         "latency each query's best of 2 (the machine is shared: compare rows of one run, not runs).", ""]
    if s.get("met") is None:
        L += [f"Target (recall@10 >= {TARGET['recall_at_10_min']} at >= {TARGET['qps_ratio_vs_exact_min']:g}x exact QPS "
              f"on {TARGET['size']} items): {s['reason']}.", ""]
    elif "best" in s:
        L += [f"Target: recall@10 >= {TARGET['recall_at_10_min']} at >= {TARGET['qps_ratio_vs_exact_min']:g}x the "
              f"exact QPS on {TARGET['size']} items: **{'met' if s['met'] else 'missed'}** -- {s['best']}: recall@10 "
              f"{s['recall_at_10']}, {s['qps']} QPS = {s['qps_ratio']}x exact scoring of every item "
              f"({s['exact_qps']} QPS). Against the model's own exact path (norm-pruned top-N, {s['pruned_exact_qps']} "
              f"QPS in batches): {s['qps_ratio_vs_pruned']}x in batches, {s['p50_ratio_vs_pruned']}x lower median and "
              f"{s['p95_ratio_vs_pruned']}x lower p95 single-query latency. Why batches of the pruned path come close: "
              "the top-10 by inner product sits among the items with the longest factors (as in ALS, where the norm "
              "follows popularity), so most users stop after the first blocks; a single query pays the same fixed "
              "cost per call, and `similar` (cosine: every norm is 1) cannot prune at all (table below each size).", ""]
    else:
        L += [f"Target: missed -- {s['reason']}.", ""]
    for name in doc["sizes"]:
        r = doc["results"][name]
        L += [f"### {name}: {r['n_items']:,} items", "",
              "| method | recall@10 | QPS (batch) | p50 ms | p95 ms | build s | index MB |",
              "|---|---|---|---|---|---|---|"]
        L += [table_row(m) for m in r["methods"]]
        if r.get("similar"):
            L += ["", f"`similar` ({r['n_items']:,} items, cosine of the item factors, {r['queries']} random items):", "",
                  "| method | recall@10 | QPS (batch) | p50 ms | p95 ms | build s | index MB |", "|---|---|---|---|---|---|---|"]
            L += [table_row(m) for m in r["similar"]]
        knn = ", ".join(f"k={k}: {mb:,.1f} MB" for k, mb in r["itemknn_similarity_mb"].items())
        L += ["", f"Memory, same catalogue: item factors {r['factors_mb']} MB; item-kNN item x item similarity "
                  f"matrix (float32 CSR) {knn}; the FAISS indexes above (index MB).", ""]
    if doc.get("content"):
        L += render_content(doc["content"])
    return L


def write_section(lines: list[str], path: Path = OUT_MD) -> None:
    """Replace (or append) the ANN section of ``reports/benchmarks.md``; the rest is left as it is."""
    from musicrec.io import write_text

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    start = text.find(SECTION)
    if start >= 0:
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start].rstrip("\n") + ("\n\n" + text[nxt + 1:] if nxt >= 0 else "")
    write_text(path, text.rstrip("\n") + "\n\n" + "\n".join(lines).rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="20k,50k,375k", help=f"comma-separated, of {', '.join(SIZES)}")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--latency-queries", type=int, default=300)
    ap.add_argument("--ef-search", default="32,64,128,256")
    ap.add_argument("--nprobe", default="8,32,64")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--content", type=Path, default=None, metavar="DATA",
                    help="also compare the content embeddings on this pipeline data folder (e.g. data)")
    ap.add_argument("--render-only", action="store_true", help="re-render the Markdown section from --out-json")
    ap.add_argument("--out-json", default=str(OUT_JSON))
    ap.add_argument("--out-md", default=str(OUT_MD))
    args = ap.parse_args(argv)
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        ap.error(f"unknown size(s) {', '.join(unknown)}; expected {', '.join(SIZES)}")
    import implicit

    from musicrec.config import load_params
    from musicrec.io import write_json

    if args.render_only:
        write_section(render_section(json.loads(Path(args.out_json).read_text(encoding="utf-8"))), Path(args.out_md))
        return 0

    knn_k = load_params(REPO / "params.yaml").train.itemknn.k
    t0 = time.perf_counter()
    results = {}
    for name in sizes:
        results[name] = run_size(name, SIZES[name], d=args.factors, n_queries=args.queries,
                                 n_latency=args.latency_queries, seed=args.seed, knn_k=knn_k,
                                 ef_values=[int(v) for v in args.ef_search.split(",")],
                                 nprobe_values=[int(v) for v in args.nprobe.split(",")])
    content = content_study(args.content, args.seed, args.queries) if args.content else None
    import faiss

    doc = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "sizes": sizes,
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
                      f"Python {platform.python_version()}, faiss {faiss.__version__}, implicit {implicit.__version__}",
           "factors": args.factors, "queries": args.queries, "threads": 1, "results": results,
           "total_s": round(time.perf_counter() - t0, 1), "content": content}
    doc["summary"] = summary(doc)
    write_json(Path(args.out_json), doc)
    write_section(render_section(doc), Path(args.out_md))
    print(json.dumps(doc["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
