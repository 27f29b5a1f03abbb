"""What every source adapter shares: the adapter contract, validation helpers, quarantine reasons.

Every adapter module (listed in :data:`musicrec.ingest.SOURCES`) exposes three functions used by :func:`musicrec.pipeline.clean.clean`:

* ``locate(input_dir) -> Inputs``: find the published files (raises
  :class:`~musicrec.ingest.reader.InputFormatError` naming what is missing);
* ``load_catalog(inputs, ctx) -> Catalog``: item metadata (and, for the Taste
  Profile, the raw-id -> item-id mapping), or ``Catalog(items=None)`` when items
  are derived from the plays themselves (Last.fm 1K / 360K);
* ``iter_plays(inputs, ctx) -> Iterator[PlaysBatch]``: validated plays, chunk by chunk.

This module also holds the shared vectorised validation helpers and the
vocabulary of quarantine reasons (:data:`REASONS`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from musicrec.ingest.reader import (
    COMPRESSED_SUFFIXES, DEFAULT_POLICY, InputFile, InputFormatError, InputPolicy, ReaderStats, TableSpec, iter_records,
)
from musicrec.schema import AUDIO_FEATURES, ITEM_COLUMNS

REASONS: dict[str, str] = {
    # reader level
    "empty_line": "blank line",
    "wrong_field_count": "record does not have the expected number of fields",
    "truncated_last_line": "final line without newline that does not parse (file cut short)",
    "unterminated_quote": "a quoted CSV field is never closed",
    "malformed_quoting": "quotes that do not follow CSV rules",
    "unexpected_header": "a header line in a file that has none",
    "control_character": "an identifier or numeric field holds a control character (U+0001-U+0008, "
                         "U+000E-U+001F, U+007F anywhere; U+000B, U+000C or a lone CR inside the value). In a "
                         "free-text field (TableSpec.text_columns: titles, names, tags) each one is replaced by "
                         "U+FFFD and the row kept, counted in the file's reader stats "
                         "(control_characters_replaced); a NUL byte anywhere refuses a text file",
    "line_too_long": "a physical line longer than data.max_line_bytes (raw holds its first 1,024 bytes)",
    # plays
    "missing_user_id": "empty user id",
    "malformed_user_id": "user id not in the source's id format",
    "missing_item_id": "empty item id (and no name to build a key from)",
    "malformed_item_id": "item id not in the source's id format",
    "missing_playcount": "empty play count",
    "playcount_not_integer": "play count is not an integer (text, decimal, NaN)",
    "playcount_out_of_range": "play count < 1 or above the cap (clean.max_playcount; clean.max_artist_playcount "
                              "for artist-level sources)",
    "missing_timestamp": "empty timestamp in an event source",
    "invalid_timestamp": "timestamp not a real date and time in ISO-8601 UTC form YYYY-MM-DDTHH:MM:SSZ "
                         "(30 Feb, a leap second 23:59:60 and 24:00 are refused, never normalised)",
    "timestamp_out_of_range": "timestamp or date before 1970-01-01 or from 2100-01-01 on (UTC); see TIME_RANGE",
    "duplicate_row": "exact duplicate of an earlier row of the same file",
    # items / metadata
    "duplicate_item_conflict": "item id seen before with different metadata (first kept)",
    "invalid_numeric_field": "a numeric metadata field is not a finite decimal number that fits its column type "
                             "(text, inf, an overflow such as 1e999, a year or duration beyond int64)",
    "missing_tag_id": "empty or non-numeric tag id",
    "duplicate_tag_conflict": "tag id seen before with a different tag value (first kept)",
    "malformed_id": "an auxiliary id (HetRec user/artist/tag) is not numeric",
    "invalid_date": "day / month / year fields that are not integers forming a real calendar date",
}

ITEM_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("name", pa.string()),
        ("artist", pa.string()),
        ("tags", pa.string()),
        ("genre", pa.string()),
        ("year", pa.int64()),
        ("duration_ms", pa.int64()),
        *[(f, pa.float64()) for f in AUDIO_FEATURES],
    ]
)
assert tuple(ITEM_SCHEMA.names) == ITEM_COLUMNS

PLAYS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("playcount", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
    ]
)

# Id formats (after whitespace stripping).
TOKEN_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"  # Kaggle/synthetic ids: no spaces, quotes, separators
MSD_TRACK_ID = r"^TR[A-Z0-9]{16}$"
MSD_SONG_ID = r"^SO[A-Z0-9]{16}$"
SHA1_ID = r"^[0-9a-fA-F]{40}$"
MBID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
NUMERIC_ID = r"^[0-9]{1,18}$"  # checked after leading zeros are stripped (see numeric_ids)
_INT = r"^-?[0-9]+(\.0*)?$"
_FLOAT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_LEADING_ZEROS = (r"^(-?)0*([0-9])", r"\1\2")  # "007" -> "7", "-0003" -> "-3", "000" -> "0"
_INT64_BOUND = 2.0 ** 63  # int64 holds [-2**63, 2**63)

#: Valid timestamps and dates: [start, end) in UTC. Fixed (never the current date), so that the
#: data stages stay deterministic; pre-1970 values are refused (the temporal split needs epoch >= 0).
TIME_RANGE = (datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(2100, 1, 1, tzinfo=timezone.utc))
ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Context:
    chunk_rows: int
    max_playcount: int
    policy: InputPolicy = DEFAULT_POLICY  # where inputs may be, and the reader limits


@dataclass
class FileReport:
    """Accounting for one input file: ``rows_read == kept + quarantined + unmatched_dropped``."""

    role: str
    rows_read: int = 0
    kept: int = 0
    quarantined: int = 0
    unmatched_dropped: int = 0
    reasons: Counter = field(default_factory=Counter)
    reader: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "rows_read": self.rows_read,
            "kept": self.kept,
            "quarantined": self.quarantined,
            "unmatched_dropped": self.unmatched_dropped,
            "reasons": dict(sorted(self.reasons.items())),
            **({"reader": self.reader} if self.reader else {}),
            **self.notes,
        }


@dataclass
class Catalog:
    """Item metadata of a source.

    ``items``: table with :data:`ITEM_SCHEMA`, unique ``item_id`` (None: items are
    derived from the plays). ``id_map``: raw play item id -> catalog item id
    (Taste Profile SO -> TR); None means play item ids are catalog ids.
    ``quarantine``: rejected metadata rows (``file``, ``line``, ``reason``, ``raw``).
    ``join``: what the plays-to-metadata join compares, ``(plays "file: column",
    metadata "file: column")``, named in the warning when no play matches.
    """

    items: pa.Table | None
    id_map: tuple[pa.Array, pa.Array] | None = None
    files: dict[str, FileReport] = field(default_factory=dict)
    quarantine: list[pa.Table] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    join: tuple[str, str] | None = None


@dataclass
class PlaysBatch:
    """One chunk of one plays file.

    ``plays``: ``user_id``, ``item_id`` (raw, before any mapping), ``playcount``,
    ``timestamp``, ``_line``, ``_dedup`` (normalised row text used to find exact
    duplicates) and, for sources whose items come from the plays, ``_name`` and
    ``_artist``. ``rejects``: ``line``, ``reason``, ``raw``.
    """

    file: str
    rows_read: int
    plays: pa.Table
    rejects: pa.Table
    reader: dict[str, Any] | None = None  # reader stats, set on the file's last batch


class Checks:
    """Ordered, vectorised row validation: the first failing check gives the row's reason."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.code = np.full(n, -1, dtype=np.int32)
        self.reasons: list[str] = []

    def fail(self, mask: pa.Array | pa.ChunkedArray | np.ndarray, reason: str) -> None:
        if isinstance(mask, (pa.Array, pa.ChunkedArray)):
            mask = np.asarray(pc.fill_null(mask, True).to_numpy(zero_copy_only=False), dtype=bool)
        if reason not in self.reasons:
            self.reasons.append(reason)
        code = self.reasons.index(reason)
        self.code[(self.code < 0) & mask] = code

    def check_id(self, col: pa.Array | pa.ChunkedArray, what: str, pattern: str | None) -> None:
        self.fail(pc.equal(col, ""), f"missing_{what}")
        if pattern is not None:
            self.fail(pc.invert(pc.match_substring_regex(col, pattern)), f"malformed_{what}")

    @property
    def ok(self) -> np.ndarray:
        return self.code < 0

    def rejects(self, lines: pa.Array | pa.ChunkedArray, raw: pa.Array | pa.ChunkedArray,
                last_line: int | None = None) -> pa.Table:
        bad = ~self.ok
        names = np.asarray(self.reasons + ["?"], dtype=object)
        reasons = names[self.code[bad]]
        line = np.asarray(lines.to_numpy() if isinstance(lines, pa.Array) else lines.to_numpy(), dtype=np.int64)[bad]
        if last_line is not None:
            reasons = np.where(line == last_line, "truncated_last_line", reasons).astype(object)
        return pa.table({
            "line": pa.array(line, pa.int64()),
            "reason": pa.array(reasons.tolist(), pa.string()),
            "raw": pc.filter(raw, pa.array(bad)),
        })


def parse_playcount(col: pa.Array | pa.ChunkedArray, checks: Checks, max_playcount: int) -> pa.Array:
    """Validate a play-count column into ``checks``; return int64 values (0 where invalid).

    Accepted: decimal integers, optionally written with a ``.0`` fraction
    (``"3.0"`` -> 3) and with any number of leading zeros (stripped before the
    18-digit limit is applied). Rejected: empty, non-integers, NaN, < 1, > max_playcount.
    """
    checks.fail(pc.equal(col, ""), "missing_playcount")
    is_int = pc.match_substring_regex(col, _INT)
    checks.fail(pc.invert(is_int), "playcount_not_integer")
    digits = pc.replace_substring_regex(pc.if_else(is_int, col, "0"), r"\.0*$", "")
    digits = pc.replace_substring_regex(digits, *_LEADING_ZEROS)
    too_long = pc.greater(pc.utf8_length(pc.replace_substring_regex(digits, "^-", "")), 18)
    checks.fail(too_long, "playcount_out_of_range")
    values = pc.cast(pc.if_else(too_long, "0", digits), pa.int64())
    checks.fail(pc.or_(pc.less(values, 1), pc.greater(values, max_playcount)), "playcount_out_of_range")
    return values


def numeric_ids(col: pa.Array | pa.ChunkedArray, checks: Checks, what: str | None,
                reason: str | None = None) -> pa.Array:
    """Decimal-integer ids (HetRec): leading zeros stripped (``"051"`` -> ``"51"``, one id), then at most
    18 digits. ``what``: record ``missing_<what>`` / ``malformed_<what>``; else ``reason`` for any bad id."""
    canon = pc.replace_substring_regex(col, *_LEADING_ZEROS)
    if what is not None:
        checks.check_id(canon, what, NUMERIC_ID)
    else:
        checks.fail(pc.invert(pc.match_substring_regex(canon, NUMERIC_ID)), reason or "malformed_id")
    return canon


def _in_time_range(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
    lo, hi = (pa.scalar(t.replace(tzinfo=None), pa.timestamp("s")) for t in TIME_RANGE)
    return pc.and_(pc.greater_equal(ts, lo), pc.less(ts, hi))


def parse_iso_utc(col: pa.Array | pa.ChunkedArray, checks: Checks) -> pa.Array:
    """Parse ``YYYY-MM-DDTHH:MM:SSZ`` (Last.fm 1K) into timestamp[us, UTC].

    Only real dates and times: the parsed value must print back as the same text,
    so 30 Feb, 31 Apr, 23:59:60, 24:00 and unpadded fields are ``invalid_timestamp``
    (never normalised to another day); values outside :data:`TIME_RANGE` are
    ``timestamp_out_of_range``.
    """
    checks.fail(pc.equal(col, ""), "missing_timestamp")
    ts = pc.strptime(col, format=ISO_UTC, unit="s", error_is_null=True)
    real = pc.equal(pc.strftime(ts, format=ISO_UTC), col)
    in_range = _in_time_range(ts)
    checks.fail(pc.invert(real), "invalid_timestamp")
    checks.fail(pc.invert(in_range), "timestamp_out_of_range")
    ts = pc.if_else(pc.and_(real, in_range), ts, pa.scalar(None, ts.type))  # null where refused
    return pc.cast(pc.cast(ts, pa.timestamp("us")), pa.timestamp("us", tz="UTC"))


def check_date(day: pa.Array | pa.ChunkedArray, month: pa.Array | pa.ChunkedArray,
               year: pa.Array | pa.ChunkedArray, checks: Checks) -> None:
    """Validate separate day / month / year fields (HetRec tag assignments): integers (leading zeros
    allowed) forming a real calendar date (``invalid_date``) within :data:`TIME_RANGE`
    (``timestamp_out_of_range``)."""
    parts = [pc.replace_substring_regex(c, *_LEADING_ZEROS) for c in (year, month, day)]
    ok = pc.and_(pc.and_(pc.match_substring_regex(parts[0], r"^[0-9]{4}$"),
                         pc.match_substring_regex(parts[1], r"^[0-9]{1,2}$")),
                 pc.match_substring_regex(parts[2], r"^[0-9]{1,2}$"))
    text = pc.binary_join_element_wise(parts[0], pc.utf8_lpad(parts[1], 2, "0"), pc.utf8_lpad(parts[2], 2, "0"), "-")
    text = pc.if_else(ok, text, "")
    ts = pc.strptime(text, format="%Y-%m-%d", unit="s", error_is_null=True)
    checks.fail(pc.invert(pc.equal(pc.strftime(ts, format="%Y-%m-%d"), text)), "invalid_date")
    checks.fail(pc.invert(_in_time_range(ts)), "timestamp_out_of_range")


def parse_numbers(col: pa.Array | pa.ChunkedArray, checks: Checks, kind: str = "float", scale: float = 1.0) -> pa.Array:
    """Parse an optional numeric metadata column into float64 (``kind="float"``) or int64 (``"int"``).

    Empty, ``nan``/``null``/``none``/``na`` -> null. ``invalid_numeric_field`` for any other
    value that is not a decimal number, or whose value (times ``scale``, then rounded half to
    even for ``"int"``) is not finite or does not fit int64: ``inf`` written out and an overflow
    such as ``1e999`` are both refused, never kept as infinity.
    """
    lowered = pc.utf8_lower(col)
    empty = pc.or_(pc.equal(col, ""), pc.is_in(lowered, pa.array(["nan", "null", "none", "na"])))
    good = pc.match_substring_regex(col, _FLOAT)
    values = pc.cast(pc.if_else(good, col, pa.scalar(None, pa.string())), pa.float64())
    if scale != 1.0:
        values = pc.multiply(values, scale)
    if kind == "int":
        values = pc.round(values)
        fits = pc.and_(pc.greater_equal(values, -_INT64_BOUND), pc.less(values, _INT64_BOUND))
    else:
        fits = pc.is_finite(values)
    fits = pc.fill_null(fits, False)
    checks.fail(pc.and_(pc.invert(empty), pc.invert(fits)), "invalid_numeric_field")
    values = pc.if_else(fits, values, pa.scalar(None, pa.float64()))
    return pc.cast(values, pa.int64()) if kind == "int" else values


def normalise_tags(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Tags: lower-case, split on commas, strip each tag, drop empties, join with ``", "``; empty -> null."""
    parts = pc.split_pattern(pc.utf8_lower(col), ",")
    out = []
    for tags in parts.to_pylist():
        kept = [t.strip() for t in (tags or []) if t.strip()]
        out.append(", ".join(kept) if kept else None)
    return pa.array(out, pa.string())


def empty_to_null(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    return pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)


def make_items(n: int, **cols: Any) -> pa.Table:
    """Build an items table with :data:`ITEM_SCHEMA`; absent columns are null."""
    arrays = []
    for f in ITEM_SCHEMA:
        v = cols.get(f.name)
        if v is None:
            arrays.append(pa.nulls(n, f.type))
        else:
            arr = v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v
            arrays.append(pc.cast(arr, f.type))
    return pa.Table.from_arrays(arrays, schema=ITEM_SCHEMA)


def dedupe_items(items: pa.Table, lines: np.ndarray, raws: list[str] | pa.Array, file: str,
                 key: str = "item_id", conflict: str = "duplicate_item_conflict") -> tuple[pa.Table, pa.Table]:
    """Keep the first row per ``key``; later rows are ``duplicate_row`` (same values in every
    column) or ``conflict`` (different values). Returns (kept, quarantine)."""
    df = items.to_pandas(types_mapper=None)
    dup_id = df.duplicated(key, keep="first").to_numpy()
    if not dup_id.any():
        return items, quarantine_table(file, np.empty(0, np.int64), [], [])
    dup_full = df.duplicated(keep="first").to_numpy()
    reasons = np.where(dup_full, "duplicate_row", conflict)[dup_id]
    raw_arr = raws if isinstance(raws, pa.Array) else pa.array(raws, pa.string())
    q = quarantine_table(file, np.asarray(lines)[dup_id], reasons.tolist(), pc.filter(raw_arr, pa.array(dup_id)))
    return items.filter(pa.array(~dup_id)), q


QUARANTINE_SCHEMA = pa.schema([("file", pa.string()), ("line", pa.int64()), ("reason", pa.string()), ("raw", pa.string())])


def quarantine_table(file: str, lines: Any, reasons: Any, raws: Any) -> pa.Table:
    n = len(lines)
    return pa.table({
        "file": pa.array([file] * n, pa.string()),
        "line": pa.array(np.asarray(lines, dtype=np.int64), pa.int64()),
        "reason": reasons if isinstance(reasons, (pa.Array, pa.ChunkedArray)) else pa.array(list(reasons), pa.string()),
        "raw": raws if isinstance(raws, (pa.Array, pa.ChunkedArray)) else pa.array(list(raws), pa.string()),
    }, schema=QUARANTINE_SCHEMA)


def with_file(rejects: pa.Table, file: str) -> pa.Table:
    return quarantine_table(file, rejects["line"].to_numpy(), rejects["reason"], rejects["raw"])


_WS = re.compile(r"\s+")


def name_key(artist: str | None, title: str | None = None) -> str:
    """Deterministic item id for a name-only item: ``name:`` + 16 hex digits of BLAKE2b of the
    normalised names (Unicode NFKC, case-folded, inner whitespace collapsed). The two names are
    joined with U+001F, which cannot occur in them: the reader replaces the C0 control characters
    of name fields (free text) by U+FFFD before any key is built."""
    def norm(s: str | None) -> str:
        return _WS.sub(" ", unicodedata.normalize("NFKC", s or "").casefold()).strip()
    payload = norm(artist) if title is None else norm(artist) + "\x1f" + norm(title)
    return "name:" + hashlib.blake2b(payload.encode("utf-8"), digest_size=8).hexdigest()


def name_keys(artists: list[str | None], titles: list[str | None] | None = None) -> list[str]:
    cache: dict[tuple[str | None, str | None], str] = {}
    out = []
    for i, a in enumerate(artists):
        t = None if titles is None else titles[i]
        k = (a, t)
        v = cache.get(k)
        if v is None:
            v = cache[k] = name_key(a, t)
        out.append(v)
    return out


# Names never looked for compressed: archives, and SQLite databases (they need random access).
_NOT_COMPRESSED = (".zip", ".db")


def find_file(input_dir: Path, names: tuple[str, ...], what: str, required: bool = True) -> Path | None:
    """Find the first of ``names`` in ``input_dir`` or one level of sub-folders (sorted).

    Each name is also looked for compressed, as ``<name>.gz``, ``.bz2``, ``.xz`` or
    ``.zip`` (read streaming by :class:`~musicrec.ingest.reader.InputFile`); two copies
    of one name (two folders, or plain and compressed) are refused as ambiguous.
    """
    if not input_dir.exists():
        raise InputFormatError(f"{input_dir}: input directory not found; expected {what}")
    if not input_dir.is_dir():
        raise InputFormatError(f"{input_dir}: expected a directory holding {what}, found a file")
    dirs = [input_dir, *sorted(p for p in input_dir.iterdir() if p.is_dir() and not p.name.startswith("."))]
    for name in names:
        variants = (name,) if name.lower().endswith(_NOT_COMPRESSED) else (name, *(name + s for s in COMPRESSED_SUFFIXES))
        hits = [d / v for d in dirs for v in variants if (d / v).is_file()]
        if len(hits) > 1:
            raise InputFormatError(
                f"{input_dir}: {name!r} found {len(hits)} times ({[str(h) for h in hits]}); expected one (plain "
                f"or compressed as {', '.join(COMPRESSED_SUFFIXES)}): remove or move the other copies"
            )
        if hits:
            return hits[0]
    if required:
        found = sorted(str(p.relative_to(input_dir)) for d in dirs for p in d.iterdir() if p.is_file())[:30]
        packed = [f for f in found for n in names if n.lower().endswith(_NOT_COMPRESSED)
                  and Path(f).name in {n + s for s in COMPRESSED_SUFFIXES}]
        hint = (f" ({', '.join(packed)}: archives and SQLite databases are not read compressed; decompress it "
                f"first)" if packed else "")
        raise InputFormatError(
            f"{input_dir}: {' or '.join(repr(n) for n in names)} ({what}) not found in the folder or its "
            f"sub-folders (also looked for {', '.join(COMPRESSED_SUFFIXES)} copies){hint}. Found: {found}"
        )
    return None


def check_quarantine_share(file: str, rep: FileReport, policy: InputPolicy) -> None:
    """Stop the clean when more than ``policy.max_quarantined_share`` of a file's rows were quarantined.

    Files with fewer than ``policy.quarantine_share_min_rows`` rows are not judged
    (a handful of rows says little). The message names the file, the share, the
    top reasons and the param to raise.
    """
    if rep.rows_read < policy.quarantine_share_min_rows or rep.quarantined <= policy.max_quarantined_share * rep.rows_read:
        return
    top = ", ".join(f"{r} {n}" for r, n in sorted(rep.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
    raise InputFormatError(
        f"{file}: {rep.quarantined} of {rep.rows_read} rows ({rep.quarantined / rep.rows_read:.1%}) were "
        f"quarantined, above data.max_quarantined_share = {policy.max_quarantined_share:g}; top reasons: {top}. "
        f"Expected mostly valid rows: check that this is the right file for the source (see the reasons), or "
        f"raise data.max_quarantined_share in params.yaml to clean it anyway"
    )


def dedup_text(*cols: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Row key for exact-duplicate detection: each normalised field prefixed with its length
    (``"3:TRA:2:u1:1:3"``), so that the key is injective whatever characters the fields hold
    (a separator inside a field cannot make two different rows one)."""
    parts: list[Any] = []
    for c in cols:
        parts += [pc.cast(pc.utf8_length(c), pa.string()), c]
    return pc.binary_join_element_wise(*parts, ":")


def plays_table(user: Any, item: Any, playcount: Any, timestamp: Any | None, line: Any, dedup: Any,
                **extra: Any) -> pa.Table:
    n = len(user)
    cols: dict[str, Any] = {
        "user_id": user,
        "item_id": item,
        "playcount": playcount,
        "timestamp": timestamp if timestamp is not None else pa.nulls(n, pa.timestamp("us", tz="UTC")),
        "_line": line,
        "_dedup": dedup,
    }
    cols.update(extra)
    return pa.table(cols)


def stream_plays(inp: "InputFile", spec: "TableSpec", ctx: Context,
                 build: Callable[[pa.Table, Checks], pa.Table]) -> Iterator[PlaysBatch]:
    """Read ``inp`` with ``spec`` and validate each chunk with ``build``.

    ``build(fields, checks)`` returns a plays table aligned with ``fields`` (one
    row per record) and records failures in ``checks``; rows that fail are
    quarantined. The last batch has ``plays=None`` and carries the reader stats.
    """
    stats = ReaderStats()
    for ch in iter_records(inp, spec, ctx.chunk_rows, stats, ctx.policy):
        f = ch.fields
        checks = Checks(f.num_rows)
        plays = build(f, checks).append_column("_raw", f["_raw"])
        rej = checks.rejects(f["_line"], f["_raw"], ch.last_line)
        rejects = pa.concat_tables([ch.rejects, rej]).sort_by("line") if rej.num_rows else ch.rejects
        yield PlaysBatch(inp.name, ch.rows_read, plays.filter(pa.array(checks.ok)), rejects)
    yield PlaysBatch(inp.name, 0, None, None, reader=stats.to_dict())  # type: ignore[arg-type]


def read_table(inp: "InputFile", spec: "TableSpec", ctx: Context, report: FileReport,
               build: Callable[[pa.Table, Checks], pa.Table]) -> tuple[pa.Table | None, list[pa.Table], np.ndarray, pa.Array]:
    """Read a whole (metadata-sized) file and validate it with ``build``.

    Returns (valid rows built, quarantine tables, their line numbers, their raw text);
    updates ``report`` with rows read / quarantined (``kept`` is left to the caller).
    """
    stats = ReaderStats()
    built: list[pa.Table] = []
    lines: list[np.ndarray] = []
    raws: list[pa.Array] = []
    quarantine: list[pa.Table] = []
    for ch in iter_records(inp, spec, ctx.chunk_rows, stats, ctx.policy):
        f = ch.fields
        checks = Checks(f.num_rows)
        t = build(f, checks)
        ok = pa.array(checks.ok)
        rej = pa.concat_tables([ch.rejects, checks.rejects(f["_line"], f["_raw"], ch.last_line)]).sort_by("line")
        report.rows_read += ch.rows_read
        report.quarantined += rej.num_rows
        report.reasons.update(rej["reason"].to_pylist())
        quarantine.append(with_file(rej, inp.name))
        built.append(t.filter(ok))
        lines.append(f["_line"].filter(ok).to_numpy())
        raws.append(f["_raw"].filter(ok).combine_chunks() if f.num_rows else pa.array([], pa.string()))
    report.reader = stats.to_dict()
    if not built:
        return None, quarantine, np.empty(0, np.int64), pa.array([], pa.string())
    table = pa.concat_tables(built)
    return table, quarantine, np.concatenate(lines), pa.concat_arrays([r for r in raws]) if raws else pa.array([], pa.string())
