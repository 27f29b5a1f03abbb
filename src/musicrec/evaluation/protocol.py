"""Evaluation protocol: overall means, bootstrap CIs, listener segments, paired tests.

Everything public returns plain JSON-serialisable Python (``dict``/``list``/``int``/
``float``/``None``); floats are rounded to 6 decimals so reports are byte-stable, and
undefined values (NaN) become ``None``.

Protocol (see :mod:`musicrec.evaluation.metrics` for the metric definitions):

* ``recs`` rows are aligned with ``test``/``train`` rows, or with ``users`` (row
  indices into them) when given.
* Users with no test item are skipped (counted in ``n_users_skipped``); every
  number (accuracy and beyond accuracy) is over the evaluated users only.
* Item popularity (novelty, ARP) = distinct train users per item; ``n_users`` in
  ``-log2(pop / n_users)`` and in ``arp_norm`` = train users with >= 1 interaction.
* Bootstrap: ``bootstrap`` resamples of the evaluated users with replacement;
  95% percentile interval of the resampled means. The resampling is vectorised:
  a (resamples x users) index matrix becomes a count matrix (``bincount``), and all
  resampled means of all metrics are one matrix product ``counts @ X / n``.
* Segments: terciles of train interactions (stored nonzero train entries) per
  evaluated user: ``light`` <= t1 < ``medium`` <= t2 < ``heavy`` (ties can make the
  groups unequal; sizes are reported).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import stats

from musicrec.evaluation import beyond_accuracy as B
from musicrec.evaluation import metrics as M

__all__ = [
    "HEADLINE_METRICS",
    "SEGMENTS",
    "per_user_metrics",
    "evaluate_model",
    "bootstrap_means",
    "paired_comparison",
    "compare_to_baseline",
    "metrics_curve",
]

HEADLINE_METRICS = M.ACCURACY_METRICS  # precision, recall, ndcg, map, hit_rate
SEGMENTS = ("light", "medium", "heavy")
CI_LEVEL = 0.95
DECIMALS = 6
_BOOT_CHUNK_ELEMS = 1 << 24  # resamples x users per block (counts matrix ~128 MB)


def rounded(x: Any) -> float | None:
    """``x`` rounded to ``DECIMALS`` places for the JSON reports; None when it is not finite."""
    x = float(x)
    return None if not math.isfinite(x) else round(x, DECIMALS)


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _nanmean(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _rows(matrix: sp.spmatrix, users: np.ndarray | None) -> sp.csr_matrix:
    m = M.canonical_csr(matrix)
    return m if users is None else m[np.asarray(users, dtype=np.int64)]


def per_user_metrics(
    recs: np.ndarray, test: sp.spmatrix, *, ks: Sequence[int], users: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Accuracy metrics per recs row, ``{"ndcg@10": array, ...}`` (NaN: no test item).

    Feed the arrays of two models to :func:`paired_comparison`.
    """
    rel = _rows(test, users)
    recs = np.asarray(recs)
    if recs.shape[0] != rel.shape[0]:
        raise ValueError(f"recs has {recs.shape[0]} rows, expected {rel.shape[0]} (test rows / users)")
    return M.accuracy_metrics(recs, rel, ks)


def bootstrap_means(values: np.ndarray, n_boot: int, rng: np.random.Generator | int | None) -> np.ndarray:
    """``(n_boot, n_metrics)`` means of ``values`` (users x metrics) over user resamples."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    n = x.shape[0]
    out = np.empty((n_boot, x.shape[1]))
    if n_boot <= 0:
        return out
    if n == 0:
        out[:] = np.nan
        return out
    rng = _rng(rng)
    step = max(1, _BOOT_CHUNK_ELEMS // n)
    for s in range(0, n_boot, step):
        b = min(step, n_boot - s)
        idx = rng.integers(0, n, size=(b, n))
        idx += (np.arange(b, dtype=np.int64) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        out[s : s + b] = counts @ x / n
    return out


def _ci(boot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = (1 - CI_LEVEL) / 2 * 100
    lo, hi = np.percentile(boot, [a, 100 - a], axis=0)
    return lo, hi


def _means(per_user: Mapping[str, np.ndarray], mask: np.ndarray | None = None) -> dict[str, float | None]:
    return {k: rounded(_nanmean(v if mask is None else v[mask])) for k, v in sorted(per_user.items())}


def evaluate_model(
    recs: np.ndarray,
    test: sp.spmatrix,
    train: sp.spmatrix,
    *,
    ks: Sequence[int],
    item_vectors: np.ndarray | sp.spmatrix | None = None,
    bootstrap: int,
    rng: np.random.Generator | int | None,
    users: np.ndarray | None = None,
    per_user: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Evaluate one model's top-K lists against the held-out test interactions.

    ``recs`` (n, Kmax) item indices, ``-1`` padding; rows aligned with ``test`` and
    ``train`` rows, or with ``users`` (row indices into them). ``per_user`` may pass
    the output of :func:`per_user_metrics` for the same inputs to avoid recomputing.

    Returns ``{"ks", "n_users", "n_users_evaluated", "n_users_skipped", "n_items",
    "metrics": {"ndcg@10": mean, ...}, "bootstrap", "ci_level", "ci": {"ndcg@10":
    [low, high], ...}, "segments": {"by", "thresholds", "light"|"medium"|"heavy":
    {"n_users", "metrics"}}}``. Metric keys: ``precision|recall|ndcg|map|hit_rate|
    coverage|novelty|arp|arp_norm[|ild]@k``.
    """
    ks = M.cutoffs(ks)
    test_c = M.canonical_csr(test)
    train_c = M.canonical_csr(train)
    if test_c.shape != train_c.shape:
        raise ValueError(f"test shape {test_c.shape} != train shape {train_c.shape}")
    n_items = test_c.shape[1]
    recs = M.as_recs(recs, n_items)
    rel = _rows(test_c, users)
    if recs.shape[0] != rel.shape[0]:
        raise ValueError(f"recs has {recs.shape[0]} rows, expected {rel.shape[0]} (test rows / users)")
    acc = dict(per_user) if per_user is not None else M.accuracy_metrics(recs, rel, ks)
    nrel = np.diff(rel.indptr)
    mask = nrel > 0
    n_eval = int(mask.sum())

    # per-user arrays over the evaluated users only
    pu: dict[str, np.ndarray] = {k: np.asarray(v)[mask] for k, v in acc.items()}
    recs_e = recs[mask]
    pop = B.item_popularity(train_c)
    n_train_users = max(int((np.diff(train_c.indptr) > 0).sum()), 1)
    extra: dict[str, float | None] = {}
    for k in ks:
        pu[f"novelty@{k}"] = B.novelty(recs_e, pop, n_train_users, k)
        pu[f"arp@{k}"] = B.average_recommendation_popularity(recs_e, pop, k)
        pu[f"arp_norm@{k}"] = B.average_recommendation_popularity(recs_e, pop, k, normalise_by=n_train_users)
        if item_vectors is not None:
            pu[f"ild@{k}"] = B.intra_list_diversity(recs_e, item_vectors, k)
        extra[f"coverage@{k}"] = rounded(B.catalogue_coverage(recs_e, n_items, k)) if n_eval else None

    metrics = _means(pu)
    metrics.update(extra)

    headline = [f"{m}@{k}" for k in ks for m in HEADLINE_METRICS]
    ci: dict[str, list[float | None]] = {}
    if bootstrap > 0 and n_eval > 0:
        boot = bootstrap_means(np.column_stack([pu[h] for h in headline]), bootstrap, rng)
        lo, hi = _ci(boot)
        ci = {h: [rounded(lo[j]), rounded(hi[j])] for j, h in enumerate(headline)}

    # listener segments: terciles of train interactions per evaluated user
    activity = np.diff(_rows(train_c, users).indptr)[mask]
    segments: dict[str, Any] = {"by": "train interactions per user (terciles)"}
    if n_eval:
        t1, t2 = (float(t) for t in np.quantile(activity, [1 / 3, 2 / 3]))
        seg_masks = {"light": activity <= t1, "medium": (activity > t1) & (activity <= t2), "heavy": activity > t2}
    else:
        t1 = t2 = float("nan")
        seg_masks = {s: np.zeros(0, dtype=bool) for s in SEGMENTS}
    segments["thresholds"] = {"light_max": rounded(t1), "medium_max": rounded(t2)}
    for s in SEGMENTS:
        sm = seg_masks[s]
        segments[s] = {"n_users": int(sm.sum()), "metrics": _means(pu, sm)}

    return {
        "ks": ks,
        "n_users": int(recs.shape[0]),
        "n_users_evaluated": n_eval,
        "n_users_skipped": int(recs.shape[0] - n_eval),
        "n_items": int(n_items),
        "metrics": dict(sorted(metrics.items())),
        "bootstrap": int(bootstrap),
        "ci_level": CI_LEVEL,
        "ci": ci,
        "segments": segments,
    }


def paired_comparison(
    per_user_a: np.ndarray,
    per_user_b: np.ndarray,
    *,
    bootstrap: int,
    rng: np.random.Generator | int | None,
) -> dict[str, Any]:
    """Compare two models' per-user values of one metric (same users, same order).

    Users where either value is NaN are dropped. ``mean_diff`` = mean(a - b) (> 0: a
    better), its bootstrap 95% percentile CI, and the two-sided Wilcoxon signed-rank
    test (scipy, zero differences dropped; p = 1 when every difference is zero).
    """
    a = np.asarray(per_user_a, dtype=np.float64)
    b = np.asarray(per_user_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"per-user arrays must be 1-D and aligned, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    d = a - b
    n = int(d.size)
    res: dict[str, Any] = {
        "n_users": n,
        "mean_a": rounded(a.mean()) if n else None,
        "mean_b": rounded(b.mean()) if n else None,
        "mean_diff": rounded(d.mean()) if n else None,
        "ci_level": CI_LEVEL,
        "ci": None,
        "wilcoxon_statistic": None,
        "wilcoxon_p": None,
    }
    if n == 0:
        return res
    if bootstrap > 0:
        lo, hi = _ci(bootstrap_means(d, bootstrap, rng))
        res["ci"] = [rounded(lo[0]), rounded(hi[0])]
    if np.count_nonzero(d) == 0:
        res["wilcoxon_statistic"], res["wilcoxon_p"] = 0.0, 1.0
    else:
        w = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        res["wilcoxon_statistic"], res["wilcoxon_p"] = rounded(w.statistic), rounded(w.pvalue)
    return res


def compare_to_baseline(
    per_user_by_model: Mapping[str, Mapping[str, np.ndarray]],
    *,
    baseline: str = "popularity",
    metrics: Sequence[str],
    bootstrap: int,
    rng: np.random.Generator | int | None,
) -> dict[str, dict[str, Any]]:
    """``{model: {metric: paired_comparison(model, baseline)}}`` for every other model."""
    if baseline not in per_user_by_model:
        raise ValueError(f"baseline {baseline!r} not among models {sorted(per_user_by_model)}")
    rng = _rng(rng)
    base = per_user_by_model[baseline]
    return {
        name: {
            m: paired_comparison(pu[m], base[m], bootstrap=bootstrap, rng=rng) for m in metrics
        }
        for name, pu in sorted(per_user_by_model.items())
        if name != baseline
    }


def metrics_curve(results_by_model: Mapping[str, Mapping[str, Any]], ks: Sequence[int]) -> list[dict[str, Any]]:
    """Rows ``{model, k, precision, recall, ndcg, map, hit_rate}`` (a DVC plots file).

    ``results_by_model`` maps a model name to its :func:`evaluate_model` result.
    Models in name order, ``k`` ascending; a missing value is ``None``.
    """
    rows = []
    for name in sorted(results_by_model):
        means = results_by_model[name].get("metrics", {})
        for k in sorted(int(k) for k in ks):
            row: dict[str, Any] = {"model": name, "k": k}
            for m in HEADLINE_METRICS:
                v = means.get(f"{m}@{k}")
                row[m] = None if v is None else rounded(v)
            rows.append(row)
    return rows
