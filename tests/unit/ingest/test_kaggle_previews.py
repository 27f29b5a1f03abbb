"""Kaggle ``spotify_preview_url`` -> the cleaned ``preview_url`` (the app's audio previews): an optional column."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from musicrec.ingest.inputs import InputPolicy
from musicrec.pipeline.clean import CleanConfig, clean
from tests.unit.ingest.published import FEATS, INFO_HEADER, text

HISTORY = text("track_id,user_id,playcount", "TRA,u1,3", "TRB,u2,1", "TRC,u1,2", "TRD,u2,4")


def _run(tmp_path: Path, source: str, info: bytes, quarantined: int = 0) -> dict[str, str | None]:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "Music Info.csv").write_bytes(info)
    (raw / "User Listening History.csv").write_bytes(HISTORY)
    report = clean(source, raw, tmp_path / "out", CleanConfig(), InputPolicy(root=tmp_path))
    items = pq.read_table(tmp_path / "out" / "items.parquet").to_pydict()
    assert report["files"]["Music Info.csv"]["quarantined"] == quarantined
    return dict(zip(items["item_id"], items["preview_url"]))


def _info(urls: list[str]) -> bytes:
    return text(INFO_HEADER, *(f"TR{c},Song {c},Artist,{u},sp,rock,Rock,2004,200000,{FEATS}" for c, u in zip("ABCD", urls)))


def test_http_urls_are_kept_anything_else_is_null(tmp_path):
    got = _run(tmp_path, "kaggle", _info(["https://p.scdn.co/mp3-preview/ab12", "", "javascript:alert(1)",
                                          "http://x y"]))
    assert got == {"TRA": "https://p.scdn.co/mp3-preview/ab12", "TRB": None, "TRC": None, "TRD": None}


def test_a_music_info_without_the_preview_column_is_read_with_null_previews(tmp_path):
    header = INFO_HEADER.replace("spotify_preview_url,", "")
    info = text(header, *(f"TR{c},Song {c},Artist,sp,rock,Rock,2004,200000,{FEATS}" for c in "ABCD"))
    assert set(_run(tmp_path, "kaggle", info).values()) == {None}


def test_the_generated_source_keeps_no_preview_its_urls_are_made_up(tmp_path):
    got = _run(tmp_path, "synthetic", _info(["https://p.scdn.co/mp3-preview/ab12"] * 4))
    assert set(got.values()) == {None}


@pytest.mark.parametrize("row_url", ["https://p.scdn.co/x\x07y"])
def test_a_control_character_in_the_url_quarantines_the_row_like_in_an_id(tmp_path, row_url):
    got = _run(tmp_path, "kaggle", _info([row_url, "https://ok", "https://ok2", ""]), quarantined=1)
    assert got["TRA"] is None and got["TRB"] == "https://ok"  # TRA: played, so kept without metadata
