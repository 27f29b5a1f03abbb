"""The MLflow run's provenance against what DVC records, in a fresh clone: after ``dvc repro`` and after
``dvc exp run``, every ``dvc.dep.<path>.md5`` tag equals that path's md5 in ``dvc.lock`` (the tag is no
longer one run behind), ``git.dirty`` is false on the untouched clone and the run is named and described
by the experiment (``<exp name> · synthetic``, the changed param).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.support.pipeline import SMALL_PARAMS, dvc, make_clone

pytestmark = pytest.mark.integration

READ = ("data/processed/matrices", "data/processed/items.parquet", "data/models")


def _runs(db: Path) -> list[tuple[str, str, dict[str, str]]]:
    """(run id, name, tags) of every run, oldest first."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute("select run_uuid, name from runs order by start_time").fetchall()
        return [(rid, name, dict(con.execute("select key, value from tags where run_uuid=?", (rid,)).fetchall()))
                for rid, name in rows]
    finally:
        con.close()


def _locked(repo: Path) -> dict[str, str]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {d["path"]: d["md5"] for d in lock["stages"]["compare"]["deps"] if d["path"] in READ}


def test_tags_equal_dvc_lock_after_repro_and_exp_run(tmp_path):
    repo = make_clone(tmp_path / "repo", SMALL_PARAMS)
    dvc(["repro"], repo)
    ((rid, name, tags),) = _runs(repo / "mlflow.db")
    locked = _locked(repo)
    assert set(locked) == set(READ)
    assert {p: tags[f"dvc.dep.{p}.md5"] for p in READ} == locked
    assert tags["git.dirty"] == "false", tags.get("git.dirty_paths")  # the run's own outputs do not count
    short = tags["git.commit"][:7]
    assert name.endswith(" · synthetic") and name.split(" · ")[0].startswith(short[:4])
    assert rid in (repo / "reports/report.md").read_text()

    factors = SMALL_PARAMS["train"]["als"]["factors"] + 4
    dvc(["exp", "run", "-n", "prov-exp", "-S", f"train.als.factors={factors}"], repo)
    runs = _runs(repo / "mlflow.db")
    assert len(runs) == 2
    _, name, tags = runs[-1]
    assert name == "prov-exp · synthetic" and tags["dvc.exp_name"] == "prov-exp"
    new_lock = _locked(repo)
    assert new_lock["data/models"] != locked["data/models"], "ALS was refitted"
    assert {p: tags[f"dvc.dep.{p}.md5"] for p in READ} == new_lock
    assert f"train.als.factors: {factors - 4} -> {factors}" in tags["mlflow.note.content"]
    assert tags["git.dirty"] == "true" and tags["git.dirty_paths"] == "params.yaml"  # the changed param
    assert tags["musicrec.reused_models"] == "popularity,itemknn"
