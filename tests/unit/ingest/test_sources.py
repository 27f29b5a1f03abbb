"""Adapters on the real data samples in ../shared/data/real (read in place, never copied)."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from musicrec.pipeline.clean import CleanConfig, clean
from musicrec.config import CleanParams
from musicrec.ingest import SOURCES
from musicrec.ingest.spec import TableSpec
from musicrec.schema import ITEM_COLUMNS, PLAY_COLUMNS

REAL = Path(__file__).resolve().parents[4] / "shared" / "data" / "real"


def need(*parts: str) -> Path:
    p = REAL.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data sample {p} not available (expected the shared read-only samples next to the repo)")
    return p


def invariant(rep: dict) -> None:
    for rep_f in [*rep["files"].values(), rep["totals"]]:
        assert rep_f["rows_read"] == rep_f["kept"] + rep_f["quarantined"] + rep_f["unmatched_dropped"]


def plays_ok(out: Path) -> pd.DataFrame:
    schema = pq.read_schema(sorted((out / "plays").glob("part-*.parquet"))[0])
    assert tuple(schema.names) == PLAY_COLUMNS
    assert [str(t) for t in schema.types] == ["string", "string", "int64", "timestamp[us, tz=UTC]"]
    items = pd.read_parquet(out / "items.parquet")
    assert tuple(items.columns) == ITEM_COLUMNS and items["item_id"].is_unique
    plays = pd.read_parquet(out / "plays")
    assert (plays["playcount"] >= 1).all()
    assert set(plays["item_id"]) <= set(items["item_id"])
    return plays


def source_specs() -> list[TableSpec]:
    specs = [v for m in sorted({s.adapter for s in SOURCES.values()})
             for v in vars(importlib.import_module(m)).values() if isinstance(v, TableSpec)]
    assert len(specs) >= 15
    return specs


def test_every_header_name_selects_one_column() -> None:
    """No header name (canonical or alias) of a spec stands for two columns: the reader's header rules need it."""
    for spec in source_specs():
        names = [n for c in spec.columns for n in spec.names_for(c)]
        assert len(names) == len(set(names)), spec.description


def test_display_text_columns_are_declared_free_text() -> None:
    """The control-character rule depends on the kind of field: every display-text column (name, artist, title,
    tag value, genre) and nothing else (ids, MBIDs, numbers) is in its spec's ``text_columns``."""
    for spec in source_specs():
        text = {c for c in spec.columns if re.search(r"name|artist|title|tag|genre", c) and not re.search(r"id$|mbid", c)}
        assert set(spec.text_columns) == text, spec.description
    with pytest.raises(ValueError, match=r"text_columns \['titel'\] are not columns"):
        TableSpec(columns=("id", "title"), sep="\t", header="none", text_columns=("titel",))


def test_hetrec_zip(tmp_path: Path) -> None:
    zdir = need("hetrec2011-lastfm-2k", "hetrec2011-lastfm-2k.zip").parent
    cap = CleanParams().cap_for("hetrec_lastfm_2k")  # the default cap of artist-level sources (10,000,000)
    assert cap == 10_000_000
    rep = clean("hetrec_lastfm_2k", zdir, tmp_path / "out", CleanConfig(chunk_rows=20_000, max_playcount=cap, unmatched="keep"))
    invariant(rep)
    ua = rep["files"]["hetrec2011-lastfm-2k.zip:user_artists.dat"]
    assert ua["rows_read"] == ua["kept"] == 92_834 and ua["quarantined"] == 0 and ua["reasons"] == {}
    # the only rows quarantined: 4 tag assignments dated 1956/1957, before TIME_RANGE (the date is not used)
    assert rep["totals"]["quarantined"] == 4
    ta = rep["files"]["hetrec2011-lastfm-2k.zip:user_taggedartists.dat"]
    assert ta["reasons"] == {"timestamp_out_of_range": 4}
    assert rep["files"]["hetrec2011-lastfm-2k.zip:artists.dat"]["kept"] == 17_632
    assert rep["files"]["hetrec2011-lastfm-2k.zip:tags.dat"]["rows_read"] == 11_946
    assert rep["files"]["hetrec2011-lastfm-2k.zip:user_taggedartists.dat"]["rows_read"] == 186_479
    assert rep["output"]["users"] == 1_892 and rep["output"]["items_with_plays"] == 17_632
    assert rep["join"]["plays_unmatched"] == 0
    plays = plays_ok(tmp_path / "out")
    assert len(plays) == 92_834 and plays["timestamp"].isna().all()
    items = pd.read_parquet(tmp_path / "out" / "items.parquet").set_index("item_id")
    assert items.loc["1", "name"] == "MALICE MIZER"
    assert "visual kei" in items.loc["1", "tags"]
    # tags.dat is Latin-1: decoded without replacement characters
    assert not items["tags"].dropna().str.contains("\ufffd").any()
    assert plays["playcount"].max() == 352_698  # a total per (user, artist): far above a per-track cap
    # the track-level cap (clean.max_playcount, 100000) would quarantine HetRec's 25 heaviest user-artist weights
    rep2 = clean("hetrec_lastfm_2k", zdir, tmp_path / "out2", CleanConfig(chunk_rows=50_000, max_playcount=100_000, unmatched="keep"))
    invariant(rep2)
    ua2 = rep2["files"]["hetrec2011-lastfm-2k.zip:user_artists.dat"]
    assert ua2["reasons"] == {"playcount_out_of_range": 25}
    assert (ua2["kept"], ua2["quarantined"]) == (92_809, 25)


@pytest.mark.parametrize("meta", ["song_data.csv", "subset_unique_tracks.txt"])
def test_taste_profile_with_subset_metadata(tmp_path: Path, meta: str) -> None:
    triplets = need("msd-taste-profile-10000", "10000.txt")
    meta_path = need("msd-subset-10k", meta)
    d = tmp_path / "raw"
    d.mkdir()
    os.symlink(triplets, d / "10000.txt")  # links, not copies, so one metadata file is picked
    os.symlink(meta_path, d / meta)
    rep = clean("taste_profile", d, tmp_path / "out", CleanConfig(chunk_rows=10_000, max_playcount=100_000, unmatched="keep"))
    invariant(rep)
    f = rep["files"]["10000.txt"]
    assert f["rows_read"] == f["kept"] == 42_739
    # 21 MSD titles hold 22 C0 controls (U+0019 / U+0013 / U+0014: a right quote or dash cut to its low byte
    # upstream, "I\x19m Moving On"): free text, so each is replaced by U+FFFD and counted, and every track is kept
    assert rep["files"][meta]["kept"] == 10_000 and rep["files"][meta]["reasons"] == {}
    reader = rep["files"][meta]["reader"]
    assert (reader["control_characters_replaced"], reader["rows_with_control_characters_replaced"]) == (22, 21)
    j = rep["join"]
    assert j["metadata_file"] == meta
    assert 150 <= j["play_items_matched"] <= 170 and 700 <= j["plays_matched"] <= 900  # ~160 songs / ~800 triplets
    assert j["play_items_matched"] + j["play_items_unmatched"] == 9_071
    assert j["plays_matched"] + j["plays_unmatched"] == 42_739
    assert rep["output"]["users"] == 1_630 and rep["output"]["items_with_plays"] == 9_071
    plays = plays_ok(tmp_path / "out")
    assert plays["item_id"].str.startswith("TR").sum() == j["plays_matched"]

    rep = clean("taste_profile", d, tmp_path / "drop", CleanConfig(chunk_rows=10_000, max_playcount=100_000, unmatched="drop"))
    invariant(rep)
    assert rep["files"]["10000.txt"]["kept"] == j["plays_matched"]
    assert rep["files"]["10000.txt"]["unmatched_dropped"] == j["plays_unmatched"]


def test_msd_song_data_metadata_columns(tmp_path: Path) -> None:
    d = tmp_path / "raw"
    d.mkdir()
    os.symlink(need("msd-taste-profile-10000", "10000.txt"), d / "10000.txt")
    os.symlink(need("msd-subset-10k", "song_data.csv"), d / "song_data.csv")
    clean("taste_profile", d, tmp_path / "out", CleanConfig(chunk_rows=100_000, max_playcount=100_000, unmatched="drop"))
    items = pd.read_parquet(tmp_path / "out" / "items.parquet").set_index("item_id")
    assert len(items) == 10_000  # the 21 titles with C0 control characters are kept, with U+FFFD
    assert items.loc["TRABHWW128F424E9D2", "name"] == "I\ufffdm Moving On"  # U+0019 (a cut-down U+2019) replaced
    assert items["name"].str.count("\ufffd").sum() == 22 and items["name"].str.contains("\ufffd").sum() == 21
    assert not items["name"].str.contains(r"[\x00-\x1f\x7f]").any()
    row = items.loc["TRARRZU128F4253CA2"]
    assert row["name"] == "Je Sais Que La Terre Est Plate" and row["artist"] == "Raphaël"
    assert row["year"] == 2008 and row["duration_ms"] == 148741 and pd.isna(row["danceability"])
    assert items["year"].dtype.name in ("Int64", "int64", "float64")


def test_lastfm_1k_excerpt(tmp_path: Path) -> None:
    src = need("lastfm-1k-sample", "userid-timestamp-artid-artname-traid-traname.excerpt5000.tsv").parent
    rep = clean("lastfm_1k", src, tmp_path / "out", CleanConfig(chunk_rows=1_000, max_playcount=100_000, unmatched="keep"))
    invariant(rep)
    f = next(iter(rep["files"].values()))
    assert f["rows_read"] == f["kept"] == 5_000
    plays = plays_ok(tmp_path / "out")
    assert len(plays) == 5_000 and plays["timestamp"].notna().all() and (plays["playcount"] == 1).all()
    assert set(plays["user_id"]) == {"user_000001", "user_000002"}
    assert plays["item_id"].str.startswith("name:").any()  # empty MBIDs fall back to a name key
    assert rep["output"]["plays_with_timestamp"] == 5_000


def test_the_params_comment_names_every_source() -> None:
    """params.yaml's comment above ``data.source`` lists the values a user may choose: all of SOURCES."""
    text = (Path(__file__).resolve().parents[3] / "params.yaml").read_text()
    comment = text[text.index("data:"):text.index("  source:")]
    named = set(re.findall(r"[a-z][a-z0-9_]+", comment.split("#", 1)[1]))
    assert set(SOURCES) <= named, sorted(set(SOURCES) - named)
