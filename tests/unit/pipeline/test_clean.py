"""The clean stage on tiny hand-made files: every rule, every malformation, exact counts."""

from __future__ import annotations

import gzip
import hashlib
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicrec.pipeline.clean import CleanConfig, HashSet, clean
from musicrec.ingest.inputs import DEFAULT_POLICY, InputFormatError
from musicrec.schema import ITEM_COLUMNS, KAGGLE_MUSIC_INFO_COLUMNS
from musicrec.ingest.keys import name_key
from musicrec.ingest.quarantine import REASONS

ROOT = Path(__file__).resolve().parents[3]
INFO_HEADER = ",".join(KAGGLE_MUSIC_INFO_COLUMNS)
FEATS = "0.5,0.6,1,-5.0,1,0.1,0.2,0.0,0.1,0.5,120.0,4"


def info_row(tid: str, name: str = "Song", year: str = "2004", tags: str = "Rock, Indie") -> str:
    return f'{tid},{name},Artist,http://p,sp,"{tags}",Rock,{year},200000,{FEATS}'


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def run(source: str, inp: Path, out: Path, **kw) -> dict:
    args = {"chunk_rows": 3, "max_playcount": 1000, "unmatched": "keep", **kw}
    policy = args.pop("policy", DEFAULT_POLICY)
    return clean(source, inp, out, CleanConfig(**args), policy)


def check_invariant(report: dict) -> None:
    tot = {"rows_read": 0, "kept": 0, "quarantined": 0, "unmatched_dropped": 0}
    for rep in report["files"].values():
        assert rep["rows_read"] == rep["kept"] + rep["quarantined"] + rep["unmatched_dropped"]
        assert sum(rep["reasons"].values()) == rep["quarantined"]
        for k in tot:
            tot[k] += rep[k]
    for k, v in tot.items():
        assert report["totals"][k] == v
    t = report["totals"]
    assert t["rows_read"] == t["kept"] + t["quarantined"] + t["unmatched_dropped"]
    assert set(t["reasons"]) <= set(REASONS)


def quarantine(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "quarantine.parquet")


HISTORY_LINES = [
    "\ufefftrack_id,user_id,playcount",  # 1 header with BOM
    "TRA,u1,3",  # 2 kept
    "TRA,u1,3",  # 3 duplicate_row
    "TRB,u1,0",  # 4 out of range
    "TRB,u2,-2",  # 5 out of range
    "TRB,u3,abc",  # 6 not integer
    "TRB,u4,NaN",  # 7 not integer
    "TRB,u5,2.5",  # 8 not integer
    "TRB,u6,",  # 9 missing playcount
    "TRB,,1",  # 10 missing user
    ",u7,1",  # 11 missing item
    "TR B,u8,1",  # 12 malformed item
    "TRB,u9",  # 13 wrong field count
    "",  # 14 empty line
    "TRB,u10,999999",  # 15 > max_playcount
    '"TRC",u11,4',  # 16 kept (quoted)
    " TRC , u12 ,5",  # 17 kept (stripped)
    "TRD,u13,3.0",  # 18 kept (3)
    "TRZ,u14,1",  # 19 unmatched
    "TRB,u15,99999999999999999999999",  # 20 out of range (overflow)
    "TRB,u16,1",  # 21 kept
    'TRB,u17,"1',  # 22 unterminated quote
    "TRB,u18,2",  # 23 kept
    "TRB,u19",  # 24 truncated last line (no newline)
]
HISTORY_REASONS = {
    "duplicate_row": 1, "playcount_out_of_range": 4, "playcount_not_integer": 3, "missing_playcount": 1,
    "missing_user_id": 1, "missing_item_id": 1, "malformed_item_id": 1, "wrong_field_count": 1, "empty_line": 1,
    "unterminated_quote": 1, "truncated_last_line": 1,
}
QUARANTINE_LINES = {3: "duplicate_row", 4: "playcount_out_of_range", 5: "playcount_out_of_range",
                    6: "playcount_not_integer", 7: "playcount_not_integer", 8: "playcount_not_integer",
                    9: "missing_playcount", 10: "missing_user_id", 11: "missing_item_id", 12: "malformed_item_id",
                    13: "wrong_field_count", 14: "empty_line", 15: "playcount_out_of_range",
                    20: "playcount_out_of_range", 22: "unterminated_quote", 24: "truncated_last_line"}


@pytest.fixture
def kaggle_dir(tmp_path: Path) -> Path:
    d = tmp_path / "raw"
    info = [INFO_HEADER, info_row("TRA", '"Song, with comma"'), info_row("TRB", '"two\nlines"'), info_row("TRC"),
            info_row("TRD"), info_row("TRE"),  # no plays
            info_row("TRC"),  # identical duplicate -> duplicate_row
            info_row("TRD", "Other"),  # conflicting duplicate
            info_row("TRF", year="nineteen"),  # invalid number
            ]
    write(d / "Music Info.csv", "\n".join(info) + "\n")
    write(d / "User Listening History.csv", "\r\n".join(HISTORY_LINES))
    return d


def test_every_malformation_is_counted_with_its_reason(kaggle_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "interim"
    rep = run("kaggle", kaggle_dir, out)
    check_invariant(rep)
    hist = rep["files"]["User Listening History.csv"]
    assert hist["rows_read"] == len(HISTORY_LINES) - 1
    assert hist["reasons"] == HISTORY_REASONS
    assert hist["kept"] == 7 and hist["unmatched_dropped"] == 0
    assert hist["reader"]["bom"] and hist["reader"]["header"] == "present" and not hist["reader"]["trailing_newline"]
    q = quarantine(out)
    qh = q[q["file"] == "User Listening History.csv"]
    assert dict(zip(qh["line"], qh["reason"])) == QUARANTINE_LINES
    assert qh.loc[qh["line"] == 5, "raw"].item() == "TRB,u2,-2"
    plays = pd.read_parquet(out / "plays")
    assert list(plays.columns) == ["user_id", "item_id", "playcount", "timestamp"]
    assert plays[["user_id", "item_id", "playcount"]].values.tolist() == [
        ["u1", "TRA", 3], ["u11", "TRC", 4], ["u12", "TRC", 5], ["u13", "TRD", 3], ["u14", "TRZ", 1],
        ["u16", "TRB", 1], ["u18", "TRB", 2]]
    schema = pq.read_schema(next((out / "plays").glob("part-*.parquet")))
    assert str(schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("playcount").type) == "int64"


def test_items_duplicates_multiline_and_join(kaggle_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "interim"
    rep = run("kaggle", kaggle_dir, out)
    info = rep["files"]["Music Info.csv"]
    assert info["rows_read"] == 8 and info["kept"] == 5
    assert info["reasons"] == {"duplicate_row": 1, "duplicate_item_conflict": 1, "invalid_numeric_field": 1}
    q = quarantine(out)
    qi = q[q["file"] == "Music Info.csv"]
    # the record "two\nlines" spans physical lines 3-4, so later rows are at physical lines + 1
    assert dict(zip(qi["line"], qi["reason"])) == {8: "duplicate_row", 9: "duplicate_item_conflict",
                                                     10: "invalid_numeric_field"}
    items = pd.read_parquet(out / "items.parquet")
    assert tuple(items.columns) == ITEM_COLUMNS
    assert items["item_id"].is_unique
    assert items["item_id"].tolist() == ["TRA", "TRB", "TRC", "TRD", "TRE", "TRZ"]  # TRZ: unmatched, kept
    by_id = items.set_index("item_id")
    assert by_id.loc["TRA", "name"] == "Song, with comma"
    assert by_id.loc["TRB", "name"] == "two\nlines"
    assert by_id.loc["TRD", "name"] == "Song"  # first kept
    assert by_id.loc["TRA", "tags"] == "rock, indie"
    assert pd.isna(by_id.loc["TRZ", "name"])
    j = rep["join"]
    assert j["plays_matched"] == 6 and j["plays_unmatched"] == 1 and j["plays_unmatched_kept"] == 1
    assert j["metadata_items"] == 5 and j["metadata_items_with_plays"] == 4 and j["metadata_items_without_plays"] == 1
    assert j["play_items_unmatched"] == 1
    assert rep["output"] == {"plays": 7, "users": 7, "items": 6, "items_with_plays": 5, "playcount_sum": 19,
                             "plays_with_timestamp": 0, "plays_parts": rep["output"]["plays_parts"]}


def test_unmatched_drop(kaggle_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "interim"
    rep = run("kaggle", kaggle_dir, out, unmatched="drop")
    check_invariant(rep)
    hist = rep["files"]["User Listening History.csv"]
    assert hist["unmatched_dropped"] == 1 and hist["kept"] == 6
    assert rep["totals"]["unmatched_dropped"] == 1
    items = pd.read_parquet(out / "items.parquet")
    assert "TRZ" not in set(items["item_id"])
    assert "TRZ" not in set(pd.read_parquet(out / "plays")["item_id"])


def test_output_is_byte_for_byte_deterministic(kaggle_dir: Path, tmp_path: Path) -> None:
    def digest(d: Path) -> dict[str, str]:
        return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.rglob("*")) if p.is_file()}

    a, b = tmp_path / "a", tmp_path / "b"
    ra, rb = run("kaggle", kaggle_dir, a), run("kaggle", kaggle_dir, b)
    assert digest(a) == digest(b) and len(digest(a)) >= 3
    ra.pop("input_dir"), rb.pop("input_dir")
    assert ra == rb


def test_chunk_size_does_not_change_the_data(kaggle_dir: Path, tmp_path: Path) -> None:
    r1 = run("kaggle", kaggle_dir, tmp_path / "a", chunk_rows=1)
    r2 = run("kaggle", kaggle_dir, tmp_path / "b", chunk_rows=10_000)
    for r in (r1, r2):
        r.pop("params"), r.pop("input_dir"), r["output"].pop("plays_parts")
    assert r1 == r2
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "plays"), pd.read_parquet(tmp_path / "b" / "plays"))
    pd.testing.assert_frame_equal(quarantine(tmp_path / "a"), quarantine(tmp_path / "b"))


def test_header_missing_latin1_and_crlf(tmp_path: Path) -> None:
    d = tmp_path / "raw"
    write(d / "Music Info.csv", INFO_HEADER + "\r\n" + info_row("TRA", "Caf\xe9") .replace("Caf\xe9", "Cafe") + "\r\n")
    hist = b"TRA,u1,2\r\nTRA,u\xe9,1\r\nTRA,u2,1\r\n"  # no header; one Latin-1 line
    write(d / "User Listening History.csv", hist)
    rep = run("kaggle", d, tmp_path / "out")
    check_invariant(rep)
    h = rep["files"]["User Listening History.csv"]
    assert h["reader"]["header"] == "missing" and h["reader"]["encoding_fallback_lines"] == 1
    assert h["rows_read"] == 3
    assert h["reasons"] == {"malformed_user_id": 1}  # 'ué' is not a token id; decoded, not lost
    raw = quarantine(tmp_path / "out")["raw"].tolist()
    assert raw == ["TRA,u\xe9,1"]


def test_previous_output_is_replaced_and_left_alone_on_error(kaggle_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "interim"
    run("kaggle", kaggle_dir, out)
    before = sorted(p.name for p in out.rglob("*"))
    write(kaggle_dir / "User Listening History.csv", "track_id\tuser_id\tplaycount\nTRA\tu1\t1\n")
    with pytest.raises(InputFormatError):
        run("kaggle", kaggle_dir, out)
    assert sorted(p.name for p in out.rglob("*")) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize(
    "history, expected",
    [
        ("song,listener,n\nTRA,u1,1\n", "header has unknown columns"),
        ("track_id,listener,n\nTRA,u1,1\n", "missing column(s) user_id, playcount"),
        ("track_id,user,plays_total\nTRA,u1,1\n", "missing column(s) playcount"),
        ("track_id\tuser_id\tplaycount\nTRA\tu1\t1\n", "tab-separated"),
        ("TRA;u1;1\nTRA;u2;1\n", "semicolon-separated"),
    ],
)
def test_wrong_layout_raises_a_precise_error(tmp_path: Path, history: str, expected: str) -> None:
    d = tmp_path / "raw"
    write(d / "Music Info.csv", INFO_HEADER + "\n" + info_row("TRA") + "\n")
    write(d / "User Listening History.csv", history)
    with pytest.raises(InputFormatError) as err:
        run("kaggle", d, tmp_path / "out")
    msg = str(err.value)
    assert "User Listening History.csv" in msg and "line 1" in msg and expected in msg, msg
    assert not (tmp_path / "out").exists()


def test_gzip_named_csv_and_missing_files(tmp_path: Path) -> None:
    d = tmp_path / "raw"
    write(d / "Music Info.csv", INFO_HEADER + "\n" + info_row("TRA") + "\n")
    with pytest.raises(InputFormatError, match="User Listening History.csv.*not found"):
        run("kaggle", d, tmp_path / "out")
    write(d / "User Listening History.csv", gzip.compress(b"track_id,user_id,playcount\nTRA,u1,1\n", mtime=0))
    with pytest.raises(InputFormatError, match=r"gzip-compressed .*\.gz"):
        run("kaggle", d, tmp_path / "out")
    with pytest.raises(InputFormatError, match="input directory not found"):
        run("kaggle", tmp_path / "nope", tmp_path / "out")


def test_taste_profile_mapping_header_and_unmatched(tmp_path: Path) -> None:
    d = tmp_path / "raw"
    u1, u2 = "a" * 40, "b" * 40
    so1, so2, so3 = "SOAAAAAAAAAAAAAAA1", "SOAAAAAAAAAAAAAAA2", "SOAAAAAAAAAAAAAAA3"
    tr1, tr1b, tr2 = "TRAAAAAAAAAAAAAAA1", "TRAAAAAAAAAAAAAAA9", "TRAAAAAAAAAAAAAAA2"
    write(d / "10000.txt", f"user\tsong\tplay_count\n{u1}\t{so1}\t2\n{u1}\t{so2}\t1\n{u2}\t{so3}\t5\n"
                           f"{u2}\tSO-bad\t1\nnot-a-sha\t{so1}\t1\n{u2}\t{so1}\t1\t\n")
    write(d / "meta" / "unique_tracks.txt", f"{tr1}<SEP>{so1}<SEP>Art<SEP>One\n{tr1b}<SEP>{so1}<SEP>Art<SEP>One (dup)\n"
                                           f"{tr2}<SEP>{so2}<SEP>Art2<SEP>Two\n")
    rep = run("taste_profile", d, tmp_path / "out")
    check_invariant(rep)
    p = rep["files"]["10000.txt"]
    assert p["reasons"] == {"unexpected_header": 1, "malformed_item_id": 1, "malformed_user_id": 1,
                            "wrong_field_count": 1}
    plays = pd.read_parquet(tmp_path / "out" / "plays")
    assert plays["item_id"].tolist() == [tr1, tr2, so3]  # SO -> first TR; unmatched keeps SO
    j = rep["join"]
    assert (j["plays_matched"], j["plays_unmatched"], j["songs_with_several_tracks"]) == (2, 1, 1)
    assert j["metadata_items"] == 3 and j["metadata_items_without_plays"] == 1
    rep = run("taste_profile", d, tmp_path / "out2", unmatched="drop")
    check_invariant(rep)
    assert rep["files"]["10000.txt"]["unmatched_dropped"] == 1
    assert pd.read_parquet(tmp_path / "out2" / "plays")["item_id"].tolist() == [tr1, tr2]


def test_taste_profile_sqlite_metadata(tmp_path: Path) -> None:
    d = tmp_path / "raw"
    so, tr = "SOAAAAAAAAAAAAAAA1", "TRAAAAAAAAAAAAAAA1"
    write(d / "10000.txt", f"{'a' * 40}\t{so}\t2\n")
    con = sqlite3.connect(d / "track_metadata.db")
    con.execute("CREATE TABLE songs (track_id text, title text, song_id text, artist_name text, duration real, year int)")
    con.executemany("INSERT INTO songs VALUES (?,?,?,?,?,?)", [(tr, "One", so, "Art", 200.5, 0), ("bad", "x", so, "y", 1, 1)])
    con.commit()
    con.close()
    rep = run("taste_profile", d, tmp_path / "out")
    check_invariant(rep)
    assert rep["files"]["track_metadata.db"]["reasons"] == {"malformed_item_id": 1}
    items = pd.read_parquet(tmp_path / "out" / "items.parquet").set_index("item_id")
    assert items.loc[tr, "duration_ms"] == 200500 and pd.isna(items.loc[tr, "year"])
    assert rep["join"]["plays_matched"] == 1


def test_lastfm_1k_events(tmp_path: Path) -> None:
    d = tmp_path / "raw"
    mb = "0024d72c-136f-49f2-9078-ce4b39b94d3f"
    rows = [
        f"user_000001\t2009-05-04T23:08:57Z\t\tDeep Dish\t\tTrack A",  # name key
        f"user_000001\t2009-05-04T23:09:57Z\t\tdeep  DISH\t\ttrack a",  # same normalised names -> same key
        f"user_000001\t2009-05-04T23:09:57Z\t\tdeep  DISH\t\ttrack a",  # duplicate_row
        f"user_000002\t2009-05-04T23:10:00Z\tx\tArt\t{mb.upper()}\tTrack B",  # MBID lower-cased
        f"user_000002\tyesterday\tx\tArt\t{mb}\tTrack B",  # invalid_timestamp
        f"user_000002\t\tx\tArt\t{mb}\tTrack B",  # missing_timestamp
        f"user_000002\t2009-05-04T23:10:00Z\tx\tArt\tnot-a-uuid\tTrack B",  # malformed_item_id
        f"user_000002\t2009-05-04T23:10:00Z\tx\tArt\t\t",  # missing_item_id
        f"user_2\t2009-05-04T23:10:00Z\tx\tArt\t{mb}\tTrack B",  # malformed_user_id
    ]
    write(d / "userid-timestamp-artid-artname-traid-traname.tsv", "\n".join(rows) + "\n")
    rep = run("lastfm_1k", d, tmp_path / "out")
    check_invariant(rep)
    f = rep["files"]["userid-timestamp-artid-artname-traid-traname.tsv"]
    assert f["kept"] == 3
    assert f["reasons"] == {"duplicate_row": 1, "invalid_timestamp": 1, "missing_timestamp": 1,
                            "malformed_item_id": 1, "missing_item_id": 1, "malformed_user_id": 1}
    plays = pd.read_parquet(tmp_path / "out" / "plays")
    key = name_key("Deep Dish", "Track A")
    assert plays["item_id"].tolist() == [key, key, mb]
    assert (plays["playcount"] == 1).all() and plays["timestamp"].notna().all()
    assert str(plays["timestamp"].iloc[0]) == "2009-05-04 23:08:57+00:00"
    items = pd.read_parquet(tmp_path / "out" / "items.parquet").set_index("item_id")
    assert items.loc[key, "name"] == "Track A" and items.loc[key, "artist"] == "Deep Dish"


def test_lastfm_360k(tmp_path: Path) -> None:
    d = tmp_path / "raw"
    u = "00000c289a1829a808ac09c00daf10bc3c4e223b"
    mb = "3bd73256-3905-4f3a-97e2-8b341527f805"
    write(d / "usersha1-artmbid-artname-plays.tsv",
          f"{u}\t{mb}\tbetty blowtorch\t2137\n{u}\t\tdie Ärzte\t1099\n{u}\t\t\t5\n{u}\t{mb}\tbetty\t0\n")
    rep = run("lastfm_360k", d, tmp_path / "out", max_playcount=100_000)
    check_invariant(rep)
    f = rep["files"]["usersha1-artmbid-artname-plays.tsv"]
    assert f["kept"] == 2 and f["reasons"] == {"missing_item_id": 1, "playcount_out_of_range": 1}
    plays = pd.read_parquet(tmp_path / "out" / "plays")
    assert plays["item_id"].tolist() == [mb, name_key("Die ärzte")]
    assert rep["join"]["profile_file_present"] is False


def test_hetrec_zip(tmp_path: Path) -> None:
    d = tmp_path / "raw"
    d.mkdir()
    with zipfile.ZipFile(d / "hetrec2011-lastfm-2k.zip", "w") as z:
        z.writestr("user_artists.dat", "userID\tartistID\tweight\r\n2\t51\t13883\r\n2\t52\t10\r\n3\t99\t1\r\n3\tx\t1\r\n")
        z.writestr("artists.dat", "id\tname\turl\tpictureURL\n51\tDuran \"Duran\"\tu\tp\n52\tMorcheeba\tu\tp\n")
        z.writestr("tags.dat", "tagID\ttagValue\r\n1\tMetal\r\n2\tpop\r\n3\tm\xfasica\r\n".encode("latin-1"))
        z.writestr("user_taggedartists.dat", "userID\tartistID\ttagID\tday\tmonth\tyear\r\n"
                   "2\t51\t2\t1\t4\t2009\r\n3\t51\t2\t1\t4\t2009\r\n2\t51\t3\t1\t4\t2009\r\n2\t52\t1\t1\t4\t2009\r\n"
                   "2\t77\t1\t1\t4\t2009\r\n")
    rep = run("hetrec_lastfm_2k", d, tmp_path / "out")
    check_invariant(rep)
    ua = rep["files"]["hetrec2011-lastfm-2k.zip:user_artists.dat"]
    assert ua["rows_read"] == 4 and ua["reasons"] == {"playcount_out_of_range": 1, "malformed_item_id": 1}
    assert rep["join"]["plays_unmatched"] == 1  # artist 99 has no artists.dat row
    assert rep["join"]["tag_assignments_unknown_artist"] == 1
    items = pd.read_parquet(tmp_path / "out" / "items.parquet").set_index("item_id")
    assert items.loc["51", "name"] == 'Duran "Duran"'
    assert items.loc["51", "tags"] == "pop, m\xfasica" and items.loc["52", "tags"] == "metal"


def test_hash_set() -> None:
    s = HashSet()
    import numpy as np

    assert s.add(np.array([3, 1, 3], np.uint64)).tolist() == [False, False, True]
    assert s.add(np.array([2, 1, 5, 2], np.uint64)).tolist() == [False, True, False, True]
    assert len(s) == 4


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 40), max_size=30), max_size=8))
def test_hash_set_is_the_sorted_distinct_set_and_flags_repeats(chunks) -> None:
    import numpy as np

    s, seen = HashSet(), set()
    for c in chunks:
        dup = s.add(np.array(c, np.uint64))
        expected = []
        for v in c:
            expected.append(v in seen)
            seen.add(v)
        assert dup.tolist() == expected
        assert s.values.tolist() == sorted(seen)


def test_hash_set_update_counts_distinct_strings() -> None:
    import pyarrow as pa

    s = HashSet()
    s.update(pa.chunked_array([["u1", "u2", "u1"], ["u3", "u2"]]))
    s.update(pa.array(["u3", "u4"]))
    assert len(s) == 4


def _stage(tmp_path: Path, inp: Path) -> subprocess.CompletedProcess:
    params = (ROOT / "params.yaml").read_text().replace("source: synthetic", "source: kaggle")
    write(tmp_path / "params.yaml", params)
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / "clean.py"), "--params", str(tmp_path / "params.yaml"), "--input",
         str(inp), "--out", str(tmp_path / "interim"), "--report", str(tmp_path / "reports" / "dq.json")],
        capture_output=True, text=True, timeout=60,
    )


def test_no_play_matching_the_metadata_warns_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    d = tmp_path / "raw"
    write(d / "Music Info.csv", INFO_HEADER + "\n" + info_row("TRA") + "\n" + info_row("TRB") + "\n")
    write(d / "User Listening History.csv", "track_id,user_id,playcount\nu1,TRA,3\nu2,TRB,1\n")  # columns swapped
    rep = run("kaggle", d, tmp_path / "out")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("clean: warning: none of the 2 valid plays matched the item metadata")
    assert "User Listening History.csv: track_id (e.g. 'u1')" in err and "Music Info.csv: track_id (e.g. 'TRA')" in err
    assert rep["warnings"] == [err.removeprefix("clean: warning: ").strip()]
    assert (rep["join"]["plays_matched"], rep["join"]["plays_unmatched"]) == (0, 2)


def test_stage_exits_2_on_missing_file(tmp_path: Path) -> None:
    d = tmp_path / "raw"
    write(d / "Music Info.csv", INFO_HEADER + "\n" + info_row("TRA") + "\n")
    res = _stage(tmp_path, d)
    assert res.returncode == 2
    err = res.stderr.strip()
    assert "\n" not in err and "Traceback" not in err and "User Listening History.csv" in err and "not found" in err


def test_stage_exits_2_on_wrong_columns(tmp_path: Path) -> None:
    d = tmp_path / "raw"
    write(d / "Music Info.csv", INFO_HEADER + "\n" + info_row("TRA") + "\n")
    write(d / "User Listening History.csv", "song,listener,n\nTRA,u1,1\n")
    res = _stage(tmp_path, d)
    assert res.returncode == 2
    err = res.stderr.strip()
    assert "\n" not in err and "Traceback" not in err and "line 1" in err and "track_id,user_id,playcount" in err


def test_stage_writes_report(kaggle_dir: Path, tmp_path: Path) -> None:
    res = _stage(tmp_path, kaggle_dir)
    assert res.returncode == 0, res.stderr
    import json

    rep = json.loads((tmp_path / "reports" / "dq.json").read_text())
    check_invariant(rep)
    assert (tmp_path / "interim" / "items.parquet").exists()
