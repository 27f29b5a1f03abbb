"""Approximate nearest neighbours over item vectors with FAISS (``faiss-cpu``): :class:`ANNIndex`.

One index answers "the ``k`` items with the largest inner product with a query
vector" (``faiss.METRIC_INNER_PRODUCT``): the MF models index their raw item
factors for ``recommend`` (user . item) and their L2-normalised factors for
``similar_items`` (cosine); the content model indexes its dense, L2-normalised
embeddings for both. The kind and its parameters come from ``train.<model>.ann``
(:class:`musicrec.models.ANNParams`):

* ``hnsw`` -- ``IndexHNSWFlat`` (graph; ``hnsw_m``, ``ef_construction``, ``ef_search``),
* ``ivf`` -- ``IndexIVFFlat`` over a flat inner-product quantizer (``ivf_nlist`` k-means
  cells, ``nprobe`` visited per query),
* ``flat`` -- ``IndexFlatIP``, exact (a baseline for tests and benchmarks).

Building runs FAISS on one OpenMP thread by default (``build_threads: 1``) so that the
index (and the saved file) is the same bytes on every run; the HNSW level generator (FAISS's own fixed seed) and
the k-means seed are fixed. Queries use FAISS's threads. Filtering (``exclude``, the items a user already
played) over-fetches ``k + max excluded`` neighbours and drops the excluded ones
afterwards, so every row still gets ``k`` results when the catalogue has them.

The index is stored with ``faiss.write_index`` (FAISS's own binary format, not
pickle) next to ``model.json``, which records its SHA-256 like every model file
(:func:`musicrec.models.persist.write_model_json`). ``faiss`` is imported only here,
when an index is built or read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from musicrec.errors import DataError

KINDS = ("hnsw", "ivf", "flat")
_KMEANS_SEED = 1234


@dataclass(frozen=True)
class ANNSettings:
    """The ``train.<model>.ann`` params a model keeps (a validated :class:`musicrec.models.ANNParams` dump)."""

    enabled: bool = False
    kind: str = "hnsw"
    min_items: int = 50_000
    hnsw_m: int = 32
    ef_construction: int = 100
    ef_search: int = 128
    ivf_nlist: int = 1024
    nprobe: int = 32
    build_threads: int = 1

    @classmethod
    def from_params(cls, params: dict[str, Any] | ANNSettings | None) -> ANNSettings:
        """From a ``train.<model>.ann`` mapping (validated by :class:`musicrec.models.ANNParams`)."""
        if params is None:
            return cls()
        if isinstance(params, ANNSettings):
            return params
        from musicrec.models import ANNParams

        return cls(**ANNParams.model_validate(params).model_dump())

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def wants_index(self, n_items: int) -> bool:
        """Whether a model over ``n_items`` items builds (and serving uses) an index."""
        return self.enabled and n_items >= self.min_items


@contextlib.contextmanager
def _omp_threads(n: int | None) -> Iterator[None]:
    import faiss

    if n is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _as_queries(x: np.ndarray, d: int) -> np.ndarray:
    q = np.ascontiguousarray(x, dtype=np.float32)
    if q.ndim != 2 or q.shape[1] != d:
        raise ValueError(f"queries must have shape (n, {d}) (got {q.shape})")
    return q


class ANNIndex:
    """A FAISS inner-product index over ``n_items`` vectors of dimension ``d``.

    Build with :meth:`build`, query with :meth:`search`, store with :meth:`save` /
    :meth:`load`. ``settings`` holds the params it was built with.
    """

    def __init__(self, index: Any, settings: ANNSettings):
        self.index = index
        self.settings = settings

    @property
    def n_items(self) -> int:
        return int(self.index.ntotal)

    @property
    def d(self) -> int:
        return int(self.index.d)

    @classmethod
    def build(cls, vectors: np.ndarray, settings: ANNSettings) -> ANNIndex:
        """Index the rows of ``vectors`` (float32, (n_items, d)).

        ``settings.build_threads`` OpenMP threads build it (1, the default, makes the
        index reproducible; 0 = FAISS's default, all cores).
        """
        import faiss

        X = np.ascontiguousarray(vectors, dtype=np.float32)
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"vectors must be a non-empty 2-D array (got shape {X.shape})")
        if not np.isfinite(X).all():
            raise ValueError("vectors contain NaN or infinite values")
        n, d = X.shape
        with _omp_threads(settings.build_threads or None):
            if settings.kind == "hnsw":
                index = faiss.IndexHNSWFlat(d, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
                index.hnsw.efConstruction = settings.ef_construction
                index.hnsw.efSearch = settings.ef_search
                index.add(X)
            elif settings.kind == "ivf":
                nlist = min(settings.ivf_nlist, n)  # k-means needs at least one vector per cell
                quantizer = faiss.IndexFlatIP(d)
                index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
                index.cp.seed = _KMEANS_SEED
                index.cp.min_points_per_centroid = 1  # no warning for small catalogues
                index.train(X)
                index.add(X)
                index.nprobe = min(settings.nprobe, nlist)
            elif settings.kind == "flat":
                index = faiss.IndexFlatIP(d)
                index.add(X)
            else:
                raise ValueError(f"unknown ANN kind {settings.kind!r}; expected one of {', '.join(KINDS)}")
        return cls(index, settings)

    def memory_bytes(self) -> int:
        """Size of the serialised index (vectors, graph or lists): what it holds in memory."""
        import faiss

        return int(faiss.serialize_index(self.index).nbytes)

    def search(self, queries: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None,
               ) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k`` by inner product: ``(ids int64 (n, k), scores float32 (n, k))``.

        Row ``r`` of ``exclude`` (CSR, one row per query) lists items that must not be
        returned. Rows are padded with id -1 and score -inf when fewer remain.
        """
        import faiss

        Q = _as_queries(queries, self.d)
        n = Q.shape[0]
        k = int(k)
        if k <= 0:
            raise ValueError(f"k must be a positive integer (got {k})")
        extra = 0
        if exclude is not None:
            if exclude.shape[0] != n:
                raise ValueError(f"exclude must have {n} rows (got {exclude.shape[0]})")
            extra = int(np.diff(exclude.indptr).max(initial=0))
        fetch = min(k + extra, self.n_items)
        ids = np.full((n, k), -1, dtype=np.int64)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        if n == 0 or fetch == 0:
            return ids, scores
        params = None
        if self.settings.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.settings.ef_search, fetch))
        elif self.settings.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=self.index.nprobe)
        D, I = self.index.search(Q, fetch, params=params)
        if exclude is None:
            take = min(k, fetch)
            ids[:, :take], scores[:, :take] = I[:, :take], D[:, :take]
        else:
            if not exclude.has_sorted_indices:
                exclude = exclude.copy()
                exclude.sort_indices()
            for r in range(n):
                lo, hi = exclude.indptr[r], exclude.indptr[r + 1]
                row_i, row_d = I[r], D[r]
                keep = row_i >= 0
                if hi > lo:  # membership by binary search in the row's sorted item indices
                    ex = exclude.indices[lo:hi]
                    pos = np.minimum(np.searchsorted(ex, row_i), hi - lo - 1)
                    keep &= ex[pos] != row_i
                got_i, got_d = row_i[keep][:k], row_d[keep][:k]
                ids[r, : len(got_i)], scores[r, : len(got_d)] = got_i, got_d
        missing = ids < 0
        scores[missing] = -np.inf
        ids[missing] = -1
        return ids, scores.astype(np.float32, copy=False)

    # ---- persistence (FAISS's binary format, no pickle) -----------------------------
    def save(self, path: Path) -> None:
        """Write the index to ``path`` (inside a model directory being written atomically)."""
        import faiss

        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, settings: ANNSettings, *, n_items: int, d: int) -> ANNIndex:
        """Read an index written by :meth:`save`; it must hold ``n_items`` vectors of dimension ``d``."""
        import faiss

        try:
            index = faiss.read_index(str(path))
        except RuntimeError as err:
            raise DataError(f"{path}: not a valid FAISS index ({str(err).splitlines()[0] if str(err) else err})") from None
        if int(index.ntotal) != n_items or int(index.d) != d:
            raise DataError(f"{path}: the index holds {index.ntotal} vectors of dimension {index.d}, "
                            f"expected {n_items} of dimension {d}")
        if settings.kind == "hnsw" and hasattr(index, "hnsw"):
            index.hnsw.efSearch = settings.ef_search
        elif settings.kind == "ivf" and hasattr(index, "nprobe"):
            index.nprobe = min(settings.nprobe, int(index.nlist))
        return cls(index, settings)


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` divided by their L2 norm (zero rows stay zero), float32."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.ascontiguousarray(X / np.where(norms > 0, norms, 1), dtype=np.float32)


class ANNMixin:
    """ANN serving for a :class:`~musicrec.models.base.Recommender` (put it first among the bases).

    The model declares its indexed vectors in :meth:`_ann_vectors` (``{"recommend": ...,
    "similar": ...}``, or one ``{"items": ...}`` that serves both) and its query vectors in
    :meth:`_ann_user_queries` / :meth:`_ann_item_queries`; then ``fit`` builds the indexes when
    ``settings.wants_index(n_items)``, ``save`` writes them as ``ann_<name>.faiss`` (their
    SHA-256 in ``model.json``, their settings in ``meta["ann"]``, which the model's
    ``_get_state`` returns via :meth:`_ann_meta`), and ``load`` reads them back.
    :meth:`ann_recommend` and :meth:`ann_similar_items` answer like ``recommend`` /
    ``similar_items`` through the indexes (exactly where there is none, and for rows
    without a query vector, which get the model's own fallback). ``recommend`` and
    ``similar_items`` themselves stay exact: evaluation never goes through an index.
    """

    ann_settings: ANNSettings
    ann_indexes: dict[str, ANNIndex]

    def _init_ann(self, ann: dict[str, Any] | ANNSettings | None) -> None:
        self.ann_settings = ANNSettings.from_params(ann)
        self.ann_indexes = {}

    # ---- what the model provides ------------------------------------------------------
    def _ann_vectors(self) -> dict[str, np.ndarray]:  # pragma: no cover - every user overrides it
        raise NotImplementedError

    def _ann_user_queries(self, userids: np.ndarray, X: sp.csr_matrix) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _ann_item_queries(self, items: np.ndarray) -> np.ndarray:  # pragma: no cover
        """Query vectors of ``items`` for the ``similar`` index."""
        raise NotImplementedError

    def _ann_index(self, purpose: str) -> ANNIndex | None:
        """The index for ``purpose`` ("recommend" or "similar"); an ``items`` index serves both."""
        return self.ann_indexes.get(purpose, self.ann_indexes.get("items"))

    # ---- building, saving, loading ------------------------------------------------------
    @property
    def has_ann(self) -> bool:
        """Whether serving answers through an index (built at fit or loaded)."""
        return bool(self.ann_indexes)

    def fit(self, *args: Any, **kwargs: Any):
        out = super().fit(*args, **kwargs)  # type: ignore[misc]
        self.build_ann()
        return out

    def build_ann(self, settings: ANNSettings | None = None) -> None:
        """(Re)build the indexes with ``settings`` (default: the model's); none below ``min_items``."""
        if settings is not None:
            self.ann_settings = settings
        self.ann_indexes = {}
        if self.ann_settings.wants_index(self.n_items):  # type: ignore[attr-defined]
            self.ann_indexes = {name: ANNIndex.build(v, self.ann_settings) for name, v in self._ann_vectors().items()}

    def _ann_meta(self) -> dict[str, Any]:
        """``{"ann": {...}}`` for ``_get_state``'s meta when the model has indexes, else ``{}``."""
        if not self.ann_indexes:
            return {}
        return {"ann": {"settings": self.ann_settings.as_dict(),
                        "files": {name: f"ann_{name}.faiss" for name in sorted(self.ann_indexes)}}}

    def _write(self, directory: Path) -> None:
        for name, index in self.ann_indexes.items():
            index.save(directory / f"ann_{name}.faiss")
        super()._write(directory)  # type: ignore[misc]

    @classmethod
    def _from_saved(cls, directory: Path, doc: dict[str, Any], **kwargs: Any):
        model = super()._from_saved(directory, doc, **kwargs)  # type: ignore[misc]
        meta = doc["meta"].get("ann")
        if meta is None:
            return model
        path = directory / "model.json"
        try:
            settings = ANNSettings.from_params(meta["settings"])
            files = dict(meta["files"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{path}: meta.ann is invalid ({type(err).__name__}: {err})") from None
        vectors = model._ann_vectors()
        model.ann_settings = settings
        for name, rel in sorted(files.items()):
            if name not in vectors or rel != f"ann_{name}.faiss" or rel not in doc["files"]:
                raise DataError(f"{path}: meta.ann.files has an unexpected entry {name!r}: {rel!r}")
            model.ann_indexes[name] = ANNIndex.load(directory / rel, settings, n_items=model.n_items,
                                                    d=vectors[name].shape[1])
        return model

    # ---- answering through the indexes ------------------------------------------------
    def ann_recommend(self, userids: np.ndarray, user_items: sp.csr_matrix, N: int = 10, *,
                      filter_already_liked_items: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`recommend` through the ``recommend`` index (approximate; exact without one).

        With ``filter_already_liked_items`` the index is asked for ``N`` + the longest
        row's items and the user's own items are dropped from its answer.
        """
        index = self._ann_index("recommend")
        if index is None:
            return self.recommend(userids, user_items, N, filter_already_liked_items=filter_already_liked_items)
        from musicrec.models.checks import check_n

        ids, X = self._check_query(userids, user_items)  # type: ignore[attr-defined]
        N = check_n(N)
        Q = self._ann_user_queries(ids, X)
        return self._ann_answer(index, Q, X if filter_already_liked_items else None, N,
                                lambda rows: self.recommend(ids[rows], X[rows], N,
                                                            filter_already_liked_items=filter_already_liked_items))

    def ann_similar_items(self, itemids: np.ndarray, N: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`similar_items` through the ``similar`` index (approximate; exact without one)."""
        index = self._ann_index("similar")
        if index is None:
            return self.similar_items(itemids, N)
        from musicrec.models.checks import check_ids, check_n

        self._check_fitted()  # type: ignore[attr-defined]
        items = check_ids(itemids, "itemids", self.n_items)  # type: ignore[attr-defined]
        N = check_n(N)
        Q = self._ann_item_queries(items)
        itself = sp.csr_matrix((np.ones(len(items), dtype=np.float32), items, np.arange(len(items) + 1)),
                               shape=(len(items), self.n_items))  # type: ignore[attr-defined]
        return self._ann_answer(index, Q, itself, N, lambda rows: self.similar_items(items[rows], N))

    def _ann_answer(self, index: ANNIndex, Q: np.ndarray, exclude: sp.csr_matrix | None, N: int,
                    exact: Any) -> tuple[np.ndarray, np.ndarray]:
        """Search ``index`` for the rows with a non-zero query; ``exact(rows)`` answers the others."""
        n = Q.shape[0]
        ids = np.full((n, N), -1, dtype=np.int64)
        scores = np.full((n, N), -np.inf, dtype=np.float32)
        if n == 0:
            return ids, scores
        signal = np.linalg.norm(Q, axis=1) > 0
        rows = np.flatnonzero(signal)
        if len(rows) == n:
            ids[:], scores[:] = index.search(Q, N, exclude=exclude)
        elif len(rows):
            ids[rows], scores[rows] = index.search(Q[rows], N, exclude=None if exclude is None else exclude[rows])
        rest = np.flatnonzero(~signal)
        if len(rest):
            ids[rest], scores[rest] = exact(rest)
        return ids, scores
