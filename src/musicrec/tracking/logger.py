"""MLflow logging for the train and evaluate stages.

``import mlflow`` costs seconds, so it happens only inside the functions that
need it. Every param and tag passes through :func:`scrub` first, so keys that
look like credentials and values equal to configured secrets never reach the
tracking server.

Typical use in a stage::

    uri = tracking_uri(root)
    if ensure_tracking(uri, required=p.mlflow.required, timeout_s=p.mlflow.timeout_s):
        with start_or_resume_run(p.mlflow.experiment, run_id_file=..., run_name="train",
                                 tags=provenance_tags(root, deps), tracking_uri=uri):
            log_params_flat(p.model_dump())
            log_metrics(metrics)
            log_artifacts([report_path])
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import subprocess
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from musicrec.errors import MissingInputError, ResourceUnavailable

REDACTED = "***redacted***"
SECRET_KEY_RE = re.compile(r"secret|password|passwd|token|access[_-]?key|credential|api[_-]?key|private[_-]?key", re.I)
SECRET_ENV_VARS = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
    "MUSICREC_S3_SECRET_KEY",
    "MUSICREC_S3_ACCESS_KEY",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
_URL_USERINFO_RE = re.compile(r"(://[^/\s:@]+):[^/\s@]+@")
_BAD_KEY_CHARS = re.compile(r"[^\w./\- :]")
MAX_PARAM_LEN = 6000
MAX_TAG_LEN = 8000


class TrackingUnavailable(ResourceUnavailable):
    """The tracking server cannot be reached; the message names it and the fix."""


# --------------------------------------------------------------------------- tracking server


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


def configure_http(timeout_s: float) -> None:
    """Bound every MLflow REST call: timeout ``timeout_s`` and at most one retry (unless the user set them)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, math.ceil(timeout_s))))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


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
                f"MLflow tracking server {_redact_url(uri)} is not reachable within {timeout_s:g}s ({reason}); "
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
            f"MLflow tracking server {_redact_url(uri)} refused the request (HTTP {code}): "
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


# --------------------------------------------------------------------------- scrubbing


def _secret_values() -> list[str]:
    return [v for k in SECRET_ENV_VARS if len(v := os.environ.get(k, "")) >= 4]


def _redact_url(value: str) -> str:
    return _URL_USERINFO_RE.sub(r"\1:" + REDACTED + "@", value)


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY_RE.search(key))


def scrub(items: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``items`` with credential-like keys and secret values replaced by ``***redacted***``."""
    secrets_ = _secret_values()
    out: dict[str, Any] = {}
    for k, v in items.items():
        if is_secret_key(str(k)):
            out[k] = REDACTED
            continue
        if isinstance(v, str):
            if any(s in v for s in secrets_):
                out[k] = REDACTED
                continue
            v = _redact_url(v)
        out[k] = v
    return out


# --------------------------------------------------------------------------- flattening


def _plain(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    return obj


def flatten(d: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; pydantic models are dumped first; lists stay values."""
    out: dict[str, Any] = {}
    for k, v in _plain(d).items():
        key = f"{prefix}{sep}{k}" if prefix else str(k)
        v = _plain(v)
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, key, sep))
        else:
            out[key] = v
    return out


def safe_key(key: str) -> str:
    """A key MLflow accepts: bad characters (e.g. ``@``) become ``_``; no leading/trailing slashes."""
    k = _BAD_KEY_CHARS.sub("_", key).strip("/")
    k = re.sub(r"/{2,}", "/", k)
    return k or "_"


def _param_value(v: Any) -> str:
    if isinstance(v, str):
        s = v
    elif v is None or isinstance(v, (bool, int, float)):
        s = json.dumps(v)
    else:
        s = json.dumps(v, sort_keys=True, default=str)
    return s if len(s) <= MAX_PARAM_LEN else s[: MAX_PARAM_LEN - 3] + "..."


# --------------------------------------------------------------------------- runs


def _read_run_id(path: Path | None) -> str | None:
    if path is None:
        return None
    with contextlib.suppress(OSError):
        rid = path.read_text(encoding="utf-8").strip()
        if re.fullmatch(r"[0-9a-f]{32}", rid):
            return rid
    return None


@contextlib.contextmanager
def start_or_resume_run(
    experiment: str,
    *,
    run_id_file: Path | None = None,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
) -> Iterator[Any]:
    """Resume the run whose id is in ``run_id_file`` (if it exists in ``experiment``), else start one.

    The new run's id is written to ``run_id_file`` so a later stage (evaluate) can add to the
    same run. Tags are scrubbed. The run ends FINISHED, or FAILED when the body raises.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    exp = mlflow.set_experiment(experiment)
    clean_tags = {safe_key(k): str(v)[:MAX_TAG_LEN] for k, v in scrub(dict(tags or {})).items()}
    rid = _read_run_id(run_id_file)
    run = None
    if rid:
        try:
            info = mlflow.get_run(rid).info
            if info.experiment_id == exp.experiment_id and info.lifecycle_stage == "active":
                run = mlflow.start_run(run_id=rid)
            else:
                warnings.warn(f"run {rid} from {run_id_file} is not an active run of {experiment!r}; starting a new run",
                              RuntimeWarning, stacklevel=3)
        except MlflowException as exc:
            warnings.warn(f"cannot resume run {rid} from {run_id_file} ({exc.error_code}); starting a new run",
                          RuntimeWarning, stacklevel=3)
    if run is None:
        run = mlflow.start_run(experiment_id=exp.experiment_id, run_name=run_name)
        if run_id_file is not None:
            from musicrec.io import write_text

            write_text(run_id_file, run.info.run_id + "\n")
    with run:
        if clean_tags:
            mlflow.set_tags(clean_tags)
        yield run


def log_params_flat(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Log nested params as dotted keys (``train.als.factors``); returns what was logged."""
    import mlflow

    flat = {safe_key(k): _param_value(v) for k, v in scrub(flatten(params, prefix)).items()}
    items = list(flat.items())
    for i in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
        mlflow.log_params(dict(items[i : i + 100]))
    return flat


def log_metrics(metrics: Mapping[str, Any], *, step: int | None = None, prefix: str = "") -> dict[str, float]:
    """Log numeric (nested) metrics with dotted keys; non-numeric and non-finite values are skipped."""
    import mlflow

    out: dict[str, float] = {}
    for k, v in flatten(metrics, prefix).items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__float__"):
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[safe_key(k)] = f
    if out:
        mlflow.log_metrics(out, step=step)
    return out


def log_artifacts(paths: Iterable[Path | str], artifact_path: str | None = None) -> list[str]:
    """Log files and folders (a folder keeps its name); missing paths are warned about and skipped."""
    import mlflow

    logged: list[str] = []
    for p in map(Path, paths):
        if p.is_dir():
            sub = f"{artifact_path}/{p.name}" if artifact_path else p.name
            mlflow.log_artifacts(str(p), artifact_path=sub)
        elif p.is_file():
            mlflow.log_artifact(str(p), artifact_path=artifact_path)
        else:
            warnings.warn(f"artifact {p} does not exist; not logged", RuntimeWarning, stacklevel=2)
            continue
        logged.append(str(p))
    return logged


MODEL_ARTIFACT = "model"
HISTORY_ARTIFACT = "model/history"
HISTORY_FILES = ("train_weighted.npz", "query_weighted.npz")


def log_model_artifacts(models_dir: Path | str, matrices_dir: Path | str | None = None) -> list[str]:
    """Log the models folder's contents as artifact ``model/`` and the user histories as ``model/history/``.

    ``model/`` then holds what :meth:`musicrec.serving.recommender.Recommender.load` reads: one folder per
    model (``model.json`` with its sha256 manifest + ``.npz`` arrays, no pickle), the id maps
    ``users.parquet`` / ``items.parquet`` and ``catalog.parquet``. ``model/history/`` holds
    ``train_weighted.npz`` + ``query_weighted.npz`` from the matrices folder, the rows of known
    users at query time, so that ``python -m musicrec recommend --run-id RUN --user U`` needs
    nothing but the run (see :func:`musicrec.serving.recommender.download_run`).
    """
    import mlflow

    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise MissingInputError(f"{models_dir}: models folder not found; nothing to log")
    mlflow.log_artifacts(str(models_dir), artifact_path=MODEL_ARTIFACT)
    logged = [str(models_dir)]
    if matrices_dir is not None:
        for name in HISTORY_FILES:
            f = Path(matrices_dir) / name
            if f.is_file():
                mlflow.log_artifact(str(f), artifact_path=HISTORY_ARTIFACT)
                logged.append(str(f))
            else:
                warnings.warn(f"{f} does not exist; the run's model has no user histories", RuntimeWarning,
                              stacklevel=2)
    return logged


# --------------------------------------------------------------------------- provenance


def _git(repo_root: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=repo_root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def _lock_hashes(repo_root: Path) -> dict[str, str]:
    """path -> md5 for every dep and out recorded in dvc.lock and in ``*.dvc`` files next to the paths."""
    import yaml

    out: dict[str, str] = {}
    lock = repo_root / "dvc.lock"
    if lock.exists():
        try:
            doc = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            doc = {}
        for stage in (doc.get("stages") or {}).values():
            for kind in ("deps", "outs"):
                for ent in stage.get(kind) or []:
                    if isinstance(ent, dict) and ent.get("path") and ent.get("md5"):
                        out[os.path.normpath(ent["path"])] = str(ent["md5"])
    return out


def _dvc_file_hash(repo_root: Path, rel: str) -> str | None:
    import yaml

    f = repo_root / (rel + ".dvc")
    if not f.exists():
        return None
    with contextlib.suppress(yaml.YAMLError, OSError, AttributeError, TypeError):
        for ent in (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("outs") or []:
            if ent.get("md5"):
                return str(ent["md5"])
    return None


def provenance_tags(repo_root: Path | str, dep_paths: Iterable[Path | str] = ()) -> dict[str, str]:
    """Tags tying a run to code and data: git commit + dirty flag, DVC experiment, data md5s.

    For each dependency: ``dvc.dep.<path>.md5`` and ``dvc.dep.<path>.source`` — ``dvc.lock``,
    ``<path>.dvc``, ``computed`` (file not yet locked: md5 of its bytes) or ``unlocked`` /
    ``missing`` (folder not locked / path absent).
    """
    root = Path(repo_root).resolve()
    tags: dict[str, str] = {}
    commit = _git(root, "rev-parse", "HEAD")
    if commit:
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
        tags["git.commit"] = commit
        tags["mlflow.source.git.commit"] = commit
        tags["git.dirty"] = "unknown" if dirty is None else str(bool(dirty)).lower()
    else:
        tags["git.commit"] = "unknown"
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.exp_baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    locked = _lock_hashes(root)
    for dep in dep_paths:
        p = Path(dep)
        full = p if p.is_absolute() else root / p
        try:
            rel = os.path.normpath(full.resolve().relative_to(root))
        except ValueError:
            rel = os.path.normpath(str(full))
        key = f"dvc.dep.{safe_key(rel)}"
        if rel in locked:
            md5, source = locked[rel], "dvc.lock"
        elif (h := _dvc_file_hash(root, rel)) is not None:
            md5, source = h, f"{rel}.dvc"
        elif full.is_file():
            from musicrec.io import md5_file

            md5, source = md5_file(full), "computed"
        elif full.exists():
            md5, source = "unlocked", "unlocked"
        else:
            md5, source = "missing", "missing"
        tags[f"{key}.md5"] = md5
        tags[f"{key}.source"] = source
    return tags
