"""Echo Nest Taste Profile (Million Song Dataset) triplets + MSD track metadata.

Plays: ``train_triplets.txt`` (48M rows) or ``10000.txt`` (the 2M-row sample or an
excerpt): ``user<TAB>song_id<TAB>play_count``, no header; the first name found
is used (in that order). Metadata, the first found of:

1. ``track_metadata.db`` (SQLite, table ``songs``: track_id, song_id, title,
   artist_name, duration, year),
2. ``unique_tracks.txt`` (``TR<SEP>SO<SEP>artist<SEP>title``, no header),
3. ``song_data.csv``, in either of its two published layouts, told apart by its header:
   the MSD 10k subset's (CSV with a leading unnamed index column, ``track_id``, ``song_id``
   and audio features: :data:`SONG_DATA_SPEC`), or the Turi/GraphLab one that MSD tutorials
   download next to ``10000.txt`` (``song_id,title,release,artist_name,year``, ~1M rows, no TR
   ids, no audio features: :data:`TURI_SONG_DATA_SPEC`). The Turi file keys its metadata by
   SO id: plays keep their SO ids (no SO -> TR mapping); ``year`` 0 means unknown (null);
   ``release`` (the album) is not part of the cleaned schema. Its song ids repeat (about
   1,000 of the 1M rows): the first row is kept, a later one is ``duplicate_row`` (same
   values) or ``duplicate_item_conflict`` (other title, artist or year);
4. ``subset_unique_tracks.txt`` (10k subset; the uploaded copy has a header).

Files are looked for in the input folder and one level of sub-folders.

Normalisation and mapping:

* Users must be 40 hex digits (SHA-1); song ids ``SO`` + 16 [A-Z0-9]; track ids
  ``TR`` + 16 [A-Z0-9].
* A play's ``item_id`` becomes the TR track id of its SO song. A song with
  several tracks (MSD duplicates) maps to the first track listed in the
  metadata file (counted as ``songs_with_several_tracks``). Unmatched plays
  keep the SO id (``unmatched="keep"``) or are dropped.
* Metadata: ``year`` 0 -> null; ``duration`` seconds -> ``duration_ms`` (rounded; a value
  that is not finite or does not fit int64 is ``invalid_numeric_field``);
  MSD ``danceability``/``energy`` are 0.0 for "not computed" -> null.
* Control characters: in ``title`` and ``artist`` (free text, also in the SQLite
  ``songs`` table: :data:`SONGS_DB_SPEC`) each is replaced by U+FFFD and counted
  (21 titles of the 10k subset hold U+0019 / U+0013 / U+0014, a right quote or a
  dash cut down to its low byte upstream); in an id or a number one quarantines
  the row (``control_character``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from musicrec.ingest.values import (
    MSD_SONG_ID, MSD_TRACK_ID, SHA1_ID, Checks, empty_to_null, parse_numbers, parse_playcount, zero_to_null,
)
from musicrec.ingest.contract import (
    Catalog, Context, FileReport, PlaysBatch, find_file, make_items, plays_table, read_table, stream_plays,
)
from musicrec.ingest.fields import strip_fields
from musicrec.ingest.header import peek_header
from musicrec.ingest.inputs import InputFile, InputFormatError
from musicrec.ingest.keys import dedup_text
from musicrec.ingest.quarantine import dedupe_items, quarantine_table
from musicrec.ingest.spec import ReaderStats, TableSpec, play_count_aliases

PLAYS_NAMES = ("train_triplets.txt", "10000.txt")
META_NAMES = ("track_metadata.db", "unique_tracks.txt", "song_data.csv", "subset_unique_tracks.txt")

TRIPLETS_SPEC = TableSpec(
    columns=("user", "song", "play_count"), sep="\t", header="none",
    aliases={"user": ("user_id", "userid", "user_sha1"), "song": ("song_id", "songid", "item_id"),
             "play_count": play_count_aliases("play_count")},
    description="Taste Profile triplets",
)
UNIQUE_TRACKS_SPEC = TableSpec(
    columns=("track_id", "song_id", "artist", "title"), sep="<SEP>", header="optional",
    aliases={"track_id": ("id", "trackid"), "song_id": ("id2", "songid"), "artist": ("artistname", "artist_name"),
             "title": ("songtitle", "song_title")},
    text_columns=("artist", "title"), description="MSD track list",
)
SONG_DATA_SPEC = TableSpec(
    columns=("track_id", "song_id", "artist_name", "title", "year", "duration", "danceability", "energy", "key",
             "loudness", "mode", "tempo", "time_signature"),
    sep=",", header="required", quoting=True, extra_columns=True, text_columns=("artist_name", "title"),
    description="MSD subset song metadata",
)
TURI_SONG_DATA_SPEC = TableSpec(
    columns=("song_id", "title", "artist_name", "year"), sep=",", header="required", quoting=True,
    extra_columns=True, aliases={"artist_name": ("artist",)}, text_columns=("artist_name", "title"),
    description="Turi/GraphLab song metadata (SO ids)",
)
#: The ``songs`` table of ``track_metadata.db``, in the order selected (``_raw``: the values joined with tabs).
SONGS_DB_SPEC = TableSpec(
    columns=("track_id", "song_id", "title", "artist", "duration", "year"), sep="\t", header="none",
    text_columns=("title", "artist"), description="MSD track_metadata.db songs",
)


@dataclass(frozen=True)
class Inputs:
    plays: InputFile
    meta: InputFile


def locate(input_dir: Path) -> Inputs:
    plays = find_file(input_dir, PLAYS_NAMES, "the Taste Profile triplets")
    meta = find_file(input_dir, META_NAMES, "the MSD track metadata (SO -> TR mapping)")
    assert plays is not None and meta is not None
    return Inputs(InputFile(plays), InputFile(meta))


def _ids(f: pa.Table, checks: Checks) -> None:
    checks.check_id(f["track_id"], "item_id", MSD_TRACK_ID)
    checks.fail(pc.invert(pc.match_substring_regex(f["song_id"], MSD_SONG_ID)), "malformed_item_id")


def _build_unique_tracks(f: pa.Table, checks: Checks) -> pa.Table:
    _ids(f, checks)
    items = make_items(f.num_rows, item_id=f["track_id"], name=empty_to_null(f["title"]),
                       artist=empty_to_null(f["artist"]))
    return items.append_column("_song", f["song_id"])


def _build_song_data(f: pa.Table, checks: Checks) -> pa.Table:
    _ids(f, checks)
    num = {c: parse_numbers(f[c], checks) for c in ("danceability", "energy", "key", "loudness",
                                                      "mode", "tempo", "time_signature")}
    items = make_items(
        f.num_rows, item_id=f["track_id"], name=empty_to_null(f["title"]), artist=empty_to_null(f["artist_name"]),
        year=zero_to_null(parse_numbers(f["year"], checks, "int")),
        duration_ms=parse_numbers(f["duration"], checks, "int", scale=1000.0),
        danceability=zero_to_null(num["danceability"]), energy=zero_to_null(num["energy"]),
        key=num["key"], loudness=num["loudness"], mode=num["mode"], tempo=num["tempo"],
        time_signature=num["time_signature"],
    )
    return items.append_column("_song", f["song_id"])


def _build_turi_song_data(f: pa.Table, checks: Checks) -> pa.Table:
    checks.check_id(f["song_id"], "item_id", MSD_SONG_ID)
    items = make_items(f.num_rows, item_id=f["song_id"], name=empty_to_null(f["title"]),
                       artist=empty_to_null(f["artist_name"]),
                       year=zero_to_null(parse_numbers(f["year"], checks, "int")))
    return items.append_column("_song", f["song_id"])


def _song_data_spec(inp: InputFile, ctx: Context) -> TableSpec:
    """Which published ``song_data.csv`` this is, from its header: the MSD subset's (with ``track_id``)
    or the Turi one (``song_id`` without ``track_id``); neither is refused naming both."""
    names = peek_header(inp, SONG_DATA_SPEC, ctx.policy)
    if "track_id" in names:
        return SONG_DATA_SPEC
    if "song_id" in names:
        return TURI_SONG_DATA_SPEC
    raise InputFormatError(
        f"{inp.name}: line 1: header {','.join(names)[:300]!r} is neither published song_data.csv layout; expected the "
        f"MSD 10k subset's (columns {','.join(SONG_DATA_SPEC.columns)}, extra columns allowed) or the Turi one "
        f"(columns {','.join(TURI_SONG_DATA_SPEC.columns)}, e.g. song_id,title,release,artist_name,year)"
    )


def _read_sqlite(inp: InputFile, ctx: Context, rep: FileReport) -> tuple[pa.Table | None, list[pa.Table], np.ndarray, pa.Array]:
    """Read ``songs`` from ``track_metadata.db`` in chunks (``line`` = SQLite rowid)."""
    # read-only, by a properly quoted URI: '#', '?', '%' and spaces in the path stay part of it, and a
    # missing file is an error, never a new empty database
    uri = inp.checked_path(ctx.policy).as_uri() + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as err:
        raise InputFormatError(f"{inp.path}: cannot open the SQLite database read-only ({err})") from None
    try:
        cur = con.execute("SELECT rowid, track_id, song_id, title, artist_name, duration, year FROM songs ORDER BY rowid")
    except sqlite3.Error as err:
        con.close()
        raise InputFormatError(
            f"{inp.path}: expected an SQLite database with table songs(track_id, song_id, title, artist_name, "
            f"duration, year) ({err})"
        ) from None
    built, quarantine, lines, raws = [], [], [], []
    stats = ReaderStats()
    try:
        while rows := cur.fetchmany(ctx.chunk_rows):
            cols = list(zip(*rows))
            rowid = np.asarray(cols[0], dtype=np.int64)
            text = {n: pa.array(["" if v is None else str(v) for v in c], pa.string())
                    for n, c in zip(SONGS_DB_SPEC.columns, cols[1:])}
            raw = pa.array(["\t".join("" if v is None else str(v) for v in r[1:]) for r in rows], pa.string())
            f, bad = strip_fields(pa.table({**text, "_line": rowid, "_raw": raw}), SONGS_DB_SPEC, stats)
            checks = Checks(f.num_rows)
            checks.fail(bad, "control_character")
            _ids(f, checks)
            dur = parse_numbers(f["duration"], checks, "int", scale=1000.0)
            year = parse_numbers(f["year"], checks, "int")
            t = make_items(f.num_rows, item_id=f["track_id"], name=empty_to_null(f["title"]),
                           artist=empty_to_null(f["artist"]), year=zero_to_null(year),
                           duration_ms=dur).append_column("_song", f["song_id"])
            ok = pa.array(checks.ok)
            rej = checks.rejects(f["_line"], f["_raw"])
            rep.rows_read += f.num_rows
            rep.quarantined += rej.num_rows
            rep.reasons.update(rej["reason"].to_pylist())
            quarantine.append(quarantine_table(inp.name, rej["line"].to_numpy(), rej["reason"], rej["raw"]))
            built.append(t.filter(ok))
            lines.append(rowid[checks.ok])
            raws.append(raw.filter(ok))
    except sqlite3.Error as err:
        raise InputFormatError(f"{inp.path}: cannot read table songs ({err})") from None
    finally:
        con.close()
    rep.reader = stats.control_dict()
    if not built:
        return None, quarantine, np.empty(0, np.int64), pa.array([], pa.string())
    return pa.concat_tables(built), quarantine, np.concatenate(lines), pa.concat_arrays(raws)


def load_catalog(inputs: Inputs, ctx: Context) -> Catalog:
    rep = FileReport(role="items")
    name = inputs.meta.published_name
    keyed_by_song = False  # the Turi song_data.csv: items keyed by SO id, no SO -> TR mapping
    if name == "track_metadata.db":
        table, quarantine, lines, raws = _read_sqlite(inputs.meta, ctx, rep)
    elif name == "song_data.csv":
        spec = _song_data_spec(inputs.meta, ctx)
        build = _build_song_data if spec is SONG_DATA_SPEC else _build_turi_song_data
        table, quarantine, lines, raws = read_table(inputs.meta, spec, ctx, rep, build)
        keyed_by_song = spec is TURI_SONG_DATA_SPEC
    else:
        table, quarantine, lines, raws = read_table(inputs.meta, UNIQUE_TRACKS_SPEC, ctx, rep, _build_unique_tracks)
    if table is None:
        table = make_items(0).append_column("_song", pa.array([], pa.string()))
    songs = table["_song"].combine_chunks()
    items, dups = dedupe_items(table.drop_columns(["_song"]), lines, raws, inputs.meta.name)
    rep.quarantined += dups.num_rows
    rep.reasons.update(dups["reason"].to_pylist())
    rep.kept = items.num_rows
    if keyed_by_song:
        return Catalog(items=items, files={inputs.meta.name: rep}, quarantine=[*quarantine, dups],
                       join=(f"{inputs.plays.name}: song (SO id)", f"{inputs.meta.name}: song_id"),
                       stats={"metadata_file": inputs.meta.name, "metadata_layout": "turi_song_data"})
    # SO -> TR: first track listed per song, among rows kept (not quarantined as TR duplicates)
    pairs = pd.DataFrame({"song": songs.to_numpy(zero_copy_only=False),
                          "track": table["item_id"].combine_chunks().to_numpy(zero_copy_only=False),
                          "line": lines})
    if dups.num_rows:
        pairs = pairs[~pairs["line"].isin(dups["line"].to_numpy())]
    per_song = pairs["song"].value_counts()
    first = pairs.drop_duplicates("song", keep="first")
    keys = pa.array(first["song"].tolist(), pa.string())
    vals = pa.array(first["track"].tolist(), pa.string())
    return Catalog(
        items=items, id_map=(keys, vals), files={inputs.meta.name: rep}, quarantine=[*quarantine, dups],
        join=(f"{inputs.plays.name}: song (SO id)", f"{inputs.meta.name}: song_id"),
        stats={"metadata_file": inputs.meta.name, "mapped_songs": len(keys),
               "songs_with_several_tracks": int((per_song > 1).sum())},
    )


def _build_plays(f: pa.Table, checks: Checks, max_playcount: int) -> pa.Table:
    checks.check_id(f["user"], "user_id", SHA1_ID)
    checks.check_id(f["song"], "item_id", MSD_SONG_ID)
    counts = parse_playcount(f["play_count"], checks, max_playcount)
    return plays_table(f["user"], f["song"], counts, None, f["_line"],
                       dedup_text(f["user"], f["song"], pc.cast(counts, pa.string())))


def iter_plays(inputs: Inputs, ctx: Context) -> Iterator[PlaysBatch]:
    yield from stream_plays(inputs.plays, TRIPLETS_SPEC, ctx, lambda f, c: _build_plays(f, c, ctx.max_playcount))
