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
generated in fixed blocks of :data:`~musicrec.ingest.synthetic.history.USER_BLOCK` users,
each with its own generator derived from one seed drawn from the caller's generator, so
the output bytes do not depend on ``chunk_rows`` or on thread counts.

This package: :func:`write_synthetic` (here) writes the two files; :mod:`.catalog` draws the
tracks (``Music Info.csv``) and their latent structure, :mod:`.history` the listening history,
:mod:`.sampling` holds the random-draw helpers both use.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from musicrec.ingest.synthetic.catalog import generate_catalog, genre_names
from musicrec.ingest.synthetic.history import MAX_PLAYCOUNT, check_sizes, history_parts
from musicrec.ingest.synthetic.sampling import check_positive
from musicrec.io import atomic_path
from musicrec.schema import KAGGLE_HISTORY, KAGGLE_HISTORY_COLUMNS, KAGGLE_MUSIC_INFO

if TYPE_CHECKING:
    from musicrec.config import GenerateParams

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


def write_synthetic(out_dir: Path, params: "GenerateParams", seed: int, chunk_rows: int = 1_000_000) -> dict[str, Any]:
    """Write ``Music Info.csv`` and ``User Listening History.csv`` into ``out_dir`` atomically.

    ``params`` is the ``generate`` section (the sizes); the sizes are checked
    here too, for a section built with ``GenerateParams.model_construct``.
    """
    t0 = time.perf_counter()
    n_tracks, n_users, n_plays = params.n_tracks, params.n_users, params.n_plays
    n_genres, n_artists = params.n_genres, params.n_artists
    check_positive(n_tracks=n_tracks, n_users=n_users, n_plays=n_plays, n_genres=n_genres,
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
        user_ids, parts = history_parts(catalog, n_users, n_plays, rng, chunk_rows)
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
