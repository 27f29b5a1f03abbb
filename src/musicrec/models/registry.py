"""The model registry: every recommender musicrec can train, one line each.

Each entry names a :class:`~musicrec.models.base.Recommender` subclass that declares
its ``name`` (the ``train.<name>`` key), its ``Params`` (that section's keys,
defaults, types and bounds), ``needs_item_features`` and ``is_collaborative``. The
params schema (:mod:`musicrec.config`), training, the hybrid and serving all read
this table; the contract suite (``tests/test_models_contract.py``) runs against
every entry. To add a model: write one module in this folder (copy
``popularity.py``) and add its line below.
"""

from __future__ import annotations

import importlib

from musicrec.models.base import Recommender

ENTRIES = (
    "musicrec.models.popularity:PopularityRecommender",
    "musicrec.models.itemknn:ItemKNNRecommender",
    "musicrec.models.mf:ALSRecommender",
    "musicrec.models.mf:BPRRecommender",
    "musicrec.models.ease:EASERecommender",
    "musicrec.models.rp3beta:RP3BetaRecommender",
    "musicrec.models.content:ContentRecommender",
    "musicrec.models.hybrid:HybridRecommender",
)


def load_entries(entries: tuple[str, ...]) -> dict[str, type[Recommender]]:
    """``{name: class}`` for ``module:Class`` entries, in their order; a class must declare ``name`` and ``Params``."""
    out: dict[str, type[Recommender]] = {}
    for entry in entries:
        module, _, attr = entry.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        if not (isinstance(cls, type) and issubclass(cls, Recommender)) or not cls.name or "Params" not in vars(cls):
            raise TypeError(f"registry entry {entry!r} is not a Recommender with its own name and Params")
        if cls.name in out:
            raise TypeError(f"registry entry {entry!r}: model name {cls.name!r} is registered twice")
        out[cls.name] = cls
    return out


MODELS: dict[str, type[Recommender]] = load_entries(ENTRIES)
