"""Reliability: bad input loses nothing.

A corpus of bad-input cases for every source format, written into ``tmp_path`` by
the tests themselves. Each case states one exact outcome:

* :class:`Parsed`: the clean succeeds, nothing is quarantined, and the number of
  rows kept (and dropped as unmatched) per file is exact;
* :class:`Quarantined`: the clean succeeds, the kept counts per file are exact,
  and so are the quarantine counts per file and reason;
* :class:`Error`: the clean raises, with a message matching every regex (the file
  name, the line where there is one, and what was expected), and writes nothing.

For every case that runs, ``rows_read == kept + quarantined + unmatched_dropped``
per file and overall, and ``quarantine.parquet`` holds exactly the quarantined
rows. Cases marked ``xfail`` describe a known bug in a module these tests do not
own (strict: they fail today and must be un-marked when it is fixed).

``python tests/unit/ingest/test_bad_inputs.py > reports/reliability_cases.md`` writes the
summary table of the corpus.
"""

from __future__ import annotations

import codecs
import gzip
import io
import re
import subprocess
import sys
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT / "src") not in sys.path:  # so that ``python tests/unit/ingest/test_bad_inputs.py`` works too
    sys.path.insert(0, str(ROOT / "src"))

from musicrec.pipeline.clean import CleanConfig, clean  # noqa: E402
from musicrec.ingest.inputs import DEFAULT_POLICY, InputFormatError  # noqa: E402
from musicrec.ingest.lines import BLOCK_BYTES  # noqa: E402
from musicrec.schema import AUDIO_FEATURES, KAGGLE_HISTORY, KAGGLE_MUSIC_INFO, KAGGLE_MUSIC_INFO_COLUMNS  # noqa: E402
from musicrec.ingest.keys import name_key  # noqa: E402
from musicrec.ingest import SOURCES  # noqa: E402
from musicrec.ingest.quarantine import REASONS  # noqa: E402

# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Parsed:
    """Success with nothing quarantined. ``kept``: every file of the report -> rows kept."""

    kept: dict[str, int]
    unmatched_dropped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Quarantined:
    """Success with quarantined rows: exact kept counts and exact ``{file: {reason: count}}``."""

    kept: dict[str, int]
    reasons: dict[str, dict[str, int]]
    unmatched_dropped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Error:
    """The clean raises ``exc``; its message matches every regex in ``patterns``."""

    patterns: tuple[str, ...]
    exc: type[BaseException] = InputFormatError


Outcome = Parsed | Quarantined | Error
FileData = bytes | Callable[[], bytes]


@dataclass(frozen=True)
class Case:
    name: str
    source: str
    files: dict[str, FileData]  # path relative to the input folder -> bytes (or a factory of them)
    expect: Outcome
    kwargs: dict = field(default_factory=dict)  # chunk_rows / max_playcount / unmatched overrides
    check: Callable[[Path, dict], None] | None = None  # extra assertions on (output folder, report)
    stage: bool = False  # also run stages/clean.py on it (error cases: exit 2, one-paragraph stderr)
    note: str = ""
    xfail: str = ""  # known bug in a module this test does not own: strict xfail with this reason
    xfail_raises: type[BaseException] = AssertionError  # what the bug makes test_bad_input_case raise today


# --------------------------------------------------------------------------- file builders

INFO = KAGGLE_MUSIC_INFO
HIST = KAGGLE_HISTORY
INFO_HEADER = ",".join(KAGGLE_MUSIC_INFO_COLUMNS)
FEATS = "0.5,0.6,1,-5.0,1,0.1,0.2,0.0,0.1,0.5,120.0,4"
HIST_HEADER = "track_id,user_id,playcount"


def info_row(tid: str, name: str = "Song", artist: str = "Artist", tags: str = '"Rock, Indie"', year: str = "2004") -> str:
    return f"{tid},{name},{artist},http://p,sp,{tags},Rock,{year},200000,{FEATS}"


def lines(*rows: str, sep: str = "\n", final: bool = True) -> bytes:
    return (sep.join(rows) + (sep if final else "")).encode("utf-8")


INFO_OK = lines(INFO_HEADER, info_row("TRA"), info_row("TRB"), info_row("TRC"))
HIST_OK = lines(HIST_HEADER, "TRA,u1,3", "TRB,u2,1", "TRC,u1,2")


def kaggle(info: FileData = INFO_OK, hist: FileData = HIST_OK) -> dict[str, FileData]:
    return {INFO: info, HIST: hist}


U1, U2 = "a" * 40, "b" * 40
SO1, SO2, SO3 = "SOAAAAAAAAAAAAAAA1", "SOAAAAAAAAAAAAAAA2", "SOAAAAAAAAAAAAAAA3"
TR1, TR2 = "TRAAAAAAAAAAAAAAA1", "TRAAAAAAAAAAAAAAA2"
TRIP = "10000.txt"
UNIQ = "unique_tracks.txt"
TRIP_OK = lines(f"{U1}\t{SO1}\t2", f"{U1}\t{SO2}\t1", f"{U2}\t{SO1}\t5")
UNIQ_OK = lines(f"{TR1}<SEP>{SO1}<SEP>Art<SEP>One", f"{TR2}<SEP>{SO2}<SEP>Art2<SEP>Two")


def taste(trip: FileData = TRIP_OK, meta: FileData = UNIQ_OK, meta_name: str = UNIQ) -> dict[str, FileData]:
    return {TRIP: trip, meta_name: meta}


EV = "userid-timestamp-artid-artname-traid-traname.tsv"
MB = "0024d72c-136f-49f2-9078-ce4b39b94d3f"
MB2 = "3bd73256-3905-4f3a-97e2-8b341527f805"


def ev(user: str = "user_000001", ts: str = "2009-05-04T23:08:57Z", artid: str = "", art: str = "Deep Dish",
       traid: str = MB, track: str = "Track A") -> str:
    return "\t".join((user, ts, artid, art, traid, track))


P360 = "usersha1-artmbid-artname-plays.tsv"
ZIP = "hetrec2011-lastfm-2k.zip"
HZ = {  # published member layout (CRLF, header lines)
    "user_artists.dat": b"userID\tartistID\tweight\r\n2\t51\t13\r\n2\t52\t10\r\n3\t51\t1\r\n",
    "artists.dat": b"id\tname\turl\tpictureURL\n51\tDuran Duran\tu\tp\n52\tMorcheeba\tu\tp\n",
    "tags.dat": b"tagID\ttagValue\r\n1\tmetal\r\n2\tpop\r\n",
    "user_taggedartists.dat": b"userID\tartistID\ttagID\tday\tmonth\tyear\r\n2\t51\t2\t1\t4\t2009\r\n",
}
UA, AR, TG, TA = (f"{ZIP}:{m}" for m in ("user_artists.dat", "artists.dat", "tags.dat", "user_taggedartists.dat"))
HETREC_KEPT = {UA: 3, AR: 2, TG: 2, TA: 1}


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2011, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def hetrec(**members: bytes | None) -> dict[str, FileData]:
    m = {**HZ, **{k.replace("__", "."): v for k, v in members.items()}}
    return {ZIP: zip_bytes({k: v for k, v in m.items() if v is not None})}


# ~50 MB instead of the 1 GB of the issue, to keep the suite fast: the reader reads
# 8 MiB blocks and carries a partial line over, so a line several blocks long
# exercises the same code path as a much longer one.
LONG_FIELD_BYTES = 50 * 1024 * 1024


def _corrupt_member_zip() -> bytes:
    """A zip whose central directory is fine but whose user_artists.dat data fails its CRC-32."""
    data = zip_bytes(HZ, compression=zipfile.ZIP_STORED)
    assert data.count(b"2\t52\t10") == 1
    return data.replace(b"2\t52\t10", b"2\t52\t99")


def _broken_deflate_member_zip() -> bytes:
    """A deflated zip whose user_artists.dat data is not a valid deflate stream (zlib.error on read)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in HZ.items():
            info = zipfile.ZipInfo(name, date_time=(2011, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    out = bytearray(buf.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(out))).getinfo("user_artists.dat")
    name_len, extra_len = int.from_bytes(out[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(out[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    out[start:start + info.compress_size] = b"\x07" * info.compress_size  # BTYPE=11: invalid block type
    return bytes(out)


def _sqlite_without_songs() -> bytes:
    import sqlite3
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        con = sqlite3.connect(Path(d) / "x.db")
        con.execute("CREATE TABLE tracks (track_id text)")
        con.commit()
        con.close()
        return (Path(d) / "x.db").read_bytes()


def info_with(tid: str, **values: str) -> str:
    """A Music Info row with some columns set (others as in :func:`info_row`)."""
    row = {"track_id": tid, "name": "Song", "artist": "Artist", "spotify_preview_url": "http://p", "spotify_id": "sp",
           "tags": '"Rock, Indie"', "genre": "Rock", "year": "2004", "duration_ms": "200000",
           **dict(zip(AUDIO_FEATURES, FEATS.split(","))), **values}
    return ",".join(row[c] for c in KAGGLE_MUSIC_INFO_COLUMNS)


SONG_DATA = "song_data.csv"
SONG_DATA_HEADER = ",track_id,song_id,artist_name,title,year,duration,danceability,energy,key,loudness,mode,tempo,time_signature"


def song_data_row(i: int, tr: str, so: str, year: str = "2004", duration: str = "200.5", tempo: str = "120") -> str:
    return f"{i},{tr},{so},Art,Title,{year},{duration},0.5,0.5,1,-5,1,{tempo},4"


def _sqlite_songs(rows: list[tuple]) -> Callable[[], bytes]:
    """A track_metadata.db with table songs(track_id, title, song_id, artist_name, duration, year)."""
    def make() -> bytes:
        import sqlite3
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            con = sqlite3.connect(Path(d) / "x.db")
            con.execute("CREATE TABLE songs (track_id text, title text, song_id text, artist_name text, duration real, "
                        "year int)")
            con.executemany("INSERT INTO songs VALUES (?,?,?,?,?,?)", rows)
            con.commit()
            con.close()
            return (Path(d) / "x.db").read_bytes()
    return make


def _nul_past_64k() -> bytes:
    """A history of ~100 KB whose only NUL byte is on line 8002, far past the first 64 KiB."""
    rows = [f"TRA,u{i},1" for i in range(8000)]
    assert len(lines(HIST_HEADER, *rows)) > 65536 + 1024
    return lines(HIST_HEADER, *rows) + b"TRB,u\x00x,1\n" + lines("TRC,v1,1")


def _crlf_on_block_boundary() -> bytes:
    """A CRLF file whose first read block ends on the CRLF inside the quoted name of TRB: TRA's (unquoted) artist
    is padded so that this CRLF is the last line end of the first BLOCK_BYTES."""
    head = (INFO_HEADER + "\r\n").encode()
    tra = info_row("TRA", artist="{pad}", tags="rock").encode()  # no quote: the csv module limits quoted records
    trb = 'TRB,"two\r'.encode()
    pad = BLOCK_BYTES - 10 - len(head) - (len(tra) - len(b"{pad}")) - 2 - len(trb)
    data = head + tra.replace(b"{pad}", b"A" * pad) + b"\r\n" + trb
    assert len(data) == BLOCK_BYTES - 10  # the LF of TRB's inner CRLF is byte BLOCK_BYTES - 10 (0-based)
    return data + lines('\nlines"' + info_row("TRB")[len("TRB,Song"):], info_row("TRC"), sep="\r\n")


def _warned(*patterns: str) -> Callable[[Path, dict], None]:
    """The report has exactly one warning, matching every regex."""
    def check(out: Path, rep: dict) -> None:
        assert len(rep.get("warnings", [])) == 1, rep.get("warnings")
        for pat in patterns:
            assert re.search(pat, rep["warnings"][0]), (pat, rep["warnings"][0])
    return check


def _no_warning(out: Path, rep: dict) -> None:
    assert "warnings" not in rep


def _very_long_line() -> bytes:
    return lines(HIST_HEADER, "TRA,u1,3") + b"TRB," + b"u" * LONG_FIELD_BYTES + b",1\n" + lines("TRC,u2,2")


# ---- round 2 builders: compressed inputs, hostile archives, limits (generated here, never committed)

from musicrec.ingest.inputs import InputPolicy  # noqa: E402


def bz2_bytes(data: bytes) -> bytes:
    import bz2
    return bz2.compress(data)


def xz_bytes(data: bytes) -> bytes:
    import lzma
    return lzma.compress(data)


def packed_zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """Like :func:`zip_bytes`, with every member compressed by ``method`` (``zip_bytes`` stores them)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2011, 1, 1, 0, 0, 0))
            info.compress_type = method
            z.writestr(info, data)
    return buf.getvalue()


def _zip_patch(data: bytes, member: str, **fields: int) -> bytes:
    """Rewrite header fields of ``member`` in both its local and central headers:
    ``flag``, ``method``, ``compress_size``, ``file_size`` (offsets from APPNOTE 4.3.7 / 4.3.12)."""
    local = {"flag": (6, 2), "method": (8, 2), "compress_size": (18, 4), "file_size": (22, 4)}
    central = {"flag": (8, 2), "method": (10, 2), "compress_size": (20, 4), "file_size": (24, 4)}
    out = bytearray(data)
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    cd = data.index(b"PK\x01\x02")  # the central headers, in order: find the member's
    while not data[cd + 46:cd + 46 + len(member.encode())] == member.encode():
        cd = data.index(b"PK\x01\x02", cd + 4)
    for name, value in fields.items():
        for base, table in ((info.header_offset, local), (cd, central)):
            off, size = table[name]
            out[base + off:base + off + size] = value.to_bytes(size, "little")
    return bytes(out)


def hetrec_patched(member: str, **fields: int) -> Callable[[], bytes]:
    return lambda: _zip_patch(zip_bytes(HZ, compression=zipfile.ZIP_STORED), member, **fields)


BOMB_BYTES = 64 << 20  # 64 MiB of newlines: about 65 KB deflated (the issue's zip), 81 bytes as bzip2


def _bomb(data_head: bytes = b"") -> bytes:
    return data_head + b"\n" * BOMB_BYTES


def _many_rows(n: int, bad_every: int = 0) -> bytes:
    """A Kaggle history of ``n`` distinct rows; every ``bad_every``-th has a non-integer play count."""
    rows = [f"TR{i % 3},u{i},{'x' if bad_every and i % bad_every == 0 else 1}" for i in range(n)]
    return lines(HIST_HEADER, *rows)


def _long_lines_hist() -> bytes:
    """Lines 3 (20 MiB: read past over several blocks), 5 (1.5 MiB, inside one block) and a final 3 MiB
    line without newline are too long for a 1 MiB limit."""
    return (lines(HIST_HEADER, "TRA,u1,3") + b"TRB," + b"u" * (20 << 20) + b",1\n" + lines("TRC,u2,2")
            + b"TRA," + b"v" * (3 << 19) + b",1\n" + lines("TRB,u3,1") + b"w" * (3 << 20))


def _long_lines_quarantined(out: Path, rep: dict) -> None:
    q = pd.read_parquet(out / "quarantine.parquet")
    assert q["line"].tolist() == [3, 5, 7] and set(q["reason"]) == {"line_too_long"}
    assert q["raw"].tolist() == ["TRB," + "u" * 1020, "TRA," + "v" * 1020, "w" * 1024]  # the first 1,024 bytes
    assert rep["files"][HIST]["reader"]["physical_lines"] == 7


# --------------------------------------------------------------------------- extra checks


def plays(out: Path) -> list[list]:
    return pd.read_parquet(out / "plays")[["user_id", "item_id", "playcount"]].values.tolist()


def items(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "items.parquet").set_index("item_id")


def qlines(out: Path, file: str) -> dict[int, str]:
    q = pd.read_parquet(out / "quarantine.parquet")
    q = q[q["file"] == file]
    return dict(zip(q["line"].tolist(), q["reason"].tolist()))


def expect_plays(*rows: list) -> Callable[[Path, dict], None]:
    def check(out: Path, rep: dict) -> None:
        assert plays(out) == [list(r) for r in rows]
    return check


def expect_qlines(file: str, mapping: dict[int, str]) -> Callable[[Path, dict], None]:
    def check(out: Path, rep: dict) -> None:
        assert qlines(out, file) == mapping
    return check


def all_of(*checks: Callable[[Path, dict], None]) -> Callable[[Path, dict], None]:
    def check(out: Path, rep: dict) -> None:
        for c in checks:
            assert c(out, rep) is not False, c
    return check


def reader(file: str, **want: object) -> Callable[[Path, dict], None]:
    def check(out: Path, rep: dict) -> None:
        got = rep["files"][file]["reader"]
        assert {k: got[k] for k in want} == want
    return check


def item_field(item_id: str, col: str, value: object) -> Callable[[Path, dict], None]:
    def check(out: Path, rep: dict) -> None:
        assert items(out).loc[item_id, col] == value
    return check


def output(**want: int) -> Callable[[Path, dict], None]:
    def check(out: Path, rep: dict) -> None:
        assert {k: rep["output"][k] for k in want} == want
    return check


def join(**want: object) -> Callable[[Path, dict], None]:
    def check(out: Path, rep: dict) -> None:
        assert {k: rep["join"][k] for k in want} == want
    return check


def _long_line_quarantined(out: Path, rep: dict) -> None:
    q = pd.read_parquet(out / "quarantine.parquet")
    assert q["line"].tolist() == [3] and q["reason"].tolist() == ["malformed_user_id"]
    assert len(q["raw"].iloc[0]) == LONG_FIELD_BYTES + len("TRB,") + len(",1")  # the whole line, nothing cut


# ---- round 3 builders (#15, formats people have): the MSD tutorial table, the Turi song_data.csv, Audioscrobbler

TUT = "song_df.csv"
TUT_HEADER = "user_id,song_id,listen_count,title,release,artist_name,year"
U3 = "c" * 40


def tut(*rows: str, header: str = TUT_HEADER) -> dict[str, FileData]:
    return {TUT: lines(header, *rows)}


TUT_ROWS = (f"{U1},{SO1},1,The Cove,Thicker Than Water,Jack Johnson,0",
            f"{U1},{SO2},2,Nothing from Nothing,To Die For,Billy Preston,1974",
            f"{U2},{SO1},5,The Cove,Thicker Than Water,Jack Johnson,0")
TURI_HEADER = "song_id,title,release,artist_name,year"
AS_PLAYS, AS_ART, AS_ALIAS = "user_artist_data.txt", "artist_data.txt", "artist_alias.txt"
AS_PLAYS_OK = lines("1000002 1 55", "1000002 1000006 33", "1000019 1000010 238")
AS_ART_OK = lines("1\tu2", "1000010\tAerosmith", "1000006\tU 2")
AS_ALIAS_OK = lines("1000006\t1")


def ascrob(plays: FileData = AS_PLAYS_OK, art: FileData = AS_ART_OK, alias: FileData | None = AS_ALIAS_OK) -> dict[str, FileData]:
    return {AS_PLAYS: plays, AS_ART: art, **({AS_ALIAS: alias} if alias is not None else {})}


def aliases_in(file: str, **want: int) -> Callable[[Path, dict], None]:
    """A plays file's alias-merge counts (``files[file].aliases``)."""
    def check(out: Path, rep: dict) -> None:
        got = rep["files"][file]["aliases"]
        assert {k: got[k] for k in want} == want, got
    return check


def aliases(**want: int) -> Callable[[Path, dict], None]:
    return aliases_in(AS_PLAYS, **want)


AS_TAR = "profiledata_06-May-2005.tar.gz"


def tar_gz(files: dict[str, FileData], folder: str = "profiledata_06-May-2005") -> bytes:
    """A gzipped tar of ``files`` under ``folder``/ with a README.txt first, as the dump is published."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in {"README.txt": b"Audioscrobbler data\n", **files}.items():
            payload = data() if callable(data) else data
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size, info.mtime = len(payload), 1115337600
            tf.addfile(info, io.BytesIO(payload))
    return buf.getvalue()


def play_items(*want: tuple[str, str, int]) -> Callable[[Path, dict], None]:
    """The kept plays as sorted (user_id, item_id, playcount) triples."""
    def check(out: Path, rep: dict) -> None:
        p = pd.read_parquet(out / "plays")
        assert sorted(zip(p["user_id"], p["item_id"], p["playcount"])) == sorted(want)
    return check


# --------------------------------------------------------------------------- the corpus

K = {INFO: 3, HIST: 3}  # kept counts of the clean Kaggle pair
T = {TRIP: 3, UNIQ: 2}

CASES: list[Case] = [
    # ---- Kaggle / synthetic: Music Info.csv + User Listening History.csv
    Case("kaggle_history_empty_file", "kaggle", kaggle(hist=b""), Parsed({INFO: 3, HIST: 0}),
         check=all_of(reader(HIST, physical_lines=0), output(plays=0))),
    Case("kaggle_history_header_only", "kaggle", kaggle(hist=lines(HIST_HEADER)), Parsed({INFO: 3, HIST: 0}),
         check=reader(HIST, header="present", physical_lines=1)),
    Case("kaggle_info_empty_file_all_plays_unmatched", "kaggle", kaggle(info=b""), Parsed({INFO: 0, HIST: 3}),
         check=join(plays_unmatched=3, metadata_items=0)),
    Case("kaggle_info_header_only_unmatched_drop", "synthetic", kaggle(info=lines(INFO_HEADER)),
         Parsed({INFO: 0, HIST: 0}, unmatched_dropped={HIST: 3}), kwargs={"unmatched": "drop"}),
    Case("kaggle_info_tab_separated", "kaggle",
         kaggle(info=lines(INFO_HEADER.replace(",", "\t"), info_row("TRA").replace(",", "\t"))),
         Error((r"Music Info\.csv", r"line 1\b", r"expected a comma-separated header with columns track_id,name",
                r"looks tab-separated")), stage=True),
    Case("kaggle_history_pipe_separated", "kaggle", kaggle(hist=lines("track_id|user_id|playcount", "TRA|u1|1")),
         Error((r"User Listening History\.csv", r"line 1\b", r"expected a comma-separated header",
                r"track_id,user_id,playcount", r"looks pipe-separated"))),
    Case("kaggle_history_headerless_two_fields_everywhere", "kaggle",
         kaggle(hist=lines("TRA,u1", "TRB,u2", "TRC,u3")),
         Error((r"User Listening History\.csv", r"line 1\b", r"expected 3 comma-separated fields",
                r"\(track_id,user_id,playcount\)", r"found 2 field\(s\)"))),
    Case("kaggle_history_missing_column", "kaggle", kaggle(hist=lines("track_id,user_id", "TRA,u1")),
         Error((r"User Listening History\.csv", r"line 1\b", r"missing column\(s\) playcount",
                r"expected a comma-separated header with columns track_id,user_id,playcount"))),
    Case("kaggle_history_extra_column", "kaggle", kaggle(hist=lines(HIST_HEADER + ",timestamp", "TRA,u1,1,2009")),
         Error((r"User Listening History\.csv", r"line 1\b", r"4 columns instead of 3",
                r"track_id,user_id,playcount"))),
    Case("kaggle_history_renamed_columns_aliases", "kaggle",
         kaggle(hist=lines("Song_ID , UserID ,Play_Count", "TRA,u1,3", "TRB,u2,1")),
         Parsed({INFO: 3, HIST: 2}), check=expect_plays(["u1", "TRA", 3], ["u2", "TRB", 1])),
    Case("kaggle_history_column_order", "kaggle", kaggle(hist=lines("playcount,user_id,track_id", "3,u1,TRA", "1,u2,TRB")),
         Parsed({INFO: 3, HIST: 2}), check=expect_plays(["u1", "TRA", 3], ["u2", "TRB", 1])),
    Case("kaggle_info_missing_column", "kaggle",
         kaggle(info=lines(INFO_HEADER.replace(",genre", ""), info_row("TRA").replace(",Rock,2004", ",2004"))),
         Error((r"Music Info\.csv", r"line 1\b", r"missing column\(s\) genre", r"extra columns allowed"))),
    Case("kaggle_info_reordered_and_extra_columns", "kaggle",
         kaggle(info=lines("year,extra," + INFO_HEADER.replace(",year", ""),
                           "1999,x," + info_row("TRA", name="First").replace(",1999", "").replace(",2004", ""),
                           "2001,y," + info_row("TRB").replace(",2004", ""),
                           "2002,z," + info_row("TRC").replace(",2004", ""))),
         Parsed(K), check=all_of(item_field("TRA", "year", 1999), item_field("TRA", "name", "First"),
                                 item_field("TRA", "genre", "Rock"))),
    Case("kaggle_playcount_non_numeric", "kaggle",
         kaggle(hist=lines(HIST_HEADER, "TRA,u1,abc", "TRA,u2,3x", "TRA,u3,\u0663", "TRA,u4,1e3", "TRA,u5,0x10",
                           "TRA,u6,+", "TRA,u7,4")),
         Quarantined({INFO: 3, HIST: 1}, {HIST: {"playcount_not_integer": 6}}),
         check=expect_plays(["u7", "TRA", 4])),
    Case("kaggle_playcount_negative_and_zero", "kaggle",
         kaggle(hist=lines(HIST_HEADER, "TRA,u1,-1", "TRA,u2,0", "TRA,u3,-0", "TRA,u4,0.0", "TRA,u5,00003", "TRA,u6,1")),
         Quarantined({INFO: 3, HIST: 2}, {HIST: {"playcount_out_of_range": 4}}),
         check=expect_plays(["u5", "TRA", 3], ["u6", "TRA", 1])),
    Case("kaggle_playcount_huge", "kaggle",
         kaggle(hist=lines(HIST_HEADER, "TRA,u1,1000", "TRA,u2,1001", "TRA,u3,999999999999999999",
                           "TRA,u4,9223372036854775808", "TRA,u5," + "9" * 40)),
         Quarantined({INFO: 3, HIST: 1}, {HIST: {"playcount_out_of_range": 4}}), kwargs={"max_playcount": 1000},
         check=expect_plays(["u1", "TRA", 1000])),
    Case("kaggle_playcount_nan_inf_empty", "kaggle",
         kaggle(hist=lines(HIST_HEADER, "TRA,u1,NaN", "TRA,u2,nan", "TRA,u3,inf", "TRA,u4,-inf", "TRA,u5,1.5",
                           "TRA,u6,", "TRA,u7,   ", "TRA,u8,3.0")),
         Quarantined({INFO: 3, HIST: 1}, {HIST: {"playcount_not_integer": 5, "missing_playcount": 2}}),
         check=expect_plays(["u8", "TRA", 3])),
    Case("kaggle_history_duplicate_rows_and_whitespace_collisions", "kaggle",
         kaggle(hist=lines(HIST_HEADER, "TRA,u1,3", "TRA,u1,3", " TRA , u1 ,3.0", '"TRA","u1","3"', "TRA,u1,4",
                           "TRA,U1,3")),
         Quarantined({INFO: 3, HIST: 3}, {HIST: {"duplicate_row": 3}}),
         check=all_of(expect_plays(["u1", "TRA", 3], ["u1", "TRA", 4], ["U1", "TRA", 3]),
                      expect_qlines(HIST, {3: "duplicate_row", 4: "duplicate_row", 5: "duplicate_row"})),
         note="ids are stripped, not case-folded: U1 and u1 are two users"),
    Case("kaggle_info_duplicate_ids_conflicting_metadata", "kaggle",
         kaggle(info=lines(INFO_HEADER, info_row("TRA"), info_row("TRB"), info_row("TRA"), info_row("TRA", name="Other"),
                           info_row(" TRB "), info_row("TRC"))),
         Quarantined(K, {INFO: {"duplicate_row": 2, "duplicate_item_conflict": 1}}),
         check=all_of(item_field("TRA", "name", "Song"),
                      expect_qlines(INFO, {4: "duplicate_row", 5: "duplicate_item_conflict", 6: "duplicate_row"}))),
    Case("kaggle_ids_case_variants_stay_distinct", "kaggle",
         kaggle(info=lines(INFO_HEADER, info_row("TRA"), info_row("tra", name="Lower")),
                hist=lines(HIST_HEADER, "TRA,u1,1", "tra,u1,1")),
         Parsed({INFO: 2, HIST: 2}), check=all_of(join(plays_unmatched=0), output(items=2, users=1),
                                                  item_field("tra", "name", "Lower"))),
    Case("kaggle_history_invalid_utf8", "kaggle",
         kaggle(hist=lines(HIST_HEADER, "TRA,u1,1") + b"TRB,u\xff2,1\nTRC,u3,\xe92\n" + lines("TRC,u4,1")),
         Quarantined({INFO: 3, HIST: 2}, {HIST: {"malformed_user_id": 1, "playcount_not_integer": 1}}),
         check=all_of(reader(HIST, encoding_fallback_lines=2),
                      lambda out, rep: pd.read_parquet(out / "quarantine.parquet")["raw"].tolist()
                      == ["TRB,u\xff2,1", "TRC,u3,\xe92"])),
    Case("kaggle_info_latin1_encoded", "kaggle",
         kaggle(info=(INFO_HEADER + "\n" + info_row("TRA", name="Café", artist="Björk") + "\n"
                      + info_row("TRB") + "\n" + info_row("TRC", name="Señor") + "\n").encode("latin-1")),
         Parsed(K), check=all_of(item_field("TRA", "name", "Café"), item_field("TRA", "artist", "Björk"),
                                 item_field("TRC", "name", "Señor"), reader(INFO, encoding_fallback_lines=2))),
    Case("kaggle_bom_on_both_files", "synthetic", kaggle(info=codecs.BOM_UTF8 + INFO_OK, hist=codecs.BOM_UTF8 + HIST_OK),
         Parsed(K), check=all_of(reader(INFO, bom=True, header="present"), reader(HIST, bom=True, header="present"),
                                 expect_plays(["u1", "TRA", 3], ["u2", "TRB", 1], ["u1", "TRC", 2]))),
    Case("kaggle_crlf_with_multiline_field", "kaggle",
         kaggle(info=lines(INFO_HEADER, info_row("TRA", name='"two\r\nlines"'), info_row("TRB"), info_row("TRC"),
                           sep="\r\n"),
                hist=lines(HIST_HEADER, "TRA,u1,3", "TRB,u2,1", "TRC,u1,2", "TRC,u2,x", sep="\r\n")),
         Quarantined(K, {HIST: {"playcount_not_integer": 1}}),
         check=all_of(item_field("TRA", "name", "two\nlines"), item_field("TRC", "genre", "Rock"),
                      expect_plays(["u1", "TRA", 3], ["u2", "TRB", 1], ["u1", "TRC", 2]),
                      expect_qlines(HIST, {5: "playcount_not_integer"}))),
    Case("kaggle_info_embedded_newlines_and_quotes", "kaggle",
         kaggle(info=lines(INFO_HEADER, info_row("TRA", name='"He said ""hi""\nand left"', artist='"Crosby, Stills"'),
                           info_row("TRB", tags='"a,\n b,,C"'), info_row("TRC"), info_row("TRD", year="MCMXC"))),
         Quarantined(K, {INFO: {"invalid_numeric_field": 1}}),
         check=all_of(item_field("TRA", "name", 'He said "hi"\nand left'), item_field("TRA", "artist", "Crosby, Stills"),
                      item_field("TRB", "tags", "a, b, c"), expect_qlines(INFO, {7: "invalid_numeric_field"}))),
    Case("kaggle_history_newlines_inside_quoted_fields", "kaggle",
         kaggle(hist=lines(HIST_HEADER, '"TR\nA",u1,1', 'TRA,"u\n2",1', 'TRA,u3,"2\n"', "TRB,u4,1")),
         Quarantined({INFO: 3, HIST: 2}, {HIST: {"malformed_item_id": 1, "malformed_user_id": 1}}),
         check=all_of(expect_plays(["u3", "TRA", 2], ["u4", "TRB", 1]),
                      expect_qlines(HIST, {2: "malformed_item_id", 4: "malformed_user_id"})),
         note='a quoted "2\\n" is whitespace-stripped to 2 (documented stripping)'),
    Case("kaggle_history_quotes", "kaggle",
         kaggle(hist=lines(HIST_HEADER, '"TRA","u1","3"', 'TRA,u"2,1', 'TRA,u""3,1', '"TRA"x,u4,1', 'TRB,u5,1')),
         Quarantined({INFO: 3, HIST: 2},
                     {HIST: {"unterminated_quote": 1, "malformed_user_id": 1, "malformed_quoting": 1}}),
         check=all_of(expect_plays(["u1", "TRA", 3], ["u5", "TRB", 1]),
                      expect_qlines(HIST, {3: "unterminated_quote", 4: "malformed_user_id", 5: "malformed_quoting"}))),
    Case("kaggle_history_truncated_last_line", "kaggle", kaggle(hist=lines(HIST_HEADER, "TRA,u1,3", "TRB,u", final=False)),
         Quarantined({INFO: 3, HIST: 1}, {HIST: {"truncated_last_line": 1}}),
         check=all_of(reader(HIST, trailing_newline=False), expect_qlines(HIST, {3: "truncated_last_line"}))),
    Case("kaggle_history_truncated_last_line_inside_last_field", "kaggle",
         kaggle(hist=lines(HIST_HEADER, "TRA,u1,3", "TRB,u2,", final=False)),
         Quarantined({INFO: 3, HIST: 1}, {HIST: {"truncated_last_line": 1}})),
    Case("kaggle_history_no_final_newline_is_fine", "kaggle", kaggle(hist=lines(HIST_HEADER, "TRA,u1,3", "TRB,u2,1", final=False)),
         Parsed({INFO: 3, HIST: 2}), check=reader(HIST, trailing_newline=False)),
    Case("kaggle_info_gzip_named_csv", "kaggle", kaggle(info=gzip.compress(INFO_OK, mtime=0)),
         Error((r"Music Info\.csv", r"line 1\b", r"gzip-compressed", r"expected plain text", r"Music Info\.csv\.gz")),
         stage=True),
    Case("kaggle_history_zip_named_csv", "kaggle", kaggle(hist=zip_bytes({HIST: HIST_OK})),
         Error((r"User Listening History\.csv", r"line 1\b", r"zip archive", r"expected plain text"))),
    Case("kaggle_history_utf16", "kaggle", kaggle(hist=HIST_OK.decode().encode("utf-16")),
         Error((r"User Listening History\.csv", r"line 1\b", r"UTF-16", r"expected UTF-8"))),
    Case("kaggle_history_nul_bytes", "kaggle", kaggle(hist=HIST_OK + b"TRA,u9,\x00\x01\x02\n"),
         Error((r"User Listening History\.csv", r"line 5\b", r"NUL byte", r"expected a text file"))),
    Case("kaggle_history_very_long_line_50MB", "kaggle", kaggle(hist=_very_long_line),
         Quarantined({INFO: 3, HIST: 2}, {HIST: {"malformed_user_id": 1}}), check=_long_line_quarantined,
         note="a 50 MB user id; ~50 MB rather than the issue's 1 GB to keep the suite fast"),
    Case("kaggle_history_blank_and_whitespace_lines", "kaggle",
         kaggle(hist=lines(HIST_HEADER, "TRA,u1,3", "", "   ", "\t", "TRB,u2,1", "")),
         Quarantined({INFO: 3, HIST: 2}, {HIST: {"empty_line": 4}})),
    Case("kaggle_history_wrong_field_counts", "kaggle",
         kaggle(hist=lines(HIST_HEADER, "TRA,u1", "TRA,u1,1,1", "TRA", "TRA;u2;1", "TRB,u3,1")),
         Quarantined({INFO: 3, HIST: 1}, {HIST: {"wrong_field_count": 4}})),
    Case("kaggle_history_missing_ids", "kaggle",
         kaggle(hist=lines(HIST_HEADER, ",u1,1", "TRA,,1", " ,u2,1", "TRA, \t,1", '" ",u3,1', "TRA,u4,1")),
         Quarantined({INFO: 3, HIST: 1}, {HIST: {"missing_item_id": 3, "missing_user_id": 2}})),
    Case("kaggle_history_unterminated_quote_long_tail", "kaggle",
         kaggle(hist=lines(HIST_HEADER, 'TRA,u"1,1', *(f"TRB,v{i},1" for i in range(250)))),
         Quarantined({INFO: 3, HIST: 250}, {HIST: {"unterminated_quote": 1}}),
         check=expect_qlines(HIST, {2: "unterminated_quote"}),
         note="the quote stays open for more than MAX_RECORD_LINES (200) lines; only its own line is rejected"),
    Case("kaggle_info_unterminated_quote_at_eof", "kaggle",
         kaggle(info=lines(INFO_HEADER, info_row("TRA"), info_row("TRB"), info_row("TRC"), info_row('"TRD', name="x"))),
         Quarantined(K, {INFO: {"unterminated_quote": 1}}), check=expect_qlines(INFO, {5: "unterminated_quote"})),
    Case("kaggle_history_leading_blank_line", "kaggle", kaggle(hist=b"\n" + HIST_OK),
         Quarantined(K, {HIST: {"empty_line": 1}}),
         check=all_of(reader(HIST, header="present"), expect_qlines(HIST, {1: "empty_line"}))),
    Case("kaggle_history_empty_file_header_reported_missing", "kaggle", kaggle(hist=b""), Parsed({INFO: 3, HIST: 0}),
         check=reader(HIST, header="missing")),
    Case("kaggle_history_cr_only_line_ends", "kaggle", kaggle(hist=HIST_OK.replace(b"\n", b"\r")),
         Error((r"User Listening History\.csv", r"line 1\b", r"missing column\(s\) playcount",
                r"expected a comma-separated header with columns track_id,user_id,playcount")),
         note="classic-Mac CR line ends are not supported (LF and CRLF are): the whole file is one header line"),
    Case("kaggle_history_in_two_folders", "kaggle", {**kaggle(), f"copy/{HIST}": HIST_OK},
         Error((r"'User Listening History\.csv' found 2 times", r"expected one"))),
    Case("kaggle_unmatched_drop", "kaggle", kaggle(hist=lines(HIST_HEADER, "TRA,u1,3", "TRZ,u1,1", "TRZ,u2,1", "tra,u3,1")),
         Parsed({INFO: 3, HIST: 1}, unmatched_dropped={HIST: 3}), kwargs={"unmatched": "drop"},
         check=join(plays_unmatched=3, play_items_unmatched=2)),
    Case("kaggle_missing_history_file", "kaggle", {INFO: INFO_OK},
         Error((r"'User Listening History\.csv'", r"not found", r"Found: \['Music Info\.csv'\]"))),
    Case("unknown_data_source", "spotify", kaggle(),
         Error((r"unknown data source 'spotify'", r"expected one of \[.*'kaggle'.*'synthetic'"), exc=ValueError)),
    # ---- Taste Profile: triplets + MSD metadata
    Case("taste_triplets_empty_file", "taste_profile", taste(trip=b""), Parsed({TRIP: 0, UNIQ: 2})),
    Case("taste_triplets_comma_separated", "taste_profile", taste(trip=TRIP_OK.replace(b"\t", b",")),
         Error((r"10000\.txt", r"line 1\b", r"expected 3 tab-separated fields \(user,song,play_count\)",
                r"found 1 field\(s\)", r"looks comma-separated")), stage=True),
    Case("taste_triplets_bad_counts", "taste_profile",
         taste(trip=lines(*(f"{U1}\t{SO1}\t{c}" for c in ("abc", "-3", "0", "", "1e2", "3.0", "100001", "7")))),
         Quarantined({TRIP: 2, UNIQ: 2}, {TRIP: {"playcount_not_integer": 2, "playcount_out_of_range": 3,
                                                "missing_playcount": 1}}),
         check=expect_plays([U1, TR1, 3], [U1, TR1, 7])),
    Case("taste_triplets_id_variants", "taste_profile",
         taste(trip=lines(f"{U1}\t{SO1}\t2", f" {U1} \t {SO1} \t 2 ", f"{U1.upper()}\t{SO1}\t2", f"{U1}\t{SO1.lower()}\t2",
                          f"{U1[:-1]}\t{SO1}\t2", f"{U1}g\t{SO1}\t2")),
         Quarantined({TRIP: 2, UNIQ: 2}, {TRIP: {"duplicate_row": 1, "malformed_item_id": 1, "malformed_user_id": 2}}),
         check=all_of(expect_plays([U1, TR1, 2], [U1.upper(), TR1, 2]), output(users=2)),
         note="SHA-1 user ids are not case-folded: upper and lower case are two users"),
    Case("taste_meta_conflicting_duplicates", "taste_profile",
         taste(meta=lines(f"{TR1}<SEP>{SO1}<SEP>Art<SEP>One", f"{TR1}<SEP>{SO1}<SEP>Art<SEP>One",
                          f"{TR1}<SEP>{SO2}<SEP>Art<SEP>Other", f"{TR2}<SEP>{SO2}<SEP>Art2<SEP>Two",
                          f"XX<SEP>{SO3}<SEP>A<SEP>T", f"{TR2}<SEP>{SO2}<SEP>Art2")),
         Quarantined({TRIP: 3, UNIQ: 2}, {UNIQ: {"duplicate_row": 1, "duplicate_item_conflict": 1,
                                                "malformed_item_id": 1, "wrong_field_count": 1}}),
         check=all_of(item_field(TR1, "name", "One"), expect_plays([U1, TR1, 2], [U1, TR2, 1], [U2, TR1, 5]))),
    Case("taste_meta_empty_unmatched_drop", "taste_profile", taste(meta=b""),
         Parsed({TRIP: 0, UNIQ: 0}, unmatched_dropped={TRIP: 3}), kwargs={"unmatched": "drop"}),
    Case("taste_meta_with_header_line", "taste_profile",
         taste(meta=lines("track_id<SEP>song_id<SEP>artist<SEP>title", f"{TR1}<SEP>{SO1}<SEP>Art<SEP>One",
                          f"{TR2}<SEP>{SO2}<SEP>Art2<SEP>Two")),
         Parsed(T), check=reader(UNIQ, header="present")),
    Case("taste_bom_crlf_truncated_last_line", "taste_profile",
         taste(trip=codecs.BOM_UTF8 + lines(f"{U1}\t{SO1}\t2", f"{U1}\t{SO2}\t1", f"{U2}\t{SO2}", sep="\r\n", final=False)),
         Quarantined({TRIP: 2, UNIQ: 2}, {TRIP: {"truncated_last_line": 1}}),
         check=all_of(reader(TRIP, bom=True, trailing_newline=False), expect_qlines(TRIP, {3: "truncated_last_line"}))),
    Case("taste_triplets_gzip_named_txt", "taste_profile", taste(trip=gzip.compress(TRIP_OK, mtime=0)),
         Error((r"10000\.txt", r"line 1\b", r"gzip-compressed", r"10000\.txt\.gz"))),
    Case("taste_song_data_missing_column", "taste_profile",
         taste(meta=lines(",track_id,song_id,artist_name,title,duration,danceability,energy,key,loudness,mode,tempo,"
                          "time_signature", f"0,{TR1},{SO1},Art,One,200.5,0,0,1,-5,1,120,4"), meta_name="song_data.csv"),
         Error((r"song_data\.csv", r"line 1\b", r"missing column\(s\) year", r"extra columns allowed"))),
    Case("taste_missing_metadata", "taste_profile", {TRIP: TRIP_OK},
         Error((r"'track_metadata\.db' or 'unique_tracks\.txt'", r"not found", r"Found: \['10000\.txt'\]"))),
    Case("taste_sqlite_not_a_database", "taste_profile", taste(meta=b"not sqlite\n" * 20, meta_name="track_metadata.db"),
         Error((r"track_metadata\.db", r"expected an SQLite database with table songs", r"file is not a database"))),
    Case("taste_sqlite_without_songs_table", "taste_profile", taste(meta=_sqlite_without_songs, meta_name="track_metadata.db"),
         Error((r"track_metadata\.db", r"expected an SQLite database with table songs", r"no such table: songs"))),
    # ---- Last.fm 1K events
    Case("lastfm1k_header_line", "lastfm_1k",
         {EV: lines("userid\ttimestamp\tartid\tartname\ttraid\ttraname", ev(), ev(user="user_000002"))},
         Quarantined({EV: 2}, {EV: {"unexpected_header": 1}}), check=expect_qlines(EV, {1: "unexpected_header"})),
    Case("lastfm1k_id_and_name_variants_collide", "lastfm_1k",
         {EV: lines(ev(traid=MB), ev(ts="2009-05-04T23:09:57Z", traid=MB.upper()), ev(ts="2009-05-04T23:10:57Z", traid=f" {MB} "),
                    ev(traid="", art="Deep Dish", track="Track  B"), ev(ts="2009-05-04T23:11:57Z", traid="", art=" deep DISH ", track="track b"))},
         Parsed({EV: 5}), check=all_of(output(items=2, items_with_plays=2),
                                        lambda out, rep: [r[1] for r in plays(out)] == [MB] * 3 + [name_key("Deep Dish", "Track B")] * 2)),
    Case("lastfm1k_bad_timestamps", "lastfm_1k",
         {EV: lines(ev(), ev(ts="2009-05-04 23:08:57"), ev(ts="2009-13-04T23:08:57Z"), ev(ts=""), ev(ts="1241478537"),
                    ev(ts="2009-05-04T23:08:57+02:00"))},
         Quarantined({EV: 1}, {EV: {"invalid_timestamp": 4, "missing_timestamp": 1}})),
    Case("lastfm1k_quotes_in_names_are_data", "lastfm_1k",
         {EV: lines(ev(traid="", art='"Weird Al" Yankovic', track='Don\'t "Stop'), ev(traid="", art="a,b", track='"'))},
         Parsed({EV: 2}), check=lambda out, rep: sorted(items(out)["artist"]) == ['"Weird Al" Yankovic', "a,b"]),
    Case("lastfm1k_latin1_line", "lastfm_1k", {EV: lines(ev()) + ev(traid="", art="Beyonc\xe9").encode("latin-1") + b"\n"},
         Parsed({EV: 2}), check=all_of(reader(EV, encoding_fallback_lines=1),
                                       item_field(name_key("Beyoncé", "Track A"), "artist", "Beyoncé"))),
    Case("lastfm1k_five_fields_everywhere", "lastfm_1k", {EV: lines(*(ev()[: ev().rfind("\t")] for _ in range(3)))},
         Error((re.escape(EV), r"line 1\b", r"expected 6 tab-separated fields", r"found 5 field\(s\)")), stage=True),
    Case("lastfm1k_empty_file", "lastfm_1k", {EV: b""}, Parsed({EV: 0}), check=output(items=0, plays=0)),
    # ---- Last.fm 360K
    Case("lastfm360k_name_and_mbid_variants", "lastfm_360k",
         {P360: lines(f"{U1}\t\tDie Ärzte\t5", f"{U1}\t\t die  ÄRZTE \t5", f"{U2}\t{MB2}\tbetty\t3",
                      f"{U2}\t{MB2.upper()}\tbetty\t3")},
         Parsed({P360: 4}), check=all_of(output(items=2),
                                         lambda out, rep: [r[1] for r in plays(out)] == [name_key("Die Ärzte")] * 2 + [MB2] * 2),
         note="rows equal after id normalisation but differing in raw spelling are not duplicate_row (dedup uses the raw fields)"),
    Case("lastfm360k_comma_separated", "lastfm_360k", {P360: lines(f"{U1},{MB2},betty,3", f"{U2},{MB2},betty,4")},
         Error((re.escape(P360), r"line 1\b", r"expected 4 tab-separated fields", r"looks comma-separated"))),
    Case("lastfm360k_bad_plays_and_users", "lastfm_360k",
         {P360: lines(*(f"{U1}\t{MB2}\tbetty\t{c}" for c in ("", "abc", "-5", "2.5", "1e3", "7.0")),
                      f"not-a-sha\t{MB2}\tbetty\t1", f"{U2}\tnot-a-uuid\tbetty\t1", f"{U2}\t\t\t1")},
         Quarantined({P360: 1}, {P360: {"missing_playcount": 1, "playcount_not_integer": 3, "playcount_out_of_range": 1,
                                        "malformed_user_id": 1, "malformed_item_id": 1, "missing_item_id": 1}}),
         check=expect_plays([U1, MB2, 7])),
    Case("lastfm360k_crlf_quotes_and_duplicates", "lastfm_360k",
         {P360: lines(f'{U1}\t\t"the" band\t2', f'{U1}\t\t"the" band\t2', f"{U1}\t\tsolo\t1", sep="\r\n")},
         Quarantined({P360: 2}, {P360: {"duplicate_row": 1}}), check=item_field(name_key('"the" band'), "name", '"the" band')),
    # ---- HetRec 2011 Last.fm 2K (zip)
    Case("hetrec_clean_baseline_members_in_subfolder", "hetrec_lastfm_2k",
         {ZIP: zip_bytes({**{f"hetrec/{k}": v for k, v in HZ.items()}, "__MACOSX/hetrec/user_artists.dat": b"junk"})},
         Parsed(HETREC_KEPT), check=item_field("51", "tags", "pop")),
    Case("hetrec_missing_member", "hetrec_lastfm_2k", hetrec(tags__dat=None),
         Error((re.escape(ZIP), r"no member named 'tags\.dat'", r"expected exactly one"))),
    Case("hetrec_duplicate_member", "hetrec_lastfm_2k",
         {ZIP: zip_bytes({**HZ, "copy/user_artists.dat": HZ["user_artists.dat"]})},
         Error((re.escape(ZIP), r"2 members named 'user_artists\.dat'", r"expected exactly one"))),
    Case("hetrec_not_a_zip", "hetrec_lastfm_2k", {ZIP: b"userID\tartistID\tweight\n2\t51\t13\n"},
         Error((re.escape(ZIP), r"not a valid zip archive")), stage=True),
    Case("hetrec_truncated_zip", "hetrec_lastfm_2k", {ZIP: zip_bytes(HZ)[:200]},
         Error((re.escape(ZIP), r"not a valid zip archive"))),
    Case("hetrec_member_fails_crc", "hetrec_lastfm_2k", {ZIP: _corrupt_member_zip},
         Error((re.escape(ZIP), r"user_artists\.dat", r"CRC", r"corrupt")), stage=True),
    Case("hetrec_member_broken_deflate_stream", "hetrec_lastfm_2k", {ZIP: _broken_deflate_member_zip},
         Error((re.escape(ZIP), r"user_artists\.dat", r"corrupt", r"error: Error -3 while decompressing"))),
    Case("hetrec_user_artists_space_separated", "hetrec_lastfm_2k",
         hetrec(user_artists__dat=b"userID artistID weight\r\n2 51 13\r\n"),
         Error((r"hetrec2011-lastfm-2k\.zip:user_artists\.dat", r"line 1\b",
                r"expected a tab-separated header with columns userid,artistid,weight"))),
    Case("hetrec_artists_conflicting_ids", "hetrec_lastfm_2k",
         hetrec(artists__dat=b"id\tname\turl\tpictureURL\n51\tDuran Duran\tu\tp\n52\tMorcheeba\tu\tp\n51\tDURAN\tu\tp\n"
                             b"x\tBad\tu\tp\n"),
         Quarantined(HETREC_KEPT, {AR: {"duplicate_item_conflict": 1, "malformed_item_id": 1}}),
         check=item_field("51", "name", "Duran Duran")),
    Case("hetrec_tags_utf8_bytes_in_latin1_file", "hetrec_lastfm_2k",
         hetrec(tags__dat="tagID\ttagValue\r\n1\tmetal\r\n2\tmúsica\r\n".encode("utf-8")),
         Parsed(HETREC_KEPT), check=item_field("51", "tags", "mãºsica"),
         note="tags.dat is documented Latin-1: UTF-8 bytes are decoded as Latin-1 (mojibake), never dropped"),
    Case("hetrec_bad_ids_and_weights", "hetrec_lastfm_2k",
         hetrec(user_artists__dat=b"userID\tartistID\tweight\r\n2\t51\t13\r\nx\t51\t1\r\n2\t51\t-1\r\n2\t52\tabc\r\n2\t\t1\r\n",
                tags__dat=b"tagID\ttagValue\r\n1\tmetal\r\n\tfoo\r\n2\tpop\r\n",
                user_taggedartists__dat=b"userID\tartistID\ttagID\tday\tmonth\tyear\r\n2\t51\t2\t1\t4\t2009\r\n"
                                        b"2\tx\t1\t1\t4\t2009\r\n"),
         Quarantined({UA: 1, AR: 2, TG: 2, TA: 1},
                     {UA: {"malformed_user_id": 1, "playcount_out_of_range": 1, "playcount_not_integer": 1,
                           "missing_item_id": 1}, TG: {"missing_tag_id": 1}, TA: {"malformed_id": 1}})),
    Case("hetrec_user_artists_header_missing", "hetrec_lastfm_2k",
         hetrec(user_artists__dat=b"2\t51\t13\r\n2\t52\t10\r\n3\t51\t1\r\n"),
         Parsed(HETREC_KEPT), check=reader(UA, header="missing")),
    # ---- round 2: numbers, text bytes, headers, dates, HetRec tags
    Case("kaggle_info_numbers_overflow_inf_and_int64", "kaggle",
         kaggle(info=lines(INFO_HEADER, info_row("TRA"), info_row("TRB"), info_row("TRC"),
                           info_with("TRD", year="1e30"), info_with("TRE", duration_ms="1e400"),
                           info_with("TRF", tempo="1e999"), info_with("TRG", tempo="inf"),
                           info_with("TRH", loudness="-1e999"), info_with("TRI", year="9.3e18"),
                           info_with("TRJ", duration_ms="-9.3e18"), info_with("TRK", tempo="Infinity"),
                           info_with("TRL", energy="1e308"), info_with("TRM", duration_ms="9.2e18"),
                           info_with("TRN", year="2004.0", key="NaN"), info_with("TRO", year="0000000000000000000002004"))),
         Quarantined({INFO: 7, HIST: 3}, {INFO: {"invalid_numeric_field": 8}}),
         check=all_of(item_field("TRL", "energy", 1e308), item_field("TRM", "duration_ms", 9_200_000_000_000_000_000),
                      item_field("TRN", "year", 2004), item_field("TRO", "year", 2004),
                      lambda out, rep: pd.isna(items(out).loc["TRN", "key"]),
                      expect_qlines(INFO, {i: "invalid_numeric_field" for i in range(5, 13)})),
         note="every numeric field is a finite value of its Arrow type or the row is quarantined: inf written out "
              "and an overflow (1e999) alike, and year/duration_ms beyond int64"),
    Case("kaggle_playcount_leading_zeros_do_not_count", "kaggle",
         kaggle(hist=lines(HIST_HEADER, "TRA,u1," + "0" * 30 + "3", "TRA,u2," + "0" * 20 + "1000.0", "TRA,u3,-" + "0" * 20 + "1",
                           "TRA,u4," + "0" * 25, "TRA,u5,00" + "9" * 19, "TRA,u6,0" + "1" * 18)),
         Quarantined({INFO: 3, HIST: 2}, {HIST: {"playcount_out_of_range": 4}}), kwargs={"max_playcount": 1000},
         check=expect_plays(["u1", "TRA", 3], ["u2", "TRA", 1000])),
    Case("taste_song_data_numbers_overflow", "taste_profile",
         taste(meta=lines(SONG_DATA_HEADER, song_data_row(0, TR1, SO1), song_data_row(1, TR2, SO2, year="1e30"),
                          song_data_row(2, "TRAAAAAAAAAAAAAAA3", SO3, duration="1e300"),
                          song_data_row(3, "TRAAAAAAAAAAAAAAA4", "SOAAAAAAAAAAAAAAA4", tempo="1e999")),
               meta_name=SONG_DATA),
         Quarantined({TRIP: 3, SONG_DATA: 1}, {SONG_DATA: {"invalid_numeric_field": 3}}),
         check=item_field(TR1, "duration_ms", 200500), note="duration seconds x 1000 must still fit int64"),
    Case("taste_sqlite_numbers_and_control_characters", "taste_profile",
         taste(meta=_sqlite_songs([(TR1, "One", SO1, "Art", 200.5, 2004), (TR2, "Two", SO2, "Art", 1e300, 2004),
                                   ("TRAAAAAAAAAAAAAAA3", "Three", SO3, "Art", float("inf"), 2004),
                                   ("TRAAAAAAAAAAAAAAA4", "I\x19m Four", "SOAAAAAAAAAAAAAAA4", "Art\x14", 1.0, 2004),
                                   ("TRAAAAAAAAAAAAAAA5\x1f", "Five", "SOAAAAAAAAAAAAAAA5", "Art", 1.0, 2004),
                                   ("TRAAAAAAAAAAAAAAA6", " Six\x1f", "SOAAAAAAAAAAAAAAA6", "Art", 1.0, 2004)]),
               meta_name="track_metadata.db"),
         Quarantined({TRIP: 3, "track_metadata.db": 3},
                     {"track_metadata.db": {"invalid_numeric_field": 2, "control_character": 1}}),
         check=all_of(item_field(TR1, "year", 2004), item_field("TRAAAAAAAAAAAAAAA4", "name", "I\ufffdm Four"),
                      item_field("TRAAAAAAAAAAAAAAA4", "artist", "Art\ufffd"),
                      item_field("TRAAAAAAAAAAAAAAA6", "name", "Six\ufffd"),
                      reader("track_metadata.db", control_characters_replaced=3, rows_with_control_characters_replaced=2),
                      expect_qlines("track_metadata.db", {2: "invalid_numeric_field", 3: "invalid_numeric_field",
                                                          5: "control_character"})),
         note="the SQLite songs table follows the rule of the text files (SONGS_DB_SPEC): a control character "
              "in a title or artist is replaced by U+FFFD, one in a track id (even a trailing U+001F, whitespace "
              "to the stripping) quarantines the row"),
    Case("hetrec_ids_and_weights_with_leading_zeros", "hetrec_lastfm_2k",
         hetrec(user_artists__dat=b"userID\tartistID\tweight\r\n2\t51\t13\r\n0002\t051\t013\r\n2\t52\t10\r\n"
                                  b"0000000000000000000003\t51\t00000000000000000000001\r\n4\t" + b"1" * 19 + b"\t1\r\n"),
         Quarantined(HETREC_KEPT, {UA: {"duplicate_row": 1, "malformed_item_id": 1}}),
         check=expect_plays(["2", "51", 13], ["2", "52", 10], ["3", "51", 1]),
         note="numeric ids are canonical integers: 0002/051 is user 2, artist 51 (so line 3 repeats line 2)"),
    Case("kaggle_history_nul_byte_past_64k", "kaggle", kaggle(hist=_nul_past_64k),
         Error((r"User Listening History\.csv", r"line 8002\b", r"NUL byte", r"expected a text file")), stage=True,
         note="a NUL byte anywhere refuses the file, wherever it stands (not only in the first 64 KiB)"),
    Case("hetrec_tags_nul_byte_in_latin1_file", "hetrec_lastfm_2k",
         hetrec(tags__dat=b"tagID\ttagValue\r\n1\tmetal\r\n2\tp\x00p\r\n"),
         Error((r"hetrec2011-lastfm-2k\.zip:tags\.dat", r"line 3\b", r"NUL byte", r"expected a text file"))),
    Case("kaggle_info_crlf_on_read_block_boundary_in_quoted_field", "kaggle", kaggle(info=_crlf_on_block_boundary),
         Parsed(K), check=all_of(item_field("TRB", "name", "two\nlines"), item_field("TRC", "genre", "Rock"),
                                 lambda out, rep: len(items(out).loc["TRA", "artist"]) > BLOCK_BYTES - 1000),
         note="the CR of the CRLF that ends the first 8 MiB read block is inside a quoted name: removed like any CRLF"),
    Case("control_characters_in_fields_kaggle", "kaggle",
         kaggle(info=lines(INFO_HEADER, info_row("TRA"), info_row("TRB"), info_row("TRC"),
                           info_row("TRD", name="So\x01ng", artist="\x02Art"), info_row("TRE", artist="Art\x7f"),
                           info_row("TRF", name="Song\x1f"), info_row("TRG", tags='"rock,\x0bpop"'),
                           info_row("TRH", name="\tTabbed\t"), info_row("TRI\x1f"), info_with("TRJ", tempo="120\x01"),
                           info_with("TRK", year="20\x1b04")),
                hist=lines(HIST_HEADER, "TRA,u1,3", "TRB,u\x1b2,1", "TRC,u1,2\x08", "TRC,u3,2\r", "TRB,u4\x0c,1")),
         Quarantined({INFO: 8, HIST: 3}, {INFO: {"control_character": 3}, HIST: {"control_character": 2}}),
         check=all_of(item_field("TRD", "name", "So\ufffdng"), item_field("TRD", "artist", "\ufffdArt"),
                      item_field("TRE", "artist", "Art\ufffd"), item_field("TRF", "name", "Song\ufffd"),
                      item_field("TRG", "tags", "rock, \ufffdpop"), item_field("TRH", "name", "Tabbed"),
                      reader(INFO, control_characters_replaced=5, rows_with_control_characters_replaced=4),
                      reader(HIST, control_characters_replaced=0, rows_with_control_characters_replaced=0),
                      expect_qlines(INFO, {10: "control_character", 11: "control_character", 12: "control_character"}),
                      expect_qlines(HIST, {3: "control_character", 4: "control_character"})),
         note="C0 controls (and DEL) in an id or a number quarantine the row, also at a field's end where stripping "
              "would drop them; in a name, artist or tag each is replaced by U+FFFD (counted in the reader stats) "
              "and the row kept; TAB, VT, FF and CR at a field's ends are whitespace"),
    Case("control_characters_in_lastfm1k_names_keep_items_distinct", "lastfm_1k",
         {EV: lines(ev(traid="", art="y\x1fz", track="T"), ev(traid="", art="y", track="z\x1fT"),
                    ev(artid="x\x1fy", art="z", traid="", track="T"), ev(ts="2009-05-04T23:08:57Z\x1f"),
                    ev(traid="", art="A", track="B\rC"), ev())},
         Quarantined({EV: 4}, {EV: {"control_character": 2}}),
         check=all_of(output(items=4), reader(EV, control_characters_replaced=3, rows_with_control_characters_replaced=3),
                      expect_qlines(EV, {3: "control_character", 4: "control_character"}),
                      lambda out, rep: [r[1] for r in plays(out)] == [
                          name_key("y\ufffdz", "T"), name_key("y", "z\ufffdT"), name_key("A", "B\ufffdC"), MB],
                      item_field(name_key("y", "z\ufffdT"), "name", "z\ufffdT"),
                      item_field(name_key("y\ufffdz", "T"), "artist", "y\ufffdz")),
         note="U+001F inside a name is replaced by U+FFFD, so the two items (y|zT and yz|T) stay two items; a lone CR "
              "inside a name is replaced too; in an id (artist MBID) or the timestamp it quarantines the row"),
    Case("control_characters_other_sources", "lastfm_360k",
         {P360: lines(f"{U1}\t\tDie \x02rzte\t5", f"{U1}\t\tbetty\t3", f"{U2}\t\tbet\x1fty\t3",
                      f"{U2}\t{MB2}\x1f\tbetty\t3", f"{U2}\t\tbetty\t3\x01")},
         Quarantined({P360: 3}, {P360: {"control_character": 2}}),
         check=all_of(lambda out, rep: [r[1] for r in plays(out)] == [name_key("Die \ufffdrzte"), name_key("betty"),
                                                                        name_key("bet\ufffdty")],
                      reader(P360, control_characters_replaced=2, rows_with_control_characters_replaced=2))),
    Case("control_characters_hetrec", "hetrec_lastfm_2k",
         hetrec(artists__dat=b"id\tname\turl\tpictureURL\n51\tDuran Duran\tu\tp\n52\tMorcheeba\tu\tp\n53\tMor\x0bcheeba\tu\tp\n"
                             b"54\tOK\tu\x01rl\tp\n55\x1f\tFive\tu\tp\n",
                tags__dat=b"tagID\ttagValue\r\n1\tmetal\r\n2\tpop\r\n3\tro\x1fck\r\n4\x7f\tjazz\r\n"),
         Quarantined({UA: 3, AR: 4, TG: 3, TA: 1}, {AR: {"control_character": 1}, TG: {"control_character": 1}}),
         check=all_of(lambda out, rep: sorted(items(out).index) == ["51", "52", "53", "54"],
                      item_field("53", "name", "Mor\ufffdcheeba"), item_field("54", "name", "OK"),
                      reader(AR, control_characters_replaced=1, rows_with_control_characters_replaced=1),
                      reader(TG, control_characters_replaced=1, rows_with_control_characters_replaced=1),
                      expect_qlines(AR, {6: "control_character"}), expect_qlines(TG, {5: "control_character"})),
         note="an ignored extra column (url) with a control character does not quarantine the row"),
    Case("taste_unique_tracks_msd_control_characters", "taste_profile",
         taste(meta=lines(f"{TR1}<SEP>{SO1}<SEP>Art<SEP>One", f"{TR2}<SEP>{SO2}<SEP>The White Stripes<SEP>I\x19m Slowly",
                          f"TRAAAAAAAAAAAAAAA3<SEP>{SO3}\x14<SEP>Art<SEP>Three")),
         Quarantined({TRIP: 3, UNIQ: 2}, {UNIQ: {"control_character": 1}}),
         check=all_of(join(plays_unmatched=0), item_field(TR2, "name", "I\ufffdm Slowly"),
                      reader(UNIQ, control_characters_replaced=1, rows_with_control_characters_replaced=1)),
         note="the real MSD subset has 21 such titles (U+2019 cut to U+0019): kept, with U+FFFD"),
    Case("kaggle_history_alias_before_canonical_refused", "kaggle",
         kaggle(hist=lines("item_id,track_id,user_id,playcount", "TRX,TRA,u1,3")),
         Error((r"User Listening History\.csv", r"line 1\b", r"track_id is given both by its own column and by "
                r"'item_id' \(column 1, an alias of track_id\)", r"expected one column per field")), stage=True),
    Case("kaggle_history_two_aliases_refused", "kaggle", kaggle(hist=lines("trackid,song_id,user_id,playcount", "TRA,TRA,u1,3")),
         Error((r"User Listening History\.csv", r"line 1\b", r"track_id is given by 2 columns",
                r"'trackid' \(column 1\), 'song_id' \(column 2\)"))),
    Case("kaggle_history_canonical_twice_refused", "kaggle", kaggle(hist=lines(HIST_HEADER + ",USER_ID", "TRA,u1,3,u2")),
         Error((r"User Listening History\.csv", r"line 1\b", r"user_id is given by 2 columns"))),
    Case("kaggle_info_alias_before_canonical_is_an_extra_column", "kaggle",
         kaggle(info=lines("item_id," + INFO_HEADER, "TRX," + info_row("TRA"), "TRY," + info_row("TRB"), "TRZ," + info_row("TRC"))),
         Parsed(K), check=all_of(lambda out, rep: sorted(items(out).index) == ["TRA", "TRB", "TRC"],
                                 join(plays_unmatched=0),
                                 _warned(r"Music Info\.csv: line 1: column 1 'item_id' \(an alias of track_id\) is "
                                         r"ignored as an extra column", r"also has the column track_id"),
                                 lambda out, rep: len(rep["files"][INFO]["reader"]["header_notes"]) == 1),
         note="the canonical column wins wherever the alias stands"),
    Case("kaggle_history_columns_swapped_under_header_warns", "kaggle",
         kaggle(hist=lines(HIST_HEADER, "u1,TRA,3", "u2,TRB,1", "u1,TRC,2")),
         Parsed({INFO: 3, HIST: 3}),
         check=all_of(join(plays_matched=0, plays_unmatched=3),
                      _warned(r"none of the 3 valid plays matched the item metadata",
                              r"User Listening History\.csv: track_id \(e\.g\. 'u1'\)",
                              r"Music Info\.csv: track_id \(e\.g\. 'TRA'\)", r"swapped"))),
    Case("hetrec_user_artists_header_swapped_warns", "hetrec_lastfm_2k",
         hetrec(user_artists__dat=b"artistID\tuserID\tweight\r\n2\t51\t13\r\n2\t52\t10\r\n3\t51\t1\r\n"),
         Parsed(HETREC_KEPT),
         check=_warned(r"none of the 3 valid plays", r"user_artists\.dat: artistID \(e\.g\. '2'\)",
                       r"artists\.dat: id \(e\.g\. '51'\)")),
    Case("taste_no_play_matches_warns", "taste_profile", taste(trip=lines(f"{U1}\t{SO3}\t2")),
         Parsed({TRIP: 1, UNIQ: 2}),
         check=_warned(r"none of the 1 valid plays", r"10000\.txt: song \(SO id\) \(e\.g\. 'SOAAAAAAAAAAAAAAA3'\)",
                       r"unique_tracks\.txt: song_id")),
    Case("some_plays_matching_does_not_warn", "kaggle", kaggle(hist=lines(HIST_HEADER, "TRA,u1,3", "TRZ,u2,1")),
         Parsed({INFO: 3, HIST: 2}), check=all_of(join(plays_unmatched=1), _no_warning)),
    Case("lastfm1k_impossible_dates_and_range", "lastfm_1k",
         {EV: lines(*(ev(ts=t) for t in (
             "2009-05-04T23:08:57Z", "2009-02-30T12:00:00Z", "2009-04-31T12:00:00Z", "2008-12-31T23:59:60Z",
             "2009-05-04T24:00:00Z", "2009-02-29T12:00:00Z", "2009-5-4T1:02:03Z", "2009-05-04T23:08:57.5Z",
             "2008-02-29T12:00:00Z", "1970-01-01T00:00:00Z", "2099-12-31T23:59:59Z",
             "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2100-01-01T00:00:00Z")))},
         Quarantined({EV: 4}, {EV: {"invalid_timestamp": 7, "timestamp_out_of_range": 3}}),
         check=lambda out, rep: [str(t) for t in pd.read_parquet(out / "plays")["timestamp"]] == [
             "2009-05-04 23:08:57+00:00", "2008-02-29 12:00:00+00:00", "1970-01-01 00:00:00+00:00",
             "2099-12-31 23:59:59+00:00"],
         note="real dates only (never normalised to another day); valid range [1970-01-01, 2100-01-01) UTC"),
    Case("hetrec_tag_assignment_dates", "hetrec_lastfm_2k",
         hetrec(user_taggedartists__dat=b"userID\tartistID\ttagID\tday\tmonth\tyear\r\n2\t51\t2\t1\t4\t2009\r\n"
                b"2\t51\t1\t30\t2\t2009\r\n2\t51\t1\t31\t4\t2009\r\n2\t51\t1\t1\t13\t2009\r\n2\t51\t1\t0\t4\t2009\r\n"
                b"2\t51\t1\tx\t4\t2009\r\n2\t51\t1\t1\t4\t1956\r\n2\t52\t1\t01\t04\t2009\r\n3\t51\t1\t29\t2\t2008\r\n"
                b"3\t52\t2\t1\t1\t2100\r\n"),
         Quarantined({UA: 3, AR: 2, TG: 2, TA: 3}, {TA: {"invalid_date": 5, "timestamp_out_of_range": 2}}),
         check=all_of(item_field("51", "tags", "metal, pop"), item_field("52", "tags", "metal"))),
    Case("hetrec_tags_duplicate_ids", "hetrec_lastfm_2k",
         hetrec(tags__dat=b"tagID\ttagValue\r\n1\tmetal\r\n2\tpop\r\n2\tPop\r\n1\trock\r\n01\tmetal\r\n"),
         Quarantined(HETREC_KEPT, {TG: {"duplicate_row": 2, "duplicate_tag_conflict": 1}}),
         check=all_of(item_field("51", "tags", "pop"), expect_qlines(TG, {4: "duplicate_row", 5: "duplicate_tag_conflict",
                                                                         6: "duplicate_row"})),
         note="a conflicting tag id is quarantined (first kept), never dropped silently"),
    # ---- round 2: paths, archives, compressed inputs, limits
    # compressed inputs as downloaded: read streaming by name, next to or instead of the plain file
    Case("kaggle_gz_and_bz2_inputs_read", "kaggle",
         {INFO + ".gz": lambda: gzip.compress(INFO_OK, mtime=0), HIST + ".bz2": lambda: bz2_bytes(HIST_OK)},
         Parsed({INFO + ".gz": 3, HIST + ".bz2": 3}),
         check=expect_plays(["u1", "TRA", 3], ["u2", "TRB", 1], ["u1", "TRC", 2])),
    Case("kaggle_xz_history_in_subfolder", "synthetic", {INFO: INFO_OK, f"dl/{HIST}.xz": lambda: xz_bytes(HIST_OK)},
         Parsed({INFO: 3, HIST + ".xz": 3})),
    Case("kaggle_zip_member_by_name_in_folder", "kaggle",
         {INFO + ".zip": lambda: zip_bytes({f"archive/{INFO}": INFO_OK, "__MACOSX/archive/._x": b"junk", "README": b"r"}),
          HIST: HIST_OK},
         Parsed({INFO + ".zip": 3, HIST: 3})),
    Case("kaggle_zip_single_member_other_name", "kaggle",
         {INFO: INFO_OK, HIST + ".zip": lambda: zip_bytes({"history.csv": HIST_OK})},
         Parsed({INFO: 3, HIST + ".zip": 3})),
    Case("kaggle_zip_several_candidate_members", "kaggle",
         {INFO: INFO_OK, HIST + ".zip": lambda: zip_bytes({"a.csv": HIST_OK, "b.csv": HIST_OK})},
         Error((re.escape(HIST) + r"\.zip", r"2 files in the archive and none named 'User Listening History\.csv'",
                r"Found: \['a\.csv', 'b\.csv'\]")), stage=True),
    Case("kaggle_plain_and_gz_copies_ambiguous", "kaggle",
         {**kaggle(), HIST + ".gz": lambda: gzip.compress(HIST_OK, mtime=0)},
         Error((r"'User Listening History\.csv' found 2 times", r"History\.csv'", r"History\.csv\.gz'",
                r"expected one"))),
    Case("taste_gz_triplets_and_song_data", "taste_profile",
         {TRIP + ".gz": lambda: gzip.compress(TRIP_OK, mtime=0),
          "song_data.csv.bz2": lambda: bz2_bytes(lines(
              ",track_id,song_id,artist_name,title,year,duration,danceability,energy,key,loudness,mode,tempo,"
              "time_signature", f"0,{TR1},{SO1},Art,One,2001,200.5,0,0,1,-5,1,120,4"))},
         Parsed({TRIP + ".gz": 3, "song_data.csv.bz2": 1}), check=item_field(TR1, "year", 2001),
         note="song_data.csv.bz2 is read as song_data.csv (by its published name)"),
    Case("taste_sqlite_gzipped_only", "taste_profile",
         {TRIP: TRIP_OK, "track_metadata.db.gz": lambda: gzip.compress(_sqlite_without_songs(), mtime=0)},
         Error((r"'track_metadata\.db' or 'unique_tracks\.txt'", r"not found", r"track_metadata\.db\.gz: archives and "
                r"SQLite databases are not read compressed; decompress it first"))),
    Case("lastfm1k_gzipped_excerpt", "lastfm_1k",
         {EV.replace(".tsv", ".excerpt5000.tsv.gz"): lambda: gzip.compress(lines(ev(), ev(user="user_000002")), mtime=0)},
         Parsed({EV.replace(".tsv", ".excerpt5000.tsv.gz"): 2})),
    Case("kaggle_gz_not_gzip", "kaggle", {INFO: INFO_OK, HIST + ".gz": HIST_OK},
         Error((re.escape(HIST) + r"\.gz", r"gzip data is corrupt or cut short", r"Not a gzipped file")), stage=True),
    Case("kaggle_gz_cut_short", "kaggle", {INFO: INFO_OK, HIST + ".gz": lambda: gzip.compress(HIST_OK, mtime=0)[:-12]},
         Error((re.escape(HIST) + r"\.gz", r"corrupt or cut short", r"EOFError"))),
    Case("kaggle_bz2_corrupt", "kaggle", {INFO: INFO_OK, HIST + ".bz2": lambda: bz2_bytes(HIST_OK)[:20] + b"\0" * 40},
         Error((re.escape(HIST) + r"\.bz2", r"bzip2 data is corrupt or cut short"))),
    # decompression bombs: stopped while streaming (64 MiB of newlines would be 64M quarantined empty lines)
    Case("kaggle_zip_bomb_65KB", "kaggle", {INFO: INFO_OK, HIST + ".zip": lambda: packed_zip({HIST: _bomb(lines(HIST_HEADER))})},
         Error((re.escape(HIST) + r"\.zip", r"member 'User Listening History\.csv'",
                r"ratio above data\.max_compression_ratio = 100", r"decompression bomb")), stage=True),
    Case("kaggle_gzip_bomb", "kaggle", {INFO: INFO_OK, HIST + ".gz": lambda: gzip.compress(_bomb(), mtime=0)},
         Error((re.escape(HIST) + r"\.gz", r"data\.max_compression_ratio"))),
    Case("taste_bz2_bomb_81_bytes", "taste_profile", {TRIP + ".bz2": lambda: bz2_bytes(_bomb()), UNIQ: UNIQ_OK},
         Error((r"10000\.txt\.bz2", r"data\.max_compression_ratio"))),
    Case("hetrec_bomb_member_header_claims_1KB", "hetrec_lastfm_2k",
         {ZIP: lambda: _zip_patch(packed_zip({**HZ, "user_artists.dat": _bomb(HZ["user_artists.dat"])}),
                                                  "user_artists.dat", file_size=1000)},
         Error((re.escape(ZIP), r"user_artists\.dat", r"corrupt", r"CRC")),
         note="zipfile stops at the size the header claims; the data then fails its CRC-32"),
    Case("hetrec_bomb_member_ratio_from_header", "hetrec_lastfm_2k",
         {ZIP: lambda: packed_zip({**HZ, "user_artists.dat": _bomb(HZ["user_artists.dat"])})},
         Error((re.escape(ZIP), r"member 'user_artists\.dat'", r"data\.max_compression_ratio"))),
    Case("kaggle_gz_above_max_decompressed_bytes", "kaggle",
         {INFO: INFO_OK, HIST + ".gz": lambda: gzip.compress(_many_rows(200_000), mtime=0)},
         Error((re.escape(HIST) + r"\.gz", r"more than data\.max_decompressed_bytes = 1048576 bytes",
                r"raise data\.max_decompressed_bytes")),
         kwargs={"policy": InputPolicy(max_decompressed_bytes=1 << 20)}),
    Case("hetrec_member_above_max_decompressed_bytes", "hetrec_lastfm_2k", hetrec(),
         Error((re.escape(ZIP), r"member 'user_artists\.dat'", r"data\.max_decompressed_bytes = 40 bytes")),
         kwargs={"policy": InputPolicy(max_decompressed_bytes=40)}, note="refused from the zip header, before reading"),
    # zip members that cannot be read: named, with what to do
    Case("hetrec_encrypted_member", "hetrec_lastfm_2k", {ZIP: hetrec_patched("user_artists.dat", flag=1)},
         Error((re.escape(ZIP), r"member 'user_artists\.dat'", r"encrypted", r"Decrypt it first")), stage=True),
    Case("hetrec_aes_encrypted_member", "hetrec_lastfm_2k", {ZIP: hetrec_patched("artists.dat", method=99)},
         Error((re.escape(ZIP), r"member 'artists\.dat'", r"encrypted", r"Decrypt it first"))),
    Case("hetrec_deflate64_member", "hetrec_lastfm_2k", {ZIP: hetrec_patched("user_artists.dat", method=9)},
         Error((re.escape(ZIP), r"member 'user_artists\.dat'", r"Deflate64 \(zip method 9", r"Windows Explorer",
                r"Re-compress it with standard Deflate", r"zip -r")), stage=True),
    Case("hetrec_ppmd_member", "hetrec_lastfm_2k", {ZIP: hetrec_patched("tags.dat", method=98)},
         Error((re.escape(ZIP), r"member 'tags\.dat'", r"PPMd \(zip method 98\)", r"standard Deflate"))),
    Case("hetrec_bzip2_members_read", "hetrec_lastfm_2k", {ZIP: lambda: packed_zip(HZ, zipfile.ZIP_BZIP2)},
         Parsed(HETREC_KEPT), check=item_field("51", "tags", "pop")),
    Case("hetrec_lzma_members_read", "hetrec_lastfm_2k", {ZIP: lambda: packed_zip(HZ, zipfile.ZIP_LZMA)},
         Parsed(HETREC_KEPT)),
    # line length: a line above data.max_line_bytes is quarantined, never held whole
    Case("kaggle_history_lines_above_max_line_bytes", "kaggle", kaggle(hist=_long_lines_hist),
         Quarantined({INFO: 3, HIST: 3}, {HIST: {"line_too_long": 3}}), kwargs={"policy": InputPolicy(max_line_bytes=1 << 20)},
         check=all_of(_long_lines_quarantined, expect_plays(["u1", "TRA", 3], ["u2", "TRC", 2], ["u3", "TRB", 1]))),
    Case("lastfm1k_short_limit_every_block_checked", "lastfm_1k",
         {EV: lines(ev(), ev(track="x" * 2000), ev(user="user_000002"))},
         Quarantined({EV: 2}, {EV: {"line_too_long": 1}}), kwargs={"policy": InputPolicy(max_line_bytes=1024)},
         check=expect_qlines(EV, {2: "line_too_long"})),
    # share of rows quarantined: above data.max_quarantined_share the clean stops
    Case("kaggle_history_mostly_bad_rows", "kaggle", kaggle(hist=lambda: _many_rows(1500, bad_every=1)),
         Error((re.escape(HIST), r"1500 of 1500 rows \(100\.0%\) were quarantined",
                r"above data\.max_quarantined_share = 0\.5", r"top reasons: playcount_not_integer 1500",
                r"raise data\.max_quarantined_share")), stage=True),
    Case("kaggle_info_mostly_bad_rows", "kaggle",
         kaggle(info=lambda: lines(INFO_HEADER, *(info_row(f"TR{i}", year="x") for i in range(40)), info_row("TRA"))),
         Error((re.escape(INFO), r"40 of 41 rows", r"invalid_numeric_field 40")),
         kwargs={"policy": InputPolicy(quarantine_share_min_rows=10)}),
    Case("kaggle_history_share_below_limit", "kaggle", kaggle(hist=lambda: _many_rows(1500, bad_every=3)),
         Quarantined({INFO: 3, HIST: 1000}, {HIST: {"playcount_not_integer": 500}}),
         note="a third of the rows bad: below the default share of 0.5, quarantined"),
    # ---- round 3 (#15): formats people actually have
    # the MSD tutorial table (10000.txt merged with the Turi song_data.csv), one file, as the notebooks write it
    Case("tutorial_table_as_published", "msd_tutorial", {TUT: lines("," + TUT_HEADER, *(f"{i},{r}" for i, r in
                                                                                   enumerate(TUT_ROWS)))},
         Parsed({TUT: 3}), check=all_of(item_field(SO1, "name", "The Cove"), item_field(SO2, "year", 1974),
                                        lambda out, rep: pd.isna(items(out).loc[SO1, "year"]), output(items=2, users=2)),
         note="pandas to_csv's leading unnamed index column is an ignored extra column; year 0 = unknown -> null"),
    Case("tutorial_table_play_count_aliases", "msd_tutorial",
         tut(*TUT_ROWS, header="user_id,song_id,play_count,title,release,artist_name,year"), Parsed({TUT: 3})),
    Case("tutorial_table_any_csv_name", "msd_tutorial", {"triplets_merged.csv.gz": lambda: gzip.compress(
        lines("artist_name,title,plays,song_id,user_id,year", f"Jack Johnson,The Cove,3,{SO1},{U1},0"), mtime=0)},
         Parsed({"triplets_merged.csv.gz": 1}), note="the folder's only CSV file, columns in any order, compressed"),
    Case("tutorial_table_two_csv_files", "msd_tutorial", {"a.csv": lines(TUT_HEADER), "b.csv": lines(TUT_HEADER)},
         Error((r"2 CSV files and none named song_df\.csv or msd_tutorial\.csv", r"'a\.csv', 'b\.csv'",
                r"Rename it to song_df\.csv"))),
    Case("tutorial_source_given_song_data_only", "msd_tutorial", {SONG_DATA: lines(TURI_HEADER, f"{SO1},One,A,Art,0")},
         Error((r"song_data\.csv: this is song_data\.csv", r"not the merged tutorial table",
                r"set data\.source: taste_profile"))),
    Case("tutorial_table_no_count_column", "msd_tutorial",
         tut(f"{U1},{SO1},1,The Cove,Thicker,Jack Johnson,0", header="user_id,song_id,listens,title,release,artist_name,year"),
         Error((r"song_df\.csv", r"line 1\b", r"missing column\(s\) listen_count",
                r"listen_count may also be named playcount, play_count, plays, count")), stage=True),
    Case("tutorial_table_bad_rows", "msd_tutorial",
         tut(*TUT_ROWS, f"{U1},{SO1},1,The Cove (Live),Thicker Than Water,Jack Johnson,2003",
             f"{U3},{SO3},1,Song,Album,Artist,nineteen", f"user7,{SO3},1,Song,Album,Artist,1999",
             f"{U3},SO-BAD,1,Song,Album,Artist,1999", f"{U3},{SO3},0,Song,Album,Artist,1999"),
         Quarantined({TUT: 3}, {TUT: {"duplicate_row": 1, "invalid_numeric_field": 1, "malformed_user_id": 1,
                                      "malformed_item_id": 1, "playcount_out_of_range": 1}}),
         check=item_field(SO1, "name", "The Cove"),
         note="a triplet repeated with other metadata (a merge without dropping the Turi duplicates) is the same "
              "play: duplicate_row, the first row's metadata kept"),
    # the Turi song_data.csv as Taste Profile metadata keyed by SO id
    Case("taste_turi_song_data", "taste_profile",
         taste(meta=lines(TURI_HEADER, f"{SO1},One,Album,Art,0", f"{SO2},\"Two, Live\",Album,Art2,1999",
                          f"{SO2},Two,Album,Art2,1999", f"{SO2},\"Two, Live\",Album,Art2,1999"), meta_name=SONG_DATA),
         Quarantined({TRIP: 3, SONG_DATA: 2}, {SONG_DATA: {"duplicate_item_conflict": 1, "duplicate_row": 1}}),
         check=all_of(item_field(SO2, "name", "Two, Live"), join(plays_matched=3, plays_unmatched=0,
                                                               metadata_layout="turi_song_data")),
         note="plays keep their SO ids (no TR ids in the file); a repeated song id keeps its first row"),
    Case("taste_song_data_unknown_layout", "taste_profile",
         taste(meta=lines("id,name,artist", "1,One,Art"), meta_name=SONG_DATA),
         Error((r"song_data\.csv: line 1\b", r"neither published song_data\.csv layout",
                r"song_id,title,artist_name,year"))),
    # a generic triplet table: every play-count alias, and the error names them
    Case("kaggle_history_listen_count_header", "kaggle", kaggle(hist=lines("track_id,user_id,listen_count",
                                                                          "TRA,u1,3", "TRB,u2,1")),
         Parsed({INFO: 3, HIST: 2})),
    Case("kaggle_history_unknown_count_header", "kaggle", kaggle(hist=lines("track_id,user_id,n_listens", "TRA,u1,3")),
         Error((r"User Listening History\.csv", r"missing column\(s\) playcount",
                r"playcount may also be named play_count, listen_count, plays, count"))),
    # Audioscrobbler 2005: artist_data.txt, artist_alias.txt and user_artist_data.txt quirks of the real dump
    Case("audioscrobbler_as_published", "audioscrobbler", ascrob(),
         Parsed({AS_ART: 3, AS_ALIAS: 1, AS_PLAYS: 3}),
         check=all_of(play_items(("1000002", "1", 55), ("1000002", "1", 33), ("1000019", "1000010", 238)),
                      aliases(rows_resolved=1, artists_resolved=1, rows_merged=1, pairs_merged=1)),
         note="the aliased row is kept under the good id (counted as kept); the transform sums the pair to 88"),
    Case("audioscrobbler_artist_data_quirks", "audioscrobbler",
         ascrob(art=lines("1\t  u2 ", "1000010 Aerosmith", "\tNobody", "abc\tLetters", "1000010\tAerosmith",
                          "1000010\tAero Smith", "1000011\t", "1000012\tA\tB")),
         Quarantined({AS_ART: 3, AS_ALIAS: 1, AS_PLAYS: 3},
                     {AS_ART: {"wrong_field_count": 2, "missing_item_id": 1, "malformed_item_id": 1,
                               "duplicate_item_conflict": 1}}),
         check=all_of(item_field("1", "name", "u2"), lambda out, rep: pd.isna(items(out).loc["1000011", "name"])),
         note="stray whitespace stripped; an id without a name kept with a null name"),
    Case("audioscrobbler_alias_quirks", "audioscrobbler",
         ascrob(plays=lines("1000002 7 1", "1000002 8 2", "1000002 5 4", "1000002 9 3", "1000002 3 1"),
                art=lines("1\tu2", "2\tX", "3\tY"),
                alias=lines("\t1", "7\t8", "8\t1", "7\t2", "7\t8", "5\t6", "6\t5", "9\t9", "x\t1", "4\t")),
         Quarantined({AS_ART: 3, AS_ALIAS: 2, AS_PLAYS: 5},
                     {AS_ALIAS: {"missing_item_id": 2, "malformed_item_id": 1, "duplicate_alias_conflict": 1,
                                 "duplicate_row": 1, "alias_cycle": 3}}),
         check=all_of(play_items(("1000002", "1", 1), ("1000002", "1", 2), ("1000002", "5", 4), ("1000002", "9", 3),
                                 ("1000002", "3", 1)),
                      aliases(rows_resolved=2, artists_resolved=2, rows_merged=1, pairs_merged=1),
                      lambda out, rep: rep["files"][AS_ALIAS]["aliases_chained"] == 1),
         note="7 -> 8 -> 1 resolved transitively to 1; 5 <-> 6 and 9 -> 9 never end: alias_cycle, left as they are"),
    Case("audioscrobbler_plays_quirks", "audioscrobbler",
         ascrob(plays=lines("1000002 1 55", "1000002  1 3", "u7 1 2", "1000002 1 0", "1000002 1 55", "1000002 x 1",
                            "1000002 1000010 2.0")),
         Quarantined({AS_ART: 3, AS_ALIAS: 1, AS_PLAYS: 2},
                     {AS_PLAYS: {"wrong_field_count": 1, "malformed_user_id": 1, "playcount_out_of_range": 1,
                                 "duplicate_row": 1, "malformed_item_id": 1}}),
         check=play_items(("1000002", "1", 55), ("1000002", "1000010", 2))),
    Case("audioscrobbler_plays_tab_separated", "audioscrobbler", ascrob(plays=lines("1000002\t1\t55", "1000019\t1\t3")),
         Error((r"user_artist_data\.txt: line 1\b", r"expected 3 space-separated fields", r"looks tab-separated"))),
    Case("audioscrobbler_without_alias_file", "audioscrobbler", ascrob(alias=None), Parsed({AS_ART: 3, AS_PLAYS: 3}),
         check=all_of(aliases(rows_resolved=0, rows_merged=0), join(alias_file_present=False))),
    Case("audioscrobbler_tar_read_in_place", "audioscrobbler", {AS_TAR: lambda: tar_gz(ascrob())},
         Parsed({f"{AS_TAR}:{AS_ART}": 3, f"{AS_TAR}:{AS_ALIAS}": 1, f"{AS_TAR}:{AS_PLAYS}": 3}),
         check=aliases_in(f"{AS_TAR}:{AS_PLAYS}", rows_resolved=1, rows_merged=1),
         note="the published profiledata_06-May-2005.tar.gz (a folder, README.txt and the three files), streamed"),
    Case("audioscrobbler_tar_without_alias_member", "audioscrobbler",
         {AS_TAR: lambda: tar_gz({AS_PLAYS: AS_PLAYS_OK, AS_ART: AS_ART_OK})},
         Error((re.escape(AS_TAR), r"no member named 'artist_alias\.txt' in the tar archive",
                r"profiledata_06-May-2005/user_artist_data\.txt"))),
    Case("audioscrobbler_tar_cut_short", "audioscrobbler", {AS_TAR: lambda: tar_gz(ascrob())[:-40]},
         Error((re.escape(AS_TAR), r"corrupt or cut short", r"Download it again"))),
    Case("lastfm_360k_tar_not_extracted", "lastfm_360k", {"lastfm-dataset-360K.tar.gz": lambda: tar_gz({P360: b""})},
         Error((r"'usersha1-artmbid-artname-plays\.tsv'", r"not found", r"lastfm-dataset-360K\.tar\.gz: this source "
                r"does not read a tar archive in place; extract it first"))),
]


# --------------------------------------------------------------------------- running


def materialise(case: Case, root: Path) -> Path:
    d = root / "raw"
    d.mkdir()
    for rel, data in case.files.items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data() if callable(data) else data)
    return d


def run_clean(case: Case, inp: Path, out: Path) -> dict:
    kw = {"chunk_rows": 2, "max_playcount": 100_000, "unmatched": "keep", **case.kwargs}
    policy = kw.pop("policy", DEFAULT_POLICY)
    return clean(case.source, inp, out, CleanConfig(**kw), policy)


def tmp_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*")]


def check_accounting(rep: dict, out: Path) -> None:
    tot = Counter()
    for name, f in rep["files"].items():
        assert f["rows_read"] == f["kept"] + f["quarantined"] + f["unmatched_dropped"], name
        assert sum(f["reasons"].values()) == f["quarantined"], name
        assert set(f["reasons"]) <= set(REASONS), name
        for k in ("rows_read", "kept", "quarantined", "unmatched_dropped"):
            tot[k] += f[k]
    t = rep["totals"]
    assert t["rows_read"] == t["kept"] + t["quarantined"] + t["unmatched_dropped"]
    assert {k: t[k] for k in tot} == dict(tot)
    q = pd.read_parquet(out / "quarantine.parquet")
    assert len(q) == t["quarantined"]
    got = {f: dict(Counter(g["reason"])) for f, g in q.groupby("file")}
    assert got == {f: r["reasons"] for f, r in rep["files"].items() if r["reasons"]}


def params_of(cases: list[Case], stage: bool = False) -> list:
    def marks(c: Case) -> list:
        if not c.xfail:
            return []
        return [pytest.mark.xfail(strict=True, reason=c.xfail, raises=AssertionError if stage else c.xfail_raises)]
    return [pytest.param(c, id=c.name, marks=marks(c)) for c in cases]


@pytest.mark.parametrize("case", params_of(CASES))
def test_bad_input_case(case: Case, tmp_path: Path) -> None:
    inp = materialise(case, tmp_path)
    out = tmp_path / "work" / "interim"
    exp = case.expect
    if isinstance(exp, Error):
        with pytest.raises(exp.exc) as err:
            run_clean(case, inp, out)
        msg = str(err.value)
        for pat in exp.patterns:
            assert re.search(pat, msg), f"{pat!r} not in: {msg}"
        assert not out.exists()
        assert not tmp_leftovers(tmp_path)
        return
    rep = run_clean(case, inp, out)
    check_accounting(rep, out)
    assert not tmp_leftovers(tmp_path)
    assert {f: r["kept"] for f, r in rep["files"].items()} == exp.kept
    dropped = {f: r["unmatched_dropped"] for f, r in rep["files"].items() if r["unmatched_dropped"]}
    assert dropped == exp.unmatched_dropped
    reasons = {f: r["reasons"] for f, r in rep["files"].items() if r["reasons"]}
    assert reasons == (exp.reasons if isinstance(exp, Quarantined) else {})
    if isinstance(exp, Quarantined):
        assert exp.reasons, "a Quarantined case must quarantine something"
    if case.check is not None:
        assert case.check(out, rep) is not False


STAGE_CASES = [c for c in CASES if c.stage]


@pytest.mark.parametrize("case", params_of(STAGE_CASES, stage=True))
def test_stage_script_on_bad_input(case: Case, tmp_path: Path) -> None:
    assert isinstance(case.expect, Error)
    inp = materialise(case, tmp_path)
    params = (ROOT / "params.yaml").read_text()
    assert "source: synthetic" in params
    (tmp_path / "params.yaml").write_text(params.replace("source: synthetic", f"source: {case.source}"))
    out, report = tmp_path / "work" / "interim", tmp_path / "work" / "reports" / "dq.json"
    res = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "clean.py"), "--params", str(tmp_path / "params.yaml"),
         "--input", str(inp), "--out", str(out), "--report", str(report)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip()
    assert "Traceback" not in err and "\n\n" not in err and err.count("\n") == 0, err
    assert err.startswith("clean: error: ")
    for pat in case.expect.patterns:
        assert re.search(pat, err), f"{pat!r} not in: {err}"
    assert not out.exists() and not report.exists()
    assert not tmp_leftovers(tmp_path)


def test_corpus_covers_the_issue() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)
    sources = {c.source for c in CASES}
    assert set(SOURCES) <= sources  # every registered source has cases
    kinds = Counter(type(c.expect).__name__ for c in CASES)
    assert all(kinds[k] >= 5 for k in ("Parsed", "Quarantined", "Error")), kinds
    assert len(STAGE_CASES) >= 3
    # every quarantine reason of the vocabulary is produced by at least one case
    covered = {r for c in CASES if isinstance(c.expect, Quarantined) for rs in c.expect.reasons.values() for r in rs}
    assert set(REASONS) - covered == set()
    # round 2 classes: each on more than one source or field
    per_reason = Counter(r for c in CASES if isinstance(c.expect, Quarantined) for rs in c.expect.reasons.values()
                         for r in rs)
    assert all(per_reason[r] >= 2 for r in ("control_character", "invalid_numeric_field", "timestamp_out_of_range"))


# --------------------------------------------------------------------------- summary table


def summary_markdown() -> str:
    rows = ["| # | case | source | outcome | detail |", "|---|---|---|---|---|"]
    for i, c in enumerate(CASES, 1):
        e = c.expect
        if isinstance(e, Error):
            detail = f"`{e.exc.__name__}` matching " + ", ".join(f"`{p}`" for p in e.patterns)
        else:
            detail = "kept " + ", ".join(f"{f}: {n}" for f, n in e.kept.items())
            if isinstance(e, Quarantined):
                detail += "; quarantined " + "; ".join(
                    f"{f}: " + ", ".join(f"{r} {n}" for r, n in sorted(rs.items())) for f, rs in e.reasons.items())
            if e.unmatched_dropped:
                detail += "; unmatched dropped " + ", ".join(f"{f}: {n}" for f, n in e.unmatched_dropped.items())
        if c.stage:
            detail += "; also via `stages/clean.py` (exit 2)"
        if c.note:
            detail += f" ({c.note})"
        if c.xfail:
            detail += f". **Known bug, strict xfail**: {c.xfail}"
        rows.append(f"| {i} | `{c.name}` | {c.source} | {type(e).__name__.lower()} | {detail.replace('|', '&#124;')} |")
    kinds = Counter(type(c.expect).__name__.lower() for c in CASES)
    n_xfail = sum(bool(c.xfail) for c in CASES)
    head = (f"# Reliability corpus: bad input loses nothing\n\nGenerated by `python tests/unit/ingest/test_bad_inputs.py` from the "
            f"case table in `tests/unit/ingest/test_bad_inputs.py`. {len(CASES)} cases: {kinds['parsed']} parsed, "
            f"{kinds['quarantined']} quarantined, {kinds['error']} error (expected outcomes"
            + (f"; {n_xfail} of them are strict xfails for known bugs, see the table" if n_xfail else
               "; no known bug is open: every case passes")
            + "). Every case that runs also checks "
            f"`rows_read == kept + quarantined + unmatched_dropped` per file and overall; every error case checks that "
            f"no output folder and no `.tmp-*` leftovers remain.\n\n")
    foot = ("\n\nAlso part of the reliability suite: `tests/unit/core/test_params_errors.py` (misspelled keys; strict types "
            "and upper bounds on every key; alias bombs, duplicate keys, tags, non-UTF-8 files; path escaping; each a "
            "one-paragraph `ParamsError` naming the file and the line/column or key, and every stage script exiting 2), "
            "`tests/unit/ingest/test_paths_archives.py` (symlinks out of the repository, SQLite paths, memory-bounded long lines), "
            "`tests/unit/core/test_errors.py` (user errors vs bugs) and `tests/unit/ingest/test_clean_properties.py` (Hypothesis properties: "
            "random Kaggle history rows against an independent oracle of the documented rules, injective duplicate "
            "keys, numbers and timestamps either valid or quarantined).\n")
    return head + "\n".join(rows) + foot


if __name__ == "__main__":
    print(summary_markdown(), end="")
