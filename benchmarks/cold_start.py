"""Cold-start study on generated data over several seeds; writes ``reports/cold_start.json``.

The same study as ``tests/unit/evaluation/test_cold_start.py`` (:func:`musicrec.evaluation.cold_start.cold_start_study`):
cold users reveal a few tracks at query time; popularity, user-kNN (neighbours of the
revealed tracks), ALS (folded in), content, the hybrid and the activity-adaptive hybrid
recommend from those only.

    OPENBLAS_NUM_THREADS=1 python benchmarks/cold_start.py [--seeds 3,7,11] [--known 3,5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from bench_env import REPO, use_checkout

use_checkout()

import numpy as np  # noqa: E402

from musicrec.io import write_json  # noqa: E402
from musicrec.evaluation.cold_start import cold_start_study  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="3,7,11")
    ap.add_argument("--known", default="3,5", help="revealed tracks per cold user (comma-separated)")
    ap.add_argument("--out", default=str(REPO / "reports" / "cold_start.json"))
    a = ap.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    runs = []
    for known in [int(k) for k in a.known.split(",")]:
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                r = cold_start_study(Path(tmp), seed=seed, known=known)
            r.pop("inter"), r.pop("users")
            runs.append(r)
            print(f"known={known} seed={seed} nDCG@10 " + " ".join(f"{m} {v:.3f}" for m, v in r["ndcg"].items()))
    summary = {}
    for known in sorted({r["known_items"] for r in runs}):
        rs = [r for r in runs if r["known_items"] == known]
        mean = {m: round(float(np.mean([r["ndcg"][m] for r in rs])), 4) for m in rs[0]["ndcg"]}
        summary[f"known_{known}"] = {
            "mean_ndcg@10": mean,
            "hybrid_over_popularity": round(mean["hybrid"] / mean["popularity"], 3),
            "over_popularity": {m: round(v / mean["popularity"], 3) for m, v in mean.items()},
            "seeds": [r["seed"] for r in rs],
        }
    write_json(a.out, {"study": "cold-start users on generated data (musicrec.evaluation.cold_start.cold_start_study)",
                       "summary": summary, "runs": runs})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
