"""MLflow logging helpers: runs, params, metrics and artifacts.

``import mlflow`` costs seconds, so it happens only inside the functions that
need it. Every param and tag passes through :func:`musicrec.tracking.redact.scrub`
first, so keys that look like credentials and values equal to configured secrets
never reach the tracking server. The store itself (its URI, whether it answers) is
:mod:`musicrec.tracking.server`; the code and data hashes tagged on a run are
:mod:`musicrec.tracking.provenance`.

Typical use (what :mod:`musicrec.tracking.run` does for the evaluate stage)::

    with start_run(p.mlflow.experiment, run_name=..., tags=..., description=..., tracking_uri=uri):
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


@contextlib.contextmanager
def start_run(
    experiment: str,
    *,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    tracking_uri: str | None = None,
) -> Iterator[Any]:
    """Start a run of ``experiment`` with scrubbed ``tags`` and ``description`` (the run's note).

    The run ends FINISHED, or FAILED when the body raises.
    """
    import mlflow

    from musicrec.tracking.server import set_experiment

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    exp = set_experiment(experiment, mlflow.get_tracking_uri())
    clean_tags = {safe_key(k): str(v)[:MAX_TAG_LEN] for k, v in scrub(dict(tags or {})).items()}
    if description:
        desc = scrub({"description": description})["description"]
        clean_tags["mlflow.note.content"] = str(desc)[:MAX_TAG_LEN]
    with mlflow.start_run(experiment_id=exp.experiment_id, run_name=run_name, tags=clean_tags or None) as run:
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
