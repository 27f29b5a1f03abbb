"""Argument checks shared by the recommenders: the user-item matrix, id arrays and ``N``.

Each returns its argument normalised (float32 CSR with sorted indices, a 1-D int64
array, an ``int``) or raises ValueError with a sentence naming the argument and what
was expected. :class:`~musicrec.models.base.Recommender` runs them on every
``fit``/``recommend``/``similar_items`` call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


def check_user_items(user_items: Any, name: str = "user_items", *, n_items: int | None = None) -> sp.csr_matrix:
    """Return ``user_items`` as a float32 CSR matrix with sorted indices, or raise ValueError."""
    if not sp.issparse(user_items) or user_items.format != "csr":
        got = type(user_items).__name__ if not sp.issparse(user_items) else f"{user_items.format} sparse"
        raise ValueError(f"{name} must be a scipy CSR sparse matrix (got {got})")
    if user_items.ndim != 2:
        raise ValueError(f"{name} must be 2-D (got {user_items.ndim}-D)")
    if n_items is not None and user_items.shape[1] != n_items:
        raise ValueError(
            f"{name} has {user_items.shape[1]} columns but the model was fitted on {n_items} items"
        )
    m = sp.csr_matrix(user_items, dtype=np.float32, copy=False)
    if not m.has_sorted_indices:
        m = m.copy()
        m.sort_indices()
    if m.nnz and not np.isfinite(m.data).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return m


def check_ids(ids: Any, name: str, upper: int | None = None) -> np.ndarray:
    """Return ``ids`` as a 1-D int64 array, or raise ValueError."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer ids (got shape {arr.shape})")
    if arr.size and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must hold integers (got dtype {arr.dtype})")
    arr = arr.astype(np.int64, copy=False)
    if upper is not None and arr.size and (arr.min() < 0 or arr.max() >= upper):
        bad = arr[(arr < 0) | (arr >= upper)][0]
        raise ValueError(f"{name} must lie in [0, {upper}) (got {int(bad)})")
    return arr


def check_n(N: Any) -> int:
    if isinstance(N, bool) or not isinstance(N, (int, np.integer)) or N <= 0:
        raise ValueError(f"N must be a positive integer (got {N!r})")
    return int(N)
