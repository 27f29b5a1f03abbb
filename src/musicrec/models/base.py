"""The one interface every recommender implements: :class:`Recommender`.

Conventions (as in :mod:`implicit` 0.7): CSR in, arrays out.

* ``fit(user_items)`` takes the train play counts (users x items, CSR); a model
  whose ``train.<name>`` section has a ``weighting`` (:class:`~musicrec.models.WeightedParams`)
  weighs them itself (:mod:`~musicrec.models.weighting`), and weighs the rows given to
  ``recommend`` / ``score`` the same way.
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

The helpers it is built on live beside it: argument checks in
:mod:`~musicrec.models.checks`, the top-N kernel and score helpers in
:mod:`~musicrec.models.ranking`, the on-disk format in :mod:`~musicrec.models.persist`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

from musicrec.errors import DataError
from musicrec.io import atomic_path
from musicrec.models import MODELS, WEIGHTING_KEYS, WeightedParams, model_class
from musicrec.models.checks import check_ids, check_n, check_user_items
from musicrec.models.persist import (
    ARRAYS_NPZ,
    FORMAT_VERSION,
    MODEL_JSON,
    ArrayBundle,
    load_bundle,
    read_model_json,
    verify_files,
    write_model_json,
    write_npz,
)
from musicrec.models.ranking import mask_rows, popularity_order, top_n
from musicrec.models.weighting import InputWeighting

if TYPE_CHECKING:  # pragma: no cover
    from musicrec.models.features import ItemFeatures

# Scores of at most this many floats are materialised at once by ``recommend``.
_CHUNK_FLOATS = 1 << 24


class NotFittedError(ValueError):
    """The model was used before ``fit`` (or ``load``)."""


class Recommender(ABC):
    """Abstract base of every musicrec model.

    Subclasses implement ``_fit``, ``_score``, ``_item_similarity``,
    ``_get_state``/``_set_state`` and set ``name`` (and are listed in
    :data:`musicrec.models.MODELS`). ``__init__`` takes the
    model's ``train.<name>`` params as keywords plus ``seed`` and ``num_threads``.
    """

    name: ClassVar[str] = ""  # its key in the registry (musicrec.models.MODELS) and in params.yaml (train.<name>)
    has_components: ClassVar[bool] = False  # built from other models (models.composite): takes component_params

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
        # the input weighting (train.<name>.weighting); models without one see the values as given
        self.input_weighting = InputWeighting("raw")

    @classmethod
    def from_params(cls, params: dict[str, Any], *, seed: int = 0, num_threads: int = 0, **extra: Any) -> Recommender:
        """A model from its whole ``train.<name>`` section: the weighting keys go to :attr:`input_weighting`."""
        own = {k: v for k, v in params.items() if k not in WEIGHTING_KEYS or not cls.is_weighted()}
        model = cls(**own, seed=seed, num_threads=num_threads, **extra)
        if cls.is_weighted():
            model.input_weighting = InputWeighting.from_params(params)
        return model

    @classmethod
    def is_weighted(cls) -> bool:
        """Whether this model's params section has the input weighting keys."""
        return issubclass(MODELS[cls.name].Params, WeightedParams)

    def all_params(self) -> dict[str, Any]:
        """:meth:`get_params` plus the weighting keys: the whole ``train.<name>`` section, as saved."""
        extra = self.input_weighting.params() if self.is_weighted() else {}
        return {**self.get_params(), **extra}

    # ---- params -----------------------------------------------------------
    @abstractmethod
    def get_params(self) -> dict[str, Any]:
        """The model's ``train.<name>`` params (JSON-serialisable)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.all_params().items())
        return f"{type(self).__name__}({args}, seed={self.seed})"

    # ---- fitting ----------------------------------------------------------
    def fit(
        self,
        user_items: sp.csr_matrix,
        *,
        item_features: ItemFeatures | None = None,
        item_last_ts: np.ndarray | None = None,
    ) -> Recommender:
        """Fit on the train counts ``user_items`` (users x items, CSR), weighted by :attr:`input_weighting`.

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
        self.input_weighting = self.input_weighting.fit(X)
        self._fit(self.input_weighting(X), item_features=item_features, item_last_ts=item_last_ts)
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
        return ids, self.input_weighting(X)

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

    def item_similarity(self, itemids: np.ndarray) -> np.ndarray:
        """Dense float32 ``(len(itemids), n_items)`` similarities of ``itemids`` to every item (unfiltered)."""
        self._check_fitted()
        items = check_ids(itemids, "itemids", self.n_items)
        return self._item_similarity(items)

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

    @classmethod
    def component_names(cls, params: dict[str, Any]) -> tuple[str, ...]:
        """The registered models this one is built from, given its params (composites: the hybrids)."""
        return ()

    def _components(self) -> dict[str, Recommender]:
        """Sub-models saved in sub-directories, by role (composites)."""
        return {}

    def _set_component(self, role: str, model: Recommender) -> None:
        raise AssertionError(f"{type(self).__name__} has no components")  # pragma: no cover

    @classmethod
    def _saved_kwargs(cls, meta: dict[str, Any], path: Path) -> dict[str, Any]:
        """Extra constructor keywords read from a saved ``model.json``'s meta (composites: component_params)."""
        return {}

    def save(self, directory: Path | str) -> None:
        """Write the fitted model to ``directory`` atomically (replacing it)."""
        self._check_fitted()
        with atomic_path(directory, directory=True) as tmp:
            self._write(tmp)

    def _write(self, directory: Path) -> None:
        meta, state = self._get_state()
        state = {"item_popularity": self.item_popularity, **state}
        if self.input_weighting.item_norm is not None:
            state["weighting_item_norm"] = self.input_weighting.item_norm
        write_npz(directory / ARRAYS_NPZ, state)
        for sub, comp in self._components().items():
            (directory / sub).mkdir()
            comp._write(directory / sub)
        write_model_json(directory, {
            "model": self.name,
            "format_version": FORMAT_VERSION,
            "params": self.all_params(),
            "seed": self.seed,
            "n_users": self.n_users,
            "n_items": self.n_items,
            "meta": meta,
        })

    @classmethod
    def load(cls, directory: Path | str, *, num_threads: int = 0) -> Recommender:
        """Load a model saved by :meth:`save`, dispatching on ``model.json``'s ``"model"`` (the registry).

        Called on a subclass, the saved model must be one. A missing, tampered or
        corrupt file raises ValueError naming the file.
        """
        directory = Path(directory)
        doc = read_model_json(directory)
        if doc["model"] not in MODELS:
            raise DataError(f"{directory / MODEL_JSON}: unknown model {doc['model']!r}")
        model = model_class(doc["model"])._from_saved(directory, doc, num_threads=num_threads)
        if cls is not Recommender and not isinstance(model, cls):
            raise DataError(f"{Path(directory) / MODEL_JSON}: holds a {model.name!r} model, not {cls.name!r}")
        return model

    @classmethod
    def _from_saved(cls, directory: Path, doc: dict[str, Any], *, num_threads: int, verify: bool = True) -> Recommender:
        path = directory / MODEL_JSON
        if verify:
            verify_files(directory, doc)
        try:
            model = cls.from_params(doc["params"], seed=doc["seed"], num_threads=num_threads,
                                    **cls._saved_kwargs(doc["meta"], path))
        except (TypeError, ValueError) as err:
            if str(err).startswith(str(path)):
                raise
            raise DataError(f"{path}: invalid params for model {cls.name!r} ({err})") from None
        if doc["n_users"] < 0 or doc["n_items"] <= 0:
            raise DataError(f"{path}: invalid n_users/n_items")
        model.n_users, model.n_items = doc["n_users"], doc["n_items"]
        for role, part in model._components().items():
            sub = directory / role
            sub_doc = read_model_json(sub)
            if sub_doc["model"] != part.name:
                raise DataError(f"{sub / MODEL_JSON}: holds {sub_doc['model']!r}, expected {part.name!r}")
            loaded = model_class(part.name)._from_saved(sub, sub_doc, num_threads=num_threads)
            if (loaded.n_users, loaded.n_items) != (model.n_users, model.n_items):
                raise DataError(f"{sub / MODEL_JSON}: shape differs from the {cls.name!r} model's")
            model._set_component(role, loaded)
        bundle = load_bundle(directory)
        popularity = bundle.array("item_popularity", dtype=np.float32, shape=(model.n_items,))
        if model.input_weighting.needs_fit:
            norm = bundle.array("weighting_item_norm", dtype=np.float64, shape=(model.n_items,))
            model.input_weighting = model.input_weighting.with_item_norm(norm)
        try:
            model._set_state(doc["meta"], bundle)
        except (KeyError, TypeError, IndexError) as err:
            raise DataError(f"{path}: invalid model state ({type(err).__name__}: {err})") from None
        model._set_popularity(popularity)
        model._fitted = True
        return model
