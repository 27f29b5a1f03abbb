"""Vectorised row validation: :class:`Checks` (the first failing check gives a row its reason) and the parsers.

The parsers validate an Arrow column into a :class:`Checks` and return the parsed values:
play counts, decimal ids, ISO-8601 UTC timestamps, day/month/year dates, optional numeric
metadata; with the id formats of the sources (:data:`TOKEN_ID`, :data:`MSD_TRACK_ID`, ...),
the valid time range (:data:`TIME_RANGE`) and two value normalisers (tags, empty -> null).
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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


def zero_to_null(arr: pa.Array) -> pa.Array:
    """0 -> null (MSD years and audio features use 0 for "unknown" / "not computed")."""
    return pc.if_else(pc.equal(arr, 0), pa.scalar(None, arr.type), arr)


def empty_to_null(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    return pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)


def http_url_or_null(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The values that are ``http://`` or ``https://`` URLs without whitespace (at most 2,048 chars); others null."""
    ok = pc.and_(pc.match_substring_regex(col, "^https?://[^\\s\\x00-\\x1f\\x7f\ufffd]+$"),
                 pc.less_equal(pc.utf8_length(col), 2048))
    return pc.if_else(pc.fill_null(ok, False), col, pa.scalar(None, pa.string()))
