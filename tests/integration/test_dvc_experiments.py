"""`dvc exp run` in a small clone: per-model stages rerun only what changed, bad params remove nothing.

* ``-S train.als.factors=...`` refits and re-evaluates ALS only (``train@als``, ``evaluate@als``),
  then ``compare``; popularity and item-kNN are not touched.
* ``-S train.als.factors=-1`` and ``-S data.source=hetrec`` (a typo) stop in the ``validate`` stage,
  before DVC removes any stage's outputs: the message names the key (and the valid sources), every
  output is still there, byte for byte, and the documented ``git checkout params.yaml`` gives a
  workspace that ``dvc status`` calls up to date.
* ``dvc metrics show`` is a row per model (``reports/metrics/<model>.json``, the headline metrics
  only); ``make exp-show`` (``mk/exp_show.py``) is a row per experiment and model with the source,
  the model's changed params and its nDCG / recall, no timings, in 120 columns;
  ``dvc plots diff`` draws an experiment beside its baseline; ``mk/exp_grid.py`` (``make exp-grid``) runs
  every combination of its axes as a ``--temp`` experiment.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import pytest

from musicrec.io import md5_file
from musicrec.pipeline.validate import RESTORE_HINT
from tests.support.pipeline import SMALL_PARAMS, dvc, make_clone, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = ("data/validated", "data/models", "data/evaluation", "reports")


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = make_clone(tmp_path_factory.mktemp("dvc-exp") / "repo", SMALL_PARAMS)
    dvc(["repro"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "pipeline run"], repo)
    return repo


def snapshot(repo: Path) -> dict[str, str]:
    return {str(f.relative_to(repo)): md5_file(f) for d in OUTPUTS for f in sorted((repo / d).rglob("*"))
            if f.is_file()}


def stages_run(out: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", out))


def test_an_als_change_refits_and_evaluates_only_als(repo: Path) -> None:
    out = dvc(["exp", "run", "--temp", "-n", "als-f8", "-S", "train.als.factors=8"], repo).stdout
    assert stages_run(out) == {"validate", "train@als", "evaluate@als", "compare"}, out


@pytest.mark.parametrize(("setting", "expected"), [
    ("train.als.factors=-1", [r"train\.als\.factors", "greater than 0"]),
    ("data.source=hetrec", [r"data\.source", "hetrec_lastfm_2k", "synthetic", "lastfm_360k"]),
], ids=["invalid-value", "source-typo"])
def test_an_invalid_param_stops_before_any_output_is_removed(repo: Path, setting: str, expected: list[str]) -> None:
    before = snapshot(repo)
    r = dvc(["exp", "run", "-S", setting], repo, check=False)
    text = r.stdout + r.stderr
    assert r.returncode != 0, text
    assert stages_run(r.stdout) == {"validate"}, text
    for pattern in expected:
        assert re.search(pattern, text), (pattern, text)
    assert " ".join(RESTORE_HINT.split()) in " ".join(text.split())
    assert "Traceback" not in text and "No such file or directory" not in text
    assert snapshot(repo) == before, "an output changed or disappeared"
    run(["git", "checkout", "params.yaml"], repo)  # the documented restore command
    assert "Data and pipelines are up to date." in dvc(["status"], repo).stdout
    assert run(["git", "status", "--porcelain"], repo).stdout == ""


def test_metrics_show_is_a_row_per_model_that_fits_a_terminal(repo: Path) -> None:
    shown = json.loads(dvc(["metrics", "show", "--json"], repo).stdout)
    (rev,) = shown.values()
    models = SMALL_PARAMS["train"]["models"]
    assert sorted(rev["data"]) == sorted(f"reports/metrics/{m}.json" for m in models)
    blocks = {Path(path).stem: block["data"] for path, block in rev["data"].items()}
    assert all(set(b) == set(blocks["als"]) and len(b) <= 6 for b in blocks.values()), blocks
    # the plain reports/metrics.json (CLI, app, notebooks) holds the same values
    assert json.loads((repo / "reports/metrics.json").read_text()) == blocks
    lines = dvc(["metrics", "show"], repo).stdout.splitlines()
    assert len(lines) == 1 + len(models), "a header and a row per model (was one row of every model's metrics)"
    assert max(map(len, lines)) <= 120, lines


def test_exp_show_shows_the_source_and_the_changed_als_params_but_no_timings(repo: Path) -> None:
    dvc(["exp", "run", "--temp", "-n", "als-f4", "-S", "train.als.factors=4"], repo)
    out = run([sys.executable, str(ROOT / "mk/exp_show.py"), "--csv", "--no-pager"], repo).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["experiment", "created", "data.source", "model", "changed params",
                             "ndcg@10", "recall@10", "val_ndcg@10"], rows[0]
    by_exp: dict[str, dict[str, dict[str, str]]] = {}
    name = source = ""
    for row in rows:  # the experiment and source are printed on the first row of each experiment
        name, source = row["experiment"] or name, row["data.source"] or source
        by_exp.setdefault(name, {})[row["model"]] = {**row, "data.source": source}
    assert {"workspace", "als-f4"} <= set(by_exp), by_exp.keys()
    exp = by_exp["als-f4"]
    assert list(exp) == SMALL_PARAMS["train"]["models"]
    assert exp["als"]["changed params"] == "factors=4" and exp["als"]["data.source"] == "synthetic"
    assert exp["popularity"]["changed params"] == "", "an unchanged model shows no params"
    assert all(float(r["ndcg@10"]) > 0 and float(r["val_ndcg@10"]) > 0 for r in exp.values()), exp
    text = run([sys.executable, str(ROOT / "mk/exp_show.py")], repo).stdout
    assert "seconds" not in text and "train.bpr" not in text and max(map(len, text.splitlines())) <= 120, text
    # dvc plots diff: the experiment's bars and points beside the baseline's, in the offline page
    dvc(["plots", "diff", "HEAD", "als-f4", "-o", "diff"], repo)
    page = (repo / "diff/index.html").read_text(encoding="utf-8")
    assert page.count("vegaEmbed(") == 5 and '"rev": "als-f4"' in page and '"rev": "HEAD"' in page


def test_exp_grid_runs_every_combination_without_the_queue(repo: Path) -> None:
    before = (repo / "params.yaml").read_text()
    out = run([sys.executable, str(ROOT / "mk/exp_grid.py"), "-S", "train.als.factors=5,6",
               "-S", "train.als.iterations=2"], repo).stdout
    assert "exp-grid: 2 experiments done" in out, out
    assert (repo / "params.yaml").read_text() == before, "the workspace stays as it was"
    shown = json.loads(dvc(["exp", "show", "--json"], repo).stdout)
    factors = {(r["data"]["params"]["params.yaml"]["data"]["train"]["als"]["factors"],
                r["data"]["params"]["params.yaml"]["data"]["train"]["als"]["iterations"])
               for entry in shown for group in entry.get("experiments") or [] for r in group["revs"]}
    assert {(5, 2), (6, 2)} <= factors, factors
