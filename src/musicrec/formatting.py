"""Numbers for people: the report, the CLI and the notebooks format them here.

``number(30000.0)`` is ``"30,000"`` (not ``3.000000e+04``), ``number(0.123456)`` is
``"0.1235"``, ``pvalue(2e-9)`` is ``"<0.001"``. Imports nothing but the standard library.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

MISSING = "–"
P_FLOOR = 1e-3


def number(value: object, digits: int = 4) -> str:
    """``value`` with thousands separators; whole numbers without decimals, others with ``digits`` of them.

    ``None`` and NaN are ``"–"``; infinities ``"∞"`` / ``"-∞"``; never scientific notation.
    """
    if value is None or isinstance(value, bool):
        return MISSING if value is None else str(value)
    if isinstance(value, Integral):
        return f"{int(value):,}"
    if not isinstance(value, Real):
        return str(value)
    v = float(value)
    if math.isnan(v):
        return MISSING
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v.is_integer() and abs(v) >= 1000:
        return f"{int(v):,}"
    return f"{v:,.{digits}f}"


def pvalue(p: float | None) -> str:
    """A p-value: ``"<0.001"`` below 0.001, else three decimals (``"0.042"``); ``"–"`` when missing."""
    if p is None or math.isnan(p):
        return MISSING
    return f"<{P_FLOOR:g}" if p < P_FLOOR else f"{p:.3f}"


def percent(share: float | None, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage (``0.4213`` -> ``"42.1%"``)."""
    if share is None or math.isnan(share):
        return MISSING
    return f"{share:.{digits}%}"


def bytes_size(n: int | None) -> str:
    """A size in bytes for people: ``"1.5 MB"`` (powers of 1000)."""
    if n is None:
        return MISSING
    if abs(n) < 1000:
        return f"{n} B"
    size, unit = n / 1000, "kB"
    for bigger in ("MB", "GB", "TB"):
        if abs(size) < 1000:
            break
        size, unit = size / 1000, bigger
    return f"{size:,.1f} {unit}"


def duration(seconds: float) -> str:
    """``"0.42 s"``, ``"3.2 s"``, ``"2 min 05 s"``."""
    if seconds < 10:
        return f"{seconds:.2f} s" if seconds < 1 else f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    return f"{minutes} min {sec:02d} s"
