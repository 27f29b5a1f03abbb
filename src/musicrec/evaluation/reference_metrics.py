"""Slow reference implementations of the metrics, to cross-check the vectorised code.

Plain per-user Python loops over the definitions in the docstrings of
:mod:`musicrec.evaluation.metrics` (accuracy) and
:mod:`musicrec.evaluation.beyond_accuracy` (novelty, intra-list diversity).
Deliberately naive; used only by the tests and ``benchmarks/bench_metrics.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from musicrec.evaluation.metrics import ACCURACY_METRICS


def reference_accuracy(recs: np.ndarray, relevant: sp.spmatrix, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Plain per-user Python loops over the definitions in the module docstring.

    Deliberately naive (sets, explicit ranks); used only to cross-check the
    vectorised code in tests and in ``benchmarks/bench_metrics.py``.
    """
    import math

    rel = sp.csr_matrix(relevant)
    recs = np.asarray(recs)
    out = {f"{m}@{k}": np.full(rel.shape[0], np.nan) for k in ks for m in ACCURACY_METRICS}
    for u in range(rel.shape[0]):
        row = rel.getrow(u)
        truth = {int(i) for i, v in zip(row.indices, row.data) if v != 0}
        if not truth:
            continue
        ranked = [int(i) for i in recs[u]]
        for k in ks:
            seen: set[int] = set()
            hits_list = []
            for i in ranked[:k]:
                hit = i >= 0 and i in truth and i not in seen
                if i >= 0:
                    seen.add(i)
                hits_list.append(hit)
            hits_list += [False] * (k - len(hits_list))
            h = sum(hits_list)
            dcg = sum(1.0 / math.log2(r + 2) for r, x in enumerate(hits_list) if x)
            idcg = sum(1.0 / math.log2(r + 2) for r in range(min(len(truth), k)))
            ap, running = 0.0, 0
            for r, x in enumerate(hits_list):
                if x:
                    running += 1
                    ap += running / (r + 1)
            out[f"precision@{k}"][u] = h / k
            out[f"recall@{k}"][u] = h / len(truth)
            out[f"ndcg@{k}"][u] = dcg / idcg
            out[f"map@{k}"][u] = ap / min(len(truth), k)
            out[f"hit_rate@{k}"][u] = float(h > 0)
    return out


def reference_novelty(recs, item_pop, n_users, k):
    import math

    out = []
    for row in np.asarray(recs)[:, :k]:
        items = [int(i) for i in row if i >= 0]
        out.append(
            sum(-math.log2(max(item_pop[i], 1) / n_users) for i in items) / len(items) if items else np.nan
        )
    return np.array(out, dtype=np.float64)


def reference_ild(recs, item_vectors, k):
    dense = item_vectors.toarray() if sp.issparse(item_vectors) else np.asarray(item_vectors, dtype=np.float64)
    out = []
    for row in np.asarray(recs)[:, :k]:
        items = [int(i) for i in row if i >= 0]
        if len(items) < 2:
            out.append(np.nan)
            continue
        dists = []
        for a in range(len(items)):
            for b in range(a + 1, len(items)):
                va, vb = dense[items[a]], dense[items[b]]
                na, nb = np.linalg.norm(va), np.linalg.norm(vb)
                sim = float(va @ vb / (na * nb)) if na > 0 and nb > 0 else 0.0
                dists.append(1.0 - sim)
        out.append(float(np.mean(dists)))
    return np.array(out, dtype=np.float64)
