"""HetRec 2011 Last.fm 2K: artist-level play counts, read directly from the published zip.

File: ``hetrec2011-lastfm-2k.zip`` (members matched by base name; never unzipped):

* ``user_artists.dat``: ``userID  artistID  weight`` (weight = plays) -> plays;
* ``artists.dat`` (UTF-8): ``id  name  url  pictureURL`` -> items;
* ``tags.dat`` (Latin-1): ``tagID  tagValue``;
* ``user_taggedartists.dat``: ``userID  artistID  tagID  day  month  year`` (the date must be a
  real calendar date in :data:`~musicrec.ingest.values.TIME_RANGE`, else the assignment is quarantined
  as ``invalid_date`` / ``timestamp_out_of_range``; it is not otherwise used).

All tab-separated with a header, CRLF line ends (LF accepted). ``user_friends.dat``
and ``user_taggedartists-timestamps.dat`` are not used.

Normalisation:

* User, artist and tag ids must be decimal integers (leading zeros are stripped:
  ``051`` and ``51`` are one id; at most 18 digits after that); ``item_id`` is the
  artist id as a string (e.g. ``"51"``), ``user_id`` the user id as a string.
* A tag id listed twice: the first row is kept, a later one is ``duplicate_row``
  (same lower-cased value) or ``duplicate_tag_conflict`` (another value).
* ``name`` = ``artist`` = the artist name. ``tags``: the :data:`TOP_TAGS` tags
  applied to the artist by the most users (ties by tag name), lower-cased,
  joined with ``", "``; tag assignments naming an unknown tag or artist are
  counted (``join.tag_assignments_unknown_*``) and not used.
* No timestamps on plays.
* Control characters: replaced by U+FFFD (and counted) in artist names and tag
  values (free text); in an id, a weight or a date field they quarantine the row
  (``control_character``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from musicrec.ingest.values import Checks, check_date, empty_to_null, numeric_ids, parse_playcount
from musicrec.ingest.contract import (
    Catalog, Context, FileReport, PlaysBatch, find_file, make_items, plays_table, read_table, stream_plays,
)
from musicrec.ingest.inputs import InputFile
from musicrec.ingest.keys import dedup_text
from musicrec.ingest.quarantine import dedupe_items
from musicrec.ingest.spec import TableSpec

ZIP_NAME = "hetrec2011-lastfm-2k.zip"
TOP_TAGS = 10

USER_ARTISTS_SPEC = TableSpec(columns=("userid", "artistid", "weight"), sep="\t", header="required",
                              description="HetRec user-artist plays")
ARTISTS_SPEC = TableSpec(columns=("id", "name"), sep="\t", header="required", extra_columns=True,
                         text_columns=("name",), description="HetRec artists")
TAGS_SPEC = TableSpec(columns=("tagid", "tagvalue"), sep="\t", header="required", encoding="latin-1",
                      text_columns=("tagvalue",), description="HetRec tags")
TAGGED_SPEC = TableSpec(columns=("userid", "artistid", "tagid", "day", "month", "year"), sep="\t", header="required",
                        extra_columns=True, description="HetRec tag assignments")


@dataclass(frozen=True)
class Inputs:
    zip_path: Path

    def member(self, name: str) -> InputFile:
        return InputFile(self.zip_path, name)


def locate(input_dir: Path) -> Inputs:
    path = find_file(input_dir, (ZIP_NAME,), "the HetRec 2011 Last.fm 2K archive")
    assert path is not None
    return Inputs(path)


def _build_artists(f: pa.Table, checks: Checks) -> pa.Table:
    ids = numeric_ids(f["id"], checks, "item_id")
    name = empty_to_null(f["name"])
    return make_items(f.num_rows, item_id=ids, name=name, artist=name)


def _build_tags(f: pa.Table, checks: Checks) -> pa.Table:
    ids = numeric_ids(f["tagid"], checks, None, "missing_tag_id")
    return pa.table({"tagid": ids, "tag": pc.utf8_lower(f["tagvalue"])})


def _build_tagged(f: pa.Table, checks: Checks) -> pa.Table:
    ids = {c: numeric_ids(f[c], checks, None, "malformed_id") for c in ("userid", "artistid", "tagid")}
    check_date(f["day"], f["month"], f["year"], checks)
    return pa.table(ids)


def _top_tags(tagged: pd.DataFrame, tags: pd.DataFrame) -> pd.Series:
    t = tagged.merge(tags, on="tagid", how="inner")
    t = t[t["tag"] != ""]
    counts = t.groupby(["artistid", "tag"], sort=False)["userid"].nunique().rename("n").reset_index()
    counts = counts.sort_values(["artistid", "n", "tag"], ascending=[True, False, True], kind="mergesort")
    top = counts.groupby("artistid", sort=True).head(TOP_TAGS)
    return top.groupby("artistid", sort=True)["tag"].agg(", ".join)


def load_catalog(inputs: Inputs, ctx: Context) -> Catalog:
    for m in ("user_artists.dat", "artists.dat", "tags.dat", "user_taggedartists.dat"):
        inputs.member(m).open(ctx.policy).close()  # fail early, naming the missing member (after the path check)
    files: dict[str, FileReport] = {}
    quarantine: list[pa.Table] = []

    def read(member: str, spec: TableSpec, build, role: str) -> tuple[pa.Table, object, object]:
        inp = inputs.member(member)
        rep = files[inp.name] = FileReport(role=role)
        table, q, lines, raws = read_table(inp, spec, ctx, rep, build)
        quarantine.extend(q)
        if table is None:
            table = build(pa.table({c: pa.array([], pa.string()) for c in (*spec.columns, "_line", "_raw")}), Checks(0))
        return table, lines, raws

    artists, lines, raws = read("artists.dat", ARTISTS_SPEC, _build_artists, "items")
    tags, tag_lines, tag_raws = read("tags.dat", TAGS_SPEC, _build_tags, "tags")
    tagged, _, _ = read("user_taggedartists.dat", TAGGED_SPEC, _build_tagged, "tag_assignments")

    art_name = inputs.member("artists.dat").name
    items, dups = dedupe_items(artists, lines, raws, art_name)
    files[art_name].quarantined += dups.num_rows
    files[art_name].reasons.update(dups["reason"].to_pylist())
    files[art_name].kept = items.num_rows
    quarantine.append(dups)

    tag_name = inputs.member("tags.dat").name
    tags, tag_dups = dedupe_items(tags, tag_lines, tag_raws, tag_name, key="tagid", conflict="duplicate_tag_conflict")
    files[tag_name].quarantined += tag_dups.num_rows
    files[tag_name].reasons.update(tag_dups["reason"].to_pylist())
    files[tag_name].kept = tags.num_rows
    quarantine.append(tag_dups)
    tags_df = tags.to_pandas()
    tagged_df = tagged.to_pandas()
    files[inputs.member("user_taggedartists.dat").name].kept = tagged.num_rows
    known_artists = set(items["item_id"].to_pylist())
    stats = {
        "tag_assignments_unknown_tag": int((~tagged_df["tagid"].isin(tags_df["tagid"])).sum()),
        "tag_assignments_unknown_artist": int((~tagged_df["artistid"].isin(known_artists)).sum()),
    }
    top = _top_tags(tagged_df, tags_df)
    top_map = top.to_dict()
    tag_col = pa.array([top_map.get(i) for i in items["item_id"].to_pylist()], pa.string())
    items = items.set_column(items.schema.get_field_index("tags"), "tags", tag_col)
    stats["items_with_tags"] = int(pc.sum(pc.is_valid(tag_col)).as_py() or 0)
    return Catalog(items=items, files=files, quarantine=quarantine, stats=stats,
                   join=(f"{inputs.member('user_artists.dat').name}: artistID", f"{art_name}: id"))


def _build_plays(f: pa.Table, checks: Checks, max_playcount: int) -> pa.Table:
    users = numeric_ids(f["userid"], checks, "user_id")
    artists = numeric_ids(f["artistid"], checks, "item_id")
    counts = parse_playcount(f["weight"], checks, max_playcount)
    return plays_table(users, artists, counts, None, f["_line"],
                       dedup_text(users, artists, pc.cast(counts, pa.string())))


def iter_plays(inputs: Inputs, ctx: Context) -> Iterator[PlaysBatch]:
    yield from stream_plays(inputs.member("user_artists.dat"), USER_ARTISTS_SPEC, ctx,
                            lambda f, c: _build_plays(f, c, ctx.max_playcount))
