"""RP3beta (Paudel et al. 2017; as in Dacrema et al. 2019): popularity-penalised 3-step random walk.

``P_ui`` = user->item transition (rows of ``X`` L1-normalised), ``P_iu`` =
item->user transition (rows of the binarised ``X^T`` L1-normalised), both
raised element-wise to ``alpha``. ``W = (P_iu P_ui) diag(pop^-beta)`` where
``pop`` is each item's number of users; the diagonal is dropped and each row
keeps its ``k`` largest entries. Scores = ``X W``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from musicrec.models.ranking import topk_csr_rows
from musicrec.models.item_item import ItemItemModel

_BLOCK_FLOATS = 1 << 24


def _l1_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float64, copy=True)
    sums = np.asarray(np.abs(m).sum(axis=1)).ravel()
    m.data /= np.repeat(np.where(sums > 0, sums, 1), np.diff(m.indptr))
    return m


class RP3BetaRecommender(ItemItemModel):
    name = "rp3beta"

    def __init__(self, alpha: float = 1.0, beta: float = 0.5, k: int = 100, *, seed: int = 0, num_threads: int = 0):
        super().__init__(seed=seed, num_threads=num_threads)
        if not np.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"alpha must be a positive number (got {alpha!r})")
        if not np.isfinite(beta) or beta < 0:
            raise ValueError(f"beta must be a number >= 0 (got {beta!r})")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValueError(f"k must be a positive integer (got {k!r})")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.k = int(k)

    def get_params(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "beta": self.beta, "k": self.k}

    def _fit(self, X, *, item_features, item_last_ts) -> None:
        n = self.n_items
        Pui = _l1_rows(abs(X))
        Xb = sp.csr_matrix(X.T, dtype=np.float64, copy=True)
        Xb.data[:] = 1.0
        Piu = _l1_rows(Xb)
        if self.alpha != 1.0:
            Pui.data **= self.alpha
            Piu.data **= self.alpha
        pop = np.asarray(Xb.sum(axis=1)).ravel()
        penalty = np.where(pop > 0, np.power(np.where(pop > 0, pop, 1), -self.beta), 0.0)
        step = max(1, _BLOCK_FLOATS // max(n, 1))
        blocks = []
        for start in range(0, n, step):
            stop = min(start + step, n)
            block = (Piu[start:stop] @ Pui).toarray() * penalty[None, :]
            block[np.arange(stop - start), np.arange(start, stop)] = 0.0
            blocks.append(topk_csr_rows(block, self.k))
        self.W = sp.vstack(blocks, format="csr").astype(np.float32)
        self.W.sort_indices()
