"""The app's view model (musicrec.serving.app.workspace / stats / source) without Streamlit, on a tiny trained workspace."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musicrec.serving.app.source import AppSource
from musicrec.serving.app.workspace import Workspace
from musicrec.serving.artifacts import ServingError
from musicrec.serving.recommender import UnknownIdError
from tests.support.app_data import tiny_workspace, variant, with_previews


def source_for(root: Path, models: Path | None = None, **kw) -> AppSource:
    args = {"models": str(models or root / "data/models"), "matrices": str(root / "data/processed/matrices"),
            "items": str(root / "data/processed/items.parquet"), "reports": str(root / "reports")}
    return AppSource(**{**args, **kw})


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tiny_workspace(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def ws(root) -> Workspace:
    return Workspace.load(source_for(root))


@pytest.fixture(scope="module")
def liked(ws) -> list[str]:
    return ws.search_tracks("", 3)["item_id"].tolist()


# ---- source --------------------------------------------------------------------------------
def test_source_parses_the_command_line_and_rejects_bad_arguments():
    s = AppSource.from_argv(["--models", "m", "--matrices", "x"])
    assert (s.models, s.matrices, s.run_id) == ("m", "x", None)
    assert AppSource.from_argv([]) == AppSource()
    assert AppSource.from_argv(["--model-uri", "models:/musicrec@champion"]).model_uri == "models:/musicrec@champion"
    assert AppSource.from_argv(["--model-uri", "models:/musicrec/3"]).label == "MLflow registered model models:/musicrec/3"
    for bad, word in ((["--modles", "x"], "--modles"), (["--model-uri", "runs:/abc/model"], "models:/NAME@ALIAS"),
                      (["--run-id", "a", "--model-uri", "models:/m@c"], "not allowed with")):
        with pytest.raises(ServingError, match=word):
            AppSource.from_argv(bad)


def test_a_missing_or_empty_models_folder_says_which_command_to_run(tmp_path):
    for models in (tmp_path / "absent", tmp_path):
        with pytest.raises(ServingError) as err:
            Workspace.load(AppSource(models=str(models), matrices=None, items=None))
        assert str(models) in str(err.value) and "make repro" in str(err.value) and "dvc pull" in str(err.value)


# ---- listener ------------------------------------------------------------------------------
def test_find_users_by_prefix(ws):
    users = sorted(ws.base.user_ids)
    prefix = users[7][:2]
    found = ws.find_users(prefix, limit=1000)
    assert found == [u for u in users if u.startswith(prefix)]
    assert ws.find_users(prefix, limit=2) == found[:2]
    assert ws.find_users(f"  {users[7]} ") == [users[7]]
    assert ws.find_users("zz-no-such-user") == []


def test_listener_history_is_the_users_heaviest_tracks(ws):
    user = ws.base.user_ids[5]
    top = ws.listener_history(user, 4)
    row = ws.base.history()[ws.base.user_index(user)]
    assert len(top) == min(4, row.nnz)
    assert list(top["weight"]) == sorted(top["weight"], reverse=True)
    assert top["weight"].iloc[0] == pytest.approx(row.data.max(), abs=1e-4)
    assert set(top["item_id"]) <= set(ws.item_ids[row.indices])


@pytest.mark.parametrize("model", ["popularity", "itemknn", "als", "content", "hybrid"])
def test_recommend_user_is_the_models_answer_with_previews(ws, model):
    user = ws.base.user_ids[11]
    got = ws.recommend_user(user, model, 6)
    want = ws.servers[model].recommend_user(user, 6)
    pd.testing.assert_frame_equal(got.drop(columns="preview_url"), want)
    assert got["preview_url"].isna().all()  # the synthetic catalogue has no preview URLs


def test_listener_bad_input(ws):
    with pytest.raises(UnknownIdError):
        ws.recommend_user("no-such-user", "als", 5)
    with pytest.raises(ServingError, match="'bpr' is not trained"):
        ws.recommend_user(ws.base.user_ids[0], "bpr", 5)
    with pytest.raises(ServingError, match="positive integer"):
        ws.listener_history(ws.base.user_ids[0], 0)


# ---- search --------------------------------------------------------------------------------
def test_search_tracks_matches_names_and_artists_most_listened_first(ws):
    artist = ws.catalog["artist"].dropna().iloc[0]
    found = ws.search_tracks(artist.upper()[:6], limit=500)
    assert len(found) and all(artist.lower()[:6] in label.lower() for label in found["label"])
    assert list(found["listeners"]) == sorted(found["listeners"], reverse=True)
    top = ws.search_tracks("", 5)
    assert list(top["listeners"]) == sorted(ws.popularity, reverse=True)[:5]
    assert ws.search_tracks("no such track zzz").empty


# ---- start from songs ------------------------------------------------------------------------
def test_cold_start_hybrid_at_the_trained_weights_is_the_trained_hybrid(ws, liked):
    got = ws.cold_start(liked, 10, mode="hybrid", content_weight=0.2, mmr_lambda=1.0).table
    want = ws.servers["hybrid"].recommend_liked(liked, 10)
    assert list(got["item_id"]) == list(want["item_id"])
    np.testing.assert_allclose(got["score"], want["score"] / 1.0, rtol=1e-5)
    assert not set(got["item_id"]) & set(liked)


@pytest.mark.parametrize("mode, model", [("collaborative", "als"), ("content", "content")])
def test_cold_start_single_parts_rank_like_the_part_alone(ws, liked, mode, model):
    got = ws.cold_start(liked, 8, mode=mode, mmr_lambda=1.0).table
    want = ws.servers[model].recommend_liked(liked, 8)
    assert list(got["item_id"]) == list(want["item_id"])
    assert list(got["why"]) == list(want["why"])  # the part's own explanation


def test_the_weight_and_diversity_sliders_re_rank(ws, liked):
    plain = ws.cold_start(liked, 10, mode="hybrid", content_weight=0.2, mmr_lambda=1.0).table
    diverse = ws.cold_start(liked, 10, mode="hybrid", content_weight=0.2, mmr_lambda=0.0).table
    assert diverse["item_id"].iloc[0] == plain["item_id"].iloc[0]  # first pick: no penalty yet
    assert list(diverse["item_id"]) != list(plain["item_id"])
    assert list(diverse["score"]) == sorted(diverse["score"], reverse=True)
    heavy = ws.cold_start(liked, 10, mode="hybrid", content_weight=1.0, mmr_lambda=1.0).table
    assert list(heavy["item_id"]) == list(ws.cold_start(liked, 10, mode="content").table["item_id"])
    assert ws.servers["hybrid"].model.weight_content == 0.2  # the trained model is never changed


def test_mmr_lambda_matches_the_hybrids_own_mmr(ws, liked):
    from musicrec.models.hybrid import HybridRecommender

    trained = ws.servers["hybrid"].model
    own = HybridRecommender.from_components(trained.collab, trained.content, weight_collaborative=0.8,
                                            weight_content=0.2, mmr_lambda=0.4)
    want = ws.base.with_model("hybrid", own).recommend_liked(liked, 10)
    got = ws.cold_start(liked, 10, mode="hybrid", content_weight=0.2, mmr_lambda=0.4).table
    assert list(got["item_id"]) == list(want["item_id"])


def test_cold_start_bad_input(ws, liked):
    with pytest.raises(ServingError, match="at least one"):
        ws.cold_start([], 10)
    with pytest.raises(UnknownIdError):
        ws.cold_start(["TR-NO-SUCH-TRACK"], 10)
    for kw, word in (({"content_weight": 1.5}, "content weight"), ({"mmr_lambda": -0.1}, "MMR lambda"),
                     ({"mmr_lambda": True}, "MMR lambda"), ({"mode": "random"}, "mode")):
        with pytest.raises(ServingError, match=word):
            ws.cold_start(liked, 10, **kw)


def test_cold_start_balance_and_popularity(ws, liked):
    out = ws.cold_start(liked, 10, mode="hybrid")
    artists = {ws.catalog["artist"].iloc[ws.base.item_index(t)] for t in liked}
    assert out.balance["tracks"].sum() == len(out.table)
    assert out.balance.set_index("kind").loc["liked artists", "tracks"] == out.table["artist"].isin(artists).sum()
    idx = [ws.base.item_index(t) for t in out.table["item_id"]]
    assert list(out.popularity["listeners"]) == list(ws.popularity[idx].astype(int))


# ---- more like this --------------------------------------------------------------------------
def test_similar_side_by_side(ws, liked):
    track = liked[0]
    side = ws.similar_side_by_side(track, 7)
    assert list(side) == ["collaborative (als)", "content (tags + audio)", "audio 0.6 + text 0.4"]
    assert list(side["collaborative (als)"]["item_id"]) == list(ws.servers["als"].similar(track, 7)["item_id"])
    assert list(side["content (tags + audio)"]["item_id"]) == list(ws.servers["content"].similar(track, 7)["item_id"])
    f = ws.content.features
    i = ws.base.item_index(track)
    blend = side["audio 0.6 + text 0.4"]
    for j, score in zip((ws.base.item_index(t) for t in blend["item_id"]), blend["score"]):
        tag = float(f.tags[i].multiply(f.tags[j]).sum())
        audio = float(f.audio[i].multiply(f.audio[j]).sum())
        if f.tags[j].nnz and f.audio[j].nnz:
            assert score == pytest.approx(0.6 * audio + 0.4 * tag, abs=1e-5)
    assert track not in set(blend["item_id"])
    with pytest.raises(UnknownIdError):
        ws.similar_side_by_side("nope", 5)


# ---- previews --------------------------------------------------------------------------------
def test_previews_come_from_the_catalogue_and_only_as_http_urls(root, tmp_path):
    ws = Workspace.load(source_for(root, variant(root, tmp_path, catalog=with_previews)))
    assert ws.previews[0].startswith("https://") and ws.previews[1] is None and ws.previews[3] is None
    recs = ws.recommend_user(ws.base.user_ids[0], "als", 20)
    for item, url in zip(recs["item_id"], recs["preview_url"]):
        assert url == ws.preview(item)
        assert url is None or url.startswith("https://p.scdn.co/")
    assert ws.preview(ws.item_ids[1]) is None  # a local path is never a preview


# ---- the default models folder (no content, no hybrid) ----------------------------------------
@pytest.mark.parametrize("items", [True, False])
def test_without_a_trained_content_model_it_is_built_here(root, tmp_path, liked, items):
    models = variant(root, tmp_path, drop=("content", "hybrid"))
    src = source_for(root, models, **({} if items else {"items": None}))
    ws = Workspace.load(src)
    assert ws.model_names == ["als", "itemknn", "popularity"] and ws.default == "als"
    assert ws.content_origin.startswith("built from the items table" if items else "built from the catalogue")
    assert (ws.content.features.audio.nnz > 0) == items
    assert ws.cold_start_modes() == ["hybrid", "content", "collaborative"]
    out = ws.cold_start(liked, 10, mode="content").table
    assert len(out) == 10 and out["why"].str.contains("tags: |similar sound: ").any()
    assert len(ws.similar_side_by_side(liked[0], 5)) == 3


def test_without_histories_the_listener_page_explains_and_cold_start_works(root, liked):
    ws = Workspace.load(source_for(root, matrices=str(root / "missing")))
    assert not ws.has_history and "not found" in ws.history_error
    with pytest.raises(ServingError, match="histories are not available"):
        ws.listener_history(ws.base.user_ids[0])
    assert ws.explore().activity is None
    assert len(ws.cold_start(liked, 5).table) == 5


# ---- explore ---------------------------------------------------------------------------------
def test_explore_statistics(ws):
    data = ws.explore()
    tail = data.long_tail
    assert tail["listens %"].is_monotonic_increasing and tail["listens %"].iloc[-1] == pytest.approx(100)
    assert tail["tracks %"].iloc[-1] == pytest.approx(100)
    assert data.activity["listeners"].sum() == len(ws.base.user_ids)
    assert list(data.tags["tracks"]) == sorted(data.tags["tracks"], reverse=True)
    assert set(data.audio["feature"]) == {"danceability", "energy", "key", "loudness", "mode", "speechiness",
                                          "acousticness", "instrumentalness", "liveness", "valence", "tempo",
                                          "time_signature"}
    assert data.summary["tracks"] == ws.base.n_items
    assert data.provenance["models"].startswith("models folder")


def test_model_comparison_reads_metrics_and_intervals(tmp_path):
    from musicrec.serving.app.stats import model_comparison

    (tmp_path / "metrics.json").write_text(json.dumps({
        "als": {"ndcg@10": 0.14, "recall@10": 0.2, "coverage@10": 0.05, "novelty@10": 5.5},
        "popularity": {"ndcg@10": 0.08, "recall@10": 0.1, "coverage@10": 0.001, "novelty@10": 3.0}}))
    (tmp_path / "evaluation.json").write_text(json.dumps({"als": {"ci": {"ndcg@10": [0.13, 0.15]}}}))
    df, notes = model_comparison(tmp_path, 10)
    assert notes == [] and list(df["model"]) == ["als", "popularity"]
    assert (df.loc[0, "ndcg@10 low"], df.loc[0, "ndcg@10 high"]) == (0.13, 0.15)
    assert math.isnan(df.loc[1, "ndcg@10 low"]) or df.loc[1, "ndcg@10 low"] is None
    (tmp_path / "evaluation.json").write_text("{not json")
    df, notes = model_comparison(tmp_path, 10)
    assert len(df) == 2 and len(notes) == 1 and str(tmp_path / "evaluation.json") in notes[0]
    df, notes = model_comparison(tmp_path / "nowhere", 10)
    assert df.empty and [("metrics.json" in n, "not found" in n) for n in notes][0] == (True, True)


def test_a_registered_model_uri_resolves_to_its_run(tmp_path):
    """``--model-uri models:/NAME@ALIAS`` (and ``/VERSION``) finds the run whose models the app downloads."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from musicrec.serving.app.source import model_uri_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.create_run(client.create_experiment("app", artifact_location=str(tmp_path / "artifacts")))
    client.create_registered_model("musicrec")
    version = client.create_model_version("musicrec", str(tmp_path / "artifacts/model"), run_id=run.info.run_id)
    client.set_registered_model_alias("musicrec", "champion", version.version)
    assert model_uri_run("models:/musicrec@champion", uri) == run.info.run_id
    assert model_uri_run(f"models:/musicrec/{version.version}", uri) == run.info.run_id
    for bad in ("models:/nope@champion", "models:/musicrec@nobody"):
        with pytest.raises(ServingError, match="not found in the model registry"):
            model_uri_run(bad, uri)


def test_the_composed_models_take_params_yaml_train_content_and_hybrid(root, tmp_path):
    import yaml

    doc = yaml.safe_load((Path(__file__).resolve().parents[3] / "params.yaml").read_text())
    doc["train"]["content"] = {"tag_weight": 0.3, "audio_weight": 2.0}
    doc["train"]["hybrid"].update({"weight_collaborative": 0.5, "weight_content": 0.5, "mmr_lambda": 0.7})
    good = tmp_path / "params.yaml"
    good.write_text(yaml.safe_dump(doc))
    models = variant(root, tmp_path, drop=("content", "hybrid"))
    ws = Workspace.load(source_for(root, models, params=str(good)))
    assert ws.content.get_params() == {"tag_weight": 0.3, "audio_weight": 2.0}
    assert (ws.default_weights, ws.default_mmr, ws.collab_name) == ((0.5, 0.5), 0.7, "als")
    doc["train"]["content"]["tag_weight"] = -1  # invalid: the registry's defaults
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    ws = Workspace.load(source_for(root, models, params=str(bad)))
    assert ws.content.get_params() == {"tag_weight": 1.0, "audio_weight": 0.5} and ws.default_weights == (0.8, 0.2)
    assert ws.explore().provenance["data source"].startswith("unknown: ")
