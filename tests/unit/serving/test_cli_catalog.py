"""`musicrec search`, `models` (params, size, metrics), `--version`, `cache` and artist-level wording."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.unit.serving.test_cli import build_pipeline_output, cli, ok


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return build_pipeline_output(tmp_path_factory.mktemp("cli-catalog"), models=["popularity", "als"])


@pytest.fixture(scope="module")
def catalog(out) -> pd.DataFrame:
    return pd.read_parquet(out / "data/models/catalog.parquet")


@pytest.fixture(scope="module")
def artist_level(out, tmp_path_factory) -> Path:
    """The same models folder marked as an artist-level source's (what train writes for HetRec / 360K)."""
    root = tmp_path_factory.mktemp("artists")
    shutil.copytree(out / "data", root / "data")
    (root / "data/models/catalog.json").write_text(json.dumps({"source": "hetrec_lastfm_2k", "item_kind": "artist"}))
    return root


def test_train_records_what_the_items_are():
    from musicrec.ingest import SOURCES
    from musicrec.pipeline.catalog import catalog_info

    for name, source in SOURCES.items():
        assert catalog_info(name) == {"source": name, "item_kind": "artist" if source.artist_level else "track"}
    assert catalog_info("hetrec_lastfm_2k")["item_kind"] == "artist"
    assert catalog_info(None)["item_kind"] == "track"


def test_the_models_folder_says_its_items_are_tracks(out):
    doc = json.loads((out / "data/models/catalog.json").read_text())
    assert doc["item_kind"] == "track"


def test_search_by_name_finds_tracks_and_artists(out, catalog):
    name = str(catalog["name"].dropna().iloc[7])
    word = max(name.split(), key=len).lower()
    doc = json.loads(ok(cli(out, "search", word.upper(), "-n", "50", "--json")))  # case-insensitive
    tracks = [r for r in doc["results"] if r["kind"] == "track"]
    assert tracks and all(word in r["name"].lower() for r in tracks)
    assert str(catalog["item_id"].iloc[7]) in {r["id"] for r in tracks}
    artist = str(catalog["artist"].dropna().iloc[3])
    doc = json.loads(ok(cli(out, "search", artist, "--json")))
    first = next(r for r in doc["results"] if r["kind"] == "artist")
    assert first["name"] == artist and first["match"] == "name"  # the exact name first
    assert first["tracks"] == int((catalog["artist"] == artist).sum())


def test_search_by_id_prefix_finds_the_track_and_the_user(out, catalog):
    from musicrec.serving.recommender import Catalog, search

    cat = Catalog.read(out / "data/models")
    track = str(catalog["item_id"].iloc[11])
    found = search(cat, track[:-1].lower(), 5)
    assert found.iloc[0]["id"] == track and found.iloc[0]["match"] == "id"
    user = str(cat.user_ids[4])
    found = search(cat, user, 3)
    assert found[found.kind == "user"]["id"].tolist()[0] == user
    prefix = user[:2]
    matching = sum(u.lower().startswith(prefix.lower()) for u in cat.user_ids)
    text = ok(cli(out, "search", prefix, "-n", "2"))
    assert text.splitlines()[0].split() == ["kind", "id", "name", "artist", "/", "tracks"]
    assert sum(line.startswith("user ") for line in text.splitlines()) == min(2, matching)


def test_search_without_a_match_and_with_an_empty_query(out):
    assert ok(cli(out, "search", "no such thing zzqq")).strip() == "no match"
    proc = cli(out, "search", "  ")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "give a name or an id prefix" in proc.stderr
    proc = cli(out, "search", "a", "-n", "0")
    assert proc.returncode == 2 and "-n must be a positive integer" in proc.stderr


def test_models_lists_params_size_and_metrics(out):
    metrics = {"als": {"ndcg@10": 0.14584, "recall@10": 0.2, "ndcg@20": 0.3}, "popularity": {"ndcg@10": 0.05}}
    (out / "reports").mkdir(exist_ok=True)
    (out / "reports/metrics.json").write_text(json.dumps(metrics))
    text = ok(cli(out, "models"))
    lines = text.splitlines()
    assert lines[0].startswith("als  (default)  ") and lines[0].endswith("B")
    # the whole train.als section as trained: its own params and its input weighting
    assert lines[1] == ("  params: alpha=10, bm25_b=0.8, bm25_k1=100, factors=16, iterations=6, regularization=1, "
                        "weighting=log1p")
    assert lines[2] == "  test: ndcg@10 0.1458, recall@10 0.2000"
    assert lines[3].startswith("popularity  ") and "(default)" not in lines[3]
    doc = json.loads(ok(cli(out, "models", "--json", "-k", "20")))
    assert doc["models"] == ["als", "popularity"] and doc["default"] == "als"
    als = doc["details"][0]
    assert als["metrics"] == {"ndcg@20": 0.3} and als["params"]["factors"] == 16
    assert als["size_bytes"] == sum(f.stat().st_size for f in (out / "data/models/als").rglob("*") if f.is_file())


def test_models_without_metrics_says_so(out, tmp_path):
    text = ok(cli(out, "models", "--metrics", str(tmp_path / "none.json")))
    assert "test: – (no reports/metrics.json entry)" in text


def test_version_comes_from_the_package_metadata(out):
    from musicrec.serving.cli import package_version

    proc = cli(out, "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"musicrec {package_version()}"
    try:
        from importlib.metadata import version

        assert package_version() == version("musicrec")
    except Exception:  # not installed (PYTHONPATH only): the note says how
        assert "pip install -e ." in package_version()


def make_cached_run(root: Path, store: str, run_id: str, age_days: float, size: int = 1000) -> Path:
    run = root / "mlflow-runs" / store / run_id
    (run / "model").mkdir(parents=True)
    (run / "model" / "arrays.npz").write_bytes(b"x" * size)
    marker = run / ".complete"
    marker.write_text("store\n")
    t = time.time() - age_days * 86_400
    os.utime(marker, (t, t))
    return run


def test_cache_prune_removes_old_runs_only(tmp_path):
    from musicrec.serving import cache

    old = make_cached_run(tmp_path, "a1", "r-old", age_days=30)
    new = make_cached_run(tmp_path, "a1", "r-new", age_days=0.1)
    other = make_cached_run(tmp_path, "b2", "r-other", age_days=10)
    partial = tmp_path / "mlflow-runs" / "a1" / ".tmp-r-x-123"  # a download in progress: never a complete run
    partial.mkdir()
    assert [r.run_id for r in cache.usage(tmp_path)] == ["r-old", "r-other", "r-new"]
    assert [r.run_id for r in cache.prune(7, root=tmp_path, dry_run=True)] == ["r-old", "r-other"]
    assert old.is_dir() and other.is_dir()
    removed = cache.prune(7, root=tmp_path)
    assert [r.size_bytes for r in removed] == [1000 + 6, 1000 + 6]
    assert not old.exists() and not other.exists() and not other.parent.exists()
    assert new.is_dir() and partial.is_dir()
    cache.prune(root=tmp_path)
    assert not new.exists() and partial.is_dir()


def test_cache_commands(out, tmp_path, monkeypatch):
    make_cached_run(tmp_path, "a1", "r1", age_days=3, size=1500)
    monkeypatch.setenv("MUSICREC_CACHE_DIR", str(tmp_path))
    text = ok(cli(out, "cache"))
    assert text.splitlines()[0] == f"{tmp_path}: 1 cached run(s), 1.5 kB" and "r1" in text
    assert ok(cli(out, "cache", "prune", "--dry-run")).strip() == f"{tmp_path}: would remove 1 cached run(s), 1.5 kB"
    assert ok(cli(out, "cache", "prune", "--older-than", "5")).strip().endswith("removed 0 cached run(s), 0 B")
    doc = json.loads(ok(cli(out, "cache", "prune", "--json")))
    assert [r["run_id"] for r in doc["runs"]] == ["r1"] and not (tmp_path / "mlflow-runs/a1/r1").exists()
    proc = cli(out, "cache", "prune", "--older-than", "-1")
    assert proc.returncode == 2 and "--older-than must be 0 or more days" in proc.stderr


def test_artist_level_sources_print_artists(artist_level, catalog):
    item = str(catalog["item_id"].iloc[2])
    lines = ok(cli(artist_level, "similar", item, "-n", "3")).splitlines()
    assert lines[0].startswith("als: top 3 artists similar to ")
    assert lines[1].split() == ["#", "id", "artist", "score", "why"]
    users = pd.read_parquet(artist_level / "data/models/users.parquet")["user_id"].astype(str)
    assert ok(cli(artist_level, "recommend", "--user", users.iloc[0], "-n", "2")).startswith(
        "als: top 2 artists for user ")
    assert "likes 1 artist(s)" in ok(cli(artist_level, "recommend", "--like", item, "-n", "2")).splitlines()[0]
    doc = json.loads(ok(cli(artist_level, "similar", item, "-n", "2", "--json")))
    assert doc["item_kind"] == "artist"
    proc = cli(artist_level, "similar", "nope-not-an-id")
    assert proc.returncode == 2 and "unknown artist id 'nope-not-an-id'" in proc.stderr
    found = json.loads(ok(cli(artist_level, "search", item, "--json")))["results"]
    assert found[0]["kind"] == "artist" and found[0]["id"] == item and found[0]["artist"] is None
    assert {r["kind"] for r in found} <= {"artist", "user"}


def test_a_bad_catalog_info_is_one_error_line(artist_level, tmp_path):
    shutil.copytree(artist_level / "data", tmp_path / "data")
    (tmp_path / "data/models/catalog.json").write_text('{"item_kind": "album"}')
    proc = cli(tmp_path, "search", "a")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "catalog.json: item_kind must be 'track' or 'artist' (got 'album')" in proc.stderr
    (tmp_path / "data/models/catalog.json").write_text("{not json")
    proc = cli(tmp_path, "search", "a")
    assert proc.returncode == 2 and "catalog.json" in proc.stderr and "Traceback" not in proc.stderr
