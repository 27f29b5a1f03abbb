"""Input weighting: the play counts turned into the matrix a model learns from (``train.<model>.weighting``).

Every collaborative model gets the raw users x items play counts and applies its own
scheme (:class:`InputWeighting`), when it is fitted and to the user rows it is given
at recommend time, so that fit and query always see the same transform:

* ``binary``: 1 for every stored pair;
* ``raw``: the counts as they are;
* ``log1p``: ``log(1 + count)``;
* ``bm25``: Okapi BM25 exactly as ``implicit.nearest_neighbours.bm25_weight`` applied to
  the item x user matrix (as in implicit's Last.fm example): items are the documents,
  users the terms. For a pair (u, i) with count c,
  ``w = c (K1 + 1) / (K1 L_i + c) * idf_u`` with ``L_i = (1 - B) + B * len_i / mean(len)``
  (``len_i``: item i's total train plays, the mean over every item) and
  ``idf_u = log(n_items) - log1p(n_u)`` (``n_u``: the items in u's row). ``L`` is learnt
  from the train matrix at fit (:meth:`InputWeighting.fit`) and kept with the model;
  ``idf_u`` comes from the row being weighted, so a train row weighs the same at fit and
  at query time.

CSR in, float32 CSR out, the sparsity pattern unchanged (the recommenders filter a
user's stored items by it). ALS's ``alpha`` applies on top (``C = 1 + alpha * w``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

import numpy as np
import scipy.sparse as sp

from musicrec.models import WEIGHTING_KEYS, Weighting

SCHEMES: tuple[str, ...] = get_args(Weighting)


@dataclass(frozen=True)
class InputWeighting:
    """One model's weighting scheme, plus what ``bm25`` learns from the train matrix."""

    weighting: str = "raw"
    bm25_k1: float = 100.0
    bm25_b: float = 0.8
    item_norm: np.ndarray | None = None  # bm25 only: L_i of every item, from the train matrix

    def __post_init__(self) -> None:
        if self.weighting not in SCHEMES:
            raise ValueError(f"weighting must be one of {', '.join(SCHEMES)} (got {self.weighting!r})")

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "InputWeighting":
        """The scheme named by the weighting keys of a model's params (:data:`~musicrec.models.WEIGHTING_KEYS`)."""
        return cls(**{k: params[k] for k in WEIGHTING_KEYS if k in params})

    def params(self) -> dict[str, Any]:
        """The weighting keys, as they sit in ``train.<model>`` (and in ``model.json``)."""
        return {"weighting": self.weighting, "bm25_k1": self.bm25_k1, "bm25_b": self.bm25_b}

    @property
    def needs_fit(self) -> bool:
        return self.weighting == "bm25"

    def fit(self, counts: sp.csr_matrix) -> "InputWeighting":
        """This scheme with the statistics of the train ``counts`` (users x items); itself unless bm25."""
        if not self.needs_fit:
            return self
        item_len = np.bincount(counts.indices, weights=counts.data.astype(np.float64), minlength=counts.shape[1])
        mean = item_len.mean() if item_len.size else 0.0
        norm = (1.0 - self.bm25_b) + self.bm25_b * (item_len / mean if mean > 0 else np.zeros_like(item_len))
        return InputWeighting(self.weighting, self.bm25_k1, self.bm25_b, norm)

    def with_item_norm(self, item_norm: np.ndarray | None) -> "InputWeighting":
        """This scheme with a saved ``item_norm`` (a loaded model)."""
        return InputWeighting(self.weighting, self.bm25_k1, self.bm25_b, item_norm)

    def __call__(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """The weighted float32 copy of ``counts`` (users x items CSR; ``raw`` returns it as float32)."""
        m = sp.csr_matrix(counts, dtype=np.float32, copy=False)
        if self.weighting == "raw":
            return m
        out = m.copy()
        data = m.data.astype(np.float64)
        if self.weighting == "binary":
            data = np.ones_like(data)
        elif self.weighting == "log1p":
            data = np.log1p(data)
        else:  # bm25
            if self.item_norm is None:
                raise ValueError("bm25 weighting needs the item lengths of the train matrix: call fit(train) first")
            if self.item_norm.shape != (m.shape[1],):
                raise ValueError(f"bm25 weighting was fitted on {self.item_norm.shape[0]} items, "
                                 f"the matrix has {m.shape[1]}")
            per_row = np.diff(m.indptr)
            idf = np.log(float(m.shape[1])) - np.log1p(per_row.astype(np.float64))
            k1 = self.bm25_k1
            data = data * (k1 + 1.0) / (k1 * self.item_norm[m.indices] + data) * np.repeat(idf, per_row)
        out.data = data.astype(np.float32)
        return out
