"""The MSD "tutorial" table: Taste Profile triplets merged with the Turi song metadata, in one CSV.

Most Million Song Dataset tutorials and Kaggle notebooks download ``10000.txt`` (the
Taste Profile triplets) and the Turi/GraphLab ``song_data.csv``, merge them on ``song_id``
and ship the result as one file with the header
``user_id,song_id,listen_count,title,release,artist_name,year``. This adapter reads that
file as is. It is looked for as ``song_df.csv`` or ``msd_tutorial.csv`` (plain or
compressed, in the folder or one level of sub-folders); failing those names, the folder's
only CSV file is read. Header names are matched as usual (any order, case-insensitive;
``listen_count`` also as :data:`~musicrec.ingest.spec.PLAY_COUNT_NAMES`, e.g. ``play_count``
or ``plays``); extra columns (``release``, a leading unnamed index column written by
``DataFrame.to_csv``) are ignored. The two source files separately are the
``taste_profile`` source (``10000.txt`` + the Turi ``song_data.csv``).

Normalisation:

* Users must be 40 hex digits (the Taste Profile's SHA-1s), songs ``SO`` + 16 [A-Z0-9];
  ``item_id`` = the SO song id (the table has no TR ids and no audio features).
* Items come from the plays: ``name`` = ``title``, ``artist`` = ``artist_name``, ``year``
  (0 = unknown -> null; a value that is not a number is ``invalid_numeric_field``) from the
  first kept row of each song. ``release`` (the album) is not part of the cleaned schema.
* Duplicates: the duplicate key is the triplet (user, song, count), not the whole row: a
  tutorial that merged without dropping the Turi file's repeated song ids repeats a
  triplet with another title or year, and that copy is quarantined as ``duplicate_row``
  (it is the same play), never counted twice.
* Control characters: replaced by U+FFFD (and counted) in ``title`` and ``artist_name``
  (free text); in an id, a count or the year they quarantine the row (``control_character``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from musicrec.ingest.contract import Catalog, Context, PlaysBatch, find_file, plays_table, stream_plays
from musicrec.ingest.inputs import COMPRESSED_SUFFIXES, InputFile, InputFormatError
from musicrec.ingest.keys import dedup_text
from musicrec.ingest.spec import TableSpec, play_count_aliases
from musicrec.ingest.values import (
    MSD_SONG_ID, SHA1_ID, Checks, empty_to_null, parse_numbers, parse_playcount, zero_to_null,
)

TABLE_NAMES = ("song_df.csv", "msd_tutorial.csv")

TABLE_SPEC = TableSpec(
    columns=("user_id", "song_id", "listen_count", "title", "artist_name", "year"), sep=",", header="required",
    quoting=True, extra_columns=True,
    aliases={"user_id": ("user", "userid"), "song_id": ("song", "songid"),
             "listen_count": play_count_aliases("listen_count"), "artist_name": ("artist",)},
    text_columns=("title", "artist_name"), description="MSD tutorial table (triplets + Turi song metadata)",
)


@dataclass(frozen=True)
class Inputs:
    table: InputFile


def _csv_files(input_dir: Path) -> list[Path]:
    """The CSV files (plain or compressed) of ``input_dir`` and its sub-folders (one level, sorted)."""
    if not input_dir.is_dir():
        return []
    dirs = [input_dir, *sorted(p for p in input_dir.iterdir() if p.is_dir() and not p.name.startswith("."))]
    suffixes = (".csv", *(".csv" + s for s in COMPRESSED_SUFFIXES))
    return [p for d in dirs for p in sorted(d.iterdir()) if p.is_file() and p.name.lower().endswith(suffixes)]


def locate(input_dir: Path) -> Inputs:
    path = find_file(input_dir, TABLE_NAMES, "the MSD tutorial table", required=False)
    if path is None:
        found = _csv_files(input_dir)
        if len(found) > 1:
            raise InputFormatError(
                f"{input_dir}: {len(found)} CSV files and none named {' or '.join(TABLE_NAMES)}: "
                f"{[str(p.relative_to(input_dir)) for p in found][:30]}; expected the MSD tutorial table (header "
                f"user_id,song_id,listen_count,title,release,artist_name,year) under one of those names, or as the "
                f"folder's only CSV file. Rename it to {TABLE_NAMES[0]} or move the other files")
        if len(found) == 1 and found[0].name.lower().startswith("song_data.csv"):
            raise InputFormatError(
                f"{found[0]}: this is song_data.csv (the Turi song metadata, or the MSD subset's), not the merged "
                f"tutorial table; expected {' or '.join(TABLE_NAMES)} with header user_id,song_id,listen_count,title,"
                f"release,artist_name,year. To read song_data.csv with the triplets file 10000.txt, set data.source: "
                f"taste_profile and place both files in its folder")
        if not found:
            find_file(input_dir, TABLE_NAMES, "the MSD tutorial table, header user_id,song_id,listen_count,title,"
                      "release,artist_name,year; or the folder's only CSV file")
        path = found[0]
    return Inputs(InputFile(path))


def load_catalog(inputs: Inputs, ctx: Context) -> Catalog:
    return Catalog(items=None, stats={"table_file": inputs.table.name})


def _build(f: pa.Table, checks: Checks, max_playcount: int) -> pa.Table:
    checks.check_id(f["user_id"], "user_id", SHA1_ID)
    checks.check_id(f["song_id"], "item_id", MSD_SONG_ID)
    counts = parse_playcount(f["listen_count"], checks, max_playcount)
    year = zero_to_null(parse_numbers(f["year"], checks, "int"))
    return plays_table(f["user_id"], f["song_id"], counts, None, f["_line"],
                       dedup_text(f["user_id"], f["song_id"], pc.cast(counts, pa.string())),
                       _name=empty_to_null(f["title"]), _artist=empty_to_null(f["artist_name"]), _year=year)


def iter_plays(inputs: Inputs, ctx: Context) -> Iterator[PlaysBatch]:
    yield from stream_plays(inputs.table, TABLE_SPEC, ctx, lambda f, c: _build(f, c, ctx.max_playcount))
