"""Audioscrobbler 2005 (``audioscrobbler``): alias resolution, the merge counts, and the sums after the transform."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from published import AUDIOSCROBBLER  # noqa: E402

from musicrec.config import CleanParams  # noqa: E402
from musicrec.ingest.audioscrobbler import resolve_chains  # noqa: E402
from musicrec.pipeline.clean import CleanConfig, clean  # noqa: E402
from musicrec.pipeline.local import LocalPaths, params_for, run_local  # noqa: E402


def write(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_chains_resolve_to_their_end_and_cycles_are_reported() -> None:
    resolved, cyclic = resolve_chains(["a", "b", "c", "x", "y", "z", "s"], ["b", "c", "d", "y", "x", "x", "s"])
    assert resolved == {"a": "d", "b": "d", "c": "d"}
    assert cyclic == {"x", "y", "z", "s"}  # x <-> y, z leads into it, s -> s


def test_chain_order_in_the_file_does_not_matter() -> None:
    assert resolve_chains(["c", "b", "a"], ["d", "c", "b"])[0] == {"a": "d", "b": "d", "c": "d"}


def test_artist_level_cap_applies() -> None:
    assert CleanParams().cap_for("audioscrobbler") == CleanParams().max_artist_playcount


MANY = {  # 3 users; artist 1 has aliases 11 and 12 (12 -> 11 -> 1), artist 2 has alias 21
    "user_artist_data.txt": "\n".join([
        "1 1 5", "1 11 3", "1 12 2", "1 2 7",  # user 1: three raw ids of artist 1 -> one pair (10)
        "2 21 4", "2 3 1",                       # user 2: only the alias of 2 -> resolved, nothing to merge
        "3 21 1", "3 2 6", "3 12 9",             # user 3: 21 and 2 merge (7); 12 -> 1 alone (9)
    ]).encode() + b"\n",
    "artist_data.txt": b"1\tOne\n2\tTwo\n3\tThree\n11\tOen\n",
    "artist_alias.txt": b"11\t1\n12\t11\n21\t2\n",
}
MERGES = {"rows_resolved": 5, "artists_resolved": 3, "rows_merged": 3, "pairs_merged": 2}


@pytest.mark.parametrize("chunk_rows", [1, 2, 4, 1_000])
def test_merge_counts_do_not_depend_on_the_chunks(tmp_path: Path, chunk_rows: int) -> None:
    rep = clean("audioscrobbler", write(tmp_path / "raw", MANY), tmp_path / "out", CleanConfig(chunk_rows=chunk_rows))
    plays = rep["files"]["user_artist_data.txt"]
    assert plays["aliases"] == MERGES
    assert (plays["rows_read"], plays["kept"], plays["quarantined"]) == (9, 9, 0)  # merged rows are kept
    assert rep["files"]["artist_alias.txt"]["aliases_chained"] == 1
    for f in [*rep["files"].values(), rep["totals"]]:
        assert f["rows_read"] == f["kept"] + f["quarantined"] + f["unmatched_dropped"]
    assert set(pd.read_parquet(tmp_path / "out" / "plays")["item_id"]) == {"1", "2", "3"}


def test_the_transform_sums_an_aliased_pair(tmp_path: Path) -> None:
    params = params_for(1, source="audioscrobbler", transform={"partitions": 1, "min_user_items": 1, "min_item_users": 1},
                        dask={"scheduler": "synchronous", "num_workers": 1})
    run = run_local(params, LocalPaths.under(tmp_path / "work", raw=write(tmp_path / "raw", MANY)),
                    start="clean", stop="transform")
    plays = pd.read_parquet(tmp_path / "work" / "data" / "processed" / "plays")
    got = {(u, i): int(c) for u, i, c in zip(plays["user_id"], plays["item_id"], plays["playcount"])}
    assert got == {("1", "1"): 10, ("1", "2"): 7, ("2", "2"): 4, ("2", "3"): 1, ("3", "2"): 7, ("3", "1"): 9}
    assert sum(got.values()) == run.clean["output"]["playcount_sum"]  # summed, never lost
    items = pd.read_parquet(tmp_path / "work" / "data" / "processed" / "items.parquet").set_index("item_id")
    assert items.loc["1", "name"] == "One"


def test_published_fixture_reports_the_alias_merge(tmp_path: Path) -> None:
    rep = clean("audioscrobbler", write(tmp_path / "raw", AUDIOSCROBBLER), tmp_path / "out", CleanConfig(chunk_rows=2))
    assert rep["files"]["user_artist_data.txt"]["aliases"] == {"rows_resolved": 2, "artists_resolved": 2,
                                                               "rows_merged": 1, "pairs_merged": 1}
    assert rep["join"]["plays_unmatched"] == 0 and rep["join"]["alias_file_present"] is True


def _tar_gz(path: Path, files: dict[str, bytes]) -> Path:
    import io
    import tarfile

    path.parent.mkdir(parents=True)
    with tarfile.open(path, "w:gz") as tf:
        for name, data in {"README.txt": b"readme\n", **files}.items():
            info = tarfile.TarInfo(f"profiledata_06-May-2005/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_the_published_tar_is_read_in_place_like_the_extracted_files(tmp_path: Path) -> None:
    base = clean("audioscrobbler", write(tmp_path / "plain", MANY), tmp_path / "out1", CleanConfig(chunk_rows=2))
    tar = _tar_gz(tmp_path / "tar" / "profiledata_06-May-2005.tar.gz", MANY)
    rep = clean("audioscrobbler", tar.parent, tmp_path / "out2", CleanConfig(chunk_rows=2))
    assert {f.split(":", 1)[1]: (r["rows_read"], r["kept"]) for f, r in rep["files"].items()} == \
        {f: (r["rows_read"], r["kept"]) for f, r in base["files"].items()}
    assert rep["files"][f"{tar.name}:user_artist_data.txt"]["aliases"] == MERGES
    for part in ("plays", "items.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out2" / part), pd.read_parquet(tmp_path / "out1" / part))


def test_a_tar_cut_short_inside_the_plays_is_refused_naming_it(tmp_path: Path) -> None:
    import random

    from musicrec.ingest.inputs import InputFormatError

    rng = random.Random(3)
    plays = "".join(f"{rng.randrange(10**6)} {rng.randrange(10**7)} {rng.randrange(1, 999)}\n" for _ in range(30_000))
    tar = _tar_gz(tmp_path / "tar" / "profiledata_06-May-2005.tar.gz",
                  {**MANY, "user_artist_data.txt": plays.encode()})
    tar.write_bytes(tar.read_bytes()[:len(tar.read_bytes()) * 2 // 3])
    with pytest.raises(InputFormatError, match=r"profiledata_06-May-2005\.tar\.gz.*corrupt or cut short") as err:
        clean("audioscrobbler", tar.parent, tmp_path / "out", CleanConfig(chunk_rows=5_000))
    assert "Download it again" in str(err.value) and not (tmp_path / "out").exists()
