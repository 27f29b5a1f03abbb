"""Benchmark: musicrec's vectorised ranking metrics vs implicit and vs a plain loop.

One synthetic implicit-feedback matrix, one ``implicit.evaluation.train_test_split``,
one ALS model; then, in the same process:

* ``implicit``: ``implicit.evaluation.ranking_metrics_at_k(model, train, test, K)``
  (recommends in batches of 1000 users and scores them in Cython);
* ``musicrec``: ``model.recommend`` for the same users (batched) + our
  ``accuracy_metrics`` at every cut-off in ``--ks`` (timed separately);
* ``reference``: the per-user Python loop ``reference_metrics.reference_accuracy`` on a
  subset of users, extrapolated to all users.

The numbers must agree where definitions coincide (``ndcg``, ``map``, and implicit's
micro ``precision`` = sum hits / sum min(K, R)); the script fails otherwise.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_metrics.py --users 200000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from bench_env import use_checkout

use_checkout()

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from musicrec.evaluation import reference_metrics as R  # noqa: E402
from musicrec.evaluation import metrics as M  # noqa: E402
from musicrec.io import write_json  # noqa: E402


def synthetic(n_users: int, n_items: int, per_user: float, seed: int) -> sp.csr_matrix:
    """Clustered, long-tailed user x item matrix (binary)."""
    rng = np.random.default_rng(seed)
    n_groups = 16
    counts = rng.poisson(per_user, n_users) + 3
    users = np.repeat(np.arange(n_users), counts)
    group = rng.integers(0, n_groups, n_users)[users]
    rank = np.minimum(rng.zipf(1.4, users.size) - 1, n_items // n_groups - 1)
    own = rng.random(users.size) < 0.7  # 70% from the user's cluster, 30% global long tail
    items = np.where(own, group + rank * n_groups, np.minimum(rng.zipf(1.2, users.size) - 1, n_items - 1))
    m = sp.csr_matrix((np.ones(users.size, dtype=np.float32), (users, items)), shape=(n_users, n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def recommend_all(model, users: np.ndarray, train: sp.csr_matrix, k: int, batch: int = 10_000) -> np.ndarray:
    out = np.full((users.size, k), -1, dtype=np.int64)
    for lo in range(0, users.size, batch):
        u = users[lo : lo + batch]
        ids, _ = model.recommend(u, train[u], N=k)
        out[lo : lo + u.size, : ids.shape[1]] = ids
    return out


class PrecomputedModel:
    """Stands in for a model in ``ranking_metrics_at_k``: returns stored top-K lists.

    Lets implicit's Cython scoring be timed without its recommendation cost.
    """

    def __init__(self, recs: np.ndarray):
        self.recs = recs

    def recommend(self, userid, user_items=None, N=10, **kwargs):
        ids = self.recs[np.asarray(userid), :N].astype(np.int32)
        return ids, np.zeros(ids.shape, dtype=np.float32)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--k", type=int, default=10, help="cut-off compared with implicit")
    ap.add_argument("--ks", type=int, nargs="*", default=None, help="cut-offs for our metrics (default: 5 10 20 50 and --k)")
    ap.add_argument("--per-user", type=float, default=25.0, help="mean interactions per user")
    ap.add_argument("--factors", type=int, default=32)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--reference-users", type=int, default=2000, help="users timed with the Python loop")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default="reports/bench_metrics.json")
    args = ap.parse_args(argv)

    import implicit
    from implicit.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k, train_test_split

    K = args.k
    ks = sorted(set(args.ks or [5, 10, 20, 50]) | {K})
    kmax = max(ks)

    t = time.perf_counter()
    ratings = synthetic(args.users, args.items, args.per_user, args.seed)
    train, test = train_test_split(ratings, 0.8, random_state=args.seed)
    train, test = sp.csr_matrix(train, dtype=np.float32), sp.csr_matrix(test, dtype=np.float32)
    t_data = time.perf_counter() - t

    model = AlternatingLeastSquares(
        factors=args.factors, iterations=args.iterations, random_state=args.seed, use_gpu=False
    )
    t = time.perf_counter()
    model.fit(train, show_progress=False)
    t_fit = time.perf_counter() - t

    # implicit: recommendation + scoring at one K
    t = time.perf_counter()
    theirs = ranking_metrics_at_k(model, train, test, K=K, show_progress=False)
    t_implicit = time.perf_counter() - t

    # ours: recommend the same users (top kmax), then all metrics at all ks
    nrel = M.n_relevant(test)
    users = np.flatnonzero(nrel > 0).astype(np.int32)
    t = time.perf_counter()
    recs_u = recommend_all(model, users, train, kmax)
    t_recommend = time.perf_counter() - t
    recs = np.full((args.users, kmax), -1, dtype=np.int64)
    recs[users] = recs_u

    t = time.perf_counter()
    hits = M.hits_matrix(recs, test)
    t_hits = time.perf_counter() - t
    t = time.perf_counter()
    ours = M.accuracy_metrics(recs, test, ks, hits=hits)
    t_acc = time.perf_counter() - t
    t_ours = t_hits + t_acc

    # like for like with implicit: one cut-off, lists of length K
    t = time.perf_counter()
    M.accuracy_metrics(recs[:, :K], test, [K])
    t_ours_k = time.perf_counter() - t

    # implicit's scoring alone, on the same top-K lists
    t = time.perf_counter()
    theirs_pre = ranking_metrics_at_k(PrecomputedModel(recs), train, test, K=K, show_progress=False)
    t_implicit_pre = time.perf_counter() - t

    # cross-check where definitions coincide (implicit recommends exactly K; our top-K
    # prefix of a top-kmax list is the same list unless scores tie)
    hits_k = hits[:, :K].sum(axis=1)
    check = {
        "ndcg": (float(np.nanmean(ours[f"ndcg@{K}"])), float(theirs["ndcg"])),
        "map": (float(np.nanmean(ours[f"map@{K}"])), float(theirs["map"])),
        "precision_micro_min_k_r": (M.implicit_precision(hits_k, nrel, K), float(theirs["precision"])),
    }
    agree = {name: bool(abs(a - b) <= 1e-6 * max(1.0, abs(b))) for name, (a, b) in check.items()}
    agree["precomputed_lists_same_as_model"] = all(
        abs(theirs_pre[m] - theirs[m]) <= 1e-9 for m in ("precision", "map", "ndcg")
    )

    # reference loop on a subset, extrapolated
    n_ref = min(args.reference_users, users.size)
    sub = users[:n_ref]
    t = time.perf_counter()
    ref = R.reference_accuracy(recs[sub], test[sub], ks)
    t_ref_sub = time.perf_counter() - t
    t_ref_all = t_ref_sub * users.size / max(n_ref, 1)
    ref_agree = all(np.allclose(ref[key], ours[key][sub], rtol=1e-12, equal_nan=True) for key in ref)

    result = {
        "config": {
            "users": args.users, "items": args.items, "k": K, "ks": ks, "per_user": args.per_user,
            "factors": args.factors, "iterations": args.iterations, "seed": args.seed,
            "reference_users": int(n_ref),
        },
        "env": {
            "python": platform.python_version(), "numpy": np.__version__, "implicit": implicit.__version__,
            "cpus": os.cpu_count(), "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        },
        "data": {"train_nnz": int(train.nnz), "test_nnz": int(test.nnz), "users_evaluated": int(users.size)},
        "seconds": {
            "data": round(t_data, 4), "fit": round(t_fit, 4),
            "implicit_ranking_metrics_at_k": round(t_implicit, 4),
            "implicit_ranking_metrics_at_k_precomputed_lists": round(t_implicit_pre, 4),
            "musicrec_recommend": round(t_recommend, 4),
            "musicrec_hits_matrix": round(t_hits, 4),
            "musicrec_accuracy_metrics_all_ks": round(t_acc, 4),
            "musicrec_metrics_total": round(t_ours, 4),
            "musicrec_metrics_single_k": round(t_ours_k, 4),
            "reference_loop_subset": round(t_ref_sub, 4),
            "reference_loop_extrapolated": round(t_ref_all, 4),
        },
        "ratios": {
            # implicit's time includes recommending; compare like with like too
            "implicit_over_musicrec_recommend_plus_metrics": round(t_implicit / (t_recommend + t_ours), 3),
            "implicit_scoring_only_over_musicrec_metrics": round(t_implicit_pre / t_ours, 3),
            "implicit_scoring_only_over_musicrec_single_k": round(t_implicit_pre / t_ours_k, 3),
            "reference_over_musicrec_metrics": round(t_ref_all / t_ours, 1),
        },
        "cross_check": {
            name: {"musicrec": round(a, 8), "implicit": round(b, 8), "agree": agree[name]}
            for name, (a, b) in check.items()
        },
        "precomputed_lists_same_as_model": agree["precomputed_lists_same_as_model"],
        "reference_agrees": bool(ref_agree),
        "musicrec_means": {key: round(float(np.nanmean(v)), 6) for key, v in sorted(ours.items())},
    }
    write_json(args.out, result)

    s = result["seconds"]
    print(f"users={args.users} items={args.items} K={K} ks={ks} evaluated={users.size} test_nnz={test.nnz}")
    print(f"implicit ranking_metrics_at_k (recommend+score, one K): {s['implicit_ranking_metrics_at_k']:.3f}s")
    print(f"musicrec recommend (top {kmax}): {s['musicrec_recommend']:.3f}s; "
          f"hits_matrix {s['musicrec_hits_matrix']:.3f}s + accuracy_metrics {s['musicrec_accuracy_metrics_all_ks']:.3f}s "
          f"({len(ks)} cut-offs x 5 metrics)")
    print(f"ratio implicit / (musicrec recommend + metrics) = {result['ratios']['implicit_over_musicrec_recommend_plus_metrics']}")
    print(f"implicit scoring only (precomputed lists, one K): {s['implicit_ranking_metrics_at_k_precomputed_lists']:.3f}s; "
          f"ratio implicit scoring / musicrec metrics = {result['ratios']['implicit_scoring_only_over_musicrec_metrics']}"
          f" (same lists: {agree['precomputed_lists_same_as_model']})")
    print(f"musicrec metrics at K only (hits + 5 metrics): {s['musicrec_metrics_single_k']:.3f}s; "
          f"ratio implicit scoring / musicrec = {result['ratios']['implicit_scoring_only_over_musicrec_single_k']}")
    print(f"reference loop: {s['reference_loop_subset']:.3f}s for {n_ref} users -> ~{s['reference_loop_extrapolated']:.1f}s all "
          f"(x{result['ratios']['reference_over_musicrec_metrics']} slower)")
    for name, v in result["cross_check"].items():  # noqa: B007
        print(f"  {name:26s} musicrec={v['musicrec']:.8f} implicit={v['implicit']:.8f} agree={v['agree']}")
    print(f"reference agrees: {ref_agree}; wrote {args.out}")
    return 0 if all(agree.values()) and ref_agree else 1


if __name__ == "__main__":
    sys.exit(main())
