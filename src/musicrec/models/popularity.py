"""Popularity baseline: the most listened-to items, optionally favouring recent ones."""

from __future__ import annotations

from typing import Any

import numpy as np

from musicrec.models.base import Recommender
from musicrec.models.persist import ArrayBundle

_SECONDS_PER_DAY = 86_400.0


def _to_seconds(ts: np.ndarray) -> np.ndarray:
    """datetime64 (any unit, NaT = unknown) or numeric epoch seconds (NaN = unknown) -> float64 seconds."""
    arr = np.asarray(ts)
    if np.issubdtype(arr.dtype, np.datetime64):
        out = arr.astype("datetime64[us]").astype(np.int64).astype(np.float64) / 1e6
        out[np.isnat(arr)] = np.nan
        return out
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"item_last_ts must be datetime64 or numeric epoch seconds (got dtype {arr.dtype})")
    return arr.astype(np.float64)


class PopularityRecommender(Recommender):
    """Ranks items by the number of train users who played them.

    Ties are broken by the summed confidence weight, then by item index.
    With ``recent_days`` set, ``fit`` needs ``item_last_ts`` (per-item time of
    the last play, aligned with the columns: datetime64 or epoch seconds,
    NaT/NaN = unknown) and each count is multiplied by
    ``0.5 ** (age_days / recent_days)``, i.e. ``recent_days`` is a half-life,
    where the age is measured from the latest play in the data (not the wall
    clock, so results are reproducible). Items with unknown time get the age
    of the oldest known item. ``item_last_ts`` may also be given beforehand
    with :meth:`set_item_last_ts`.
    """

    name = "popularity"

    def __init__(self, recent_days: float | None = None, *, seed: int = 0, num_threads: int = 0):
        super().__init__(seed=seed, num_threads=num_threads)
        if recent_days is not None and (not np.isfinite(recent_days) or recent_days <= 0):
            raise ValueError(f"recent_days must be a positive number or None (got {recent_days!r})")
        self.recent_days = None if recent_days is None else float(recent_days)
        self._pending_ts: np.ndarray | None = None
        self.scores_: np.ndarray | None = None  # (decayed) user counts per item
        self._rank_key: np.ndarray | None = None

    def get_params(self) -> dict[str, Any]:
        return {"recent_days": self.recent_days}

    def set_item_last_ts(self, item_last_ts: np.ndarray) -> PopularityRecommender:
        """Give the per-item last play times used by the next ``fit``."""
        self._pending_ts = _to_seconds(item_last_ts)
        return self

    def _fit(self, X, *, item_features, item_last_ts) -> None:
        counts = self.item_popularity.astype(np.float64)
        weights = np.bincount(X.indices, weights=X.data, minlength=self.n_items)
        if self.recent_days is not None:
            ts = _to_seconds(item_last_ts) if item_last_ts is not None else self._pending_ts
            if ts is None:
                raise ValueError(
                    "train.popularity.recent_days is set but fit() got no item_last_ts "
                    "(per-item last play times); pass item_last_ts=... or call set_item_last_ts()"
                )
            if ts.shape != (self.n_items,):
                raise ValueError(f"item_last_ts must have one entry per item ({self.n_items}), got shape {ts.shape}")
            known = np.isfinite(ts)
            if known.any():
                age = (ts[known].max() - np.where(known, ts, ts[known].min())) / _SECONDS_PER_DAY
                counts = counts * np.power(0.5, age / self.recent_days)
                weights = weights * np.power(0.5, age / self.recent_days)
        # ranking: count, then summed weight, then item index
        order = np.lexsort((np.arange(self.n_items), -weights, -counts))
        ranks = np.empty(self.n_items, dtype=np.int64)
        ranks[order] = np.arange(self.n_items)
        self.scores_ = counts.astype(np.float32)
        self._rank_key = (self.n_items - ranks).astype(np.float64)  # tie-break order

    def _tiebreak_scores(self) -> np.ndarray:
        return self._rank_key

    def _fallback_scores(self) -> np.ndarray:
        top = self.scores_.max()
        return (self.scores_ / top if top > 0 else self.scores_).astype(np.float32)

    def _score(self, userids, X) -> np.ndarray:
        return np.broadcast_to(self.scores_, (len(userids), self.n_items)).copy()

    def _has_signal(self, userids, X) -> np.ndarray:
        return np.ones(len(userids), dtype=bool)

    def _item_similarity(self, itemids) -> np.ndarray:
        return self._score(itemids, None)

    def _get_state(self):
        return {}, {"scores": self.scores_, "rank_key": self._rank_key}

    def _set_state(self, meta: dict[str, Any], arrays: ArrayBundle) -> None:
        self.scores_ = arrays.array("scores", dtype=np.float32, shape=(self.n_items,))
        self._rank_key = arrays.array("rank_key", dtype=np.float64, shape=(self.n_items,))


__all__ = ["PopularityRecommender"]
