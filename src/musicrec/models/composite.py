"""Models that blend other registered models: :class:`CompositeRecommender`, base of ``hybrid`` and ``adaptive_hybrid``.

A composite names its components by role (``{"collaborative": "als", "content":
"content"}``, :meth:`CompositeRecommender.roles`), builds them through the factory
with the params it is given (``component_params``: model name -> ``train.<name>``
params; absent ones take their defaults), fits them on the same matrix, and
blends their min-max scaled scores (:meth:`~CompositeRecommender.blend`). Each
component applies its own popularity fallback. Saved, each component is a
sub-directory named after its role (:meth:`Recommender.save` / ``load``); the
component params are kept in ``model.json``'s meta, so the loaded model is built
exactly as the saved one. Only public methods of the components are called.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from musicrec.errors import DataError
from musicrec.models import MODELS
from musicrec.models.base import Recommender
from musicrec.models.persist import ArrayBundle
from musicrec.models.ranking import minmax_rows


class CompositeRecommender(Recommender):
    """A model made of registered models (see the module docstring)."""

    has_components: ClassVar[bool] = True

    @classmethod
    def roles(cls, params: Mapping[str, Any]) -> dict[str, str]:
        """Role (sub-directory) -> registered model name, from this model's validated params."""
        raise NotImplementedError

    @classmethod
    def component_names(cls, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The registered models this one is built from (keys of ``component_params``)."""
        return tuple(dict.fromkeys(cls.roles(params).values()))

    def _build_components(self, component_params: Mapping[str, Mapping[str, Any]] | None) -> None:
        from musicrec.models.factory import build_model, default_params

        roles = self.roles(self.get_params())
        names = tuple(dict.fromkeys(roles.values()))
        component_params = dict(component_params or {})
        unknown = set(component_params) - set(names)
        if unknown:
            raise ValueError(
                f"component_params has keys {sorted(unknown)}; expected only keys among {', '.join(map(repr, names))}"
            )
        self.component_params = {n: dict(component_params.get(n, default_params(n))) for n in names}
        self.parts: dict[str, Recommender] = {
            role: build_model(name, self.component_params[name], seed=self.seed, num_threads=self.num_threads)
            for role, name in roles.items()
        }

    @property
    def collab(self) -> Recommender:
        """The collaborative component."""
        return self.parts["collaborative"]

    @property
    def content(self) -> Recommender:
        """The content component (item feature vectors: ``content.features``)."""
        return self.parts["content"]

    def _components(self) -> dict[str, Recommender]:
        return self.parts

    def _set_component(self, role: str, model: Recommender) -> None:
        if role not in self.parts or model.name != self.parts[role].name:  # pragma: no cover - base checks
            raise AssertionError(f"{role}: {model.name}")
        self.parts[role] = model

    def _fit(self, X, *, item_features, item_last_ts) -> None:
        for role, part in self.parts.items():
            if item_features is None and MODELS[part.name].needs_item_features:
                raise ValueError(
                    f"the {self.name!r} model needs item_features at fit (for its {role} component {part.name!r})"
                )
        for part in self.parts.values():
            part.fit(X, item_features=item_features, item_last_ts=item_last_ts)

    def _has_signal(self, userids, X) -> np.ndarray:
        return np.ones(len(userids), dtype=bool)  # the components apply their own fallbacks

    def blend(self, userids: np.ndarray, X, weights: Mapping[str, np.ndarray | float]) -> np.ndarray:
        """``sum over roles of weight * minmax_rows(component scores)``; a weight is a number or one per row.

        A component is scored only for the rows that give it a weight > 0.
        """
        s = np.zeros((len(userids), self.n_items), dtype=np.float32)
        for role, w in weights.items():
            w = np.broadcast_to(np.asarray(w, dtype=np.float32), (len(userids),))
            rows = np.flatnonzero(w > 0)
            if len(rows) == len(userids):
                s += w[:, None] * minmax_rows(self.parts[role].score(userids, X))
            elif len(rows):
                s[rows] += w[rows, None] * minmax_rows(self.parts[role].score(userids[rows], X[rows]))
        return s

    def blend_similarity(self, itemids: np.ndarray, weights: Mapping[str, float]) -> np.ndarray:
        """The components' item similarities, min-max scaled per row without the item itself, weighted."""
        s = np.zeros((len(itemids), self.n_items), dtype=np.float32)
        for role, w in weights.items():
            if w > 0:
                sim = self.parts[role].item_similarity(itemids).astype(np.float32, copy=True)
                sim[np.arange(len(itemids)), itemids] = -np.inf  # keep self out of the scaling
                s += w * minmax_rows(sim)
        return s

    def _get_state(self):
        return {"component_params": self.component_params}, {}

    def _set_state(self, meta: dict[str, Any], arrays: ArrayBundle) -> None:
        pass  # the components are loaded from their sub-directories (Recommender.load)

    @classmethod
    def _saved_kwargs(cls, meta: dict[str, Any], path) -> dict[str, Any]:
        comp = meta.get("component_params")
        if not isinstance(comp, dict) or not all(isinstance(v, dict) for v in comp.values()):
            raise DataError(f"{path}: meta.component_params missing or not a mapping of mappings")
        return {"component_params": comp}


__all__ = ["CompositeRecommender"]
