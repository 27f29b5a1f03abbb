"""The one interface every recommender implements, plus shared helpers.

Conventions (as in :mod:`implicit` 0.7): CSR in, arrays out.

* ``fit(user_items)`` takes the confidence-weighted train matrix (users x items,
  float32 CSR).
* ``recommend(userids, user_items, N)`` is batched: ``user_items`` has one row per
  entry of ``userids`` (the items to filter and, for item-based models, the
  user's history). It returns ``ids`` int64 ``(n, N)`` and ``scores`` float32
  ``(n, N)``, sorted by descending score; rows are padded with id ``-1`` and
  score ``-inf`` when fewer than ``N`` candidates remain. Ties (zero scores
  included) are broken by training popularity, then by item index, so results
  are deterministic.
* A user id outside ``[0, n_users)`` (e.g. ``-1``) is a user unseen at fit
  (cold start): models that keep per-user state (ALS, BPR) derive it from the
  given row. Users without any signal (empty row and no fitted state) get the
  popularity ranking.
* ``save``/``load`` write ``model.json`` (name, format version, params, meta,
  SHA-256 of every file and of the JSON itself) and ``arrays.npz`` (numeric
  arrays, read back with ``allow_pickle=False``). No pickle anywhere.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

from musicrec.errors import DataError
from musicrec.io import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from musicrec.models.features import ItemFeatures

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
ARRAYS_NPZ = "arrays.npz"
# Scores of at most this many floats are materialised at once by ``recommend``.
_CHUNK_FLOATS = 1 << 24
# top_n: blocks per wanted item when bounding the N-th largest score (see top_n).
_TOPN_BLOCKS_PER_K = 16


class NotFittedError(ValueError):
    """The model was used before ``fit`` (or ``load``)."""


# --------------------------------------------------------------------------- checks


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


# --------------------------------------------------------------------------- ranking


def popularity_order(popularity: np.ndarray) -> np.ndarray:
    """Item indices by descending popularity, then ascending index (the tie-break order)."""
    return np.lexsort((np.arange(len(popularity)), -np.asarray(popularity, dtype=np.float64)))


_RANK_CACHE: list[tuple[np.ndarray, np.ndarray]] = []


def _order_rank(order: np.ndarray, m: int) -> np.ndarray:
    """Inverse permutation of ``order`` (position of each column), cached for the last order seen."""
    cached = _RANK_CACHE[0] if _RANK_CACHE else None  # read once: other threads may replace it
    if cached is not None and cached[0] is order and len(cached[1]) == m:
        return cached[1]
    rank = np.empty(m, dtype=np.int64)
    rank[np.asarray(order)] = np.arange(m)
    if isinstance(order, np.ndarray):
        _RANK_CACHE[:] = [(order, rank)]
    return rank


def top_n(scores: np.ndarray, N: int, order: np.ndarray | None = None, *,
          tie_rank: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top ``N`` columns of each row of ``scores`` (n, m), best first.

    Ties are broken by position in ``order`` (a permutation of the columns;
    default: column index), or, given ``tie_rank`` instead (distinct keys, one
    per column), by that key ascending: ``tie_rank = position in order``. Entries equal to ``-inf`` are not candidates: their
    slots are returned as id ``-1`` / score ``-inf`` (padding), as are the slots
    beyond the number of columns. NaN counts as ``-inf``.

    The result is the first ``N`` columns of each row in the order (score
    descending, ``order`` position ascending). Selection without a per-row
    partition: each row is cut into ``_TOPN_BLOCKS_PER_K * N`` blocks; the
    ``N``-th largest block maximum is a lower bound of the row's ``N``-th largest
    score (``N`` distinct blocks reach it), so only entries at or above it, in
    the about ``N`` blocks whose maximum reaches it, are candidates (ties at the
    bound all kept). One vectorised max-reduce over the scores, then work on a
    fraction of them; only the candidates are sorted.
    """
    scores = np.asarray(scores, dtype=np.float32)
    n, m = scores.shape
    ids = np.full((n, N), -1, dtype=np.int64)
    out = np.full((n, N), -np.inf, dtype=np.float32)
    k = min(N, m)
    if n == 0 or k == 0:
        return ids, out
    blocks = _TOPN_BLOCKS_PER_K * k
    if m < 2 * blocks:
        if np.isnan(scores).any():
            scores = np.where(np.isnan(scores), np.float32(-np.inf), scores)
        rows, cols = np.divmod(np.arange(n * m, dtype=np.int64), m)
    else:
        bs = m // blocks
        # block b = columns b, b + blocks, b + 2 * blocks, ...: the max over the middle axis is an
        # element-wise maximum of contiguous rows (SIMD), several times faster than over short runs
        body = scores[:, : blocks * bs].reshape(n, bs, blocks)
        tail = scores[:, blocks * bs:]
        bmax = body.max(axis=1)
        if tail.shape[1]:  # the tail is one more block
            bmax = np.concatenate([bmax, tail.max(axis=1, keepdims=True)], axis=1)
        if np.isnan(bmax).any():  # max propagates NaN: only then pay for the replacement
            return top_n(np.where(np.isnan(scores), np.float32(-np.inf), scores), N, order, tie_rank=tie_rank)
        nb = bmax.shape[1]
        bound = np.partition(bmax, nb - k, axis=1)[:, nb - k]
        # only blocks whose maximum reaches the bound hold candidates (about k of them)
        br, bb = np.nonzero(bmax >= bound[:, None])
        inb = bb < blocks
        r_b, b_b = br[inb], bb[inb]
        i, j = np.nonzero(body[r_b, :, b_b] >= bound[r_b][:, None])  # (selected blocks, bs)
        rows, cols = r_b[i], j * blocks + b_b[i]
        r_t = br[~inb]
        if r_t.size:
            i, j = np.nonzero(tail[r_t] >= bound[r_t][:, None])
            rows, cols = np.concatenate([rows, r_t[i]]), np.concatenate([cols, blocks * bs + j])
    vals = scores[rows, cols]
    # tie-break position of each candidate
    tie = tie_rank[cols] if tie_rank is not None else cols if order is None else _order_rank(order, m)[cols]
    srt = np.lexsort((tie, -vals, rows))  # by row, then score descending, then tie-break rank
    rows, cols, vals = rows[srt], cols[srt], vals[srt]
    counts = np.bincount(rows, minlength=n)  # >= k for every row
    take = (np.cumsum(counts) - counts)[:, None] + np.arange(k)
    sel, v = cols[take], vals[take]
    cand = v > -np.inf
    ids[:, :k] = np.where(cand, sel, -1)
    out[:, :k] = np.where(cand, v, -np.inf)
    return ids, out


def mask_rows(scores: np.ndarray, rows: sp.csr_matrix, value: float = -np.inf) -> None:
    """Set ``scores[r, j] = value`` for every stored entry (r, j) of ``rows`` (in place)."""
    r = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    scores[r, rows.indices] = value


def minmax_rows(scores: np.ndarray) -> np.ndarray:
    """Per-row min-max scaling to [0, 1]; constant rows become 0. Ignores non-finite entries."""
    s = np.asarray(scores, dtype=np.float32)
    finite = np.isfinite(s)
    lo = np.where(finite, s, np.inf).min(axis=1, keepdims=True)
    hi = np.where(finite, s, -np.inf).max(axis=1, keepdims=True)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span > 0, (s - lo) / np.where(span > 0, span, 1), 0).astype(np.float32)
    return np.where(finite, out, 0).astype(np.float32)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with each row of ``b`` (zero rows give 0)."""
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    a = a / np.where(na > 0, na, 1)
    b = b / np.where(nb > 0, nb, 1)
    return (a @ b.T).astype(np.float32)


def topk_csr_rows(rows: np.ndarray, k: int) -> sp.csr_matrix:
    """Keep the ``k`` largest positive entries of each row of a dense block, as CSR."""
    rows = np.asarray(rows, dtype=np.float32)
    n, m = rows.shape
    k = min(k, m)
    if k < m:
        idx = np.argpartition(-rows, k - 1, axis=1)[:, :k]
    else:
        idx = np.broadcast_to(np.arange(m), (n, m))
    vals = np.take_along_axis(rows, idx, axis=1)
    keep = vals > 0
    r = np.broadcast_to(np.arange(n)[:, None], idx.shape)[keep]
    out = sp.csr_matrix((vals[keep], (r, idx[keep])), shape=(n, m), dtype=np.float32)
    out.sort_indices()
    return out


# --------------------------------------------------------------------------- persistence helpers


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def pack_arrays(state: dict[str, np.ndarray | sp.spmatrix | None]) -> dict[str, np.ndarray]:
    """Flatten arrays and CSR matrices into plain ``.npz`` entries (``name__data`` etc.)."""
    flat: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if value is None:
            continue
        if sp.issparse(value):
            m = sp.csr_matrix(value)
            flat[f"{key}__data"] = m.data
            flat[f"{key}__indices"] = m.indices
            flat[f"{key}__indptr"] = m.indptr
            flat[f"{key}__shape"] = np.asarray(m.shape, dtype=np.int64)
        else:
            arr = np.asarray(value)
            if arr.dtype == object:
                raise TypeError(f"array {key!r} has dtype object and cannot be saved without pickle")
            flat[key] = arr
    return flat


class ArrayBundle:
    """Read access to a loaded ``arrays.npz`` that names the file in every error."""

    def __init__(self, path: Path, arrays: dict[str, np.ndarray]):
        self.path = path
        self._arrays = arrays

    def __contains__(self, key: str) -> bool:
        return key in self._arrays or f"{key}__data" in self._arrays

    def is_sparse(self, key: str) -> bool:
        """Whether ``key`` was saved as a sparse matrix (``key__data`` etc.)."""
        return f"{key}__data" in self._arrays

    def array(self, key: str, *, dtype: Any = None, shape: tuple[int | None, ...] | None = None) -> np.ndarray:
        if key not in self._arrays:
            raise DataError(f"{self.path}: missing array {key!r} (file modified or corrupt)")
        arr = self._arrays[key]
        if dtype is not None and arr.dtype != np.dtype(dtype):
            raise DataError(f"{self.path}: array {key!r} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
        if shape is not None and (
            arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape))
        ):
            raise DataError(f"{self.path}: array {key!r} has shape {arr.shape}, expected {shape}")
        return arr

    def csr(self, key: str, *, shape: tuple[int, int] | None = None) -> sp.csr_matrix:
        try:
            got = tuple(int(x) for x in self.array(f"{key}__shape", shape=(2,)))
            m = sp.csr_matrix(
                (self.array(f"{key}__data"), self.array(f"{key}__indices"), self.array(f"{key}__indptr")),
                shape=got,
            )
            m.check_format(full_check=True)
        except ValueError as err:
            if str(err).startswith(str(self.path)):
                raise
            raise DataError(f"{self.path}: sparse matrix {key!r} is invalid ({err})") from None
        if shape is not None and m.shape != tuple(shape):
            raise DataError(f"{self.path}: sparse matrix {key!r} has shape {m.shape}, expected {shape}")
        return m


def read_model_json(directory: Path | str) -> dict[str, Any]:
    """Read and verify ``model.json`` (JSON, self-checksum, required keys, format version)."""
    path = Path(directory) / MODEL_JSON
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: not found; {Path(directory)} is not a saved model directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object")
    checksum = doc.pop("sha256", None)
    if checksum != hashlib.sha256(_canonical(doc)).hexdigest():
        raise DataError(f"{path}: checksum mismatch (file modified or corrupt)")
    for key, typ in (("model", str), ("format_version", int), ("params", dict), ("meta", dict),
                     ("files", dict), ("seed", int), ("n_users", int), ("n_items", int)):
        if not isinstance(doc.get(key), typ):
            raise DataError(f"{path}: key {key!r} missing or not a {typ.__name__}")
    if doc["format_version"] != FORMAT_VERSION:
        raise DataError(
            f"{path}: format_version {doc['format_version']} is not supported (expected {FORMAT_VERSION})"
        )
    return doc


def verify_files(directory: Path, doc: dict[str, Any]) -> None:
    """Check the SHA-256 of every file listed in ``model.json``."""
    for rel, digest in sorted(doc["files"].items()):
        path = directory / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise DataError(f"{directory / MODEL_JSON}: bad file entry {rel!r}")
        if not path.is_file():
            raise DataError(f"{path}: missing (listed in {directory / MODEL_JSON})")
        if _sha256(path) != digest:
            raise DataError(f"{path}: checksum mismatch (file modified or corrupt)")


def load_bundle(directory: Path) -> ArrayBundle:
    return load_npz(directory / ARRAYS_NPZ)


def load_npz(path: Path) -> ArrayBundle:
    """Load every array of an ``.npz`` without pickle; errors name the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError) as err:
        raise DataError(f"{path}: not a valid array .npz file ({err})") from None
    return ArrayBundle(path, arrays)


# --------------------------------------------------------------------------- the interface


class Recommender(ABC):
    """Abstract base of every musicrec model.

    Subclasses implement ``_fit``, ``_score``, ``_item_similarity``,
    ``_get_state``/``_set_state`` and set ``name`` (and are listed in
    :data:`musicrec.models.MODELS`). ``__init__`` takes the
    model's ``train.<name>`` params as keywords plus ``seed`` and ``num_threads``.
    """

    name: ClassVar[str] = ""  # its key in the registry (musicrec.models.MODELS) and in params.yaml (train.<name>)

    def __init__(self, *, seed: int = 0, num_threads: int = 0):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer (got {seed!r})")
        if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 0:
            raise ValueError(f"num_threads must be a non-negative integer (got {num_threads!r})")
        self.seed = int(seed)
        self.num_threads = int(num_threads)
        self.n_users = 0
        self.n_items = 0
        self.item_popularity: np.ndarray | None = None  # users per item in the train matrix
        self._order: np.ndarray | None = None
        self._fitted = False

    # ---- params -----------------------------------------------------------
    @abstractmethod
    def get_params(self) -> dict[str, Any]:
        """The model's ``train.<name>`` params (JSON-serialisable)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args}, seed={self.seed})"

    # ---- fitting ----------------------------------------------------------
    def fit(
        self,
        user_items: sp.csr_matrix,
        *,
        item_features: ItemFeatures | None = None,
        item_last_ts: np.ndarray | None = None,
    ) -> Recommender:
        """Fit on the confidence-weighted ``user_items`` (users x items, CSR).

        ``item_features`` is required by ``content`` and ``hybrid``;
        ``item_last_ts`` (per-item last play time) is used by ``popularity`` when
        ``recent_days`` is set. Models ignore what they do not use.
        """
        X = check_user_items(user_items)
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"user_items must have at least one user and one item (got shape {X.shape})")
        if X.nnz == 0:
            raise ValueError("user_items has no interactions")
        if item_features is not None and item_features.n_items != X.shape[1]:
            raise ValueError(
                f"item_features has {item_features.n_items} items but user_items has {X.shape[1]} columns"
            )
        self.n_users, self.n_items = X.shape
        self.item_popularity = np.bincount(X.indices, minlength=self.n_items).astype(np.float32)
        self._fitted = False
        self._fit(X, item_features=item_features, item_last_ts=item_last_ts)
        self._order = popularity_order(self._tiebreak_scores())
        self._fitted = True
        return self

    @abstractmethod
    def _fit(self, X: sp.csr_matrix, *, item_features: ItemFeatures | None, item_last_ts: np.ndarray | None) -> None:
        ...

    def _set_popularity(self, popularity: np.ndarray) -> None:
        self.item_popularity = popularity
        self._order = popularity_order(self._tiebreak_scores())

    def _tiebreak_scores(self) -> np.ndarray:
        """Scores whose order breaks ties (and ranks users without signal)."""
        return self.item_popularity

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load() first")

    # ---- scoring ----------------------------------------------------------
    def _check_query(self, userids: Any, user_items: Any) -> tuple[np.ndarray, sp.csr_matrix]:
        self._check_fitted()
        ids = check_ids(userids, "userids")
        X = check_user_items(user_items, n_items=self.n_items)
        if X.shape[0] != len(ids):
            raise ValueError(
                f"user_items must contain 1 row for every user in userids (got {X.shape[0]} rows "
                f"for {len(ids)} userids)"
            )
        return ids, X

    @abstractmethod
    def _score(self, userids: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        """Dense float32 (n, n_items) scores; rows without signal may be anything."""

    def _has_signal(self, userids: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        """Rows the model can score itself; the others get the popularity fallback."""
        return np.diff(X.indptr) > 0

    def _fallback_scores(self) -> np.ndarray:
        s = self._tiebreak_scores().astype(np.float32)
        top = s.max() if s.size else 0
        return s / top if top > 0 else s

    def score(self, userids: np.ndarray, user_items: sp.csr_matrix) -> np.ndarray:
        """Dense float32 scores (len(userids), n_items), unfiltered. Meant for batches."""
        ids, X = self._check_query(userids, user_items)
        return self._score_checked(ids, X)

    def _score_checked(self, ids: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        if len(ids) == 0:
            return np.zeros((0, self.n_items), dtype=np.float32)
        scores = np.asarray(self._score(ids, X), dtype=np.float32)
        if scores.shape != (len(ids), self.n_items):  # pragma: no cover - subclass bug
            raise AssertionError(f"{type(self).__name__}._score returned shape {scores.shape}")
        empty = ~self._has_signal(ids, X)
        if empty.any():
            scores = np.array(scores, copy=True)
            scores[empty] = self._fallback_scores()
        return scores

    def recommend(
        self,
        userids: np.ndarray,
        user_items: sp.csr_matrix,
        N: int = 10,
        *,
        filter_already_liked_items: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``N`` items for each user: ``(ids int64 (n, N), scores float32 (n, N))``.

        ``user_items`` holds one row per userid. With ``filter_already_liked_items``
        no item stored in a user's row is returned. Padding: id -1, score -inf.
        """
        ids, X = self._check_query(userids, user_items)
        N = check_n(N)
        out_ids = np.full((len(ids), N), -1, dtype=np.int64)
        out_scores = np.full((len(ids), N), -np.inf, dtype=np.float32)
        step = max(1, _CHUNK_FLOATS // max(self.n_items, 1))
        for start in range(0, len(ids), step):
            stop = min(start + step, len(ids))
            rows = X[start:stop]
            scores = self._score_checked(ids[start:stop], rows)
            if filter_already_liked_items:
                scores = np.array(scores, copy=True)
                mask_rows(scores, rows)
            out_ids[start:stop], out_scores[start:stop] = self._rank(scores, N)
        return out_ids, out_scores

    def _rank(self, scores: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
        return top_n(scores, N, self._order)

    # ---- item similarity --------------------------------------------------
    @abstractmethod
    def _item_similarity(self, itemids: np.ndarray) -> np.ndarray:
        """Dense float32 (len(itemids), n_items) similarities."""

    def similar_items(self, itemids: np.ndarray, N: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``N`` items most similar to each of ``itemids`` (never the item itself)."""
        self._check_fitted()
        items = check_ids(itemids, "itemids", self.n_items)
        N = check_n(N)
        if len(items) == 0:
            return np.zeros((0, N), dtype=np.int64), np.zeros((0, N), dtype=np.float32)
        sims = np.array(self._item_similarity(items), dtype=np.float32, copy=True)
        sims[np.arange(len(items)), items] = -np.inf
        return top_n(sims, N, self._order)

    # ---- persistence ------------------------------------------------------
    @abstractmethod
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray | sp.spmatrix | None]]:
        """(JSON meta, arrays) describing the fitted model."""

    @abstractmethod
    def _set_state(self, meta: dict[str, Any], arrays: ArrayBundle) -> None:
        ...

    def _components(self) -> dict[str, Recommender]:
        """Sub-models saved in sub-directories (hybrid)."""
        return {}

    def save(self, directory: Path | str) -> None:
        """Write the fitted model to ``directory`` atomically (replacing it)."""
        self._check_fitted()
        with atomic_path(directory, directory=True) as tmp:
            self._write(tmp)

    def _write(self, directory: Path) -> None:
        meta, state = self._get_state()
        state = {"item_popularity": self.item_popularity, **state}
        with open(directory / ARRAYS_NPZ, "wb") as fh:
            np.savez(fh, **pack_arrays(state))
        for sub, comp in self._components().items():
            (directory / sub).mkdir()
            comp._write(directory / sub)
        files = {
            p.relative_to(directory).as_posix(): _sha256(p)
            for p in sorted(directory.rglob("*"))
            if p.is_file() and p != directory / MODEL_JSON
        }
        doc = {
            "model": self.name,
            "format_version": FORMAT_VERSION,
            "params": self.get_params(),
            "seed": self.seed,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "meta": meta,
            "files": files,
        }
        doc["sha256"] = hashlib.sha256(_canonical(doc)).hexdigest()
        (directory / MODEL_JSON).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path | str, *, num_threads: int = 0) -> Recommender:
        """Load a model saved by :meth:`save`; raises ValueError naming a bad file."""
        from musicrec.models.factory import load_model

        model = load_model(directory, num_threads=num_threads)
        if cls is not Recommender and not isinstance(model, cls):
            raise DataError(f"{Path(directory) / MODEL_JSON}: holds a {model.name!r} model, not {cls.name!r}")
        return model

    @classmethod
    def _from_saved(cls, directory: Path, doc: dict[str, Any], *, num_threads: int, verify: bool = True) -> Recommender:
        path = directory / MODEL_JSON
        if verify:
            verify_files(directory, doc)
        try:
            model = cls(**doc["params"], seed=doc["seed"], num_threads=num_threads)
        except (TypeError, ValueError) as err:
            raise DataError(f"{path}: invalid params for model {cls.name!r} ({err})") from None
        if doc["n_users"] < 0 or doc["n_items"] <= 0:
            raise DataError(f"{path}: invalid n_users/n_items")
        model.n_users, model.n_items = doc["n_users"], doc["n_items"]
        bundle = load_bundle(directory)
        popularity = bundle.array("item_popularity", dtype=np.float32, shape=(model.n_items,))
        try:
            model._set_state(doc["meta"], bundle)
        except (KeyError, TypeError, IndexError) as err:
            raise DataError(f"{path}: invalid model state ({type(err).__name__}: {err})") from None
        model._set_popularity(popularity)
        model._fitted = True
        return model
