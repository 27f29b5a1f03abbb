"""Run the evaluation protocol (:mod:`musicrec.evaluation.protocol`) over every trained model.

For each model: recommend top-``max(k)`` for every user with held-out items, in
batches, excluding what the user showed at query time (train rows, or the
revealed items of cold-start users) and, for test, the user's validation items
(heard too: :func:`recommend_unheard`); then score against test (full protocol:
intervals, segments, beyond-accuracy) and against validation (headline metric,
for tuning), and compare each model with popularity (paired test per user).
:func:`run` is the stage's work (load, assess, write metrics, details, DVC plots and
the report); ``stages/evaluate.py`` adds the MLflow logging.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from musicrec.evaluation import protocol as E
from musicrec.evaluation import metrics as M
from musicrec.pipeline.interactions import Interactions
from musicrec.progress import StepTimer, progress

if TYPE_CHECKING:
    from musicrec.config import Params

# users x items per call to ``model.recommend``. Not the score memory: every model scores in
# chunks of its own (MF: cache-sized chunks per thread; others: ``models.base._CHUNK_FLOATS``);
# bigger batches give the MF models' threads more chunks to share and fewer slicing calls.
BATCH_CELLS = 100_000_000


def recommend_batched(model: Any, users: np.ndarray, query: sp.csr_matrix, N: int) -> np.ndarray:
    """Top-N item indices for ``users`` (rows of ``query``), in batches.

    Same result for any batch size: ``recommend`` ranks each user independently.
    """
    users = np.asarray(users, dtype=np.int64)
    n_items = query.shape[1]
    batch = max(1, BATCH_CELLS // max(n_items, 1))
    out = np.full((len(users), N), -1, dtype=np.int64)
    for start in progress(range(0, len(users), batch), f"evaluate: {getattr(model, 'name', 'model')}", unit="batches"):
        u = users[start:start + batch]
        ids, _ = model.recommend(u, query[u], N=N, filter_already_liked_items=True)
        out[start:start + len(u)] = ids
    return out


def recommend_unheard(model: Any, users: np.ndarray, query: sp.csr_matrix, heard: sp.csr_matrix,
                      N: int) -> np.ndarray:
    """:func:`recommend_batched`, then without the items of ``heard`` (rows of ``users``), N per row.

    The test rankings drop each user's validation items too: the user has heard them, so in
    a top-K they are neither new recommendations nor misses. The model still sees only
    ``query`` (its input is unchanged); the ranking of the other items is the same.
    """
    users = np.asarray(users, dtype=np.int64)
    rows = heard[users]
    extra = int(np.diff(rows.indptr).max()) if rows.nnz else 0
    recs = recommend_batched(model, users, query, N + extra)
    if not extra:
        return recs
    n_items = heard.shape[1]
    keys = np.repeat(np.arange(len(users), dtype=np.int64), np.diff(rows.indptr)) * n_items + rows.indices
    drop = np.isin(np.arange(len(users), dtype=np.int64)[:, None] * n_items + recs, keys) & (recs >= 0)
    order = np.argsort(drop, axis=1, kind="stable")[:, :N]  # kept items first, in their order
    return np.take_along_axis(recs, order, axis=1)


def validation_metrics(model: Any, inter: Interactions, main_k: int,
                       query: sp.csr_matrix | None = None) -> dict[str, float]:
    """Headline metrics at ``main_k`` on the validation split (what tuning selects on); ``{}`` without one."""
    val_users = np.flatnonzero(np.diff(inter.validation.indptr) > 0)
    if not len(val_users):
        return {}
    query = inter.query_rows() if query is None else query
    vrecs = recommend_batched(model, val_users, query, main_k)
    vacc = M.accuracy_metrics(vrecs, inter.validation[val_users], [main_k])
    return {k: E.rounded(np.nanmean(v)) for k, v in sorted(vacc.items())}


@dataclass
class Assessment:
    results: dict[str, dict[str, Any]]          # model -> evaluate_model result (test)
    validation: dict[str, dict[str, Any]]       # model -> headline metrics on validation
    comparisons: dict[str, dict[str, Any]]      # model -> metric -> paired comparison vs popularity
    curve: list[dict[str, Any]]                 # rows for the metrics-at-k plot
    recs: dict[str, np.ndarray]                 # model -> top-K for test users (for the report)
    test_users: np.ndarray


def assess(models: Mapping[str, Any], inter: Interactions, *, ks: list[int], main_k: int, bootstrap: int,
           seed: int, item_vectors: Any = None, capped_recall: bool = False) -> Assessment:
    """Score every model on test (and validation); ``capped_recall`` adds ``recall_capped@k`` (MSD protocol)."""
    ks = sorted(set(int(k) for k in ks))
    kmax = max(ks)
    query = inter.query_rows()
    train_all = (inter.train + inter.query).tocsr()
    test_users = np.flatnonzero(np.diff(inter.test.indptr) > 0)
    results: dict[str, dict[str, Any]] = {}
    validation: dict[str, dict[str, Any]] = {}
    per_user: dict[str, dict[str, np.ndarray]] = {}
    recs_by_model: dict[str, np.ndarray] = {}
    for name, model in models.items():
        rng = np.random.default_rng(seed)
        recs = recs_by_model[name] = recommend_unheard(model, test_users, query, inter.validation, kmax)
        rel = inter.test[test_users]
        pu = M.accuracy_metrics(recs, rel, ks)
        if capped_recall:
            pu.update(M.capped_recall_metrics(recs, rel, ks))
        per_user[name] = pu
        results[name] = E.evaluate_model(recs, inter.test, train_all, ks=ks, item_vectors=item_vectors,
                                         bootstrap=bootstrap, rng=rng, users=test_users, per_user=pu)
        vmetrics = validation_metrics(model, inter, main_k, query)
        if vmetrics:
            validation[name] = vmetrics
    headline = [f"{m}@{main_k}" for m in ("ndcg", "recall", "precision", "map", "hit_rate")]
    comparisons = E.compare_to_baseline(per_user, baseline="popularity", metrics=headline, bootstrap=bootstrap,
                                        rng=np.random.default_rng(seed)) if "popularity" in per_user else {}
    return Assessment(results, validation, comparisons, E.metrics_curve(results, ks), recs_by_model, test_users)


def metrics_json(a: Assessment) -> dict[str, Any]:
    """The DVC metrics file: one flat block per model (readable in `dvc exp show`)."""
    out: dict[str, Any] = {}
    for name, res in a.results.items():
        block = dict(res["metrics"])
        for k, v in a.validation.get(name, {}).items():
            block[f"val_{k}"] = v
        block["users_evaluated"] = res["n_users_evaluated"]
        out[name] = block
    return out


def details_json(a: Assessment) -> dict[str, Any]:
    """Everything else: intervals, segments and paired comparisons."""
    return {
        name: {
            "ci": res["ci"], "ci_level": res["ci_level"], "bootstrap": res["bootstrap"],
            "segments": res["segments"], "n_users_skipped": res["n_users_skipped"],
            "vs_popularity": a.comparisons.get(name, {}),
        }
        for name, res in a.results.items()
    }


# the DVC plots files: name -> columns of the metrics-at-k curve
PLOT_FILES: dict[str, list[str]] = {
    "metrics_at_k.csv": ["model", "k", "precision", "recall", "ndcg", "map", "hit_rate"],
    "precision_recall.csv": ["model", "k", "recall", "precision"],
}


@dataclass(frozen=True)
class EvaluatePaths:
    """The evaluate stage's inputs (matrices, items, models) and outputs (the rest)."""

    matrices: Path
    items: Path
    models: Path
    metrics: Path   # DVC metrics JSON (headline metrics per model)
    details: Path   # everything assess computed, as JSON
    plots: Path     # folder of the PLOT_FILES
    report: Path    # report.md
    figures: Path   # its figures folder


def assess_with_params(params: "Params", models: Mapping[str, Any], inter: Interactions, items: Any) -> Assessment:
    """:func:`assess` with the ``evaluate`` section, the seed and the item vectors of ``train``'s features."""
    from musicrec.pipeline.train import item_features_for

    e = params.evaluate
    return assess(models, inter, ks=e.k, main_k=e.main_k, bootstrap=e.bootstrap, seed=params.seed,
                  item_vectors=item_features_for(items, inter, params.train).vectors,
                  capped_recall=params.interactions.split.method == "strong_generalization")


def run(params: "Params", paths: EvaluatePaths) -> dict[str, Any]:
    """Assess every model of ``train.models`` and write the metrics, details, plots and report.

    Returns the metrics (what :func:`metrics_json` gives), for the stage to log and print.
    """
    import pandas as pd

    from musicrec.errors import reading
    from musicrec.evaluation.report import write_report
    from musicrec.io import atomic_path, write_json
    from musicrec.models.factory import load_model
    from musicrec.pipeline.interactions import load_interactions

    timer = StepTimer("evaluate")
    inter = load_interactions(paths.matrices)
    with reading(paths.items, "run the transform stage first"):
        items = pd.read_parquet(paths.items)
    models = {name: load_model(Path(paths.models) / name) for name in params.train.models}
    timer.lap("load")
    a = assess_with_params(params, models, inter, items)
    timer.lap("assess")
    e = params.evaluate
    metrics = metrics_json(a)
    write_json(paths.metrics, metrics)
    write_json(paths.details, details_json(a))
    curve = pd.DataFrame(a.curve)
    for name, cols in PLOT_FILES.items():
        with atomic_path(Path(paths.plots) / name) as tmp:
            curve[cols].to_csv(tmp, index=False, float_format="%.6f")
    catalog_path = Path(paths.models) / "catalog.parquet"
    with reading(catalog_path, "run the train stage first"):
        catalog = pd.read_parquet(catalog_path)
    write_report(Path(paths.report), Path(paths.figures), inter, a, catalog, ks=e.k, main_k=e.main_k,
                 sample_users=e.sample_users, seed=params.seed, split_method=params.interactions.split.method)
    timer.lap("write metrics, plots and report")
    return metrics
