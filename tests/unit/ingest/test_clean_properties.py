"""Property test: random Kaggle-schema history rows through ``musicrec.pipeline.clean.clean``.

Rows are a random mix of valid plays (with whitespace padding, optional CSV
quoting, ``.0`` counts, unmatched and duplicate ids), CSV-quoted junk (random
text with quotes, commas, newlines, empty fields), unquoted junk (commas and
newlines, no quotes) and, now and then, broken quoting (a stray ``"``).

Checked for every example:

* ``rows_read == kept + quarantined + unmatched_dropped`` (per file and overall),
  and ``quarantine.parquet`` holds exactly the quarantined rows, each with a
  reason from :data:`musicrec.ingest.quarantine.REASONS` and a physical line in the file;
* an independent oracle of the documented rules (reader: RFC 4180 quoting,
  whitespace stripping, C0 control characters refused in these id / count fields; Kaggle adapter: ``TOKEN_ID``
  ids, integer play counts with an optional ``.0`` fraction and leading zeros in
  1..max_playcount; clean: first of exact
  duplicates kept, unmatched keep/drop) predicts the kept plays exactly, in order,
  whenever no stray quote makes the record boundaries ambiguous; with one, every
  kept row still obeys those rules, is unique, and its ids occur in the input.

Also properties of the value parsers: the duplicate key is injective; numbers are
finite values of their Arrow type or fail the row; timestamps are real dates and
times in :data:`musicrec.ingest.values.TIME_RANGE` or fail the row.
"""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musicrec.pipeline.clean import CleanConfig, clean
from musicrec.schema import KAGGLE_HISTORY, KAGGLE_MUSIC_INFO, KAGGLE_MUSIC_INFO_COLUMNS
from musicrec.ingest.values import TIME_RANGE, TOKEN_ID, Checks, parse_iso_utc, parse_numbers
from musicrec.ingest.keys import dedup_text
from musicrec.ingest.quarantine import REASONS

MAX_PLAYCOUNT = 1000
FEATS = "0.5,0.6,1,-5.0,1,0.1,0.2,0.0,0.1,0.5,120.0,4"
CATALOG = ("TRA", "TRB", "TRC")
MUSIC_INFO = ",".join(KAGGLE_MUSIC_INFO_COLUMNS) + "\n" + "".join(
    f'{t},Song {t},Artist,http://p,sp,"rock, pop",Rock,2004,200000,{FEATS}\n' for t in CATALOG)

_TOKEN = re.compile(TOKEN_ID.strip("^$"))
_INT = re.compile(r"-?[0-9]+(\.0*)?")
# Characters on which Python's str.strip and Arrow's utf8_trim_whitespace agree; no CR (CRLF
# files are made by replacing every LF), no BOM.
ALPHABET = st.sampled_from(list("aAzZ09 ,\"\n\t.:-_;'") + ["é", "ß", "\u00a0", "\u3000", "🎵", "\x01", "\x1f"])
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")  # refused anywhere in an id / number field (ALPHABET has only these)
TEXT = st.text(ALPHABET, max_size=12)

valid_rows = st.tuples(
    st.sampled_from([*CATALOG, "TRZ", "tra", "TR-9.x"]),  # TRZ / tra / TR-9.x: valid ids without metadata
    st.sampled_from(["u1", "u2", "U1", "user.3", "4:x", "z_9"]),
    st.one_of(st.integers(1, MAX_PLAYCOUNT).map(str), st.sampled_from(["1.0", "007", "3.00", "0", "1001", "-2"])),
    st.sampled_from(["", " ", "\t", "  \u00a0"]),  # padding
    st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
).map(lambda r: ("csv", [r[3] + r[0], r[1] + r[3], r[3] + r[2] + r[3]], r[4]))
junk_csv = st.tuples(st.lists(TEXT, min_size=1, max_size=4), st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])).map(
    lambda r: ("csv", r[0], r[1]))
junk_raw = st.lists(st.text(st.sampled_from(list("aZ09 ,\n\t.-_é")), max_size=10), min_size=1, max_size=4).map(
    lambda fs: ("raw", ",".join(fs), None))
broken = st.tuples(TEXT, TEXT).map(lambda t: ("raw", t[0] + '"' + t[1], None))
ROW = st.one_of(valid_rows, valid_rows, junk_csv, junk_raw, broken)


def serialise(row: tuple) -> str:
    kind, data, quoting = row
    if kind == "raw":
        return data
    buf = io.StringIO()
    csv.writer(buf, quoting=quoting, lineterminator="\n").writerow(data)
    return buf.getvalue()[:-1]


def records(row: tuple) -> list[list[str]]:
    """The records a row must read back as, when no stray quote is around (fields not yet stripped)."""
    kind, data, _ = row
    if kind == "csv":
        return [list(data)]
    return [line.split(",") for line in data.split("\n")]


def normalise(fields: list[str]) -> tuple[str, str, int] | None:
    """(track, user, count) when the record is a valid play under the documented rules, else None."""
    if len(fields) != 3 or any(_CONTROL.search(f) for f in fields):
        return None
    track, user, count = (f.strip() for f in fields)
    if not (_TOKEN.fullmatch(track) and _TOKEN.fullmatch(user) and _INT.fullmatch(count)):
        return None
    digits = count.split(".")[0]
    if len(digits.lstrip("-").lstrip("0")) > 18:
        return None
    n = int(digits)
    return (track, user, n) if 1 <= n <= MAX_PLAYCOUNT else None


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(
    first=valid_rows,
    rows=st.lists(ROW, min_size=2, max_size=25),
    crlf=st.booleans(),
    final_newline=st.booleans(),
    chunk_rows=st.integers(1, 7),
    unmatched=st.sampled_from(["keep", "drop"]),
)
def test_random_history_rows_lose_nothing(tmp_path_factory: pytest.TempPathFactory, first: tuple, rows: list[tuple],
                                          crlf: bool, final_newline: bool, chunk_rows: int, unmatched: str) -> None:
    rows = [first, *rows]  # a valid first record: the file is always recognisable as a history file
    tmp = tmp_path_factory.mktemp("prop")
    raw = tmp / "raw"
    raw.mkdir()
    (raw / KAGGLE_MUSIC_INFO).write_text(MUSIC_INFO, encoding="utf-8")
    text = "track_id,user_id,playcount\n" + "\n".join(serialise(r) for r in rows) + ("\n" if final_newline else "")
    if crlf:
        text = text.replace("\n", "\r\n")
    (raw / KAGGLE_HISTORY).write_bytes(text.encode("utf-8"))

    out = tmp / "out"
    rep = clean("kaggle", raw, out, CleanConfig(chunk_rows=chunk_rows, max_playcount=MAX_PLAYCOUNT, unmatched=unmatched))

    # accounting
    for name, f in rep["files"].items():
        assert f["rows_read"] == f["kept"] + f["quarantined"] + f["unmatched_dropped"], name
        assert set(f["reasons"]) <= set(REASONS) and sum(f["reasons"].values()) == f["quarantined"]
    t = rep["totals"]
    assert t["rows_read"] == t["kept"] + t["quarantined"] + t["unmatched_dropped"]
    hist = rep["files"][KAGGLE_HISTORY]
    q = pd.read_parquet(out / "quarantine.parquet")
    qh = q[q["file"] == KAGGLE_HISTORY]
    assert len(q) == t["quarantined"] and len(qh) == hist["quarantined"]
    assert set(q["reason"]) <= set(REASONS)
    physical = hist["reader"]["physical_lines"]
    assert qh["line"].between(2, physical).all() and qh["line"].is_unique
    assert rep["files"][KAGGLE_MUSIC_INFO]["kept"] == len(CATALOG)

    plays = pd.read_parquet(out / "plays")
    kept = [(i, u, int(c)) for u, i, c in plays[["user_id", "item_id", "playcount"]].itertuples(index=False)]
    assert len(kept) == hist["kept"] == rep["output"]["plays"]

    clear = not any(r[0] == "raw" and '"' in r[1] for r in rows)
    if clear:
        recs = [rec for r in rows for rec in records(r)]
        if not final_newline and rows[-1][0] == "raw" and recs[-1] == [""]:
            recs.pop()  # "...\n" + "" with no final newline: the empty last line does not exist
        assert hist["rows_read"] == len(recs)
        expected, seen, dropped = [], set(), 0
        for rec in recs:
            play = normalise(rec)
            if play is None or play in seen:
                continue
            seen.add(play)
            if play[0] not in CATALOG and unmatched == "drop":
                dropped += 1
                continue
            expected.append(play)
        assert kept == expected
        assert hist["unmatched_dropped"] == dropped
    else:
        assert len(set(kept)) == len(kept)
        for track, user, n in kept:
            assert _TOKEN.fullmatch(track) and _TOKEN.fullmatch(user) and 1 <= n <= MAX_PLAYCOUNT
            assert track in text and user in text
            assert unmatched == "keep" or track in CATALOG


KEY_TEXT = st.text(st.sampled_from(list("a1:,") + ["\x1f", "é", "🎵"]), max_size=5)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(KEY_TEXT, KEY_TEXT, KEY_TEXT), min_size=2, max_size=12))
def test_duplicate_key_is_injective(rows: list[tuple[str, str, str]]) -> None:
    keys = dedup_text(*(pa.array([r[i] for r in rows], pa.string()) for i in range(3))).to_pylist()
    for (a, ka), (b, kb) in combinations(zip(rows, keys), 2):
        assert (ka == kb) == (a == b), (a, b, ka)


NUMBER = st.one_of(st.floats(), st.integers(-2 ** 70, 2 ** 70), st.floats(-1e20, 1e20))


@settings(max_examples=100, deadline=None)
@given(st.lists(NUMBER, min_size=1, max_size=20), st.sampled_from(["float", "int"]))
def test_numbers_are_finite_values_of_their_type_or_fail_the_row(values: list, kind: str) -> None:
    texts = [repr(v) for v in values]  # floats: 'inf', 'nan', '1e+300', '-0.0'; ints: exact digits
    checks = Checks(len(texts))
    got = parse_numbers(pa.array(texts, pa.string()), checks, kind).to_pylist()
    for text, ok, value in zip(texts, checks.ok, got):
        x = float(text) if text not in ("inf", "-inf") else None
        if x is not None and math.isnan(x):
            assert ok and value is None  # NaN: a missing value
        elif kind == "float":
            assert ok == (x is not None and math.isfinite(x)), text
            assert value == (x if ok else None)
        else:
            r = round(x) if x is not None and math.isfinite(x) else None  # half to even, like Arrow
            fits = r is not None and -2 ** 63 <= r < 2 ** 63
            assert ok == fits, text
            assert value == (r if fits else None)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9999), st.integers(0, 13), st.integers(0, 32), st.integers(0, 25),
                          st.integers(0, 61), st.integers(0, 61)), min_size=1, max_size=20))
def test_timestamps_are_real_dates_in_range_or_fail_the_row(parts: list[tuple[int, ...]]) -> None:
    texts = ["{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z".format(*p) for p in parts]
    checks = Checks(len(texts))
    got = parse_iso_utc(pa.array(texts, pa.string()), checks).to_pylist()
    for p, ok, code, value in zip(parts, checks.ok, checks.code, got):
        try:
            dt = datetime(*p, tzinfo=timezone.utc)
        except ValueError:  # 30 Feb, month 13, hour 24, second 60: never normalised
            assert not ok and checks.reasons[code] == "invalid_timestamp", p
            continue
        if TIME_RANGE[0] <= dt < TIME_RANGE[1]:
            assert ok and value == dt, p
        else:
            assert not ok and checks.reasons[code] == "timestamp_out_of_range", p
