"""End to end: the real stages under a real `dvc repro`, in a temporary clone."""

from __future__ import annotations

import json
import sqlite3

import pytest
import yaml

from tests.support.pipeline import SMALL_PARAMS, dvc, lock_outs, make_clone, model_metrics

pytestmark = pytest.mark.integration

DATA_STAGES = ["generate", "clean", "transform", "interactions"]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    repo = make_clone(tmp_path_factory.mktemp("e2e") / "repo", SMALL_PARAMS)
    dvc(["repro"], repo)
    return repo


def test_outputs_exist_and_row_accounting_holds(clone):
    dq = json.loads((clone / "reports/data_quality.json").read_text())["totals"]
    assert dq["rows_read"] > 0
    assert dq["rows_read"] == dq["kept"] + dq["quarantined"] + dq["unmatched_dropped"]
    assert (clone / "data/processed/matrices/train.npz").exists()
    for p in ("data/raw/synthetic/Music Info.csv", "data/raw/synthetic/User Listening History.csv",
              "data/interim/items.parquet", "data/processed/items.parquet", "reports/report.md",
              "reports/plots/metrics_at_k.csv"):
        assert (clone / p).exists(), p
    assert not list(clone.rglob(".tmp-*")), "no temporary files left behind"


def test_metrics_file_has_every_model_and_als_beats_popularity(clone):
    metrics = json.loads((clone / "reports/metrics.json").read_text())
    for m in SMALL_PARAMS["train"]["models"]:
        assert m in metrics, m
        for key in ("precision@10", "recall@10", "ndcg@10", "map@10", "coverage@10"):
            assert 0 <= metrics[m][key] <= 1, (m, key)
    assert metrics["als"]["ndcg@10"] > 1.2 * metrics["popularity"]["ndcg@10"]
    shown = dvc(["metrics", "show", "--json"], clone).stdout
    assert "ndcg@10" in shown and "als" in shown


def test_second_repro_does_nothing(clone):
    out = dvc(["repro"], clone).stdout
    assert "didn't change, skipping" in out or "Data and pipelines are up to date" in out
    assert "Running stage" not in out
    assert "up to date" in dvc(["status"], clone).stdout.lower() or dvc(["status"], clone).stdout.strip() == ""


def test_forced_data_stages_are_bit_for_bit_identical(clone):
    before = lock_outs(clone / "dvc.lock", DATA_STAGES, timings=False)
    for stage in DATA_STAGES:
        dvc(["repro", "--force", "--single-item", stage], clone)
    after = lock_outs(clone / "dvc.lock", DATA_STAGES, timings=False)
    assert before == after


def test_mlflow_run_has_params_metrics_and_tags(clone):
    db = clone / "mlflow.db"
    assert db.exists()
    con = sqlite3.connect(db)
    runs = con.execute("select run_uuid from runs").fetchall()
    assert len(runs) == 1, "one MLflow run per pipeline run"
    run_id = runs[0][0]
    params = dict(con.execute("select key, value from params where run_uuid=?", (run_id,)).fetchall())
    metrics = dict(con.execute("select key, value from latest_metrics where run_uuid=?", (run_id,)).fetchall())
    tags = dict(con.execute("select key, value from tags where run_uuid=?", (run_id,)).fetchall())
    assert params["train.als.factors"] == str(SMALL_PARAMS["train"]["als"]["factors"])
    reported = json.loads((clone / "reports/metrics.json").read_text())
    assert metrics["als.ndcg_10"] == pytest.approx(reported["als"]["ndcg@10"], abs=1e-9)
    assert "git.commit" in tags
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    train_md5 = {o["path"]: o["md5"] for o in lock["stages"]["interactions"]["outs"]}
    assert tags["dvc.dep.data/processed/matrices.md5"] == train_md5["data/processed/matrices"]


def _mlflow_tags(db, key):
    con = sqlite3.connect(db)
    return {v for (v,) in con.execute("select value from tags where key=?", (key,)).fetchall()}


def test_dvc_exp_runs_are_compared_and_tracked(clone):
    dvc(["exp", "run", "-n", "als-f8", "-S", "train.als.factors=8"], clone)
    dvc(["exp", "run", "-n", "als-f24", "-S", "train.als.factors=24"], clone)
    shown = json.loads(dvc(["exp", "show", "--json"], clone).stdout)
    exps = {}
    for rev in shown:
        for exp in rev.get("experiments") or []:
            for r in exp.get("revs", []):
                data = r.get("data") or {}
                if r.get("name") in ("als-f8", "als-f24"):
                    params = data["params"]["params.yaml"]["data"]
                    metrics = model_metrics(data["metrics"])
                    exps[r["name"]] = (params["train"]["als"]["factors"], metrics["als"]["ndcg@10"])
    assert set(exps) == {"als-f8", "als-f24"}
    assert exps["als-f8"][0] == 8 and exps["als-f24"][0] == 24
    assert exps["als-f8"][1] != exps["als-f24"][1]
    # each experiment is one MLflow run, tagged with its DVC experiment name
    assert {"als-f8", "als-f24"} <= _mlflow_tags(clone / "mlflow.db", "dvc.exp_name")


def test_queued_experiment_logs_to_the_repos_mlflow_store(clone):
    dvc(["exp", "run", "--queue", "-n", "als-queued", "-S", "train.als.regularization=0.5"], clone)
    dvc(["exp", "run", "--run-all", "--jobs", "1"], clone)
    shown = dvc(["exp", "show", "--json"], clone).stdout
    assert "als-queued" in shown
    assert "als-queued" in _mlflow_tags(clone / "mlflow.db", "dvc.exp_name")


@pytest.mark.slow
def test_push_then_pull_into_a_second_clone_needs_no_recompute(clone, seaweedfs, tmp_path):
    from musicrec.devservices.dvc_remote import write_dvc_config_local
    from tests.support.pipeline import run

    cfg, creds = seaweedfs
    url = f"s3://{cfg.bucket}/e2e-{tmp_path.name}"
    write_dvc_config_local(clone, cfg.s3_endpoint, creds)
    dvc(["remote", "modify", "--local", "s3", "url", url], clone)
    dvc(["push"], clone)
    run(["git", "add", "-A"], clone)
    run(["git", "commit", "-qm", "pipeline run", "--allow-empty"], clone)
    other = tmp_path / "other"
    run(["git", "clone", "-q", str(clone), str(other)], tmp_path)
    write_dvc_config_local(other, cfg.s3_endpoint, creds)
    dvc(["remote", "modify", "--local", "s3", "url", url], other)
    dvc(["pull"], other)
    out = dvc(["repro"], other).stdout
    assert "Running stage" not in out, out
    for f in ("data/processed/matrices/train.npz", "data/models/als/model.json"):
        assert (other / f).read_bytes() == (clone / f).read_bytes()
