"""Scale and speed benchmarks of the musicrec pipeline.

    python benchmarks/run.py --sizes 1m,10m --workdir bench-data/
    python benchmarks/run.py --sizes 1m,10m,48m --workdir bench-data/      # `make bench-full`

For each size the Kaggle-schema input is generated once with
:func:`musicrec.synth.write_synthetic` and cached under ``<workdir>/<size>/raw``
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
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

for _var, _val in (("OPENBLAS_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1"), ("MLFLOW_DISABLE_TELEMETRY", "true"),
                   ("DVC_NO_ANALYTICS", "1"), ("DO_NOT_TRACK", "1"), ("PYTHONHASHSEED", "0")):
    os.environ.setdefault(_var, _val)

SIZES: dict[str, dict[str, int]] = {
    "1m": {"n_tracks": 20_000, "n_users": 30_000, "n_plays": 1_000_000},
    "10m": {"n_tracks": 50_000, "n_users": 1_000_000, "n_plays": 10_000_000},
    "48m": {"n_tracks": 380_000, "n_users": 1_000_000, "n_plays": 48_000_000},
}
SEED = 42
STAGES = ("clean", "transform", "interactions", "train", "evaluate")
# implicit's published CPU timings (benchmarks/README.md of benfred/implicit: Intel i7-7820X,
# 8 cores / 16 threads; seconds per iteration, mean of 5, conjugate-gradient solver).
# nnz are the sizes of those datasets as implicit loads them (approximate).
IMPLICIT_PUBLISHED = {
    "source": "https://github.com/benfred/implicit/blob/main/benchmarks/README.md",
    "hardware": "Intel i7-7820X (8 cores, 16 threads)",
    "lastfm_360k": {"nnz_m": 17.5, "s_per_iter": {"64": 1.366, "128": 2.561}},
    "ml20m_4plus": {"nnz_m": 10.0, "s_per_iter": {"64": 2.752, "128": 4.218}},
}
TARGETS = {
    "transform_time_ratio_vs_duckdb_max": 5.0,
    "transform_memory_ratio_vs_duckdb_max": 3.0,
    "train_overhead_ratio_max": 1.5,
    "noop_repro_s_max": 3.0,
    "eval_time_ratio_vs_implicit_max": 2.0,
}


# --------------------------------------------------------------------------- measuring


def measure(cmd: list[str], cwd: Path, *, env: dict[str, str] | None = None, timeout: float = 3600,
            poll_s: float = 0.02) -> dict[str, Any]:
    """Run ``cmd``; return wall seconds, peak RSS (MB) of the process tree, exit code and output tail."""
    import psutil

    log = tempfile.TemporaryFile(mode="w+")
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env or dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                            text=True)
    peak = 0
    try:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            rss = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                procs = []
            for p in procs:
                try:
                    rss += p.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            peak = max(peak, rss)
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                break
            time.sleep(poll_s)
    finally:
        rc = proc.wait()
    wall = time.perf_counter() - t0
    log.seek(0)
    out = log.read()
    log.close()
    return {"wall_s": round(wall, 3), "peak_rss_mb": round(peak / 2**20, 1), "rc": rc, "tail": out[-3000:],
            "load1": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def checked(name: str, res: dict[str, Any]) -> dict[str, Any]:
    if res["rc"] != 0:
        raise RuntimeError(f"{name} failed (exit {res['rc']}):\n{res['tail']}")
    print(f"  {name:28s} {res['wall_s']:9.2f} s  {res['peak_rss_mb']:9.1f} MB  (load {res['load1']})", flush=True)
    return res


def worker_cmd(mode: str, *args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--worker", mode, *args]


def last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON result in worker output:\n{text[-2000:]}")


# --------------------------------------------------------------------------- data


def size_config(name: str) -> dict[str, int]:
    c = dict(SIZES[name])
    c.update(n_genres=16, n_artists=max(1, c["n_tracks"] // 5), seed=SEED)
    return c


def ensure_data(workdir: Path, name: str) -> dict[str, Any]:
    """Generate (or reuse) the Kaggle-schema CSVs for one size."""
    from musicrec.synth import write_synthetic

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
    summary = write_synthetic(raw / "synthetic", chunk_rows=1_000_000, **cfg)
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
    p["data"]["chunk_rows"] = 1_000_000
    # ALS is what is benchmarked; itemknn/others are timed by their own tests. popularity must stay.
    p["train"]["models"] = ["popularity", "als"]
    p["mlflow"]["required"] = False
    return p


# --------------------------------------------------------------------------- per-size run


def run_size(workdir: Path, name: str, *, threads: int, eval_users: int, als_iterations: int,
             evaluate_stage_sizes: tuple[str, ...]) -> dict[str, Any]:
    import yaml

    print(f"[{name}] data", flush=True)
    data = ensure_data(workdir, name)
    raw = (workdir / name / "raw" / "synthetic").resolve()
    work = (workdir / name / "work").resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "reports").mkdir(parents=True)
    params = bench_params(name)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    st = REPO / "stages"
    py = sys.executable
    cmds = {
        "clean": [py, str(st / "clean.py"), "--params", "params.yaml", "--input", str(raw), "--out", "data/interim",
                  "--report", "reports/data_quality.json"],
        "transform": [py, str(st / "transform.py"), "--params", "params.yaml", "--interim", "data/interim",
                      "--out-plays", "data/processed/plays", "--out-items", "data/processed/items.parquet",
                      "--report", "reports/transform.json"],
        "interactions": [py, str(st / "interactions.py"), "--params", "params.yaml", "--plays", "data/processed/plays",
                         "--out", "data/processed/matrices", "--report", "reports/interactions.json"],
        "train": [py, str(st / "train.py"), "--params", "params.yaml", "--matrices", "data/processed/matrices",
                  "--items", "data/processed/items.parquet", "--out", "data/models", "--report", "reports/train.json",
                  "--run-id-file", "reports/mlflow_run_id.txt"],
        "evaluate": [py, str(st / "evaluate.py"), "--params", "params.yaml", "--matrices", "data/processed/matrices",
                     "--items", "data/processed/items.parquet", "--models", "data/models",
                     "--run-id-file", "reports/mlflow_run_id.txt", "--metrics", "reports/metrics.json",
                     "--details", "reports/evaluation.json", "--plots", "reports/plots", "--report",
                     "reports/report.md", "--figures", "reports/figures"],
    }
    out: dict[str, Any] = {"config": data["config"], "generate": data, "stages": {}}
    print(f"[{name}] stages", flush=True)
    for stage in STAGES:
        if stage == "evaluate" and name not in evaluate_stage_sizes:
            continue
        res = checked(stage, measure(cmds[stage], work, env=env))
        out["stages"][stage] = {"wall_s": res["wall_s"], "peak_rss_mb": res["peak_rss_mb"], "load1": res["load1"]}
    tr = json.loads((work / "reports" / "transform.json").read_text())
    inter = json.loads((work / "reports" / "interactions.json").read_text())
    train_rep = json.loads((work / "reports" / "train.json").read_text())
    out["transform_report"] = {k: tr[k] for k in ("rows_in", "pairs_in", "pairs_kept", "users_kept", "items_kept")}
    out["transform_report"]["filter_passes"] = len(tr["filter"]["passes"])
    out["matrix"] = {"users": inter["users"], "items": inter["items"], "train_nnz": inter["split"]["train"],
                     "test_nnz": inter["split"]["test"], "test_users": inter["split"]["test_users"]}
    out["train_report_fit_seconds"] = train_rep["fit_seconds"]

    # ---- transform vs DuckDB
    print(f"[{name}] references", flush=True)
    duck = checked("duckdb reference", measure(
        worker_cmd("duckdb", "--raw", str(raw), "--out", str(work / "duckdb"), "--params", "params.yaml",
                   "--threads", str(threads)), work, env=env))
    dres = last_json(duck["tail"])
    ours_t = out["stages"]["clean"]["wall_s"] + out["stages"]["transform"]["wall_s"]
    ours_m = max(out["stages"]["clean"]["peak_rss_mb"], out["stages"]["transform"]["peak_rss_mb"])
    agree = all(dres[k] == tr[k] for k in ("pairs_kept", "users_kept", "items_kept", "plays_kept"))
    out["transform_vs_duckdb"] = {
        "musicrec_clean_plus_transform_s": round(ours_t, 3), "musicrec_peak_rss_mb": ours_m,
        "duckdb_s": duck["wall_s"], "duckdb_peak_rss_mb": duck["peak_rss_mb"], "duckdb_inner": dres,
        "time_ratio": round(ours_t / duck["wall_s"], 2), "memory_ratio": round(ours_m / duck["peak_rss_mb"], 2),
        "same_result": agree,
    }
    if not agree:
        print(f"  WARNING: DuckDB result differs: {dres} vs {tr}", flush=True)
    out["pandas_history_size"] = pandas_size(raw, data["config"]["n_plays"])

    # ---- training
    bare = checked("bare implicit ALS", measure(
        worker_cmd("als", "--matrices", "data/processed/matrices", "--params", "params.yaml"), work, env=env))
    bres = last_json(bare["tail"])
    train_wall = out["stages"]["train"]["wall_s"]
    per_iter = {}
    for f in (64, 128):
        r = checked(f"ALS iterations f={f}", measure(
            worker_cmd("als-iter", "--matrices", "data/processed/matrices", "--factors", str(f),
                       "--iterations", str(als_iterations)), work, env=env))
        per_iter[str(f)] = last_json(r["tail"])
    out["training"] = {
        "train_stage_s": train_wall, "train_stage_peak_rss_mb": out["stages"]["train"]["peak_rss_mb"],
        "bare_als_process_s": bare["wall_s"], "bare_als_peak_rss_mb": bare["peak_rss_mb"],
        "bare_als_fit_s": bres["fit_s"], "stage_als_fit_s": train_rep["fit_seconds"].get("als"),
        "overhead_ratio_process": round(train_wall / bare["wall_s"], 2),
        "overhead_ratio_vs_fit": round(train_wall / bres["fit_s"], 2),
        "als_params": bres["params"], "nnz": bres["nnz"],
        "per_iteration": per_iter,
    }

    # ---- evaluation
    ev = checked("evaluation vs implicit", measure(
        worker_cmd("eval", "--matrices", "data/processed/matrices", "--models", "data/models",
                   "--params", "params.yaml", "--max-users", str(eval_users)), work, env=env))
    out["evaluation"] = last_json(ev["tail"])
    out["evaluation"]["evaluate_stage_s"] = out["stages"].get("evaluate", {}).get("wall_s")
    return out


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


# --------------------------------------------------------------------------- no-op repro and dvc pull


def run_dvc(workdir: Path) -> dict[str, Any]:
    """``dvc repro`` no-op time and ``dvc pull`` throughput from a local SeaweedFS (small clone)."""
    import secrets

    from musicrec import services as svc
    from musicrec.testing import SMALL_PARAMS, dvc, make_clone, pipeline_env, run

    base = (workdir / "dvc").resolve()
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    params = json.loads(json.dumps(SMALL_PARAMS))
    params["mlflow"] = {"required": False}
    clone = make_clone(base / "a", params)
    env = pipeline_env({"MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}"})
    res: dict[str, Any] = {}
    print("[dvc] full repro of the small clone", flush=True)
    t0 = time.perf_counter()
    dvc(["repro"], clone, env=env, timeout=1800)
    res["small_repro_s"] = round(time.perf_counter() - t0, 2)
    noop = [checked("dvc repro (no-op)", measure([str(Path(sys.executable).parent / "dvc"), "repro"], clone,
                                                   env=env)) for _ in range(3)]
    res["noop_repro_s"] = [r["wall_s"] for r in noop]
    res["noop_repro_best_s"] = min(res["noop_repro_s"])
    res["noop_said_up_to_date"] = all("up to date" in r["tail"] or "didn't change" in r["tail"] for r in noop)
    st = checked("dvc status", measure([str(Path(sys.executable).parent / "dvc"), "status"], clone, env=env))
    res["dvc_status_s"] = st["wall_s"]
    imp = checked("python -c 'import dvc.cli'", measure([sys.executable, "-c", "import dvc.cli"], clone, env=env))
    res["import_dvc_s"] = imp["wall_s"]

    # a big file next to the pipeline outputs, for bulk throughput
    big_src = None
    for name in ("10m", "1m"):
        cand = workdir / name / "raw" / "synthetic" / "User Listening History.csv"
        if cand.exists():
            big_src = cand
            break
    ports = _free_ports(9)
    cfg = svc.ServiceConfig(
        state_dir=base / "services", s3_port=ports[0], master_port=ports[1], volume_port=ports[2],
        filer_port=ports[3], master_grpc_port=ports[4], volume_grpc_port=ports[5], filer_grpc_port=ports[6],
        s3_grpc_port=ports[7], mlflow_port=ports[8], startup_timeout_s=90)
    creds = svc.Credentials("bench" + secrets.token_hex(6), secrets.token_urlsafe(24))
    print("[dvc] SeaweedFS + push/pull", flush=True)
    svc.start_seaweedfs(cfg, creds)
    try:
        if big_src is not None:
            (clone / "data" / "bulk").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(big_src, clone / "data" / "bulk" / "history.csv")
            dvc(["add", "data/bulk/history.csv"], clone, env=env)
            run(["git", "add", "-A"], clone, env=env)
            run(["git", "commit", "-qm", "bulk file"], clone, env=env)
        run(["git", "add", "-A"], clone, env=env, check=False)
        run(["git", "commit", "-qm", "repro outputs"], clone, env=env, check=False)
        svc.write_dvc_config_local(clone, cfg.s3_endpoint, creds)
        cache_mb = _dir_mb(clone / ".dvc" / "cache")
        push = checked("dvc push", measure([str(Path(sys.executable).parent / "dvc"), "push", "-j", "8"], clone,
                                           env=env))
        second = base / "b"
        run(["git", "clone", "-q", str(clone), str(second)], base, env=env)
        svc.write_dvc_config_local(second, cfg.s3_endpoint, creds)
        pulls = {}
        if big_src is not None:
            r = checked("dvc pull (one big file)", measure([str(Path(sys.executable).parent / "dvc"), "pull",
                                                            "data/bulk/history.csv.dvc"], second, env=env))
            mb = (second / "data" / "bulk" / "history.csv").stat().st_size / 2**20
            pulls["big_file"] = {"mb": round(mb, 1), "wall_s": r["wall_s"], "mb_per_s": round(mb / r["wall_s"], 1)}
        before = _dir_mb(second / ".dvc" / "cache")
        r = checked("dvc pull (pipeline outs)", measure([str(Path(sys.executable).parent / "dvc"), "pull"], second,
                                                        env=env))
        mb = _dir_mb(second / ".dvc" / "cache") - before
        nfiles = sum(1 for p in (second / ".dvc" / "cache").rglob("*") if p.is_file())
        pulls["pipeline_outs"] = {"mb": round(mb, 1), "wall_s": r["wall_s"], "mb_per_s": round(mb / r["wall_s"], 2),
                                  "cache_files_total": nfiles}
        res.update({"cache_mb": round(cache_mb, 1), "push_s": push["wall_s"],
                    "push_mb_per_s": round(cache_mb / push["wall_s"], 1), "pull": pulls})
    finally:
        svc.stop_service(cfg, "seaweedfs")
    return res


def _free_ports(n: int) -> list[int]:
    import socket

    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _dir_mb(d: Path) -> float:
    return sum(p.stat().st_size for p in Path(d).rglob("*") if p.is_file()) / 2**20 if Path(d).exists() else 0.0


# --------------------------------------------------------------------------- workers (run as subprocesses)


def worker_duckdb(argv: list[str]) -> None:
    """Reference: the clean + transform job in DuckDB SQL, over the same CSVs."""
    import duckdb

    from musicrec.config import load_params

    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    p = load_params(a.params)
    mu, mi, maxpc = p.transform.min_user_items, p.transform.min_item_users, p.clean.max_playcount
    raw, out = Path(a.raw), Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads={a.threads}; SET preserve_insertion_order=false;")
    hist = str(raw / "User Listening History.csv").replace("'", "''")
    info = str(raw / "Music Info.csv").replace("'", "''")
    ident = r"'^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$'"
    con.execute(f"""CREATE TABLE h AS SELECT * FROM read_csv('{hist}', header=true, all_varchar=true)""")
    con.execute(f"""CREATE TABLE m AS SELECT track_id AS item_id FROM read_csv('{info}', header=true, all_varchar=true)""")
    valid = (f"regexp_matches(track_id, {ident}) AND regexp_matches(user_id, {ident}) "
             f"AND TRY_CAST(playcount AS BIGINT) BETWEEN 1 AND {maxpc}")
    rows, invalid = con.execute(f"SELECT count(*), count(*) FILTER (WHERE NOT coalesce({valid}, false)) FROM h").fetchone()
    con.execute(f"""CREATE TABLE pairs AS
        SELECT user_id, track_id AS item_id, sum(pc)::BIGINT AS playcount FROM (
          SELECT DISTINCT user_id, track_id, CAST(playcount AS BIGINT) AS pc FROM h WHERE coalesce({valid}, false))
        GROUP BY ALL""")
    con.execute("DROP TABLE h")
    pairs_in, dups = con.execute("SELECT count(*), 0 FROM pairs").fetchone()
    passes = 0
    while True:
        passes += 1
        n_users, n_items, n_pairs = con.execute(
            "SELECT count(DISTINCT user_id), count(DISTINCT item_id), count(*) FROM pairs").fetchone()
        con.execute(f"""CREATE OR REPLACE TABLE pairs AS SELECT * FROM pairs
            WHERE user_id IN (SELECT user_id FROM pairs GROUP BY 1 HAVING count(*) >= {mu})
              AND item_id IN (SELECT item_id FROM pairs GROUP BY 1 HAVING count(*) >= {mi})""")
        if con.execute("SELECT count(*) FROM pairs").fetchone()[0] == n_pairs:
            break
        if passes >= p.transform.max_passes:
            raise SystemExit("duckdb reference: filter did not converge")
    plays_dir = str(out / "plays").replace("'", "''")
    con.execute(f"""COPY (SELECT user_id, item_id, playcount, NULL::TIMESTAMPTZ AS first_ts, NULL::TIMESTAMPTZ AS last_ts
        FROM pairs ORDER BY user_id, item_id) TO '{plays_dir}.parquet' (FORMAT parquet, COMPRESSION zstd)""")
    items_path = str(out / "items.parquet").replace("'", "''")
    con.execute(f"""COPY (SELECT * FROM m WHERE item_id IN (SELECT item_id FROM pairs) ORDER BY item_id)
        TO '{items_path}' (FORMAT parquet, COMPRESSION zstd)""")
    pk, uk, ik, plays = con.execute(
        "SELECT count(*), count(DISTINCT user_id), count(DISTINCT item_id), sum(playcount) FROM pairs").fetchone()
    print(json.dumps({"rows_in": rows, "invalid": invalid, "pairs_in": pairs_in, "pairs_kept": pk, "users_kept": uk,
                      "items_kept": ik, "plays_kept": int(plays), "passes": passes,
                      "inner_s": round(time.perf_counter() - t0, 3)}))


def _als_params(params_path: str) -> dict[str, Any]:
    from musicrec.config import load_params

    p = load_params(params_path)
    return {**p.train.als.model_dump(), "seed": p.seed}


def worker_als(argv: list[str]) -> None:
    """A bare implicit ALS fit on the train stage's matrix with the train stage's ALS params."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--matrices", required=True)
    ap.add_argument("--params", required=True)
    a = ap.parse_args(argv)
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares

    pa = _als_params(a.params)
    X = sp.load_npz(Path(a.matrices) / "train_weighted.npz").tocsr()
    m = AlternatingLeastSquares(factors=pa["factors"], regularization=pa["regularization"], alpha=pa["alpha"],
                                iterations=pa["iterations"], random_state=pa["seed"])
    t0 = time.perf_counter()
    m.fit(X, show_progress=False)
    print(json.dumps({"fit_s": round(time.perf_counter() - t0, 3), "nnz": int(X.nnz), "params": pa}))


def worker_als_iter(argv: list[str]) -> None:
    """Seconds per ALS iteration per million non-zeros (implicit's own per-iteration callback)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--matrices", required=True)
    ap.add_argument("--factors", type=int, required=True)
    ap.add_argument("--iterations", type=int, default=5)
    a = ap.parse_args(argv)
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares

    X = sp.load_npz(Path(a.matrices) / "train_weighted.npz").tocsr()
    times: list[float] = []
    last = [time.perf_counter()]

    def cb(iteration, elapsed, *rest):  # noqa: ANN001
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    m = AlternatingLeastSquares(factors=a.factors, iterations=a.iterations, random_state=SEED)
    last[0] = time.perf_counter()
    m.fit(X, show_progress=False, callback=cb)
    per = sorted(times)[len(times) // 2] if times else float("nan")
    print(json.dumps({"factors": a.factors, "iterations": a.iterations, "nnz": int(X.nnz),
                      "median_s_per_iter": round(per, 4), "s_per_iter_per_m_nnz": round(per / (X.nnz / 1e6), 4),
                      "threads": os.cpu_count()}))


def worker_eval(argv: list[str]) -> None:
    """musicrec's evaluation core vs implicit.evaluation.ranking_metrics_at_k on the same model and split."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--matrices", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--max-users", type=int, default=0, help="evaluate a seeded sample of test users (0 = all)")
    a = ap.parse_args(argv)
    import numpy as np
    import scipy.sparse as sp
    from implicit.evaluation import ranking_metrics_at_k

    from musicrec import metrics as M
    from musicrec.assessment import recommend_batched
    from musicrec.config import load_params
    from musicrec.interactions import load_interactions
    from musicrec.models import load_model

    p = load_params(a.params)
    ks = sorted(set(p.evaluate.k) | {a.k})
    inter = load_interactions(a.matrices)
    model = load_model(Path(a.models) / "als")
    query = inter.query_rows()
    test = inter.test.astype(np.float32).tocsr()
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    all_test_users = int(users.size)
    if a.max_users and users.size > a.max_users:
        users = np.sort(np.random.default_rng(SEED).choice(users, a.max_users, replace=False))
        keep = np.zeros(test.shape[0], dtype=bool)
        keep[users] = True
        test = (sp.diags(keep.astype(np.float32)) @ test).tocsr()
        test.eliminate_zeros()

    t = time.perf_counter()
    recs_u = recommend_batched(model, users, query, max(ks))
    t_rec = time.perf_counter() - t
    t = time.perf_counter()
    ours = M.accuracy_metrics(recs_u, test[users], ks)
    t_met = time.perf_counter() - t
    t = time.perf_counter()
    ours_k = M.accuracy_metrics(recs_u[:, : a.k], test[users], [a.k])
    t_met_k = time.perf_counter() - t

    imodel = model._model  # the implicit ALS object holding the same factors
    t = time.perf_counter()
    theirs = ranking_metrics_at_k(imodel, query, test, K=a.k, show_progress=False)
    t_imp = time.perf_counter() - t

    hits_k = M.hits_matrix(recs_u[:, : a.k], test[users]).sum(axis=1)
    nrel = M.n_relevant(test[users])
    check = {
        "ndcg": (float(np.nanmean(ours_k[f"ndcg@{a.k}"])), float(theirs["ndcg"])),
        "map": (float(np.nanmean(ours_k[f"map@{a.k}"])), float(theirs["map"])),
        "precision_micro_min_k_r": (M.implicit_precision(hits_k, nrel, a.k), float(theirs["precision"])),
    }
    cross = {n: {"musicrec": round(x, 8), "implicit": round(y, 8), "abs_diff": float(abs(x - y)),
                 "agree": bool(abs(x - y) <= 1e-4 * max(1.0, abs(y)))} for n, (x, y) in check.items()}
    print(json.dumps({
        "test_users": int(users.size), "all_test_users": all_test_users, "ks": ks, "k_compared": a.k,
        "musicrec_recommend_s": round(t_rec, 3), "musicrec_metrics_all_ks_s": round(t_met, 3),
        "musicrec_metrics_single_k_s": round(t_met_k, 3), "musicrec_total_s": round(t_rec + t_met, 3),
        "implicit_ranking_metrics_at_k_s": round(t_imp, 3),
        "time_ratio_musicrec_over_implicit": round((t_rec + t_met) / t_imp, 3),
        "cross_check": cross, "all_agree": all(v["agree"] for v in cross.values()),
    }))


WORKERS = {"duckdb": worker_duckdb, "als": worker_als, "als-iter": worker_als_iter, "eval": worker_eval}


# --------------------------------------------------------------------------- report


def growth_exponents(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    import numpy as np

    names = [n for n in results if "stages" in results[n]]
    out: dict[str, dict[str, float | None]] = {}
    if len(names) < 2:
        return out
    rows = np.log([SIZES[n]["n_plays"] for n in names])
    for stage in STAGES:
        e: dict[str, float | None] = {}
        have = [i for i, n in enumerate(names) if stage in results[n]["stages"]]
        if len(have) < 2:
            continue
        for key in ("wall_s", "peak_rss_mb"):
            y = np.log([max(results[names[i]]["stages"][stage][key], 1e-3) for i in have])
            e[key] = round(float(np.polyfit(rows[have], y, 1)[0]), 2)
        out[stage] = e
    return out


def machine() -> dict[str, Any]:
    import importlib.metadata as md

    import psutil

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libs = {}
    for pkg in ("numpy", "pandas", "pyarrow", "scipy", "dask", "distributed", "implicit", "duckdb", "dvc", "mlflow",
                "s3fs", "psutil"):
        try:
            libs[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            libs[pkg] = None
    return {"cpu": cpu, "cores_logical": os.cpu_count(), "cores_physical": psutil.cpu_count(logical=False),
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1), "os": platform.platform(),
            "python": platform.python_version(), "libraries": libs,
            "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}


def targets(results: dict[str, Any], dvc_res: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []

    def add(name: str, target: str, value: Any, met: bool | None, why: str) -> None:
        out.append({"target": name, "goal": target, "measured": value, "met": met, "reason": why})

    for n, r in results.items():
        if "stages" not in r:
            continue
        tv = r["transform_vs_duckdb"]
        add(f"[{n}] clean+transform time vs DuckDB", f"<= {TARGETS['transform_time_ratio_vs_duckdb_max']}x",
            tv["time_ratio"], tv["time_ratio"] <= TARGETS["transform_time_ratio_vs_duckdb_max"],
            f"ours {tv['musicrec_clean_plus_transform_s']} s (clean {r['stages']['clean']['wall_s']} s + transform "
            f"{r['stages']['transform']['wall_s']} s incl. Dask shuffle + {r['transform_report']['filter_passes']} "
            f"filter passes over spilled Parquet) vs DuckDB {tv['duckdb_s']} s in memory")
        add(f"[{n}] clean+transform peak memory vs DuckDB", f"<= {TARGETS['transform_memory_ratio_vs_duckdb_max']}x",
            tv["memory_ratio"], tv["memory_ratio"] <= TARGETS["transform_memory_ratio_vs_duckdb_max"],
            f"ours {tv['musicrec_peak_rss_mb']} MB vs DuckDB {tv['duckdb_peak_rss_mb']} MB")
        add(f"[{n}] same transform result as DuckDB", "identical counts", tv["same_result"], tv["same_result"],
            "pairs, users, items and plays kept compared")
        t = r["training"]
        add(f"[{n}] train stage overhead vs bare ALS process", f"<= {TARGETS['train_overhead_ratio_max']}x",
            t["overhead_ratio_process"], t["overhead_ratio_process"] <= TARGETS["train_overhead_ratio_max"],
            f"stage {t['train_stage_s']} s (popularity + ALS fit {t['stage_als_fit_s']} s, saving, MLflow sqlite "
            f"logging) vs bare process {t['bare_als_process_s']} s (fit {t['bare_als_fit_s']} s)")
        e = r["evaluation"]
        add(f"[{n}] evaluation time vs implicit ranking_metrics_at_k", f"<= {TARGETS['eval_time_ratio_vs_implicit_max']}x",
            e["time_ratio_musicrec_over_implicit"],
            e["time_ratio_musicrec_over_implicit"] <= TARGETS["eval_time_ratio_vs_implicit_max"],
            f"ours: top-{max(e['ks'])} + 5 metrics at {len(e['ks'])} cut-offs; implicit: top-{e['k_compared']} "
            f"at one cut-off")
        add(f"[{n}] evaluation numbers equal implicit's", "ndcg, map, precision agree", e["all_agree"], e["all_agree"],
            "; ".join(f"{k} {v['musicrec']} vs {v['implicit']}" for k, v in e["cross_check"].items()))
    if dvc_res:
        best = dvc_res["noop_repro_best_s"]
        add("no-op dvc repro", f"< {TARGETS['noop_repro_s_max']} s", best, best < TARGETS["noop_repro_s_max"],
            f"runs {dvc_res['noop_repro_s']}; `import dvc.cli` alone takes {dvc_res['import_dvc_s']} s, "
            f"`dvc status` {dvc_res['dvc_status_s']} s")
    return out


def render_md(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    L = ["# musicrec benchmarks", "",
         f"Generated by `python benchmarks/run.py --sizes {','.join(doc['sizes'])}` on {doc['date']} "
         f"(total {doc['total_s']:.0f} s). Every step ran in its own subprocess; memory is the peak RSS of the "
         "process tree (psutil, 20 ms polling).", "",
         "## Machine", "",
         "| | |", "|---|---|",
         f"| CPU | {m['cpu']} |", f"| cores | {m['cores_logical']} logical / {m['cores_physical']} physical |",
         f"| RAM | {m['ram_gb']} GB |", f"| OS | {m['os']} |", f"| Python | {m['python']} |",
         "| libraries | " + ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v) + " |",
         f"| BLAS threads | OPENBLAS_NUM_THREADS={m['env']['OPENBLAS_NUM_THREADS']} (implicit uses OpenMP on all cores) |",
         f"| 1-min load average seen at the start/end of the measured steps | {doc.get('load_range')} |",
         ""]
    L += ["## Targets", "", "| target | goal | measured | met | reason |", "|---|---|---|---|---|"]
    for t in doc["targets"]:
        L.append(f"| {t['target']} | {t['goal']} | {t['measured']} | {'yes' if t['met'] else 'NO'} | {t['reason']} |")
    res = doc["results"]
    names = [n for n in doc["sizes"] if "stages" in res.get(n, {})]
    L += ["", "## Growth: wall time and peak memory per stage", "",
          "| stage | " + " | ".join(f"{n} s | {n} MB" for n in names) + " | exponent time | exponent memory |",
          "|---|" + "---|---|" * len(names) + "---|---|"]
    for stage in STAGES:
        g = doc["growth_exponents"].get(stage, {})
        cells = " | ".join(f"{res[n]['stages'][stage]['wall_s']:.1f} | {res[n]['stages'][stage]['peak_rss_mb']:.0f}"
                           if stage in res[n]["stages"] else "not run | -" for n in names)
        L.append(f"| {stage} | {cells} | {g.get('wall_s', '-')} | {g.get('peak_rss_mb', '-')} |")
    L += ["", "Exponent: slope of log(value) on log(rows) across the sizes run (1.0 = linear).", ""]
    for n in names:
        r = res[n]
        c, tr, mx = r["config"], r["transform_report"], r["matrix"]
        tv, ps, t, e = r["transform_vs_duckdb"], r["pandas_history_size"], r["training"], r["evaluation"]
        L += [f"## {n}: {c['n_plays']:,} rows, {c['n_users']:,} users, {c['n_tracks']:,} tracks", "",
              f"Kept {tr['pairs_kept']:,} pairs, {tr['users_kept']:,} users, {tr['items_kept']:,} items after "
              f"{tr['filter_passes']} filter passes; train matrix {mx['users']:,} x {mx['items']:,}, "
              f"{mx['train_nnz']:,} non-zeros; {mx['test_users']:,} test users.", "",
              "| measure | musicrec | reference | ratio |", "|---|---|---|---|",
              f"| clean + transform vs DuckDB: time | {tv['musicrec_clean_plus_transform_s']:.1f} s | "
              f"{tv['duckdb_s']:.1f} s | {tv['time_ratio']} |",
              f"| clean + transform vs DuckDB: peak memory | {tv['musicrec_peak_rss_mb']:.0f} MB | "
              f"{tv['duckdb_peak_rss_mb']:.0f} MB | {tv['memory_ratio']} |",
              f"| train stage vs bare implicit ALS process | {t['train_stage_s']:.1f} s | {t['bare_als_process_s']:.1f} s "
              f"(fit {t['bare_als_fit_s']:.1f} s) | {t['overhead_ratio_process']} |",
              f"| evaluation, {e['test_users']:,} of {e['all_test_users']:,} test users vs ranking_metrics_at_k | {e['musicrec_total_s']:.2f} s "
              f"(recommend {e['musicrec_recommend_s']:.2f} + metrics {e['musicrec_metrics_all_ks_s']:.2f}) | "
              f"{e['implicit_ranking_metrics_at_k_s']:.2f} s | {e['time_ratio_musicrec_over_implicit']} |",
              "",
              f"Same transform result as DuckDB: {tv['same_result']}. Evaluation numbers agree with implicit: "
              f"{e['all_agree']} (" + "; ".join(f"{k}: {v['musicrec']} vs {v['implicit']}"
                                                for k, v in e["cross_check"].items()) + ").", "",
              f"History in pandas (estimated from {ps['sample_rows']:,} rows): {ps['object_strings_mb']:.0f} MB with "
              f"object strings, {ps['arrow_strings_mb']:.0f} MB with Arrow strings (CSV on disk "
              f"{ps['csv_mb']:.0f} MB).", "",
              "ALS seconds per iteration (median, all cores) per million non-zeros: "
              + ", ".join(f"{f} factors {v['median_s_per_iter']} s/iter = {v['s_per_iter_per_m_nnz']} s/iter/M nnz"
                          for f, v in t["per_iteration"].items()) + ".", ""]
    ip = IMPLICIT_PUBLISHED
    L += ["## ALS speed vs implicit's published figures", "",
          f"implicit's benchmarks page ({ip['source']}) reports CPU seconds per iteration on {ip['hardware']}:",
          "", "| dataset | nnz (M) | 64 factors s/iter/M nnz | 128 factors s/iter/M nnz |", "|---|---|---|---|"]
    for ds in ("lastfm_360k", "ml20m_4plus"):
        d = ip[ds]
        L.append(f"| {ds} (published) | {d['nnz_m']} | {d['s_per_iter']['64'] / d['nnz_m']:.3f} | "
                 f"{d['s_per_iter']['128'] / d['nnz_m']:.3f} |")
    for n in names:
        pi = res[n]["training"]["per_iteration"]
        L.append(f"| musicrec {n} (this machine) | {res[n]['training']['nnz'] / 1e6:.2f} | "
                 f"{pi['64']['s_per_iter_per_m_nnz']:.3f} | {pi['128']['s_per_iter_per_m_nnz']:.3f} |")
    L += ["", "Not a like-for-like comparison: different CPUs and core counts (here "
          f"{m['cores_logical']} logical cores vs 16 threads there), different implicit versions, and per-nnz cost "
          "also depends on the number of users + items (the per-row solve is O(factors^3) with the Cholesky "
          "solver, O(cg_steps * factors^2) with CG). It shows whether our fits run in the expected range, nothing more.",
          ""]
    d = doc.get("dvc")
    if d:
        L += ["## DVC: no-op repro and pull from local SeaweedFS", "",
              f"Small clone (SMALL_PARAMS, full repro {d['small_repro_s']} s). `dvc repro` with nothing to do: "
              f"{d['noop_repro_s']} s (best {d['noop_repro_best_s']} s; `import dvc.cli` alone {d['import_dvc_s']} s, "
              f"`dvc status` {d['dvc_status_s']} s).", "",
              f"Push of {d['cache_mb']} MB of cache: {d['push_s']} s ({d['push_mb_per_s']} MB/s)."]
        for k, v in d["pull"].items():
            L.append(f"Pull {k}: {v['mb']} MB in {v['wall_s']} s = {v['mb_per_s']} MB/s.")
        L.append("")
    return "\n".join(L)


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
    a = ap.parse_args(argv)
    sizes = [s.strip() for s in a.sizes.split(",") if s.strip()]
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        ap.error(f"unknown sizes {bad}; choose from {list(SIZES)}")
    workdir = Path(a.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    def partial() -> None:  # keep what was measured so far, should a later size be interrupted
        (workdir / "partial-results.json").write_text(json.dumps(results, indent=1, default=str))

    for s in sizes:
        try:
            results[s] = run_size(workdir, s, threads=a.threads, eval_users=a.eval_users,
                                  als_iterations=a.als_iterations,
                                  evaluate_stage_sizes=tuple(sizes if a.evaluate_stage_sizes == "all"
                                                             else a.evaluate_stage_sizes.split(",")))
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
    doc["targets"] = targets(results, dvc_res)
    loads = [x for r in results.values() for st in r.get("stages", {}).values() for x in st.get("load1", [])]
    doc["load_range"] = [min(loads), max(loads)] if loads else None
    from musicrec.io import write_json, write_text

    write_json(a.out_json, doc)
    write_text(a.out_md, render_md(doc))
    print(f"wrote {a.out_json} and {a.out_md} in {doc['total_s']:.0f} s")
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
