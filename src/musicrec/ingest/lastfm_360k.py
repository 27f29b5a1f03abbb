"""Last.fm 360K (O. Celma): artist-level play counts per user.

Files: ``usersha1-artmbid-artname-plays.tsv`` (17.5M lines, no header, 4 fields:
user SHA-1, artist MBID (may be empty), artist name, plays) and, optionally,
``usersha1-profile.tsv`` (user demographics; not part of the cleaned schema,
only its presence is reported).

Normalisation:

* Users must be 40 hex digits.
* ``item_id`` = the artist MusicBrainz id (lower-cased); when empty, a key from
  the normalised artist name (``name:`` + 16 hex digits, see
  :func:`musicrec.ingest.keys.name_key`). A non-empty non-UUID id is
  ``malformed_item_id``; no id and no name is ``missing_item_id``.
* Items come from the plays: ``name`` = ``artist`` = the artist name of the
  first kept row of each item. No timestamps.
* Control characters: replaced by U+FFFD (and counted) in the artist name (free
  text); in the user, the MBID or the play count they quarantine the row
  (``control_character``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from musicrec.ingest.values import SHA1_ID, Checks, empty_to_null, parse_playcount
from musicrec.ingest.contract import Catalog, Context, PlaysBatch, find_file, plays_table, stream_plays
from musicrec.ingest.inputs import InputFile
from musicrec.ingest.keys import dedup_text
from musicrec.ingest.lastfm_1k import item_keys
from musicrec.ingest.spec import TableSpec, play_count_aliases

PLAYS_NAME = "usersha1-artmbid-artname-plays.tsv"
PROFILE_NAME = "usersha1-profile.tsv"

PLAYS_SPEC = TableSpec(
    columns=("user", "artist_mbid", "artist_name", "plays"), sep="\t", header="none",
    aliases={"user": ("usersha1", "user_id", "userid"), "artist_mbid": ("artmbid", "artist_id"),
             "artist_name": ("artname", "artist"), "plays": play_count_aliases("plays")},
    text_columns=("artist_name",), description="Last.fm 360K user-artist play counts",
)


@dataclass(frozen=True)
class Inputs:
    plays: InputFile
    profile: Path | None


def locate(input_dir: Path) -> Inputs:
    plays = find_file(input_dir, (PLAYS_NAME,), "the Last.fm 360K play counts")
    assert plays is not None
    return Inputs(InputFile(plays), find_file(input_dir, (PROFILE_NAME,), "profiles", required=False))


def load_catalog(inputs: Inputs, ctx: Context) -> Catalog:
    return Catalog(items=None, stats={"profile_file_present": inputs.profile is not None})


def _build(f: pa.Table, checks: Checks, max_playcount: int) -> pa.Table:
    checks.check_id(f["user"], "user_id", SHA1_ID)
    items = item_keys(f, checks, "artist_mbid", "artist_name", None)
    counts = parse_playcount(f["plays"], checks, max_playcount)
    name = empty_to_null(f["artist_name"])
    return plays_table(f["user"], items, counts, None, f["_line"],
                       dedup_text(f["user"], f["artist_mbid"], f["artist_name"], pc.cast(counts, pa.string())),
                       _name=name, _artist=name)


def iter_plays(inputs: Inputs, ctx: Context) -> Iterator[PlaysBatch]:
    yield from stream_plays(inputs.plays, PLAYS_SPEC, ctx, lambda f, c: _build(f, c, ctx.max_playcount))
