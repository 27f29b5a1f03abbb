"""Keys computed from row values: item ids for name-only items and the exact-duplicate row key.

:func:`name_key` gives an item known only by its names (artist, and title) a deterministic
id; :func:`dedup_text` builds the injective per-row text the clean compares to find exact
duplicate rows.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_WS = re.compile(r"\s+")


def name_key(artist: str | None, title: str | None = None) -> str:
    """Deterministic item id for a name-only item: ``name:`` + 16 hex digits of BLAKE2b of the
    normalised names (Unicode NFKC, case-folded, inner whitespace collapsed). The two names are
    joined with U+001F, which cannot occur in them: the reader replaces the C0 control characters
    of name fields (free text) by U+FFFD before any key is built."""
    def norm(s: str | None) -> str:
        return _WS.sub(" ", unicodedata.normalize("NFKC", s or "").casefold()).strip()
    payload = norm(artist) if title is None else norm(artist) + "\x1f" + norm(title)
    return "name:" + hashlib.blake2b(payload.encode("utf-8"), digest_size=8).hexdigest()


def name_keys(artists: list[str | None], titles: list[str | None] | None = None) -> list[str]:
    cache: dict[tuple[str | None, str | None], str] = {}
    out = []
    for i, a in enumerate(artists):
        t = None if titles is None else titles[i]
        k = (a, t)
        v = cache.get(k)
        if v is None:
            v = cache[k] = name_key(a, t)
        out.append(v)
    return out


def dedup_text(*cols: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Row key for exact-duplicate detection: each normalised field prefixed with its length
    (``"3:TRA:2:u1:1:3"``), so that the key is injective whatever characters the fields hold
    (a separator inside a field cannot make two different rows one)."""
    parts: list[Any] = []
    for c in cols:
        parts += [pc.cast(pc.utf8_length(c), pa.string()), c]
    return pc.binary_join_element_wise(*parts, ":")
