"""Deterministic synthetic data in the exact schema of the Kaggle
"Million Song Dataset + Spotify + Last.fm" files.

The data carries learnable structure, so that collaborative and content models
behave as they do on real listening data:

* ``n_genres`` latent genres, each split into :data:`N_SUBSTYLES` sub-styles
  ("clusters"). Artists belong to a cluster; their tracks mostly follow it.
* Tags are drawn mostly from the cluster's genre vocabulary (with sub-style
  specific tags weighted up) and audio features have cluster-dependent means,
  so content features carry real signal. ``genre`` is empty for ~55% of rows,
  as in the real file.
* Item popularity is Zipf-like (and correlated with artist popularity); user
  activity is lognormal (minimum a few tracks); each user has a sparse mixture
  over one to a few genres, a handful of favourite artists and a small
  "mainstream" share drawn from global popularity.
* Play counts are heavy tailed (median 1, mean about 3, max in the hundreds or
  thousands at scale) and grow with the user's affinity for the item's cluster.

Randomness comes only from the ``np.random.Generator`` passed in. The history is
generated in fixed blocks of :data:`USER_BLOCK` users, each with its own
generator derived from one seed drawn from the caller's generator, so the output
bytes do not depend on ``chunk_rows`` or on thread counts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec.io import atomic_path
from musicrec.schema import (
    KAGGLE_HISTORY,
    KAGGLE_HISTORY_COLUMNS,
    KAGGLE_MUSIC_INFO,
    KAGGLE_MUSIC_INFO_COLUMNS,
)

N_SUBSTYLES = 4
USER_BLOCK = 4096
MAX_PLAYCOUNT = 50_000
GENRE_MISSING_SHARE = 0.55
TAGS_MISSING_SHARE = 0.03
ZIPF_EXPONENT = 0.95  # item popularity weight ∝ rank ** -ZIPF_EXPONENT
# play count = 1 + Poisson(exp(mu)), mu = _PC_MU + user effect + _PC_AFF * log affinity
# + _PC_FAV (favourite artist) + N(0, _PC_NOISE_SD): median 1, ~57% ones, mean ~3 (as in the Taste Profile).
_PC_MU = -2.3
_PC_USER_SD = 1.3
_PC_AFF = 0.6
_PC_FAV = 0.5
_PC_NOISE_SD = 0.8

# (genre name, core tag, eight sub-style tags: sub-style s owns tags 2s and 2s+1)
_GENRES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Rock", "rock", ("classic_rock", "hard_rock", "alternative_rock", "indie_rock", "soft_rock",
                      "progressive_rock", "garage_rock", "psychedelic_rock")),
    ("Electronic", "electronic", ("house", "techno", "trance", "ambient", "idm", "electro",
                                  "downtempo", "drum_and_bass")),
    ("Pop", "pop", ("synthpop", "dance_pop", "indie_pop", "pop_rock", "teen_pop", "electropop",
                    "britpop", "power_pop")),
    ("Metal", "metal", ("heavy_metal", "death_metal", "black_metal", "thrash_metal", "doom_metal",
                        "power_metal", "progressive_metal", "metalcore")),
    ("Jazz", "jazz", ("smooth_jazz", "bebop", "jazz_fusion", "swing", "cool_jazz", "vocal_jazz",
                      "free_jazz", "big_band")),
    ("Punk", "punk", ("punk_rock", "pop_punk", "hardcore", "post_punk", "emo", "ska_punk",
                      "skate_punk", "street_punk")),
    ("Folk", "folk", ("indie_folk", "folk_rock", "singer_songwriter", "americana", "celtic",
                      "acoustic_folk", "freak_folk", "traditional")),
    ("RnB", "rnb", ("soul", "neo_soul", "contemporary_rnb", "funk", "motown", "quiet_storm",
                    "new_jack_swing", "urban")),
    ("Rap", "rap", ("hip_hop", "gangsta_rap", "underground_hip_hop", "trap", "east_coast_rap",
                    "west_coast", "old_school", "conscious_hip_hop")),
    ("Country", "country", ("alt_country", "outlaw_country", "bluegrass", "country_rock",
                            "honky_tonk", "country_pop", "nashville", "western_swing")),
    ("Reggae", "reggae", ("roots_reggae", "dub", "dancehall", "ska", "rocksteady", "lovers_rock",
                          "ragga", "dub_poetry")),
    ("Blues", "blues", ("blues_rock", "delta_blues", "chicago_blues", "electric_blues",
                        "soul_blues", "texas_blues", "acoustic_blues", "harmonica")),
    ("Latin", "latin", ("salsa", "reggaeton", "bossa_nova", "latin_pop", "cumbia", "tango",
                        "bachata", "latin_rock")),
    ("World", "world", ("afrobeat", "flamenco", "k_pop", "j_pop", "bollywood", "fado",
                        "world_fusion", "balkan")),
    ("Classical", "classical", ("baroque", "romantic_era", "opera", "chamber_music", "piano_solo",
                                "orchestral", "contemporary_classical", "minimalism")),
    ("Soundtrack", "soundtrack", ("film_score", "video_game_music", "musical", "score", "epic",
                                  "trailer_music", "tv_themes", "cinematic")),
)
_VARIANTS = ("", "Fusion", "Revival", "Nouveau")  # names for genres beyond the table (<= 64)

_GENERIC_TAGS = (
    "favorites", "love", "chill", "beautiful", "awesome", "00s", "90s", "80s", "70s", "60s",
    "female_vocalists", "male_vocalists", "catchy", "mellow", "party", "sad", "happy", "guitar",
    "piano", "instrumental", "acoustic", "cover", "live", "energetic", "romantic", "summer",
    "driving", "melancholy", "dance", "seen_live",
)

_WORDS_A = (
    "Blue", "Golden", "Broken", "Silent", "Electric", "Midnight", "Wild", "Lonely", "Crimson",
    "Hollow", "Bright", "Velvet", "Burning", "Frozen", "Secret", "Paper", "Silver", "Neon",
    "Empty", "Little", "Sweet", "Dark", "Lost", "Falling", "Distant", "Gentle", "Restless",
    "Crystal", "Endless", "Northern", "Southern", "Sleeping", "Rolling", "Quiet", "Heavy", "Cold",
    "Holy", "Strange", "Early", "Last", "Young", "Faded", "Open", "Hidden", "Savage", "Tender",
    "Iron", "Stone", "Summer", "Winter",
)
_WORDS_N = (
    "Heart", "River", "Night", "Fire", "Dream", "Road", "Sky", "Rain", "City", "Moon", "Sun",
    "Ocean", "Light", "Shadow", "Garden", "Song", "Train", "Wind", "Star", "Girl", "Boy", "Love",
    "Highway", "Mountain", "Window", "Mirror", "Ghost", "Angel", "Machine", "Letter", "Storm",
    "Horizon", "Echo", "Island", "Desert", "Forest", "Diamond", "Wave", "Bridge", "Kingdom",
    "Summer", "Morning", "Radio", "Avenue", "Harbor", "Thunder", "Feather", "Flower", "Tiger",
    "Wolves",
)
_NAME_SUFFIX = ("", "", "", "", "", "", " (Live)", " (Remastered)", ", Part 2", " (Acoustic)",
                " Blues", " Song", "'s Lament", " Again", " Tonight", ", Goodbye")
_ARTIST_TEMPLATES = ("The {a} {n}s", "{a} {n}", "{a} Days of {n}", "DJ {a} {n}", "{a} {n} Band",
                     "{a} {n} Collective")  # "{a}" must come before "{n}"

_B62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
_B36 = _B62[:36]
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)

# 0-1 audio features whose cluster means vary, with their Beta concentration
_UNIT_FEATURES: tuple[tuple[str, float], ...] = (
    ("danceability", 12.0), ("energy", 10.0), ("speechiness", 20.0), ("acousticness", 4.0),
    ("instrumentalness", 3.0), ("liveness", 12.0), ("valence", 6.0),
)
_UNIT_MEAN_RANGE = {
    "danceability": (0.25, 0.8), "energy": (0.15, 0.95), "speechiness": (0.03, 0.3),
    "acousticness": (0.02, 0.85), "instrumentalness": (0.01, 0.7), "liveness": (0.1, 0.3),
    "valence": (0.15, 0.8),
}


@dataclass(frozen=True)
class Catalog:
    """The Music Info table plus the latent structure the history is drawn from."""

    frame: pd.DataFrame
    n_genres: int
    n_clusters: int  # n_genres * N_SUBSTYLES
    item_cluster: np.ndarray  # int64 (n_tracks,), latent genre * N_SUBSTYLES + sub-style
    item_artist: np.ndarray  # int64 (n_tracks,), latent artist index
    item_weight: np.ndarray  # float64 (n_tracks,), Zipf-like popularity weight, sums to 1
    genre_weight: np.ndarray  # float64 (n_genres,), share of popularity mass per genre

    @property
    def n_tracks(self) -> int:
        return int(self.item_cluster.shape[0])


# --------------------------------------------------------------------------- helpers


def _check_positive(**kwargs: int) -> None:
    for name, value in kwargs.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if value <= 0:
            raise ValueError(f"{name} must be greater than 0, got {value}")


def _random_codes(rng: np.random.Generator, n: int, width: int, alphabet: np.ndarray) -> np.ndarray:
    """``n`` unique random strings of ``width`` characters from ``alphabet`` (numpy ``U`` array)."""
    codes = alphabet[rng.integers(0, alphabet.size, size=(n, width))]
    flat = np.ascontiguousarray(codes).view(f"S{width}").ravel()
    for _ in range(100):
        _, first = np.unique(flat, return_index=True)
        if first.size == n:
            return flat.astype(f"U{width}")
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        redo = alphabet[rng.integers(0, alphabet.size, size=(int(dup.sum()), width))]
        codes[dup] = redo
        flat = np.ascontiguousarray(codes).view(f"S{width}").ravel()
    raise ValueError(f"could not draw {n} unique codes of width {width}")  # pragma: no cover


def _hex_codes(rng: np.random.Generator, n: int, n_bytes: int) -> np.ndarray:
    """``n`` unique random lower-case hex strings of ``2 * n_bytes`` characters."""
    raw = rng.integers(0, 256, size=(n, n_bytes), dtype=np.uint8)
    out = np.empty((n, 2 * n_bytes), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    flat = out.view(f"S{2 * n_bytes}").ravel()
    if np.unique(flat).size != n:  # pragma: no cover - 2**-100 territory
        raise ValueError("hex id collision; use another seed")
    return flat.astype(f"U{2 * n_bytes}")


def _group_cdf(groups: np.ndarray, weights: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Sampling table for "draw an element of group g with probability ∝ weight".

    Returns ``(order, cum)``: elements sorted by group, and a flat cumulative
    array in which group ``g`` occupies ``[g, g + 1)``. ``order[searchsorted(cum,
    g + u, 'right')]`` with ``u`` in [0, 1) is a weighted draw from group ``g``.
    """
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    w = weights[order].astype(np.float64)
    totals = np.bincount(g, weights=w, minlength=n_groups)
    cs = np.cumsum(w)
    starts = np.concatenate(([0.0], np.cumsum(totals)[:-1]))
    within = (cs - starts[g]) / np.where(totals[g] > 0, totals[g], 1.0)
    cum = g + within
    # the last element of every group ends exactly at g + 1
    last = np.r_[g[1:] != g[:-1], True]
    cum[last] = g[last] + 1.0
    return order, cum


def _draw(order: np.ndarray, cum: np.ndarray, groups: np.ndarray, u: np.ndarray) -> np.ndarray:
    u = np.minimum(u, 1.0 - 1e-9)
    pos = np.searchsorted(cum, groups + u, side="right")
    return order[np.minimum(pos, order.size - 1)]


def _join_tags(names: np.ndarray, idx: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Join tag names row-wise (``idx``/``valid`` are (n, k)), valid tags first, ", " separated."""
    # move valid tags to the front of each row, keeping their order
    key = np.argsort(~valid, axis=1, kind="stable")
    idx = np.take_along_axis(idx, key, axis=1)
    valid = np.take_along_axis(valid, key, axis=1)
    words = names[idx]
    out = np.where(valid[:, 0], words[:, 0], "")
    for j in range(1, idx.shape[1]):
        out = np.where(valid[:, j], np.char.add(np.char.add(out, ", "), words[:, j]), out)
    return out


def allocate_counts(weights: np.ndarray, total: int, low: int, high: int) -> np.ndarray:
    """Integers ``n`` with ``sum(n) == total``, ``low <= n <= high``, ``n - low`` ∝ ``weights``.

    Capped water-filling followed by largest-remainder rounding (ties broken by
    position, so the result is deterministic).
    """
    n = weights.size
    if not (n * low <= total <= n * high):
        raise ValueError(f"cannot split {total} into {n} parts within [{low}, {high}]")
    cap = float(high - low)
    extra = float(total - n * low)
    x = np.zeros(n)
    free = np.ones(n, dtype=bool)
    remaining = extra
    w = weights.astype(np.float64)
    while remaining > 0 and free.any():
        share = remaining * w[free] / w[free].sum()
        over = share >= cap
        if not over.any():
            x[free] = share
            break
        idx = np.flatnonzero(free)[over]
        x[idx] = cap
        free[idx] = False
        remaining = extra - x.sum()
    base = np.floor(x + 1e-9).astype(np.int64)
    base = np.minimum(base, high - low)
    left = int(total - n * low - base.sum())
    if left > 0:
        frac = np.where(base < high - low, x - base, -np.inf)
        give = np.argsort(-frac, kind="stable")[:left]
        base[give] += 1
    elif left < 0:  # pragma: no cover - floating noise
        take = np.argsort(x - base, kind="stable")[: -left]
        base[take] -= 1
    return base + low


# --------------------------------------------------------------------------- catalog


def genre_names(n_genres: int) -> list[str]:
    """Display names of the first ``n_genres`` genres (at most 64)."""
    if not 0 < n_genres <= len(_GENRES) * len(_VARIANTS):
        raise ValueError(f"n_genres must be in 1..{len(_GENRES) * len(_VARIANTS)}, got {n_genres}")
    out = []
    for j in range(n_genres):
        name = _GENRES[j % len(_GENRES)][0]
        var = _VARIANTS[j // len(_GENRES)]
        out.append(f"{name} {var}" if var else name)
    return out


def _tag_vocabulary(n_genres: int) -> tuple[list[str], np.ndarray]:
    """All tag names, and a (n_clusters, n_tags) probability matrix per cluster."""
    names: list[str] = list(_GENERIC_TAGS)
    core_idx, sub_idx = [], []
    for j in range(n_genres):
        _, core, subs = _GENRES[j % len(_GENRES)]
        var = _VARIANTS[j // len(_GENRES)].lower()
        suffix = f"_{var}" if var else ""
        core_idx.append(len(names))
        names.append(core + suffix)
        sub_idx.append(list(range(len(names), len(names) + len(subs))))
        names.extend(s + suffix for s in subs)
    n_tags = len(names)
    n_generic = len(_GENERIC_TAGS)
    k = n_genres * N_SUBSTYLES
    probs = np.zeros((k, n_tags))
    for g in range(n_genres):
        for s in range(N_SUBSTYLES):
            c = g * N_SUBSTYLES + s
            own = np.zeros(n_tags)
            own[core_idx[g]] = 3.0
            own[sub_idx[g]] = 0.6
            own[sub_idx[g][2 * s: 2 * s + 2]] = 3.0
            own /= own.sum()
            generic = np.zeros(n_tags)
            generic[:n_generic] = 1.0 / n_generic
            other = np.zeros(n_tags)
            other[n_generic:] = 1.0
            other[np.array([core_idx[g], *sub_idx[g]])] = 0.0
            other = other / other.sum() if other.sum() > 0 else generic
            probs[c] = 0.72 * own + 0.2 * generic + 0.08 * other
    return names, probs


def generate_catalog(n_tracks: int, n_artists: int, n_genres: int, rng: np.random.Generator) -> Catalog:
    """Draw the track catalogue (``Music Info.csv`` schema) and its latent structure."""
    _check_positive(n_tracks=n_tracks, n_artists=n_artists, n_genres=n_genres)
    gnames = genre_names(n_genres)
    k = n_genres * N_SUBSTYLES

    # genres of unequal size; artists belong to one cluster and have Zipf popularity
    genre_size = rng.dirichlet(np.full(n_genres, 2.0)) * 0.7 + 0.3 / n_genres
    cluster_size = (genre_size[:, None] * rng.dirichlet(np.full(N_SUBSTYLES, 3.0), size=n_genres)).ravel()
    artist_cluster = rng.choice(k, size=n_artists, p=cluster_size / cluster_size.sum())
    artist_pop = 1.0 / np.arange(1, n_artists + 1) ** 0.9
    artist_pop = artist_pop[rng.permutation(n_artists)]

    # tracks per artist: every artist gets one (when there are enough tracks), the rest ∝ popularity^0.8
    base = min(n_artists, n_tracks)
    first = rng.permutation(n_artists)[:base]
    rest = rng.choice(n_artists, size=n_tracks - base, p=artist_pop ** 0.8 / (artist_pop ** 0.8).sum())
    item_artist = rng.permutation(np.concatenate((first, rest))).astype(np.int64)

    # 90% of tracks follow the artist's cluster, the rest another sub-style of the same genre
    item_cluster = artist_cluster[item_artist].astype(np.int64)
    drift = rng.random(n_tracks) < 0.1
    item_cluster[drift] = (item_cluster[drift] // N_SUBSTYLES) * N_SUBSTYLES + rng.integers(
        0, N_SUBSTYLES, size=int(drift.sum()))
    item_genre = item_cluster // N_SUBSTYLES

    # Zipf-like item popularity, correlated with artist popularity
    score = np.log(artist_pop[item_artist]) + rng.normal(0.0, 1.5, size=n_tracks)
    rank = np.empty(n_tracks, dtype=np.int64)
    rank[np.argsort(-score, kind="stable")] = np.arange(1, n_tracks + 1)
    item_weight = 1.0 / rank ** ZIPF_EXPONENT
    item_weight /= item_weight.sum()
    genre_weight = np.bincount(item_genre, weights=item_weight, minlength=n_genres)

    # ids, names
    track_id = np.char.add("TR", _random_codes(rng, n_tracks, 16, _B36))
    spotify_id = _random_codes(rng, n_tracks, 22, _B62)
    preview = np.char.add("https://p.scdn.co/mp3-preview/", _hex_codes(rng, n_tracks, 20))
    wa, wn = np.array(_WORDS_A), np.array(_WORDS_N)
    n_words = rng.choice(np.array([1, 2, 2, 3]), size=n_tracks)
    name = wn[rng.integers(0, wn.size, n_tracks)]
    name = np.where(n_words >= 2, np.char.add(np.char.add(wa[rng.integers(0, wa.size, n_tracks)], " "), name), name)
    name = np.where(n_words >= 3, np.char.add(name, np.char.add(" ", wn[rng.integers(0, wn.size, n_tracks)])), name)
    name = np.char.add(name, np.array(_NAME_SUFFIX)[rng.integers(0, len(_NAME_SUFFIX), n_tracks)])
    space = wa.size * wn.size * len(_ARTIST_TEMPLATES)
    pick = rng.choice(space, size=min(n_artists, space), replace=False)
    if n_artists > space:
        pick = np.concatenate((pick, rng.integers(0, space, n_artists - space)))
    a_i, rem = np.divmod(pick, wn.size * len(_ARTIST_TEMPLATES))
    n_i, t_i = np.divmod(rem, len(_ARTIST_TEMPLATES))
    artist_names = np.empty(pick.size, dtype=object)
    for t, tpl in enumerate(_ARTIST_TEMPLATES):  # one vectorised pass per template
        sel = t_i == t
        head, rest_ = tpl.split("{a}")
        mid, tail = rest_.split("{n}")
        artist_names[sel] = np.char.add(np.char.add(np.char.add(np.char.add(head, wa[a_i[sel]]), mid), wn[n_i[sel]]), tail)
    if n_artists > space:
        extra = np.arange(space, n_artists)
        artist_names[extra] = np.char.add(artist_names[extra], np.char.add(" ", (extra // space + 1).astype(str)))

    # tags: 1-8 per track, mostly from the cluster's vocabulary
    tag_names, tag_probs = _tag_vocabulary(n_genres)
    tag_order, tag_cum = _group_cdf(
        np.repeat(np.arange(k), len(tag_names)), tag_probs.ravel(), k)
    max_tags = 8
    n_tags = np.minimum(1 + rng.binomial(max_tags - 1, 0.4, size=n_tracks), max_tags)
    draws = _draw(tag_order, tag_cum, np.repeat(item_cluster, max_tags).astype(np.float64),
                  rng.random(n_tracks * max_tags)) % len(tag_names)
    draws = draws.reshape(n_tracks, max_tags)
    valid = np.arange(max_tags)[None, :] < n_tags[:, None]
    # drop repeated tags: keep the first occurrence of each tag in a row
    dup = np.zeros_like(valid)
    for j in range(1, max_tags):
        dup[:, j] = (draws[:, :j] == draws[:, j:j + 1]).any(axis=1)
    valid &= ~dup
    tags = _join_tags(np.array(tag_names), draws, valid)
    tags = np.where(rng.random(n_tracks) < TAGS_MISSING_SHARE, "", tags)
    genre = np.array(gnames)[item_genre]
    genre = np.where(rng.random(n_tracks) < GENRE_MISSING_SHARE, "", genre)

    # audio features: cluster means + item noise
    cols: dict[str, np.ndarray] = {}
    for feat, conc in _UNIT_FEATURES:
        lo, hi = _UNIT_MEAN_RANGE[feat]
        gmean = rng.uniform(lo, hi, size=n_genres)
        cmean = np.clip(np.repeat(gmean, N_SUBSTYLES) + rng.normal(0, 0.06 * (hi - lo) + 0.02, size=k), 0.01, 0.99)
        m = cmean[item_cluster]
        cols[feat] = np.clip(rng.beta(m * conc, (1 - m) * conc), 0.0, 1.0)
    energy = cols["energy"]
    loud_c = rng.uniform(-13.0, -5.0, size=k)
    cols["loudness"] = np.clip(loud_c[item_cluster] + 4.0 * (energy - 0.5) + rng.normal(0, 2.0, n_tracks), -45.0, -0.5)
    tempo_c = rng.uniform(85.0, 150.0, size=k)
    cols["tempo"] = np.clip(tempo_c[item_cluster] + rng.normal(0, 18.0, n_tracks), 45.0, 220.0)
    key_pref = rng.dirichlet(np.full(12, 3.0), size=k)
    key_order, key_cum = _group_cdf(np.repeat(np.arange(k), 12), key_pref.ravel(), k)
    cols["key"] = _draw(key_order, key_cum, item_cluster.astype(np.float64), rng.random(n_tracks)) % 12
    mode_p = rng.uniform(0.45, 0.85, size=k)
    cols["mode"] = (rng.random(n_tracks) < mode_p[item_cluster]).astype(np.int64)
    ts_u = rng.random(n_tracks)
    cols["time_signature"] = np.where(ts_u < 0.07, 3, np.where(ts_u < 0.10, 5, 4)).astype(np.int64)
    year_c = rng.uniform(1968.0, 2012.0, size=k)
    year = np.clip(np.rint(year_c[item_cluster] + rng.normal(0, 7.0, n_tracks)), 1950, 2020).astype(np.int64)
    dur_c = rng.uniform(np.log(170_000), np.log(320_000), size=k)
    duration = np.clip(np.rint(np.exp(dur_c[item_cluster] + rng.normal(0, 0.3, n_tracks))), 30_000, 1_500_000).astype(np.int64)

    frame = pd.DataFrame({
        "track_id": track_id,
        "name": name,
        "artist": artist_names[item_artist],
        "spotify_preview_url": preview,
        "spotify_id": spotify_id,
        "tags": tags,
        "genre": genre,
        "year": year,
        "duration_ms": duration,
        "danceability": np.round(cols["danceability"], 3),
        "energy": np.round(cols["energy"], 3),
        "key": cols["key"].astype(np.int64),
        "loudness": np.round(cols["loudness"], 3),
        "mode": cols["mode"],
        "speechiness": np.round(cols["speechiness"], 4),
        "acousticness": np.round(cols["acousticness"], 4),
        "instrumentalness": np.round(cols["instrumentalness"], 4),
        "liveness": np.round(cols["liveness"], 4),
        "valence": np.round(cols["valence"], 3),
        "tempo": np.round(cols["tempo"], 3),
        "time_signature": cols["time_signature"],
    }, columns=list(KAGGLE_MUSIC_INFO_COLUMNS))
    return Catalog(
        frame=frame, n_genres=n_genres, n_clusters=k, item_cluster=item_cluster,
        item_artist=item_artist, item_weight=item_weight, genre_weight=genre_weight,
    )


# --------------------------------------------------------------------------- history


def _min_items(n_users: int, n_plays: int, n_tracks: int) -> int:
    return max(1, min(5, n_plays // n_users, n_tracks))


def check_sizes(n_tracks: int, n_users: int, n_plays: int) -> None:
    """Raise ``ValueError`` unless every user can get >= 1 distinct track and all rows fit."""
    _check_positive(n_tracks=n_tracks, n_users=n_users, n_plays=n_plays)
    if n_plays < n_users:
        raise ValueError(
            f"n_plays={n_plays} is below n_users={n_users}: every user needs at least one play")
    if n_plays > n_users * n_tracks:
        raise ValueError(
            f"n_plays={n_plays} exceeds n_users * n_tracks = {n_users} * {n_tracks} = "
            f"{n_users * n_tracks}: each (user, track) pair can appear only once")


def user_activity(n_users: int, n_plays: int, n_tracks: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct tracks per user: lognormal, at least a few, summing exactly to ``n_plays``."""
    check_sizes(n_tracks, n_users, n_plays)
    w = rng.lognormal(0.0, 1.0, size=n_users)
    return allocate_counts(w, n_plays, _min_items(n_users, n_plays, n_tracks), n_tracks)


@dataclass(frozen=True)
class _Tables:
    cl_order: np.ndarray
    cl_cum: np.ndarray
    ar_order: np.ndarray
    ar_cum: np.ndarray
    global_cum: np.ndarray
    cluster_mass: np.ndarray  # (n_clusters,)
    genre_p: np.ndarray  # (n_genres,) probability a user picks the genre


def _tables(catalog: Catalog) -> _Tables:
    k = catalog.n_clusters
    n_art = int(catalog.item_artist.max()) + 1
    cl_order, cl_cum = _group_cdf(catalog.item_cluster, catalog.item_weight, k)
    ar_order, ar_cum = _group_cdf(catalog.item_artist, catalog.item_weight, n_art)
    global_cum = np.cumsum(catalog.item_weight)
    global_cum /= global_cum[-1]
    mass = np.bincount(catalog.item_cluster, weights=catalog.item_weight, minlength=k)
    gp = catalog.genre_weight ** 0.6
    gp = gp / gp.sum()
    return _Tables(cl_order, cl_cum, ar_order, ar_cum, global_cum, mass, gp)


def _user_block(
    catalog: Catalog, tb: _Tables, counts: np.ndarray, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows for one block of users: (local user index, track index, playcount), grouped by user."""
    b = counts.size
    k, ng, n_tracks = catalog.n_clusters, catalog.n_genres, catalog.n_tracks
    nonempty = tb.cluster_mass > 0

    # sparse genre mixture: 1 + Poisson(0.8) genres (<= 4), sub-style weights concentrated
    n_g = np.minimum(1 + rng.poisson(0.8, size=b), min(4, ng))
    # weighted sampling without replacement (Efraimidis-Spirakis keys log(u) / p; empty genres last)
    gp = tb.genre_p[None, :]
    gkeys = np.where(gp > 0, np.log(rng.random((b, ng))) / np.where(gp > 0, gp, 1.0), -np.inf)
    granks = np.argsort(np.argsort(-gkeys, axis=1, kind="stable"), axis=1, kind="stable")
    gw = np.where(granks < n_g[:, None], rng.gamma(1.0, size=(b, ng)), 0.0)
    sw = rng.gamma(0.5, size=(b, ng, N_SUBSTYLES)) + 1e-3
    W = (gw[:, :, None] * sw).reshape(b, k) * nonempty[None, :]
    W_sum = W.sum(axis=1, keepdims=True)
    bad = W_sum[:, 0] <= 0
    if bad.any():  # chosen genres are all empty (tiny catalogues): fall back to popularity mass
        W[bad] = tb.cluster_mass[None, :]
        W_sum[bad] = W[bad].sum(axis=1, keepdims=True)
    W /= W_sum
    w_cum = np.cumsum(W, axis=1)
    w_cum[:, -1] = 1.0
    w_flat = (w_cum + np.arange(b)[:, None]).ravel()

    # favourite artists: artists of a few tracks drawn from the user's clusters
    n_fav = 3
    fu = np.repeat(np.arange(b), n_fav)
    fc = np.minimum(np.searchsorted(w_flat, fu + np.minimum(rng.random(fu.size), 1 - 1e-9), side="right") - fu * k, k - 1)
    fav = catalog.item_artist[_draw(tb.cl_order, tb.cl_cum, fc.astype(np.float64), rng.random(fu.size))].reshape(b, n_fav)

    p_main = rng.beta(1.5, 10.0, size=b)  # mean ~0.13
    p_fav = rng.beta(2.0, 6.0, size=b)  # mean 0.25
    user_level = rng.normal(0.0, _PC_USER_SD, size=b)

    def draw(users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = users.size
        t = rng.random(m)
        u1 = rng.random(m)
        u2 = rng.random(m)
        is_main = t < p_main[users]
        is_fav = ~is_main & (t < p_main[users] + p_fav[users])
        c = np.minimum(np.searchsorted(w_flat, users + np.minimum(u1, 1 - 1e-9), side="right") - users * k, k - 1)
        items = _draw(tb.cl_order, tb.cl_cum, c.astype(np.float64), u2)
        if is_fav.any():
            a = fav[users[is_fav], np.minimum((u1[is_fav] * n_fav).astype(np.int64), n_fav - 1)]
            items[is_fav] = _draw(tb.ar_order, tb.ar_cum, a.astype(np.float64), u2[is_fav])
        if is_main.any():
            items[is_main] = np.minimum(np.searchsorted(tb.global_cum, u2[is_main], side="right"), n_tracks - 1)
        return items, is_fav

    acc_u = np.empty(0, dtype=np.int64)
    acc_i = np.empty(0, dtype=np.int64)
    acc_f = np.empty(0, dtype=bool)
    need = counts.copy()
    for _ in range(8):
        todo = np.flatnonzero(need > 0)
        if todo.size == 0:
            break
        reps = np.ceil(need[todo] * 1.3).astype(np.int64) + 2
        users = np.repeat(todo, reps)
        items, is_fav = draw(users)
        cu = np.concatenate((acc_u, users))
        ci = np.concatenate((acc_i, items))
        cf = np.concatenate((acc_f, is_fav))
        _, first = np.unique(cu * n_tracks + ci, return_index=True)
        first.sort()
        cu, ci, cf = cu[first], ci[first], cf[first]
        o = np.argsort(cu, kind="stable")
        cu, ci, cf = cu[o], ci[o], cf[o]
        starts = np.searchsorted(cu, np.arange(b))
        rank = np.arange(cu.size) - starts[cu]
        keep = rank < counts[cu]
        acc_u, acc_i, acc_f = cu[keep], ci[keep], cf[keep]
        need = counts - np.bincount(acc_u, minlength=b)

    # users still short (they want most of the catalogue): fill from the unused tracks by popularity
    short = np.flatnonzero(need > 0)
    if short.size:
        extra_u, extra_i = [], []
        starts = np.searchsorted(acc_u, np.arange(b))
        ends = np.searchsorted(acc_u, np.arange(b), side="right")
        for u in short:
            free = np.ones(n_tracks, dtype=bool)
            free[acc_i[starts[u]:ends[u]]] = False
            cand = np.flatnonzero(free)
            p = catalog.item_weight[cand]
            pick = rng.choice(cand, size=int(need[u]), replace=False, p=p / p.sum())
            extra_u.append(np.full(pick.size, u, dtype=np.int64))
            extra_i.append(pick)
        acc_u = np.concatenate((acc_u, *extra_u))
        acc_i = np.concatenate((acc_i, *extra_i))
        acc_f = np.concatenate((acc_f, np.zeros(sum(x.size for x in extra_u), dtype=bool)))
        o = np.argsort(acc_u, kind="stable")
        acc_u, acc_i, acc_f = acc_u[o], acc_i[o], acc_f[o]

    # heavy-tailed play counts growing with the user's affinity for the item's cluster
    aff = np.log(W[acc_u, catalog.item_cluster[acc_i]] * k + 0.05)
    mu = _PC_MU + user_level[acc_u] + _PC_AFF * aff + _PC_FAV * acc_f
    x = np.exp(mu + _PC_NOISE_SD * rng.standard_normal(acc_u.size))
    plays = 1 + rng.poisson(x)
    plays = np.minimum(plays, MAX_PLAYCOUNT).astype(np.int64)
    return acc_u, acc_i, plays


def _history_parts(
    catalog: Catalog, n_users: int, n_plays: int, rng: np.random.Generator, chunk_rows: int,
) -> tuple[np.ndarray, Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """User ids and a stream of (user index, track index, playcount) arrays in whole-user chunks.

    Everything drawn from ``rng`` is drawn here, eagerly; each block of
    :data:`USER_BLOCK` users then uses its own generator derived from one seed.
    """
    _check_positive(chunk_rows=chunk_rows)
    check_sizes(catalog.n_tracks, n_users, n_plays)
    counts = user_activity(n_users, n_plays, catalog.n_tracks, rng)
    user_ids = _hex_codes(rng, n_users, 20)
    base_seed = int(rng.integers(0, 2**63 - 1))
    tb = _tables(catalog)

    def parts() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        buf: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        buf_rows = 0
        for start in range(0, n_users, USER_BLOCK):
            stop = min(start + USER_BLOCK, n_users)
            brng = np.random.default_rng([base_seed, start // USER_BLOCK])
            lu, it, pc = _user_block(catalog, tb, counts[start:stop], brng)
            buf.append((lu + start, it, pc))
            buf_rows += lu.size
            while buf_rows >= chunk_rows:
                us, its, ps = (np.concatenate([x[j] for x in buf]) for j in range(3))
                # cut at the last user boundary at or before chunk_rows (at least one user)
                cut = chunk_rows
                if cut < us.size and us[cut] == us[cut - 1]:
                    cut = int(np.searchsorted(us, us[cut], side="left"))
                    if cut == 0:
                        cut = int(np.searchsorted(us, us[0], side="right"))
                yield us[:cut], its[:cut], ps[:cut]
                buf = [(us[cut:], its[cut:], ps[cut:])]
                buf_rows = us.size - cut
        if buf_rows:
            yield tuple(np.concatenate([x[j] for x in buf]) for j in range(3))  # type: ignore[misc]

    return user_ids, parts()


def iter_history(
    catalog: Catalog, n_users: int, n_plays: int, rng: np.random.Generator, chunk_rows: int,
) -> Iterator[pd.DataFrame]:
    """Stream ``User Listening History.csv`` rows in chunks of whole users.

    Exactly ``n_plays`` rows in total, each (user, track) pair once, rows grouped
    by user. Chunks hold at most ``chunk_rows`` rows unless a single user has
    more. The rows do not depend on ``chunk_rows``. Sizes are checked (and
    ``rng`` consumed) when this is called, not at the first ``next``.
    """
    user_ids, parts = _history_parts(catalog, n_users, n_plays, rng, chunk_rows)
    track_ids = catalog.frame["track_id"].to_numpy(dtype=object)

    def frames() -> Iterator[pd.DataFrame]:
        for us, its, ps in parts:
            yield pd.DataFrame({
                "track_id": track_ids[its],
                "user_id": user_ids[us].astype(object),
                "playcount": ps,
            }, columns=list(KAGGLE_HISTORY_COLUMNS))

    return frames()


def _fixed_bytes(strings: np.ndarray, trailer: bytes) -> np.ndarray:
    """(n, width + len(trailer)) uint8 matrix of equal-width ASCII strings followed by ``trailer``."""
    width = int(strings.dtype.itemsize // 4) if strings.dtype.kind == "U" else strings.dtype.itemsize
    raw = np.ascontiguousarray(strings.astype(f"S{width}")).view(np.uint8).reshape(-1, width)
    tail = np.broadcast_to(np.frombuffer(trailer, dtype=np.uint8), (raw.shape[0], len(trailer)))
    return np.hstack((raw, tail))


def _history_csv_bytes(track_b: np.ndarray, user_b: np.ndarray, us: np.ndarray, its: np.ndarray,
                       ps: np.ndarray) -> bytes:
    """CSV lines ``track_id,user_id,playcount\n`` built without a per-row Python loop."""
    n_digits = len(str(MAX_PLAYCOUNT))
    digits = np.zeros((ps.size, n_digits + 1), dtype=np.uint8)  # 0 = padding, dropped below
    for k in range(n_digits):
        p = 10 ** k
        digits[:, n_digits - 1 - k] = np.where(ps >= p, (ps // p) % 10 + 48, 0)
    digits[:, -1] = ord("\n")
    lines = np.hstack((track_b[its], user_b[us], digits)).ravel()
    return lines[lines != 0].tobytes()


# --------------------------------------------------------------------------- writing


def write_synthetic(
    out_dir: Path,
    *,
    n_tracks: int,
    n_users: int,
    n_plays: int,
    n_genres: int,
    n_artists: int,
    seed: int,
    chunk_rows: int = 1_000_000,
) -> dict[str, Any]:
    """Write ``Music Info.csv`` and ``User Listening History.csv`` into ``out_dir`` atomically."""
    t0 = time.perf_counter()
    _check_positive(n_tracks=n_tracks, n_users=n_users, n_plays=n_plays, n_genres=n_genres,
                    n_artists=n_artists, chunk_rows=chunk_rows)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    check_sizes(n_tracks, n_users, n_plays)
    genre_names(n_genres)
    rng = np.random.default_rng(seed)
    catalog = generate_catalog(n_tracks, n_artists, n_genres, rng)
    rows = 0
    max_pc = 0
    users = 0
    with atomic_path(Path(out_dir), directory=True) as tmp:
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700
        with open(tmp / KAGGLE_MUSIC_INFO, "w", encoding="utf-8", newline="") as fh:
            catalog.frame.to_csv(fh, index=False, lineterminator="\n")
        user_ids, parts = _history_parts(catalog, n_users, n_plays, rng, chunk_rows)
        track_b = _fixed_bytes(catalog.frame["track_id"].to_numpy(dtype="U18"), b",")
        user_b = _fixed_bytes(user_ids, b",")
        del user_ids
        with open(tmp / KAGGLE_HISTORY, "wb") as fh:
            fh.write((",".join(KAGGLE_HISTORY_COLUMNS) + "\n").encode())
            for us, its, ps in parts:
                fh.write(_history_csv_bytes(track_b, user_b, us, its, ps))
                rows += us.size
                users += int(np.unique(us).size)
                max_pc = max(max_pc, int(ps.max()))
    if rows != n_plays:  # pragma: no cover - guarded by construction
        raise RuntimeError(f"wrote {rows} rows, expected n_plays={n_plays}")
    return {
        "rows": rows,
        "users": users,
        "tracks": n_tracks,
        "max_playcount": max_pc,
        "seconds": round(time.perf_counter() - t0, 3),
    }
