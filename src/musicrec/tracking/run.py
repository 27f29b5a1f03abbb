"""The pipeline's MLflow run: opened once, by the evaluate stage, after the metrics are computed.

    with pipeline_run(params, repo_root, RunInputs(...)) as run:
        write_provenance(report, run.provenance)   # the report shows what the run page shows
        run.log_results(metrics)

:func:`pipeline_run` computes the provenance (:mod:`musicrec.tracking.provenance`: git state,
changed params, DVC md5s of what the run read) and, when tracking is on, starts a run named
``<dvc exp name or git short sha> · <source>`` with those tags and the changed params as its
description. :meth:`PipelineRun.log_results` logs params, metrics, the datasets (MLflow inputs),
the reports, every trained model as a pyfunc model (once per content hash), and registers the
main model with the ``champion`` alias rule (:mod:`musicrec.tracking.logged_models`). When
tracking is unavailable and ``mlflow.required`` is false, the run is a no-op with the same
provenance (``run_id`` None).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicrec.config import Params
from musicrec.tracking import provenance as prov_mod



@dataclass(frozen=True)
class RunInputs:
    """What the run read and wrote: the paths are the stage's (relative to the repository root)."""

    params_file: Path
    matrices: Path                    # interactions (the train/test split; its history files serve users)
    items: Path                       # item metadata / features
    models: Path                      # the trained models folder
    reports: Sequence[Path] = ()      # files and folders logged under the artifact reports/
    contexts: Mapping[str, str] = field(default_factory=dict)  # path -> dataset context, else defaults

    def data(self) -> dict[str, str]:
        """path -> MLflow dataset context, for every path whose DVC md5 is recorded."""
        default = {str(self.matrices): "training+testing", str(self.items): "training",
                   str(self.models): "model"}
        return default | dict(self.contexts)


class PipelineRun:
    """The run as the stage sees it: ``provenance`` (always) and, with tracking on, ``run_id``."""

    def __init__(self, params: Params, repo_root: Path, inputs: RunInputs, provenance: dict[str, Any],
                 active: Any | None, tracking_uri: str | None):
        self.params, self.repo_root, self.inputs = params, repo_root, inputs
        self.provenance = provenance
        self._active = active
        self.tracking_uri = tracking_uri
        self.run_id: str | None = None if active is None else active.info.run_id
        self.provenance["run_id"] = self.run_id
        self.models: dict[str, Any] = {}
        self.registered: dict[str, Any] | None = None

    def log_results(self, metrics: Mapping[str, Any]) -> None:
        """Params, metrics, datasets, reports, pyfunc models, the registry version (no-op without tracking)."""
        if self._active is None:
            return
        import mlflow

        from musicrec.tracking import datasets, logged_models, logger, pyfunc_model

        p = self.params
        logger.log_params_flat(json.loads(p.model_dump_json()))
        logger.log_metrics(metrics)
        contexts = {prov_mod.rel_path(self.repo_root, k): c for k, c in self.inputs.data().items()}
        datasets.log_datasets({k: v for k, v in self.provenance["data"].items() if contexts.get(k) != "model"},
                              contexts, self.repo_root)
        logger.log_artifacts([Path(r) for r in self.inputs.reports], artifact_path="reports")
        exp_id = self._active.info.experiment_id
        models_dir = Path(self.inputs.models)
        from musicrec.serving.recommender import HISTORY_FILES

        history = [Path(self.inputs.matrices) / f for f in HISTORY_FILES if (Path(self.inputs.matrices) / f).is_file()]
        # outside the repository: a killed run leaves nothing in the workspace (hard links when on one disk)
        with tempfile.TemporaryDirectory(prefix="musicrec-mlflow-models-") as tmp:
            for name in p.train.models:
                dest = Path(tmp) / name / pyfunc_model.ARTIFACT
                staged = logged_models.stage_model(models_dir, name, history, dest)
                self.models[name] = logged_models.log_or_reuse(name, staged, exp_id)
        from musicrec.serving.artifacts import default_model

        main = default_model(list(p.train.models))
        key = f"val_ndcg@{p.evaluate.main_k}"
        value = (metrics.get(main) or {}).get(key)
        self.registered = logged_models.register(self.models[main], source=p.data.source, run_id=self.run_id,
                                                 metric=key, value=value, tracking_uri=self.tracking_uri)
        mlflow.set_tags({"musicrec.main_model": main, "musicrec.registered_version":
                         f"{self.registered['name']}/{self.registered['version']}",
                         "musicrec.champion": str(self.registered["champion"]).lower(),
                         "musicrec.reused_models": ",".join(n for n, r in self.models.items() if r.reused) or "-"})


@contextlib.contextmanager
def pipeline_run(params: Params, repo_root: Path, inputs: RunInputs) -> Iterator[PipelineRun]:
    """Yield the :class:`PipelineRun` (with the MLflow run active when tracking is on)."""
    from musicrec.tracking import server

    root = Path(repo_root)
    prov = prov_mod.compute(root, params_file=inputs.params_file, data_source=params.data.source,
                            data=list(inputs.data()))
    uri = server.tracking_uri(root)
    if not server.ensure_tracking(uri, required=params.mlflow.required, timeout_s=params.mlflow.timeout_s):
        yield PipelineRun(params, root, inputs, prov, None, None)
        return
    server.configure_http(params.mlflow.timeout_s)
    from musicrec.tracking import logger

    with logger.start_run(params.mlflow.experiment, run_name=prov_mod.run_name(prov), tags=prov_mod.tags(prov),
                          description=prov_mod.description(prov), tracking_uri=uri) as active:
        run = PipelineRun(params, root, inputs, prov, active, uri)
        yield run
    print(f"mlflow: run {run.run_id} ({prov_mod.run_name(prov)})"
          + (f"; {run.registered['name']} version {run.registered['version']}"
             + (" is the champion" if run.registered["champion"] else "") if run.registered else ""))
