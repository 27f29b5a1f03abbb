"""Matrix factorisation via :mod:`implicit`: ALS and BPR.

The implicit classes are built by :func:`implicit_backend`: the CPU implementation
(``implicit.cpu.*``) unless ALS's ``use_gpu`` (``train.als.use_gpu``) asks for the
GPU one: ``auto`` takes ``implicit.gpu`` when CUDA is usable and falls back to the
CPU with a log line; ``true`` fails with the reason when it is not. A GPU fit is
converted with ``to_cpu()`` right after training, so the saved factors, fold-in,
scoring and ``save``/``load`` are the same numpy code either way. BPR is always
fitted on the CPU (single-threaded, for reproducibility).

``recommend`` is fused for these models: GEMM, fallback, masking and top-N per
cache-sized chunk of users, over all cores (see ``_MFModel.recommend``).

Users: known users (``0 <= userid < n_users`` with a non-empty train row) use
their fitted factors. Other users (cold start: id outside ``[0, n_users)``, or
a train row that was empty) are folded in from the given row: ALS solves the
user's least-squares problem exactly (``recalculate_user``); BPR, which has no
such closed form, uses the confidence-weighted mean of the item factors.
Rows that are empty as well get the popularity fallback.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import numpy as np
import scipy.sparse as sp

from musicrec.errors import ResourceUnavailable
from musicrec.progress import Progress
from musicrec.progress import mode as progress_mode
from musicrec.models.ann import ANNMixin, unit_rows
from musicrec.models.base import Recommender
from musicrec.models.checks import check_n
from musicrec.models.persist import ArrayBundle
from musicrec.models.pruned_topn import PRUNE_MIN_ITEMS, PRUNE_USERS, NormIndex, norm_index, pruned_top_n
from musicrec.models.ranking import order_rank, cosine_rows, mask_rows

# Rows scored at once by the fused recommend path: small enough that a chunk's
# scores stay in cache through masking and top-N, large enough for an efficient GEMM.
_MF_CHUNK_FLOATS = 1 << 22
_MF_CHUNK_MIN_ROWS = 32



def chunk_rows(n_items: int) -> int:
    """Users scored at once by the fused recommend path over a catalogue of ``n_items`` items."""
    return max(_MF_CHUNK_MIN_ROWS, _MF_CHUNK_FLOATS // max(n_items, 1))


log = logging.getLogger(__name__)


def gpu_available() -> tuple[bool, str]:
    """Whether implicit can train on a GPU here, and why not."""
    try:
        import implicit.gpu
    except ImportError as err:  # pragma: no cover - implicit always imports implicit.gpu
        return False, f"implicit.gpu cannot be imported ({err})"
    if not implicit.gpu.HAS_CUDA:
        return False, "this implicit build has no CUDA extension or no CUDA device is visible (implicit.gpu.HAS_CUDA is False)"
    if not getattr(implicit.gpu, "HAS_RMM", True):
        return False, "implicit's GPU models need the RMM package (implicit.gpu.HAS_RMM is False)"
    return True, ""


def implicit_backend(kind: str, use_gpu: bool | str = False):
    """``(implicit class, on_gpu)`` for ``kind`` ("als" or "bpr").

    ``use_gpu``: ``False`` CPU; ``"auto"`` GPU when :func:`gpu_available`, else CPU
    with a log line; ``True`` GPU or a RuntimeError saying why not (no silent
    fallback when a GPU was asked for).
    """
    if use_gpu is not False:
        ok, why = gpu_available()
        if ok:
            import implicit.gpu.als
            import implicit.gpu.bpr

            if kind == "als":
                return implicit.gpu.als.AlternatingLeastSquares, True
            return implicit.gpu.bpr.BayesianPersonalizedRanking, True
        if use_gpu is True:
            raise no_gpu_error(kind, why)
        log.info("train.%s.use_gpu=auto: %s; training on the CPU", kind, why)
    if kind == "als":
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares, False
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    return BayesianPersonalizedRanking, False


def no_gpu_error(kind: str, why: str) -> ResourceUnavailable:
    """``train.<kind>.use_gpu: true`` on a machine where implicit cannot use a GPU (``why``)."""
    return ResourceUnavailable(f"train.{kind}.use_gpu is true but {why}; set it to auto to fall back to the CPU, "
                               "or install implicit with CUDA support (README: Scaling out)")


def _one_blas_thread():
    """BLAS limited to one thread (our own threads parallelise); no-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


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


class _MFModel(ANNMixin, Recommender):
    """Common state of the factor models: ``user_factors``, ``item_factors``, ``fitted_users``.

    ANN (``train.<name>.ann``, :mod:`musicrec.models.ann`): a ``recommend`` index over
    the raw item factors (inner product = the exact score) and a ``similar`` index over
    the L2-normalised ones (cosine, as ``similar_items``); the ann settings are how to
    serve, not what is fitted, so they are not in ``get_params`` (``meta["ann"]`` when
    an index was built).
    """

    def __init__(self, *, seed: int = 0, num_threads: int = 0, ann: dict[str, Any] | None = None):
        super().__init__(seed=seed, num_threads=num_threads)
        self._init_ann(ann)
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

    def _keep_factors(self, model: Any, X: sp.csr_matrix) -> None:
        """Take the factors of the fitted implicit ``model`` (trained on ``X``) as float32 C arrays."""
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
        self.fitted_users = np.diff(X.indptr) > 0

    def _user_vectors(self, userids: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        known = self._known(userids)
        U = np.zeros((len(userids), self.item_factors.shape[1]), dtype=np.float32)
        if known.any():
            U[known] = self.user_factors[userids[known]]
        new = ~known & (np.diff(X.indptr) > 0)
        if new.any():
            U[new] = self._fold_in(X[np.flatnonzero(new)])
        return U

    def _factors_t(self) -> np.ndarray:
        """C-contiguous ``item_factors.T`` (a faster GEMM operand than the transposed view), cached."""
        cached = getattr(self, "_ft_cache", None)
        if cached is None or cached[0] is not self.item_factors:
            cached = self._ft_cache = (self.item_factors, np.ascontiguousarray(self.item_factors.T, dtype=np.float32))
        return cached[1]

    def _score(self, userids, X) -> np.ndarray:
        return np.asarray(self._user_vectors(userids, X) @ self.item_factors.T, dtype=np.float32)

    def recommend(self, userids, user_items, N: int = 10, *, filter_already_liked_items: bool = True):
        """Same result as :meth:`Recommender.recommend`, fused and parallel.

        User vectors (fold-in included) are computed once; then, per chunk of
        rows small enough to stay in cache, GEMM + popularity fallback + masking +
        :func:`top_n` (for catalogues of ``PRUNE_MIN_ITEMS`` items or more, and
        no fallback rows, the exact pruned scoring of :meth:`_top_n_pruned`
        instead), the chunks spread over ``num_threads`` threads (0 = all
        cores; numpy and BLAS release the GIL). BLAS itself is held to one thread
        inside the pool, so cores are not oversubscribed.
        """
        ids, X = self._check_query(userids, user_items)
        N = check_n(N)
        n = len(ids)
        out_ids = np.full((n, N), -1, dtype=np.int64)
        out_scores = np.full((n, N), -np.inf, dtype=np.float32)
        if n == 0:
            return out_ids, out_scores
        U = self._user_vectors(ids, X)
        empty = ~self._has_signal(ids, X)
        fallback = self._fallback_scores() if empty.any() else None
        if self.n_items >= PRUNE_MIN_ITEMS and fallback is None:
            step = PRUNE_USERS

            def run(start: int) -> None:
                stop = min(start + step, n)
                out_ids[start:stop], out_scores[start:stop] = self._top_n_pruned(
                    U[start:stop], X[start:stop] if filter_already_liked_items else None, N)
        else:
            FT = self._factors_t()
            step = chunk_rows(self.n_items)
            local = threading.local()  # one reused score buffer per thread: no page faults per chunk

            def run(start: int) -> None:
                stop = min(start + step, n)
                buf = getattr(local, "buf", None)
                if buf is None:
                    buf = local.buf = np.empty((min(step, n), self.n_items), dtype=np.float32)
                s = np.matmul(U[start:stop], FT, out=buf[: stop - start])
                e = empty[start:stop]
                if fallback is not None and e.any():
                    s[e] = fallback
                if filter_already_liked_items:
                    mask_rows(s, X[start:stop])
                out_ids[start:stop], out_scores[start:stop] = self._rank(s, N)

        starts = range(0, n, step)
        threads = min(self.num_threads or os.cpu_count() or 1, len(starts))
        if threads <= 1:
            for start in starts:
                run(start)
            return out_ids, out_scores
        with _one_blas_thread(), ThreadPoolExecutor(threads) as pool:
            for f in [pool.submit(run, start) for start in starts]:
                f.result()
        return out_ids, out_scores

    def _norm_order(self) -> NormIndex:
        """Items by descending factor norm (:func:`~musicrec.models.pruned_topn.norm_index`), cached."""
        cached = getattr(self, "_norm_cache", None)
        if cached is None or cached[0] is not self.item_factors or cached[1] is not self._order:
            m = self.n_items
            tie = np.arange(m) if self._order is None else order_rank(self._order, m)
            cached = self._norm_cache = (self.item_factors, self._order,
                                         norm_index(self.item_factors, self._factors_t(), tie))
        return cached[2]

    def _top_n_pruned(self, U: np.ndarray, X: sp.csr_matrix | None, N: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``N`` of ``U @ item_factors.T`` (rows of ``X`` masked): :func:`pruned_top_n`."""
        return pruned_top_n(self._norm_order(), U, X, N)

    def _item_similarity(self, itemids) -> np.ndarray:
        return cosine_rows(self.item_factors[itemids], self.item_factors)

    def _ann_vectors(self) -> dict[str, np.ndarray]:
        return {"recommend": self.item_factors, "similar": unit_rows(self.item_factors)}

    def _ann_user_queries(self, userids: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        return self._user_vectors(userids, X)

    def _ann_item_queries(self, items: np.ndarray) -> np.ndarray:
        return unit_rows(self.item_factors[items])

    def _get_state(self):
        return self._ann_meta(), {
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

    ``fit`` weighs the play counts by ``train.als.weighting`` (e.g. BM25) first;
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
        use_gpu: bool | str = False,
        ann: dict[str, Any] | None = None,
        *,
        seed: int = 0,
        num_threads: int = 0,
    ):
        super().__init__(seed=seed, num_threads=num_threads, ann=ann)
        self.factors = _pos_int("factors", factors)
        self.regularization = _num("regularization", regularization, positive=False)
        self.alpha = _num("alpha", alpha, positive=True)
        self.iterations = _pos_int("iterations", iterations)
        if not (isinstance(use_gpu, bool) or use_gpu == "auto"):
            raise ValueError(f"use_gpu must be false, true or auto (got {use_gpu!r})")
        # how to fit, not what is fitted: not in get_params / model.json (the saved factors are numpy either way)
        self.use_gpu = use_gpu
        if use_gpu is True:  # fail fast, before any data is read or model fitted
            ok, why = gpu_available()
            if not ok:
                raise no_gpu_error("als", why)
        self.fitted_on_gpu: bool | None = None
        self._implicit = None
        # called as fit_callback(iteration, seconds, loss) after each ALS iteration, implicit_model holding the
        # factors learnt so far (musicrec.tuning reports intermediate validation scores from it to prune trials)
        self.fit_callback = None

    @property
    def implicit_model(self):
        """The ``implicit`` CPU ALS object holding the fitted factors (used for fold-in), or None before fit."""
        return self._implicit

    def get_params(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
        }

    def _new_implicit_model(self, use_gpu: bool | str = False):
        cls, on_gpu = implicit_backend("als", use_gpu)
        kw = {} if on_gpu else {"num_threads": self.num_threads}
        return cls(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.seed,
            **kw,
        ), on_gpu

    def _fit(self, X, *, item_features, item_last_ts) -> None:
        model, on_gpu = self._new_implicit_model(self.use_gpu)
        self._implicit = model
        with Progress(f"train: {self.name}", self.iterations, unit="iterations") as bar:
            def callback(*args: Any) -> None:
                bar.update(1)
                if self.fit_callback is not None:  # tuning: report the iteration, maybe prune the trial
                    self.fit_callback(*args)

            model.fit(X, show_progress=False, callback=callback)
        if on_gpu:  # pragma: no cover - needs CUDA; factors come back as numpy, the CPU model serves
            model = model.to_cpu()
        self.fitted_on_gpu = on_gpu
        self._implicit = model
        self._keep_factors(model, X)

    def _after_load(self) -> None:
        model, _ = self._new_implicit_model()
        model.user_factors = self.user_factors
        model.item_factors = self.item_factors
        self._implicit = model

    def _fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        rows = np.arange(X.shape[0])
        return np.asarray(self._implicit.recalculate_user(rows, X), dtype=np.float32)


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
        ann: dict[str, Any] | None = None,
        *,
        seed: int = 0,
        num_threads: int = 0,
    ):
        super().__init__(seed=seed, num_threads=num_threads, ann=ann)
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
        cls, _ = implicit_backend("bpr")
        model = cls(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            num_threads=1,
            random_state=self.seed,
        )
        model.fit(X, show_progress=progress_mode() == "bar")  # implicit's own tqdm bar (no callback for BPR)
        self._keep_factors(model, X)

    def _fold_in(self, X: sp.csr_matrix) -> np.ndarray:
        weights = np.abs(X)
        sums = np.asarray(weights.sum(axis=1)).ravel()
        U = np.asarray(weights @ self.item_factors, dtype=np.float64) / np.where(sums > 0, sums, 1)[:, None]
        U[:, -1] = 1.0  # the bias column
        return U.astype(np.float32)
