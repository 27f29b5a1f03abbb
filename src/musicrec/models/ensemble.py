"""Ensemble: a weighted blend of two or three registered collaborative models.

score = ``sum_i weight_i * minmax(model_i scores)``, min-max scaled per user over all
items (:meth:`~musicrec.models.composite.CompositeRecommender.blend`), e.g. ALS + EASE +
RP3beta, whose errors differ enough that the blend ranks better than each of them
(HetRec 2K: README, Results). Slot ``i`` is the role ``model_<i>`` (its sub-directory when
saved); each member is built from its own ``train.<model_i>`` section, and a member with
weight 0 is fitted but not scored. ``similar_items`` blends the members' item similarities
with the same weights. The params (``train.ensemble``) and their checks are
:class:`musicrec.models.EnsembleParams`.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from musicrec.models import ENSEMBLE_SLOTS, EnsembleParams
from musicrec.models.composite import CompositeRecommender


def _checked(params: dict[str, Any]) -> EnsembleParams:
    try:
        return EnsembleParams(**params)
    except ValidationError as err:
        raise ValueError("; ".join(f"{'.'.join(map(str, e['loc'])) or 'ensemble'}: {e['msg']}"
                                   for e in err.errors())) from None


class EnsembleRecommender(CompositeRecommender):
    """Weighted min-max blend of collaborative models (see the module docstring)."""

    name = "ensemble"

    @classmethod
    def roles(cls, params) -> dict[str, str]:
        """``model_<i>`` -> the model of slot ``i`` (empty slots left out)."""
        return {f"model_{i}": params[f"model_{i}"] for i in range(1, ENSEMBLE_SLOTS + 1)
                if params.get(f"model_{i}") is not None}

    def __init__(
        self,
        model_1: str = "als",
        weight_1: float = 1.0,
        model_2: str = "ease",
        weight_2: float = 1.0,
        model_3: str | None = "rp3beta",
        weight_3: float = 1.0,
        *,
        seed: int = 0,
        num_threads: int = 0,
        component_params: dict[str, dict[str, Any]] | None = None,
    ):
        super().__init__(seed=seed, num_threads=num_threads)
        self.settings = _checked({"model_1": model_1, "weight_1": weight_1, "model_2": model_2,
                                  "weight_2": weight_2, "model_3": model_3, "weight_3": weight_3})
        self._build_components(component_params)

    def get_params(self) -> dict[str, Any]:
        return self.settings.model_dump()

    def weights(self) -> dict[str, float]:
        """Role -> blend weight."""
        return {role: getattr(self.settings, f"weight_{role.removeprefix('model_')}")
                for role in self.roles(self.get_params())}

    def with_weights(self, **weights: float) -> EnsembleRecommender:
        """The same fitted members blended with other ``weight_<i>`` values (a new model; this one unchanged).

        Nothing is refitted: what tuning the weights on validation needs (``benchmarks/tune_hetrec.py``).
        """
        self._check_fitted()
        keys = {f"weight_{i}" for i in range(1, ENSEMBLE_SLOTS + 1)}
        if set(weights) - keys:
            raise ValueError(f"with_weights takes only {', '.join(sorted(keys))} (got {', '.join(sorted(weights))})")
        params = {**self.get_params(), **weights}
        model = type(self)(**params, seed=self.seed, num_threads=self.num_threads,
                           component_params=self.component_params)
        model.parts = dict(self.parts)
        model.n_users, model.n_items = self.n_users, self.n_items
        model._set_popularity(self.item_popularity)
        model._fitted = True
        return model

    def _score(self, userids, X):
        return self.blend(userids, X, self.weights())

    def _item_similarity(self, itemids):
        return self.blend_similarity(itemids, self.weights())


__all__ = ["EnsembleRecommender"]
