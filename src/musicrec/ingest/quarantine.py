"""The quarantine: the vocabulary of reasons (:data:`REASONS`), its table schema and how rows get there.

Every rejected row ends in a quarantine table (``file``, ``line``, ``reason``, ``raw``) with
one of :data:`REASONS`; :func:`quarantine_table` / :func:`with_file` build those tables and
:func:`dedupe_items` keeps the first row per id and quarantines the later ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
    "duplicate_alias_conflict": "an alias bad id (Audioscrobbler artist_alias.txt) seen before with another good id "
                                "(first kept)",
    "alias_cycle": "an artist alias whose chain of aliases never ends (it comes back to an id on it, a -> a "
                   "included); the id is left unresolved",
}


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
