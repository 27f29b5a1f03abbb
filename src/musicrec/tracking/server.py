"""The MLflow tracking store: where runs are logged and whether it answers.

:func:`tracking_uri` picks the store (``MLFLOW_TRACKING_URI``, else ``<repo>/mlflow.db``, also
from a DVC experiment's temporary copy), :func:`configure_http` bounds every REST call, and
:func:`check_tracking` / :func:`ensure_tracking` make sure a server answers (and accepts the
login) before a stage starts a run: one :class:`TrackingUnavailable` naming the server and
the fix, or a warning when tracking is optional.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

from musicrec.errors import ResourceUnavailable
from musicrec.tracking.redact import redact_url


class TrackingUnavailable(ResourceUnavailable):
    """The tracking server cannot be reached; the message names it and the fix."""


def tracking_uri(repo_root: Path | str) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a sqlite store ``<repo_root>/mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return f"sqlite:///{project_root(repo_root) / 'mlflow.db'}"


def project_root(repo_root: Path | str) -> Path:
    """The user's repository, also when DVC runs a queued or ``--temp`` experiment.

    Those run in a throw-away copy under ``<repo>/.dvc/tmp/exps/``; runs logged to
    that copy's ``mlflow.db`` would vanish with it, so they go to the repo's store.
    """
    root = Path(repo_root).resolve()
    parts = root.parts
    for i in range(len(parts) - 3):
        if parts[i:i + 4] == (".dvc", "tmp", "exps", parts[i + 3]) and i > 0:
            return Path(*parts[:i])
    return root


def local_artifact_root(uri: str) -> Path | None:
    """Where a local SQLite store's artifacts belong: ``mlruns/`` beside its ``mlflow.db``; None for other stores.

    MLflow resolves a new experiment's default artifact location (``./mlruns``) against the
    working directory of the process that creates it: a DVC experiment's temporary copy would
    get the artifacts of every later run, and they would vanish with it.
    """
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlruns"


def set_experiment(name: str, uri: str) -> object:
    """``mlflow.set_experiment(name)``, creating it (for a local store) with its artifacts in
    :func:`local_artifact_root`, whichever folder the process runs in."""
    import mlflow
    from mlflow.exceptions import MlflowException

    root = local_artifact_root(uri)
    if root is not None and mlflow.get_experiment_by_name(name) is None:
        try:
            mlflow.create_experiment(name, artifact_location=(root / name).as_uri())
        except MlflowException:  # created meanwhile by another process: use that one
            pass
    return mlflow.set_experiment(name)


def configure_http(timeout_s: float) -> None:
    """Bound every MLflow REST call: timeout ``timeout_s`` and at most one retry (unless the user set them)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, math.ceil(timeout_s))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in stage logs


def check_tracking(uri: str, timeout_s: float = 10.0) -> None:
    """For http(s) URIs, GET ``/health`` within ``timeout_s``; raise :class:`TrackingUnavailable` otherwise.

    File and sqlite stores need no server: their parent folder only has to be writable.
    """
    import urllib.error
    import urllib.request

    configure_http(timeout_s)
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 - user-configured URI
                if r.status == 200:
                    _check_login(uri, timeout_s)
                    return
                raise TrackingUnavailable(f"MLflow tracking server {uri} answered {r.status} on /health")
        except TrackingUnavailable:
            raise
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TrackingUnavailable(
                f"MLflow tracking server {redact_url(uri)} is not reachable within {timeout_s:g}s ({reason}); "
                "start it with `make services-up`, unset MLFLOW_TRACKING_URI to log to ./mlflow.db, "
                "or set mlflow.required: false in params.yaml to continue without tracking"
            ) from None
    elif uri.startswith("sqlite:///"):
        parent = Path(uri.removeprefix("sqlite:///")).parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise TrackingUnavailable(f"MLflow sqlite store {uri}: folder {parent} is missing or not writable")


def api_status(uri: str, login: tuple[str, str] | None, timeout_s: float = 5.0) -> int:
    """HTTP status of one tracking-API request (search experiments) with basic auth ``login`` or none."""
    import base64
    import urllib.error
    import urllib.request

    req = urllib.request.Request(uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1")
    if login:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(login).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as r:  # noqa: S310 - user-configured URI
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _check_login(uri: str, timeout_s: float) -> None:
    """The MLflow client's basic-auth variables against the server; a refused login is one clear line."""
    user, pw = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    try:
        code = api_status(uri, (user, pw) if user and pw else None, timeout_s)
    except (OSError, ValueError):
        return  # /health answered; anything else surfaces on the first real call
    if code in (401, 403):
        raise TrackingUnavailable(
            f"MLflow tracking server {redact_url(uri)} refused the request (HTTP {code}): "
            + ("the login in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD is wrong or lacks permission"
               if user and pw else "it requires a login and MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD "
               "are not set")
            + "; for the local server run through make, or `set -a; . .services/credentials.env; set +a`"
        )


def ensure_tracking(uri: str, *, required: bool = True, timeout_s: float = 10.0) -> bool:
    """:func:`check_tracking`; with ``required=False`` warn and return False instead of raising."""
    try:
        check_tracking(uri, timeout_s)
        return True
    except TrackingUnavailable as exc:
        if required:
            raise
        warnings.warn(f"{exc}; continuing without MLflow (metrics stay in reports/)", RuntimeWarning, stacklevel=2)
        return False
