"""The models folder a server loads: which models it holds, and downloading one from an MLflow run.

:func:`available_models` / :func:`default_model` read a trained models folder
(``data/models``: one sub-folder with a ``model.json`` per model); :func:`download_run`
fetches a run's artifact ``model/`` (the models folder, and the user histories under
``model/history/``) into a local cache, once per run. Every failure is one
:class:`ServingError` saying why. MLflow is imported only when a download is needed.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from musicrec.errors import UserError

DEFAULT_ORDER = ("hybrid", "als")


class ServingError(UserError, ValueError):
    """A request that cannot be served (missing folder, bad argument); the message says why."""


_RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def cache_root() -> Path:
    """Where downloaded runs are kept: ``$MUSICREC_CACHE_DIR``, else ``$XDG_CACHE_HOME/musicrec`` (``~/.cache``)."""
    env = os.environ.get("MUSICREC_CACHE_DIR", "").strip()
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache") / "musicrec"


def download_run(run_id: str, *, tracking_uri: str | None = None, cache_dir: Path | str | None = None,
                 timeout_s: float = 10.0) -> tuple[Path, Path | None]:
    """Download run ``run_id``'s artifact ``model/``; return ``(models_dir, history_dir or None)``.

    ``tracking_uri`` defaults to ``MLFLOW_TRACKING_URI``, else ``sqlite:///./mlflow.db`` (what the
    pipeline logs to). Uses ``mlflow.artifacts.download_artifacts``; the files land in
    ``<cache_dir>/mlflow-runs/<hash of the URI>/<run_id>/`` (default :func:`cache_root`), written
    to a temporary folder first and renamed, so an interrupted download is never reused. A run's
    model artifacts do not change, so a second call reads the cache without contacting MLflow.
    The model files are verified against their sha256 manifest when loaded. Failures (server
    down, unknown run, run without a model) raise :class:`ServingError` with one clear message.
    """
    from musicrec.tracking import logger, redact, server

    run_id = str(run_id).strip()
    if not _RUN_ID_RE.fullmatch(run_id):
        raise ServingError(f"{run_id!r} is not an MLflow run id (32 hex characters, see reports/mlflow_run_id.txt)")
    uri = tracking_uri or server.tracking_uri(Path.cwd())
    shown = redact.redact_url(uri)
    base = Path(cache_dir) if cache_dir is not None else cache_root()
    dest = base / "mlflow-runs" / hashlib.sha256(uri.encode()).hexdigest()[:12] / run_id
    if not (dest / ".complete").is_file():
        _fetch_run(run_id, uri, shown, dest, timeout_s)
    models = dest / logger.MODEL_ARTIFACT
    if not available_models(models) and (models / "models").is_dir():  # runs logged before model/ held the files
        models = models / "models"
    history = dest / logger.HISTORY_ARTIFACT
    has_history = all((history / f).is_file() for f in logger.HISTORY_FILES)
    return models, history if has_history else None


def _fetch_run(run_id: str, uri: str, shown: str, dest: Path, timeout_s: float) -> None:
    from musicrec.tracking import logger, server

    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ServingError(f"no MLflow store at {uri} (run the pipeline first, or set MLFLOW_TRACKING_URI / "
                           f"--tracking-uri to the server that holds run {run_id})")
    try:
        server.check_tracking(uri, timeout_s=timeout_s)
    except server.TrackingUnavailable as exc:
        raise ServingError(str(exc)) from None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=uri).get_run(run_id)
        top = {a.path for a in MlflowClient(tracking_uri=uri).list_artifacts(run_id)}
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ServingError(f"MLflow run {run_id} not found in {shown}") from None
        raise ServingError(f"MLflow {shown}: cannot read run {run_id}: {' '.join(str(exc).split())}") from None
    if logger.MODEL_ARTIFACT not in top:
        raise ServingError(f"MLflow run {run_id} in {shown} has no {logger.MODEL_ARTIFACT}/ artifact "
                           f"(artifacts: {', '.join(sorted(top)) or 'none'}); was it a train run with tracking on?")
    from musicrec.io import atomic_path

    try:  # into a temporary folder owned by this process (musicrec.io), renamed into place when complete
        with atomic_path(dest, directory=True) as tmp:
            mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=logger.MODEL_ARTIFACT,
                                                dst_path=str(tmp), tracking_uri=uri)
            (tmp / ".complete").write_text(shown + "\n", encoding="utf-8")
    except (MlflowException, OSError) as exc:
        raise ServingError(f"MLflow {shown}: cannot download the model of run {run_id}: "
                           f"{' '.join(str(exc).split())}") from None


def available_models(models_dir: Path | str) -> list[str]:
    """Names of the models saved in ``models_dir`` (sub-folders holding a ``model.json``), sorted."""
    d = Path(models_dir)
    if not d.is_dir():
        raise ServingError(f"{d}: models folder not found (run the pipeline first: dvc repro, or dvc pull)")
    return sorted(p.name for p in d.iterdir() if (p / "model.json").is_file())


def default_model(names: Sequence[str]) -> str:
    """The hybrid if trained, else ALS, else the first available model."""
    for preferred in DEFAULT_ORDER:
        if preferred in names:
            return preferred
    if not names:
        raise ServingError("no trained models found")
    return names[0]
