"""Audioscrobbler 2005 (the Last.fm predecessor dump of "Advanced Analytics with Spark"): artist-level plays.

Files, as extracted from ``profiledata_06-May-2005.tar.gz`` (each may also be
``.gz``/``.bz2``/``.xz``/``.zip`` compressed; looked for in the folder and one level of
sub-folders), or, when ``user_artist_data.txt`` is not there, read in place from that
archive (:data:`TAR_NAMES`, streamed member by member, never extracted; the three files
must then be in it):

* ``user_artist_data.txt``: ``user artist playcount``, space-separated, numeric ids, no
  header (~24M lines, 400 MB; streamed in chunks);
* ``artist_data.txt``: ``id<TAB>name``, no header -> items;
* ``artist_alias.txt`` (optional): ``badid<TAB>goodid``, no header: a misspelt or duplicate
  artist id and the id it stands for.

Normalisation:

* User and artist ids must be decimal integers (leading zeros stripped, at most 18 digits):
  ``item_id`` is the artist id as a string, ``user_id`` the user id. ``name`` = ``artist`` =
  the artist name (whitespace stripped; an empty name is null). No timestamps.
* ``artist_data.txt`` quirks of the real dump: a line without a tab (or with a second
  tab) is ``wrong_field_count``; an empty or non-numeric id ``missing_item_id`` /
  ``malformed_item_id``; an id listed twice keeps its first row (a later one is
  ``duplicate_row`` or ``duplicate_item_conflict``).
* Aliases: an empty bad or good id is ``missing_item_id`` (the real file has lines with an
  empty bad id), a non-numeric one ``malformed_item_id``; a bad id listed twice keeps its
  first row (``duplicate_row``, or ``duplicate_alias_conflict`` for another good id).
  Aliases are resolved **transitively**: a good id that is itself a bad id is followed to
  the end of the chain (the book resolves once; the count of such aliases is reported as
  ``aliases_chained``). An alias whose chain never ends (it comes back to an id on it,
  ``a -> a`` included) is quarantined as ``alias_cycle``, and its id is left as it is.
* Alias merge: a play of an aliased artist is **kept** with the resolved artist id (it is
  counted in ``kept``, not as a separate outcome, so ``rows_read = kept + quarantined +
  unmatched_dropped`` holds unchanged); the transform stage sums the play counts of a
  (user, artist) pair, so an aliased row and a row of its good id become one pair with the
  sum of both counts. The plays file's report says, under ``aliases``: ``rows_resolved``
  (valid rows whose artist id was an alias), ``artists_resolved`` (distinct aliased ids met
  in the plays), ``rows_merged`` (rows whose resolved (user, artist) pair another row with a
  different raw artist id already has: the rows the transform sums into an earlier pair) and
  ``pairs_merged`` (the resolved pairs with more than one raw artist id). The counts are
  taken on the valid rows, before the clean's exact-duplicate check (an exact copy of a row
  is quarantined as ``duplicate_row`` and changes none of them but ``rows_resolved``).
* Control characters: replaced by U+FFFD (and counted) in artist names (free text); in an
  id or a play count they quarantine the row (``control_character``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from musicrec.ingest.contract import (
    Catalog, Context, FileReport, PlaysBatch, find_file, make_items, plays_table, read_table, stream_plays,
)
from musicrec.ingest.inputs import InputFile
from musicrec.ingest.keys import dedup_text
from musicrec.ingest.quarantine import dedupe_items, quarantine_table
from musicrec.ingest.spec import TableSpec, play_count_aliases
from musicrec.ingest.values import Checks, empty_to_null, numeric_ids, parse_playcount

PLAYS_NAME = "user_artist_data.txt"
ARTISTS_NAME = "artist_data.txt"
ALIAS_NAME = "artist_alias.txt"
TAR_NAMES = ("profiledata_06-May-2005.tar.gz", "profiledata_06-May-2005.tar")  # as published (Audioscrobbler, AWS)

PLAYS_SPEC = TableSpec(
    columns=("userid", "artistid", "playcount"), sep=" ", header="none",
    aliases={"userid": ("user", "user_id"), "artistid": ("artist", "artist_id"),
             "playcount": play_count_aliases("playcount")},
    description="Audioscrobbler user-artist play counts",
)
ARTISTS_SPEC = TableSpec(columns=("id", "name"), sep="\t", header="none", aliases={"id": ("artistid", "artist_id")},
                         text_columns=("name",), description="Audioscrobbler artists")
ALIAS_SPEC = TableSpec(columns=("badid", "goodid"), sep="\t", header="none", description="Audioscrobbler artist aliases")


@dataclass
class Aliases:
    """The aliases in use: bad artist ids and, aligned, the ids their chains end at (string arrays)."""

    bad: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))
    good: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))


@dataclass
class Inputs:
    plays: InputFile
    artists: InputFile
    alias: InputFile | None
    aliases: Aliases | None = None  # set by load_catalog (read from the alias file otherwise)


def locate(input_dir: Path) -> Inputs:
    if find_file(input_dir, (PLAYS_NAME,), "plays", required=False) is None:
        tar = find_file(input_dir, TAR_NAMES, "the Audioscrobbler archive", required=False)
        if tar is not None:
            return Inputs(InputFile(tar, PLAYS_NAME), InputFile(tar, ARTISTS_NAME), InputFile(tar, ALIAS_NAME))
    plays = find_file(input_dir, (PLAYS_NAME,), "the Audioscrobbler user-artist play counts, or the archive "
                      f"{TAR_NAMES[0]}")
    artists = find_file(input_dir, (ARTISTS_NAME,), "the Audioscrobbler artist names")
    alias = find_file(input_dir, (ALIAS_NAME,), "the Audioscrobbler artist aliases", required=False)
    assert plays is not None and artists is not None
    return Inputs(InputFile(plays), InputFile(artists), InputFile(alias) if alias is not None else None)


def _build_artists(f: pa.Table, checks: Checks) -> pa.Table:
    ids = numeric_ids(f["id"], checks, "item_id")
    name = empty_to_null(f["name"])
    return make_items(f.num_rows, item_id=ids, name=name, artist=name)


def _build_alias(f: pa.Table, checks: Checks) -> pa.Table:
    bad = numeric_ids(f["badid"], checks, "item_id")
    good = numeric_ids(f["goodid"], checks, "item_id")
    return pa.table({"badid": bad, "goodid": good})


def resolve_chains(bad: list[str], good: list[str]) -> tuple[dict[str, str], set[str]]:
    """Resolve aliases transitively: ``(bad id -> the id at the end of its chain, the bad ids whose chain
    never ends)``. ``bad`` has no repeats."""
    direct = dict(zip(bad, good))
    out: dict[str, str] = {}
    cyclic: set[str] = set()
    for start in direct:
        path: list[str] = []
        on_path: set[str] = set()
        cur = start
        while cur in direct and cur not in out and cur not in cyclic and cur not in on_path:
            path.append(cur)
            on_path.add(cur)
            cur = direct[cur]
        if cur in on_path or cur in cyclic:  # a cycle, or a chain into one
            cyclic.update(path)
        else:
            end = out.get(cur, cur)
            out.update((p, end) for p in path)
    return out, cyclic


def _read_aliases(inp: InputFile, ctx: Context, rep: FileReport) -> tuple[Aliases, list[pa.Table]]:
    """Read, check, dedupe and resolve the alias file; updates ``rep`` (rows read, kept, quarantined)."""
    table, quarantine, lines, raws = read_table(inp, ALIAS_SPEC, ctx, rep, _build_alias)
    if table is None:
        return Aliases(), quarantine
    kept, dups = dedupe_items(table, lines, raws, inp.name, key="badid", conflict="duplicate_alias_conflict")
    keep = ~np.isin(lines, dups["line"].to_numpy())
    lines, raws = lines[keep], raws.filter(pa.array(keep))
    bad, good = kept["badid"].to_pylist(), kept["goodid"].to_pylist()
    resolved, cyclic = resolve_chains(bad, good)
    cyc = np.fromiter((b in cyclic for b in bad), dtype=bool, count=len(bad))
    cycles = quarantine_table(inp.name, lines[cyc], ["alias_cycle"] * int(cyc.sum()), raws.filter(pa.array(cyc)))
    for q in (dups, cycles):
        rep.quarantined += q.num_rows
        rep.reasons.update(q["reason"].to_pylist())
    rep.kept = len(bad) - int(cyc.sum())
    used = [b for b in bad if b in resolved]
    rep.notes["aliases_chained"] = sum(resolved[b] != g for b, g in zip(bad, good) if b in resolved)
    aliases = Aliases(pa.array(used, pa.string()), pa.array([resolved[b] for b in used], pa.string()))
    return aliases, [*quarantine, dups, cycles]


def load_catalog(inputs: Inputs, ctx: Context) -> Catalog:
    files: dict[str, FileReport] = {}
    quarantine: list[pa.Table] = []
    rep = files[inputs.artists.name] = FileReport(role="items")
    artists, q, lines, raws = read_table(inputs.artists, ARTISTS_SPEC, ctx, rep, _build_artists)
    quarantine.extend(q)
    if artists is None:
        artists = make_items(0)
    items, dups = dedupe_items(artists, lines, raws, inputs.artists.name)
    rep.quarantined += dups.num_rows
    rep.reasons.update(dups["reason"].to_pylist())
    rep.kept = items.num_rows
    quarantine.append(dups)
    inputs.aliases = Aliases()
    if inputs.alias is not None:
        alias_rep = files[inputs.alias.name] = FileReport(role="aliases")
        inputs.aliases, q = _read_aliases(inputs.alias, ctx, alias_rep)
        quarantine.extend(q)
    return Catalog(items=items, files=files, quarantine=quarantine,
                   join=(f"{inputs.plays.name}: artist (after aliases)", f"{inputs.artists.name}: id"),
                   stats={"alias_file_present": inputs.alias is not None})


def _build_plays(f: pa.Table, checks: Checks, max_playcount: int, aliases: Aliases) -> pa.Table:
    users = numeric_ids(f["userid"], checks, "user_id")
    artists = numeric_ids(f["artistid"], checks, "item_id")
    counts = parse_playcount(f["playcount"], checks, max_playcount)
    resolved = pc.coalesce(pc.take(aliases.good, pc.index_in(artists, value_set=aliases.bad)), artists)
    return plays_table(users, resolved, counts, None, f["_line"],
                       dedup_text(users, artists, pc.cast(counts, pa.string())), _raw_item=artists)


def _pair_hashes(a: pa.Array | pa.ChunkedArray, b: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hashes of the pairs (a[i], b[i]) of two string columns (the length-prefixed join is injective)."""
    key = dedup_text(a, b)
    values = np.asarray(key.to_numpy(zero_copy_only=False), dtype=object)
    return pd.util.hash_array(values, categorize=False).astype(np.uint64, copy=False)


class _MergeCounter:
    """Counts the alias merges of one plays file (see the module docstring), chunk by chunk.

    Only rows whose resolved artist is an alias target can merge; for those it keeps the distinct
    hashes of their (user, raw artist) pairs (sorted) and, aligned, of their (user, resolved artist)
    pairs: a resolved pair reached from k distinct raw pairs merges k - 1 rows into one.
    """

    def __init__(self, aliases: Aliases) -> None:
        self.targets = pc.unique(aliases.good)
        self.rows_resolved = 0
        self.artists: set[str] = set()
        self.raw_pairs = np.empty(0, np.uint64)
        self.pairs = np.empty(0, np.uint64)

    def add(self, plays: pa.Table) -> None:
        aliased = pc.not_equal(plays["item_id"], plays["_raw_item"])
        n = int(pc.sum(aliased).as_py() or 0)
        if n:
            self.rows_resolved += n
            self.artists.update(pc.unique(pc.filter(plays["_raw_item"], aliased)).to_pylist())
        cand = plays.filter(pc.is_in(plays["item_id"], value_set=self.targets))
        if cand.num_rows:
            raw = np.concatenate([self.raw_pairs, _pair_hashes(cand["user_id"], cand["_raw_item"])])
            pairs = np.concatenate([self.pairs, _pair_hashes(cand["user_id"], cand["item_id"])])
            self.raw_pairs, first = np.unique(raw, return_index=True)
            self.pairs = pairs[first]

    def notes(self) -> dict[str, Any]:
        _, per_pair = np.unique(self.pairs, return_counts=True)
        return {"aliases": {"rows_resolved": self.rows_resolved, "artists_resolved": len(self.artists),
                            "rows_merged": int((per_pair - 1).sum()), "pairs_merged": int((per_pair > 1).sum())}}


def iter_plays(inputs: Inputs, ctx: Context) -> Iterator[PlaysBatch]:
    if inputs.aliases is None:  # library use without load_catalog
        inputs.aliases = _read_aliases(inputs.alias, ctx, FileReport(role="aliases"))[0] if inputs.alias else Aliases()
    aliases = inputs.aliases
    merges = _MergeCounter(aliases)
    for batch in stream_plays(inputs.plays, PLAYS_SPEC, ctx, lambda f, c: _build_plays(f, c, ctx.max_playcount, aliases)):
        if batch.plays is None:
            batch.notes = merges.notes()
        else:
            merges.add(batch.plays)
        yield batch
