"""Kaggle "Million Song Dataset + Spotify + Last.fm" (and the synthetic generator's copy of it).

Files: ``Music Info.csv`` (header, columns :data:`~musicrec.schema.KAGGLE_MUSIC_INFO_COLUMNS`,
quoted CSV) and ``User Listening History.csv`` (header ``track_id,user_id,playcount``,
~9.7M rows; streamed).

Normalisation (beyond the reader's whitespace stripping):

* ``item_id`` = ``track_id``; ids must match :data:`~musicrec.ingest.values.TOKEN_ID`
  (letters/digits first, then letters, digits, ``_ . : -``; at most 128 chars).
* ``tags``: lower-cased, split on commas, each stripped, empties dropped, joined
  with ``", "``; ``genre``/``name``/``artist``: empty -> null.
* ``year``, ``duration_ms``: numbers rounded to int64; audio features float64;
  empty or NaN -> null; other non-numbers, ``inf``, overflows (``1e999``) and
  values beyond int64 quarantine the row (``invalid_numeric_field``).
* ``spotify_preview_url`` becomes ``preview_url`` when it is an ``http(s)://`` URL without
  whitespace (anything else: null; the column may be absent, and a control character in it
  quarantines the row like one in an id); ``spotify_id`` is dropped.
* Control characters: replaced by U+FFFD (and counted) in ``name``, ``artist``,
  ``tags`` and ``genre`` (free text: ``INFO_SPEC.text_columns``); in an id, a play
  count or a number they quarantine the row (``control_character``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from musicrec.ingest.inputs import InputFile
from musicrec.ingest.spec import TableSpec, play_count_aliases
from musicrec.schema import AUDIO_FEATURES, KAGGLE_HISTORY, KAGGLE_HISTORY_COLUMNS, KAGGLE_MUSIC_INFO, KAGGLE_MUSIC_INFO_COLUMNS
from musicrec.ingest.values import (
    TOKEN_ID, Checks, empty_to_null, http_url_or_null, normalise_tags, parse_numbers, parse_playcount,
)
from musicrec.ingest.contract import (
    Catalog, Context, FileReport, PlaysBatch, find_file, make_items, plays_table, read_table, stream_plays,
)
from musicrec.ingest.keys import dedup_text
from musicrec.ingest.quarantine import dedupe_items

INFO_SPEC = TableSpec(
    columns=("track_id", "name", "artist", "tags", "genre", "year", "duration_ms", *AUDIO_FEATURES,
             "spotify_preview_url"),
    sep=",", header="required", quoting=True, extra_columns=True,
    aliases={"track_id": ("item_id", "trackid"), "spotify_preview_url": ("preview_url",)},
    text_columns=("name", "artist", "tags", "genre"),
    optional_columns=("spotify_preview_url",),
    description="Kaggle track metadata",
)
HISTORY_SPEC = TableSpec(
    columns=KAGGLE_HISTORY_COLUMNS, sep=",", header="required", quoting=True,
    aliases={"track_id": ("item_id", "trackid", "song_id"), "user_id": ("user", "userid"),
             "playcount": play_count_aliases("playcount")},
    description="Kaggle listening history",
)
assert set(INFO_SPEC.columns) <= set(KAGGLE_MUSIC_INFO_COLUMNS)


@dataclass(frozen=True)
class Inputs:
    info: InputFile
    history: InputFile


def locate(input_dir: Path) -> Inputs:
    info = find_file(input_dir, (KAGGLE_MUSIC_INFO,), "the Kaggle track metadata")
    history = find_file(input_dir, (KAGGLE_HISTORY,), "the Kaggle listening history")
    assert info is not None and history is not None
    return Inputs(InputFile(info), InputFile(history))


def _build_items(f: pa.Table, checks: Checks) -> pa.Table:
    checks.check_id(f["track_id"], "item_id", TOKEN_ID)
    nums = {c: parse_numbers(f[c], checks, "int" if c in ("year", "duration_ms") else "float")
            for c in ("year", "duration_ms", *AUDIO_FEATURES)}
    return make_items(
        f.num_rows,
        item_id=f["track_id"],
        name=empty_to_null(f["name"]),
        artist=empty_to_null(f["artist"]),
        tags=normalise_tags(f["tags"]),
        genre=empty_to_null(f["genre"]),
        preview_url=http_url_or_null(f["spotify_preview_url"]),
        **nums,
    )


def load_catalog(inputs: Inputs, ctx: Context) -> Catalog:
    rep = FileReport(role="items")
    items, quarantine, lines, raws = read_table(inputs.info, INFO_SPEC, ctx, rep, _build_items)
    if items is None:
        items = make_items(0)
    items, dups = dedupe_items(items, lines, raws, inputs.info.name)
    rep.quarantined += dups.num_rows
    rep.reasons.update(dups["reason"].to_pylist())
    rep.kept = items.num_rows
    return Catalog(items=items, files={inputs.info.name: rep}, quarantine=[*quarantine, dups],
                   join=(f"{inputs.history.name}: track_id", f"{inputs.info.name}: track_id"))


def _build_plays(f: pa.Table, checks: Checks, max_playcount: int) -> pa.Table:
    checks.check_id(f["user_id"], "user_id", TOKEN_ID)
    checks.check_id(f["track_id"], "item_id", TOKEN_ID)
    counts = parse_playcount(f["playcount"], checks, max_playcount)
    return plays_table(f["user_id"], f["track_id"], counts, None, f["_line"],
                       dedup_text(f["track_id"], f["user_id"], pc.cast(counts, pa.string())))


def iter_plays(inputs: Inputs, ctx: Context) -> Iterator[PlaysBatch]:
    yield from stream_plays(inputs.history, HISTORY_SPEC, ctx, lambda f, c: _build_plays(f, c, ctx.max_playcount))
