"""The adapter contract: what every source adapter hands the clean, and the helpers that build it.

Every adapter module (listed in :data:`musicrec.ingest.SOURCES`) exposes three functions used by :func:`musicrec.pipeline.clean.clean`:

* ``locate(input_dir) -> Inputs``: find the published files (raises
  :class:`~musicrec.ingest.inputs.InputFormatError` naming what is missing);
* ``load_catalog(inputs, ctx) -> Catalog``: item metadata (and, for the Taste
  Profile, the raw-id -> item-id mapping), or ``Catalog(items=None)`` when items
  are derived from the plays themselves (Last.fm 1K / 360K);
* ``iter_plays(inputs, ctx) -> Iterator[PlaysBatch]``: validated plays, chunk by chunk.

This module holds those types (:class:`Context`, :class:`Catalog`, :class:`PlaysBatch`,
:class:`FileReport`, the item and plays schemas) and what adapters build them with:
:func:`find_file`, :func:`stream_plays` / :func:`read_table` (read a file through the
row checks of :mod:`musicrec.ingest.values`), :func:`make_items`, :func:`plays_table`,
and the clean's quarantine-share limit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from musicrec.ingest.values import Checks
from musicrec.ingest.inputs import (
    COMPRESSED_SUFFIXES, DEFAULT_POLICY, TAR_SUFFIXES, InputFile, InputFormatError, InputPolicy,
)
from musicrec.ingest.quarantine import with_file
from musicrec.ingest.reader import iter_records
from musicrec.ingest.spec import ReaderStats, TableSpec
from musicrec.schema import AUDIO_FEATURES, ITEM_COLUMNS

ITEM_SCHEMA = pa.schema(
    [
        ("item_id", pa.string()),
        ("name", pa.string()),
        ("artist", pa.string()),
        ("tags", pa.string()),
        ("genre", pa.string()),
        ("year", pa.int64()),
        ("duration_ms", pa.int64()),
        *[(f, pa.float64()) for f in AUDIO_FEATURES],
        ("preview_url", pa.string()),  # an http(s) audio preview (Kaggle: spotify_preview_url), else null
    ]
)
assert tuple(ITEM_SCHEMA.names) == ITEM_COLUMNS

PLAYS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("playcount", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class Context:
    chunk_rows: int
    max_playcount: int
    policy: InputPolicy = DEFAULT_POLICY  # where inputs may be, and the reader limits


@dataclass
class FileReport:
    """Accounting for one input file: ``rows_read == kept + quarantined + unmatched_dropped``."""

    role: str
    rows_read: int = 0
    kept: int = 0
    quarantined: int = 0
    unmatched_dropped: int = 0
    reasons: Counter = field(default_factory=Counter)
    reader: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "rows_read": self.rows_read,
            "kept": self.kept,
            "quarantined": self.quarantined,
            "unmatched_dropped": self.unmatched_dropped,
            "reasons": dict(sorted(self.reasons.items())),
            **({"reader": self.reader} if self.reader else {}),
            **self.notes,
        }


@dataclass
class Catalog:
    """Item metadata of a source.

    ``items``: table with :data:`ITEM_SCHEMA`, unique ``item_id`` (None: items are
    derived from the plays). ``id_map``: raw play item id -> catalog item id
    (Taste Profile SO -> TR); None means play item ids are catalog ids.
    ``quarantine``: rejected metadata rows (``file``, ``line``, ``reason``, ``raw``).
    ``join``: what the plays-to-metadata join compares, ``(plays "file: column",
    metadata "file: column")``, named in the warning when no play matches.
    """

    items: pa.Table | None
    id_map: tuple[pa.Array, pa.Array] | None = None
    files: dict[str, FileReport] = field(default_factory=dict)
    quarantine: list[pa.Table] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    join: tuple[str, str] | None = None


#: For sources whose items come from the plays (``Catalog(items=None)``): the plays columns that
#: carry an item's metadata, and the item column each fills (from the item's first kept play).
#: ``_name`` and ``_artist`` are always there; ``_year`` where the source has it (MSD tutorial table).
DERIVED_ITEM_COLUMNS = {"_name": "name", "_artist": "artist", "_year": "year"}


@dataclass
class PlaysBatch:
    """One chunk of one plays file.

    ``plays``: ``user_id``, ``item_id`` (raw, before any mapping), ``playcount``,
    ``timestamp``, ``_line``, ``_dedup`` (normalised row text used to find exact
    duplicates) and, for sources whose items come from the plays, ``_name`` and
    ``_artist`` (and the other :data:`DERIVED_ITEM_COLUMNS` the source has).
    ``rejects``: ``line``, ``reason``, ``raw``.
    """

    file: str
    rows_read: int
    plays: pa.Table
    rejects: pa.Table
    reader: dict[str, Any] | None = None  # reader stats, set on the file's last batch
    notes: dict[str, Any] | None = None  # adapter notes for the file's report (e.g. alias merges), on the last batch


def make_items(n: int, **cols: Any) -> pa.Table:
    """Build an items table with :data:`ITEM_SCHEMA`; absent columns are null."""
    arrays = []
    for f in ITEM_SCHEMA:
        v = cols.get(f.name)
        if v is None:
            arrays.append(pa.nulls(n, f.type))
        else:
            arr = v.combine_chunks() if isinstance(v, pa.ChunkedArray) else v
            arrays.append(pc.cast(arr, f.type))
    return pa.Table.from_arrays(arrays, schema=ITEM_SCHEMA)


def plays_table(user: Any, item: Any, playcount: Any, timestamp: Any | None, line: Any, dedup: Any,
                **extra: Any) -> pa.Table:
    n = len(user)
    cols: dict[str, Any] = {
        "user_id": user,
        "item_id": item,
        "playcount": playcount,
        "timestamp": timestamp if timestamp is not None else pa.nulls(n, pa.timestamp("us", tz="UTC")),
        "_line": line,
        "_dedup": dedup,
    }
    cols.update(extra)
    return pa.table(cols)


def stream_plays(inp: "InputFile", spec: "TableSpec", ctx: Context,
                 build: Callable[[pa.Table, Checks], pa.Table]) -> Iterator[PlaysBatch]:
    """Read ``inp`` with ``spec`` and validate each chunk with ``build``.

    ``build(fields, checks)`` returns a plays table aligned with ``fields`` (one
    row per record) and records failures in ``checks``; rows that fail are
    quarantined. The last batch has ``plays=None`` and carries the reader stats.
    """
    from musicrec.threads import prefetched

    stats = ReaderStats()  # read once the reader has finished (its last record chunk is in)
    for ch in prefetched(iter_records(inp, spec, ctx.chunk_rows, stats, ctx.policy), depth=1):
        f = ch.fields
        checks = Checks(f.num_rows)
        plays = build(f, checks).append_column("_raw", f["_raw"])
        rej = checks.rejects(f["_line"], f["_raw"], ch.last_line)
        rejects = pa.concat_tables([ch.rejects, rej]).sort_by("line") if rej.num_rows else ch.rejects
        yield PlaysBatch(inp.name, ch.rows_read, plays.filter(pa.array(checks.ok)), rejects)
    yield PlaysBatch(inp.name, 0, None, None, reader=stats.to_dict())  # type: ignore[arg-type]


def read_table(inp: "InputFile", spec: "TableSpec", ctx: Context, report: FileReport,
               build: Callable[[pa.Table, Checks], pa.Table]) -> tuple[pa.Table | None, list[pa.Table], np.ndarray, pa.Array]:
    """Read a whole (metadata-sized) file and validate it with ``build``.

    Returns (valid rows built, quarantine tables, their line numbers, their raw text);
    updates ``report`` with rows read / quarantined (``kept`` is left to the caller).
    """
    stats = ReaderStats()
    built: list[pa.Table] = []
    lines: list[np.ndarray] = []
    raws: list[pa.Array] = []
    quarantine: list[pa.Table] = []
    for ch in iter_records(inp, spec, ctx.chunk_rows, stats, ctx.policy):
        f = ch.fields
        checks = Checks(f.num_rows)
        t = build(f, checks)
        ok = pa.array(checks.ok)
        rej = pa.concat_tables([ch.rejects, checks.rejects(f["_line"], f["_raw"], ch.last_line)]).sort_by("line")
        report.rows_read += ch.rows_read
        report.quarantined += rej.num_rows
        report.reasons.update(rej["reason"].to_pylist())
        quarantine.append(with_file(rej, inp.name))
        built.append(t.filter(ok))
        lines.append(f["_line"].filter(ok).to_numpy())
        raws.append(f["_raw"].filter(ok).combine_chunks() if f.num_rows else pa.array([], pa.string()))
    report.reader = stats.to_dict()
    if not built:
        return None, quarantine, np.empty(0, np.int64), pa.array([], pa.string())
    table = pa.concat_tables(built)
    return table, quarantine, np.concatenate(lines), pa.concat_arrays([r for r in raws]) if raws else pa.array([], pa.string())


# Names never looked for compressed: archives (zip, tar), and SQLite databases (they need random access).
_NOT_COMPRESSED = (".zip", ".db", *TAR_SUFFIXES)


def find_file(input_dir: Path, names: tuple[str, ...], what: str, required: bool = True) -> Path | None:
    """Find the first of ``names`` in ``input_dir`` or one level of sub-folders (sorted).

    Each name is also looked for compressed, as ``<name>.gz``, ``.bz2``, ``.xz`` or
    ``.zip`` (read streaming by :class:`~musicrec.ingest.inputs.InputFile`); two copies
    of one name (two folders, or plain and compressed) are refused as ambiguous.
    """
    if not input_dir.exists():
        raise InputFormatError(f"{input_dir}: input directory not found; expected {what}")
    if not input_dir.is_dir():
        raise InputFormatError(f"{input_dir}: expected a directory holding {what}, found a file")
    dirs = [input_dir, *sorted(p for p in input_dir.iterdir() if p.is_dir() and not p.name.startswith("."))]
    for name in names:
        variants = (name,) if name.lower().endswith(_NOT_COMPRESSED) else (name, *(name + s for s in COMPRESSED_SUFFIXES))
        hits = [d / v for d in dirs for v in variants if (d / v).is_file()]
        if len(hits) > 1:
            raise InputFormatError(
                f"{input_dir}: {name!r} found {len(hits)} times ({[str(h) for h in hits]}); expected one (plain "
                f"or compressed as {', '.join(COMPRESSED_SUFFIXES)}): remove or move the other copies"
            )
        if hits:
            return hits[0]
    if required:
        found = sorted(str(p.relative_to(input_dir)) for d in dirs for p in d.iterdir() if p.is_file())[:30]
        packed = [f for f in found for n in names if n.lower().endswith(_NOT_COMPRESSED)
                  and Path(f).name in {n + s for s in COMPRESSED_SUFFIXES}]
        hint = (f" ({', '.join(packed)}: archives and SQLite databases are not read compressed; decompress it "
                f"first)" if packed else "")
        tars = [f for f in found if f.lower().endswith(TAR_SUFFIXES)]
        hint += (f" ({', '.join(tars)}: this source does not read a tar archive in place; extract it first, e.g. "
                 f"`tar xf {Path(tars[0]).name}` in {input_dir}, and keep the extracted files)" if tars else "")
        raise InputFormatError(
            f"{input_dir}: {' or '.join(repr(n) for n in names)} ({what}) not found in the folder or its "
            f"sub-folders (also looked for {', '.join(COMPRESSED_SUFFIXES)} copies){hint}. Found: {found}"
        )
    return None


def check_quarantine_share(file: str, rep: FileReport, policy: InputPolicy) -> None:
    """Stop the clean when more than ``policy.max_quarantined_share`` of a file's rows were quarantined.

    Files with fewer than ``policy.quarantine_share_min_rows`` rows are not judged
    (a handful of rows says little). The message names the file, the share, the
    top reasons and the param to raise.
    """
    if rep.rows_read < policy.quarantine_share_min_rows or rep.quarantined <= policy.max_quarantined_share * rep.rows_read:
        return
    top = ", ".join(f"{r} {n}" for r, n in sorted(rep.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
    raise InputFormatError(
        f"{file}: {rep.quarantined} of {rep.rows_read} rows ({rep.quarantined / rep.rows_read:.1%}) were "
        f"quarantined, above data.max_quarantined_share = {policy.max_quarantined_share:g}; top reasons: {top}. "
        f"Expected mostly valid rows: check that this is the right file for the source (see the reasons), or "
        f"raise data.max_quarantined_share in params.yaml to clean it anyway"
    )
