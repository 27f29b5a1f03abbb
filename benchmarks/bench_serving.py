"""Benchmark: serving latency of ``musicrec.serving.recommender`` (what ``python -m musicrec`` runs).

For each model in the models folder (or ``--model``):

* ``load_s``: ``ModelServer.load`` (reads and verifies the model files, the
  catalogue and the id maps; imports already done) and, separately, ``history_load_s`` (the user
  matrices, read on the first ``recommend --user``);
* per-request latency (median, p95, max, in milliseconds) over ``--requests``
  requests with seeded random users / tracks, with the explanations (as the CLI
  prints them) and without them (``explain=False``): ``recommend --user``,
  ``recommend --like`` (3 liked tracks) and ``similar``.

Plus ``cli_s``: wall time of whole ``python -m musicrec similar`` processes
(interpreter start, imports, load, one request), median of ``--cli-runs``.
Writes ``reports/bench_serving.json``.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_serving.py --models data/models \\
        --matrices data/processed/matrices
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench_env import REPO, use_checkout

use_checkout()

import numpy as np  # noqa: E402

from musicrec.io import write_json  # noqa: E402
from musicrec.serving.artifacts import available_models, default_model  # noqa: E402
from musicrec.serving.recommender import ModelServer  # noqa: E402


def stats_ms(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1000
    return {"median_ms": round(float(np.median(a)), 3), "p95_ms": round(float(np.percentile(a, 95)), 3),
            "max_ms": round(float(a.max()), 3), "n": len(a)}


def timed(fn, args_list) -> list[float]:
    out = []
    for args in args_list:
        t0 = time.perf_counter()
        fn(*args)
        out.append(time.perf_counter() - t0)
    return out


def bench_model(models: Path, matrices: Path, name: str, requests: int, n: int, seed: int) -> dict:
    t0 = time.perf_counter()
    rec = ModelServer.load(models, name, matrices_dir=matrices)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    hist = rec.history()
    history_s = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    active = np.flatnonzero(np.diff(hist.indptr) > 0)
    users = rec.user_ids[rng.choice(active, size=requests)]
    tracks = rec.item_ids[rng.integers(0, rec.n_items, size=requests)]
    liked = [list(rec.item_ids[rng.choice(rec.n_items, size=3, replace=False)]) for _ in range(requests)]
    # warm-up (first-call imports, lazy caches)
    rec.recommend_user(users[0], n), rec.recommend_liked(liked[0], n), rec.similar(tracks[0], n)
    out = {"load_s": round(load_s, 4), "history_load_s": round(history_s, 4), "requests": {}}
    for explain in (True, False):
        key = "explained" if explain else "plain"
        out["requests"][key] = {
            "recommend_user": stats_ms(timed(lambda u: rec.recommend_user(u, n, explain=explain),
                                             [(u,) for u in users])),
            "recommend_like": stats_ms(timed(lambda t: rec.recommend_liked(t, n, explain=explain),
                                             [(t,) for t in liked])),
            "similar": stats_ms(timed(lambda t: rec.similar(t, n, explain=explain), [(t,) for t in tracks])),
        }
    return out


def bench_cli(models: Path, matrices: Path, runs: int) -> dict:
    rec = ModelServer.load(models, matrices_dir=None)
    track = rec.item_ids[0]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "musicrec", "similar", track, "--models", str(models)], check=True,
                       capture_output=True, env=env)
        times.append(time.perf_counter() - t0)
    return {"command": f"python -m musicrec similar {track} ({rec.model_name})",
            "median_s": round(float(np.median(times)), 3), "min_s": round(float(np.min(times)), 3), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=Path("data/models"))
    ap.add_argument("--matrices", type=Path, default=Path("data/processed/matrices"))
    ap.add_argument("--model", action="append", help="model(s) to time (default: every trained model)")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--cli-runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("reports/bench_serving.json"))
    args = ap.parse_args()
    names = args.model or available_models(args.models)
    rec = ModelServer.load(args.models, names[0], matrices_dir=args.matrices)
    hist = rec.history()
    report = {
        "data": {"models_dir": str(args.models), "users": int(hist.shape[0]), "items": int(hist.shape[1]),
                 "interactions": int(hist.nnz)},
        "n": args.n, "requests": args.requests,
        "default_model": default_model(available_models(args.models)),
        "models": {},
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")},
    }
    for name in names:  # untimed first load: one-time imports (implicit, pydantic) are not counted per model
        ModelServer.load(args.models, name, matrices_dir=None)
    for name in names:
        report["models"][name] = r = bench_model(args.models, args.matrices, name, args.requests, args.n, args.seed)
        q = r["requests"]["explained"]
        print(f"{name:10s} load {r['load_s'] * 1000:7.1f} ms  user {q['recommend_user']['median_ms']:6.2f}/"
              f"{q['recommend_user']['p95_ms']:6.2f} ms  like {q['recommend_like']['median_ms']:6.2f}/"
              f"{q['recommend_like']['p95_ms']:6.2f} ms  similar {q['similar']['median_ms']:6.2f}/"
              f"{q['similar']['p95_ms']:6.2f} ms (median/p95, explained)", flush=True)
    if args.cli_runs > 0:
        report["cli"] = bench_cli(args.models, args.matrices, args.cli_runs)
        print(f"cli: {report['cli']['command']}: median {report['cli']['median_s']} s per process")
    write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
