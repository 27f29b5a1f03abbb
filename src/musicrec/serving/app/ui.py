"""The Streamlit pages: widgets in, :class:`~musicrec.serving.app.workspace.Workspace` out.

Thin by design: every number and table comes from the view model; this module only lays
them out. :func:`main` is the entry script's body (``st.navigation`` over ``pages/``);
each page script calls one ``*_page`` function. The models are loaded once per
:class:`~musicrec.serving.app.source.AppSource` (``st.cache_resource``); when they cannot be
(no models folder, an unknown run), every page shows one readable paragraph and the command
to run instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from musicrec.errors import UserError
from musicrec.serving.app.source import AppSource
from musicrec.serving.app.workspace import Workspace
from musicrec.serving.artifacts import ServingError

SOURCE_KEY = "musicrec_app_source"  # session_state: the AppSource (tests set it before the first run)
PAGES = Path(__file__).resolve().parent / "pages"
PAGE_LIST = (("listener.py", "For a listener", ":material/person:"),
             ("start_from_songs.py", "Start from songs", ":material/queue_music:"),
             ("more_like_this.py", "More like this", ":material/compare:"),
             ("explore.py", "Explore", ":material/insights:"))
TABLE_COLUMNS = ["rank", "name", "artist", "score", "why"]


@st.cache_resource(show_spinner="Loading the models (once) ...")
def _load(fields: tuple) -> Workspace:
    return Workspace.load(AppSource(*fields))


def source() -> AppSource:
    """The app's source: set by the entry script from its command line (or by a test), else the defaults."""
    if SOURCE_KEY not in st.session_state:
        st.session_state[SOURCE_KEY] = AppSource()
    return st.session_state[SOURCE_KEY]


def workspace() -> Workspace:
    """The loaded workspace, or a readable error page (and the script stops)."""
    src = source()
    try:
        return _load(dataclasses.astuple(src))
    except UserError as exc:
        st.title("musicrec: nothing to serve yet")
        st.error(str(exc))
        st.markdown("Train the models with `make repro`, or download them with `dvc pull`, then reload this page. "
                    "An MLflow run works too: `make app RUN_ID=<run id>` "
                    "(or `make app MODEL_URI=models:/NAME@champion`).")
        st.caption(f"Serving: {src.label}")
        st.stop()
        raise  # pragma: no cover - st.stop() does not return


def main() -> None:
    """The entry script: parse the command line once per session, then the page navigation."""
    st.set_page_config(page_title="musicrec", page_icon=":material/library_music:", layout="wide")
    if SOURCE_KEY not in st.session_state:
        try:
            st.session_state[SOURCE_KEY] = AppSource.from_argv(sys.argv[1:])
        except ServingError as exc:
            st.title("musicrec: bad arguments")
            st.error(str(exc))
            st.stop()
    pages = [st.Page(PAGES / f, title=t, icon=i, default=(k == 0)) for k, (f, t, i) in enumerate(PAGE_LIST)]
    st.navigation(pages).run()


# ---- shared pieces ------------------------------------------------------------------------
def results(df: pd.DataFrame, *, caption: str = "") -> None:
    """A result table (rank, name, artist, score, why) and its audio previews."""
    if df.empty:
        st.info("no results")
        return
    cols = [c for c in TABLE_COLUMNS if c in df.columns]
    st.table(df[cols].set_index("rank"))
    if caption:
        st.caption(caption)
    previews(df)


def previews(df: pd.DataFrame) -> None:
    """An audio player per track that has a preview URL; otherwise a clear "no preview"."""
    urls = df["preview_url"].tolist() if "preview_url" in df.columns else [None] * len(df)
    if not any(urls):
        st.caption("No audio previews: this catalogue has no preview URL for these tracks (nothing is fetched "
                   "from outside).")
        return
    with st.expander("Audio previews", expanded=False):
        for row, url in zip(df.itertuples(index=False), urls):
            left, right = st.columns([2, 3])
            left.write(f"{row.rank}. {row.name or '?'} - {row.artist or '?'}")
            if url:
                right.audio(url)
            else:
                right.caption("no preview")


def _count_slider(label: str, key: str, default: int = 10) -> int:
    return int(st.slider(label, min_value=1, max_value=50, value=default, key=key))


# ---- pages --------------------------------------------------------------------------------
def listener_page() -> None:
    ws = workspace()
    st.title("For a listener")
    st.caption(f"Serving {ws.source.label}: models {', '.join(ws.model_names)}")
    if not ws.has_history:
        st.error(ws.history_error)
        return
    prefix = st.text_input("User id (or its first characters)", key="user_prefix",
                           placeholder=f"e.g. {ws.find_users('', 1)[0][:6]}" if ws.find_users("", 1) else "")
    if not prefix.strip():
        st.info("Type the first characters of a user id.")
        return
    matches = ws.find_users(prefix, limit=50)
    if not matches:
        try:
            ws.base.user_index(prefix)
        except ServingError as exc:
            st.warning(f"No user id starts with {prefix.strip()!r}. {str(exc).splitlines()[0]}")
            sugg = getattr(exc, "suggestions", [])
            if sugg:
                st.write("Did you mean: " + ", ".join(f"`{u}`" for u, _ in sugg))
        return
    user = st.selectbox(f"User ({len(matches)}{'+' if len(matches) == 50 else ''} matching)", matches, key="user")
    model = st.selectbox("Model", ws.model_names, index=ws.model_names.index(ws.default), key="listener_model")
    n = _count_slider("Number of recommendations", "listener_n")
    left, right = st.columns(2)
    try:
        history = ws.listener_history(user, 10)
        recs = ws.recommend_user(user, model, n)
    except ServingError as exc:
        st.error(str(exc))
        return
    with left:
        st.subheader("Most played")
        st.table(history[["rank", "name", "artist", "weight"]].set_index("rank"))
    with right:
        st.subheader(f"Recommended by {model}")
        results(recs, caption="why: 'like X' = because you played X; tags = shared tags with your tracks; "
                              "'popular' = what listeners like you play most")


def songs_page() -> None:
    ws = workspace()
    st.title("Start from songs")
    st.caption("A new listener: pick a few tracks you like and get recommendations (cold start).")
    query = st.text_input("Search tracks or artists", key="song_query", placeholder="a track or artist name")
    found = ws.search_tracks(query, limit=25)
    liked = ws.known_tracks(st.session_state.get("liked", []))
    options = liked + [t for t in found["item_id"].tolist() if t not in liked]
    if query.strip() and found.empty:
        st.warning(f"No track or artist matches {query.strip()!r}.")
    picked = st.multiselect("Liked tracks", options, key="liked", format_func=ws.label,
                            placeholder="choose from the search results", select_all=False)
    modes = ws.cold_start_modes()
    names = {"hybrid": "hybrid", "content": "content (tags + audio)",
             "collaborative": f"{ws.collab_name} fold-in" if ws.collab_name else "collaborative"}
    mode = st.radio("Recommender", modes, format_func=names.get, horizontal=True, key="cold_mode")
    share = None
    if mode == "hybrid":
        default = round(ws.default_weights[1] / sum(ws.default_weights), 2)
        share = st.slider("Collaborative ← weight → content", 0.0, 1.0, default, 0.05, key="content_weight")
    lam = st.slider("Diversity: MMR lambda (1 = relevance only, lower = more varied)", 0.0, 1.0,
                    float(ws.default_mmr), 0.05, key="mmr_lambda")
    n = _count_slider("Number of recommendations", "cold_n")
    if not picked:
        st.info("Pick at least one liked track (search above) to get recommendations.")
        return
    try:
        out = ws.cold_start(picked, n, mode=mode, content_weight=share, mmr_lambda=lam)
    except ServingError as exc:
        st.error(str(exc))
        return
    results(out.table)
    left, right = st.columns(2)
    with left:
        st.caption("Balance: from the artists you like vs new ones")
        st.bar_chart(out.balance, x="kind", y="tracks", sort=False, height=220)
    with right:
        st.caption("Popularity of the picks (listeners in training)")
        st.bar_chart(out.popularity, x="rank", y="listeners", sort=False, height=220)


def similar_page() -> None:
    ws = workspace()
    st.title("More like this")
    query = st.text_input("Find a track", key="similar_query", placeholder="a track or artist name")
    found = ws.search_tracks(query, limit=50)
    if found.empty:
        st.warning(f"No track or artist matches {query.strip()!r}.")
        return
    track = st.selectbox("Track", found["item_id"].tolist(), format_func=ws.label, key="similar_track")
    n = _count_slider("Number of similar tracks", "similar_n")
    url = ws.preview(track)
    if url:
        st.audio(url)
    else:
        st.caption("no preview for this track")
    try:
        side = ws.similar_side_by_side(track, n)
    except ServingError as exc:
        st.error(str(exc))
        return
    for col, (title, df) in zip(st.columns(len(side)), side.items()):
        with col:
            st.subheader(title)
            if df.empty:
                st.info("no results")
            else:
                st.table(df[["rank", "name", "artist", "score"]].set_index("rank"))
                previews(df)
    st.caption(f"content: {ws.content_origin}")


def explore_page() -> None:
    ws = workspace()
    st.title("Explore")
    data = ws.explore()
    cols = st.columns(len(data.summary))
    for col, (k, v) in zip(cols, data.summary.items()):
        col.metric(k, f"{v:,}")
    left, right = st.columns(2)
    with left:
        st.subheader("The long tail")
        st.caption("share of listens covered by the most listened share of tracks")
        st.line_chart(data.long_tail, x="tracks %", y="listens %", height=260)
    with right:
        st.subheader("Listener activity")
        if data.activity is None:
            st.info(f"users' histories are not available: {ws.history_error}")
        else:
            st.caption("listeners by number of distinct tracks played")
            st.bar_chart(data.activity, x="tracks", y="listeners", sort=False, height=260)
    left, right = st.columns(2)
    with left:
        st.subheader("Top tags")
        if data.tags.empty:
            st.info("the catalogue has no tags")
        else:
            st.bar_chart(data.tags, x="tag", y="tracks", horizontal=True, sort="-tracks", height=400)
    with right:
        st.subheader("Audio features")
        if data.audio.empty:
            st.info("no audio features here (the items table data/processed/items.parquet is not available)")
        else:
            st.table(data.audio.set_index("feature"))
    st.subheader("Model comparison")
    for note in data.notes:
        st.warning(note)
    if not data.comparison.empty:
        st.table(data.comparison.set_index("model"))
    st.subheader("Provenance")
    st.table(pd.DataFrame({"": list(data.provenance), "value": list(data.provenance.values())}).set_index(""))
