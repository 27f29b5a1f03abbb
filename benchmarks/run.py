"""Scale and speed benchmarks of the musicrec pipeline.

    python benchmarks/run.py --sizes 1m,10m --workdir bench-data/
    python benchmarks/run.py --sizes 1m,10m,48m --workdir bench-data/      # `make bench-full`

For each size the Kaggle-schema input is generated once with
:func:`musicrec.ingest.synthetic.write_synthetic` and cached under ``<workdir>/<size>/raw``
(re-generated only when its configuration changes). Then, in the same run, every
measured step runs in its own subprocess; wall time and the peak resident memory
of the whole process tree (psutil, polled every 20 ms) are recorded:

* transform: the clean + transform stages vs a DuckDB reference doing the same job
  over the same CSVs (read, validate, drop exact duplicates, aggregate per
  (user, item), iterate the min-activity filter, write zstd Parquet); the kept
  pairs / users / items must agree. Also the in-memory pandas size of the history.
* growth: wall time and peak memory of every stage at every size, and the fitted
  growth exponent (least squares of log time on log rows) per stage.
* training: the train stage (models: popularity + als, as configured in
  params.yaml otherwise) vs a bare ``implicit`` ALS fit on the same matrix, and
  seconds per ALS iteration per million non-zeros at 64 and 128 factors.
* evaluation: musicrec's recommend + metrics for all test users vs
  ``implicit.evaluation.ranking_metrics_at_k`` on the same ALS model and split;
  ndcg, map and implicit's precision must agree.
* no-op and pull (once, on a small temporary clone): ``dvc repro`` with nothing to
  do, and ``dvc pull`` throughput from a local SeaweedFS started on free ports.

Writes ``reports/benchmarks.json`` and ``reports/benchmarks.md``.
Internal ``--worker`` modes are the subprocesses the driver measures.

This file is the driver; the sizes and plans are in ``plan.py``, measuring in
``measure.py``, the workers in ``workers.py`` and ``duckdb_reference.py``, the DVC
measurements in ``dvc_bench.py`` and the report in ``render.py`` (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from bench_env import REPO, use_checkout
from duckdb_reference import compare_duckdb
from dvc_bench import run_dvc
from measure import checked, last_json, machine, measure, worker_cmd
from plan import BENCHED_MODEL, RERUNS, SIZES, STAGES, bench_params, ensure_data, size_plan, stage_commands
from render import IMPLICIT_PUBLISHED, TARGETS, growth_exponents, projection, render_md, targets
from workers import WORKERS

use_checkout(MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1", DO_NOT_TRACK="1", PYTHONHASHSEED="0")


def work_env(work: Path) -> dict[str, str]:
    """The environment of a size's measured steps: this process's, with the work folder's sqlite MLflow store."""
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}


def work_report(work: Path, name: str) -> dict[str, Any]:
    """A stage's JSON report in the work folder (``reports/<name>.json``)."""
    return json.loads((work / "reports" / f"{name}.json").read_text())


def run_stage(stage: str, commands: list[list[str]], work: Path, env: dict[str, str]) -> dict[str, Any]:
    """One pipeline stage (its commands, from ``stage_commands``), measured: wall time (summed), peak RSS (the
    largest) and the load average around it."""
    runs = [checked(stage, measure(cmd, work, env=env)) for cmd in commands]
    return {"wall_s": round(sum(r["wall_s"] for r in runs), 3), "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "load1": [runs[0]["load1"][0], runs[-1]["load1"][-1]]}


def train_fits(work: Path) -> dict[str, float]:
    """The benchmarked model's fit seconds, from its ``train@<model>`` report."""
    return {BENCHED_MODEL: work_report(work, f"train/{BENCHED_MODEL}")["fit_seconds"]}


def run_size(workdir: Path, name: str, *, threads: int, eval_users: int, als_iterations: int,
             evaluate_stage_sizes: tuple[str, ...]) -> dict[str, Any]:
    import yaml

    plan = size_plan(name, als_iterations=als_iterations, eval_users=eval_users)
    eval_users = plan["eval_users"]
    print(f"[{name}] data", flush=True)
    data = ensure_data(workdir, name)
    raw = (workdir / name / "raw" / "synthetic").resolve()
    work = (workdir / name / "work").resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "reports").mkdir(parents=True)
    params = bench_params(name)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = work_env(work)
    py = sys.executable
    cmds = stage_commands(raw)
    out: dict[str, Any] = {"config": data["config"], "generate": data, "stages": {}, "plan": plan}
    # The MLflow store exists before the timed stages, as in a repository that has run once (mlflow.db):
    # creating a fresh sqlite store runs MLflow's schema migrations (seconds), a one-off cost reported apart.
    init = checked("MLflow store creation (once)", measure(
        [py, "-c", "import mlflow; mlflow.MlflowClient().search_experiments()"], work, env=env))
    out["mlflow_store_init_s"] = init["wall_s"]
    imp = checked("train stage imports only", measure(
        [py, "-c", "import implicit.cpu.als, musicrec.config, musicrec.pipeline.train, musicrec.pipeline.interactions, "
                   "musicrec.models.mf"], work, env={**env, "PYTHONPATH": str(REPO / "src")}))
    out["train_imports_s"] = imp["wall_s"]
    imp = checked("interactions stage imports only", measure(
        [py, "-c", "import time, musicrec.config, musicrec.io, musicrec.progress, musicrec.pipeline.interactions; "
                   "time.sleep(0.3)"], work, env={**env, "PYTHONPATH": str(REPO / "src")}))
    out["interactions_imports_rss_mb"] = imp["peak_rss_mb"]
    print(f"[{name}] stages", flush=True)
    for stage in STAGES:
        if stage == "evaluate":
            out["setup"] = run_stage("setup", cmds["setup"], work, env)  # the catalog and the baseline, not in the growth table
            if name not in evaluate_stage_sizes:
                continue
        out["stages"][stage] = run_stage(stage, cmds[stage], work, env)
    tr = work_report(work, "transform")
    inter = work_report(work, "interactions")
    out["transform_report"] = {k: tr[k] for k in ("rows_in", "pairs_in", "pairs_kept", "users_kept", "items_kept")}
    out["transform_report"]["filter_passes"] = len(tr["filter"]["passes"])
    out["transform_report"]["partitions"] = tr.get("partitions")
    out["matrix"] = {"users": inter["users"], "items": inter["items"], "train_nnz": inter["split"]["train"],
                     "test_nnz": inter["split"]["test"], "test_users": inter["split"]["test_users"]}
    out["interactions_phases"] = inter.get("phases")

    # ---- transform vs DuckDB
    print(f"[{name}] references", flush=True)
    base = checked("imports only (baseline RSS)", measure(
        [py, "-c", "import time, pandas, pyarrow.parquet, dask.dataframe, distributed, musicrec.pipeline.transform, "
                   "musicrec.pipeline.clean; time.sleep(0.3)"], work, env={**env, "PYTHONPATH": str(REPO / "src")}))
    out["baseline_rss_mb"] = base["peak_rss_mb"]
    out["transform_vs_duckdb"] = compare_duckdb(out["stages"], tr, raw, work, env, threads)
    out["pandas_history_size"] = pandas_size(raw, data["config"]["n_plays"])
    try:  # where the transform's memory goes: peak RSS per Dask compute
        if not plan["phases"]:
            raise RuntimeError("not measured at this size (PLANS)")
        out["transform_phases"] = run_transform_phases(work, env)
    except Exception as err:
        out["transform_phases"] = {"error": str(err)[-1500:]}

    out["train_report_fit_seconds"], out["training"] = run_training(work, env, cmds, out["stages"]["train"],
                                                                    train_fits(work), plan)

    # ---- evaluation
    out["evaluation"] = run_eval_comparison(work, env, eval_users)
    out["evaluation"]["evaluate_stage_s"] = out["stages"].get("evaluate", {}).get("wall_s")

    # ---- serving: model load and per-request latency (what `python -m musicrec` runs)
    out["serving"] = run_serving(work, env)
    return out


def run_training(work: Path, env: dict[str, str], cmds: dict[str, list[list[str]]], stage: dict[str, Any],
                 first_fits: dict[str, float], plan: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """The train stage (``stage``: its first run, ``first_fits``: that run's fit seconds) vs a bare implicit ALS
    process, and ALS seconds per iteration at 64 and 128 factors.

    Interleaved: bare ALS, the train stage again, bare ALS again, so that other load on the machine hits
    both alike; the best of ``plan["repeats"]`` (1 or 2) of each is compared. Returns the best stage run's
    fit seconds and the comparison.
    """
    def bare_als() -> tuple[dict[str, Any], dict[str, Any]]:
        b = checked("bare implicit ALS", measure(
            worker_cmd("als", "--matrices", "data/processed/matrices", "--params", "params.yaml"), work, env=env))
        return b, last_json(b["tail"])

    bare_runs = [bare_als()]
    stage_runs = [(stage["wall_s"], first_fits)]
    if plan["repeats"] > 1:
        again = run_stage("train (again)", cmds["train"], work, env)
        stage_runs.append((again["wall_s"], train_fits(work)))
        bare_runs.append(bare_als())
    bare, bres = min(bare_runs, key=lambda x: x[0]["wall_s"])
    train_wall, fit_seconds = min(stage_runs, key=lambda x: x[0])
    per_iter = {}
    for f in (64, 128):
        r = checked(f"ALS iterations f={f}", measure(
            worker_cmd("als-iter", "--matrices", "data/processed/matrices", "--factors", str(f),
                       "--iterations", str(plan["als_iterations"])), work, env=env))
        per_iter[str(f)] = last_json(r["tail"])
    return fit_seconds, {
        "train_stage_s": train_wall, "train_stage_peak_rss_mb": stage["peak_rss_mb"],
        "bare_als_process_s": bare["wall_s"], "bare_als_peak_rss_mb": bare["peak_rss_mb"],
        "bare_als_fit_s": bres["fit_s"], "stage_als_fit_s": fit_seconds.get("als"),
        "train_stage_runs_s": [w for w, _ in stage_runs], "bare_als_runs_s": [b["wall_s"] for b, _ in bare_runs],
        "bare_als_fit_runs_s": [x["fit_s"] for _, x in bare_runs],
        "overhead_ratio_process": round(train_wall / bare["wall_s"], 2),
        # the stage with the bare process's fit time: what the stage adds around the same fit
        "overhead_ratio_same_fit": round((train_wall - sum(fit_seconds.values()) + bres["fit_s"]) / bare["wall_s"], 2),
        "overhead_ratio_vs_fit": round(train_wall / bres["fit_s"], 2),
        "als_params": bres["params"], "nnz": bres["nnz"],
        "per_iteration": per_iter,
    }


def run_serving(work: Path, env: dict[str, str]) -> dict[str, Any]:
    try:
        checked("serving (bench_serving.py)", measure(
            [sys.executable, str(REPO / "benchmarks" / "bench_serving.py"), "--models", "data/models", "--matrices",
             "data/processed/matrices", "--model", "als", "--requests", "100", "--cli-runs", "2", "--out",
             "reports/bench_serving.json"], work, env=env))
        return work_report(work, "bench_serving")
    except Exception as err:  # serving is reported, not required for the other measures
        return {"error": str(err)[-1500:]}


def run_transform_phases(work: Path, env: dict[str, str]) -> dict[str, Any]:
    ph = checked("transform memory by phase", measure(
        worker_cmd("transform-phases", "--interim", "data/interim", "--out", str(work / "phases"),
                   "--params", "params.yaml"), work, env=env))
    return last_json(ph["tail"])


def run_eval_comparison(work: Path, env: dict[str, str], eval_users: int) -> dict[str, Any]:
    ev = checked("evaluation vs implicit", measure(
        worker_cmd("eval", "--matrices", "data/processed/matrices", "--models", "data/models",
                   "--params", "params.yaml", "--max-users", str(eval_users)), work, env=env))
    return last_json(ev["tail"])


def rerun(workdir: Path, what: str, sizes: list[str], doc: dict[str, Any], eval_users: int) -> dict[str, Any]:
    """Measure one part (a key of ``RERUNS``) again on the work folders of an earlier run.

    Same data, models and splits; only that part of ``results[size]`` is replaced,
    and the rerun is recorded in ``doc["reruns"]`` (the report lists it at the top).
    """
    for name in sizes:
        work = (workdir / name / "work").resolve()
        if not (work / "data" / "models").is_dir() or name not in doc["results"]:
            raise SystemExit(f"{work}: no outputs from an earlier run of size {name}; run the full benchmark first")
        env = work_env(work)
        r = doc["results"][name]
        print(f"[{name}] {RERUNS[what][0]} again", flush=True)
        if what == "evaluation":
            users = size_plan(name, eval_users=eval_users)["eval_users"]
            old, new = r["evaluation"], run_eval_comparison(work, env, users)
            new["evaluate_stage_s"] = old.get("evaluate_stage_s")
            new["before_rerun"] = {k: old.get(k) for k in ("musicrec_total_s", "implicit_ranking_metrics_at_k_s",
                                                            "time_ratio_musicrec_over_implicit")}
            r["evaluation"] = new
        elif what == "phases":
            r["transform_phases"] = run_transform_phases(work, env)
        elif what == "serving":
            r["serving"] = run_serving(work, env)
        else:  # transform: the clean + transform stages, then the DuckDB reference
            raw = (workdir / name / "raw" / "synthetic").resolve()
            cmds = stage_commands(raw)
            for stage in ("clean", "transform"):
                r["stages"][stage] = run_stage(stage, cmds[stage], work, env)
            tr = work_report(work, "transform")
            r["transform_vs_duckdb"] = compare_duckdb(r["stages"], tr, raw, work, env, os.cpu_count() or 2)
    if what == "transform":
        doc["growth_exponents"] = growth_exponents(doc["results"])
    doc.setdefault("reruns", []).append({"date": time.strftime("%Y-%m-%d %H:%M"), "what": what, "sizes": sizes})
    return doc


def pandas_size(raw: Path, n_rows: int, sample: int = 200_000) -> dict[str, Any]:
    """In-memory pandas size of the listening history, from a sample scaled to all rows."""
    import pandas as pd

    f = raw / "User Listening History.csv"
    df = pd.read_csv(f, nrows=sample)
    n = len(df)
    obj = df.astype({"track_id": object, "user_id": object}).memory_usage(deep=True, index=False).sum() / n * n_rows
    arrow = df.astype({"track_id": "string[pyarrow]", "user_id": "string[pyarrow]"}).memory_usage(
        deep=True, index=False).sum() / n * n_rows
    cat = df.astype({"track_id": "category", "user_id": "category"}).memory_usage(deep=True, index=False).sum()
    return {"sample_rows": n, "rows": n_rows, "csv_mb": round(f.stat().st_size / 2**20, 1),
            "object_strings_mb": round(obj / 2**20, 1), "arrow_strings_mb": round(arrow / 2**20, 1),
            "sample_categorical_mb": round(cat / 2**20, 1)}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:
        WORKERS[argv[1]](argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1m,10m", help="comma-separated subset of " + ",".join(SIZES))
    ap.add_argument("--workdir", default="bench-data", help="data cache and scratch (git-ignored)")
    ap.add_argument("--out-json", default=str(REPO / "reports" / "benchmarks.json"))
    ap.add_argument("--out-md", default=str(REPO / "reports" / "benchmarks.md"))
    ap.add_argument("--skip-dvc", action="store_true", help="skip the no-op repro / pull measurements")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="DuckDB threads")
    ap.add_argument("--eval-users", type=int, default=100_000,
                    help="test users in the evaluation comparison (seeded sample; 0 = all)")
    ap.add_argument("--als-iterations", type=int, default=3, help="iterations timed per factor count")
    ap.add_argument("--evaluate-stage-sizes", default="1m",
                    help="sizes at which the full evaluate stage (bootstrap CIs, plots) is timed; 'all' for every size")
    ap.add_argument("--rerun", choices=list(RERUNS),
                    help="only measure this part again for --sizes, on the work folders and results of the last "
                         "run (--out-json), and rewrite the reports")
    ap.add_argument("--render", action="store_true",
                    help="only recompute the targets and rewrite the Markdown from --out-json (no measuring)")
    a = ap.parse_args(argv)
    if a.render:
        doc = json.loads(Path(a.out_json).read_text())
        doc["targets"] = targets(doc["results"], doc.get("dvc"), doc["growth_exponents"])
        return write_reports(doc, a.out_json, a.out_md)
    sizes = [s.strip() for s in a.sizes.split(",") if s.strip()]
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        ap.error(f"unknown sizes {bad}; choose from {list(SIZES)}")
    workdir = Path(a.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if a.rerun:
        doc = rerun(workdir, a.rerun, sizes, json.loads(Path(a.out_json).read_text()), a.eval_users)
        doc["targets"] = targets(doc["results"], doc.get("dvc"), doc["growth_exponents"])
        return write_reports(doc, a.out_json, a.out_md)
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    def partial() -> None:  # keep what was measured so far, should a later size be interrupted
        (workdir / "partial-results.json").write_text(json.dumps(results, indent=1, default=str))

    for s in sizes:
        t_size = time.perf_counter()
        try:
            results[s] = run_size(workdir, s, threads=a.threads, eval_users=a.eval_users,
                                  als_iterations=a.als_iterations,
                                  evaluate_stage_sizes=tuple(sizes if a.evaluate_stage_sizes == "all"
                                                             else a.evaluate_stage_sizes.split(",")))
            results[s]["size_wall_s"] = round(time.perf_counter() - t_size, 1)
        except Exception as err:  # keep what was measured; say what failed
            print(f"[{s}] FAILED: {err}", flush=True)
            results[s] = {"error": str(err)[-3000:]}
        partial()
    dvc_res = None
    if not a.skip_dvc:
        try:
            dvc_res = run_dvc(workdir)
        except Exception as err:
            print(f"[dvc] FAILED: {err}", flush=True)
            dvc_res = None
    doc = {
        "date": time.strftime("%Y-%m-%d"), "sizes": sizes, "total_s": round(time.perf_counter() - t0, 1),
        "machine": machine(), "results": results, "growth_exponents": growth_exponents(results),
        "dvc": dvc_res, "implicit_published": IMPLICIT_PUBLISHED, "target_thresholds": TARGETS,
    }
    doc["targets"] = targets(results, dvc_res, doc["growth_exponents"])
    doc["projection"] = projection(results, doc["growth_exponents"])
    loads = [x for r in results.values() for st in r.get("stages", {}).values() for x in st.get("load1", [])]
    doc["load_range"] = [min(loads), max(loads)] if loads else None
    return write_reports(doc, a.out_json, a.out_md)


def write_reports(doc: dict[str, Any], out_json: str, out_md: str) -> int:
    from musicrec.io import write_json, write_text

    def plain(o: Any) -> Any:  # numpy scalars (np.bool_, np.float64 ...) as Python values
        if hasattr(o, "item"):
            return o.item()
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    doc = json.loads(json.dumps(doc, default=plain))
    write_json(out_json, doc)
    write_text(out_md, render_md(doc))
    print(f"wrote {out_json} and {out_md} ({doc['total_s']:.0f} s of measurements)")
    return 0 if all("error" not in r for r in doc["results"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
