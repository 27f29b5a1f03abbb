"""The train/evaluate stages and an MLflow server that is down or never answers: train never
touches MLflow; evaluate fails fast (``mlflow.required: true``) or warns and goes on (``false``).
What a run logs is tests/integration/test_mlflow_models.py.

The matrices are built once in-process (small synthetic data); the stages run as
the real scripts in subprocesses, as ``dvc repro`` runs them.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from tests.support.pipeline import (
    SMALL_PARAMS, compare_stage_args, deep_update, pipeline_env, run_model_stages, run_stage_script,
)

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 2  # mlflow.timeout_s for the down/slow cases


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """``data/processed/{items.parquet,matrices}`` and a small ``params.yaml`` under a scratch folder."""
    from tests.support.pipeline import build_small_matrices

    root = tmp_path_factory.mktemp("stages")
    params = deep_update(yaml.safe_load((ROOT / "params.yaml").read_text()), SMALL_PARAMS)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    build_small_matrices(root, seed=params["seed"])
    return root


def _params(root: Path, name: str, **mlflow) -> str:
    p = yaml.safe_load((root / "params.yaml").read_text())
    p["mlflow"].update(mlflow)
    path = root / f"params-{name}.yaml"
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    return path.name


def _stage(root: Path, stage: str, variant: str, params: str, env_extra: dict[str, str] | None = None,
           ) -> subprocess.CompletedProcess[str]:
    """``train``: every stage before compare (catalog, train@ and evaluate@ each model); ``evaluate``: the
    compare stage (the one that logs to MLflow). Outputs under ``out-<variant>/``."""
    out = f"out-{variant}"
    if stage == "train":
        return run_model_stages(root, out, SMALL_PARAMS["train"]["models"], params=params, env_extra=env_extra)
    return run_stage_script(root, "compare", compare_stage_args(out), params=params, env_extra=env_extra, timeout=600)


# --------------------------------------------------------------------------- MLflow down or slow


@pytest.fixture(params=["down", "slow"])
def bad_server(request, free_ports):
    """``down``: a closed port. ``slow``: a server that accepts connections and never answers."""
    if request.param == "down":
        yield request.param, f"http://127.0.0.1:{free_ports(1)[0]}"
        return
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.2)
    held, stop = [], threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])  # keep the connection open, never read or answer
            except (TimeoutError, OSError):
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield request.param, f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        t.join(5)
        for s in held:
            s.close()
        srv.close()


def test_required_tracking_fails_fast_with_one_clear_paragraph(project, bad_server):
    kind, uri = bad_server
    params = _params(project, f"req-{kind}", required=True, timeout_s=TIMEOUT_S)
    env = {"MLFLOW_TRACKING_URI": uri}
    trained = _stage(project, "train", f"req-{kind}", params, env)
    assert trained.returncode == 0 and "MLflow" not in trained.stderr, trained.stderr  # train never touches it
    t = time.monotonic()
    r = _stage(project, "evaluate", f"req-{kind}", params, env)
    elapsed = time.monotonic() - t
    assert r.returncode == 2, r.stdout + r.stderr
    msg = r.stderr.strip()
    assert msg.startswith("musicrec compare: error: MLflow tracking server") and "\n\n" not in msg
    assert "Traceback" not in msg
    flat = " ".join(msg.split())
    assert uri in flat and f"within {TIMEOUT_S}s" in flat
    assert "make services-up" in flat and "mlflow.required: false" in flat and "MLFLOW_TRACKING_URI" in flat
    assert elapsed < 10 * TIMEOUT_S + 120, f"hang guard: {elapsed:.0f}s"  # evaluation + one bounded check


def test_optional_tracking_warns_and_the_pipeline_goes_on(project, bad_server):
    kind, uri = bad_server
    params = _params(project, f"opt-{kind}", required=False, timeout_s=TIMEOUT_S)
    env = {"MLFLOW_TRACKING_URI": uri}
    assert _stage(project, "train", f"opt-{kind}", params, env).returncode == 0
    t = time.monotonic()
    r = _stage(project, "evaluate", f"opt-{kind}", params, env)
    elapsed = time.monotonic() - t
    assert r.returncode == 0, r.stderr
    assert "continuing without MLflow" in r.stderr and uri in r.stderr
    assert elapsed < 10 * TIMEOUT_S + 120, f"hang guard: {elapsed:.0f}s"
    out = project / f"out-opt-{kind}"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(SMALL_PARAMS["train"]["models"]) <= set(metrics)
    assert (out / "models/als/model.json").is_file()
    report = (out / "report.md").read_text()  # the provenance is there without tracking too
    assert "MLflow run id `none (tracking off)`" in report and "| `data/processed/matrices` | `" in report
