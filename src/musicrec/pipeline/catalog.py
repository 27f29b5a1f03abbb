"""The shared files of the models folder: the id maps and the catalogue (the ``catalog`` stage).

``data/models/users.parquet`` and ``items.parquet`` map matrix rows and columns to ids;
``catalog.parquet`` holds each column's metadata (item index, id, name, artist, tags, genre,
year, the preview URL when the items table has one), so that serving prints names after a plain
``dvc pull``; ``catalog.json`` says which source the data came from and whether its items are
tracks or artists (serving's wording). They depend on the interactions, the items table and
``data.source`` only, so refitting one model (``train@<name>``) leaves them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from musicrec.pipeline.interactions import Interactions

PREVIEW_COLUMN = "preview_url"  # kept when the items table has it (the app's audio previews; clean: ITEM_SCHEMA)
CATALOG_COLUMNS = ("item_id", "name", "artist", "tags", "genre", "year", PREVIEW_COLUMN)
# beside catalog.parquet: {"source": data.source, "item_kind": "track" | "artist"} (serving's wording)
CATALOG_INFO = "catalog.json"
# the files this module writes into the models folder (dvc.yaml lists them as the catalog stage's outs)
FILES = ("users.parquet", "items.parquet", "catalog.parquet", CATALOG_INFO)


def catalog_frame(items: pd.DataFrame, item_ids: Any) -> pd.DataFrame:
    """Metadata for each matrix column, in column order (missing metadata stays null)."""
    order = pd.DataFrame({"index": range(len(item_ids)), "item_id": pd.array(list(item_ids), dtype="string")})
    cols = [c for c in CATALOG_COLUMNS if c in items.columns]
    meta = items[cols].copy()
    meta["item_id"] = meta["item_id"].astype("string")
    return order.merge(meta, on="item_id", how="left", sort=False)


def catalog_info(source: str | None) -> dict[str, Any]:
    """What the catalogue's items are: artists for an artist-level source (the source registry), else tracks."""
    from musicrec.ingest import SOURCES

    artists = source in SOURCES and SOURCES[source].artist_level
    return {"source": source, "item_kind": "artist" if artists else "track"}


def write_catalog(models_dir: Path, inter: Interactions, items: pd.DataFrame, source: str | None) -> None:
    """Write :data:`FILES` into ``models_dir`` (each atomically); ``source`` is the ``data.source``."""
    from musicrec.io import write_json, write_parquet

    users, item_map = inter.maps.to_frames()
    frames = dict(zip(FILES, (users, item_map, catalog_frame(items, inter.maps.item_ids))))
    for name, frame in frames.items():
        write_parquet(frame, Path(models_dir) / name)
    write_json(Path(models_dir) / CATALOG_INFO, catalog_info(source))
