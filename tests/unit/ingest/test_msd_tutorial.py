"""The MSD tutorial table (``msd_tutorial``): one CSV as the notebooks ship it, and the same data as two files."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from published import MSD_TUTORIAL_HEADER  # noqa: E402

from musicrec.ingest.msd_tutorial import TABLE_SPEC  # noqa: E402
from musicrec.ingest.spec import PLAY_COUNT_NAMES  # noqa: E402
from musicrec.pipeline.clean import CleanConfig, clean  # noqa: E402
from musicrec.pipeline.local import LocalPaths, params_for, run_local  # noqa: E402


def tutorial_rows(n_users: int = 40, n_songs: int = 30, seed: int = 7) -> pd.DataFrame:
    """A few hundred rows in the tutorial table's shape: Taste Profile users and songs, Turi metadata."""
    rng = np.random.default_rng(seed)
    users = [hashlib.sha1(f"user{i}".encode()).hexdigest() for i in range(n_users)]
    songs = [f"SO{i:016d}" for i in range(n_songs)]
    rows = []
    for u in users:
        for s in rng.choice(n_songs, size=int(rng.integers(min(5, n_songs), min(12, n_songs))), replace=False):
            rows.append((u, songs[s], int(rng.integers(1, 20)), f"Title {s}", f"Album {s % 7}", f"Artist {s % 9}",
                         0 if s % 5 == 0 else 1990 + int(s)))
    return pd.DataFrame(rows, columns=MSD_TUTORIAL_HEADER.split(","))


def write_tutorial(folder: Path, df: pd.DataFrame, name: str = "song_df.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    df.to_csv(folder / name)  # as the notebooks do: with pandas' unnamed index column
    return folder


def invariant(rep: dict) -> None:
    for f in [*rep["files"].values(), rep["totals"]]:
        assert f["rows_read"] == f["kept"] + f["quarantined"] + f["unmatched_dropped"]


def test_every_play_count_name_is_accepted() -> None:
    assert set(TABLE_SPEC.names_for("listen_count")) == set(PLAY_COUNT_NAMES) | {"listen_count"}


def test_the_table_and_its_two_source_files_clean_to_the_same_plays_and_items(tmp_path: Path) -> None:
    """One route or the other (msd_tutorial, or taste_profile on 10000.txt + the Turi song_data.csv)."""
    df = tutorial_rows()
    rep = clean("msd_tutorial", write_tutorial(tmp_path / "one", df), tmp_path / "out1", CleanConfig(chunk_rows=50))
    invariant(rep)
    assert rep["files"]["song_df.csv"]["kept"] == len(df) and rep["totals"]["quarantined"] == 0

    two = tmp_path / "two"
    two.mkdir()
    df[["user_id", "song_id", "listen_count"]].to_csv(two / "10000.txt", sep="\t", header=False, index=False)
    df.drop_duplicates("song_id")[["song_id", "title", "release", "artist_name", "year"]].to_csv(
        two / "song_data.csv", index=False)
    rep2 = clean("taste_profile", two, tmp_path / "out2", CleanConfig(chunk_rows=50))
    invariant(rep2)
    assert rep2["join"]["plays_unmatched"] == 0 and rep2["join"]["metadata_layout"] == "turi_song_data"

    plays1, plays2 = (pd.read_parquet(tmp_path / o / "plays") for o in ("out1", "out2"))
    pd.testing.assert_frame_equal(plays1, plays2)
    cols = ["item_id", "name", "artist", "year"]
    items1, items2 = (pd.read_parquet(tmp_path / o / "items.parquet")[cols] for o in ("out1", "out2"))
    pd.testing.assert_frame_equal(items1, items2)
    assert items1["year"].isna().sum() == df.loc[df["year"] == 0, "song_id"].nunique()  # year 0 = unknown


@pytest.mark.parametrize("chunk_rows", [1, 7, 10_000])
def test_a_triplet_repeated_by_the_merge_is_one_play_whatever_the_chunks(tmp_path: Path, chunk_rows: int) -> None:
    df = tutorial_rows(n_users=5, n_songs=8)
    again = df.iloc[[0, 3]].assign(title="Another Title", year=2001)  # a Turi duplicate song id merged in
    table = pd.concat([df, again], ignore_index=True)
    rep = clean("msd_tutorial", write_tutorial(tmp_path / "raw", table), tmp_path / "out",
                CleanConfig(chunk_rows=chunk_rows))
    invariant(rep)
    f = rep["files"]["song_df.csv"]
    assert (f["kept"], f["reasons"]) == (len(df), {"duplicate_row": 2})
    items = pd.read_parquet(tmp_path / "out" / "items.parquet").set_index("item_id")
    assert items.loc[df.iloc[0]["song_id"], "name"] == df.iloc[0]["title"]  # the first row's metadata


def test_run_local_from_clean_to_train(tmp_path: Path) -> None:
    raw = write_tutorial(tmp_path / "raw", tutorial_rows())
    params = params_for(3, source="msd_tutorial", data={"chunk_rows": 100},
                        transform={"partitions": 1, "min_user_items": 3, "min_item_users": 3},
                        dask={"scheduler": "synchronous", "num_workers": 1},
                        train={"models": ["popularity", "itemknn"]}, evaluate={"k": [5], "main_k": 5, "bootstrap": 0})
    run = run_local(params, LocalPaths.under(tmp_path / "work", raw=raw), start="clean", stop="train")
    invariant(run.clean)
    assert run.clean["source"] == "msd_tutorial" and run.clean["output"]["items"] == 30
    assert run.transform is not None and run.built is not None
    assert [t.name for t in run.trained] == ["popularity", "itemknn"]
    assert all((tmp_path / "work" / "data" / "models" / name / "model.json").is_file() for name in ("popularity", "itemknn"))
    items = run.items()
    assert items["item_id"].str.startswith("SO").all() and items["year"].notna().any()
