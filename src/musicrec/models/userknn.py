"""User-based k-nearest-neighbours (user-kNN): listeners like you played these.

For a query row ``q`` (a listener's items), the similarity to every training
listener ``v`` is

    sim(q, v) = a(q) . a(v) / (|a(q)| |a(v)| + shrink)

where ``a`` is the row itself (``similarity: cosine``) or its BM25 weighting
(``similarity: bm25``: :func:`implicit.nearest_neighbours.bm25_weight` with the
item IDF and average row length of the training matrix, K1 = 1.2, B = 0.75 as
implicit's ``BM25Recommender``). ``shrink`` > 0 damps similarities resting on few
shared items. The score of item ``j`` is ``sum over the k most similar training
listeners v (sim > 0) of sim(q, v) * X[v, j]``, ``X`` the confidence-weighted
training matrix.

Neighbours are found at query time, one block of query rows at a time (never a
dense users x users matrix), so a listener unseen at fit (fold-in, id ``-1``) is
scored from its row like any other; a training listener is never its own
neighbour. The model keeps the training matrix (saved as ``arrays.npz``);
everything else is derived from it at ``fit`` and ``load``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from musicrec.models.base import Recommender
from musicrec.models.persist import ArrayBundle
from musicrec.models.ranking import topk_csr_rows

SIMILARITIES = ("cosine", "bm25")
BM25_K1, BM25_B = 1.2, 0.75  # implicit's BM25Recommender defaults (also used by itemknn)
# similarities of at most this many (query, training user) pairs are held densely at once
_BLOCK_FLOATS = 1 << 23


class UserKNNRecommender(Recommender):
    """User-kNN over the cosine or BM25-weighted listener rows (see the module docstring)."""

    name = "userknn"

    def __init__(self, similarity: str = "cosine", k: int = 100, shrink: float = 0.0, *,
                 seed: int = 0, num_threads: int = 0):
        super().__init__(seed=seed, num_threads=num_threads)
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES} (got {similarity!r})")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValueError(f"k must be a positive integer (got {k!r})")
        if (isinstance(shrink, bool) or not isinstance(shrink, (int, float, np.number))
                or not np.isfinite(shrink) or shrink < 0):
            raise ValueError(f"shrink must be a finite number >= 0 (got {shrink!r})")
        self.similarity = similarity
        self.k = int(k)
        self.shrink = float(shrink)
        self.X: sp.csr_matrix | None = None          # training matrix (users x items)
        self._A_T: sp.csr_matrix | None = None       # a(training rows).T (items x users); shrink 0: unit columns
        self._norms: np.ndarray | None = None        # |a(v)| per training user
        self._idf: np.ndarray | None = None          # bm25: per item
        self._avg_len = 1.0                          # bm25: mean training row sum
        self._item_T: sp.csr_matrix | None = None    # item columns of a, L2-normalised (items x users)

    def get_params(self) -> dict[str, Any]:
        return {"similarity": self.similarity, "k": self.k, "shrink": self.shrink}

    # ---- fitting ----------------------------------------------------------
    def _fit(self, X, *, item_features, item_last_ts) -> None:
        self._prepare(sp.csr_matrix(X, dtype=np.float32, copy=True))

    def _prepare(self, X: sp.csr_matrix) -> None:
        """Everything derived from the training matrix (at fit and at load)."""
        self.X = X
        if self.similarity == "bm25":
            n_users = X.shape[0]
            self._idf = (np.log(n_users) - np.log1p(np.bincount(X.indices, minlength=X.shape[1]))).astype(np.float32)
            sums = np.asarray(X.sum(axis=1)).ravel()
            self._avg_len = float(sums.mean()) if sums.mean() > 0 else 1.0
        A = self._weigh(X)
        self._norms = np.sqrt(np.asarray(A.multiply(A).sum(axis=1)).ravel()).astype(np.float32)
        A_T = sp.csr_matrix(A.T, dtype=np.float32)
        if self.shrink == 0:  # cosine: each training user's column of unit length
            inv = np.where(self._norms > 0, 1 / np.where(self._norms > 0, self._norms, 1), 0).astype(np.float32)
            A_T = sp.csr_matrix(A_T @ sp.diags(inv), dtype=np.float32)
        self._A_T = A_T
        self._item_T = None  # built on the first item_similarity call

    def _weigh(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        """a(rows): the rows themselves (cosine) or their BM25 weighting with the training IDF and length."""
        if self.similarity == "cosine":
            return rows
        # implicit's bm25_weight formula, with the IDF and average length of the training matrix
        # (bm25_weight itself would take them from the query rows)
        A = sp.csr_matrix(rows, dtype=np.float32, copy=True)
        length = np.repeat((1.0 - BM25_B) + BM25_B * np.asarray(A.sum(axis=1)).ravel() / self._avg_len,
                           np.diff(A.indptr))
        A.data = (A.data * (BM25_K1 + 1.0) / (BM25_K1 * length + A.data) * self._idf[A.indices]).astype(np.float32)
        return A

    # ---- scoring ----------------------------------------------------------
    def neighbours(self, userids: np.ndarray, user_items: sp.csr_matrix) -> sp.csr_matrix:
        """The ``k`` most similar training listeners of each query row: CSR (n, n_users) of similarities > 0."""
        ids, X = self._check_query(userids, user_items)
        return self._neighbours(ids, X)

    def _neighbours(self, ids: np.ndarray, X: sp.csr_matrix) -> sp.csr_matrix:
        A = self._weigh(X)
        qnorm = np.sqrt(np.asarray(A.multiply(A).sum(axis=1)).ravel()).astype(np.float32)
        if self.shrink == 0:  # cosine: normalise the query rows, the training side is normalised at fit
            A = sp.csr_matrix(sp.diags(np.where(qnorm > 0, 1 / np.where(qnorm > 0, qnorm, 1), 0)) @ A,
                              dtype=np.float32)
        step = max(1, _BLOCK_FLOATS // max(self.n_users, 1))
        blocks = []
        for lo in range(0, len(ids), step):
            hi = min(lo + step, len(ids))
            sims = np.asarray((A[lo:hi] @ self._A_T).toarray(), dtype=np.float32)
            if self.shrink > 0:
                den = np.multiply.outer(qnorm[lo:hi], self._norms)
                den += np.float32(self.shrink)
                sims /= den
            own = (ids[lo:hi] >= 0) & (ids[lo:hi] < self.n_users)
            sims[np.flatnonzero(own), ids[lo:hi][own]] = 0.0  # a training listener is not its own neighbour
            blocks.append(topk_csr_rows(sims, self.k))
        if not blocks:
            return sp.csr_matrix((0, self.n_users), dtype=np.float32)
        return sp.vstack(blocks, format="csr")

    def _score(self, userids, X) -> np.ndarray:
        S = self._neighbours(userids, X)
        scores = np.asarray((S @ self.X).toarray(), dtype=np.float32)
        lonely = np.diff(S.indptr) == 0  # items no other training listener shares
        if lonely.any():
            scores[lonely] = self._fallback_scores()
        return scores

    def _item_similarity(self, itemids) -> np.ndarray:
        """Cosine of the items' listener columns (of the weighted training rows)."""
        if self._item_T is None:
            A_T = sp.csr_matrix(self._weigh(self.X).T, dtype=np.float32)
            col = np.sqrt(np.asarray(A_T.multiply(A_T).sum(axis=1)).ravel())
            scale = sp.diags(np.where(col > 0, 1.0 / np.where(col > 0, col, 1), 0).astype(np.float32))
            self._item_T = sp.csr_matrix(scale @ A_T, dtype=np.float32)
        return np.asarray((self._item_T[itemids] @ self._item_T.T).toarray(), dtype=np.float32)

    # ---- persistence ------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {"X": self.X}

    def _set_state(self, meta: dict[str, Any], arrays: ArrayBundle) -> None:
        X = arrays.csr("X", shape=(self.n_users, self.n_items))
        self._prepare(sp.csr_matrix(X, dtype=np.float32))


__all__ = ["UserKNNRecommender"]
