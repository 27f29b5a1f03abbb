"""Random-draw helpers of the synthetic generator: argument checks, unique random codes, grouped weighted draws.

Every function takes the ``np.random.Generator`` it draws from (or none), so the callers
decide the order of the draws and the output stays deterministic.
"""

from __future__ import annotations

import numpy as np

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def check_positive(**kwargs: int) -> None:
    """Raise ``ValueError`` naming the argument unless every value is an integer greater than 0."""
    for name, value in kwargs.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if value <= 0:
            raise ValueError(f"{name} must be greater than 0, got {value}")


def random_codes(rng: np.random.Generator, n: int, width: int, alphabet: np.ndarray) -> np.ndarray:
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


def hex_codes(rng: np.random.Generator, n: int, n_bytes: int) -> np.ndarray:
    """``n`` unique random lower-case hex strings of ``2 * n_bytes`` characters."""
    raw = rng.integers(0, 256, size=(n, n_bytes), dtype=np.uint8)
    out = np.empty((n, 2 * n_bytes), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    flat = out.view(f"S{2 * n_bytes}").ravel()
    if np.unique(flat).size != n:  # pragma: no cover - 2**-100 territory
        raise ValueError("hex id collision; use another seed")
    return flat.astype(f"U{2 * n_bytes}")


def group_cdf(groups: np.ndarray, weights: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
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


def draw_in_groups(order: np.ndarray, cum: np.ndarray, groups: np.ndarray, u: np.ndarray) -> np.ndarray:
    """A weighted draw per entry of ``groups`` from the :func:`group_cdf` table, by ``u`` in [0, 1)."""
    u = np.minimum(u, 1.0 - 1e-9)
    pos = np.searchsorted(cum, groups + u, side="right")
    return order[np.minimum(pos, order.size - 1)]
