"""What the benchmark runs: the sizes, the per-size plans, the generated data and the params and stage
commands each size runs with."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from bench_env import REPO


SIZES: dict[str, dict[str, int]] = {
    "100k": {"n_tracks": 5_000, "n_users": 3_000, "n_plays": 100_000},  # smoke test of the benchmark itself
    "1m": {"n_tracks": 20_000, "n_users": 30_000, "n_plays": 1_000_000},
    "10m": {"n_tracks": 50_000, "n_users": 1_000_000, "n_plays": 10_000_000},
    "48m": {"n_tracks": 380_000, "n_users": 1_000_000, "n_plays": 48_000_000},
}
SEED = 42
# What is measured beyond the stages at each size. The largest size is trimmed so that `make bench-full`
# stays within an hour on this 2-core machine (measured: reports/benchmarks.md, "total"): one train stage
# and one bare ALS run instead of the best of two, one timed ALS iteration per factor count, a 25,000-user
# sample for the evaluation comparison, no second transform run for the per-phase memory breakdown, and an ALS
# fit of 5 iterations instead of params.yaml's 15 (in the train stage and the bare fit alike: the overhead ratio
# and the evaluation cross-check need the same fit, not a converged one; 2 x 150 s saved).
DEFAULT_PLAN = {"repeats": 2, "phases": True}
PLANS: dict[str, dict[str, Any]] = {"48m": {"repeats": 1, "phases": False, "als_iterations": 1, "eval_users": 25_000,
                                           "als_fit_iterations": 5}}
STAGES = ("clean", "transform", "interactions", "train", "evaluate")  # the growth table's rows (stage_commands)
# the models the benchmark trains: ALS is what is benchmarked; popularity is the required baseline
BENCH_MODELS = ("popularity", "als")
BENCHED_MODEL = "als"
DATA_STAGES = ("clean", "transform", "interactions")


# --rerun WHAT: what the report says was measured again, and why
RERUNS = {
    "evaluation": ("the evaluation", "after a change to the recommend path (the first run's numbers are kept in the "
                                     "JSON as `before_rerun`)"),
    "phases": ("the transform phases", ""),
    "serving": ("the serving", "after a change to the recommend path"),
    "transform": ("the clean and transform stages with the DuckDB reference",
                  "after a change to the clean stage (growth exponents recomputed)"),
}


def size_plan(name: str, **choices: Any) -> dict[str, Any]:
    """What is measured at ``name`` beyond the stages: DEFAULT_PLAN with the command-line ``choices``
    (eval_users, als_iterations), then the size's own trims in PLANS, which win."""
    return {**DEFAULT_PLAN, **choices, **PLANS.get(name, {})}


def size_config(name: str) -> dict[str, int]:
    c = dict(SIZES[name])
    c.update(n_genres=16, n_artists=max(1, c["n_tracks"] // 5), seed=SEED)
    return c


def ensure_data(workdir: Path, name: str) -> dict[str, Any]:
    """Generate (or reuse) the Kaggle-schema CSVs for one size."""
    from musicrec.config import GenerateParams
    from musicrec.ingest.synthetic import write_synthetic

    cfg = size_config(name)
    raw = workdir / name / "raw"
    marker = raw / "generate.json"
    if marker.exists() and (raw / "synthetic").is_dir():
        rec = json.loads(marker.read_text())
        if rec.get("config") == cfg:
            rec["cached"] = True
            return rec
    raw.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sizes = {k: v for k, v in cfg.items() if k != "seed"}
    summary = write_synthetic(raw / "synthetic", GenerateParams(**sizes), seed=cfg["seed"], chunk_rows=1_000_000)
    rec = {"config": cfg, "summary": summary, "seconds": round(time.perf_counter() - t0, 2)}
    marker.write_text(json.dumps(rec))
    rec["cached"] = False
    return rec


def bench_params(name: str) -> dict[str, Any]:
    import yaml

    p = yaml.safe_load((REPO / "params.yaml").read_text())
    c = size_config(name)
    p["generate"].update({k: c[k] for k in ("n_tracks", "n_users", "n_plays", "n_genres", "n_artists")})
    p["data"]["source"] = "synthetic"
    p["data"]["allow_absolute_paths"] = True  # the generated data lives in bench-data/<size>/raw, beside the work folder
    # ALS is what is benchmarked; itemknn/others are timed by their own tests. popularity must stay.
    p["train"]["models"] = list(BENCH_MODELS)
    # no FAISS index at fit (params.yaml builds two above 50,000 items: 47 s at 48m): the bare implicit fit builds
    # none, and the evaluation scores exactly either way; bench_ann.py measures the indexes
    p["train"]["als"]["ann"]["enabled"] = False
    if "als_fit_iterations" in PLANS.get(name, {}):
        p["train"]["als"]["iterations"] = PLANS[name]["als_fit_iterations"]
    p["mlflow"]["required"] = False
    return p


def stage_commands(raw: Path) -> dict[str, list[list[str]]]:
    """The DVC stages' commands as the benchmark runs them (in the size's work folder), grouped as measured:
    ``train`` is ``train@als`` alone (compared with a bare implicit fit), ``setup`` what the evaluation needs
    besides (the catalog, ``train@popularity``; not timed for the growth table), ``evaluate`` is
    ``evaluate@<model>`` for both models and ``compare``. Each group's wall times add up, its peak is the
    largest of its commands'."""
    st = REPO / "stages"
    py = sys.executable
    inputs = ["--matrices", "data/processed/matrices", "--items", "data/processed/items.parquet"]

    def stage(name: str, *args: str) -> list[str]:
        return [py, str(st / f"{name}.py"), "--params", "params.yaml", *args]

    def train(m: str) -> list[str]:
        return stage("train", "--model", m, *inputs, "--out", f"data/models/{m}", "--report", f"reports/train/{m}.json")

    def evaluate(m: str) -> list[str]:
        return stage("evaluate", "--model", m, *inputs, "--model-dir", f"data/models/{m}", "--out",
                     f"data/evaluation/{m}", "--metrics", f"reports/metrics/{m}.json",
                     "--train-report", f"reports/train/{m}.json")

    return {
        "clean": [stage("clean", "--input", str(raw), "--out", "data/interim", "--report", "reports/data_quality.json")],
        "transform": [stage("transform", "--interim", "data/interim", "--out-plays", "data/processed/plays",
                            "--out-items", "data/processed/items.parquet", "--report", "reports/transform.json")],
        "interactions": [stage("interactions", "--plays", "data/processed/plays", "--out", "data/processed/matrices",
                               "--report", "reports/interactions.json")],
        "train": [train(BENCHED_MODEL)],
        "setup": [stage("catalog", *inputs, "--out", "data/models"),
                  *(train(m) for m in BENCH_MODELS if m != BENCHED_MODEL)],
        "evaluate": [*(evaluate(m) for m in BENCH_MODELS),
                     stage("compare", "--evaluation", "data/evaluation", *inputs, "--models", "data/models",
                           "--catalog", "data/models/catalog.parquet", "--metrics", "reports/metrics.json",
                           "--details", "reports/evaluation.json", "--plots", "reports/plots",
                           "--report", "reports/report.md", "--figures", "reports/figures")],
    }
