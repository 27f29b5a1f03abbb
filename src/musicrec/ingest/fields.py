"""Records to fields: splitting, whitespace stripping and the control-character rule.

:func:`split_records` splits one chunk of records into an Arrow table of the spec's columns
(vectorised for unquoted records, :mod:`csv` for quoted ones) and a table of rejects
(``wrong_field_count``, ``empty_line``, ``malformed_quoting``, ``control_character``).
:func:`strip_fields` strips the values and applies the control-character rule: replaced
by U+FFFD in free-text columns, the record rejected in identifier and numeric ones.
"""

from __future__ import annotations

import csv

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from musicrec.ingest.spec import ReaderStats, TableSpec


# C0 controls that are never text: anywhere in a field (leading / trailing ones too, which the
# whitespace stripping would otherwise drop silently: U+001C-U+001F are whitespace); VT, FF and a
# lone CR only inside the stripped value (at its ends they are whitespace). TAB and LF are data
# (TSV separator, CSV multi-line fields); NUL refuses the whole file (_check_nul).
_CONTROL_ANY = r"[\x00-\x08\x0e-\x1f\x7f]"
_CONTROL_INNER = r"[\x0b\x0c\r]"
_CONTROL_PREFILTER = r"[\x00-\x08\x0b-\x1f\x7f]"  # a superset of both, on the whole record
REPLACEMENT_CHARACTER = "\ufffd"


def strip_fields(fields: pa.Table, spec: TableSpec, stats: ReaderStats) -> tuple[pa.Table, np.ndarray]:
    """Strip the ``spec.columns`` of ``fields`` of whitespace and apply the control-character rule.

    ``fields``: the raw (unstripped) field values of each record in the spec columns, and ``_raw``,
    the record's text (any superset of its fields, looked at first so that clean data costs one
    scan). In a ``spec.text_columns`` field each control character is replaced by U+FFFD (counted
    in ``stats``, for the records passed on); in any other field one marks the record. Returns the
    stripped table and the mask of marked records (rejected as ``control_character`` by the caller).
    """
    n = fields.num_rows
    bad = np.zeros(n, dtype=bool)
    replaced = np.zeros(n, dtype=np.int64)
    suspect = bool(n) and bool(pc.any(pc.match_substring_regex(fields["_raw"], _CONTROL_PREFILTER)).as_py())

    def count(arr: pa.Array | pa.ChunkedArray, pattern: str) -> np.ndarray:
        return np.asarray(pc.count_substring_regex(arr, pattern).to_numpy(zero_copy_only=False), dtype=np.int64)

    out: dict[str, pa.Array | pa.ChunkedArray] = {}
    for c in spec.columns:
        raw = fields[c]
        if suspect and c in spec.text_columns:
            replaced += count(raw, _CONTROL_ANY)
            value = pc.utf8_trim_whitespace(pc.replace_substring_regex(raw, _CONTROL_ANY, REPLACEMENT_CHARACTER))
            replaced += count(value, _CONTROL_INNER)
            value = pc.replace_substring_regex(value, _CONTROL_INNER, REPLACEMENT_CHARACTER)
        else:
            value = pc.utf8_trim_whitespace(raw)
            if suspect:
                hit = pc.or_(pc.match_substring_regex(raw, _CONTROL_ANY), pc.match_substring_regex(value, _CONTROL_INNER))
                bad |= np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)
        out[c] = value
    stats.control_characters_replaced += int(replaced[~bad].sum())
    stats.rows_with_control_characters_replaced += int((replaced[~bad] > 0).sum())
    rest = {c: fields[c] for c in fields.column_names if c not in out}
    return pa.table({**out, **rest}), bad


def split_record(rec: str, spec: TableSpec) -> list[str] | None:
    """The fields of one record (CSV rules where the spec quotes and the record has a quote); None if malformed."""
    if spec.quoting and '"' in rec:
        try:
            rows = list(csv.reader([rec], delimiter=spec.sep, strict=True))
        except csv.Error:
            return None
        return rows[0] if rows else [""]
    return rec.split(spec.sep)


def split_records(recs: list[str], nums: np.ndarray, spec: TableSpec, positions: list[int], width: int,
              last_line: int | None, stats: ReaderStats) -> tuple[pa.Table, pa.Table]:
    """Split records into fields; return (the fields of the good records, stripped, and the rejects table)."""
    names = list(spec.columns)
    arr = pa.array(recs, pa.string())
    lines = pa.array(nums, pa.int64())
    blank = pc.equal(pc.utf8_trim_whitespace(arr), "")
    if spec.quoting:
        quoted = pc.match_substring(arr, '"')
    else:
        quoted = pa.array(np.zeros(len(recs), dtype=bool))
    fast = pc.and_(pc.invert(blank), pc.invert(quoted))

    f_arr = arr.filter(fast)
    f_lines = lines.filter(fast)
    parts = pc.split_pattern(f_arr, spec.sep)
    ok = pc.equal(pc.list_value_length(parts), width)
    good_parts = parts.filter(ok)
    cols = {n: pc.list_element(good_parts, p) if p >= 0 else pa.nulls(len(good_parts), pa.string())
            for n, p in zip(names, positions)}  # stripped by strip_fields; p < 0: an absent optional column
    cols["_line"] = f_lines.filter(ok)
    cols["_raw"] = f_arr.filter(ok)
    good = pa.table(cols)

    rej_line = [f_lines.filter(pc.invert(ok))]
    rej_raw = [f_arr.filter(pc.invert(ok))]
    rej_reason = [pa.array(["wrong_field_count"] * (len(rej_line[0])), pa.string())]
    if pc.any(blank).as_py():
        rej_line.append(lines.filter(blank))
        rej_raw.append(arr.filter(blank))
        rej_reason.append(pa.array(["empty_line"] * len(rej_line[-1]), pa.string()))

    q_idx = np.flatnonzero(np.asarray(quoted.to_numpy(zero_copy_only=False)) & ~np.asarray(blank.to_numpy(zero_copy_only=False)))
    if len(q_idx):
        slow_rows: dict[str, list] = {n: [] for n in [*names, "_line", "_raw"]}
        bad_l, bad_r, bad_w = [], [], []
        for i in q_idx:
            rec = recs[i]
            fields = split_record(rec, spec)
            if fields is None or len(fields) != width:
                bad_l.append(int(nums[i]))
                bad_r.append(rec)
                bad_w.append("malformed_quoting" if fields is None else "wrong_field_count")
                continue
            for n, p in zip(names, positions):
                slow_rows[n].append(fields[p] if p >= 0 else None)
            slow_rows["_line"].append(int(nums[i]))
            slow_rows["_raw"].append(rec)
        if slow_rows["_line"]:
            slow = pa.table({n: pa.array(v, pa.int64() if n == "_line" else pa.string()) for n, v in slow_rows.items()})
            good = pa.concat_tables([good, slow]).sort_by("_line")
        rej_line.append(pa.array(bad_l, pa.int64()))
        rej_raw.append(pa.array(bad_r, pa.string()))
        rej_reason.append(pa.array(bad_w, pa.string()))

    good, bad = strip_fields(good, spec, stats)
    if bad.any():
        mask = pa.array(bad)
        rej_line.append(good["_line"].filter(mask).combine_chunks())
        rej_raw.append(good["_raw"].filter(mask).combine_chunks())
        rej_reason.append(pa.array(["control_character"] * int(bad.sum()), pa.string()))
        good = good.filter(pa.array(~bad))

    rejects = pa.table({
        "line": pa.concat_arrays(rej_line),
        "reason": pa.concat_arrays(rej_reason),
        "raw": pa.concat_arrays(rej_raw),
    })
    if last_line is not None and rejects.num_rows:
        is_last = pc.and_(pc.equal(rejects["line"], last_line), pc.equal(rejects["reason"], "wrong_field_count"))
        rejects = rejects.set_column(1, "reason", pc.if_else(is_last, "truncated_last_line", rejects["reason"]))
    return good, rejects.sort_by("line")
