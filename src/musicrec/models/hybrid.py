"""Hybrid: a collaborative model blended with the content model, optional MMR re-ranking.

score = ``weight_collaborative * minmax(collab) + weight_content * minmax(content)``
with min-max scaling per user (over all items). Each component applies its own
popularity fallback for users it cannot score.

With ``mmr_lambda`` set, ``recommend`` re-ranks a candidate pool (the
``max(5N, 50)`` best blended items) greedily by Maximal Marginal Relevance
(Carbonell & Goldstein 1998):
``lambda * rel(i) - (1 - lambda) * max_{j chosen} cos(v_i, v_j)``, where
``rel`` is the blended score divided by the weight sum (so in [0, 1]) and
``v`` are the content vectors. The returned scores are these MMR values at
selection time (made non-increasing). ``mmr_lambda = 1`` gives the plain ranking.

Serving re-weights and re-ranks at request time with the public pieces: :func:`mmr_rerank`,
:meth:`HybridRecommender.from_components` (a hybrid over fitted components, e.g. a trained ALS
and content model) and :meth:`HybridRecommender.with_weights`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from musicrec.models import collaborative_models
from musicrec.models.base import Recommender
from musicrec.models.composite import CompositeRecommender
from musicrec.models.content import ContentRecommender
from musicrec.models.ranking import top_n


class HybridRecommender(CompositeRecommender):
    name = "hybrid"

    @classmethod
    def roles(cls, params) -> dict[str, str]:
        return {"collaborative": params["collaborative"], "content": "content"}

    def __init__(
        self,
        collaborative: str = "als",
        weight_collaborative: float = 0.8,
        weight_content: float = 0.2,
        mmr_lambda: float | None = None,
        *,
        seed: int = 0,
        num_threads: int = 0,
        component_params: dict[str, dict[str, Any]] | None = None,
    ):
        super().__init__(seed=seed, num_threads=num_threads)
        if collaborative not in collaborative_models():
            raise ValueError(f"collaborative must be one of {collaborative_models()} (got {collaborative!r})")
        for key, w in (("weight_collaborative", weight_collaborative), ("weight_content", weight_content)):
            if isinstance(w, bool) or not isinstance(w, (int, float, np.number)) or not np.isfinite(w) or w < 0:
                raise ValueError(f"{key} must be a finite number >= 0 (got {w!r})")
        if weight_collaborative + weight_content <= 0:
            raise ValueError("weight_collaborative and weight_content must not both be 0")
        if mmr_lambda is not None and (
            isinstance(mmr_lambda, bool) or not isinstance(mmr_lambda, (int, float, np.number)) or not 0 <= mmr_lambda <= 1
        ):
            raise ValueError(f"mmr_lambda must be a number in [0, 1] or None (got {mmr_lambda!r})")
        self.collaborative = collaborative
        self.weight_collaborative = float(weight_collaborative)
        self.weight_content = float(weight_content)
        self.mmr_lambda = None if mmr_lambda is None else float(mmr_lambda)
        self._build_components(component_params)

    def get_params(self) -> dict[str, Any]:
        return {
            "collaborative": self.collaborative,
            "weight_collaborative": self.weight_collaborative,
            "weight_content": self.weight_content,
            "mmr_lambda": self.mmr_lambda,
        }

    def _score(self, userids, X) -> np.ndarray:
        return self.blend(userids, X, {"collaborative": self.weight_collaborative, "content": self.weight_content})

    def _item_similarity(self, itemids) -> np.ndarray:
        return self.blend_similarity(itemids, {"collaborative": self.weight_collaborative,
                                               "content": self.weight_content})

    def _rank(self, scores: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
        if self.mmr_lambda is None:
            return top_n(scores, N, self._order)
        pool_ids, pool_scores = top_n(scores, min(self.n_items, max(5 * N, 50)), self._order)
        return self._mmr(pool_ids, pool_scores, N)

    def _mmr(self, pool_ids: np.ndarray, pool_scores: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
        return mmr_rerank(pool_ids, pool_scores, self.content.features.vectors, self.mmr_lambda, N,
                          relevance_scale=self.weight_collaborative + self.weight_content)

    @classmethod
    def from_components(cls, collab: Recommender, content: ContentRecommender, *, weight_collaborative: float,
                        weight_content: float, mmr_lambda: float | None = None) -> HybridRecommender:
        """A hybrid over already fitted components, nothing refitted (serving: re-weight and re-rank at request time).

        ``collab`` is a fitted collaborative model, ``content`` a fitted content model over the
        same items; ties are broken by ``collab``'s popularity.
        """
        if collab.name not in collaborative_models():
            raise ValueError(f"collab must be one of {collaborative_models()} (got {collab.name!r})")
        if not isinstance(content, ContentRecommender):
            raise ValueError(f"content must be a ContentRecommender (got {type(content).__name__})")
        for part in (collab, content):
            if part.item_popularity is None:
                raise ValueError(f"the {part.name!r} component is not fitted")
        if collab.n_items != content.n_items:
            raise ValueError(f"the components cover {collab.n_items} and {content.n_items} items")
        model = cls(collab.name, weight_collaborative, weight_content, mmr_lambda, seed=collab.seed,
                    num_threads=collab.num_threads,
                    component_params={collab.name: collab.get_params(), "content": content.get_params()})
        model.parts = {"collaborative": collab, "content": content}
        model.n_users, model.n_items = collab.n_users, collab.n_items
        model._set_popularity(collab.item_popularity)
        model._fitted = True
        return model

    def with_weights(self, weight_collaborative: float, weight_content: float,
                     mmr_lambda: float | None = None) -> HybridRecommender:
        """The same fitted components blended with other weights and MMR lambda (a new model; this one unchanged)."""
        self._check_fitted()
        return type(self).from_components(self.collab, self.content, weight_collaborative=weight_collaborative,
                                          weight_content=weight_content, mmr_lambda=mmr_lambda)


def mmr_rerank(pool_ids: np.ndarray, pool_scores: np.ndarray, vectors, mmr_lambda: float, N: int, *,
               relevance_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Greedy MMR over each row's candidate pool (``pool_ids`` padded with -1), ``N`` picks per row.

    ``gain = lambda * rel - (1 - lambda) * max_{j chosen} cos(v_i, v_j)`` with ``rel = score /
    relevance_scale`` and ``v`` the rows of ``vectors`` (L2-normalised CSR); returns ``(ids, scores)``
    padded like ``Recommender.recommend``, scores the gains at selection time made non-increasing.
    """
    lam = float(mmr_lambda)
    n = pool_ids.shape[0]
    out_ids = np.full((n, N), -1, dtype=np.int64)
    out_scores = np.full((n, N), -np.inf, dtype=np.float32)
    for r in range(n):
        valid = pool_ids[r] >= 0
        cand = pool_ids[r][valid]
        if len(cand) == 0:
            continue
        rel = pool_scores[r][valid].astype(np.float64) / relevance_scale
        sim = np.asarray((vectors[cand] @ vectors[cand].T).toarray(), dtype=np.float64)
        max_sim = np.full(len(cand), -np.inf)
        chosen = np.zeros(len(cand), dtype=bool)
        prev = np.inf
        for slot in range(min(N, len(cand))):
            penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
            gain = lam * rel - (1.0 - lam) * penalty
            gain[chosen] = -np.inf
            j = int(np.argmax(gain))  # first max: ties keep the blended order
            chosen[j] = True
            prev = min(prev, gain[j])
            out_ids[r, slot] = cand[j]
            out_scores[r, slot] = prev
            max_sim = np.maximum(max_sim, sim[:, j])
    return out_ids, out_scores
