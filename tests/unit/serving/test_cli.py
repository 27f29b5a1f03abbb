"""The serving CLI (`python -m musicrec`) against a small pipeline output built once per module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support.pipeline import pipeline_env

MODELS = ["popularity", "itemknn", "als", "content", "hybrid"]


def build_pipeline_output(root: Path, *, models: list[str], seed: int = 42) -> Path:
    """generate -> clean -> transform -> interactions -> train with the package functions, under ``root``."""
    from musicrec.config import TrainParams
    from musicrec.pipeline.interactions import load_interactions
    from tests.support.pipeline import build_small_matrices
    from musicrec.pipeline.train import save_models, train_all

    data = build_small_matrices(root, seed=seed) / "data"
    inter = load_interactions(data / "processed/matrices")
    items = pd.read_parquet(data / "processed/items.parquet")
    params = TrainParams(models=models, als={"factors": 16, "iterations": 6, "regularization": 1.0, "alpha": 10.0},
                         itemknn={"similarity": "cosine", "k": 100})
    save_models(data / "models", train_all(inter, items, params, seed), inter, items)
    return root


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return build_pipeline_output(tmp_path_factory.mktemp("cli"), models=MODELS)


@pytest.fixture(scope="module")
def ids(out):
    users = pd.read_parquet(out / "data/models/users.parquet")["user_id"].astype(str).tolist()
    catalog = pd.read_parquet(out / "data/models/catalog.parquet")
    return users, catalog


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = pipeline_env({"PYTHONPATH": str(Path(__file__).resolve().parents[3] / "src") + os.pathsep
                        + os.environ.get("PYTHONPATH", "")})
    return subprocess.run([sys.executable, "-m", "musicrec", *args], cwd=cwd, env=env, capture_output=True,
                           text=True, timeout=120)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_recommend_user_prints_a_table_with_names_and_reasons(out, ids):
    users, catalog = ids
    stdout = ok(cli(out, "recommend", "--user", users[3], "-n", "7"))
    lines = stdout.splitlines()
    assert lines[0].startswith("hybrid: top 7 for user"), "the hybrid is the default when trained"
    assert lines[1].split()[:6] == ["#", "id", "track", "artist", "score", "why"]
    body = lines[3:]
    assert len(body) == 7
    assert [int(line.split()[0]) for line in body] == list(range(1, 8))
    assert all("like " in line for line in body), stdout  # the collaborative part: a known track
    assert sum("tags: " in line for line in body) >= 4, stdout  # the content part: shared tags (where any)


def test_recommend_user_json_excludes_known_items_and_matches_the_model(out, ids):
    from musicrec.pipeline.interactions import load_interactions
    from musicrec.models.factory import load_model

    users, catalog = ids
    doc = json.loads(ok(cli(out, "recommend", "--user", users[10], "-n", "10", "--model", "als", "--json")))
    assert doc["model"] == "als" and doc["user"] == users[10]
    recs = doc["results"]
    assert [r["rank"] for r in recs] == list(range(1, 11))
    assert set(recs[0]) == {"rank", "item_id", "name", "artist", "score", "why"}
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)
    inter = load_interactions(out / "data/processed/matrices")
    known = set(catalog["item_id"].astype(str).to_numpy()[inter.query_rows()[10].indices])
    assert not known & {r["item_id"] for r in recs}
    model = load_model(out / "data/models/als")
    row = inter.query_rows()[[10]]
    expected, _ = model.recommend(np.array([10]), row, N=10)
    assert [r["item_id"] for r in recs] == list(catalog["item_id"].astype(str).to_numpy()[expected[0]])
    # the reason names one of the user's own tracks
    names = set(catalog["name"].to_numpy()[inter.query_rows()[10].indices])
    assert all(any(n in r["why"] for n in names) for r in recs)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_serves_every_command(out, ids, model):
    """In process (the CLI is a thin layer over serving.recommender.ModelServer; one model also through the CLI below)."""
    from musicrec.serving.recommender import ModelServer, to_records

    users, catalog = ids
    tracks = catalog["item_id"].astype(str).tolist()
    rec = ModelServer.load(out / "data/models", model, matrices_dir=out / "data/processed/matrices")
    assert rec.model_name == model
    for df in (rec.recommend_user(users[0], 5), rec.recommend_liked([tracks[0], tracks[5]], 5),
               rec.similar(tracks[1], 5)):
        rows = to_records(df)
        assert len(rows) == 5 and all(r["why"] and r["name"] for r in rows), (model, rows)
        json.dumps(rows)


def test_like_and_similar_through_the_cli_with_a_named_model(out, ids):
    _, catalog = ids
    tracks = catalog["item_id"].astype(str).tolist()
    doc = json.loads(ok(cli(out, "recommend", "--like", tracks[0], tracks[5], "-n", "5", "--model", "itemknn",
                            "--json")))
    assert doc["model"] == "itemknn" and doc["like"] == [tracks[0], tracks[5]] and len(doc["results"]) == 5
    liked_names = {catalog["name"].iloc[0], catalog["name"].iloc[5]}
    assert all(any(n in r["why"] for n in liked_names) for r in doc["results"]), doc


def test_cold_start_like_follows_the_liked_genre(out, ids):
    _, catalog = ids
    genre = catalog["genre"].dropna().value_counts().index[0]
    liked = catalog[catalog["genre"] == genre]["item_id"].astype(str).head(4).tolist()
    doc = json.loads(ok(cli(out, "recommend", "--like", *liked, "-n", "10", "--json")))
    rec_ids = [r["item_id"] for r in doc["results"]]
    assert not set(rec_ids) & set(liked), "liked tracks are not recommended back"
    got = catalog.set_index(catalog["item_id"].astype(str)).loc[rec_ids, "genre"].dropna()  # genre is often null
    assert len(got) >= 2 and (got == genre).mean() >= 0.6, got.tolist()
    assert doc["like"] == liked


def test_similar_table_and_reasons(out, ids):
    _, catalog = ids
    track = catalog["item_id"].astype(str).iloc[2]
    stdout = ok(cli(out, "similar", track, "-n", "5", "--model", "content"))
    assert stdout.splitlines()[0].startswith("content: top 5 similar to ")
    assert len(stdout.splitlines()) == 3 + 5
    doc = json.loads(ok(cli(out, "similar", track, "-n", "5", "--model", "content", "--json")))
    assert track not in [r["item_id"] for r in doc["results"]]
    assert any("tags: " in r["why"] for r in doc["results"])


def test_unknown_track_suggests_close_ids_and_names(out, ids):
    _, catalog = ids
    track = catalog["item_id"].astype(str).iloc[7]
    typo = track[:-1] + ("X" if track[-1] != "X" else "Y")
    proc = cli(out, "similar", typo)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"unknown track id '{typo}'" in proc.stderr and track in proc.stderr
    name = str(catalog["name"].iloc[7])
    proc = cli(out, "recommend", "--like", name.upper())
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert track in proc.stderr, "a track name (any case) suggests the track's id"


def test_unknown_user_json_error(out, ids):
    users, _ = ids
    proc = cli(out, "recommend", "--user", users[4][:-3], "--json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    doc = json.loads(proc.stderr)
    assert doc["error"].startswith("unknown user id")
    assert users[4] in [s["id"] for s in doc["suggestions"]]


def test_bad_model_and_missing_folders_exit_2_without_traceback(out, ids, tmp_path):
    users, _ = ids
    for args, needle in (
        (["similar", "x", "--model", "alss"], "did you mean 'als'"),
        (["similar", "x", "--models", str(tmp_path / "nope")], "models folder not found"),
        (["recommend", "--user", users[0], "--matrices", str(tmp_path / "nope")], "train.npz"),
        (["recommend", "--user", users[0], "-n", "0"], "-n must be a positive integer"),
    ):
        proc = cli(out, *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert needle in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
    assert cli(out, "recommend", "-n", "3").returncode == 2  # neither --user nor --like (argparse)


def test_models_command_lists_and_marks_the_default(out):
    heads = [line.split()[0] + (" (default)" if "(default)" in line else "")
             for line in ok(cli(out, "models")).splitlines() if not line.startswith(" ")]  # one block per model
    assert heads == ["als", "content", "hybrid (default)", "itemknn", "popularity"]
    doc = json.loads(ok(cli(out, "models", "--json")))
    assert (doc["models"], doc["default"]) == (sorted(MODELS), "hybrid")


def test_default_model_falls_back_to_als_then_first(tmp_path):
    from musicrec.serving.artifacts import default_model

    assert default_model(["als", "hybrid", "popularity"]) == "hybrid"
    assert default_model(["als", "itemknn", "popularity"]) == "als"
    assert default_model(["itemknn", "popularity"]) == "itemknn"


def test_recommender_object_in_process(out, ids):
    from musicrec.serving.recommender import COLUMNS, ModelServer, UnknownIdError

    users, catalog = ids
    rec = ModelServer.load(out / "data/models", matrices_dir=out / "data/processed/matrices")
    df = rec.recommend_user(users[1], n=4)
    assert list(df.columns) == list(COLUMNS) and len(df) == 4
    n_items = len(catalog)
    assert len(rec.similar(catalog["item_id"].iloc[0], n=n_items + 5)) == n_items - 1
    with pytest.raises(UnknownIdError) as exc:
        rec.item_index("definitely-not-a-track")
    assert exc.value.kind == "track"


def test_cli_does_not_import_mlflow_or_dask(out, ids):
    users, _ = ids
    code = ("import sys, runpy; sys.argv=['musicrec','recommend','--user',%r,'-n','3']\n"
            "try:\n    runpy.run_module('musicrec', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('mlflow','dask','distributed') if m in sys.modules))") % users[0]
    proc = subprocess.run([sys.executable, "-c", code], cwd=out, env=pipeline_env(), capture_output=True, text=True,
                          timeout=120)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr
