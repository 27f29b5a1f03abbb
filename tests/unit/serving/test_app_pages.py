"""Every page and widget of the Streamlit app, with Streamlit's AppTest (no browser), on a tiny trained workspace."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from musicrec.serving.app import ui  # noqa: E402
from musicrec.serving.app.source import AppSource  # noqa: E402
from tests.support.app_data import tiny_workspace, variant, with_previews  # noqa: E402

APP = str(Path(ui.__file__).with_name("streamlit_app.py"))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tiny_workspace(tmp_path_factory.getbasetemp())
    reports = root / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "metrics.json").write_text(json.dumps({
        "als": {"ndcg@10": 0.14, "recall@10": 0.2, "coverage@10": 0.05, "novelty@10": 5.5},
        "popularity": {"ndcg@10": 0.08, "recall@10": 0.1, "coverage@10": 0.001, "novelty@10": 3.0}}))
    (reports / "evaluation.json").write_text(json.dumps({"als": {"ci": {"ndcg@10": [0.13, 0.15]}}}))
    return root


def app(root: Path, page: str | None = None, models: Path | None = None, **kw) -> AppTest:
    src = {"models": str(models or root / "data/models"), "matrices": str(root / "data/processed/matrices"),
           "items": str(root / "data/processed/items.parquet"), "reports": str(root / "reports"), **kw}
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state[ui.SOURCE_KEY] = AppSource(**src)
    at.run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def table_names(at: AppTest, k: int = -1) -> list[str]:
    return list(at.table[k].value["name"])


def captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


# ---- listener ------------------------------------------------------------------------------
def test_listener_page_finds_a_user_and_recommends(root):
    at = app(root)
    assert at.title[0].value == "For a listener" and "first characters" in at.info[0].value
    users = sorted(pd.read_parquet(root / "data/models/users.parquet")["user_id"].astype(str))
    at.text_input(key="user_prefix").input(users[0][:3]).run()
    assert not at.exception
    assert at.selectbox(key="user").options[0] == users[0]
    assert at.selectbox(key="listener_model").value == "hybrid"
    assert len(at.table) == 2 and len(at.table[1].value) == 10  # most played, recommendations
    at.slider(key="listener_n").set_value(4).run()
    assert len(at.table[1].value) == 4
    before = table_names(at)
    at.selectbox(key="listener_model").set_value("popularity").run()
    assert not at.exception and table_names(at) != before
    assert at.table[1].value["why"].str.startswith("popular").all()
    assert "No audio previews" in captions(at)


def test_listener_page_unknown_prefix_is_a_warning_with_suggestions(root):
    at = app(root)
    at.text_input(key="user_prefix").input("zz-nobody").run()
    assert not at.exception and not at.table
    assert "No user id starts with 'zz-nobody'" in at.warning[0].value


def test_listener_page_without_histories_says_why(root):
    at = app(root, matrices=str(root / "missing"))
    assert "not found" in at.error[0].value and not at.text_input


# ---- start from songs ------------------------------------------------------------------------
def test_start_from_songs_picks_tracks_and_the_sliders_re_rank(root):
    at = app(root, "start_from_songs")
    assert at.title[0].value == "Start from songs"
    assert "at least one liked track" in at.info[0].value and not at.table  # empty selection
    liked = at.multiselect(key="liked")
    liked.select(liked.options[0]).run()
    ids = at.multiselect(key="liked").value
    assert len(ids) == 1 and len(at.table[0].value) == 10
    plain = table_names(at, 0)
    at.slider(key="mmr_lambda").set_value(0.0).run()
    assert not at.exception and table_names(at, 0) != plain  # the diversity slider re-ranks
    at.slider(key="mmr_lambda").set_value(1.0).run()
    assert table_names(at, 0) == plain
    at.slider(key="cold_n").set_value(4).run()
    assert table_names(at, 0) == plain[:4]  # n: the same ranking, shorter
    at.slider(key="cold_n").set_value(10).run()
    at.slider(key="content_weight").set_value(1.0).run()
    assert table_names(at, 0) != plain  # the collaborative-vs-content slider re-ranks
    at.radio(key="cold_mode").set_value("content").run()
    assert not at.exception and [s.key for s in at.slider if s.key == "content_weight"] == []
    assert at.table[0].value["why"].str.contains("tags: |similar sound: ").any()
    assert len(at.get("vega_lite_chart")) == 2  # balance and popularity charts


def test_start_from_songs_search_keeps_the_selection(root):
    at = app(root, "start_from_songs")
    first = at.multiselect(key="liked").options[0]
    at.multiselect(key="liked").select(first).run()
    picked = at.multiselect(key="liked").value
    at.text_input(key="song_query").input("no such track zzz").run()
    assert not at.exception and "No track or artist matches" in at.warning[0].value
    assert at.multiselect(key="liked").value == picked and len(at.table) == 1
    word = first.split()[0]
    at.text_input(key="song_query").input(word).run()
    options = at.multiselect(key="liked").options
    assert all(word.lower() in o.lower() for o in options[1:]) and at.multiselect(key="liked").value == picked


# ---- more like this --------------------------------------------------------------------------
def test_more_like_this_shows_three_lists_side_by_side(root):
    at = app(root, "more_like_this")
    assert [h.value for h in at.subheader] == ["collaborative (als)", "content (tags + audio)", "audio 0.6 + text 0.4"]
    assert [len(t.value) for t in at.table] == [10, 10, 10]
    first = table_names(at, 0)
    at.selectbox(key="similar_track").select_index(1).run()
    assert not at.exception and table_names(at, 0) != first
    at.slider(key="similar_n").set_value(3).run()
    assert [len(t.value) for t in at.table] == [3, 3, 3]
    assert "no preview for this track" in captions(at)
    at.text_input(key="similar_query").input("no such track zzz").run()
    assert not at.exception and "No track or artist matches" in at.warning[0].value and not at.table


# ---- previews --------------------------------------------------------------------------------
def test_listener_recommendations_with_previews_get_players_and_no_preview_lines(root, tmp_path):
    at = app(root, models=variant(root, tmp_path, catalog=with_previews))
    user = sorted(pd.read_parquet(root / "data/models/users.parquet")["user_id"].astype(str))[0]
    at.text_input(key="user_prefix").input(user).run()
    assert not at.exception and len(at.table[1].value) == 10
    assert all(a.proto.url.startswith("https://p.scdn.co/mp3-preview/") for a in at.get("audio"))
    assert len(at.get("audio")) + captions(at).count("no preview") == 10  # one line per track


def test_a_catalogue_with_previews_gets_audio_players(root, tmp_path):
    at = app(root, "more_like_this", models=variant(root, tmp_path, catalog=with_previews))
    audio = at.get("audio")
    assert audio, "expected audio players"
    urls = [a.proto.url for a in audio]
    assert all(u.startswith("https://p.scdn.co/mp3-preview/") for u in urls), urls
    assert "no preview" in captions(at)  # the tracks without one say so


# ---- explore ---------------------------------------------------------------------------------
def test_explore_page_shows_statistics_comparison_and_provenance(root):
    at = app(root, "explore")
    assert [h.value for h in at.subheader] == ["The long tail", "Listener activity", "Top tags", "Audio features",
                                               "Model comparison", "Provenance"]
    assert [m.label for m in at.metric] == ["tracks", "listeners", "plays (user, track pairs)"]
    comparison = at.table[1].value
    assert list(comparison.index) == ["als", "popularity"] and comparison.loc["als", "ndcg@10 high"] == 0.15
    provenance = at.table[2].value
    assert "MLflow run id" in provenance.index and not at.warning


def test_explore_page_without_reports_says_what_to_run(root, tmp_path):
    at = app(root, "explore", reports=str(tmp_path), items=None)
    assert any("metrics.json: not found (run the evaluate stage" in w.value for w in at.warning)
    assert any("no audio features" in i.value for i in at.info)


# ---- no models / bad arguments -----------------------------------------------------------------
@pytest.mark.parametrize("page", [None, "start_from_songs", "more_like_this", "explore"])
def test_no_models_is_a_readable_page(tmp_path, page):
    at = app(tmp_path, page, models=tmp_path / "data/models")
    assert at.title[0].value == "musicrec: nothing to serve yet"
    assert "models folder" in at.error[0].value and "make repro" in at.error[0].value
    assert "dvc pull" in at.markdown[0].value


def test_bad_command_line_is_a_readable_page(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["streamlit_app.py", "--modles", "x"])
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and at.title[0].value == "musicrec: bad arguments"
    assert "--modles" in at.error[0].value


def test_an_unreachable_mlflow_run_is_a_readable_page(tmp_path):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state[ui.SOURCE_KEY] = AppSource(run_id="0123456789abcdef0123456789abcdef",
                                                tracking_uri=f"sqlite:///{tmp_path}/none.db")
    at.run()
    assert not at.exception and at.title[0].value == "musicrec: nothing to serve yet"
    assert "no MLflow store at" in at.error[0].value and "MLflow run 0123456789abcdef" in at.caption[0].value
