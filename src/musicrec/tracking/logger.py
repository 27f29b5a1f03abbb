"""MLflow logging for the train and evaluate stages: runs, params, metrics and artifacts.

``import mlflow`` costs seconds, so it happens only inside the functions that
need it. Every param and tag passes through :func:`musicrec.tracking.redact.scrub`
first, so keys that look like credentials and values equal to configured secrets
never reach the tracking server. The store itself (its URI, whether it answers) is
:mod:`musicrec.tracking.server`; the code and data hashes tagged on a run are
:mod:`musicrec.tracking.provenance`.

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
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from musicrec.errors import MissingInputError
from musicrec.tracking.redact import scrub

_BAD_KEY_CHARS = re.compile(r"[^\w./\- :]")
MAX_PARAM_LEN = 6000
MAX_TAG_LEN = 8000


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
HISTORY_FILES = ("train.npz", "query.npz")


def log_model_artifacts(models_dir: Path | str, matrices_dir: Path | str | None = None) -> list[str]:
    """Log the models folder's contents as artifact ``model/`` and the user histories as ``model/history/``.

    ``model/`` then holds what :meth:`musicrec.serving.recommender.ModelServer.load` reads: one folder per
    model (``model.json`` with its sha256 manifest + ``.npz`` arrays, no pickle), the id maps
    ``users.parquet`` / ``items.parquet`` and ``catalog.parquet``. ``model/history/`` holds
    ``train.npz`` + ``query.npz`` from the matrices folder, the rows of known
    users at query time, so that ``python -m musicrec recommend --run-id RUN --user U`` needs
    nothing but the run (see :func:`musicrec.serving.artifacts.download_run`).
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
