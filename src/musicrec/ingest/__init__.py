"""Raw data in: the source registry, the streaming reader, one module per published format, the synthetic twin.

:data:`SOURCES` is the one list of ``data.source`` values: each names the adapter
module (in this folder) that reads its published files into the cleaned schema,
and whether its items are artists rather than tracks. :mod:`musicrec.config`
(the allowed values, the artist-level play-count cap) and the clean stage read it.
To add a source: write one adapter module here (copy ``lastfm_360k.py``; the
contract is in :mod:`musicrec.ingest.contract`) and add its line below.

This module imports nothing heavy: the params loader reads it at every stage.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Source:
    """One ``data.source`` value: its adapter module and what its items are."""

    adapter: str  # the adapter module (dotted path)
    artist_level: bool = False  # items are artists (play counts per user and artist), not tracks
    generated: bool = False  # made-up files (ids, names, URLs): its preview URLs lead nowhere and are not kept


SOURCES: dict[str, Source] = {
    "synthetic": Source("musicrec.ingest.kaggle", generated=True),  # the generated twin of the Kaggle files
    "kaggle": Source("musicrec.ingest.kaggle"),
    "taste_profile": Source("musicrec.ingest.taste_profile"),
    "lastfm_1k": Source("musicrec.ingest.lastfm_1k"),
    "lastfm_360k": Source("musicrec.ingest.lastfm_360k", artist_level=True),
    "hetrec_lastfm_2k": Source("musicrec.ingest.hetrec", artist_level=True),
    "msd_tutorial": Source("musicrec.ingest.msd_tutorial"),  # 10000.txt merged with the Turi song_data.csv
    "audioscrobbler": Source("musicrec.ingest.audioscrobbler", artist_level=True),  # the 2005 Last.fm dump
}


def get_adapter(source: str) -> ModuleType:
    """The adapter module for a ``data.source`` value."""
    if source not in SOURCES:
        raise ValueError(f"unknown data source {source!r}; expected one of {sorted(SOURCES)}")
    return importlib.import_module(SOURCES[source].adapter)
