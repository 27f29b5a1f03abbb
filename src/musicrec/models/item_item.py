"""Shared scoring for models defined by an item x item weight matrix ``W``: scores = ``user_items @ W``."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from musicrec.models.base import Recommender
from musicrec.models.persist import ArrayBundle


class ItemItemModel(Recommender):
    """Base of itemknn, ease and rp3beta.

    ``W[i, j]`` is how much a play of item ``i`` supports item ``j``; the
    diagonal is zero. ``W`` is a float32 CSR matrix, or a dense array (EASE).
    """

    def __init__(self, *, seed: int = 0, num_threads: int = 0):
        super().__init__(seed=seed, num_threads=num_threads)
        self.W: sp.csr_matrix | np.ndarray | None = None

    def _score(self, userids, X) -> np.ndarray:
        s = X @ self.W
        return np.asarray(s.toarray() if sp.issparse(s) else s, dtype=np.float32)

    def _item_similarity(self, itemids) -> np.ndarray:
        w = self.W[itemids]
        return np.asarray(w.toarray() if sp.issparse(w) else w, dtype=np.float32)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {"W": self.W}

    def _set_state(self, meta: dict[str, Any], arrays: ArrayBundle) -> None:
        n = self.n_items
        if arrays.is_sparse("W"):
            self.W = sp.csr_matrix(arrays.csr("W", shape=(n, n)), dtype=np.float32)
        else:
            self.W = arrays.array("W", dtype=np.float32, shape=(n, n))


def drop_diagonal(W: sp.spmatrix) -> sp.csr_matrix:
    W = sp.csr_matrix(W, dtype=np.float32, copy=True)
    W.setdiag(0)
    W.eliminate_zeros()
    W.sort_indices()
    return W
