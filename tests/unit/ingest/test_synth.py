"""Tests of the deterministic synthetic data generator (the musicrec.ingest.synthetic package, stages/generate.py)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from musicrec.schema import (
    AUDIO_FEATURES, KAGGLE_HISTORY, KAGGLE_HISTORY_COLUMNS, KAGGLE_MUSIC_INFO, KAGGLE_MUSIC_INFO_COLUMNS,
)
from musicrec.config import GenerateParams
from musicrec.ingest.synthetic import write_synthetic
from musicrec.ingest.synthetic.catalog import N_SUBSTYLES, generate_catalog, genre_names
from musicrec.ingest.synthetic.history import allocate_counts, iter_history

ROOT = Path(__file__).resolve().parents[3]
SIZES = dict(n_tracks=3000, n_users=2500, n_plays=60_000, n_genres=8, n_artists=600)


def _digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def _read(d: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    info = pd.read_csv(d / KAGGLE_MUSIC_INFO, keep_default_na=False, dtype={"tags": str, "genre": str})
    hist = pd.read_csv(d / KAGGLE_HISTORY)
    return info, hist


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth") / "synthetic"
    summary = write_synthetic(out, GenerateParams(**SIZES), seed=7, chunk_rows=7_000)
    return out, summary


@pytest.fixture(scope="module")
def frames(generated: tuple[Path, dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return _read(generated[0])


def test_summary_and_files(generated: tuple[Path, dict]) -> None:
    out, summary = generated
    assert sorted(p.name for p in out.iterdir()) == sorted([KAGGLE_MUSIC_INFO, KAGGLE_HISTORY])
    assert summary["rows"] == SIZES["n_plays"]
    assert summary["users"] == SIZES["n_users"]
    assert summary["tracks"] == SIZES["n_tracks"]
    assert summary["seconds"] >= 0
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".tmp-")]


def test_same_seed_same_bytes_any_chunk_size(generated: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = generated
    again = tmp_path / "again"
    write_synthetic(again, GenerateParams(**SIZES), seed=7, chunk_rows=50_000)
    assert _digest(again) == _digest(out)


def test_different_seed_different_bytes(generated: tuple[Path, dict], tmp_path: Path) -> None:
    other = tmp_path / "other"
    write_synthetic(other, GenerateParams(**SIZES), seed=8, chunk_rows=7_000)
    a, b = _digest(generated[0]), _digest(other)
    assert a[KAGGLE_MUSIC_INFO] != b[KAGGLE_MUSIC_INFO]
    assert a[KAGGLE_HISTORY] != b[KAGGLE_HISTORY]


def test_columns_exact_order(generated: tuple[Path, dict]) -> None:
    out, _ = generated
    with open(out / KAGGLE_MUSIC_INFO, encoding="utf-8") as fh:
        assert fh.readline().rstrip("\n").split(",") == list(KAGGLE_MUSIC_INFO_COLUMNS)
    with open(out / KAGGLE_HISTORY, encoding="utf-8") as fh:
        assert fh.readline() == ",".join(KAGGLE_HISTORY_COLUMNS) + "\n"
        assert "\r" not in fh.read(10_000)


def test_ids(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    info, hist = frames
    assert len(info) == SIZES["n_tracks"]
    assert info["track_id"].str.fullmatch(r"TR[0-9A-Z]{16}").all()
    assert info["track_id"].is_unique
    assert info["spotify_id"].str.fullmatch(r"[0-9A-Za-z]{22}").all()
    assert info["spotify_id"].is_unique
    assert info["spotify_preview_url"].str.fullmatch(r"https://p\.scdn\.co/mp3-preview/[0-9a-f]{40}").all()
    assert hist["user_id"].str.fullmatch(r"[0-9a-f]{40}").all()
    assert hist["user_id"].nunique() == SIZES["n_users"]
    assert hist["track_id"].isin(set(info["track_id"])).all()
    assert (info["name"] != "").all() and (info["artist"] != "").all()
    assert info["artist"].nunique() > SIZES["n_artists"] // 2


def test_history_rows_and_pairs(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, hist = frames
    assert len(hist) == SIZES["n_plays"]
    assert not hist.duplicated(["user_id", "track_id"]).any()
    # rows are grouped by user (chunks hold whole users)
    starts = hist["user_id"].ne(hist["user_id"].shift()).sum()
    assert starts == SIZES["n_users"]
    assert hist.groupby("user_id").size().min() >= 5


def test_value_ranges(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    info, hist = frames
    assert pd.api.types.is_integer_dtype(hist["playcount"]) and (hist["playcount"] >= 1).all()
    for col in ("danceability", "energy", "speechiness", "acousticness", "instrumentalness", "liveness", "valence"):
        assert info[col].between(0, 1).all(), col
    assert info["key"].between(0, 11).all() and pd.api.types.is_integer_dtype(info["key"])
    assert set(info["mode"]) <= {0, 1}
    assert set(info["time_signature"]) <= {3, 4, 5}
    assert (info["loudness"] < 0).all() and info["loudness"].min() > -60
    assert info["tempo"].between(40, 230).all()
    assert info["year"].between(1950, 2020).all()
    assert info["duration_ms"].between(30_000, 1_500_000).all()
    assert set(AUDIO_FEATURES) <= set(info.columns)


def test_tags_and_genre(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    info, _ = frames
    missing_genre = (info["genre"] == "").mean()
    assert 0.45 < missing_genre < 0.65
    assert set(info.loc[info["genre"] != "", "genre"]) <= set(genre_names(SIZES["n_genres"]))
    tagged = info.loc[info["tags"] != "", "tags"]
    assert 0.9 < len(tagged) / len(info) < 1.0
    tag_lists = tagged.str.split(", ")
    assert tag_lists.map(lambda t: all(re.fullmatch(r"[0-9a-z_]+", x) for x in t)).all()
    assert tag_lists.map(lambda t: len(set(t)) == len(t)).all()
    # the genre's core tag (its lower-cased name) appears on many of its tracks
    rock = info[info["genre"] == "Rock"]
    assert rock["tags"].str.split(", ").map(lambda t: "rock" in t).mean() > 0.4


def test_long_tail(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, hist = frames
    pop = hist["track_id"].value_counts().to_numpy()
    top1 = pop[: SIZES["n_tracks"] // 100].sum() / len(hist)
    assert top1 > 0.08  # top 1% of tracks hold far more than 1% of the rows
    x = np.sort(np.concatenate([pop, np.zeros(SIZES["n_tracks"] - pop.size)]))
    n = x.size
    gini = (2 * np.arange(1, n + 1) - n - 1).dot(x) / (n * x.sum())
    assert gini > 0.45
    act = hist.groupby("user_id").size()
    assert act.max() > 8 * act.median()
    assert act.mean() > act.median()


def test_heavy_tailed_playcounts(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, hist = frames
    pc = hist["playcount"]
    assert pc.median() in (1, 2)
    assert (pc == 1).mean() > 0.4
    assert 1.8 < pc.mean() < 4.5
    assert pc.max() > 30 * pc.mean()


def test_users_concentrate_on_few_genres() -> None:
    rng = np.random.default_rng(3)
    n_genres = 8
    cat = generate_catalog(3000, 600, n_genres, rng)
    hist = pd.concat(iter_history(cat, 1500, 40_000, rng, chunk_rows=10_000))
    pos = pd.Series(np.arange(cat.n_tracks), index=cat.frame["track_id"])
    genre = cat.item_cluster[pos[hist["track_id"]].to_numpy()] // N_SUBSTYLES
    per_user = pd.crosstab(hist["user_id"].to_numpy(), genre)
    top2 = np.sort(per_user.to_numpy(), axis=1)[:, -2:].sum(axis=1) / per_user.to_numpy().sum(axis=1)
    # by chance two genres of eight would hold about a quarter of a user's tracks
    assert np.median(top2) > 0.75
    # tags carry the latent genre: tracks tagged with a genre's core tag mostly belong to it
    latent = cat.item_cluster // N_SUBSTYLES
    tags = cat.frame["tags"].str.split(", ")
    for g, name in enumerate(genre_names(n_genres)):
        has = tags.map(lambda t, c=name.lower(): c in t).to_numpy()
        assert has.sum() > 20
        assert (latent[has] == g).mean() > 0.5, name  # chance: about 1 in 8
    # and audio features differ between genres far beyond noise
    energy = cat.frame.groupby(latent)["energy"].mean()
    assert energy.max() - energy.min() > 0.2


def test_chunks_hold_whole_users() -> None:
    rng = np.random.default_rng(1)
    cat = generate_catalog(500, 50, 4, rng)
    chunks = list(iter_history(cat, 300, 9_000, rng, chunk_rows=1_000))
    assert sum(len(c) for c in chunks) == 9_000
    assert len(chunks) > 5
    seen: set[str] = set()
    for c in chunks:
        users = set(c["user_id"])
        assert not users & seen
        seen |= users
        assert len(c) <= 1_000 or c["user_id"].nunique() == 1


def test_dense_and_impossible_sizes(tmp_path: Path) -> None:
    # every user listens to every track: the only possible history
    rng = np.random.default_rng(0)
    cat = generate_catalog(20, 5, 2, rng)
    hist = pd.concat(iter_history(cat, 10, 200, rng, chunk_rows=50))
    assert len(hist) == 200 and not hist.duplicated(["user_id", "track_id"]).any()
    unchecked, x = GenerateParams.model_construct, tmp_path / "x"  # the sizes reach write_synthetic's own checks
    with pytest.raises(ValueError, match=r"n_plays=201 exceeds n_users \* n_tracks"):
        write_synthetic(x, unchecked(n_tracks=20, n_users=10, n_plays=201, n_genres=2, n_artists=5), seed=0)
    with pytest.raises(ValueError, match="n_plays=9 is below n_users=10"):
        write_synthetic(x, unchecked(n_tracks=20, n_users=10, n_plays=9, n_genres=2, n_artists=5), seed=0)
    with pytest.raises(ValueError, match="n_tracks must be greater than 0"):
        write_synthetic(x, unchecked(n_tracks=0, n_users=10, n_plays=9, n_genres=2, n_artists=5), seed=0)
    with pytest.raises(ValueError, match="n_genres must be in 1..64"):
        write_synthetic(x, unchecked(n_tracks=20, n_users=10, n_plays=20, n_genres=65, n_artists=5), seed=0)
    assert not (tmp_path / "x").exists()


def test_allocate_counts() -> None:
    w = np.random.default_rng(0).lognormal(0, 2, size=1000)
    n = allocate_counts(w, 20_000, 5, 100)
    assert n.sum() == 20_000 and n.min() >= 5 and n.max() <= 100
    assert np.corrcoef(w, n)[0, 1] > 0.3
    with pytest.raises(ValueError):
        allocate_counts(w, 200_000, 5, 100)


def test_many_genres_and_tiny_catalogue() -> None:
    rng = np.random.default_rng(5)
    cat = generate_catalog(30, 100, 64, rng)  # more artists and clusters than tracks
    assert len(cat.frame) == 30 and len(genre_names(64)) == len(set(genre_names(64)))
    hist = pd.concat(iter_history(cat, 40, 400, rng, chunk_rows=100))
    assert len(hist) == 400 and not hist.duplicated(["user_id", "track_id"]).any()


def test_stage_script(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw["seed"] = 11
    raw["generate"] = dict(n_tracks=200, n_users=100, n_plays=2_000, n_genres=4, n_artists=40)
    raw["data"]["chunk_rows"] = 300
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw), encoding="utf-8")
    out = tmp_path / "data" / "raw" / "synthetic"
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "generate.py"), "--params", str(params), "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2000 plays" in proc.stdout and len(proc.stdout.strip().splitlines()) == 1
    info, hist = _read(out)
    assert len(info) == 200 and len(hist) == 2_000
    expected = tmp_path / "expected"
    write_synthetic(expected, GenerateParams(n_tracks=200, n_users=100, n_plays=2_000, n_genres=4, n_artists=40),
                    seed=11)
    assert _digest(out) == _digest(expected)
    # invalid params fail with a message naming the key
    raw["generate"]["n_plays"] = -1
    params.write_text(yaml.safe_dump(raw), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "generate.py"), "--params", str(params), "--out", str(out)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode != 0 and "generate.n_plays" in proc.stderr


def test_files_match_public_api(generated: tuple[Path, dict]) -> None:
    """write_synthetic == generate_catalog + iter_history written with pandas, seeded the same way."""
    out, _ = generated
    rng = np.random.default_rng(7)
    cat = generate_catalog(SIZES["n_tracks"], SIZES["n_artists"], SIZES["n_genres"], rng)
    hist = pd.concat(iter_history(cat, SIZES["n_users"], SIZES["n_plays"], rng, chunk_rows=20_000))
    info_csv = cat.frame.to_csv(index=False, lineterminator="\n")
    hist_csv = hist.to_csv(index=False, lineterminator="\n")
    assert (out / KAGGLE_MUSIC_INFO).read_text(encoding="utf-8") == info_csv
    assert (out / KAGGLE_HISTORY).read_text(encoding="utf-8") == hist_csv
