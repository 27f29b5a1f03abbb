"""Run the evaluation protocol (:mod:`musicrec.evaluation.protocol`) over every trained model.

For each model: recommend top-``max(k)`` for every user with held-out items, in
batches, excluding what the user showed at query time (train rows, or the
revealed items of cold-start users) and, for test, the user's validation items
(heard too: :func:`recommend_unheard`); then score against test (full protocol:
intervals, segments, beyond-accuracy) and against validation (headline metric,
for tuning): :func:`assess_model`. :func:`combine` puts the models side by side and
compares each with popularity (paired test per user); :func:`assess` does both in process.
:func:`run_one` is the ``evaluate@<name>`` stage's work (one model, saved with
:func:`save_assessment`); the ``compare`` stage (:mod:`musicrec.pipeline.compare`) reads
them back, combines them and writes the metrics, plots and report.
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

# the DVC metrics of a model (reports/metrics/<model>.json, written by evaluate@<model>): these test
# metrics at evaluate.main_k, plus val_<metric> for these validation ones (see :func:`headline_metrics`)
HEADLINE = ("ndcg", "recall", "precision", "map", "coverage")
VALIDATION_HEADLINE = ("ndcg",)

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
class ModelAssessment:
    """One model's evaluation (what the ``evaluate@<name>`` stage saves)."""

    result: dict[str, Any]          # evaluate_model result (test)
    validation: dict[str, Any]      # headline metrics on validation
    per_user: dict[str, np.ndarray]  # accuracy metric -> per test user (the paired tests vs popularity need them)
    recs: np.ndarray                # top-K for the test users (for the report)
    test_users: np.ndarray


@dataclass
class Assessment:
    results: dict[str, dict[str, Any]]          # model -> evaluate_model result (test)
    validation: dict[str, dict[str, Any]]       # model -> headline metrics on validation
    comparisons: dict[str, dict[str, Any]]      # model -> metric -> paired comparison vs popularity
    curve: list[dict[str, Any]]                 # rows for the metrics-at-k plot
    recs: dict[str, np.ndarray]                 # model -> top-K for test users (for the report)
    test_users: np.ndarray


def assess_model(model: Any, inter: Interactions, *, ks: list[int], main_k: int, bootstrap: int, seed: int,
                 item_vectors: Any = None, capped_recall: bool = False,
                 refitted_validation: Mapping[str, Any] | None = None) -> ModelAssessment:
    """Score one model on test (full protocol) and on validation (headline metrics).

    ``capped_recall`` adds ``recall_capped@k`` (the MSD strong-generalisation protocol's Recall@k).
    ``refitted_validation``: ``model`` was refitted on train + validation
    (``evaluate.refit_on_validation``, :func:`musicrec.pipeline.train.train_one`) and these are its
    train fit's validation metrics: they are reported as they are (the refitted model has seen
    validation), and its test query is the train + validation rows.
    """
    ks = sorted(set(int(k) for k in ks))
    query = inter.query_rows(with_validation=refitted_validation is not None)
    train_all = (inter.train + inter.query).tocsr()
    test_users = np.flatnonzero(np.diff(inter.test.indptr) > 0)
    rng = np.random.default_rng(seed)
    recs = recommend_unheard(model, test_users, query, inter.validation, max(ks))
    rel = inter.test[test_users]
    pu = M.accuracy_metrics(recs, rel, ks)
    if capped_recall:
        pu.update(M.capped_recall_metrics(recs, rel, ks))
    result = E.evaluate_model(recs, inter.test, train_all, ks=ks, item_vectors=item_vectors,
                              bootstrap=bootstrap, rng=rng, users=test_users, per_user=pu)
    validation = (validation_metrics(model, inter, main_k, query) if refitted_validation is None
                  else dict(refitted_validation))
    return ModelAssessment(result, validation, pu, recs, test_users)


def combine(parts: Mapping[str, ModelAssessment], *, ks: list[int], main_k: int, bootstrap: int,
            seed: int) -> Assessment:
    """The models' assessments side by side, with each model's paired comparison against popularity.

    ``parts`` in ``train.models`` order (the comparisons share one random stream in that order).
    """
    ks = sorted(set(int(k) for k in ks))
    if not parts:
        raise ValueError("no model to combine")
    first = next(iter(parts.values()))
    for name, part in parts.items():
        if not np.array_equal(part.test_users, first.test_users):
            raise ValueError(f"{name} was evaluated on other test users than the other models")
    per_user = {name: part.per_user for name, part in parts.items()}
    headline = [f"{m}@{main_k}" for m in ("ndcg", "recall", "precision", "map", "hit_rate")]
    comparisons = E.compare_to_baseline(per_user, baseline="popularity", metrics=headline, bootstrap=bootstrap,
                                        rng=np.random.default_rng(seed)) if "popularity" in per_user else {}
    results = {name: part.result for name, part in parts.items()}
    return Assessment(results, {name: part.validation for name, part in parts.items() if part.validation},
                      comparisons, E.metrics_curve(results, ks), {name: part.recs for name, part in parts.items()},
                      first.test_users)


def assess(models: Mapping[str, Any], inter: Interactions, *, ks: list[int], main_k: int, bootstrap: int,
           seed: int, item_vectors: Any = None, capped_recall: bool = False,
           refitted: Mapping[str, Mapping[str, Any]] | None = None) -> Assessment:
    """:func:`assess_model` for every model, then :func:`combine` (``refitted``: model -> its
    ``refitted_validation``, for the models refitted on train + validation)."""
    refitted = refitted or {}
    parts = {name: assess_model(model, inter, ks=ks, main_k=main_k, bootstrap=bootstrap, seed=seed,
                                item_vectors=item_vectors, capped_recall=capped_recall,
                                refitted_validation=refitted.get(name))
             for name, model in models.items()}
    return combine(parts, ks=ks, main_k=main_k, bootstrap=bootstrap, seed=seed)


# the files of one model's evaluation folder (data/evaluation/<name>/)
RESULT_FILE, ARRAYS_FILE = "result.json", "arrays.npz"


def save_assessment(out_dir: Path, part: ModelAssessment) -> None:
    """Write one model's evaluation folder atomically (JSON + an uncompressed ``.npz``, no pickle)."""
    from musicrec.io import atomic_path, write_json

    arrays = {f"per_user/{k}": np.asarray(v) for k, v in sorted(part.per_user.items())}
    arrays.update({"recs": np.asarray(part.recs, dtype=np.int64), "test_users": np.asarray(part.test_users)})
    with atomic_path(Path(out_dir), directory=True) as tmp:
        write_json(tmp / RESULT_FILE, {"result": part.result, "validation": part.validation})
        with open(tmp / ARRAYS_FILE, "wb") as fh:
            np.savez(fh, **arrays)


def load_assessment(directory: Path) -> ModelAssessment:
    """Read what :func:`save_assessment` wrote (a missing folder: run its ``evaluate@<name>`` stage)."""
    from musicrec.errors import reading
    from musicrec.io import read_json

    directory = Path(directory)
    with reading(directory / RESULT_FILE, f"run the evaluate@{directory.name} stage first"):
        doc = read_json(directory / RESULT_FILE)
    with reading(directory / ARRAYS_FILE, f"run the evaluate@{directory.name} stage first"):
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    per_user = {k.removeprefix("per_user/"): v for k, v in arrays.items() if k.startswith("per_user/")}
    return ModelAssessment(doc["result"], doc["validation"], per_user, arrays["recs"], arrays["test_users"])


def assess_with_params(params: "Params", models: Mapping[str, Any], inter: Interactions, items: Any,
                       refitted: Mapping[str, Mapping[str, Any]] | None = None) -> Assessment:
    """:func:`assess` with the ``evaluate`` section, the seed and the item vectors of ``train``'s features."""
    from musicrec.pipeline.train import item_features_for

    e = params.evaluate
    return assess(models, inter, ks=e.k, main_k=e.main_k, bootstrap=e.bootstrap, seed=params.seed,
                  item_vectors=item_features_for(items, inter, params.train).vectors,
                  capped_recall=params.interactions.split.method == "strong_generalization", refitted=refitted)


def headline_metrics(test: Mapping[str, Any], validation: Mapping[str, Any], main_k: int) -> dict[str, Any]:
    """A model's DVC metrics: the :data:`HEADLINE` test metrics at ``main_k``, then ``val_`` + :data:`VALIDATION_HEADLINE`.

    One small flat object per model, so that ``dvc metrics show`` is a row per model that fits a terminal.
    """
    out = {f"{m}@{main_k}": test[f"{m}@{main_k}"] for m in HEADLINE if f"{m}@{main_k}" in test}
    out.update({f"val_{m}@{main_k}": validation[f"{m}@{main_k}"] for m in VALIDATION_HEADLINE
                if f"{m}@{main_k}" in validation})
    return out


def run_one(params: "Params", name: str, matrices: Path, items_path: Path, model_dir: Path,
            out_dir: Path, metrics_path: Path | None = None, train_report: Path | None = None) -> ModelAssessment:
    """The ``evaluate@<name>`` stage: assess the saved model ``model_dir`` and save its evaluation folder.

    ``metrics_path``: also write the model's DVC metrics file (:func:`headline_metrics`) there.
    ``train_report``: the ``train@<name>`` report; its ``validation`` (a model refitted on train +
    validation, :func:`musicrec.pipeline.train.run_one`) is the model's validation metrics.
    """
    import pandas as pd

    from musicrec.errors import reading
    from musicrec.models.factory import load_model
    from musicrec.pipeline.interactions import load_interactions
    from musicrec.pipeline.train import item_features_for

    timer = StepTimer(f"evaluate@{name}")
    refitted = None
    if train_report is not None:  # the train stage's report: the train fit's validation metrics if refitted
        from musicrec.io import read_json

        with reading(train_report, f"run the train@{name} stage first"):
            refitted = read_json(train_report).get("validation")
    inter = load_interactions(matrices)
    with reading(items_path, "run the transform stage first"):
        items = pd.read_parquet(items_path)
    model = load_model(Path(model_dir))
    timer.lap("load")
    e = params.evaluate
    part = assess_model(model, inter, ks=e.k, main_k=e.main_k, bootstrap=e.bootstrap, seed=params.seed,
                        item_vectors=item_features_for(items, inter, params.train).vectors,
                        capped_recall=params.interactions.split.method == "strong_generalization",
                        refitted_validation=refitted)
    timer.lap("assess")
    save_assessment(Path(out_dir), part)
    if metrics_path is not None:
        from musicrec.io import write_json

        write_json(Path(metrics_path), headline_metrics(part.result["metrics"], part.validation, e.main_k))
    return part
