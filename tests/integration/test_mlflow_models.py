"""The evaluate stage's MLflow run: provenance tags, datasets, pyfunc models, the registry and serving.

Small synthetic matrices are built once in process; train and evaluate run as the real stage
scripts (as ``dvc repro`` runs them) with the default store ``sqlite:///<root>/mlflow.db``, twice:
the second run's models have the same files, so they are linked, not logged again.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support.pipeline import (
    SMALL_PARAMS, compare_stage_args, deep_update, pipeline_env, run_model_stages, run_stage_script,
)

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = "out"  # the models under out/models, their evaluations and the reports under out/ (tests.support.pipeline)
OUT = f"{LAYOUT}/models"
MODELS = SMALL_PARAMS["train"]["models"]


def _compare(root: Path, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_stage_script(root, "compare", compare_stage_args(LAYOUT), env_extra=env_extra)


def _run_id(proc: subprocess.CompletedProcess[str]) -> str:
    m = re.search(r"^mlflow: run ([0-9a-f]{32}) ", proc.stdout, re.M)
    assert m, proc.stdout + proc.stderr
    return m.group(1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, str, str, str]:
    """(root, tracking URI, first run id, second run id): train and evaluate once, compare twice."""
    from tests.support.pipeline import build_small_matrices

    root = tmp_path_factory.mktemp("mlflow-models")
    params = deep_update(yaml.safe_load((ROOT / "params.yaml").read_text()), SMALL_PARAMS)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    build_small_matrices(root, seed=params["seed"])
    r = run_model_stages(root, LAYOUT, MODELS)
    assert r.returncode == 0, r.stderr
    first = _compare(root)
    assert first.returncode == 0, first.stderr
    second = _compare(root)
    assert second.returncode == 0, second.stderr
    return root, f"sqlite:///{root.resolve()}/mlflow.db", _run_id(first), _run_id(second)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_run_is_named_tagged_with_what_it_read_and_its_datasets(runs):
    from musicrec.tracking.provenance import dvc_md5

    root, uri, rid, _ = runs
    run = _client(uri).get_run(rid)
    assert run.info.run_name == "local · synthetic"  # no git repo, no DVC experiment
    tags = run.data.tags
    for rel in ("data/processed/matrices", "data/processed/items.parquet", OUT):
        assert tags[f"dvc.dep.{rel}.md5"] == dvc_md5(root / rel, root), rel
    assert tags["data.source"] == "synthetic" and tags["mlflow.note.content"].startswith("Committed params")
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"data/processed/matrices", "data/processed/items.parquet"}
    m = inputs["data/processed/matrices"]
    assert m.dataset.digest == tags["dvc.dep.data/processed/matrices.md5"].removesuffix(".dir")
    assert json.loads(m.dataset.source)["path"] == "data/processed/matrices"
    assert {t.key: t.value for t in m.tags}["mlflow.data.context"] == "training+testing"
    # the report shows the same provenance
    report = (root / LAYOUT / "report.md").read_text()
    assert report.count("## Provenance") == 1 and rid not in report  # the second run rewrote it
    assert f"| `{OUT}` | `{tags[f'dvc.dep.{OUT}.md5']}` |" in report


def test_each_model_is_a_pyfunc_logged_once_per_content(runs):
    root, uri, first, second = runs
    c = _client(uri)
    logged = {}
    for rid in (first, second):
        tags = c.get_run(rid).data.tags
        logged[rid] = {n: tags[f"musicrec.model.{n}"] for n in MODELS}
    assert logged[first] == logged[second], "identical files: the second run points to the first run's models"
    assert c.get_run(second).data.tags["musicrec.reused_models"] == ",".join(MODELS)
    outputs = {o.model_id for o in c.get_run(second).outputs.model_outputs}
    assert outputs == {u.removeprefix("models:/") for u in logged[second].values()}
    for name, model_uri in logged[first].items():
        m = c.get_logged_model(model_uri.removeprefix("models:/"))
        assert m.name == name and m.source_run_id == first and m.tags["musicrec_model"] == name
    store = root / "mlruns"
    files = [p for p in store.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".pkl", ".pickle")]
    assert sum(p.name == "model.json" for p in files) == len(MODELS)  # each model's files stored once


def test_pyfunc_load_model_answers_like_the_model_server(runs):
    import mlflow.pyfunc

    from musicrec.serving.recommender import ModelServer

    root, uri, first, _ = runs
    users = pd.read_parquet(root / OUT / "users.parquet")["user_id"].astype(str).tolist()
    items = pd.read_parquet(root / OUT / "catalog.parquet")["item_id"].astype(str).tolist()
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(f"runs:/{first}/als")
    assert model.metadata.get_input_schema().input_names() == ["user_id", "liked_ids", "n"]
    got = model.predict(pd.DataFrame({"user_id": [users[4], None], "liked_ids": [None, items[:3]], "n": [5, 4]}))
    local = ModelServer.load(root / OUT, "als", matrices_dir=root / "data/processed/matrices")
    want = pd.concat([local.recommend_user(users[4], 5).assign(request=0),
                      local.recommend_liked(items[:3], 4).assign(request=1)], ignore_index=True)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want[list(got.columns)], check_dtype=False)
    from musicrec.serving.artifacts import ServingError

    with pytest.raises(ServingError, match="input row 0: give either user_id or liked_ids"):
        model.predict(pd.DataFrame({"user_id": [users[0]], "liked_ids": [items[:1]], "n": [3]}))


def test_every_model_of_a_run_recommends_like_the_local_files(runs, tmp_path, free_ports):
    from musicrec.serving.artifacts import download_run
    from musicrec.serving.recommender import ModelServer

    root, uri, _, second = runs  # the second run's models were logged by the first
    users = pd.read_parquet(root / OUT / "users.parquet")["user_id"].astype(str).tolist()
    items = pd.read_parquet(root / OUT / "catalog.parquet")["item_id"].astype(str).tolist()
    for model in MODELS:
        local = ModelServer.load(root / OUT, model, matrices_dir=root / "data/processed/matrices")
        remote = ModelServer.from_run(second, model, tracking_uri=uri, cache_dir=tmp_path)
        assert remote.model_name == model and remote.models_dir != local.models_dir
        for u in users[:5]:
            pd.testing.assert_frame_equal(remote.recommend_user(u, 10), local.recommend_user(u, 10))
        pd.testing.assert_frame_equal(remote.recommend_liked(items[:3], 10), local.recommend_liked(items[:3], 10))
        pd.testing.assert_frame_equal(remote.similar(items[7], 10), local.similar(items[7], 10))
    # downloaded once: a second load needs no tracking server at all
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    with pytest.raises(Exception, match="not reachable"):
        download_run(second, tracking_uri=dead, cache_dir=tmp_path / "other")
    cached = download_run(second, tracking_uri=uri, cache_dir=tmp_path)
    assert cached[0] == remote.models_dir and cached[1] is not None


def test_main_model_is_registered_and_the_champion_moves_only_on_a_better_score(runs, tmp_path):
    from musicrec.serving.artifacts import download_model

    root, uri, first, second = runs
    c = _client(uri)
    versions = sorted(c.search_model_versions("name='musicrec-synthetic'"), key=lambda v: int(v.version))
    assert [(str(v.version), v.run_id) for v in versions] == [("1", first), ("2", second)]
    champ = c.get_model_version_by_alias("musicrec-synthetic", "champion")
    assert str(champ.version) == "1", "the second run ties the first: the alias stays"
    val = json.loads((root / LAYOUT / "metrics.json").read_text())["als"]["val_ndcg@10"]
    assert champ.tags["val_metric"] == f"val_ndcg@10={val!r}"
    models_dir, history = download_model("models:/musicrec-synthetic@champion", tracking_uri=uri, cache_dir=tmp_path)
    assert (models_dir / "als" / "model.json").is_file() and history is not None
    assert (models_dir / "als" / "model.json").read_bytes() == (root / OUT / "als" / "model.json").read_bytes()


def test_cli_model_uri_run_id_and_the_tracking_uri_hint(runs, tmp_path):
    root, uri, first, second = runs
    users = pd.read_parquet(root / OUT / "users.parquet")["user_id"].astype(str).tolist()
    env = pipeline_env({"MUSICREC_CACHE_DIR": str(tmp_path), "MLFLOW_TRACKING_URI": uri})

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "musicrec", *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=300)

    query = ["recommend", "--user", users[11], "--json"]
    local = cli(*query, "--models", OUT, "--matrices", "data/processed/matrices")
    champion = cli(*query, "--model-uri", "models:/musicrec-synthetic@champion")
    by_run = cli(*query, "--run-id", second)
    for r in (local, champion, by_run):
        assert r.returncode == 0, r.stderr
    assert json.loads(local.stdout) == json.loads(champion.stdout) == json.loads(by_run.stdout)
    listed = cli("models", "--run-id", second)
    assert listed.returncode == 0 and set(listed.stdout.split()) >= set(MODELS) | {"(default)"}
    missing = cli("recommend", "--user", users[0], "--run-id", "0" * 32)
    assert missing.returncode == 2 and f"run {'0' * 32} not found" in missing.stderr
    assert "--tracking-uri" in " ".join(missing.stderr.split()), "a run not in the local store may be on a server"
    bad = cli("recommend", "--user", users[0], "--model-uri", "models:/musicrec-synthetic@nope")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "musicrec-synthetic@nope" in bad.stderr
    garbled = cli("recommend", "--user", users[0], "--model-uri", "models:/a/b/c")
    assert garbled.returncode == 2 and "is not a model URI: use models:/<name>@<alias>" in garbled.stderr


def test_mlflow_models_serve_answers_invocations(runs, tmp_path):
    """``mlflow models serve -m runs:/<id>/als --env-manager local`` on a free 127.0.0.1 port, stopped by PID."""
    from musicrec.devservices.config import ServiceConfig
    from musicrec.devservices.process import spawn_service, stop_service, wait_until_ready

    root, uri, first, _ = runs
    cfg = ServiceConfig.on_free_ports(tmp_path / "state", startup_timeout_s=180)
    port = cfg.mlflow_port
    exe = Path(sys.executable).parent / "mlflow"
    cmd = [str(exe), "models", "serve", "-m", f"runs:/{first}/als", "--env-manager", "local", "--host",
           "127.0.0.1", "--port", str(port), "--workers", "1"]
    proc = spawn_service(cfg, "pyfunc", cmd, env=pipeline_env({"MLFLOW_TRACKING_URI": uri}), cwd=root)
    users = pd.read_parquet(root / OUT / "users.parquet")["user_id"].astype(str).tolist()
    body = json.dumps({"dataframe_split": {"columns": ["user_id", "n"], "data": [[users[2], 3]]}}).encode()

    def invoke() -> dict:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - our local server
            return json.loads(r.read())

    try:
        got = wait_until_ready("mlflow models serve", invoke, cfg.mlflow_timeout_s, proc, cfg, "pyfunc")
    finally:
        stop_service(cfg, "pyfunc", grace_s=10)
    assert proc.poll() is not None
    rows = got["predictions"]
    from musicrec.serving.recommender import ModelServer

    local = ModelServer.load(root / OUT, "als", matrices_dir=root / "data/processed/matrices")
    want = local.recommend_user(users[2], 3)
    assert [r["item_id"] for r in rows] == want["item_id"].tolist()
    assert [r["rank"] for r in rows] == [1, 2, 3] and all(r["why"] for r in rows)
