"""Content-based recommender over item feature vectors (tags + audio).

A user's profile is the confidence-weighted mean of the vectors of the items
in their row; an item's score is the dot product of its (L2-normalised)
vector with the profile. No play of an item is needed to score it, so the
model serves new users from a few liked tracks and new tracks without plays.

``embedding``: ``tfidf`` scores with the sparse TF-IDF + audio vectors of
:class:`~musicrec.models.features.ItemFeatures`; ``tfidf_svd`` with dense embeddings
(:func:`~musicrec.models.features.dense_embeddings`: truncated SVD of the TF-IDF tags,
``svd_dim`` components, fitted at ``fit`` with the model's seed, plus the audio
block), saved with the model. With dense embeddings ``ann`` (``train.content.ann``)
can index them (:mod:`musicrec.models.ann`) for "more like this" and cold-start
recommendations over large catalogues. Explanations always use the named sparse
features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from musicrec.errors import DataError
from musicrec.models.ann import ANNMixin
from musicrec.models.features import ItemFeatures, dense_embeddings
from musicrec.models.base import Recommender
from musicrec.models.persist import ArrayBundle


EMBEDDINGS = ("tfidf", "tfidf_svd")


class ContentRecommender(ANNMixin, Recommender):
    """Needs ``item_features`` at ``fit``; re-weights them with this model's ``tag_weight``/``audio_weight``."""

    name = "content"

    def __init__(self, tag_weight: float = 1.0, audio_weight: float = 0.5, embedding: str = "tfidf",
                 svd_dim: int = 64, ann: dict[str, Any] | None = None, *, seed: int = 0, num_threads: int = 0):
        super().__init__(seed=seed, num_threads=num_threads)
        if embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {', '.join(EMBEDDINGS)} (got {embedding!r})")
        if isinstance(svd_dim, bool) or not isinstance(svd_dim, (int, np.integer)) or svd_dim <= 0:
            raise ValueError(f"svd_dim must be a positive integer (got {svd_dim!r})")
        self.embedding = embedding
        self.svd_dim = int(svd_dim)
        self.embeddings: np.ndarray | None = None  # dense (n_items, d) for tfidf_svd
        self._init_ann(ann)
        if self.ann_settings.enabled and embedding != "tfidf_svd":
            raise ValueError("ann.enabled needs embedding: tfidf_svd (FAISS indexes dense vectors)")
        for key, w in (("tag_weight", tag_weight), ("audio_weight", audio_weight)):
            if isinstance(w, bool) or not isinstance(w, (int, float, np.number)) or not np.isfinite(w) or w < 0:
                raise ValueError(f"{key} must be a finite number >= 0 (got {w!r})")
        if tag_weight == 0 and audio_weight == 0:
            raise ValueError("tag_weight and audio_weight must not both be 0")
        self.tag_weight = float(tag_weight)
        self.audio_weight = float(audio_weight)
        self.features: ItemFeatures | None = None

    def get_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"tag_weight": self.tag_weight, "audio_weight": self.audio_weight}
        if self.embedding != "tfidf":  # the default adds no keys: model.json of a tfidf model is unchanged
            params.update(embedding=self.embedding, svd_dim=self.svd_dim)
        return params

    @property
    def item_vectors(self) -> sp.csr_matrix:
        """(n_items, n_features) float32 CSR, L2-normalised rows (zero rows: no metadata)."""
        self._check_fitted()
        return self.features.vectors

    def _fit(self, X, *, item_features, item_last_ts) -> None:
        if item_features is None:
            raise ValueError(f"the {self.name!r} model needs item_features at fit (see musicrec.models.features)")
        if (item_features.tag_weight, item_features.audio_weight) != (self.tag_weight, self.audio_weight):
            item_features = item_features.reweighted(self.tag_weight, self.audio_weight)
        self.features = item_features
        self.embeddings = None
        if self.embedding == "tfidf_svd":
            self.embeddings = dense_embeddings(item_features, self.svd_dim, seed=self.seed)

    def _dense_profiles(self, X: sp.csr_matrix) -> np.ndarray:
        """Weighted mean embedding of each row of ``X`` (``tfidf_svd``)."""
        W = abs(sp.csr_matrix(X, dtype=np.float32))
        sums = np.asarray(W.sum(axis=1)).ravel()
        P = np.asarray(W @ self.embeddings, dtype=np.float32)
        return P / np.where(sums > 0, sums, 1).astype(np.float32)[:, None]

    def user_profiles(self, X: sp.csr_matrix) -> sp.csr_matrix:
        """Weighted mean item vector of each row of ``X`` (rows without items give zeros)."""
        W = abs(sp.csr_matrix(X, dtype=np.float32))
        sums = np.asarray(W.sum(axis=1)).ravel()
        scale = sp.diags(np.where(sums > 0, 1.0 / np.where(sums > 0, sums, 1), 0).astype(np.float32))
        return sp.csr_matrix(scale @ (W @ self.features.vectors), dtype=np.float32)

    def _has_signal(self, userids, X) -> np.ndarray:
        # a row whose items all lack metadata has no content signal either
        if self.embeddings is not None:
            return np.abs(self._dense_profiles(X)).sum(axis=1) > 0
        profiles = self.user_profiles(X)
        return np.diff(profiles.indptr) > 0

    def _score(self, userids, X) -> np.ndarray:
        if self.embeddings is not None:
            return np.asarray(self._dense_profiles(X) @ self.embeddings.T, dtype=np.float32)
        profiles = self.user_profiles(X)
        return np.asarray((profiles @ self.features.vectors.T).toarray(), dtype=np.float32)

    def _item_similarity(self, itemids) -> np.ndarray:
        if self.embeddings is not None:
            return np.asarray(self.embeddings[itemids] @ self.embeddings.T, dtype=np.float32)
        V = self.features.vectors
        return np.asarray((V[itemids] @ V.T).toarray(), dtype=np.float32)

    def explain(self, user_items_row: sp.csr_matrix, itemid: int, n: int = 5) -> list[tuple[str, float]]:
        """Named features shared by a user's profile and an item, largest contribution first."""
        self._check_fitted()
        if not 0 <= itemid < self.n_items:
            raise ValueError(f"itemid must lie in [0, {self.n_items}) (got {itemid})")
        profile = self.user_profiles(user_items_row).toarray().ravel()
        return self.features.top_features(profile * self.features.vectors[itemid].toarray().ravel(), n)

    # ---- ANN (tfidf_svd only: ann.enabled needs dense embeddings) ---------------------
    def _ann_vectors(self) -> dict[str, np.ndarray]:
        if self.embeddings is None:
            return {}
        return {"items": self.embeddings}  # rows L2-normalised: inner product = cosine, for both uses

    def _ann_user_queries(self, userids: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        return self._dense_profiles(X)

    def _ann_item_queries(self, items: np.ndarray) -> np.ndarray:
        return self.embeddings[items]

    def _get_state(self):
        arrays = self.features.to_arrays()
        if self.embeddings is not None:
            arrays["embeddings"] = self.embeddings
        return self._ann_meta(), arrays

    def _set_state(self, meta: dict[str, Any], arrays: ArrayBundle) -> None:
        try:
            features = ItemFeatures.from_arrays(arrays.array, arrays.csr)
        except ValueError as err:
            if str(err).startswith(str(arrays.path)):
                raise
            raise DataError(f"{arrays.path}: invalid item features ({err})") from None
        if features.n_items != self.n_items:
            raise DataError(f"{arrays.path}: item features cover {features.n_items} items, expected {self.n_items}")
        self.features = features.reweighted(self.tag_weight, self.audio_weight)
        if self.embedding == "tfidf_svd":
            self.embeddings = arrays.array("embeddings", dtype=np.float32, shape=(self.n_items, None))
