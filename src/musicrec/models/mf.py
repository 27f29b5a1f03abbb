"""Matrix factorisation via :mod:`implicit`: ALS and BPR (CPU implementations).

The implicit classes are built by :func:`_backend`, which selects the CPU
implementation (``implicit.cpu.*``) explicitly. A GPU implementation
(``implicit.gpu.*``) could be chosen there later with a fallback to the CPU one
when CUDA is unavailable; the fitted factors are plain numpy arrays either way.
(Importing anything from ``implicit`` runs its package ``__init__``, which
imports ``implicit.gpu``; that only probes for CUDA and never uses a GPU.)

Users: known users (``0 <= userid < n_users`` with a non-empty train row) use
their fitted factors. Other users (cold start: id outside ``[0, n_users)``, or
a train row that was empty) are folded in from the given row: ALS solves the
user's least-squares problem exactly (``recalculate_user``); BPR, which has no
such closed form, uses the confidence-weighted mean of the item factors.
Rows that are empty as well get the popularity fallback.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp

from musicrec.models.base import ArrayBundle, Recommender, cosine_rows


def _backend(kind: str, use_gpu: bool = False):
    """The implicit class for ``kind`` ("als" or "bpr"); CPU unless a usable GPU is asked for."""
    if use_gpu:  # pragma: no cover - no GPU path is enabled yet
        try:
            import implicit.gpu

            if implicit.gpu.HAS_CUDA:
                if kind == "als":
                    return implicit.gpu.als.AlternatingLeastSquares
                return implicit.gpu.bpr.BayesianPersonalizedRanking
        except ImportError:
            pass
        warnings.warn("implicit GPU support unavailable; falling back to the CPU implementation", RuntimeWarning)
    if kind == "als":
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    return BayesianPersonalizedRanking


def _pos_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
        raise ValueError(f"{name} must be a positive integer (got {v!r})")
    return int(v)


def _num(name: str, v: Any, *, positive: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not np.isfinite(v):
        raise ValueError(f"{name} must be a finite number (got {v!r})")
    if (positive and v <= 0) or v < 0:
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'} (got {v!r})")
    return float(v)


class _MFModel(Recommender):
    """Common state of the factor models: ``user_factors``, ``item_factors``, ``fitted_users``."""

    def __init__(self, *, seed: int = 0, num_threads: int = 0):
        super().__init__(seed=seed, num_threads=num_threads)
        self.user_factors: np.ndarray | None = None
        self.item_factors: np.ndarray | None = None
        self.fitted_users: np.ndarray | None = None  # users with a non-empty train row

    def _known(self, userids: np.ndarray) -> np.ndarray:
        inside = (userids >= 0) & (userids < self.n_users)
        known = np.zeros(len(userids), dtype=bool)
        known[inside] = self.fitted_users[userids[inside]]
        return known

    def _has_signal(self, userids, X) -> np.ndarray:
        return self._known(userids) | (np.diff(X.indptr) > 0)

    def _fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def _user_vectors(self, userids: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        known = self._known(userids)
        U = np.zeros((len(userids), self.item_factors.shape[1]), dtype=np.float32)
        if known.any():
            U[known] = self.user_factors[userids[known]]
        new = ~known & (np.diff(X.indptr) > 0)
        if new.any():
            U[new] = self._fold_in(X[np.flatnonzero(new)])
        return U

    def _score(self, userids, X) -> np.ndarray:
        return (self._user_vectors(userids, X) @ self.item_factors.T).astype(np.float32)

    def _item_similarity(self, itemids) -> np.ndarray:
        return cosine_rows(self.item_factors[itemids], self.item_factors)

    def _get_state(self):
        return {}, {
            "user_factors": self.user_factors,
            "item_factors": self.item_factors,
            "fitted_users": self.fitted_users,
        }

    def _set_state(self, meta: dict[str, Any], arrays: ArrayBundle) -> None:
        self.item_factors = arrays.array("item_factors", dtype=np.float32, shape=(self.n_items, None))
        f = self.item_factors.shape[1]
        self.user_factors = arrays.array("user_factors", dtype=np.float32, shape=(self.n_users, f))
        self.fitted_users = arrays.array("fitted_users", dtype=bool, shape=(self.n_users,))
        self._after_load()

    def _after_load(self) -> None:
        pass


class ALSRecommender(_MFModel):
    """``implicit.cpu.als.AlternatingLeastSquares``.

    ``user_items`` given to ``fit`` is already confidence-weighted (e.g. BM25);
    ``alpha`` is implicit's own multiplier applied on top (C = 1 + alpha * X).
    Fitting is deterministic for a given ``seed`` with any ``num_threads``.
    """

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 2.0,
        iterations: int = 15,
        *,
        seed: int = 0,
        num_threads: int = 0,
    ):
        super().__init__(seed=seed, num_threads=num_threads)
        self.factors = _pos_int("factors", factors)
        self.regularization = _num("regularization", regularization, positive=False)
        self.alpha = _num("alpha", alpha, positive=True)
        self.iterations = _pos_int("iterations", iterations)
        self._model = None

    def get_params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
        }

    def _implicit_model(self):
        cls = _backend("als")
        return cls(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            num_threads=self.num_threads,
            random_state=self.seed,
        )

    def _fit(self, X, *, item_features, item_last_ts) -> None:
        model = self._implicit_model()
        model.fit(X, show_progress=False)
        self._model = model
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.fitted_users = np.diff(X.indptr) > 0

    def _after_load(self) -> None:
        model = self._implicit_model()
        model.user_factors = self.user_factors
        model.item_factors = self.item_factors
        self._model = model

    def _fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        rows = np.arange(X.shape[0])
        return np.asarray(self._model.recalculate_user(rows, X), dtype=np.float32)


class BPRRecommender(_MFModel):
    """``implicit.cpu.bpr.BayesianPersonalizedRanking``.

    Always trained with one thread: implicit's multi-threaded BPR updates
    factors Hogwild-style and is not reproducible (``num_threads`` is used for
    nothing else). The last factor column is implicit's item bias (users hold 1
    there). Cold-start users: weighted mean of their items' factors, bias 1.
    """

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        *,
        seed: int = 0,
        num_threads: int = 0,
    ):
        super().__init__(seed=seed, num_threads=num_threads)
        self.factors = _pos_int("factors", factors)
        self.learning_rate = _num("learning_rate", learning_rate, positive=True)
        self.regularization = _num("regularization", regularization, positive=False)
        self.iterations = _pos_int("iterations", iterations)

    def get_params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "learning_rate": self.learning_rate,
            "regularization": self.regularization,
            "iterations": self.iterations,
        }

    def _fit(self, X, *, item_features, item_last_ts) -> None:
        cls = _backend("bpr")
        model = cls(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            num_threads=1,
            random_state=self.seed,
        )
        model.fit(X, show_progress=False)
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.fitted_users = np.diff(X.indptr) > 0

    def _fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        weights = np.abs(X)
        sums = np.asarray(weights.sum(axis=1)).ravel()
        U = np.asarray(weights @ self.item_factors, dtype=np.float64) / np.where(sums > 0, sums, 1)[:, None]
        U[:, -1] = 1.0  # the bias column
        return U.astype(np.float32)
