"""Serve recommendations from a trained models folder (``data/models``), with explanations.

>>> rec = ModelServer.load("data/models")                 # hybrid if trained, else als, else the first
>>> rec.recommend_user("0030909f17bf...", n=10)            # known user: history from the matrices folder
>>> rec.recommend_liked(["TR01OQ88ENLK1FRLTP", "TR0..."])  # cold start from a few liked tracks
>>> rec.similar("TR01OQ88ENLK1FRLTP", n=10)

Each method returns a DataFrame with the columns :data:`COLUMNS` (``rank``,
``item_id``, ``name``, ``artist``, ``score``, ``why``). ``why`` is a short
explanation (:mod:`musicrec.serving.explain`).

Unknown user or track ids raise :class:`UnknownIdError`, whose message lists
close matches (``difflib`` over the ids and, for tracks, over track names,
case-insensitive). The models folder is read once; the user history matrices
(``train.npz`` + ``query.npz``, play counts the model weighs itself) are read on first use.

The same server loads from an MLflow run (the train stage logs the models
folder as artifact ``model/`` and the user histories as ``model/history/``;
:mod:`musicrec.serving.artifacts` downloads and caches it):

>>> rec = ModelServer.from_run("3f1c...", tracking_uri="http://127.0.0.1:5000")

Nothing here imports MLflow (only :func:`~musicrec.serving.artifacts.download_run`,
when called) or Dask, so the CLI starts fast.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from musicrec.errors import reading
from musicrec.serving.artifacts import ServingError, available_models, default_model, download_run
from musicrec.serving.explain import Explainer

COLUMNS = ("rank", "item_id", "name", "artist", "score", "why")
_MAX_DIFFLIB_POOL = 20_000


class UnknownIdError(ServingError, LookupError):
    """An unknown user or track id; ``suggestions`` holds close matches (ids)."""

    def __init__(self, kind: str, value: str, suggestions: list[tuple[str, str]]):
        self.kind = kind
        self.value = value
        self.suggestions = suggestions  # (id, label)
        self.short = msg = f"unknown {kind} id {value!r}"
        if suggestions:
            msg += "; did you mean:\n" + "\n".join(
                f"  {i}" + (f"  ({label})" if label else "") for i, label in suggestions)
        else:
            msg += " (no close matches)"
        super().__init__(msg)


def _close_matches(query: str, pool: pd.Series, n: int) -> list[int]:
    """Positions in ``pool`` (strings) of the values closest to ``query``, case-insensitive."""
    q = query.strip().lower()
    if not q or pool.empty:
        return []
    low = pool.fillna("").astype(str).str.lower()
    contains = np.flatnonzero(low.str.contains(q, regex=False).to_numpy())
    cand = np.arange(len(low))
    if len(cand) > _MAX_DIFFLIB_POOL:  # keep the error path fast on large catalogues
        pref = np.flatnonzero(low.str.startswith(q[:2]).to_numpy())
        cand = np.union1d(pref, contains)[:_MAX_DIFFLIB_POOL]
    values = low.to_numpy()[cand]
    uniq: dict[str, int] = {}
    for pos, v in zip(cand, values):
        uniq.setdefault(v, int(pos))
    close = difflib.get_close_matches(q, list(uniq), n=n, cutoff=0.6)
    out = [uniq[v] for v in close]
    for pos in contains:  # substrings ("harbor" -> "Hidden Harbor, Goodbye")
        if len(out) >= n:
            break
        if int(pos) not in out:
            out.append(int(pos))
    return out[:n]


class ModelServer:
    """Serves one trained model: the model plus the catalogue and id maps, ready to answer requests.

    Build with :meth:`load`. ``model_name`` is the model used; ``model`` the
    loaded :class:`musicrec.models.base.Recommender`.
    """

    def __init__(self, models_dir: Path, model_name: str, model: Any, catalog: pd.DataFrame,
                 user_ids: np.ndarray, matrices_dir: Path | None):
        self.models_dir = models_dir
        self.model_name = model_name
        self.model = model
        self.catalog = catalog.reset_index(drop=True)
        self.item_ids = self.catalog["item_id"].astype(str).to_numpy()
        self.user_ids = user_ids
        self._item_index = {v: i for i, v in enumerate(self.item_ids)}
        self._names = self.catalog["name"].astype(object).to_numpy()
        self._artists = self.catalog["artist"].astype(object).to_numpy()
        self._user_index: dict[str, int] | None = None
        self.matrices_dir = matrices_dir
        self._history: sp.csr_matrix | None = None
        self.explainer = Explainer(model_name, model, self._names, self._artists, self.catalog["tags"])

    # ---- loading --------------------------------------------------------------------
    @classmethod
    def load(cls, models_dir: Path | str = "data/models", model: str | None = None,
             matrices_dir: Path | str | None = "data/processed/matrices") -> ModelServer:
        from musicrec.models.factory import load_model

        models_dir = Path(models_dir)
        names = available_models(models_dir)
        if not names:
            raise ServingError(f"{models_dir}: no trained models (no sub-folder with a model.json)")
        name = default_model(names) if model is None else model
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ServingError(f"model {name!r} is not trained in {models_dir}{hint}; available: {', '.join(names)}")
        for f in ("catalog.parquet", "users.parquet"):
            if not (models_dir / f).is_file():
                raise ServingError(f"{models_dir / f}: missing (the models folder is incomplete; "
                                   "re-run the train stage)")
        with reading(models_dir / "catalog.parquet", "re-run the train stage"):
            catalog = pd.read_parquet(models_dir / "catalog.parquet")
        for col in ("name", "artist", "tags"):
            if col not in catalog.columns:
                catalog[col] = None
        with reading(models_dir / "users.parquet", "re-run the train stage"):
            users = pd.read_parquet(models_dir / "users.parquet")
        loaded = load_model(models_dir / name, num_threads=1)
        if loaded.n_items != len(catalog):
            raise ServingError(f"{models_dir / name}: fitted on {loaded.n_items} items but the catalogue has "
                               f"{len(catalog)}; the models folder is inconsistent")
        return cls(models_dir, name, loaded, catalog, users["user_id"].astype(str).to_numpy(),
                   None if matrices_dir is None else Path(matrices_dir))

    @classmethod
    def from_run(cls, run_id: str, model: str | None = None, *, tracking_uri: str | None = None,
                 matrices_dir: Path | str | None = None, cache_dir: Path | str | None = None) -> ModelServer:
        """:meth:`load` from MLflow run ``run_id`` (see :func:`download_run`).

        User histories come from the run (``model/history/``); for a run logged without them,
        from ``matrices_dir``.
        """
        models_dir, history = download_run(run_id, tracking_uri=tracking_uri, cache_dir=cache_dir)
        return cls.load(models_dir, model, matrices_dir=history if history is not None else matrices_dir)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def history(self) -> sp.csr_matrix:
        """Every known user's row at query time: ``train + query`` play counts (loaded once)."""
        if self._history is None:
            from musicrec.io import load_csr

            d = self.matrices_dir
            if d is None:
                raise ServingError("no matrices folder given: user histories are unknown (pass --matrices)")
            files = [d / "train.npz", d / "query.npz"]
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                raise ServingError(f"{', '.join(missing)}: not found (run the interactions stage, or pass --matrices)")
            with reading(d, "re-run the interactions stage"):
                m = (load_csr(files[0]) + load_csr(files[1])).tocsr()
            if m.shape != (len(self.user_ids), self.n_items):
                raise ServingError(f"{d}: matrices have shape {m.shape} but the models folder has "
                                   f"{len(self.user_ids)} users x {self.n_items} items; they come from different runs")
            m.sort_indices()
            self._history = sp.csr_matrix(m, dtype=np.float32)
        return self._history

    # ---- id resolution ----------------------------------------------------------------
    def item_index(self, track_id: str) -> int:
        """Matrix column of ``track_id``; :class:`UnknownIdError` with suggestions otherwise."""
        idx = self._item_index.get(str(track_id).strip())
        if idx is not None:
            return idx
        pos = _close_matches(track_id, pd.Series(self.item_ids), 3)
        by_name = _close_matches(track_id, self.catalog["name"], 5)
        seen, sugg = set(), []
        for p in pos + by_name:
            if p not in seen:
                seen.add(p)
                sugg.append((self.item_ids[p], self.explainer.label(p)))
        raise UnknownIdError("track", str(track_id), sugg[:6])

    def user_index(self, user_id: str) -> int:
        if self._user_index is None:
            self._user_index = {v: i for i, v in enumerate(self.user_ids)}
        idx = self._user_index.get(str(user_id).strip())
        if idx is not None:
            return idx
        pos = _close_matches(user_id, pd.Series(self.user_ids), 5)
        raise UnknownIdError("user", str(user_id), [(self.user_ids[p], "") for p in pos])

    # ---- requests ---------------------------------------------------------------------
    def recommend_user(self, user_id: str, n: int = 10, *, explain: bool = True) -> pd.DataFrame:
        """Top-``n`` for a known user, excluding what they already played."""
        u = self.user_index(user_id)
        row = self.history()[u]
        return self._recommend(np.asarray([u]), row, n, explain)

    def recommend_liked(self, track_ids: Sequence[str], n: int = 10, *, explain: bool = True) -> pd.DataFrame:
        """Cold start: top-``n`` for a new listener who likes ``track_ids`` (one-row CSR, weight 1 each)."""
        if not track_ids:
            raise ServingError("give at least one liked track id")
        cols = sorted({self.item_index(t) for t in track_ids})
        row = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (np.zeros(len(cols), dtype=np.int64), cols)),
                            shape=(1, self.n_items))
        return self._recommend(np.asarray([-1]), row, n, explain)

    def similar(self, track_id: str, n: int = 10, *, explain: bool = True) -> pd.DataFrame:
        """The ``n`` tracks the model finds most similar to ``track_id``."""
        i = self.item_index(track_id)
        ids, scores = self.model.similar_items(np.asarray([i]), N=self._n(n))
        ids, scores = self._valid(ids[0], scores[0])
        whys = [self.explainer.why_similar(i, j) for j in ids] if explain else [""] * len(ids)
        return self._frame(ids, scores, whys)

    # ---- internals ---------------------------------------------------------------------
    def _n(self, n: int) -> int:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise ServingError(f"-n must be a positive integer (got {n!r})")
        return int(min(n, self.n_items))

    @staticmethod
    def _valid(ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keep = ids >= 0
        return ids[keep], scores[keep]

    def _recommend(self, userids: np.ndarray, row: sp.csr_matrix, n: int, explain: bool) -> pd.DataFrame:
        ids, scores = self.model.recommend(userids, row, N=self._n(n), filter_already_liked_items=True)
        ids, scores = self._valid(ids[0], scores[0])
        whys = self.explainer.why_recommended(row, ids) if explain else [""] * len(ids)
        return self._frame(ids, scores, whys)

    def _frame(self, ids: np.ndarray, scores: np.ndarray, whys: list[str]) -> pd.DataFrame:
        def col(values: np.ndarray) -> list[Any]:
            return [v if isinstance(v, str) else None for v in values[ids]]

        return pd.DataFrame({
            "rank": np.arange(1, len(ids) + 1),
            "item_id": self.item_ids[ids],
            "name": col(self._names),
            "artist": col(self._artists),
            "score": np.asarray(scores, dtype=np.float64).round(6),
            "why": whys,
        }, columns=list(COLUMNS))


def to_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows (NaN -> None)."""
    out = []
    for rec in df.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and not np.isfinite(v) else
                        int(v) if isinstance(v, np.integer) else float(v) if isinstance(v, np.floating) else v)
                    for k, v in rec.items()})
    return out


def format_table(df: pd.DataFrame, *, width: int = 28, why_width: int = 60) -> str:
    """A plain-text table of a result frame (names and explanations truncated)."""
    def cut(v: Any, w: int) -> str:
        s = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
        return s if len(s) <= w else s[: w - 1] + "…"

    rows = [(str(r.rank), cut(r.item_id, 20), cut(r.name, width), cut(r.artist, 22), f"{r.score:.4f}",
             cut(r.why, why_width)) for r in df.itertuples(index=False)]
    head = ("#", "id", "track", "artist", "score", "why")
    widths = [max(len(h), *(len(r[c]) for r in rows)) if rows else len(h) for c, h in enumerate(head)]
    line = lambda cells: "  ".join(  # noqa: E731
        (c.rjust(w) if k in (0, 4) else c.ljust(w)) for k, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(head), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)])
