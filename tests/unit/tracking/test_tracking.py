"""musicrec.tracking (logger, server, redact, provenance) against a sqlite store in tmp_path (no server needed)."""

from __future__ import annotations

import json
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


def test_run_params_metrics_tags_description_and_artifacts(tmp_path, store, monkeypatch):
    monkeypatch.setenv("MUSICREC_S3_SECRET_KEY", "topsecretkey")
    params = load_params(ROOT / "params.yaml")
    report = tmp_path / "report.json"
    report.write_text("{}\n")
    tags = {"data.source": "synthetic", "leak": "topsecretkey", "my_token": "abc"}

    with tr.start_run("unit", run_name="abc1234 · synthetic", tags=tags, description="- `a: 1 -> 2`",
                      tracking_uri=store) as run:
        logged = tr.log_params_flat(params)
        tr.log_params_flat({"s3": {"secret_access_key": "nope"}})
        tr.log_metrics({"als": {"ndcg@10": 0.5, "bad": float("nan"), "name": "x"}, "n": 3})
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert tr.log_artifacts([report, tmp_path / "missing.json"]) == [str(report)]
        assert any("missing.json" in str(x.message) for x in w)
    rid = run.info.run_id
    assert logged["train.als.factors"] == str(params.train.als.factors)
    assert logged["train.models"] == json.dumps(list(params.train.models))

    r = _client(store).get_run(rid)
    assert r.info.status == "FINISHED" and r.info.run_name == "abc1234 · synthetic"
    assert r.data.tags["mlflow.note.content"] == "- `a: 1 -> 2`"
    assert r.data.params["train.als.factors"] == str(params.train.als.factors)
    assert r.data.params["s3.secret_access_key"] == redact.REDACTED
    assert "topsecretkey" not in str(r.data.params) + str(r.data.tags)
    assert r.data.tags["leak"] == redact.REDACTED and r.data.tags["my_token"] == redact.REDACTED
    assert r.data.metrics == {"als.ndcg_10": 0.5, "n": 3.0}
    assert [a.path for a in _client(store).list_artifacts(rid)] == ["report.json"]


def test_failed_body_marks_run_failed(tmp_path, store):
    with pytest.raises(ZeroDivisionError):
        with tr.start_run("unit", run_name="boom", tracking_uri=store) as run:
            1 / 0  # noqa: B018
    assert _client(store).get_run(run.info.run_id).info.status == "FAILED"


def test_artifacts_go_beside_the_store_whatever_the_working_directory(tmp_path, store, monkeypatch):
    # a DVC experiment runs in a temporary copy; the experiment it creates must not keep its artifacts there
    elsewhere = tmp_path / ".dvc/tmp/exps/tmp123"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    with tr.start_run("made-in-a-copy", run_name="first", tracking_uri=store) as run:
        pass
    with tr.start_run("made-in-a-copy", run_name="second", tracking_uri=store) as again:
        pass
    root = (tmp_path / "mlruns").resolve().as_uri()
    for r in (run, again):
        assert _client(store).get_run(r.info.run_id).info.artifact_uri.startswith(root + "/"), r.info.artifact_uri
    assert server.local_artifact_root("http://127.0.0.1:5000") is None  # a server decides for itself


def _git(repo: Path, *args: str) -> None:
    from tests.support.pipeline import pipeline_env

    subprocess.run(["git", *args], cwd=repo, check=True, env=pipeline_env(), capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A git repo with code, params, a .dvc file and pipeline outputs committed (as a fresh clone has them)."""
    files = {"src/pkg/mod.py": "x = 1\n", "stages/s.py": "", "dvc.yaml": "stages: {}\n",
             "params.yaml": "seed: 1\ntrain:\n  als:\n    factors: 64\n  models: [als]\n",
             "data/raw.csv.dvc": "outs:\n- md5: abc\n  path: raw.csv\n", "dvc.lock": "schema: '2.0'\n",
             "reports/metrics.json": "{}\n", "reports/report.md": "# r\n", "data/.gitignore": "/models\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "init")
    return tmp_path


def test_git_dirty_counts_tracked_inputs_not_the_runs_outputs(repo):
    # what a pipeline run writes: dvc.lock, tracked reports, .gitignore lines, untracked outputs
    for rel in ("dvc.lock", "reports/metrics.json", "reports/report.md", "data/.gitignore"):
        (repo / rel).write_text((repo / rel).read_text() + "changed\n")
    (repo / "data" / "models").mkdir()
    (repo / "data" / "models" / "m.npz").write_text("m")
    (repo / "src" / "pkg" / "new.py").write_text("")  # untracked: not part of the commit's inputs
    g = provenance.git_state(repo)
    assert len(g["commit"]) == 40 and g["short"] and g["dirty"] is False and g["dirty_paths"] == []
    for rel in ("src/pkg/mod.py", "params.yaml", "data/raw.csv.dvc", "dvc.yaml", "stages/s.py"):
        before = (repo / rel).read_text()
        (repo / rel).write_text(before + "# edit\n")
        g = provenance.git_state(repo)
        assert g["dirty"] is True and g["dirty_paths"] == [rel], rel
        assert provenance.tags({"git": g, "data_source": "synthetic"})["git.dirty"] == "true"
        (repo / rel).write_text(before)
    _git(repo, "rm", "-q", "--cached", "stages/s.py")  # a staged change counts too
    assert provenance.git_state(repo)["dirty_paths"] == ["stages/s.py"]


def test_outside_git_commit_and_dirty_are_unknown(tmp_path):
    g = provenance.git_state(tmp_path)
    assert g == {"commit": None, "short": None, "dirty": None, "dirty_paths": []}
    assert provenance.tags({"git": g, "data_source": "x"})["git.commit"] == "unknown"


def test_changed_params_name_and_description(repo, monkeypatch):
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    (repo / "params.yaml").write_text("seed: 1\ntrain:\n  als:\n    factors: 32\n  models: [als, ease]\n"
                                      "extra: true\n")
    prov = provenance.compute(repo, params_file="params.yaml", data_source="synthetic", data=[])
    assert prov["changed_params"] == {"extra": {"from": None, "to": True},
                                      "train.als.factors": {"from": 64, "to": 32},
                                      "train.models": {"from": ["als"], "to": ["als", "ease"]}}
    short = prov["git"]["short"]
    assert provenance.run_name(prov) == f"{short}+dirty · synthetic"
    text = provenance.description(prov)
    assert "- `train.als.factors: 64 -> 32`" in text and '- `train.models: ["als"] -> ["als", "ease"]`' in text
    assert provenance.tags(prov)["params.changed"] == "extra, train.als.factors, train.models"
    monkeypatch.setenv("DVC_EXP_NAME", "natal-merk")
    prov = provenance.compute(repo, params_file=repo / "params.yaml", data_source="synthetic", data=[])
    assert provenance.run_name(prov) == "natal-merk · synthetic"
    assert provenance.tags(prov)["dvc.exp_name"] == "natal-merk"
    (repo / "params.yaml").write_text(subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=repo,
                                                     capture_output=True, text=True).stdout)
    prov = provenance.compute(repo, params_file="params.yaml", data_source="hetrec", data=[])
    assert prov["changed_params"] == {} and provenance.description(prov) == "Committed params (hetrec data)."


def test_dvc_md5_is_what_dvc_records(tmp_path):
    """The folder and file hashes equal ``dvc add``'s, ignoring what .dvcignore ignores (atomic temporaries)."""
    from tests.support.pipeline import dvc

    d = tmp_path / "data" / "models"
    (d / "als").mkdir(parents=True)
    (d / "als" / "model.json").write_text('{"a": 1}\n')
    (d / "users.parquet").write_bytes(bytes(range(256)) * 10)
    (tmp_path / "data" / "f.csv").write_text("a,b\n1,2\n")
    dvc(["init", "--no-scm", "-q"], tmp_path)
    (tmp_path / ".dvcignore").write_text(".tmp-*\n")
    dvc(["add", "-q", "data/models", "data/f.csv"], tmp_path)
    (d / ".tmp-users.parquet-1-x").write_text("partial")  # ignored, as DVC ignores it
    for rel in ("data/models", "data/f.csv"):
        recorded = yaml.safe_load((tmp_path / f"{rel}.dvc").read_text())["outs"][0]["md5"]
        assert provenance.dvc_md5(tmp_path / rel, tmp_path) == recorded, rel
    assert provenance.dvc_md5(tmp_path / "nothere") is None
    prov = provenance.compute(tmp_path, params_file="params.yaml", data_source="s",
                              data=["data/models", tmp_path / "data" / "f.csv", "nothere"])
    assert set(prov["data"]) == {"data/models", "data/f.csv", "nothere"} and prov["data"]["nothere"] is None
    assert provenance.tags(prov)["dvc.dep.nothere.md5"] == "missing"


@pytest.mark.parametrize("value, best, has_champion, wins", [
    (0.3, None, False, True),      # the first version becomes the champion
    (0.3, 0.2, True, True),
    (0.2, 0.2, True, False),       # a tie keeps the champion
    (0.1, 0.2, True, False),
    (0.1, None, True, True),       # the champion was scored on another metric
    (None, None, False, False),    # no validation metric: never
    (float("nan"), 0.2, True, False),
])
def test_champion_moves_only_to_a_better_validation_score(value, best, has_champion, wins):
    from musicrec.tracking.logged_models import beats, metric_of

    assert beats(value, best, has_champion=has_champion) is wins
    assert metric_of("val_ndcg@10=0.25", "val_ndcg@10") == 0.25
    assert metric_of("val_ndcg@20=0.25", "val_ndcg@10") is None and metric_of(None, "x") is None


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


def test_dataset_source_names_the_dvc_remote_object(tmp_path):
    from musicrec.tracking import datasets

    assert datasets.remote_url(tmp_path) is None
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text('[core]\n    remote = s3\n[\'remote "s3"\']\n    url = s3://bkt/dvc\n')
    assert datasets.remote_url(tmp_path) == "s3://bkt/dvc"
    md5 = "65ebe5db88f976b9aef0380bfb698b52.dir"
    assert datasets.object_url("s3://bkt/dvc/", md5) == "s3://bkt/dvc/files/md5/65/ebe5db88f976b9aef0380bfb698b52.dir"
    assert datasets.object_url("https://u:pw@host/r", "ab12") == f"https://u:{redact.REDACTED}@host/r/files/md5/ab/12"
    assert datasets.object_url(None, md5) is None
    src = datasets.DvcDatasetSource("data/processed/matrices", md5, "s3://x")
    assert datasets.DvcDatasetSource.from_dict(src.to_dict()).to_dict() == src.to_dict()


def test_report_provenance_section_is_replaced_not_repeated(tmp_path):
    from musicrec.evaluation.report import reported_run_id, write_provenance

    report = tmp_path / "report.md"
    report.write_text("# musicrec evaluation report\n\n## Definitions\n\ntext\n")
    prov = {"run_id": None, "git": {"commit": "a" * 40, "short": "aaaaaaa", "dirty": True,
                                    "dirty_paths": ["params.yaml"]},
            "dvc_exp_name": "natal-merk", "data_source": "synthetic",
            "changed_params": {"train.als.factors": {"from": 64, "to": 32}},
            "data": {"data/models": "d9714f1ebaa2c0dc2334031004d3d79c.dir", "gone": None}}
    write_provenance(report, prov)
    assert reported_run_id(report) is None, "tracking off: no run to name"
    write_provenance(report, prov | {"run_id": "f" * 32})
    assert reported_run_id(report) == "f" * 32 and reported_run_id(tmp_path / "absent.md") is None
    text = report.read_text()
    assert text.startswith("# musicrec evaluation report\n\n## Definitions\n\ntext\n\n## Provenance\n")
    assert text.count("## Provenance") == 1 and "f" * 32 in text and "none (tracking off)" not in text
    assert "natal-merk · synthetic" in text and "yes: `params.yaml`" in text
    assert "  - `train.als.factors: 64 -> 32`" in text
    assert "| `data/models` | `d9714f1ebaa2c0dc2334031004d3d79c.dir` |" in text and "| `gone` | `missing` |" in text
