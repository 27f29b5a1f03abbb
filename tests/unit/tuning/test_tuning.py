"""Tuning (issue #15): search spaces, the Optuna study on a small generated dataset, MLflow child runs."""

from __future__ import annotations

import numpy as np
import pytest

from musicrec.tuning import space
from musicrec.tuning.study import TuningError, apply_values, study_name, tune


def test_every_search_space_is_a_valid_train_section():
    space.check_spaces()  # keys are Params fields, ranges inside their bounds
    assert set(space.tunable_models()) <= set(__import__("musicrec.models", fromlist=["MODELS"]).MODELS)
    assert "popularity" not in space.tunable_models() and set(space.ITERATIVE) <= set(space.tunable_models())


def test_bm25_keys_are_only_drawn_with_bm25_weighting():
    import optuna

    drawn = space.suggest(optuna.trial.FixedTrial({"weighting": "log1p", "factors": 32, "regularization": 1.0,
                                                   "alpha": 2.0, "iterations": 10}), "als")
    assert "bm25_k1" not in drawn and drawn["weighting"] == "log1p"
    drawn = space.suggest(optuna.trial.FixedTrial({"weighting": "bm25", "bm25_k1": 10.0, "bm25_b": 0.5, "factors": 32,
                                                   "regularization": 1.0, "alpha": 2.0, "iterations": 10}), "als")
    assert drawn["bm25_k1"] == 10.0 and drawn["bm25_b"] == 0.5


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    from musicrec.pipeline.interactions import load_interactions
    from musicrec.pipeline.local import params_for
    from tests.support.pipeline import build_small_matrices

    root = build_small_matrices(tmp_path_factory.mktemp("tune"))
    params = params_for(42, train={"models": ["popularity", "als"], "als": {"factors": 8, "iterations": 5}},
                        evaluate={"k": [10], "main_k": 10, "bootstrap": 0})
    return params, load_interactions(root / "data/processed/matrices")


def test_three_trials_then_resume_with_mlflow_child_runs(small, tmp_path, monkeypatch):
    import mlflow
    import optuna

    params, inter = small
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = tune(params, "als", inter, trials=3, repo_root=tmp_path, storage=storage, out_dir=tmp_path / "out",
                 progress=False)
    assert first.study == study_name(params, "als") and first.trials == 3 and first.completed + first.pruned == 3
    assert 0 < first.best_value <= 1 and first.best_params["factors"] >= 16  # drawn from the space, not the base 8
    assert (tmp_path / "out" / "history.png").stat().st_size > 0 and (tmp_path / "out" / "best.json").is_file()
    again = tune(params, "als", inter, trials=2, repo_root=tmp_path, storage=storage, progress=False)
    assert again.trials == 5 and again.best_value >= first.best_value  # resumed: the same study, 2 more trials
    study = optuna.load_study(study_name=first.study, storage=storage)
    assert len(study.trials) == 5 and len({str(t.params) for t in study.trials}) == 5  # no redrawn points
    assert all(t.intermediate_values for t in study.trials)  # ALS reports validation scores while it fits
    # one parent run for the study, one child run per trial, under it
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=[params.mlflow.experiment], output_format="list")
    parents = [r for r in runs if r.data.tags.get("musicrec.tune.study") == first.study]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 5
    assert {r.data.tags["musicrec.tune.trial"] for r in children} == {"0", "1", "2", "3", "4"}
    assert "tuning/history.png" in {a.path for a in mlflow.MlflowClient().list_artifacts(parents[0].info.run_id,
                                                                                        "tuning")}


def test_the_sampler_is_seeded(small, tmp_path):
    params, inter = small
    drawn = []
    for run in ("a", "b"):
        r = tune(params, "rp3beta", inter, trials=2, storage=f"sqlite:///{tmp_path / run}.db", progress=False,
                 track=False)
        drawn.append(r.best_params)
    assert drawn[0] == drawn[1]


def test_the_winner_becomes_a_dvc_experiment(small, tmp_path):
    params, inter = small
    r = tune(params, "rp3beta", inter, trials=1, storage=f"sqlite:///{tmp_path}/o.db", progress=False, track=False)
    values = apply_values(r, params, {"data.source": "synthetic"})
    assert list(values)[0] == "data.source" and values["train.models"] == ["popularity", "als", "rp3beta"]
    assert values["train.rp3beta.k"] == r.best_params["k"]


def test_tuning_needs_a_validation_split(small, tmp_path):
    import dataclasses

    import scipy.sparse as sp

    params, inter = small
    no_val = dataclasses.replace(inter, validation=sp.csr_matrix(inter.validation.shape, dtype=np.float32))
    with pytest.raises(TuningError, match="validation"):
        tune(params, "als", no_val, trials=1, storage=f"sqlite:///{tmp_path}/o.db", progress=False, track=False)
    with pytest.raises(TuningError, match="no search space"):
        tune(params, "popularity", inter, trials=1, storage=f"sqlite:///{tmp_path}/o.db", progress=False,
             track=False)
