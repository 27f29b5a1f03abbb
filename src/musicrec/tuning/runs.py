"""MLflow logging of a tuning study: one parent run per study, one child run per trial.

The parent run is found again by its ``musicrec.tune.study`` tag, so a resumed study keeps
adding children to the same parent. The only module of :mod:`musicrec.tuning` that imports
mlflow; the store is the pipeline's (:func:`musicrec.tracking.server.tracking_uri`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STUDY_TAG = "musicrec.tune.study"


class StudyRuns:
    """The parent run of a study (``None`` when tracking is off), and its child runs."""

    def __init__(self, mlflow: Any | None, parent_id: str | None):
        self.mlflow = mlflow
        self.parent_id = parent_id

    def log_trial(self, number: int, params: dict[str, Any], state: str, value: float | None,
                  metric: str, intermediate: dict[int, float], user_attrs: dict[str, Any]) -> None:
        if self.mlflow is None:
            return
        from musicrec.tracking.logger import log_metrics, log_params_flat

        with self.mlflow.start_run(run_name=f"trial-{number}", nested=True, parent_run_id=self.parent_id,
                                   tags={"musicrec.tune.trial": str(number), "musicrec.tune.state": state}):
            log_params_flat(params)
            for step, v in sorted(intermediate.items()):
                log_metrics({f"{metric}_at_iteration": v}, step=step)
            log_metrics({**user_attrs, **({metric: value} if value is not None else {})})

    def log_summary(self, best: dict[str, Any], files: list[Path]) -> None:
        if self.mlflow is None:
            return
        from musicrec.tracking.logger import log_metrics

        mlflow = self.mlflow
        with mlflow.start_run(run_id=self.parent_id):
            log_metrics({f"best_{best['metric']}": best["value"]}, step=best["trials"])
            mlflow.set_tags({"musicrec.tune.best_trial": str(best["number"]),
                             "musicrec.tune.best_params": str(best["params"])[:5000]})
            for f in files:
                mlflow.log_artifact(str(f), artifact_path="tuning")


@contextlib.contextmanager
def study_runs(params: Any, repo_root: Path, study_name: str, settings: dict[str, Any]) -> Iterator[StudyRuns]:
    """The study's parent run (created, or found by its tag and resumed); off when tracking is unavailable."""
    from musicrec.tracking import server

    uri = server.tracking_uri(repo_root)
    if not server.ensure_tracking(uri, required=params.mlflow.required, timeout_s=params.mlflow.timeout_s):
        yield StudyRuns(None, None)
        return
    server.configure_http(params.mlflow.timeout_s)
    import mlflow

    mlflow.set_tracking_uri(uri)
    exp = server.set_experiment(params.mlflow.experiment, uri)
    found = mlflow.search_runs([exp.experiment_id], filter_string=f"tags.`{STUDY_TAG}` = '{study_name}'",
                               max_results=1, output_format="list")
    if found:
        parent_id = found[0].info.run_id
    else:
        with mlflow.start_run(run_name=f"tune {study_name}", tags={STUDY_TAG: study_name}) as run:
            mlflow.log_params({k: str(v)[:500] for k, v in settings.items()})
            parent_id = run.info.run_id
    yield StudyRuns(mlflow, parent_id)
