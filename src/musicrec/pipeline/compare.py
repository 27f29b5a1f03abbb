"""The ``compare`` stage: every model's evaluation side by side (DVC metrics, plots, report).

Reads the ``evaluate@<name>`` folders (``data/evaluation/<name>/``) of the models of
``train.models``, compares each with popularity (paired tests per user,
:func:`musicrec.pipeline.evaluate.combine`) and writes:

* ``reports/metrics.json``: every model's headline metrics in one object, what the CLI, the app
  and the notebooks read (a plain output: the DVC metrics are the ``evaluate@<name>`` stages'
  ``reports/metrics/<name>.json``, the same values, a row per model in ``dvc metrics show``);
* ``reports/evaluation.json``: everything else (every cut-off, intervals, segments, paired tests);
* the DVC plots files (:data:`PLOT_FILES`) and ``reports/report.md`` with its figures.

``stages/compare.py`` adds the MLflow logging.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musicrec.pipeline.evaluate import Assessment, combine, headline_metrics, load_assessment

if TYPE_CHECKING:
    from musicrec.config import Params


# the DVC plots files: name -> columns. metrics_at_k / precision_recall: one row per model and cut-off;
# models: one row per model at evaluate.main_k (the nDCG bars and the coverage-vs-nDCG scatter)
CURVE_PLOTS: dict[str, list[str]] = {
    "metrics_at_k.csv": ["model", "k", "precision", "recall", "ndcg", "map", "hit_rate"],
    "precision_recall.csv": ["model", "k", "recall", "precision"],
}
MODELS_PLOT, MODELS_PLOT_METRICS = "models.csv", ("ndcg", "recall", "precision", "coverage", "novelty")
PLOT_FILES = (*CURVE_PLOTS, MODELS_PLOT)


@dataclass(frozen=True)
class ComparePaths:
    """The compare stage's inputs (evaluation, matrices, catalog) and outputs (the rest)."""

    evaluation: Path  # folder of the evaluate@<name> outputs, one sub-folder per model
    matrices: Path    # the interactions (the report's data summary and sample users)
    catalog: Path     # data/models/catalog.parquet (names in the report)
    metrics: Path     # reports/metrics.json (headline metrics per model)
    details: Path     # everything else, as JSON
    plots: Path       # folder of the PLOT_FILES
    report: Path      # report.md
    figures: Path     # its figures folder


@dataclass(frozen=True)
class CompareResult:
    assessment: Assessment
    metrics: dict[str, dict[str, Any]]     # what reports/metrics.json holds
    all_metrics: dict[str, dict[str, Any]]  # every metric of every model (test, every cut-off, and val_)


def all_metrics(a: Assessment) -> dict[str, dict[str, Any]]:
    """Per model: every test metric at every cut-off, ``val_<metric>`` and ``users_evaluated``."""
    out: dict[str, dict[str, Any]] = {}
    for name, res in a.results.items():
        block = dict(res["metrics"])
        block.update({f"val_{k}": v for k, v in a.validation.get(name, {}).items()})
        block["users_evaluated"] = res["n_users_evaluated"]
        out[name] = block
    return out


def metrics_json(a: Assessment, main_k: int) -> dict[str, dict[str, Any]]:
    """``reports/metrics.json``: per model its DVC metrics (:func:`~musicrec.pipeline.evaluate.headline_metrics`)."""
    return {name: headline_metrics(res["metrics"], a.validation.get(name, {}), main_k)
            for name, res in a.results.items()}


def details_json(a: Assessment) -> dict[str, Any]:
    """Everything else: every metric, intervals, segments and paired comparisons."""
    return {
        name: {
            "metrics": res["metrics"], "validation": a.validation.get(name, {}),
            "n_users_evaluated": res["n_users_evaluated"],
            "ci": res["ci"], "ci_level": res["ci_level"], "bootstrap": res["bootstrap"],
            "segments": res["segments"], "n_users_skipped": res["n_users_skipped"],
            "vs_popularity": a.comparisons.get(name, {}),
        }
        for name, res in a.results.items()
    }


def models_rows(a: Assessment, main_k: int) -> list[dict[str, Any]]:
    """The rows of :data:`MODELS_PLOT`: one per model, its metrics at ``main_k``."""
    return [{"model": name, "k": main_k,
             **{m: a.results[name]["metrics"].get(f"{m}@{main_k}") for m in MODELS_PLOT_METRICS}}
            for name in sorted(a.results)]


def write_plots(folder: Path, a: Assessment, main_k: int) -> None:
    """Write the folder of the :data:`PLOT_FILES` (CSV, six decimals) atomically (it is one DVC output)."""
    import pandas as pd

    from musicrec.io import atomic_path

    frames = {name: pd.DataFrame(a.curve)[cols] for name, cols in CURVE_PLOTS.items()}
    frames[MODELS_PLOT] = pd.DataFrame(models_rows(a, main_k), columns=["model", "k", *MODELS_PLOT_METRICS])
    with atomic_path(Path(folder), directory=True) as tmp:
        for name, frame in frames.items():
            frame.to_csv(tmp / name, index=False, float_format="%.6f")


def run(params: "Params", paths: ComparePaths) -> CompareResult:
    """Combine the evaluations of ``train.models`` and write the metrics, details, plots and report."""
    import pandas as pd

    from musicrec.errors import reading
    from musicrec.evaluation.report import write_report
    from musicrec.io import write_json
    from musicrec.pipeline.interactions import load_interactions

    e = params.evaluate
    parts = {name: load_assessment(Path(paths.evaluation) / name) for name in params.train.models}
    a = combine(parts, ks=e.k, main_k=e.main_k, bootstrap=e.bootstrap, seed=params.seed)
    metrics = metrics_json(a, e.main_k)
    write_json(paths.metrics, metrics)
    write_json(paths.details, details_json(a))
    write_plots(Path(paths.plots), a, e.main_k)
    inter = load_interactions(paths.matrices)
    with reading(paths.catalog, "run the catalog stage first"):
        catalog = pd.read_parquet(paths.catalog)
    write_report(Path(paths.report), Path(paths.figures), inter, a, catalog, ks=e.k, main_k=e.main_k,
                 sample_users=e.sample_users, seed=params.seed, split_method=params.interactions.split.method)
    return CompareResult(a, metrics, all_metrics(a))
