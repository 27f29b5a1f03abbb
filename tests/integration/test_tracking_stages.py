"""The train/evaluate stages and MLflow: the model logged to a run serves the same
recommendations as the local files; an MLflow server that is down or never answers
makes the stages fail fast (``mlflow.required: true``) or warn and go on (``false``).

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

import pandas as pd
import pytest
import yaml

from tests.support.pipeline import SMALL_PARAMS, deep_update, pipeline_env

ROOT = Path(__file__).resolve().parents[2]
STAGES = ROOT / "stages"
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
    """Run ``stages/<stage>.py`` with outputs under ``out-<variant>/``."""
    out = f"out-{variant}"
    args = {
        "train": ["--matrices", "data/processed/matrices", "--items", "data/processed/items.parquet",
                  "--out", f"{out}/models", "--report", f"{out}/train.json", "--run-id-file", f"{out}/run_id.txt"],
        "evaluate": ["--matrices", "data/processed/matrices", "--items", "data/processed/items.parquet",
                     "--models", f"{out}/models", "--run-id-file", f"{out}/run_id.txt",
                     "--metrics", f"{out}/metrics.json", "--details", f"{out}/evaluation.json",
                     "--plots", f"{out}/plots", "--report", f"{out}/report.md", "--figures", f"{out}/figures"],
    }[stage]
    env = pipeline_env(env_extra)
    return subprocess.run([sys.executable, str(STAGES / f"{stage}.py"), "--params", params, *args], cwd=root,
                          env=env, capture_output=True, text=True, timeout=600)


# --------------------------------------------------------------------------- the model in the run


@pytest.fixture(scope="module")
def trained_run(project) -> tuple[Path, str, str]:
    """The train stage with the default store (``sqlite:///<root>/mlflow.db``): (root, run id, URI)."""
    r = _stage(project, "train", "mlflow", "params.yaml")
    assert r.returncode == 0, r.stderr
    run_id = (project / "out-mlflow/run_id.txt").read_text().strip()
    assert len(run_id) == 32
    return project, run_id, f"sqlite:///{project.resolve()}/mlflow.db"


def test_train_logs_model_files_id_maps_and_histories(trained_run):
    from mlflow.tracking import MlflowClient

    root, run_id, uri = trained_run
    c = MlflowClient(tracking_uri=uri)

    def files(path: str) -> set[str]:
        out = set()
        for a in c.list_artifacts(run_id, path):
            out |= files(a.path) if a.is_dir else {a.path}
        return out

    logged = files("model")
    local = {"model/" + p.relative_to(root / "out-mlflow/models").as_posix()
             for p in (root / "out-mlflow/models").rglob("*") if p.is_file()}
    assert local <= logged
    for f in ("users.parquet", "items.parquet", "catalog.parquet", "als/model.json", "popularity/model.json",
              "history/train.npz", "history/query.npz"):
        assert f"model/{f}" in logged, f
    assert not [f for f in logged if f.endswith((".pkl", ".pickle"))]
    manifest = json.loads((root / "out-mlflow/models/als/model.json").read_text())
    assert manifest.get("sha256")


def test_model_loaded_from_the_run_recommends_like_the_local_files(trained_run, tmp_path, free_ports):
    from musicrec.serving.artifacts import download_run
    from musicrec.serving.recommender import ModelServer

    root, run_id, uri = trained_run
    users = pd.read_parquet(root / "out-mlflow/models/users.parquet")["user_id"].astype(str).tolist()
    items = pd.read_parquet(root / "out-mlflow/models/catalog.parquet")["item_id"].astype(str).tolist()
    for model in SMALL_PARAMS["train"]["models"]:
        local = ModelServer.load(root / "out-mlflow/models", model, matrices_dir=root / "data/processed/matrices")
        remote = ModelServer.from_run(run_id, model, tracking_uri=uri, cache_dir=tmp_path)
        assert remote.model_name == model and remote.models_dir != local.models_dir
        for u in users[:5]:
            pd.testing.assert_frame_equal(remote.recommend_user(u, 10), local.recommend_user(u, 10))
        pd.testing.assert_frame_equal(remote.recommend_liked(items[:3], 10), local.recommend_liked(items[:3], 10))
        pd.testing.assert_frame_equal(remote.similar(items[7], 10), local.similar(items[7], 10))
    # downloaded once: a second load needs no tracking server at all
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    with pytest.raises(Exception, match="not reachable"):
        download_run(run_id, tracking_uri=dead, cache_dir=tmp_path / "other")
    cached = download_run(run_id, tracking_uri=uri, cache_dir=tmp_path)
    assert cached[0] == remote.models_dir and cached[1] is not None


def test_cli_run_id_equals_local_and_explains_errors(trained_run, tmp_path):
    root, run_id, uri = trained_run
    users = pd.read_parquet(root / "out-mlflow/models/users.parquet")["user_id"].astype(str).tolist()
    track = pd.read_parquet(root / "out-mlflow/models/catalog.parquet")["item_id"].astype(str).iloc[5]
    env = pipeline_env({"MUSICREC_CACHE_DIR": str(tmp_path), "MLFLOW_TRACKING_URI": uri})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "musicrec", *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=300)

    for query, extra in ((["recommend", "--user", users[11]], ["--matrices", "data/processed/matrices"]),
                         (["similar", track], [])):
        a = cli(*query, "--models", "out-mlflow/models", *extra, "--json")
        b = cli(*query, "--run-id", run_id, "--json")
        assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
        assert json.loads(a.stdout) == json.loads(b.stdout)
        assert json.loads(b.stdout)["model"] == "als" and len(json.loads(b.stdout)["results"]) == 10
    listed = cli("models", "--run-id", run_id, "--tracking-uri", uri)
    assert listed.returncode == 0 and "als  (default)" in listed.stdout
    missing = cli("recommend", "--user", users[0], "--run-id", "0" * 32)
    assert missing.returncode == 2 and f"run {'0' * 32} not found" in missing.stderr


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
    t = time.monotonic()
    r = _stage(project, "train", f"req-{kind}", params, {"MLFLOW_TRACKING_URI": uri})
    elapsed = time.monotonic() - t
    assert r.returncode == 2, r.stdout + r.stderr
    msg = r.stderr.strip()
    assert msg.startswith("musicrec train: error: MLflow tracking server") and "\n\n" not in msg
    assert "Traceback" not in msg
    flat = " ".join(msg.split())
    assert uri in flat and f"within {TIMEOUT_S}s" in flat
    assert "make services-up" in flat and "mlflow.required: false" in flat and "MLFLOW_TRACKING_URI" in flat
    assert not (project / f"out-req-{kind}/models").exists(), "fails before training"
    assert elapsed < 10 * TIMEOUT_S + 30, f"hang guard: {elapsed:.0f}s"  # startup + one bounded check


def test_optional_tracking_warns_and_the_pipeline_goes_on(project, bad_server):
    kind, uri = bad_server
    params = _params(project, f"opt-{kind}", required=False, timeout_s=TIMEOUT_S)
    env = {"MLFLOW_TRACKING_URI": uri}
    for stage in ("train", "evaluate"):
        t = time.monotonic()
        r = _stage(project, stage, f"opt-{kind}", params, env)
        elapsed = time.monotonic() - t
        assert r.returncode == 0, r.stderr
        assert "continuing without MLflow" in r.stderr and uri in r.stderr
        assert elapsed < 10 * TIMEOUT_S + 120, f"hang guard: {elapsed:.0f}s"
    out = project / f"out-opt-{kind}"
    assert (out / "run_id.txt").read_text() == ""
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(SMALL_PARAMS["train"]["models"]) <= set(metrics)
    assert (out / "models/als/model.json").is_file()
