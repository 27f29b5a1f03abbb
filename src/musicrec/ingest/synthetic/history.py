"""The synthetic listening history: ``User Listening History.csv`` rows drawn from a catalogue.

User activity is lognormal (:func:`user_activity`); each user gets a sparse genre mixture,
a few favourite artists and a small "mainstream" share; play counts are heavy tailed and
grow with the user's affinity for the item's cluster. Users are drawn in fixed blocks of
:data:`USER_BLOCK`, each with its own generator, so the rows do not depend on ``chunk_rows``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from musicrec.ingest.synthetic.catalog import N_SUBSTYLES, Catalog
from musicrec.ingest.synthetic.sampling import check_positive, draw_in_groups, group_cdf, hex_codes
from musicrec.schema import KAGGLE_HISTORY_COLUMNS

USER_BLOCK = 4096
MAX_PLAYCOUNT = 50_000
# play count = 1 + Poisson(exp(mu)), mu = _PC_MU + user effect + _PC_AFF * log affinity
# + _PC_FAV (favourite artist) + N(0, _PC_NOISE_SD): median 1, ~57% ones, mean ~3 (as in the Taste Profile).
_PC_MU = -2.3
_PC_USER_SD = 1.3
_PC_AFF = 0.6
_PC_FAV = 0.5
_PC_NOISE_SD = 0.8


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


def _min_items(n_users: int, n_plays: int, n_tracks: int) -> int:
    return max(1, min(5, n_plays // n_users, n_tracks))


def check_sizes(n_tracks: int, n_users: int, n_plays: int) -> None:
    """Raise ``ValueError`` unless every user can get >= 1 distinct track and all rows fit."""
    check_positive(n_tracks=n_tracks, n_users=n_users, n_plays=n_plays)
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
    cl_order, cl_cum = group_cdf(catalog.item_cluster, catalog.item_weight, k)
    ar_order, ar_cum = group_cdf(catalog.item_artist, catalog.item_weight, n_art)
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
    fav = catalog.item_artist[draw_in_groups(tb.cl_order, tb.cl_cum, fc.astype(np.float64),
                                             rng.random(fu.size))].reshape(b, n_fav)

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
        items = draw_in_groups(tb.cl_order, tb.cl_cum, c.astype(np.float64), u2)
        if is_fav.any():
            a = fav[users[is_fav], np.minimum((u1[is_fav] * n_fav).astype(np.int64), n_fav - 1)]
            items[is_fav] = draw_in_groups(tb.ar_order, tb.ar_cum, a.astype(np.float64), u2[is_fav])
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


def history_parts(
    catalog: Catalog, n_users: int, n_plays: int, rng: np.random.Generator, chunk_rows: int,
) -> tuple[np.ndarray, Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """User ids and a stream of (user index, track index, playcount) arrays in whole-user chunks.

    Everything drawn from ``rng`` is drawn here, eagerly; each block of
    :data:`USER_BLOCK` users then uses its own generator derived from one seed.
    """
    check_positive(chunk_rows=chunk_rows)
    check_sizes(catalog.n_tracks, n_users, n_plays)
    counts = user_activity(n_users, n_plays, catalog.n_tracks, rng)
    user_ids = hex_codes(rng, n_users, 20)
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
    user_ids, parts = history_parts(catalog, n_users, n_plays, rng, chunk_rows)
    track_ids = catalog.frame["track_id"].to_numpy(dtype=object)

    def frames() -> Iterator[pd.DataFrame]:
        for us, its, ps in parts:
            yield pd.DataFrame({
                "track_id": track_ids[its],
                "user_id": user_ids[us].astype(object),
                "playcount": ps,
            }, columns=list(KAGGLE_HISTORY_COLUMNS))

    return frames()
