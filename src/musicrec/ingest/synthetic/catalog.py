"""The synthetic track catalogue: ``Music Info.csv`` rows and the latent structure the history is drawn from.

Genres split into sub-styles ("clusters"), artists with Zipf popularity in one cluster each,
track names from word lists, tags drawn mostly from the cluster's vocabulary, and audio
features with cluster-dependent means (see :func:`generate_catalog`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from musicrec.ingest.synthetic.sampling import check_positive, draw_in_groups, group_cdf, hex_codes, random_codes
from musicrec.schema import KAGGLE_MUSIC_INFO_COLUMNS

N_SUBSTYLES = 4
GENRE_MISSING_SHARE = 0.55
TAGS_MISSING_SHARE = 0.03
ZIPF_EXPONENT = 0.95  # item popularity weight ∝ rank ** -ZIPF_EXPONENT

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
    check_positive(n_tracks=n_tracks, n_artists=n_artists, n_genres=n_genres)
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
    track_id = np.char.add("TR", random_codes(rng, n_tracks, 16, _B36))
    spotify_id = random_codes(rng, n_tracks, 22, _B62)
    preview = np.char.add("https://p.scdn.co/mp3-preview/", hex_codes(rng, n_tracks, 20))
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
    tag_order, tag_cum = group_cdf(
        np.repeat(np.arange(k), len(tag_names)), tag_probs.ravel(), k)
    max_tags = 8
    n_tags = np.minimum(1 + rng.binomial(max_tags - 1, 0.4, size=n_tracks), max_tags)
    draws = draw_in_groups(tag_order, tag_cum, np.repeat(item_cluster, max_tags).astype(np.float64),
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
    key_order, key_cum = group_cdf(np.repeat(np.arange(k), 12), key_pref.ravel(), k)
    cols["key"] = draw_in_groups(key_order, key_cum, item_cluster.astype(np.float64), rng.random(n_tracks)) % 12
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
