"""The ``why`` column of a result: why a model recommends a track, or finds two tracks similar.

* collaborative models: the known/liked track that contributes most to the
  recommendation (item-item models: the largest term of ``user_items @ W``;
  factor models and others: the highest item-item similarity of the model);
* ``content``: the tags (and audio traits) the item shares with the user's
  profile (:meth:`~musicrec.models.content.ContentRecommender.explain`);
* ``hybrid``: both;
* similar tracks: tags both tracks carry and whether the artist is the same.

An :class:`Explainer` is built once per loaded model with the catalogue's names,
artists and tags; it also writes a track's ``name - artist`` label.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from musicrec.models import MODELS


def _tag_list(text: Any) -> list[str]:
    if not isinstance(text, str):
        return []
    return [t for t in (p.strip().lower() for p in text.split(",")) if t]


def _short(items: Iterable[str], limit: int = 3) -> str:
    items = list(items)
    return ", ".join(items[:limit]) + (" ..." if len(items) > limit else "")


class Explainer:
    """Explanations for one loaded model (``model_name``, ``model``) over the catalogue's columns."""

    def __init__(self, model_name: str, model: Any, names: np.ndarray, artists: np.ndarray, tags: pd.Series):
        self.model_name = model_name
        self.model = model
        self._names = names
        self._artists = artists
        self._tag_texts = tags
        self._tags: list[list[str]] | None = None
        self._feature_names: tuple[Any, np.ndarray] | None = None

    def label(self, i: int) -> str:
        """``name - artist`` of catalogue row ``i`` (the name alone when the artist is missing or the same)."""
        name, artist = self._names[i], self._artists[i]
        name = name if isinstance(name, str) else "?"
        if isinstance(artist, str) and artist and artist != name:
            return f"{name} - {artist}"
        return name

    def _tags_of(self, i: int) -> list[str]:
        if self._tags is None:
            self._tags = [_tag_list(t) for t in self._tag_texts.tolist()]
        return self._tags[i]

    def why_recommended(self, row: sp.csr_matrix, recs: np.ndarray) -> list[str]:
        """One explanation per item of ``recs``, recommended for the listener whose history is ``row``."""
        if len(recs) == 0:
            return []
        known = row.indices
        name = self.model_name
        if len(known) == 0:
            return ["popular with listeners (no history)"] * len(recs)
        if name == "popularity":
            pop = self.model.item_popularity
            return [f"popular: {int(pop[j]):,} listeners" for j in recs]
        parts: list[list[str]] = [[] for _ in recs]
        if name != "content":
            collab = getattr(self.model, "collab", self.model)  # the hybrids' collaborative component
            for k, (i, _) in enumerate(self._best_known(collab, row, recs)):
                if i is not None:
                    parts[k].append(f"like {self.label(i)}")
        if MODELS[name].needs_item_features:
            content = getattr(self.model, "content", self.model)  # the hybrids' content component
            for k, feats in enumerate(self._shared_features(content, row, recs)):
                tags = [f[len("tag:"):] for f in feats if f.startswith("tag:")]
                audio = [f[len("audio:"):] for f in feats if f.startswith("audio:")]
                if tags:
                    parts[k].append("tags: " + _short(tags))
                elif audio:
                    parts[k].append("similar sound: " + _short(audio, 2))
        return ["; ".join(p) if p else "" for p in parts]

    def _shared_features(self, content: Any, row: sp.csr_matrix, recs: np.ndarray, n: int = 12) -> list[list[str]]:
        """Named features each item shares with the row's content profile, largest contribution first.

        The same as ``ContentRecommender.explain`` for every item at once (the
        profile and the feature names are computed once).
        """
        if self._feature_names is None or self._feature_names[0] is not content:
            self._feature_names = (content, content.features.feature_names)
        names = self._feature_names[1]
        profile = content.user_profiles(row)
        contrib = sp.csr_matrix(content.features.vectors[recs].multiply(profile))
        out = []
        for k in range(len(recs)):
            lo, hi = contrib.indptr[k], contrib.indptr[k + 1]
            vals, cols = contrib.data[lo:hi], contrib.indices[lo:hi]
            order = np.lexsort((cols, -vals))[:n]
            out.append([str(names[cols[o]]) for o in order if vals[o] > 0])
        return out

    def _best_known(self, model: Any, row: sp.csr_matrix, recs: np.ndarray) -> list[tuple[int | None, float]]:
        """For each recommended item, the known item that supports it most (and by how much)."""
        known, weights = row.indices, row.data
        W = getattr(model, "W", None)
        if W is not None:  # item-item models: score = sum_i x_i W[i, j]; take the largest term
            block = W[known] if sp.issparse(W) else W[known]
            block = block[:, recs]
            contrib = np.asarray(block.toarray() if sp.issparse(block) else block, dtype=np.float64)
            contrib = contrib * weights[:, None]
        elif getattr(model, "item_factors", None) is not None:
            F = np.asarray(model.item_factors, dtype=np.float64)
            a, b = F[known], F[recs]
            na = np.linalg.norm(a, axis=1, keepdims=True)
            nb = np.linalg.norm(b, axis=1, keepdims=True)
            contrib = (a / np.where(na > 0, na, 1)) @ (b / np.where(nb > 0, nb, 1)).T
        else:
            sims = np.asarray(model.item_similarity(np.asarray(recs, dtype=np.int64)), dtype=np.float64)
            contrib = sims[:, known].T
        out: list[tuple[int | None, float]] = []
        for k in range(len(recs)):
            col = contrib[:, k]
            best = int(np.argmax(col))
            out.append((int(known[best]), float(col[best])) if col[best] > 0 else (None, 0.0))
        return out

    def why_similar(self, i: int, j: int) -> str:
        """Why track ``j`` is shown as similar to track ``i``: the same artist, shared tags, or neither."""
        parts = []
        a, b = self._artists[i], self._artists[j]
        # (HetRec-style catalogues name the artist as the item: "same artist" would say nothing)
        if isinstance(a, str) and a == b and not (a == self._names[i] and b == self._names[j]):
            parts.append("same artist")
        other = set(self._tags_of(j))
        shared = [t for t in self._tags_of(i) if t in other]
        if shared:
            parts.append("tags: " + _short(shared))
        return "; ".join(parts) if parts else "listened to by the same people"
