"""The cleaned, source-agnostic schema every adapter writes and every later stage reads.

``data/interim/`` (output of ``clean``):

* ``plays/part-NNNNN.parquet``: one row per listening record
  ``user_id`` (string), ``item_id`` (string), ``playcount`` (int64 >= 1),
  ``timestamp`` (timestamp[us, UTC], null where the source has none). Event
  sources (Last.fm 1K) give one row per event with ``playcount`` 1.
* ``items.parquet``: one row per item, ``item_id`` unique, with the metadata
  columns below (null where the source lacks them). ``tags`` is a
  comma-separated, lower-cased list as in the Kaggle ``Music Info.csv``.
* ``quarantine.parquet``: rejected rows: ``file``, ``line`` (1-based physical
  line of the row's start), ``reason``, ``raw`` (the row as read).

``data/processed/`` (output of ``transform``):

* ``plays/part.N.parquet``: ``user_id``, ``item_id``, ``playcount`` (sum),
  ``first_ts``, ``last_ts``; after the minimum-activity filter.
* ``items.parquet``: metadata of the items that survive the filter.
"""

from __future__ import annotations

PLAY_COLUMNS = ("user_id", "item_id", "playcount", "timestamp")
AUDIO_FEATURES = (
    "danceability", "energy", "key", "loudness", "mode", "speechiness", "acousticness",
    "instrumentalness", "liveness", "valence", "tempo", "time_signature",
)
ITEM_COLUMNS = ("item_id", "name", "artist", "tags", "genre", "year", "duration_ms", *AUDIO_FEATURES, "preview_url")
QUARANTINE_COLUMNS = ("file", "line", "reason", "raw")
PROCESSED_PLAY_COLUMNS = ("user_id", "item_id", "playcount", "first_ts", "last_ts")

# Kaggle "Million Song Dataset + Spotify + Last.fm" files (also written by the generator).
KAGGLE_MUSIC_INFO = "Music Info.csv"
KAGGLE_HISTORY = "User Listening History.csv"
KAGGLE_MUSIC_INFO_COLUMNS = (
    "track_id", "name", "artist", "spotify_preview_url", "spotify_id", "tags", "genre", "year",
    "duration_ms", *AUDIO_FEATURES,
)
KAGGLE_HISTORY_COLUMNS = ("track_id", "user_id", "playcount")
