"""EASE^R (Steck, 2019): closed-form shallow autoencoder with a zero diagonal.

``P = (X^T X + l2 * I)^-1``, ``B = I - P diag(1 / diag(P))`` (so ``B_jj = 0``),
scores = ``X B``. ``X`` is the train matrix weighted by ``train.ease.weighting``.
The item x item matrices are dense: fitting needs about ``2 * 8 * n_items^2``
bytes (float64 Gram matrix and its inverse) and the saved model ``4 * n_items^2``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from musicrec.errors import DataError
from musicrec.models.item_item import ItemItemModel


class EASERecommender(ItemItemModel):
    name = "ease"

    def __init__(self, l2: float = 500.0, max_items: int = 30_000, *, seed: int = 0, num_threads: int = 0):
        super().__init__(seed=seed, num_threads=num_threads)
        if not np.isfinite(l2) or l2 <= 0:
            raise ValueError(f"l2 must be a positive number (got {l2!r})")
        if isinstance(max_items, bool) or not isinstance(max_items, (int, np.integer)) or max_items <= 0:
            raise ValueError(f"max_items must be a positive integer (got {max_items!r})")
        self.l2 = float(l2)
        self.max_items = int(max_items)

    def get_params(self) -> dict[str, Any]:
        return {"l2": self.l2, "max_items": self.max_items}

    def _fit(self, X, *, item_features, item_last_ts) -> None:
        n = self.n_items
        if n > self.max_items:
            gib = 2 * 8 * n * n / 2**30
            raise DataError(
                f"EASE needs a dense {n} x {n} item-item matrix (~{gib:.1f} GiB to fit) but the catalogue has "
                f"{n} items > train.ease.max_items={self.max_items}; raise train.ease.max_items or use "
                "rp3beta/itemknn for large catalogues"
            )
        X64 = X.astype(np.float64)
        if X.shape[0] < n:  # fewer users than items: the same P via Woodbury, P = (I - X^T (XX^T + l2 I)^-1 X) / l2
            K = (X64 @ X64.T).toarray()
            K[np.diag_indices_from(K)] += self.l2
            KX = scipy.linalg.solve(K, X64.toarray(), assume_a="pos", overwrite_a=True, check_finite=False)
            P = np.asarray(X64.T @ KX)
            del K, KX
            P *= -1.0 / self.l2
            P[np.diag_indices(n)] += 1.0 / self.l2
        else:
            G = (X64.T @ X64).toarray()
            G[np.diag_indices(n)] += self.l2
            P = scipy.linalg.inv(G, overwrite_a=True, check_finite=False)
            del G
        B = P / (-np.diag(P))[None, :]
        B[np.diag_indices(n)] = 0.0
        self.W = np.ascontiguousarray(B, dtype=np.float32)
