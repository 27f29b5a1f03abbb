"""musicrec.tracking (logger, server, redact, provenance) against a sqlite store in tmp_path (no server needed)."""

from __future__ import annotations

import socket
import subprocess
import time
import warnings
from pathlib import Path

import pytest
import yaml

from musicrec.tracking import logger as tr
from musicrec.tracking import provenance, redact, server
from musicrec.config import load_params

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = server.tracking_uri(tmp_path)
    return uri


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_tracking_uri_env_and_default(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert server.tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert server.tracking_uri(tmp_path) == "http://127.0.0.1:5999"


def test_flatten_and_safe_key():
    flat = tr.flatten({"train": {"als": {"factors": 64}, "models": ["als"]}, "seed": 1, "empty": {}})
    assert flat == {"train.als.factors": 64, "train.models": ["als"], "seed": 1, "empty": {}}
    assert tr.safe_key("ndcg@10") == "ndcg_10"
    assert tr.safe_key("/a//b/") == "a/b"


def test_scrub_keys_values_and_urls(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3tvalue")
    monkeypatch.setenv("MUSICREC_S3_ACCESS_KEY", "AKIAFAKE123")
    out = redact.scrub({
        "s3.secret_access_key": "whatever",
        "db.password": "x",
        "api_token": "y",
        "remote.access_key_id": "z",
        "note": "prefix-s3cr3tvalue-suffix",
        "who": "AKIAFAKE123",
        "uri": "https://bob:hunter2@example.com/x",
        "train.als.factors": 64,
        "plain": "ok",
    })
    assert out["s3.secret_access_key"] == out["db.password"] == out["api_token"] == redact.REDACTED
    assert out["remote.access_key_id"] == redact.REDACTED
    assert out["note"] == out["who"] == redact.REDACTED
    assert "hunter2" not in out["uri"] and "bob" in out["uri"]
    assert out["train.als.factors"] == 64 and out["plain"] == "ok"


def test_run_params_metrics_tags_artifacts_and_resume(tmp_path, store, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "exp-test")
    monkeypatch.setenv("MUSICREC_S3_SECRET_KEY", "topsecretkey")
    params = load_params(ROOT / "params.yaml")
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    report = tmp_path / "report.json"
    report.write_text("{}\n")
    run_file = tmp_path / "run_id.txt"
    tags = provenance.provenance_tags(tmp_path, [data]) | {"leak": "topsecretkey", "my_token": "abc"}

    with tr.start_or_resume_run("unit", run_id_file=run_file, run_name="train", tags=tags, tracking_uri=store) as run:
        logged = tr.log_params_flat(params)
        tr.log_params_flat({"s3": {"secret_access_key": "nope"}})
        tr.log_metrics({"als": {"ndcg@10": 0.5, "bad": float("nan"), "name": "x"}, "n": 3})
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert tr.log_artifacts([report, tmp_path / "missing.json"]) == [str(report)]
        assert any("missing.json" in str(x.message) for x in w)
    rid = run.info.run_id
    assert run_file.read_text().strip() == rid
    assert logged["train.als.factors"] == str(params.train.als.factors)
    assert logged["train.models"] == '["popularity", "itemknn", "als"]'

    # evaluate stage: resumes the same run
    with tr.start_or_resume_run("unit", run_id_file=run_file, run_name="evaluate", tracking_uri=store) as run2:
        tr.log_metrics({"eval": {"recall": 0.25}})
    assert run2.info.run_id == rid

    r = _client(store).get_run(rid)
    assert r.info.status == "FINISHED"
    assert r.data.params["train.als.factors"] == str(params.train.als.factors)
    assert r.data.params["s3.secret_access_key"] == redact.REDACTED
    assert "topsecretkey" not in str(r.data.params) + str(r.data.tags)
    assert r.data.tags["leak"] == redact.REDACTED and r.data.tags["my_token"] == redact.REDACTED
    assert r.data.metrics == {"als.ndcg_10": 0.5, "n": 3.0, "eval.recall": 0.25}
    assert r.data.tags["dvc.exp_name"] == "exp-test"
    assert r.data.tags["git.commit"] == "unknown"  # tmp_path is no git repo
    key = "dvc.dep.data.csv"
    assert r.data.tags[f"{key}.source"] == "computed"
    from musicrec.io import md5_file

    assert r.data.tags[f"{key}.md5"] == md5_file(data)
    arts = [a.path for a in _client(store).list_artifacts(rid)]
    assert arts == ["report.json"]


def test_failed_body_marks_run_failed(tmp_path, store):
    with pytest.raises(ZeroDivisionError):
        with tr.start_or_resume_run("unit", run_name="boom", tracking_uri=store) as run:
            1 / 0  # noqa: B018
    assert _client(store).get_run(run.info.run_id).info.status == "FAILED"


def test_stale_run_id_file_starts_new_run(tmp_path, store):
    f = tmp_path / "run_id.txt"
    f.write_text("0" * 32 + "\n")
    with pytest.warns(RuntimeWarning, match="cannot resume"):
        with tr.start_or_resume_run("unit", run_id_file=f, tracking_uri=store) as run:
            pass
    assert f.read_text().strip() == run.info.run_id != "0" * 32


def test_provenance_from_dvc_lock_and_git(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "f.txt").write_text("x")
    subprocess.run(["git", "add", "f.txt"], cwd=tmp_path, check=True)
    subprocess.run(["git", "commit", "-qm", "init"], cwd=tmp_path, check=True)
    (tmp_path / "data" / "processed").mkdir(parents=True)
    (tmp_path / "data" / "raw.csv").write_text("r")
    (tmp_path / "data" / "raw.csv.dvc").write_text(yaml.safe_dump({"outs": [{"md5": "abc123", "path": "raw.csv"}]}))
    lock = {"schema": "2.0", "stages": {"transform": {"cmd": "x", "deps": [], "outs": [
        {"path": "data/processed", "hash": "md5", "md5": "d41d8cd98f00b204e9800998ecf8427e.dir"}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    (tmp_path / "newdir").mkdir()
    tags = provenance.provenance_tags(tmp_path, ["data/processed", "data/raw.csv", "newdir", "nothere"])
    assert len(tags["git.commit"]) == 40 and tags["git.dirty"] == "false"
    assert tags["dvc.dep.data/processed.md5"].endswith(".dir")
    assert tags["dvc.dep.data/processed.source"] == "dvc.lock"
    assert tags["dvc.dep.data/raw.csv.md5"] == "abc123"
    assert tags["dvc.dep.newdir.source"] == "unlocked"
    assert tags["dvc.dep.nothere.md5"] == "missing"
    (tmp_path / "f.txt").write_text("changed")
    assert provenance.provenance_tags(tmp_path)["git.dirty"] == "true"


def test_unreachable_server_raises_within_timeout(monkeypatch):
    # a port that accepts TCP connections but never answers: the worst case for a hang
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    try:
        t = time.monotonic()
        with pytest.raises(server.TrackingUnavailable, match="not reachable within 1s"):
            server.check_tracking(f"http://127.0.0.1:{port}", timeout_s=1)
        assert time.monotonic() - t < 3
    finally:
        srv.close()
    # connection refused (nothing listens): fails fast too
    t = time.monotonic()
    with pytest.raises(server.TrackingUnavailable, match="make services-up"):
        server.check_tracking(f"http://127.0.0.1:{port}", timeout_s=2)
    assert time.monotonic() - t < 3


def test_not_required_warns_and_continues(free_ports):
    (port,) = free_ports(1)
    with pytest.warns(RuntimeWarning, match="continuing without MLflow"):
        assert server.ensure_tracking(f"http://127.0.0.1:{port}", required=False, timeout_s=1) is False
    with pytest.raises(server.TrackingUnavailable):
        server.ensure_tracking(f"http://127.0.0.1:{port}", required=True, timeout_s=1)


def test_http_timeouts_are_bounded(monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    server.configure_http(2.5)
    import os

    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
