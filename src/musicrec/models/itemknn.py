"""Item-based k-nearest-neighbours via :mod:`implicit.nearest_neighbours` (cosine or BM25)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from musicrec.models.item_item import ItemItemModel, drop_diagonal

SIMILARITIES = ("cosine", "bm25")


class ItemKNNRecommender(ItemItemModel):
    """``implicit``'s CosineRecommender / BM25Recommender (K1, B: ``train.itemknn.bm25_k1`` / ``bm25_b``).

    The neighbour graph keeps the ``k`` most similar other items of each item
    (implicit counts the item itself as a neighbour; we ask for ``k + 1`` and drop
    it). Scores are ``user_items @ W`` exactly as implicit's scorer computes them.
    """

    name = "itemknn"

    def __init__(self, similarity: str = "bm25", k: int = 100, *, seed: int = 0, num_threads: int = 0):
        super().__init__(seed=seed, num_threads=num_threads)
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES} (got {similarity!r})")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValueError(f"k must be a positive integer (got {k!r})")
        self.similarity = similarity
        self.k = int(k)

    def get_params(self) -> dict[str, Any]:
        return {"similarity": self.similarity, "k": self.k}

    def _fit(self, X, *, item_features, item_last_ts) -> None:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        K = min(self.k + 1, self.n_items)
        if self.similarity == "cosine":
            knn = CosineRecommender(K=K, num_threads=self.num_threads)
        else:
            w = self.input_weighting  # train.itemknn.bm25_k1 / bm25_b (implicit's defaults 1.2 / 0.75)
            knn = BM25Recommender(K=K, K1=w.bm25_k1, B=w.bm25_b, num_threads=self.num_threads)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Method expects CSR input")
            knn.fit(X, show_progress=False)
        W = drop_diagonal(knn.similarity)
        if W.nnz and np.diff(W.indptr).max() > self.k:
            W = _trim_rows(W, self.k)
        self.W = W


def _trim_rows(W, k: int):
    """Keep the k largest entries of each CSR row (row-wise, for large matrices)."""
    import scipy.sparse as sp

    rows, cols, vals = [], [], []
    for i in range(W.shape[0]):
        lo, hi = W.indptr[i], W.indptr[i + 1]
        d, c = W.data[lo:hi], W.indices[lo:hi]
        if len(d) > k:
            keep = np.argpartition(-d, k - 1)[:k]
            d, c = d[keep], c[keep]
        rows.append(np.full(len(d), i))
        cols.append(c)
        vals.append(d)
    out = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=W.shape, dtype=np.float32
    )
    out.sort_indices()
    return out
