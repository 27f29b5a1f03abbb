"""Bayesian search over one model's space (:mod:`~musicrec.tuning.space`), on the validation split.

Each trial builds the model from the ``train.<model>`` section with the trial's values on
top, fits it on the built train matrix (in process: no DVC stage per trial) and scores
validation nDCG@``evaluate.main_k`` exactly as the evaluate stage does
(:func:`musicrec.pipeline.evaluate.validation_metrics`); test is never looked at. Optuna's
TPE sampler is seeded (``seed`` + the trials already run, so a resumed study does not redraw
the first points) and a new study's first trial is the current ``train.<model>`` section; the
study lives in SQLite next to ``mlflow.db`` (``optuna.db``) under a
name made of the model, the source and a digest of the data params, so a rerun on the same
data resumes it. Models with iterations (ALS) report the validation score every few
iterations and a median pruner stops the trials below the median of earlier ones. Every
trial is an MLflow child run of the study's parent run (:mod:`~musicrec.tuning.runs`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musicrec.errors import UserError
from musicrec.tuning import space

if TYPE_CHECKING:
    from musicrec.config import Params
    from musicrec.pipeline.interactions import Interactions

REPORTS_PER_FIT = 5  # intermediate validation scores per ALS fit (pruning steps)
DATA_SECTIONS = ("data", "generate", "clean", "transform", "interactions")


class TuningError(UserError):
    """A tuning run that cannot start (unknown model, no validation split, ...)."""


def study_name(params: "Params", model: str) -> str:
    """``<model>-<source>-<digest>``: the digest of the seed and data sections, so other data gets its own study."""
    data = {s: getattr(params, s).model_dump(mode="json") for s in DATA_SECTIONS}
    digest = hashlib.sha256(json.dumps({"seed": params.seed, **data}, sort_keys=True).encode()).hexdigest()[:8]
    return f"{model}-{params.data.source}-{digest}"


def storage_url(repo_root: Path | str) -> str:
    """``sqlite:///<folder of mlflow.db>/optuna.db`` (the pipeline's sqlite store, else the project root)."""
    from musicrec.tracking import server

    uri = server.tracking_uri(repo_root)
    folder = Path(uri.removeprefix("sqlite:///")).parent if uri.startswith("sqlite:///") \
        else server.project_root(repo_root)
    return f"sqlite:///{folder / 'optuna.db'}"


@dataclass(frozen=True)
class TuneResult:
    study: str
    model: str
    metric: str
    best_value: float
    best_params: dict[str, Any]   # the whole train.<model> section of the best trial
    best_trial: int
    trials: int                    # trials in the study (all runs), every state
    completed: int
    pruned: int
    files: list[Path]              # plots and summary written

    def summary(self) -> dict[str, Any]:
        return {"study": self.study, "model": self.model, "metric": self.metric, "value": self.best_value,
                "number": self.best_trial, "params": self.best_params, "trials": self.trials,
                "completed": self.completed, "pruned": self.pruned}


def _validation_callback(trial: Any, model: Any, inter: "Interactions", k: int, every: int, seen: dict[int, float]):
    """An ALS ``fit_callback``: validation nDCG@k of the factors so far, reported to the pruner."""
    import numpy as np
    import optuna

    from musicrec.evaluation import metrics as M

    val_users = np.flatnonzero(np.diff(inter.validation.indptr) > 0)
    query = inter.query_rows()
    known = val_users[val_users < inter.train.shape[0]]

    def callback(iteration: int, seconds: float, loss: float) -> None:
        step = iteration + 1
        if step % every:
            return
        imp = model.implicit_model
        if imp is None or not hasattr(imp, "recommend") or not len(known):
            return
        ids, _ = imp.recommend(known, query[known], N=k, filter_already_liked_items=True)
        value = float(np.nanmean(M.accuracy_metrics(np.asarray(ids, dtype=np.int64), inter.validation[known],
                                                    [k])[f"ndcg@{k}"]))
        seen[step] = value
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"validation ndcg@{k} {value:.4f} at iteration {step}")

    return callback


def tune(params: "Params", model: str, inter: "Interactions", *, trials: int, repo_root: Path | str = ".",
         items: Any = None, storage: str | None = None, name: str | None = None, timeout_s: float | None = None,
         out_dir: Path | None = None, progress: bool = True, track: bool = True) -> TuneResult:
    """Run ``trials`` more trials of ``model``'s study (resumed if it exists) and return the best so far."""
    import optuna

    from musicrec.models import MODELS
    from musicrec.models.factory import build_model, validate_params
    from musicrec.pipeline.evaluate import validation_metrics
    from musicrec.tuning import plots
    from musicrec.tuning.runs import StudyRuns, study_runs

    if model not in space.SEARCH_SPACES:
        raise TuningError(f"model {model!r} has no search space; tunable: {', '.join(space.tunable_models())} "
                          "(musicrec/tuning/space.py)")
    if inter.validation.nnz == 0:
        raise TuningError("the interactions have no validation split (interactions.split.validation_fraction is 0): "
                          "tuning selects on validation only; set a validation_fraction > 0")
    if MODELS[model].needs_item_features and items is None:
        raise TuningError(f"model {model!r} needs the item features: pass the items table (--items)")
    repo_root = Path(repo_root)
    k = params.evaluate.main_k
    metric = f"val_ndcg@{k}"
    name = name or study_name(params, model)
    storage = storage or storage_url(repo_root)
    base = params.train.model_params(model)
    features = None
    if MODELS[model].needs_item_features:
        from musicrec.pipeline.train import item_features_for

        features = item_features_for(items, inter, params.train)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    probe = optuna.load_study(study_name=name, storage=storage) if name in optuna.get_all_study_names(storage) \
        else None
    done = len(probe.trials) if probe is not None else 0
    iterations = _int_high(model, "iterations", base.get("iterations", 1))
    study = optuna.create_study(
        study_name=name, storage=storage, direction="maximize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=(params.seed + done) % 2**32),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, iterations // REPORTS_PER_FIT)),
    )
    if done == 0:  # the current settings are the first trial: the search starts from what params.yaml has
        start = _in_space(model, base)
        if start:
            study.enqueue_trial(start, skip_if_exists=True)
    settings = {"model": model, "source": params.data.source, "metric": metric, "seed": params.seed,
                "sampler": "TPE", "pruner": "median", "storage": storage}

    def objective(trial: Any, runs: StudyRuns) -> float:
        drawn = space.suggest(trial, model)
        full = {**base, **drawn}
        rec = build_model(model, full, seed=params.seed)
        seen: dict[int, float] = {}
        if model in space.ITERATIVE:
            every = max(1, full["iterations"] // REPORTS_PER_FIT)
            rec.fit_callback = _validation_callback(trial, rec, inter, k, every, seen)
        try:
            rec.fit(inter.train, item_features=features)
        except optuna.TrialPruned:
            runs.log_trial(trial.number, drawn, "PRUNED", None, metric, seen, {})
            raise
        v = validation_metrics(rec, inter, k)
        value = float(v[f"ndcg@{k}"])
        for key, x in v.items():
            trial.set_user_attr(f"val_{key}", x)
        runs.log_trial(trial.number, drawn, "COMPLETE", value, metric, seen, {f"val_{a}": b for a, b in v.items()})
        if not math.isfinite(value):
            raise TuningError(f"trial {trial.number}: validation ndcg@{k} is not finite")
        return value

    context = study_runs(params, repo_root, name, settings) if track else contextlib.nullcontext(StudyRuns(None, None))
    with context as runs:
        if trials:
            study.optimize(lambda t: objective(t, runs), n_trials=trials, timeout=timeout_s,
                           show_progress_bar=progress, gc_after_trial=True, catch=())
        states = [t.state for t in study.trials]
        completed = sum(s == optuna.trial.TrialState.COMPLETE for s in states)
        if not completed:
            raise TuningError(f"study {name}: no trial completed")
        best = study.best_trial
        best_params = validate_params(model, {**base, **best.params})
        result = TuneResult(study=name, model=model, metric=metric, best_value=float(best.value),
                            best_params=best_params, best_trial=best.number, trials=len(states),
                            completed=completed, pruned=sum(s == optuna.trial.TrialState.PRUNED for s in states),
                            files=[])
        files: list[Path] = []
        if out_dir is not None:
            from musicrec.io import write_json

            out_dir = Path(out_dir)
            files = plots.write_plots(study, out_dir)
            write_json(out_dir / "best.json", {**result.summary(), "best_trial_attrs": best.user_attrs})
            files.append(out_dir / "best.json")
        runs.log_summary(result.summary(), files)
    return TuneResult(**{**result.__dict__, "files": files})


def _in_space(model: str, params: dict[str, Any]) -> dict[str, Any]:
    """The values of ``params`` for the active dimensions of ``model``'s space, or {} if one is out of range."""
    out: dict[str, Any] = {}
    for key, dim in space.SEARCH_SPACES[model].items():
        if any(out.get(k) != v for k, v in dim.when.items()):
            continue
        v = params.get(key)
        ok = v in dim.options if isinstance(dim, space.Choice) else v is not None and dim.low <= v <= dim.high
        if not ok:
            return {}
        out[key] = v
    return out


def _int_high(model: str, key: str, default: int) -> int:
    """The upper end of an integer dimension, or ``default`` when the key is not searched."""
    dim = space.SEARCH_SPACES[model].get(key)
    return max(1, int(dim.high) if isinstance(dim, space.Int) else int(default))


def apply_values(result: TuneResult, params: "Params", preset: dict[str, Any] | None = None) -> dict[str, Any]:
    """The dotted ``params.yaml`` values that make the best trial a DVC experiment (the preset's first)."""
    values = dict(preset or {})
    for k, v in result.best_params.items():
        values[f"train.{result.model}.{k}"] = v
    models = list(values.get("train.models", params.train.models))
    if result.model not in models:
        values["train.models"] = models + [result.model]
    return values
