"""Fit the models on the training matrix and save them (no pickle).

The models folder is self-contained for serving and for MLflow: one sub-folder
per model (``<name>/model.json`` + arrays, written by the ``train@<name>`` stage),
the id maps and a small catalogue (``catalog.parquet``: item index, id, name,
artist, tags, genre; written by the ``catalog`` stage, :mod:`musicrec.pipeline.catalog`)
so that recommendations can be printed with names after a plain ``dvc pull``.
:func:`~musicrec.pipeline.interactions.load_inputs` and :func:`run_one` are the ``train@<name>`` stage's work (one
model); :func:`train_all` and :func:`save_models` fit and save every model of
``train.models`` in process (``pipeline.local``). The params sections a model's fit
reads: :func:`musicrec.pipeline.validate.fit_sections`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from musicrec.config import TrainParams
from musicrec.pipeline.interactions import Interactions


@dataclass
class Trained:
    name: str
    model: Any
    seconds: float
    # refitted on train + validation (evaluate.refit_on_validation): the train fit's validation metrics
    validation: dict[str, Any] | None = None

    @property
    def fitted_on(self) -> str:
        return "train" if self.validation is None else "train+validation"


def item_features_for(items: pd.DataFrame, inter: Interactions, params: TrainParams) -> Any:
    from musicrec.models.features import build_item_features

    return build_item_features(items, inter.maps.item_ids, tag_weight=params.content.tag_weight,
                               audio_weight=params.content.audio_weight)


def build(name: str, params: TrainParams, seed: int) -> Any:
    """Model ``name`` from its params; the hybrids' components take their own ``train.<name>`` params."""
    from musicrec.models.factory import build_model, component_names

    own = params.model_params(name)
    parts = {comp: params.model_params(comp) for comp in component_names(name, own)}
    return build_model(name, own, seed=seed, component_params=parts or None)


def train_one(name: str, inter: Interactions, items: pd.DataFrame, params: TrainParams, seed: int,
              features: Any = None, refit_k: int | None = None) -> Trained:
    """Fit model ``name`` on the train play counts, which it weighs itself (``train.<name>.weighting``;
    ``features``: built when it needs them).

    ``refit_k`` (``evaluate.main_k`` under ``evaluate.refit_on_validation``): score that fit on
    validation at this cut-off, then fit the model again on train + validation and return that one,
    with the first fit's validation metrics (the refitted model has seen validation). Without a
    validation split there is nothing to refit on: the train fit is returned.
    """
    from musicrec.models import MODELS

    if features is None and MODELS[name].needs_item_features:
        features = item_features_for(items, inter, params)
    model = build(name, params, seed)
    t0 = time.perf_counter()
    model.fit(inter.train, item_features=features)
    seconds = time.perf_counter() - t0
    if refit_k is None or inter.validation.nnz == 0:
        return Trained(name, model, seconds)
    from musicrec.pipeline.evaluate import validation_metrics

    validation = validation_metrics(model, inter, refit_k)
    model = build(name, params, seed)
    t0 = time.perf_counter()
    model.fit(inter.train_with_validation(), item_features=features)
    return Trained(name, model, seconds + time.perf_counter() - t0, validation)


def refit_k(params: Any) -> int | None:
    """:func:`train_one`'s ``refit_k`` for the whole ``params``: ``evaluate.main_k`` when refitting, else None."""
    return params.evaluate.main_k if params.evaluate.refit_on_validation else None


def train_all(inter: Interactions, items: pd.DataFrame, params: TrainParams, seed: int,
              refit_k: int | None = None) -> list[Trained]:
    """Fit each model listed in ``train.models`` (the item features are built once; ``refit_k``: :func:`train_one`)."""
    from musicrec.models import MODELS

    needs = [name for name in params.models if MODELS[name].needs_item_features]
    features = item_features_for(items, inter, params) if needs else None
    return [train_one(name, inter, items, params, seed, features, refit_k) for name in params.models]


def save_models(out_dir: Path, trained: list[Trained], inter: Interactions, items: pd.DataFrame, *,
                source: str | None = None) -> None:
    """Write the whole models folder atomically: every model, the id maps and the catalogue
    (``source``: the ``data.source`` its data came from)."""
    from musicrec.io import atomic_path
    from musicrec.pipeline.catalog import write_catalog

    with atomic_path(Path(out_dir), directory=True) as tmp:
        for t in trained:
            t.model.save(tmp / t.name)
        write_catalog(tmp, inter, items, source)


@dataclass(frozen=True)
class TrainResult:
    trained: Trained
    report: dict[str, Any]  # what reports/train/<name>.json holds: shape and fit seconds


def run_one(params: TrainParams, seed: int, name: str, inter: Interactions, items: pd.DataFrame, out_dir: Path,
            report_path: Path, refit_k: int | None = None) -> TrainResult:
    """Fit model ``name`` (``refit_k``: :func:`train_one`), save its folder ``out_dir`` and write its train
    report (shape, what it was fitted on, fit seconds; the train fit's validation metrics when refitted).

    The report is a plain output, not a DVC metric: its timing differs on every run. The
    ``evaluate@<name>`` stage reads its ``validation`` (:func:`musicrec.pipeline.evaluate.run_one`).
    """
    from musicrec.io import write_json

    trained = train_one(name, inter, items, params, seed, refit_k=refit_k)
    trained.model.save(Path(out_dir))  # atomically, with its own temporaries next to out_dir
    fitted_nnz = inter.train.nnz + (0 if trained.validation is None else inter.validation.nnz)  # disjoint parts
    report = {
        "model": name, "users": inter.train.shape[0], "items": inter.train.shape[1],
        "fitted_on": trained.fitted_on, "train_interactions": int(fitted_nnz), "fit_seconds": round(trained.seconds, 3),
    }
    if trained.validation is not None:
        report["validation"] = trained.validation
    write_json(report_path, report)
    return TrainResult(trained, report)
