"""The MSD strong-generalisation protocol, measured here; writes ``reports/msd_protocol.json``.

Two parts (README: "The Million Song Dataset protocol"):

* ``--hetrec``: the protocol on the real HetRec 2011 Last.fm 2K zip in ``../shared``
  (users >= 20 artists, artists >= 20 listeners, ``heldout_users`` each for validation and
  test, 80% revealed): time and peak memory of each step, and Recall@20 / Recall@50
  (capped) / NDCG@100 of popularity, item-kNN, EASE and ALS.
* ``--ease``: EASE's dense item x item fit (Gram matrix + inverse) at a few catalogue
  sizes, each in its own process (peak RSS of that process), and the extrapolation to
  the MSD protocol's 41,140 songs (time ~ n^3, memory ~ n^2).

    OPENBLAS_NUM_THREADS=1 python benchmarks/msd_protocol.py [--hetrec] [--ease 2000,4000,8000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from bench_env import REPO, use_checkout

use_checkout()

MSD_ITEMS = 41_140      # songs kept by Liang et al.'s filter (>= 200 listeners) on the full Taste Profile
MSD_USERS = 571_355     # users kept (>= 20 songs)
HETREC_ZIP = REPO.parent / "shared/data/real/hetrec2011-lastfm-2k/hetrec2011-lastfm-2k.zip"
PUBLISHED = {"ease": {"recall_capped@20": 0.333, "recall_capped@50": 0.428, "ndcg@100": 0.389},
             "mult_vae": {"recall_capped@20": 0.266, "recall_capped@50": 0.364, "ndcg@100": 0.316}}


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def hetrec(heldout_users: int) -> dict:
    from musicrec.evaluation import metrics as M
    from musicrec.models.factory import build_model
    from musicrec.pipeline.evaluate import recommend_batched
    from musicrec.pipeline.local import LocalPaths, params_for, run_local

    params = params_for(42, "hetrec_lastfm_2k", transform={"min_user_items": 20, "min_item_users": 20},
                        dask={"scheduler": "threads", "num_workers": 2},
                        interactions={"split": {"method": "strong_generalization",
                                                                     "heldout_users": heldout_users,
                                                                     "min_user_items": 20}},
                        evaluate={"k": [20, 50, 100], "main_k": 20, "bootstrap": 0})
    models = {"popularity": {}, "itemknn": {"similarity": "cosine", "k": 300}, "ease": {"l2": 200.0},
              "als": {"factors": 128, "regularization": 100.0, "alpha": 5.0, "iterations": 15}}
    steps: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = LocalPaths.under(tmp, raw=HETREC_ZIP.parent)
        for step in ("clean", "transform", "interactions"):
            t0 = time.perf_counter()
            run = run_local(params, paths, start=step, stop=step)
            steps[step] = {"seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": _peak_mb()}
        inter = run.interactions()
        report = run.built.report
        X = inter.train.copy()
        X.data[:] = 1.0  # binary input, as in the protocol papers
        query = inter.query.copy()
        query.data[:] = 1.0
        test_users = (inter.test.indptr[1:] - inter.test.indptr[:-1]).nonzero()[0]
        results = {}
        for name, p in models.items():
            t0 = time.perf_counter()
            model = build_model(name, p, seed=42).fit(X)
            fit_s = time.perf_counter() - t0
            recs = recommend_batched(model, test_users, query, 100)
            rel = inter.test[test_users]
            acc = M.accuracy_metrics(recs, rel, [100])
            capped = M.capped_recall_metrics(recs, rel, [20, 50])
            results[name] = {"params": p, "fit_seconds": round(fit_s, 2), "peak_rss_mb": _peak_mb(),
                             **{k: round(float(v[~(v != v)].mean()), 4) for k, v in capped.items()},
                             "ndcg@100": round(float(acc["ndcg@100"][~(acc["ndcg@100"] != acc["ndcg@100"])].mean()), 4)}
            print(name, results[name], flush=True)
    return {"data": "HetRec 2011 Last.fm 2K (real), users >= 20 artists, artists >= 20 listeners, binary input",
            "shape": {"users": report["users"], "items": report["items"], "interactions": report["interactions"]},
            "split": report["split"], "steps": steps, "models": results}


def ease_worker(n_items: int) -> dict:
    import numpy as np
    import scipy.sparse as sp

    from musicrec.models.ease import EASERecommender

    rng = np.random.default_rng(0)
    n_users = 20 * n_items
    X = sp.random(n_users, n_items, density=min(1.0, 40 / n_items), format="csr", random_state=rng, dtype=np.float32)
    X.data[:] = 1.0
    t0 = time.perf_counter()
    EASERecommender(l2=200.0, max_items=n_items).fit(X)
    return {"n_items": n_items, "fit_seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": _peak_mb(),
            "load1": round(os.getloadavg()[0], 2)}


def ease(sizes: list[int]) -> dict:
    import subprocess

    runs = []
    for n in sizes:
        out = subprocess.run([sys.executable, __file__, "--ease-worker", str(n)], check=True, capture_output=True,
                             text=True, env=dict(os.environ)).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(runs[-1], flush=True)
    big = runs[-1]
    scale = MSD_ITEMS / big["n_items"]
    return {"runs": runs, "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "unset"),
            "extrapolated_to_msd": {
                "n_items": MSD_ITEMS,
                "fit_seconds": round(big["fit_seconds"] * scale ** 3),
                "fit_memory_gib": round(2 * 8 * MSD_ITEMS ** 2 / 2**30, 1),
                "saved_model_gib": round(4 * MSD_ITEMS ** 2 / 2**30, 1),
                "basis": f"fit time x (41,140 / {big['n_items']:,})^3 from the largest run; memory = float64 Gram "
                         "matrix + its inverse (2 x 8 x n^2 bytes), saved weights float32 (4 x n^2). The 1-min load "
                         "average (load1) of each run says how much other work shared the 2 cores"}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hetrec", action="store_true")
    ap.add_argument("--heldout-users", type=int, default=300)
    ap.add_argument("--ease", default="", help="comma-separated catalogue sizes")
    ap.add_argument("--ease-worker", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(REPO / "reports" / "msd_protocol.json"))
    a = ap.parse_args(argv)
    if a.ease_worker:
        print(json.dumps(ease_worker(a.ease_worker)))
        return 0
    out_path = Path(a.out)
    doc = json.loads(out_path.read_text()) if out_path.exists() else {}
    doc["published"] = PUBLISHED
    doc["msd_after_filter"] = {"users": MSD_USERS, "items": MSD_ITEMS, "heldout_users": 50_000}
    if a.hetrec:
        doc["hetrec"] = hetrec(a.heldout_users)
    if a.ease:
        doc["ease_fit"] = ease([int(s) for s in a.ease.split(",")])
    from musicrec.io import write_json

    write_json(out_path, doc)
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
