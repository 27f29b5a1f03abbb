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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from musicrec.errors import DataError
from musicrec.models import collaborative_models
from musicrec.models.base import Recommender
from musicrec.models.persist import ArrayBundle
from musicrec.models.ranking import minmax_rows, top_n
from musicrec.models.content import ContentRecommender



class HybridRecommender(Recommender):
    name = "hybrid"

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
        component_params = dict(component_params or {})
        unknown = set(component_params) - {collaborative, "content"}
        if unknown:
            raise ValueError(
                f"component_params has keys {sorted(unknown)}; expected only {collaborative!r} and/or 'content'"
            )
        from musicrec.models.factory import build_model, default_params

        self.component_params = {
            collaborative: component_params.get(collaborative, default_params(collaborative)),
            "content": component_params.get("content", default_params("content")),
        }
        self.collab: Recommender = build_model(
            collaborative, self.component_params[collaborative], seed=seed, num_threads=num_threads
        )
        self.content: ContentRecommender = build_model(  # type: ignore[assignment]
            "content", self.component_params["content"], seed=seed, num_threads=num_threads
        )

    def get_params(self) -> dict[str, Any]:
        return {
            "collaborative": self.collaborative,
            "weight_collaborative": self.weight_collaborative,
            "weight_content": self.weight_content,
            "mmr_lambda": self.mmr_lambda,
        }

    def _components(self) -> dict[str, Recommender]:
        return {"collaborative": self.collab, "content": self.content}

    def _fit(self, X, *, item_features, item_last_ts) -> None:
        if item_features is None:
            raise ValueError("the 'hybrid' model needs item_features at fit (for its content component)")
        self.collab.fit(X, item_features=item_features, item_last_ts=item_last_ts)
        self.content.fit(X, item_features=item_features)

    def _has_signal(self, userids, X) -> np.ndarray:
        return np.ones(len(userids), dtype=bool)  # the components apply their own fallbacks

    def _score(self, userids, X) -> np.ndarray:
        s = np.zeros((len(userids), self.n_items), dtype=np.float32)
        for w, model in ((self.weight_collaborative, self.collab), (self.weight_content, self.content)):
            if w > 0:  # each component weighs the rows as it weighed its train matrix
                s += w * minmax_rows(model._score_checked(userids, model.input_weighting(X)))
        return s

    def _item_similarity(self, itemids) -> np.ndarray:
        s = np.zeros((len(itemids), self.n_items), dtype=np.float32)
        for w, model in ((self.weight_collaborative, self.collab), (self.weight_content, self.content)):
            if w > 0:
                sim = model._item_similarity(itemids).astype(np.float32, copy=True)
                sim[np.arange(len(itemids)), itemids] = np.nan  # keep self out of the scaling
                s += w * np.nan_to_num(minmax_rows(np.where(np.isnan(sim), -np.inf, sim)))
        return s

    def _rank(self, scores: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
        if self.mmr_lambda is None:
            return top_n(scores, N, self._order)
        pool_ids, pool_scores = top_n(scores, min(self.n_items, max(5 * N, 50)), self._order)
        return self._mmr(pool_ids, pool_scores, N)

    def _mmr(self, pool_ids: np.ndarray, pool_scores: np.ndarray, N: int) -> tuple[np.ndarray, np.ndarray]:
        lam = self.mmr_lambda
        n = pool_ids.shape[0]
        out_ids = np.full((n, N), -1, dtype=np.int64)
        out_scores = np.full((n, N), -np.inf, dtype=np.float32)
        V = self.content.features.vectors
        total = self.weight_collaborative + self.weight_content
        for r in range(n):
            valid = pool_ids[r] >= 0
            cand = pool_ids[r][valid]
            if len(cand) == 0:
                continue
            rel = pool_scores[r][valid].astype(np.float64) / total
            sim = np.asarray((V[cand] @ V[cand].T).toarray(), dtype=np.float64)
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

    def _get_state(self):
        return {"component_params": self.component_params}, {}

    def _set_state(self, meta: dict[str, Any], arrays: ArrayBundle) -> None:
        # the components are loaded by musicrec.models.load_model (sub-directories)
        pass

    @classmethod
    def _from_saved(cls, directory, doc, *, num_threads: int, verify: bool = True):
        from musicrec.models.persist import MODEL_JSON, read_model_json, verify_files

        path = directory / MODEL_JSON
        if verify:
            verify_files(directory, doc)
        comp = doc["meta"].get("component_params")
        if not isinstance(comp, dict) or not all(isinstance(v, dict) for v in comp.values()):
            raise DataError(f"{path}: meta.component_params missing or not a mapping of mappings")
        try:
            model = cls(**doc["params"], seed=doc["seed"], num_threads=num_threads, component_params=comp)
        except (TypeError, ValueError) as err:
            raise DataError(f"{path}: invalid params for model 'hybrid' ({err})") from None
        parts = {}
        for sub, expected in (("collaborative", model.collaborative), ("content", "content")):
            sub_doc = read_model_json(directory / sub)
            if sub_doc["model"] != expected:
                raise DataError(f"{directory / sub / MODEL_JSON}: holds {sub_doc['model']!r}, expected {expected!r}")
            from musicrec.models import model_class

            parts[sub] = model_class(expected)._from_saved(directory / sub, sub_doc, num_threads=num_threads)
            if (parts[sub].n_users, parts[sub].n_items) != (doc["n_users"], doc["n_items"]):
                raise DataError(f"{directory / sub / MODEL_JSON}: shape differs from the hybrid's")
        model.collab, model.content = parts["collaborative"], parts["content"]
        model.n_users, model.n_items = doc["n_users"], doc["n_items"]
        from musicrec.models.persist import load_bundle

        bundle = load_bundle(directory)
        model._set_popularity(bundle.array("item_popularity", dtype=np.float32, shape=(model.n_items,)))
        model._fitted = True
        return model
