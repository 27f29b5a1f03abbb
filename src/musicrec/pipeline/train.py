"""Fit every enabled model on the training matrix and save it (no pickle).

The models folder is self-contained for serving and for MLflow: one sub-folder
per model (``<name>/model.json`` + arrays), the id maps and a small catalogue
(``catalog.parquet``: item index, id, name, artist, tags, genre) so that
recommendations can be printed with names after a plain ``dvc pull``.
:func:`load_inputs` and :func:`run` are the stage's work; ``stages/train.py`` wraps
``run`` in the MLflow run and logs to it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from musicrec.config import TrainParams
from musicrec.pipeline.interactions import Interactions

PREVIEW_COLUMN = "spotify_preview_url"  # kept when the items table has it (the app's audio previews)
CATALOG_COLUMNS = ("item_id", "name", "artist", "tags", "genre", "year", PREVIEW_COLUMN)
# beside catalog.parquet: {"source": data.source, "item_kind": "track" | "artist"} (serving's wording)
CATALOG_INFO = "catalog.json"


@dataclass
class Trained:
    name: str
    model: Any
    seconds: float


def catalog_frame(items: pd.DataFrame, item_ids: Any) -> pd.DataFrame:
    """Metadata for each matrix column, in column order (missing metadata stays null)."""
    order = pd.DataFrame({"index": range(len(item_ids)), "item_id": pd.array(list(item_ids), dtype="string")})
    cols = [c for c in CATALOG_COLUMNS if c in items.columns]
    meta = items[cols].copy()
    meta["item_id"] = meta["item_id"].astype("string")
    return order.merge(meta, on="item_id", how="left", sort=False)


def item_features_for(items: pd.DataFrame, inter: Interactions, params: TrainParams) -> Any:
    from musicrec.models.features import build_item_features

    return build_item_features(items, inter.maps.item_ids, tag_weight=params.content.tag_weight,
                               audio_weight=params.content.audio_weight)


def build(name: str, params: TrainParams, seed: int) -> Any:
    """Model ``name`` from its params; the hybrids' components take their own ``train.<name>`` params."""
    from musicrec.models.factory import build_model, component_names

    own = params.model_params(name)
    parts = {comp: params.model_params(comp) for comp in component_names(name, own)}
    return build_model(name, own, seed=seed, component_params=parts or None)


def train_all(inter: Interactions, items: pd.DataFrame, params: TrainParams, seed: int) -> list[Trained]:
    """Fit each model listed in ``train.models`` on the train play counts (each weighs them: ``weighting``)."""
    from musicrec.models import MODELS

    needs = [name for name in params.models if MODELS[name].needs_item_features]
    features = item_features_for(items, inter, params) if needs else None
    out = []
    for name in params.models:
        model = build(name, params, seed)
        t0 = time.perf_counter()
        model.fit(inter.train, item_features=features)
        out.append(Trained(name, model, time.perf_counter() - t0))
    return out


def catalog_info(source: str | None) -> dict[str, Any]:
    """What the catalogue's items are: artists for an artist-level source (the source registry), else tracks."""
    from musicrec.ingest import SOURCES

    artists = source in SOURCES and SOURCES[source].artist_level
    return {"source": source, "item_kind": "artist" if artists else "track"}


def save_models(out_dir: Path, trained: list[Trained], inter: Interactions, items: pd.DataFrame, *,
                source: str | None = None) -> None:
    """Write the models folder atomically (``source``: the ``data.source`` its data came from)."""
    from musicrec.io import atomic_path, write_json, write_parquet

    with atomic_path(Path(out_dir), directory=True) as tmp:
        for t in trained:
            t.model.save(tmp / t.name)
        users, item_map = inter.maps.to_frames()
        write_parquet(users, tmp / "users.parquet")
        write_parquet(item_map, tmp / "items.parquet")
        write_parquet(catalog_frame(items, inter.maps.item_ids), tmp / "catalog.parquet")
        write_json(tmp / CATALOG_INFO, catalog_info(source))


@dataclass(frozen=True)
class TrainResult:
    trained: list[Trained]
    report: dict[str, Any]  # what reports/train.json holds: shape and fit seconds


def load_inputs(matrices: Path, items_path: Path) -> tuple[Interactions, pd.DataFrame]:
    """The train stage's inputs: the interactions folder and the transform's items table."""
    from musicrec.errors import reading
    from musicrec.pipeline.interactions import load_interactions

    inter = load_interactions(matrices)
    with reading(items_path, "run the transform stage first"):
        items = pd.read_parquet(items_path)
    return inter, items


def run(params: TrainParams, seed: int, inter: Interactions, items: pd.DataFrame, out_dir: Path,
        report_path: Path, *, source: str | None = None) -> TrainResult:
    """Fit every model of ``params.models``, save the models folder and write the train report."""
    from musicrec.io import write_json

    trained = train_all(inter, items, params, seed)
    save_models(Path(out_dir), trained, inter, items, source=source)
    report = {
        "users": inter.train.shape[0], "items": inter.train.shape[1], "train_interactions": int(inter.train.nnz),
        "fit_seconds": {t.name: round(t.seconds, 3) for t in trained},
    }
    write_json(report_path, report)
    return TrainResult(trained, report)
