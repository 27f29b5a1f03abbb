"""The app's request latency: each page's view-model call, p50 / p95 over repeated requests.

Loads the workspace the app serves (:meth:`musicrec.serving.app.workspace.Workspace.load`, what
``make app`` caches once) and times the calls behind each page's answer, without Streamlit's
rendering: find a user by prefix, their most played, their recommendations (each model),
track search, cold start (hybrid, content, fold-in, with and without MMR) and similar tracks
side by side. Users and tracks are drawn with a fixed seed. Writes ``reports/app_latency.json``.

    OPENBLAS_NUM_THREADS=1 python benchmarks/app_latency.py [--models data/models] [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from bench_env import REPO, use_checkout

use_checkout()

import numpy as np  # noqa: E402

TARGET_MS = 100.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="data/models")
    ap.add_argument("--matrices", default="data/processed/matrices")
    ap.add_argument("--items", default="data/processed/items.parquet")
    ap.add_argument("--requests", type=int, default=200, help="requests per kind (default: %(default)s)")
    ap.add_argument("-n", type=int, default=10, help="recommendations per request (the app's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "reports" / "app_latency.json"))
    a = ap.parse_args(argv)

    from musicrec.io import write_json
    from musicrec.serving.app.source import AppSource
    from musicrec.serving.app.workspace import Workspace

    t0 = time.perf_counter()
    ws = Workspace.load(AppSource(models=a.models, matrices=a.matrices, items=a.items))
    load_s = time.perf_counter() - t0
    rng = np.random.default_rng(a.seed)
    users = rng.choice(ws.base.user_ids, size=a.requests)
    popular = ws.search_tracks("", 500)["item_id"].to_numpy()
    likes = [list(rng.choice(popular, size=3, replace=False)) for _ in range(a.requests)]
    words = [str(ws.catalog["name"].iloc[int(i)]).split()[0] for i in rng.integers(0, ws.base.n_items, a.requests)]

    kinds = {
        "find user by prefix": lambda k: ws.find_users(users[k][:4]),
        "most played": lambda k: ws.listener_history(users[k], 10),
        **{f"recommend user ({m})": (lambda m: lambda k: ws.recommend_user(users[k], m, a.n))(m)
           for m in ws.model_names},
        "search tracks": lambda k: ws.search_tracks(words[k]),
        **{f"cold start ({mode})": (lambda mode: lambda k: ws.cold_start(likes[k], a.n, mode=mode))(mode)
           for mode in ws.cold_start_modes()},
        "cold start (hybrid, MMR 0.5)": lambda k: ws.cold_start(likes[k], a.n, mode="hybrid", mmr_lambda=0.5),
        "cold start (slider moves: 21 weights)": lambda k: ws.cold_start(
            likes[k], a.n, mode="hybrid", content_weight=round(0.05 * (k % 21), 2)),
        "more like this (3 lists)": lambda k: ws.similar_side_by_side(likes[k][0], a.n),
    }
    results = {}
    for name, call in kinds.items():
        call(0)  # warm-up
        times = []
        for k in range(a.requests):
            t = time.perf_counter()
            call(k)
            times.append((time.perf_counter() - t) * 1000)
        p50, p95 = np.percentile(times, [50, 95])
        results[name] = {"p50_ms": round(float(p50), 2), "p95_ms": round(float(p95), 2),
                         "max_ms": round(float(max(times)), 2)}
        print(f"{name:40s} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms", file=sys.stderr)
    worst = max(r["p95_ms"] for r in results.values())
    doc = {
        "models": a.models, "served": ws.model_names, "content": ws.content_origin,
        "catalogue": int(ws.base.n_items), "users": int(len(ws.base.user_ids)), "n": a.n, "requests": a.requests,
        "seed": a.seed, "load_s": round(load_s, 2), "target_ms": TARGET_MS, "worst_p95_ms": worst,
        "met": bool(worst < TARGET_MS), "latency": results,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                    "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")},
    }
    write_json(Path(a.out), doc)
    print(json.dumps({"worst_p95_ms": worst, "met": doc["met"], "load_s": doc["load_s"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
