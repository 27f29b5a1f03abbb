"""MLflow logging as the train and evaluate stages use it: one run per pipeline run.

``train`` starts a fresh run and writes its id to the run-id file (a train
output); ``evaluate`` resumes the run named there and adds its metrics and
reports. When tracking is unavailable and ``mlflow.required`` is false, both
stages warn and go on (the metrics stay in ``reports/``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from musicrec.config import Params


@contextlib.contextmanager
def pipeline_run(params: Params, repo_root: Path, *, run_id_file: Path, new_run: bool, run_name: str,
                 dep_paths: list[str]) -> Iterator[Any | None]:
    """Yield the ``mlflow`` module with the pipeline's run active, or ``None`` when tracking is off."""
    from musicrec.tracking import logger, provenance, server

    if new_run:
        run_id_file.unlink(missing_ok=True)
    uri = server.tracking_uri(repo_root)
    if not server.ensure_tracking(uri, required=params.mlflow.required, timeout_s=params.mlflow.timeout_s):
        if new_run:
            from musicrec.io import write_text

            write_text(run_id_file, "")
        yield None
        return
    server.configure_http(params.mlflow.timeout_s)
    import mlflow

    with logger.start_or_resume_run(params.mlflow.experiment, run_id_file=run_id_file, run_name=run_name,
                                      tags=provenance.provenance_tags(repo_root, dep_paths), tracking_uri=uri):
        yield mlflow
