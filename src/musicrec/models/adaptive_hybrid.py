"""Activity-adaptive hybrid: blend weights that depend on how many items a listener has.

A listener whose query row holds ``n`` items falls in tier ``t`` =
``number of tiers bounds <= n`` (``tiers: [5, 20]``: 0-4 items tier 0, 5-19 tier 1,
20+ tier 2), and is scored

    weights[t].collaborative * minmax(collaborative) + weights[t].content * minmax(content)
        + weights[t].popularity * minmax(popularity)

with min-max scaling per listener, as in :mod:`~musicrec.models.hybrid`. The
defaults (``train.adaptive_hybrid``: user-kNN; 60 % collaborative for 0-4 items,
80 % for 5-19, 91 % above, the rest content and popularity) give light listeners
more content and popularity, where a collaborative model knows least about them.
A component is scored only for the rows whose tier gives it a weight.
``similar_items`` blends the components' item similarities with the weights of
the last (most active) tier.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from musicrec.models import TierWeights, collaborative_models
from musicrec.models.composite import CompositeRecommender

ROLES: tuple[str, ...] = tuple(TierWeights.model_fields)  # collaborative, content, popularity


def _check_weight_set(t: int, w: Any) -> dict[str, float]:
    if not isinstance(w, dict) or set(w) - set(ROLES):
        raise ValueError(f"weights[{t}] must be a mapping with keys among {ROLES} (got {w!r})")
    out = {}
    for role in ROLES:
        v = w.get(role, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not np.isfinite(v) or v < 0:
            raise ValueError(f"weights[{t}].{role} must be a finite number >= 0 (got {v!r})")
        out[role] = float(v)
    if sum(out.values()) <= 0:
        raise ValueError(f"weights[{t}]: collaborative, content and popularity must not all be 0")
    return out


class AdaptiveHybridRecommender(CompositeRecommender):
    """Per-tier blend of a collaborative model, content and popularity (see the module docstring)."""

    name = "adaptive_hybrid"

    @classmethod
    def roles(cls, params) -> dict[str, str]:
        """collaborative: the chosen model; content and popularity: those models."""
        return {role: params["collaborative"] if role == "collaborative" else role for role in ROLES}

    def __init__(
        self,
        collaborative: str = "userknn",
        tiers: list[int] | tuple[int, ...] = (5, 20),
        weights: list[dict[str, float]] | None = None,
        *,
        seed: int = 0,
        num_threads: int = 0,
        component_params: dict[str, dict[str, Any]] | None = None,
    ):
        super().__init__(seed=seed, num_threads=num_threads)
        if collaborative not in collaborative_models():
            raise ValueError(f"collaborative must be one of {collaborative_models()} (got {collaborative!r})")
        if not isinstance(tiers, (list, tuple)) or any(
            isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1 for t in tiers
        ):
            raise ValueError(f"tiers must be a list of positive integers (got {tiers!r})")
        if any(b <= a for a, b in zip(tiers, tiers[1:])):
            raise ValueError(f"tiers must be strictly ascending (got {list(tiers)})")
        if weights is None:
            from musicrec.models.factory import default_params

            weights = default_params(self.name)["weights"]
        if not isinstance(weights, (list, tuple)) or len(weights) != len(tiers) + 1:
            raise ValueError(f"weights must hold one weight set per tier, len(tiers) + 1 = {len(tiers) + 1} "
                             f"(got {weights!r})")
        self.collaborative = collaborative
        self.tiers = [int(t) for t in tiers]
        self.weights = [_check_weight_set(t, w) for t, w in enumerate(weights)]
        self._build_components(component_params)

    def get_params(self) -> dict[str, Any]:
        return {"collaborative": self.collaborative, "tiers": list(self.tiers),
                "weights": [dict(w) for w in self.weights]}

    def tier_of(self, user_items) -> np.ndarray:
        """The tier (0 .. len(tiers)) of each row: by the number of items stored in it."""
        counts = np.diff(user_items.indptr)
        return np.searchsorted(np.asarray(self.tiers), counts, side="right").astype(np.int64)

    def _score(self, userids, X) -> np.ndarray:
        table = np.array([[w[r] for r in ROLES] for w in self.weights], dtype=np.float32)  # (tiers, roles)
        per_row = table[self.tier_of(X)]
        return self.blend(userids, X, {role: per_row[:, j] for j, role in enumerate(ROLES)})

    def _item_similarity(self, itemids) -> np.ndarray:
        return self.blend_similarity(itemids, self.weights[-1])


__all__ = ["AdaptiveHybridRecommender"]
