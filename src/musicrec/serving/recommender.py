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

The same server loads from an MLflow run (the evaluate stage logs each model as a
pyfunc model holding its folder, the id maps and the user histories;
:mod:`musicrec.serving.artifacts` downloads and caches them):

>>> rec = ModelServer.from_run("3f1c...", tracking_uri="http://127.0.0.1:5000")

:func:`search` finds tracks, artists and users by name or id prefix, and
:func:`model_summaries` describes each trained model (params, size, metrics), for
``musicrec search`` and ``musicrec models``. A models folder of an artist-level source
(HetRec, Last.fm 360K: ``catalog.json`` ``item_kind``) holds artists, and results say so.

Nothing here imports MLflow (only :func:`~musicrec.serving.artifacts.download_run`,
when called) or Dask, so the CLI starts fast.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
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


# the matrices files holding every known user's row at query time (train + query play counts)
HISTORY_FILES = ("train.npz", "query.npz")


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


@dataclass(frozen=True)
class Catalog:
    """A models folder's catalogue (one row per matrix column), its user ids and what its items are."""

    items: pd.DataFrame  # index, item_id, name, artist, tags, ...
    user_ids: np.ndarray
    item_kind: str = "track"  # "artist" for an artist-level source

    @classmethod
    def read(cls, models_dir: Path | str) -> Catalog:
        from musicrec.pipeline.catalog import CATALOG_INFO

        models_dir = Path(models_dir)
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
        kind = "track"
        info = models_dir / CATALOG_INFO
        if info.is_file():  # absent in folders trained before it was written: tracks
            with reading(info, "re-run the train stage"):
                kind = json.loads(info.read_text(encoding="utf-8")).get("item_kind", "track")
            if kind not in ("track", "artist"):
                raise ServingError(f"{info}: item_kind must be 'track' or 'artist' (got {kind!r}); "
                                   "re-run the train stage")
        return cls(catalog.reset_index(drop=True), users["user_id"].astype(str).to_numpy(), kind)


class ModelServer:
    """Serves one trained model: the model plus the catalogue and id maps, ready to answer requests.

    Build with :meth:`load`. ``model_name`` is the model used; ``model`` the
    loaded :class:`musicrec.models.base.Recommender`. ``approximate`` (true when the
    model was saved with a FAISS index, :mod:`musicrec.models.ann`) answers through the
    index; set it to False for exact answers.
    """

    def __init__(self, models_dir: Path, model_name: str, model: Any, catalog: pd.DataFrame,
                 user_ids: np.ndarray, matrices_dir: Path | None, item_kind: str = "track"):
        self.models_dir = models_dir
        self.item_kind = item_kind  # "track", or "artist" for an artist-level source
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
        # FAISS index (train.<model>.ann): built at fit only above its min_items, so "has one" is the threshold
        self.approximate = bool(getattr(model, "has_ann", False))

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
        cat = Catalog.read(models_dir)
        loaded = load_model(models_dir / name, num_threads=1)
        if loaded.n_items != len(cat.items):
            raise ServingError(f"{models_dir / name}: fitted on {loaded.n_items} items but the catalogue has "
                               f"{len(cat.items)}; the models folder is inconsistent")
        return cls(models_dir, name, loaded, cat.items, cat.user_ids,
                   None if matrices_dir is None else Path(matrices_dir), cat.item_kind)

    @classmethod
    def from_run(cls, run_id: str, model: str | None = None, *, tracking_uri: str | None = None,
                 matrices_dir: Path | str | None = None, cache_dir: Path | str | None = None) -> ModelServer:
        """:meth:`load` from MLflow run ``run_id`` (see :func:`download_run`).

        User histories come from the run (``model/history/``); for a run logged without them,
        from ``matrices_dir``.
        """
        models_dir, history = download_run(run_id, tracking_uri=tracking_uri, cache_dir=cache_dir)
        return cls.load(models_dir, model, matrices_dir=history if history is not None else matrices_dir)

    def with_model(self, model_name: str, model: Any) -> ModelServer:
        """This server's catalogue, ids and user histories (shared, not reloaded) answering with another model."""
        if model.n_items != self.n_items:
            raise ServingError(f"model {model_name!r} covers {model.n_items} items, the catalogue {self.n_items}")
        other = copy.copy(self)
        other.model_name, other.model = model_name, model
        other.explainer = Explainer(model_name, model, self._names, self._artists, self.catalog["tags"])
        return other

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
            files = [d / f for f in HISTORY_FILES]
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
        raise UnknownIdError(self.item_kind, str(track_id), sugg[:6])

    def has_item(self, track_id: str) -> bool:
        return str(track_id).strip() in self._item_index

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
        return self._recommend(np.asarray([-1]), self.liked_row(track_ids), n, explain)

    def liked_row(self, track_ids: Sequence[str]) -> sp.csr_matrix:
        """The one-row history of a new listener who likes ``track_ids`` (weight 1 each)."""
        if not track_ids:
            raise ServingError("give at least one liked track id")
        cols = sorted({self.item_index(t) for t in track_ids})
        return sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (np.zeros(len(cols), dtype=np.int64), cols)),
                             shape=(1, self.n_items))

    def similar(self, track_id: str, n: int = 10, *, explain: bool = True) -> pd.DataFrame:
        """The ``n`` tracks the model finds most similar to ``track_id``."""
        i = self.item_index(track_id)
        similar = self.model.ann_similar_items if self.approximate else self.model.similar_items
        ids, scores = similar(np.asarray([i]), N=self._n(n))
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
        recommend = self.model.ann_recommend if self.approximate else self.model.recommend
        ids, scores = recommend(userids, row, N=self._n(n), filter_already_liked_items=True)
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


SEARCH_COLUMNS = ("kind", "id", "name", "artist", "tracks", "match")


def search(catalog: Catalog, query: str, n: int = 10) -> pd.DataFrame:
    """Tracks (or artists), artists and users whose id starts with ``query`` or whose name contains it.

    Case-insensitive. Per kind, at most ``n`` rows, best first: an exact id or name, then an id
    prefix, then a name that starts with ``query``, then one that contains it (catalogue order
    within each). Columns :data:`SEARCH_COLUMNS`: ``artist`` for a track, ``tracks`` (how many the
    catalogue has) for an artist of a track-level catalogue; ``match`` says which field matched.
    """
    q = str(query).strip().lower()
    if not q:
        raise ServingError("give a name or an id prefix to search for (e.g. musicrec search \"radiohead\")")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ServingError(f"-n must be a positive integer (got {n!r})")
    items = catalog.items
    ids = items["item_id"].astype(str)
    names = items["name"].fillna("").astype(str)
    rows: list[tuple[str, str | None, Any, Any, int | None, str]] = []
    rank = _match_rank(ids, names, q)
    for pos in _best(rank, n):
        matched = "id" if ids.iat[pos].lower().startswith(q) else "name"
        artist = items["artist"].iat[pos]
        rows.append((catalog.item_kind, ids.iat[pos], names.iat[pos] or None,
                     artist if isinstance(artist, str) and catalog.item_kind == "track" else None, None, matched))
    if catalog.item_kind == "track":  # artists of a track-level catalogue: by name, with their track count
        artists = items["artist"].dropna().astype(str)
        counts = artists.groupby(artists, sort=False).size()
        a_names = pd.Series(counts.index, dtype=object)
        for pos in _best(_match_rank(pd.Series([""] * len(a_names)), a_names, q), n):
            rows.append(("artist", None, a_names.iat[pos], None, int(counts.iat[pos]), "name"))
    users = pd.Series(catalog.user_ids, dtype=object).astype(str)
    for pos in _best(_match_rank(users, pd.Series([""] * len(users)), q), n):
        rows.append(("user", users.iat[pos], None, None, None, "id"))
    return pd.DataFrame(rows, columns=list(SEARCH_COLUMNS))


def _match_rank(ids: pd.Series, names: pd.Series, q: str) -> np.ndarray:
    """0 exact id or name, 1 id prefix, 2 name prefix, 3 name contains, 4 no match."""
    low_ids, low_names = ids.str.lower(), names.str.lower()
    rank = np.full(len(ids), 4, dtype=np.int8)
    for level, hit in ((3, low_names.str.contains(q, regex=False)), (2, low_names.str.startswith(q)),
                       (1, low_ids.str.startswith(q)), (0, (low_ids == q) | (low_names == q))):
        rank[hit.to_numpy(dtype=bool)] = level
    return rank


def _best(rank: np.ndarray, n: int) -> np.ndarray:
    hits = np.flatnonzero(rank < 4)
    return hits[np.argsort(rank[hits], kind="stable")][:n]


def model_summaries(models_dir: Path | str, metrics: dict[str, Any] | None, k: int = 10) -> list[dict[str, Any]]:
    """Each trained model: name, whether it is the default, its params, its size on disk and its metrics at ``k``.

    ``metrics`` is ``reports/metrics.json`` (model -> {"ndcg@10": ...}), or None when unknown.
    """
    from musicrec.serving import artifacts

    models_dir = Path(models_dir)
    names = artifacts.available_models(models_dir)
    default = artifacts.default_model(names) if names else None
    out = []
    for name in names:
        folder = models_dir / name
        with reading(folder / "model.json", "re-run the train stage"):
            doc = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        at_k = {key: v for key, v in ((metrics or {}).get(name) or {}).items()
                if key.endswith(f"@{k}") and not key.startswith("arp_norm")}
        out.append({"name": name, "default": name == default, "params": doc.get("params", {}),
                    "size_bytes": size, "metrics": at_k})
    return out


def format_models(summaries: list[dict[str, Any]], k: int = 10) -> str:
    """``musicrec models``: one block per model (params, size, headline metrics at ``k``)."""
    from musicrec.formatting import bytes_size, number

    headline = (f"ndcg@{k}", f"recall@{k}", f"precision@{k}", f"hit_rate@{k}", f"coverage@{k}")
    lines = []
    for s in summaries:
        lines.append(f"{s['name']}{'  (default)' if s['default'] else ''}  {bytes_size(s['size_bytes'])}")
        params = ", ".join(f"{key}={_param(v)}" for key, v in sorted(s["params"].items()))
        lines.append(f"  params: {params or '(none)'}")
        shown = [f"{key} {number(s['metrics'][key])}" for key in headline if key in s["metrics"]]
        lines.append(f"  test: {', '.join(shown) if shown else '– (no reports/metrics.json entry)'}")
    return "\n".join(lines)


def _param(v: Any) -> str:
    from musicrec.formatting import number

    if isinstance(v, float):
        return f"{v:,g}"  # 10.0 -> 10, 0.05 -> 0.05
    return number(v) if isinstance(v, int) and not isinstance(v, bool) else str(v)


def format_search(df: pd.DataFrame) -> str:
    """A plain-text table of :func:`search` results."""
    if df.empty:
        return "no match"
    from musicrec.formatting import number

    def detail(r: Any) -> str:
        if isinstance(r.artist, str):
            return r.artist
        return "" if pd.isna(r.tracks) else f"{number(int(r.tracks))} track{'' if r.tracks == 1 else 's'}"

    text = lambda v: v if isinstance(v, str) else ""  # noqa: E731 (missing: None or NaN)
    cells = [(r.kind, text(r.id), text(r.name), detail(r))
             for r in df.itertuples(index=False)]
    head = ("kind", "id", "name", "artist / tracks")
    widths = [min(40, max(len(h), *(len(c[i]) for c in cells))) for i, h in enumerate(head)]
    fmt = lambda row: "  ".join(v[:w].ljust(w) for v, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), fmt(tuple("-" * w for w in widths)), *(fmt(c) for c in cells)])


def to_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows (NaN -> None)."""
    out = []
    for rec in df.to_dict(orient="records"):
        out.append({k: (None if isinstance(v, float) and not np.isfinite(v) else
                        int(v) if isinstance(v, np.integer) else float(v) if isinstance(v, np.floating) else v)
                    for k, v in rec.items()})
    return out


def format_table(df: pd.DataFrame, *, width: int = 28, why_width: int = 60, item_kind: str = "track") -> str:
    """A plain-text table of a result frame (names and explanations truncated).

    For an artist-level catalogue (``item_kind="artist"``) the name column is headed "artist" and the
    artist column, the same name again, is left out.
    """
    def cut(v: Any, w: int) -> str:
        s = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
        return s if len(s) <= w else s[: w - 1] + "…"

    rows = [(str(r.rank), cut(r.item_id, 20), cut(r.name, width), cut(r.artist, 22), f"{r.score:.4f}",
             cut(r.why, why_width)) for r in df.itertuples(index=False)]
    head = ("#", "id", "track", "artist", "score", "why")
    if item_kind == "artist":
        rows = [r[:3] + r[4:] for r in rows]
        head = ("#", "id", "artist", "score", "why")
    widths = [max(len(h), *(len(r[c]) for r in rows)) if rows else len(h) for c, h in enumerate(head)]
    right = (0, head.index("score"))
    line = lambda cells: "  ".join(  # noqa: E731
        (c.rjust(w) if k in right else c.ljust(w)) for k, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(head), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)])
