"""Hostile paths and limits that do not fit the bad-input corpus (symlinks, SQLite URIs, params, memory).

* Every path the clean stage reads (the raw source folder, each file, the SQLite
  database) must resolve inside the repository (the folder of ``params.yaml``)
  after following symlinks, unless ``data.allow_absolute_paths: true``; the
  refusal names the path and where the symlink points, and never prints what
  the foreign file holds.
* The Taste Profile SQLite database is opened read-only through a quoted URI:
  ``#``, ``?``, ``%`` and spaces in its path work, and nothing is ever created.
* The reader limits are params (``data.*``) with strict types and bounds; their
  defaults equal :class:`musicrec.ingest.inputs.InputPolicy`'s.
* A too-long line is never held whole (tracemalloc peak, not wall clock).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import sqlite3
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import yaml

from musicrec.pipeline.clean import CleanConfig, clean
from musicrec.config import DataParams, load_params, parse_params
from musicrec.params_file import ParamsError
from musicrec.ingest.inputs import DEFAULT_POLICY, InputFile, InputFormatError, InputPolicy
from musicrec.ingest.lines import BLOCK_BYTES
from musicrec.ingest.reader import iter_records
from musicrec.ingest.spec import TableSpec
from musicrec.schema import KAGGLE_HISTORY, KAGGLE_MUSIC_INFO

ROOT = Path(__file__).resolve().parents[3]
SECRET = "root:x:0:0:root:/root:/bin/bash"
INFO_OK = ("track_id,name,artist,spotify_preview_url,spotify_id,tags,genre,year,duration_ms,danceability,energy,key,"
           "loudness,mode,speechiness,acousticness,instrumentalness,liveness,valence,tempo,time_signature\n"
           "TRA,Song,Artist,u,s,rock,Rock,2004,200000,0.5,0.6,1,-5.0,1,0.1,0.2,0.0,0.1,0.5,120.0,4\n")
HIST_OK = "track_id,user_id,playcount\nTRA,u1,3\nTRA,u2,1\n"


def _repo(tmp_path: Path, source: str = "kaggle", **data: object) -> Path:
    """A repository folder with params.yaml (data.source = ``source``, other data.* overrides) and data/raw."""
    repo = tmp_path / "repo"
    (repo / "data" / "raw").mkdir(parents=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source=source, **data)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo


def _stage(repo: Path, inp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / "clean.py"), "--params", str(repo / "params.yaml"), "--input", str(inp),
         "--out", str(repo / "data" / "interim"), "--report", str(repo / "reports" / "dq.json")],
        capture_output=True, text=True, timeout=120, cwd=repo,
    )


def _assert_refused(res: subprocess.CompletedProcess, *needles: str) -> None:
    err = res.stderr.strip()
    assert res.returncode == 2, err
    assert err.startswith("clean: error: ") and err.count("\n") == 0 and "Traceback" not in err, err
    assert "outside the repository" in err and "data.allow_absolute_paths: true" in err, err
    assert SECRET not in err and "root:x" not in err, err  # nothing read from the foreign file
    for n in needles:
        assert n in err, (n, err)


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    """A folder outside the repository holding a passwd-like file and a valid Kaggle pair."""
    d = tmp_path / "elsewhere"
    d.mkdir()
    (d / "passwd").write_text(SECRET + "\n")
    (d / KAGGLE_MUSIC_INFO).write_text(INFO_OK)
    (d / KAGGLE_HISTORY).write_text(HIST_OK)
    return d


def test_raw_file_symlinked_out_of_the_repo_is_refused_without_echo(tmp_path: Path, foreign: Path) -> None:
    repo = _repo(tmp_path)
    raw = repo / "data" / "raw" / "kaggle"
    raw.mkdir()
    (raw / KAGGLE_MUSIC_INFO).symlink_to(foreign / "passwd")
    (raw / KAGGLE_HISTORY).write_text(HIST_OK)
    res = _stage(repo, Path("data/raw/kaggle"))
    _assert_refused(res, KAGGLE_MUSIC_INFO, f"-> {foreign / 'passwd'}")
    assert not (repo / "data" / "interim").exists() and not (repo / "reports").exists()


def test_raw_folder_symlinked_out_of_the_repo_is_refused(tmp_path: Path, foreign: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "data" / "raw" / "kaggle").symlink_to(foreign)
    _assert_refused(_stage(repo, Path("data/raw/kaggle")), "raw source folder", f"-> {foreign}")


def test_zip_archive_symlinked_out_of_the_repo_is_refused(tmp_path: Path, foreign: Path) -> None:
    repo = _repo(tmp_path, "hetrec_lastfm_2k")
    raw = repo / "data" / "raw" / "hetrec_lastfm_2k"
    raw.mkdir()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("user_artists.dat", "userID\tartistID\tweight\n2\t51\t1\n")
    (foreign / "h.zip").write_bytes(buf.getvalue())
    (raw / "hetrec2011-lastfm-2k.zip").symlink_to(foreign / "h.zip")
    _assert_refused(_stage(repo, Path("data/raw/hetrec_lastfm_2k")), "hetrec2011-lastfm-2k.zip", "the zip archive")


def test_tar_archive_symlinked_out_of_the_repo_is_refused(tmp_path: Path, foreign: Path) -> None:
    import tarfile

    repo = _repo(tmp_path, "audioscrobbler")
    raw = repo / "data" / "raw" / "audioscrobbler"
    raw.mkdir()
    with tarfile.open(foreign / "p.tar.gz", "w:gz") as tf:
        tf.add(foreign / "passwd", arcname="profiledata_06-May-2005/user_artist_data.txt")
    (raw / "profiledata_06-May-2005.tar.gz").symlink_to(foreign / "p.tar.gz")
    _assert_refused(_stage(repo, Path("data/raw/audioscrobbler")), "profiledata_06-May-2005.tar.gz", "the tar archive")


def test_absolute_input_folder_outside_the_repo_is_refused(tmp_path: Path, foreign: Path) -> None:
    repo = _repo(tmp_path)
    _assert_refused(_stage(repo, foreign), str(foreign))


def test_allow_absolute_paths_reads_outside_and_symlinks_inside_are_fine(tmp_path: Path, foreign: Path) -> None:
    repo = _repo(tmp_path, allow_absolute_paths=True)
    (repo / "data" / "raw" / "kaggle").symlink_to(foreign)
    res = _stage(repo, Path("data/raw/kaggle"))
    assert res.returncode == 0, res.stderr
    # without the flag, a symlink that stays inside the repository (e.g. to a DVC cache in .dvc/cache) is fine
    repo2 = _repo(tmp_path / "two")
    store = repo2 / ".dvc" / "cache"
    store.mkdir(parents=True)
    (store / "info").write_text(INFO_OK)
    raw = repo2 / "data" / "raw" / "kaggle"
    raw.mkdir()
    (raw / KAGGLE_MUSIC_INFO).symlink_to(store / "info")
    (raw / KAGGLE_HISTORY).write_text(HIST_OK)
    res = _stage(repo2, Path("data/raw/kaggle"))
    assert res.returncode == 0, res.stderr


def test_policy_check_path_names_the_symlink(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "a").mkdir(parents=True)
    (root / "a" / "link").symlink_to(tmp_path)
    with pytest.raises(InputFormatError, match=r"through the symlink .*a/link -> .* outside the repository"):
        InputPolicy(root=root).check_path(root / "a" / "link" / "x.csv", "the input file")
    assert InputPolicy(root=root, allow_absolute_paths=True).check_path(root / "a" / "link", "x") == tmp_path.resolve()
    assert InputPolicy().check_path(tmp_path, "x") == tmp_path.resolve()  # no root: library use, nothing checked


# --------------------------------------------------------------------------- SQLite


def _songs_db(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE songs (track_id text, song_id text, title text, artist_name text, duration real, year int)")
    con.execute("INSERT INTO songs VALUES ('TRAAAAAAAAAAAAAAA1', 'SOAAAAAAAAAAAAAAA1', 'One', 'Art', 200.5, 2001)")
    con.commit()
    con.close()


@pytest.mark.parametrize("folder", ["a#b", "q?mode=rwc", "100% real", "sp ace&x=1"])
def test_sqlite_path_with_uri_characters_is_read_read_only(tmp_path: Path, folder: str) -> None:
    d = tmp_path / folder
    d.mkdir()
    _songs_db(d / "track_metadata.db")
    (d / "10000.txt").write_text(f"{'a' * 40}\tSOAAAAAAAAAAAAAAA1\t3\n")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    rep = clean("taste_profile", d, tmp_path / "out" / "interim", CleanConfig(chunk_rows=10, max_playcount=100, unmatched="keep"))
    assert rep["files"]["track_metadata.db"]["kept"] == 1 and rep["join"]["plays_matched"] == 1
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "out" not in p.relative_to(tmp_path).parts}
    assert after == before  # nothing created (no database cut at '#' or '?'), nothing changed


def test_sqlite_symlinked_out_of_the_repo_is_refused(tmp_path: Path, foreign: Path) -> None:
    repo = _repo(tmp_path, "taste_profile")
    raw = repo / "data" / "raw" / "taste_profile"
    raw.mkdir()
    _songs_db(foreign / "t.db")
    (raw / "track_metadata.db").symlink_to(foreign / "t.db")
    (raw / "10000.txt").write_text(f"{'a' * 40}\tSOAAAAAAAAAAAAAAA1\t3\n")
    _assert_refused(_stage(repo, Path("data/raw/taste_profile")), "track_metadata.db")


# --------------------------------------------------------------------------- params


LIMITS = ("max_line_bytes", "max_decompressed_bytes", "max_compression_ratio", "max_quarantined_share",
          "quarantine_share_min_rows")


def test_limit_defaults_agree_everywhere() -> None:
    data = load_params(ROOT / "params.yaml").data
    fields = {f.name: f.default for f in dataclasses.fields(InputPolicy)}
    for name in (*LIMITS, "allow_absolute_paths"):
        assert getattr(data, name) == DataParams.model_fields[name].default == fields[name], name
    assert InputPolicy.from_params(data, root=ROOT) == dataclasses.replace(DEFAULT_POLICY, root=ROOT)


@pytest.mark.parametrize("key, value, why", [
    ("max_line_bytes", "64MB", "valid integer"), ("max_line_bytes", True, "valid integer"),
    ("max_line_bytes", 2 << 30, "less than or equal to 1073741824"), ("max_line_bytes", 100, "greater than or equal"),
    ("max_decompressed_bytes", 1.5e9, "valid integer"), ("max_compression_ratio", 1, "greater than 1"),
    ("max_compression_ratio", "100", "valid number"), ("max_quarantined_share", 1.5, "less than or equal to 1"),
    ("quarantine_share_min_rows", 0, "greater than or equal to 1"),
])
def test_limit_params_are_strict_and_bounded(tmp_path: Path, key: str, value: object, why: str) -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["data"][key] = value
    with pytest.raises(ParamsError, match=rf"(?m)^  data\.{key}: .*{why}"):
        parse_params(raw, tmp_path / "params.yaml")


# --------------------------------------------------------------------------- memory


def test_too_long_line_is_never_held_whole(tmp_path: Path) -> None:
    """A 256 MiB line (a 256 KB gzip file) with a 4 MiB limit: quarantined, and the peak stays near the limit."""
    line_bytes, limit = 256 << 20, 4 << 20
    path = tmp_path / "x.csv.gz"
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(b"a,b,c\n1,2,3\n")
        for _ in range(line_bytes // (1 << 20)):
            fh.write(b"x" * (1 << 20))
        fh.write(b"\n4,5,6\n")
    spec = TableSpec(columns=("a", "b", "c"), sep=",", header="required")
    policy = InputPolicy(max_line_bytes=limit, max_compression_ratio=100_000)
    tracemalloc.start()
    try:
        chunks = list(iter_records(InputFile(path), spec, 10, policy=policy))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    good = [r for ch in chunks for r in ch.fields.select(["a", "_line"]).to_pylist()]
    bad = [r for ch in chunks for r in ch.rejects.to_pylist()]
    assert good == [{"a": "1", "_line": 2}, {"a": "4", "_line": 4}]
    assert [(r["line"], r["reason"], len(r["raw"])) for r in bad] == [(3, "line_too_long", 1024)]
    assert peak < limit + 6 * BLOCK_BYTES < line_bytes // 4, peak  # the limit and a few blocks, never the line
