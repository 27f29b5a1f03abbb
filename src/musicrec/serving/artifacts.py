"""The models folder a server loads: which models it holds, and downloading one from MLflow.

:func:`available_models` / :func:`default_model` read a trained models folder
(``data/models``: one sub-folder with a ``model.json`` per model). :func:`download_model`
resolves a model URI (``models:/musicrec-synthetic@champion``, ``models:/<name>/<version>``,
``models:/m-<id>``, ``runs:/<run id>/<model>``) to a logged pyfunc model
(:mod:`musicrec.tracking.logged_models`) and downloads its models folder and user histories
into a local cache, once per logged model; :func:`download_run` gathers every model of a run.
Every failure is one :class:`ServingError` saying why (a run or model missing from a local store
hints at ``--tracking-uri``). MLflow is imported only when a download is needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def _store_hint(uri: str, what: str) -> str:
    """The hint for something not found in a local store: it may live on a tracking server."""
    if uri.startswith(("http://", "https://")):
        return ""
    return (f"; {what} may be on a tracking server: pass --tracking-uri http://127.0.0.1:5000 (or the server's "
            "URL; `make services-status` shows the local one) or set MLFLOW_TRACKING_URI")


def _open_store(uri: str, shown: str, what: str, timeout_s: float) -> Any:
    """An ``MlflowClient`` on ``uri`` once the store answers; a ServingError otherwise."""
    from musicrec.tracking import server

    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ServingError(f"no MLflow store at {uri} (run the pipeline first, or set MLFLOW_TRACKING_URI / "
                           f"--tracking-uri to the server that holds {what})")
    try:
        server.check_tracking(uri, timeout_s=timeout_s)
    except server.TrackingUnavailable as exc:
        raise ServingError(str(exc)) from None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _mlflow_error(exc: Exception, shown: str, what: str, uri: str) -> ServingError:
    if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
        return ServingError(f"MLflow {what} not found in {shown}{_store_hint(uri, what)}")
    return ServingError(f"MLflow {shown}: cannot read {what}: {' '.join(str(exc).split())}")


def _uri_and_cache(tracking_uri: str | None, cache_dir: Path | str | None) -> tuple[str, str, Path]:
    from musicrec.tracking import redact, server

    uri = tracking_uri or server.tracking_uri(Path.cwd())
    base = Path(cache_dir) if cache_dir is not None else cache_root()
    return uri, redact.redact_url(uri), base / hashlib.sha256(uri.encode()).hexdigest()[:12]


def _download_logged_model(model_id: str, uri: str, shown: str, base: Path) -> Path:
    """The ``musicrec`` models folder of logged model ``model_id``, downloaded once into the cache."""
    from musicrec.io import atomic_path
    from musicrec.tracking.pyfunc_model import ARTIFACT

    if not re.fullmatch(r"m-[0-9a-f]{32}", model_id):
        raise ServingError(f"{model_id!r} is not an MLflow logged-model id (m-<32 hex>)")
    dest = base / "mlflow-models" / model_id
    if not (dest / ".complete").is_file():
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException

        try:
            with atomic_path(dest, directory=True) as tmp:
                mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model_id}", dst_path=str(tmp),
                                                    tracking_uri=uri)
                (tmp / ".complete").write_text(shown + "\n", encoding="utf-8")
        except (MlflowException, OSError) as exc:
            raise ServingError(f"MLflow {shown}: cannot download model {model_id}: "
                               f"{' '.join(str(exc).split())}") from None
    folder = dest / "artifacts" / ARTIFACT
    import yaml

    with contextlib.suppress(OSError, yaml.YAMLError, AttributeError, TypeError, KeyError):  # where MLflow put it
        meta = yaml.safe_load((dest / "MLmodel").read_text(encoding="utf-8"))
        folder = dest / meta["flavors"]["python_function"]["artifacts"][ARTIFACT]["path"]
    if not folder.is_dir():
        raise ServingError(f"MLflow model {model_id} in {shown} is no musicrec model (no artifacts/{ARTIFACT}/)")
    return folder


def _with_history(folder: Path) -> tuple[Path, Path | None]:
    from musicrec.tracking.pyfunc_model import HISTORY
    from musicrec.serving.recommender import HISTORY_FILES

    history = folder / HISTORY
    return folder, history if all((history / f).is_file() for f in HISTORY_FILES) else None


def resolve_model_uri(model_uri: str, *, tracking_uri: str | None = None, timeout_s: float = 10.0,
                      client: Any = None) -> str:
    """The logged-model id (``m-...``) behind ``models:/m-...``, ``models:/<name>@<alias>``,
    ``models:/<name>/<version>`` or ``runs:/<run id>/<model>``."""
    from musicrec.tracking.logged_models import RUN_MODEL_TAG

    uri, shown, _ = _uri_and_cache(tracking_uri, None)
    text = str(model_uri).strip()
    m = re.fullmatch(r"models:/(m-[0-9a-f]{32})/?", text)
    if m:
        return m.group(1)
    alias = re.fullmatch(r"models:/([^/@]+)@([\w-]+)", text)
    version = re.fullmatch(r"models:/([^/@]+)/(\d+)", text)
    run = re.fullmatch(r"runs:/([A-Za-z0-9][A-Za-z0-9_-]{0,63})/([\w.-]+)/?", text)
    if not (alias or version or run):
        raise ServingError(f"{text!r} is not a model URI: use models:/<name>@<alias> (e.g. "
                           "models:/musicrec-synthetic@champion), models:/<name>/<version>, models:/m-<id> or "
                           "runs:/<run id>/<model>")
    client = client or _open_store(uri, shown, text, timeout_s)
    from mlflow.exceptions import MlflowException

    try:
        if run:
            tags = client.get_run(run.group(1)).data.tags
            ref = tags.get(RUN_MODEL_TAG + run.group(2))
            if ref is None:
                logged = sorted(k.removeprefix(RUN_MODEL_TAG) for k in tags if k.startswith(RUN_MODEL_TAG))
                raise ServingError(f"MLflow run {run.group(1)} in {shown} has no model {run.group(2)!r} "
                                   f"(models: {', '.join(logged) or 'none'})")
            return resolve_model_uri(ref, tracking_uri=uri, client=client)
        mv = (client.get_model_version_by_alias(alias.group(1), alias.group(2)) if alias
              else client.get_model_version(version.group(1), version.group(2)))
    except MlflowException as exc:
        raise _mlflow_error(exc, shown, text, uri) from None
    model_id = getattr(mv, "model_id", None) or str(mv.source).removeprefix("models:/")
    return model_id


def download_model(model_uri: str, *, tracking_uri: str | None = None, cache_dir: Path | str | None = None,
                   timeout_s: float = 10.0) -> tuple[Path, Path | None]:
    """The models folder (one model) and user histories of ``model_uri`` (see :func:`resolve_model_uri`).

    An alias is resolved on every call (it moves); the model's files are downloaded once per
    logged model into ``<cache_dir>/<hash of the tracking URI>/mlflow-models/<model id>/``.
    """
    uri, shown, base = _uri_and_cache(tracking_uri, cache_dir)
    model_id = resolve_model_uri(model_uri, tracking_uri=uri, timeout_s=timeout_s)
    if not (base / "mlflow-models" / model_id / ".complete").is_file():
        _open_store(uri, shown, model_uri, timeout_s)  # answers, and accepts the login
    return _with_history(_download_logged_model(model_id, uri, shown, base))


def download_run(run_id: str, *, tracking_uri: str | None = None, cache_dir: Path | str | None = None,
                 timeout_s: float = 10.0) -> tuple[Path, Path | None]:
    """Every model of run ``run_id`` in one models folder; return ``(models_dir, history_dir or None)``.

    ``tracking_uri`` defaults to ``MLFLOW_TRACKING_URI``, else ``sqlite:///./mlflow.db`` (what the
    pipeline logs to). The run's tags ``musicrec.model.<name>`` name its logged models (also those
    an earlier run logged with the same files); each is downloaded once
    (:func:`download_model`) and the run's folder ``<cache_dir>/<hash of the URI>/mlflow-runs/<run_id>/``
    gathers them, written to a temporary folder first and renamed, so an interrupted download is
    never reused; a second call reads the cache without contacting MLflow. The model files are
    verified against their sha256 manifest when loaded. Failures (server down, unknown run, run
    without a model) raise :class:`ServingError` with one clear message.
    """
    from musicrec.io import atomic_path
    from musicrec.tracking.logged_models import RUN_MODEL_TAG, link_or_copy

    run_id = str(run_id).strip()
    if not _RUN_ID_RE.fullmatch(run_id):
        raise ServingError(f"{run_id!r} is not an MLflow run id (32 hex characters; the evaluate stage prints it "
                           "and reports/report.md names it)")
    uri, shown, base = _uri_and_cache(tracking_uri, cache_dir)
    dest = base / "mlflow-runs" / run_id
    if not (dest / ".complete").is_file():
        client = _open_store(uri, shown, f"run {run_id}", timeout_s)
        from mlflow.exceptions import MlflowException

        try:
            tags = client.get_run(run_id).data.tags
        except MlflowException as exc:
            raise _mlflow_error(exc, shown, f"run {run_id}", uri) from None
        refs = {k.removeprefix(RUN_MODEL_TAG): v for k, v in sorted(tags.items()) if k.startswith(RUN_MODEL_TAG)}
        if not refs:
            raise ServingError(f"MLflow run {run_id} in {shown} has no models (no {RUN_MODEL_TAG}<name> tags); "
                               "was it a pipeline run with tracking on?")
        folders = [_download_logged_model(resolve_model_uri(ref, tracking_uri=uri, client=client), uri,
                                          shown, base) for ref in refs.values()]
        with atomic_path(dest, directory=True) as tmp:
            for folder in folders:
                for f in folder.rglob("*"):
                    target = tmp / f.relative_to(folder)
                    if f.is_file() and not target.exists():
                        link_or_copy(f, target)
            (tmp / ".complete").write_text(shown + "\n", encoding="utf-8")
    return _with_history(dest)


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
