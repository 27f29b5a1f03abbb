"""Last.fm 1K (O. Celma): one listening event per line, with a timestamp.

File: ``userid-timestamp-artid-artname-traid-traname.tsv`` (19M lines, no header,
6 tab-separated fields; excerpts named ``userid-timestamp-artid-artname-traid-traname*.tsv``
are accepted when the full file is absent and exactly one matches).

Normalisation:

* Each event -> one play with ``playcount`` 1 and its ``timestamp``
  (``YYYY-MM-DDTHH:MM:SSZ`` parsed as UTC).
* Users must be ``user_`` + 6 digits.
* ``item_id`` = the track MusicBrainz id (lower-cased) when present; when it is
  empty, a key from (artist name, track name): ``name:`` + 16 hex digits of a
  BLAKE2b hash of the NFKC, case-folded, whitespace-collapsed names (see
  :func:`musicrec.ingest.keys.name_key`). A non-empty id that is not a UUID is
  ``malformed_item_id``; no id and no track name is ``missing_item_id``.
* Items come from the events: ``name`` = track name, ``artist`` = artist name of
  the first kept event of each item.
* Control characters: replaced by U+FFFD (and counted) in the artist and track
  names (free text, so a name key never holds U+001F); in the user, the
  timestamp or an MBID they quarantine the event (``control_character``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from musicrec.ingest.values import MBID, Checks, empty_to_null, parse_iso_utc
from musicrec.ingest.contract import Catalog, Context, PlaysBatch, find_file, plays_table, stream_plays
from musicrec.ingest.inputs import COMPRESSED_SUFFIXES, InputFile, InputFormatError
from musicrec.ingest.keys import dedup_text, name_keys
from musicrec.ingest.spec import TableSpec

EVENTS_NAME = "userid-timestamp-artid-artname-traid-traname.tsv"
USER_ID = r"^user_[0-9]{6}$"

EVENTS_SPEC = TableSpec(
    columns=("user", "timestamp", "artist_mbid", "artist_name", "track_mbid", "track_name"),
    sep="\t", header="none",
    aliases={"user": ("userid", "user_id"), "timestamp": ("ts", "time"),
             "artist_mbid": ("artid", "artist_id", "musicbrainz-artist-id"), "artist_name": ("artname", "artist"),
             "track_mbid": ("traid", "track_id", "musicbrainz-track-id"), "track_name": ("traname", "track")},
    text_columns=("artist_name", "track_name"), description="Last.fm 1K listening events",
)


@dataclass(frozen=True)
class Inputs:
    events: InputFile


def locate(input_dir: Path) -> Inputs:
    path = find_file(input_dir, (EVENTS_NAME,), "the Last.fm 1K events", required=False)
    if path is None:
        excerpt = (".tsv", *(".tsv" + s for s in COMPRESSED_SUFFIXES))  # plain or compressed, like find_file
        matches = sorted(p for p in input_dir.glob("userid-timestamp-artid-artname-traid-traname*.tsv*")
                         if p.name.endswith(excerpt))
        if len(matches) != 1:
            find_file(input_dir, (EVENTS_NAME,), "the Last.fm 1K events")  # raises with the listing
            raise InputFormatError(f"{input_dir}: {len(matches)} Last.fm 1K excerpts found; expected one")
        path = matches[0]
    return Inputs(InputFile(path))


def load_catalog(inputs: Inputs, ctx: Context) -> Catalog:
    return Catalog(items=None)


def item_keys(f: pa.Table, checks: Checks, mbid_col: str, artist_col: str, title_col: str | None) -> pa.Array:
    """``item_id`` per row: lower-cased MBID, else a name key; records failures in ``checks``."""
    mbid = f[mbid_col]
    has_mbid = pc.not_equal(mbid, "")
    checks.fail(pc.and_(has_mbid, pc.invert(pc.match_substring_regex(mbid, MBID))), "malformed_item_id")
    name_col = f[title_col] if title_col else f[artist_col]
    checks.fail(pc.and_(pc.invert(has_mbid), pc.equal(name_col, "")), "missing_item_id")
    keys = pc.utf8_lower(mbid).combine_chunks() if isinstance(mbid, pa.ChunkedArray) else pc.utf8_lower(mbid)
    need = pc.invert(has_mbid)
    if pc.any(need).as_py():
        artists = pc.filter(f[artist_col], need).to_pylist()
        titles = pc.filter(f[title_col], need).to_pylist() if title_col else None
        names = pa.array(name_keys(artists, titles), pa.string())
        idx = pa.array(pc.indices_nonzero(need))
        keys_np = keys.to_numpy(zero_copy_only=False).copy()
        keys_np[idx.to_numpy()] = names.to_numpy(zero_copy_only=False)
        keys = pa.array(keys_np, pa.string())
    return keys


def _build(f: pa.Table, checks: Checks) -> pa.Table:
    checks.check_id(f["user"], "user_id", USER_ID)
    ts = parse_iso_utc(f["timestamp"], checks)
    items = item_keys(f, checks, "track_mbid", "artist_name", "track_name")
    ones = pa.array([1] * f.num_rows, pa.int64()) if f.num_rows else pa.array([], pa.int64())
    return plays_table(
        f["user"], items, ones, ts, f["_line"],
        dedup_text(*(f[c] for c in EVENTS_SPEC.columns)),
        _name=empty_to_null(f["track_name"]), _artist=empty_to_null(f["artist_name"]),
    )


def iter_plays(inputs: Inputs, ctx: Context) -> Iterator[PlaysBatch]:
    yield from stream_plays(inputs.events, EVENTS_SPEC, ctx, _build)
