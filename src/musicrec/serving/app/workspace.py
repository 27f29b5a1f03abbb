"""The app's view model: what every page shows, as DataFrames, computed without Streamlit.

:meth:`Workspace.load` reads a models folder once (every trained model, the catalogue, the
users' histories) and prepares the pieces the pages combine at request time:

* **content**: the trained ``content`` model, else the hybrid's content part, else one built
  here from the items table (tags + audio features; the catalogue's tags alone when the items
  table is absent), with ``params.yaml``'s ``train.content`` weights (the registry's defaults without it);
* **cold start**: a :class:`~musicrec.models.hybrid.HybridRecommender` composed of the
  collaborative model (the hybrid's, else ``train.hybrid.collaborative``, else ALS, else the first) and that
  content model (:meth:`~musicrec.models.hybrid.HybridRecommender.from_components`);
  each request re-weights it and re-ranks by MMR (:meth:`~musicrec.models.hybrid.HybridRecommender.with_weights`),
  so the sliders act live without refitting;
* **audio + text blend**: a content model whose block weights are ``sqrt(0.6)`` (audio) and
  ``sqrt(0.4)`` (tags): both blocks are L2-normalised, so its cosine similarity is
  ``0.6 * audio cosine + 0.4 * tag cosine`` for tracks with both.

Every result table has :data:`~musicrec.serving.recommender.COLUMNS` plus ``preview_url``
(an ``http(s)`` URL from the catalogue's :data:`~musicrec.pipeline.catalog.PREVIEW_COLUMN`, else
None: nothing else is ever treated as a preview). Bad requests (unknown id, empty selection,
weights out of range) raise :class:`~musicrec.serving.artifacts.ServingError`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from musicrec.pipeline.catalog import PREVIEW_COLUMN
from musicrec.serving.app.source import AppSource
from musicrec.serving.artifacts import ServingError, available_models, default_model
from musicrec.serving.recommender import ModelServer

BLEND_AUDIO, BLEND_TEXT = 0.6, 0.4
MODES = ("hybrid", "content", "collaborative")  # cold start: both parts, content only, the collaborative fold-in
NO_MODELS_HINT = ("run `make repro` (trains the models into data/models) or `dvc pull` (downloads them), "
                  "or start the app on an MLflow run: `make app RUN_ID=<run id>`")


def preview_or_none(value: Any) -> str | None:
    """``value`` if it is an ``http://`` or ``https://`` URL, else None (a path is never served)."""
    if isinstance(value, str) and value.strip().lower().startswith(("https://", "http://")):
        return value.strip()
    return None


@dataclass(frozen=True)
class ColdStart:
    """A cold-start answer: the table, and its balance (liked artists vs new) and picks' popularity."""

    table: pd.DataFrame
    balance: pd.DataFrame  # columns: kind, tracks
    popularity: pd.DataFrame  # columns: rank, track, listeners


class Workspace:
    """Everything the app serves from one models folder. Build with :meth:`load`."""

    def __init__(self, source: AppSource, models_dir: Path, servers: dict[str, ModelServer], default: str,
                 run_id: str | None, history_error: str | None, items: pd.DataFrame | None):
        from musicrec.models import MODELS
        from musicrec.models.content import ContentRecommender
        from musicrec.models.hybrid import HybridRecommender

        self.source, self.models_dir, self.run_id = source, models_dir, run_id
        self.servers, self.default = servers, default
        self.history_error = history_error
        self.items = items
        self._explore: dict[int, ExploreData] = {}
        self._cold_servers: dict[tuple[float, float | None], ModelServer] = {}
        self._lock = threading.Lock()
        base = servers[default]
        self.base = base
        self.catalog = base.catalog
        self.item_ids = base.item_ids
        self.popularity = np.asarray(base.model.item_popularity, dtype=np.float64)
        raw = self.catalog[PREVIEW_COLUMN] if PREVIEW_COLUMN in self.catalog.columns else pd.Series([None] * len(self.catalog))
        self.previews = np.asarray([preview_or_none(v) for v in raw.tolist()], dtype=object)
        labels = [base.explainer.label(i) for i in range(base.n_items)]
        self.labels = np.asarray(labels, dtype=object)
        self._search_text = pd.Series(labels, dtype="string").str.lower()
        self._by_popularity = np.lexsort((np.arange(len(self.popularity)), -self.popularity))
        self._sorted_users = np.sort(base.user_ids)
        fit_rows = base.history() if history_error is None else sp.csr_matrix(np.ones((1, base.n_items), dtype=np.float32))

        hybrid = servers["hybrid"].model if "hybrid" in servers else None
        if "content" in servers:
            content, self.content_origin = servers["content"].model, "the trained content model"
        elif hybrid is not None:
            content, self.content_origin = hybrid.content, "the hybrid's content part"
        else:
            from musicrec.models.features import build_item_features

            p = train_section("content", self.source.params)
            table = items if items is not None else self.catalog
            features = build_item_features(table, self.item_ids, tag_weight=p.tag_weight, audio_weight=p.audio_weight)
            content = ContentRecommender.from_params(p.model_dump()).fit(fit_rows, item_features=features)
            self.content_origin = ("built from the items table (tags and audio features)" if items is not None
                                   else "built from the catalogue's tags (no items table)")
        self.content = content
        blend = ContentRecommender(tag_weight=math.sqrt(BLEND_TEXT), audio_weight=math.sqrt(BLEND_AUDIO))
        blend.fit(fit_rows, item_features=content.features)
        self._content_server = base.with_model("content", content)
        self._blend_server = base.with_model("content", blend)

        if hybrid is not None:
            collab, self.collab_name = hybrid.collab, hybrid.collaborative
            self.default_weights = (hybrid.weight_collaborative, hybrid.weight_content)
            self.default_mmr = 1.0 if hybrid.mmr_lambda is None else hybrid.mmr_lambda
        else:
            hp = train_section("hybrid", self.source.params)
            collab_names = [n for n in servers if MODELS[n].is_collaborative and n != "popularity"]
            preferred = [n for n in (hp.collaborative, "als") if n in collab_names] + collab_names
            self.collab_name = preferred[0] if preferred else None
            collab = servers[self.collab_name].model if self.collab_name else None
            self.default_weights = (hp.weight_collaborative, hp.weight_content)
            self.default_mmr = 1.0 if hp.mmr_lambda is None else hp.mmr_lambda
        self._collab_server = None if collab is None else base.with_model(self.collab_name, collab)
        self._cold = None if collab is None else HybridRecommender.from_components(
            collab, content, weight_collaborative=self.default_weights[0], weight_content=self.default_weights[1])
        for server in (self._collab_server, self._content_server, self._blend_server):
            if server is not None:  # fill the explainers' per-catalogue caches now, not on the first request
                server.similar(str(self.item_ids[0]), 1)

    # ---- loading ----------------------------------------------------------------------
    @classmethod
    def load(cls, source: AppSource) -> Workspace:
        """Read the models (once); a missing or empty models folder is a ServingError saying what to run."""
        from musicrec.errors import reading
        from musicrec.models.factory import load_model

        models_dir, matrices, run_id = source.resolve()
        if not models_dir.is_dir():
            raise ServingError(f"{models_dir}: no models folder here; {NO_MODELS_HINT}")
        names = available_models(models_dir)
        if not names:
            raise ServingError(f"{models_dir}: no trained models (no sub-folder with a model.json); {NO_MODELS_HINT}")
        default = default_model(names)
        base = ModelServer.load(models_dir, default, matrices_dir=matrices)
        history_error = None
        try:
            base.history()
        except ServingError as exc:
            history_error = str(exc)
        servers = {default: base}
        for name in names:
            if name != default:
                servers[name] = base.with_model(name, load_model(models_dir / name, num_threads=1))
        items = None
        if source.items and run_id is None and Path(source.items).is_file():
            with reading(source.items, "re-run the transform stage"):
                items = pd.read_parquet(source.items)
        return cls(source, models_dir, servers, default, run_id, history_error, items)

    @property
    def model_names(self) -> list[str]:
        return list(self.servers)

    @property
    def has_history(self) -> bool:
        return self.history_error is None

    def cold_start_modes(self) -> list[str]:
        """The cold-start recommenders available: hybrid and the collaborative fold-in need a collaborative model."""
        return list(MODES) if self._cold is not None else ["content"]

    # ---- search -----------------------------------------------------------------------
    def find_users(self, prefix: str, limit: int = 20) -> list[str]:
        """User ids starting with ``prefix`` (after stripping), in id order; the first ``limit`` ones."""
        p = str(prefix).strip()
        u = self._sorted_users
        lo = int(np.searchsorted(u, p, side="left"))
        out = []
        for v in u[lo: lo + limit]:
            if not str(v).startswith(p):
                break
            out.append(str(v))
        return out

    def search_tracks(self, query: str, limit: int = 20) -> pd.DataFrame:
        """Tracks whose ``name - artist`` contains ``query`` (case-insensitive), most listened first.

        An empty query gives the most listened tracks. Columns: ``item_id``, ``label``, ``listeners``.
        """
        q = str(query).strip().lower()
        if q:
            hit = self._search_text.str.contains(q, regex=False).to_numpy(dtype=bool, na_value=False)
            order = self._by_popularity[hit[self._by_popularity]][:limit]
        else:
            order = self._by_popularity[:limit]
        return pd.DataFrame({"item_id": self.item_ids[order], "label": self.labels[order],
                             "listeners": self.popularity[order].astype(np.int64)})

    def known_tracks(self, item_ids: Sequence[str]) -> list[str]:
        """The ids of ``item_ids`` that are in the catalogue, in order."""
        return [t for t in item_ids if self.base.has_item(t)]

    def label(self, item_id: str) -> str:
        return str(self.labels[self.base.item_index(item_id)])

    def preview(self, item_id: str) -> str | None:
        return self.previews[self.base.item_index(item_id)]

    # ---- listener page ------------------------------------------------------------------
    def _with_previews(self, df: pd.DataFrame) -> pd.DataFrame:
        idx = [self.base.item_index(i) for i in df["item_id"]]
        return df.assign(preview_url=pd.Series(list(self.previews[idx]), index=df.index, dtype=object))

    def _need_history(self) -> None:
        if self.history_error is not None:
            raise ServingError(f"users' histories are not available: {self.history_error}")

    def listener_history(self, user_id: str, n: int = 10) -> pd.DataFrame:
        """The user's ``n`` most-played tracks (by their confidence weight): rank, item_id, name, artist, weight."""
        self._need_history()
        u = self.base.user_index(user_id)
        row = self.base.history()[u]
        order = np.lexsort((row.indices, -row.data))[: _count(n)]
        cols = row.indices[order]
        return self._with_previews(pd.DataFrame({
            "rank": np.arange(1, len(cols) + 1), "item_id": self.item_ids[cols],
            "name": self.catalog["name"].to_numpy()[cols], "artist": self.catalog["artist"].to_numpy()[cols],
            "weight": np.round(row.data[order].astype(np.float64), 4)}))

    def recommend_user(self, user_id: str, model: str, n: int = 10) -> pd.DataFrame:
        """Top-``n`` for a known user from ``model`` (a trained model's name), with reasons."""
        self._need_history()
        return self._with_previews(self._server(model).recommend_user(user_id, n))

    def _server(self, model: str) -> ModelServer:
        if model not in self.servers:
            raise ServingError(f"model {model!r} is not trained here; available: {', '.join(self.servers)}")
        return self.servers[model]

    # ---- start from songs -----------------------------------------------------------------
    def cold_start(self, liked: Sequence[str], n: int = 10, *, mode: str = "hybrid",
                   content_weight: float | None = None, mmr_lambda: float = 1.0) -> ColdStart:
        """Recommendations for a new listener who likes ``liked`` (track ids).

        ``mode``: ``hybrid`` (``content_weight`` in [0, 1] of the blend, the rest collaborative;
        default: the hybrid's weights), ``content`` or ``collaborative`` (the fold-in).
        ``mmr_lambda`` in [0, 1]: 1 is the plain ranking, lower trades relevance for diversity.
        """
        if not liked:
            raise ServingError("pick at least one liked track")
        if mode not in self.cold_start_modes():
            raise ServingError(f"cold-start mode {mode!r}: expected one of {', '.join(self.cold_start_modes())}")
        lam = _unit("diversity (MMR lambda)", mmr_lambda)
        liked = list(liked)
        explainer = {"content": self._content_server, "collaborative": self._collab_server}.get(mode)
        if mode == "content" and self._cold is None:
            server = self._content_server
        else:
            if mode == "hybrid":
                w = self.default_weights[1] / sum(self.default_weights) if content_weight is None else content_weight
                share = _unit("content weight", w)
            else:
                share = 1.0 if mode == "content" else 0.0
            server = self._cold_server(share, None if lam >= 1.0 else lam)
        table = server.recommend_liked(liked, n, explain=False)
        ids = np.asarray([self.base.item_index(i) for i in table["item_id"]], dtype=np.int64)
        table["why"] = (explainer or server).explainer.why_recommended(self.base.liked_row(liked), ids)
        return self._cold_start_result(liked, self._with_previews(table))

    def _cold_server(self, share: float, lam: float | None) -> ModelServer:
        """The composed hybrid at these weights (kept for the last few settings: their explainers' caches too)."""
        key = (share, lam)
        with self._lock:  # one Workspace serves every session (threads)
            server = self._cold_servers.get(key)
            if server is None:
                if len(self._cold_servers) >= 64:
                    self._cold_servers.pop(next(iter(self._cold_servers)))
                server = self.base.with_model("hybrid", self._cold.with_weights(1.0 - share, share, lam))
                self._cold_servers[key] = server
        return server

    def _cold_start_result(self, liked: Sequence[str], table: pd.DataFrame) -> ColdStart:
        liked_artists = {a for a in (self.catalog["artist"].iloc[self.base.item_index(t)] for t in liked)
                         if isinstance(a, str)}
        from_liked = int(sum(isinstance(a, str) and a in liked_artists for a in table["artist"]))
        balance = pd.DataFrame({"kind": ["liked artists", "new artists"], "tracks": [from_liked, len(table) - from_liked]})
        idx = [self.base.item_index(i) for i in table["item_id"]]
        popularity = pd.DataFrame({"rank": table["rank"].to_numpy(), "track": list(self.labels[idx]),
                                   "listeners": self.popularity[idx].astype(np.int64)})
        return ColdStart(table, balance, popularity)

    # ---- explore ------------------------------------------------------------------------
    def explore(self, k: int = 10) -> ExploreData:
        """The statistics page's data (computed once per ``k``)."""
        with self._lock:
            return self._explore_locked(k)

    def _explore_locked(self, k: int) -> ExploreData:
        if k not in self._explore:
            from musicrec.serving.app import stats

            comparison, notes = stats.model_comparison(self.source.reports, k)
            self._explore[k] = ExploreData(
                stats.long_tail(self.popularity),
                stats.listener_activity(self.base.history()) if self.has_history else None,
                stats.top_tags(self.catalog), stats.audio_features(self.items), comparison, notes,
                stats.provenance(self.source.label, self.models_dir, self.run_id, self.source.reports,
                                 self.source.params),
                {"tracks": int(self.base.n_items), "listeners": int(len(self.base.user_ids)),
                 "plays (user, track pairs)": int(self.base.history().nnz) if self.has_history else 0})
        return self._explore[k]

    # ---- more like this -------------------------------------------------------------------
    def similar_side_by_side(self, track_id: str, n: int = 10) -> dict[str, pd.DataFrame]:
        """Similar tracks to ``track_id``: collaborative, content and the 0.6 audio / 0.4 text blend."""
        out: dict[str, pd.DataFrame] = {}
        if self._collab_server is not None:
            out[f"collaborative ({self.collab_name})"] = self._collab_server.similar(track_id, n)
        out["content (tags + audio)"] = self._content_server.similar(track_id, n)
        out[f"audio {BLEND_AUDIO:g} + text {BLEND_TEXT:g}"] = self._blend_server.similar(track_id, n)
        return {k: self._with_previews(v) for k, v in out.items()}


@dataclass(frozen=True)
class ExploreData:
    """The Explore page: see :mod:`musicrec.serving.app.stats`."""

    long_tail: pd.DataFrame
    activity: pd.DataFrame | None  # None without users' histories
    tags: pd.DataFrame
    audio: pd.DataFrame
    comparison: pd.DataFrame
    notes: list[str]
    provenance: dict[str, str]
    summary: dict[str, int]


def train_section(name: str, params_path: str | None) -> Any:
    """``train.<name>`` of ``params_path`` (the workspace's ``params.yaml``) when it is readable and valid, else the
    registry's defaults: the content model and hybrid weights the app composes when none was trained."""
    from musicrec.config import load_params
    from musicrec.errors import UserError
    from musicrec.models import MODELS

    if params_path and Path(params_path).is_file():
        try:
            return getattr(load_params(params_path).train, name)
        except UserError:
            pass
    return MODELS[name].Params()


def _count(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ServingError(f"the number of tracks must be a positive integer (got {n!r})")
    return int(n)


def _unit(what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 <= float(value) <= 1:
        raise ServingError(f"{what} must be a number in [0, 1] (got {value!r})")
    return float(value)
