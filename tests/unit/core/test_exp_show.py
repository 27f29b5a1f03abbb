"""`make exp-show` (mk/exp_show.py): `dvc exp show --json` as a row per experiment and trained model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("exp_show", ROOT / "mk/exp_show.py")
exp_show = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("exp_show", exp_show)  # its dataclasses look their module up
_spec.loader.exec_module(exp_show)


def rev(name: str, source: str, factors: int, val: float, models=("popularity", "als"), error=None) -> dict:
    params = {"data": {"source": source}, "evaluate": {"main_k": 10},
              "train": {"models": list(models), "als": {"factors": factors, "alpha": 1.0},
                        "popularity": {"recent_days": None}, "bpr": {"factors": 3 if name == "b" else 2}}}
    metrics = {f"reports/metrics/{m}.json": {"data": {"ndcg@10": 0.1, "recall@10": 0.2, "val_ndcg@10": val,
                                                      "fit_seconds": 9.0}} for m in models}
    metrics["reports/train/als.json"] = {"data": {"fit_seconds": 1.5}}  # not a metrics file of the table
    return {"rev": name * 40 if name == "w" else name, "name": name, "error": error,
            "data": {"timestamp": "2026-12-02T07:00:00", "params": {"params.yaml": {"data": params}},
                     "metrics": metrics}}


def dvc_json() -> list[dict]:
    base = rev("main", "synthetic", 64, 0.30)
    base["experiments"] = [{"revs": [rev("a", "synthetic", 8, 0.10)]},
                           {"revs": [rev("b", "hetrec_lastfm_2k", 64, 0.50)]}]
    return [{**rev("workspace", "synthetic", 64, 0.30), "experiments": None}, base]


def test_a_row_per_experiment_and_model_best_validation_first():
    header, rows = exp_show.table(exp_show.experiments(dvc_json()))
    assert header == ["experiment", "created", "data.source", "model", "changed params",
                      "ndcg@10", "recall@10", "val_ndcg@10"]
    assert [(r[0], r[3]) for r in rows] == [("workspace", "popularity"), ("", "als"),
                                            ("b", "popularity"), ("", "als"),
                                            ("main", "popularity"), ("", "als"),
                                            ("a", "popularity"), ("", "als")]
    assert rows[2][2] == "hetrec_lastfm_2k" and rows[3][2] == ""  # the source on the experiment's first row
    assert rows[7][4] == "factors=8" and rows[6][4] == ""  # only the trained models' params that differ
    assert rows[7][5:] == ["0.1000", "0.2000", "0.1000"]
    assert "bpr" not in str(rows) and "fit_seconds" not in str(rows)  # untrained models, timings


def test_changed_model_lists_and_missing_metrics():
    entries = dvc_json()
    entries[1]["experiments"].append({"revs": [rev("c", "synthetic", 64, 0.2, models=("als",), error="boom")]})
    entries[1]["experiments"][-1]["revs"][0]["data"]["metrics"] = {}
    header, rows = exp_show.table(exp_show.experiments(entries))
    c = [r for r in rows if r[0] == "c"]
    assert c == [["c", "2026-12-02 07:00", "synthetic", "als", "models=als factors=64", "-", "-", "-"]]
    text = exp_show.render(header, rows)
    assert all(len(line) <= 120 for line in text.splitlines()) and "models=popularity,als" in text
