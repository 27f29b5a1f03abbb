"""Per-model evaluation saved and combined (the evaluate@<model> and compare stages) = one in-process assess."""

import json

import numpy as np
import pytest

from musicrec.pipeline import compare
from musicrec.pipeline.evaluate import (HEADLINE, assess, assess_model, combine, headline_metrics, load_assessment,
                                       save_assessment)
from musicrec.pipeline.local import LocalPaths, params_for, run_local
from musicrec.pipeline.train import train_all

PARAMS = params_for(5, data={"chunk_rows": 1_000},
                    generate={"n_tracks": 150, "n_users": 120, "n_plays": 3_000, "n_genres": 3, "n_artists": 30},
                    transform={"partitions": 1}, dask={"scheduler": "synchronous", "num_workers": 1},
                    train={"models": ["popularity", "itemknn"]},
                    evaluate={"k": [5, 10], "main_k": 5, "bootstrap": 20})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    run = run_local(PARAMS, LocalPaths.under(root), stop="interactions")
    inter, items = run.interactions(), run.items()
    return root, inter, {t.name: t.model for t in train_all(inter, items, PARAMS.train, PARAMS.seed)}


def test_saved_per_model_evaluations_combine_to_the_in_process_assessment(fitted) -> None:
    root, inter, models = fitted
    e = PARAMS.evaluate
    kw = {"ks": e.k, "main_k": e.main_k, "bootstrap": e.bootstrap, "seed": PARAMS.seed}
    whole = assess(models, inter, **kw)
    for name, model in models.items():
        save_assessment(root / "evaluation" / name, assess_model(model, inter, **kw))
    parts = {name: load_assessment(root / "evaluation" / name) for name in models}
    combined = combine(parts, **kw)
    assert json.dumps(combined.results, sort_keys=True) == json.dumps(whole.results, sort_keys=True)
    assert json.dumps(combined.comparisons, sort_keys=True) == json.dumps(whole.comparisons, sort_keys=True)
    assert combined.validation == whole.validation and combined.curve == whole.curve
    for name in models:
        assert np.array_equal(combined.recs[name], whole.recs[name])
    assert np.array_equal(combined.test_users, whole.test_users)


def test_the_dvc_metrics_hold_the_headline_metrics_at_main_k_only(fitted) -> None:
    _, inter, models = fitted
    a = assess(models, inter, ks=[5, 10], main_k=5, bootstrap=0, seed=1)
    metrics = compare.metrics_json(a, 5)
    assert set(metrics) == set(models)
    assert set(metrics["itemknn"]) == {f"{m}@5" for m in HEADLINE} | {"val_ndcg@5"}
    for name, block in metrics.items():  # reports/metrics.json = the evaluate@<name> DVC metrics files, side by side
        assert block == headline_metrics(a.results[name]["metrics"], a.validation[name], 5)
    details = compare.details_json(a)
    assert "ndcg@10" in details["itemknn"]["metrics"], "every cut-off stays in evaluation.json"


def test_a_missing_model_evaluation_names_its_stage(tmp_path) -> None:
    from musicrec.errors import MissingInputError

    with pytest.raises(MissingInputError, match="run the evaluate@als stage first"):
        load_assessment(tmp_path / "als")


def test_refit_on_validation_scores_the_train_fit_on_validation_and_tests_the_refit(fitted) -> None:
    from musicrec.pipeline.evaluate import validation_metrics
    from musicrec.pipeline.train import train_one

    root, inter, models = fitted
    items = run_local(PARAMS, LocalPaths.under(root), start="interactions", stop="interactions").items()
    plain = train_one("itemknn", inter, items, PARAMS.train, PARAMS.seed)
    refit = train_one("itemknn", inter, items, PARAMS.train, PARAMS.seed, refit_k=5)
    assert plain.validation is None and plain.fitted_on == "train" and refit.fitted_on == "train+validation"
    assert refit.validation == validation_metrics(plain.model, inter, 5), "the train fit's validation metrics"
    both = inter.train_with_validation()
    assert both.nnz == inter.train.nnz + inter.validation.nnz and both.dtype == np.float32
    kw = {"ks": [5], "main_k": 5, "bootstrap": 0, "seed": 1}
    part = assess_model(refit.model, inter, refitted_validation=refit.validation, **kw)
    assert part.validation == refit.validation  # reported as they are: the refitted model has seen validation
    heard = (inter.train + inter.validation).tocsr()
    for row, user in zip(part.recs, part.test_users):  # its test query is train + validation: none recommended
        assert not set(row[row >= 0]) & set(heard[user].indices)
    assert part.result["metrics"] != assess_model(plain.model, inter, **kw).result["metrics"]
