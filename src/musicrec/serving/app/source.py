"""Where the app's models come from: :class:`AppSource`, parsed from ``streamlit run app.py -- ARGS``.

``--models DIR`` (default ``data/models``, after ``make repro`` or ``dvc pull``), or ``--run-id
RUN_ID`` (an MLflow run's artifact ``model/``) or ``--model-uri models:/NAME@ALIAS`` (a registered
model version, ``models:/NAME/VERSION`` too), with ``--tracking-uri``. ``--matrices`` (users'
histories; a run brings its own) and ``--items`` (the items table, for audio features) are
optional, and so is ``--params`` (``params.yaml``: the ``train.content`` / ``train.hybrid``
weights the app uses when the folder has no trained content model or hybrid). A bad argument is a :class:`~musicrec.serving.artifacts.ServingError` (the app shows it).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from musicrec.serving.artifacts import ServingError, download_run

_MODEL_URI_RE = re.compile(r"models:/(?P<name>[^/@\s]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))")


@dataclass(frozen=True)
class AppSource:
    """The folders (or MLflow run / registered model) one app serves; hashable (the cache key)."""

    models: str = "data/models"
    matrices: str | None = "data/processed/matrices"
    items: str | None = "data/processed/items.parquet"
    reports: str = "reports"
    params: str | None = "params.yaml"
    run_id: str | None = None
    model_uri: str | None = None
    tracking_uri: str | None = None

    @classmethod
    def from_argv(cls, argv: Sequence[str]) -> AppSource:
        ap = argparse.ArgumentParser(prog="make app ARGS=", add_help=False, exit_on_error=False)
        ap.add_argument("--models", default=cls.models)
        ap.add_argument("--matrices", default=cls.matrices)
        ap.add_argument("--items", default=cls.items)
        ap.add_argument("--reports", default=cls.reports)
        ap.add_argument("--params", default=cls.params)
        where = ap.add_mutually_exclusive_group()
        where.add_argument("--run-id", default=None)
        where.add_argument("--model-uri", default=None)
        ap.add_argument("--tracking-uri", default=None)
        try:
            ns, rest = ap.parse_known_args(list(argv))
        except argparse.ArgumentError as err:
            raise ServingError(f"app arguments: {err}") from None
        if rest:
            raise ServingError(f"app arguments: unknown {' '.join(rest)!r} (expected --models DIR, --run-id RUN_ID, "
                               "--model-uri models:/NAME@ALIAS, --tracking-uri URI, --matrices DIR, --items FILE, "
                               "--reports DIR, --params FILE)")
        if ns.model_uri is not None and not _MODEL_URI_RE.fullmatch(ns.model_uri.strip()):
            raise ServingError(f"--model-uri {ns.model_uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
        return cls(ns.models, ns.matrices or None, ns.items or None, ns.reports, ns.params or None, ns.run_id,
                   ns.model_uri, ns.tracking_uri)

    @property
    def label(self) -> str:
        """Where the models come from, in words."""
        if self.run_id:
            return f"MLflow run {self.run_id}"
        if self.model_uri:
            return f"MLflow registered model {self.model_uri}"
        return f"models folder {self.models}"

    def resolve(self) -> tuple[Path, Path | None, str | None]:
        """``(models_dir, matrices_dir or None, run_id or None)``, downloading an MLflow run once (cached)."""
        run_id = self.run_id or (model_uri_run(self.model_uri, self.tracking_uri) if self.model_uri else None)
        if run_id is None:
            return Path(self.models), None if self.matrices is None else Path(self.matrices), None
        models_dir, history = download_run(run_id, tracking_uri=self.tracking_uri)
        return models_dir, history if history is not None else (None if self.matrices is None else Path(self.matrices)), run_id


def model_uri_run(uri: str, tracking_uri: str | None) -> str:
    """The run id behind ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` (MLflow's model registry)."""
    m = _MODEL_URI_RE.fullmatch(uri.strip())
    if m is None:
        raise ServingError(f"{uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    from musicrec.tracking import redact, server

    store = tracking_uri or server.tracking_uri(Path.cwd())
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store, registry_uri=store)
    try:
        mv = (client.get_model_version_by_alias(m["name"], m["alias"]) if m["alias"]
              else client.get_model_version(m["name"], m["version"]))
    except MlflowException as exc:
        raise ServingError(f"{uri}: not found in the model registry of {redact.redact_url(store)} "
                           f"({' '.join(str(exc).split())[:300]})") from None
    if not mv.run_id:
        raise ServingError(f"{uri}: version {mv.version} has no run (the app serves models logged by the pipeline)")
    return str(mv.run_id)
