"""The ``clean`` stage: one raw source -> the cleaned, source-agnostic schema.

``clean(source, input_dir, out_dir, config: CleanConfig, policy)`` finds the source's published files
(:mod:`musicrec.ingest.contract`), streams the plays in chunks of ``config.chunk_rows``, and
writes ``out_dir`` atomically (see :mod:`musicrec.schema`):

* ``plays/part-NNNNN.parquet`` (one part per non-empty chunk, file order),
* ``items.parquet`` (sorted by ``item_id``),
* ``quarantine.parquet`` (every rejected row: file, physical line, reason, raw).

Rules applied here, for every source (adapters apply the per-row validation
and the id/text normalisation documented in their module docstrings):

* Exact duplicate rows (same normalised fields) within one file are quarantined
  as ``duplicate_row``; the first is kept. Detection keeps only 64-bit hashes
  (pandas' SipHash-based ``hash_array``) of the rows seen, in a sorted NumPy
  array (8 bytes per distinct row); a hash collision (p ~ n^2 / 2^65, about
  3e-6 for 10M rows) would wrongly quarantine one row.
* Join with the item metadata: a play whose item has no metadata row is
  *unmatched*; ``unmatched="keep"`` keeps it (its item gets a row with null
  metadata in ``items.parquet``, so every play's item is in the items table),
  ``"drop"`` drops it and counts it as ``unmatched_dropped``. Items with
  metadata but no plays stay in ``items.parquet`` and are counted.
* Plays that match no metadata at all (a catalog source where not one play
  joins, e.g. a history whose columns are swapped under a correct header): a
  warning naming the columns the join compares, with a sample id from each side,
  is printed on stderr and listed under ``warnings`` in the report (as are
  header notes of the reader, e.g. an alias column ignored because the
  canonical column is present). The report has ``warnings`` only when there is one.
* Accounting: per file and overall, ``rows_read == kept + quarantined +
  unmatched_dropped`` (checked before returning; a violation is a bug and raises).

The plays batches are validated in a background thread, one batch ahead of the
duplicate check, the join and the writes, and read and split in another
(:func:`musicrec.threads.prefetched`, here and in
:func:`musicrec.ingest.contract.stream_plays`; the threads share no state, and the
batches arrive in file order).

The output bytes depend only on the input bytes and the arguments.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from musicrec.config import CleanParams, DataParams, Params
from musicrec.ingest import SOURCES, get_adapter
from musicrec.ingest.contract import (
    DERIVED_ITEM_COLUMNS, ITEM_SCHEMA, PLAYS_SCHEMA, Catalog, Context, FileReport, check_quarantine_share, make_items,
)
from musicrec.ingest.inputs import DEFAULT_POLICY, InputFormatError, InputPolicy
from musicrec.ingest.quarantine import QUARANTINE_SCHEMA, REASONS, with_file
from musicrec.io import atomic_path
from musicrec.progress import Progress, StepTimer
from musicrec.threads import prefetched

__all__ = ["clean", "CleanConfig", "InputFormatError", "REASONS"]

PARQUET_OPTS: dict[str, Any] = {"compression": "zstd", "write_statistics": True}


def _hash(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    values = np.asarray(arr.to_numpy(zero_copy_only=False), dtype=object)
    return pd.util.hash_array(values, categorize=False).astype(np.uint64, copy=False)


class HashSet:
    """A growing set of uint64 hashes kept as one sorted array (bounded memory, 8 B per element)."""

    def __init__(self) -> None:
        self.values = np.empty(0, np.uint64)

    def __len__(self) -> int:
        return len(self.values)

    def add(self, h: np.ndarray) -> np.ndarray:
        """Add ``h``; return a mask of the entries already present (earlier in ``h`` or before)."""
        dup = np.ones(len(h), dtype=bool)
        if not len(h):
            return dup
        uniq, first = np.unique(h, return_index=True)
        dup[first] = False
        if len(self.values):
            pos = np.searchsorted(self.values, uniq)
            pos[pos == len(self.values)] = 0
            seen = self.values[pos] == uniq
            dup[first[seen]] = True
            uniq = uniq[~seen]
        if len(uniq):  # both sorted and disjoint: one O(n) merge, not a sort of the whole set per chunk
            self.values = np.insert(self.values, np.searchsorted(self.values, uniq), uniq)
        return dup

    def update(self, values: pa.Array | pa.ChunkedArray) -> None:
        """Add the distinct values of a string column (hashing each distinct value once)."""
        self.add(_hash(pc.unique(values)))


def _plays_out(t: pa.Table) -> pa.Table:
    return pa.Table.from_arrays(
        [pc.cast(t[n], f.type) for n, f in zip(PLAYS_SCHEMA.names, PLAYS_SCHEMA)], schema=PLAYS_SCHEMA
    )


@dataclass(frozen=True)
class CleanConfig:
    """The clean stage's settings: ``data.chunk_rows``, the source's play-count cap, ``data.unmatched``.

    :meth:`from_params` reads them from a loaded ``params.yaml`` (the cap is
    ``clean.cap_for(data.source)``); tests and studies build one directly.
    """

    chunk_rows: int = DataParams.model_fields["chunk_rows"].default
    max_playcount: int = CleanParams.model_fields["max_playcount"].default
    unmatched: Literal["keep", "drop"] = DataParams.model_fields["unmatched"].default

    def __post_init__(self) -> None:
        if self.unmatched not in ("keep", "drop"):
            raise ValueError(f"unmatched must be 'keep' or 'drop' (got {self.unmatched!r})")
        if self.chunk_rows <= 0 or self.max_playcount <= 0:
            raise ValueError("chunk_rows and max_playcount must be positive")

    @classmethod
    def from_params(cls, params: Params) -> "CleanConfig":
        data = params.data
        return cls(chunk_rows=data.chunk_rows, max_playcount=params.clean.cap_for(data.source),
                   unmatched=data.unmatched)


def clean(source: str, input_dir: Path, out_dir: Path, config: CleanConfig = CleanConfig(),
          policy: InputPolicy = DEFAULT_POLICY, timer: StepTimer | None = None) -> dict[str, Any]:
    """Clean one raw source into ``out_dir``; return the data-quality report (``timer``: its phases'
    seconds and peak memory, which the stage adds to the report file).

    ``policy``: where inputs may be (the input folder and every file must stay
    inside ``policy.root`` after following symlinks) and the reader limits,
    among them the largest share of a file's rows that may be quarantined.

    Raises :class:`~musicrec.ingest.inputs.InputFormatError` for missing, unparseable
    or refused inputs (``out_dir`` is then left as it was).
    """
    adapter = get_adapter(source)
    ctx = Context(chunk_rows=config.chunk_rows, max_playcount=config.max_playcount, policy=policy)
    input_dir = Path(input_dir)
    policy.check_path(input_dir, "the raw source folder (data.raw_root/data.source)")
    inputs = adapter.locate(input_dir)
    timer = timer if timer is not None else StepTimer("clean", quiet=True)
    catalog: Catalog = adapter.load_catalog(inputs, ctx)
    timer.lap("read the metadata")
    files: dict[str, FileReport] = dict(catalog.files)
    for name, rep in files.items():
        check_quarantine_share(name, rep, policy)
    acc = _Accumulator(catalog, config.unmatched)

    with atomic_path(Path(out_dir), directory=True) as tmp:
        (tmp / "plays").mkdir()
        qw = pq.ParquetWriter(tmp / "quarantine.parquet", QUARANTINE_SCHEMA, **PARQUET_OPTS)
        reading = Progress("clean: reading", unit="rows")
        try:
            for q in catalog.quarantine:
                if q.num_rows:
                    qw.write_table(q)
            for batch in prefetched(adapter.iter_plays(inputs, ctx), depth=1):
                reading.update(batch.rows_read if batch.plays is not None else 0)
                rep = files.setdefault(batch.file, FileReport(role="plays"))
                if batch.plays is None:  # end of the file
                    rep.reader = batch.reader or {}
                    rep.notes.update(batch.notes or {})
                    check_quarantine_share(batch.file, rep, policy)
                    continue
                rep.rows_read += batch.rows_read
                plays, dups = acc.drop_duplicates(batch.file, batch.plays)
                plays = acc.join(plays, rep)
                rej = pa.concat_tables([batch.rejects, *dups]).sort_by("line")
                rep.quarantined += rej.num_rows
                rep.reasons.update(rej["reason"].to_pylist())
                if rej.num_rows:
                    qw.write_table(with_file(rej, batch.file))
                rep.kept += plays.num_rows
                acc.keep(plays, tmp / "plays")
            if acc.parts == 0:
                pq.write_table(PLAYS_SCHEMA.empty_table(), tmp / "plays" / "part-00000.parquet", **PARQUET_OPTS)
        finally:
            reading.close()
            qw.close()
        timer.lap("read, validate and write the plays")
        items = acc.items_table()
        if SOURCES[source].generated:  # its preview URLs are made up: an audio player would fetch nothing
            items = items.set_column(items.schema.get_field_index("preview_url"), "preview_url",
                                     pa.nulls(items.num_rows, pa.string()))
        pq.write_table(items.cast(ITEM_SCHEMA), tmp / "items.parquet", **PARQUET_OPTS)
        report = acc.report(source, input_dir, files, ctx, items_total=items.num_rows)
        warnings = acc.warnings(files)
        if warnings:
            report["warnings"] = warnings
        timer.lap("items and report")
    for w in warnings:
        print(f"clean: warning: {w}", file=sys.stderr)
    return report


class _Accumulator:
    """What the clean stage gathers over the plays batches: duplicate hashes, the join, kept-play counts."""

    def __init__(self, catalog: Catalog, unmatched: str) -> None:
        self.catalog, self.unmatched = catalog, unmatched
        self.derived = catalog.items is None  # items come from the plays
        self.cat_ids = None if self.derived else catalog.items["item_id"].combine_chunks()
        self.dedup_sets: dict[str, HashSet] = {}  # per file
        self.matched_items = HashSet()  # catalog item ids that have plays
        self.unmatched_ids: set[str] = set()
        self.users = HashSet()
        self.kept_items = HashSet()
        self.derived_items: list[pa.Table] = []
        self.plays_matched = self.plays_unmatched = self.plays_kept = 0
        self.playcount_sum = self.with_ts = self.parts = 0

    def drop_duplicates(self, file: str, plays: pa.Table) -> tuple[pa.Table, list[pa.Table]]:
        """Exact duplicates within the file: the plays without them, and their quarantine rows."""
        seen = self.dedup_sets.setdefault(file, HashSet())
        dup = seen.add(_hash(plays["_dedup"]))
        if not dup.any():
            return plays, []
        d = plays.filter(pa.array(dup))
        rejects = pa.table({"line": d["_line"], "reason": pa.array(["duplicate_row"] * d.num_rows, pa.string()),
                            "raw": d["_raw"]})
        return plays.filter(pa.array(~dup)), [rejects]

    def join(self, plays: pa.Table, rep: FileReport) -> pa.Table:
        """Join with the metadata (mapping ids through ``catalog.id_map``); drops unmatched plays for ``drop``."""
        catalog = self.catalog
        item = plays["item_id"]
        if self.derived:
            matched = np.ones(plays.num_rows, dtype=bool)
        elif catalog.id_map is not None:
            keys, vals = catalog.id_map
            idx = pc.index_in(item, value_set=keys)
            matched = np.asarray(pc.is_valid(idx).to_numpy(zero_copy_only=False), dtype=bool)
            item = pc.coalesce(pc.take(vals, idx), item)
            plays = plays.set_column(plays.schema.get_field_index("item_id"), "item_id", item)
        else:
            matched = np.asarray(pc.is_in(item, value_set=self.cat_ids).to_numpy(zero_copy_only=False), dtype=bool)
        n_match = int(matched.sum())
        self.plays_matched += n_match
        self.plays_unmatched += plays.num_rows - n_match
        if not self.derived and n_match:
            self.matched_items.update(pc.filter(item, pa.array(matched)))
        if n_match < plays.num_rows:
            self.unmatched_ids.update(pc.unique(pc.filter(item, pa.array(~matched))).to_pylist())
            if self.unmatched == "drop":
                rep.unmatched_dropped += plays.num_rows - n_match
                plays = plays.filter(pa.array(matched))
        return plays

    def keep(self, plays: pa.Table, plays_dir: Path) -> None:
        """Count the kept plays and write them as the next part (nothing for an empty batch)."""
        if not plays.num_rows:
            return
        self.plays_kept += plays.num_rows
        self.users.update(plays["user_id"])
        self.kept_items.update(plays["item_id"])
        self.playcount_sum += int(pc.sum(plays["playcount"]).as_py())
        self.with_ts += plays.num_rows - plays["timestamp"].null_count
        if self.derived:
            meta = plays.select(["item_id", *(c for c in DERIVED_ITEM_COLUMNS if c in plays.column_names)])
            self.derived_items.append(pa.Table.from_pandas(meta.to_pandas().drop_duplicates("item_id"),
                                                           schema=meta.schema, preserve_index=False))
        pq.write_table(_plays_out(plays), plays_dir / f"part-{self.parts:05d}.parquet", **PARQUET_OPTS)
        self.parts += 1

    def items_table(self) -> pa.Table:
        """The items: derived from the plays, or the catalog plus (``keep``) a null-metadata row per unmatched id."""
        if self.derived:
            if not self.derived_items:
                return make_items(0).sort_by("item_id").combine_chunks()
            df = pa.concat_tables(self.derived_items).to_pandas().drop_duplicates("item_id", keep="first")
            items = make_items(len(df), item_id=pa.array(df["item_id"], pa.string()),
                               **{col: pa.array(df[c]) for c, col in DERIVED_ITEM_COLUMNS.items() if c in df})
        else:
            items = self.catalog.items
            if self.unmatched == "keep" and self.unmatched_ids:
                extra = make_items(len(self.unmatched_ids), item_id=pa.array(sorted(self.unmatched_ids), pa.string()))
                items = pa.concat_tables([items, extra])
        return items.sort_by("item_id").combine_chunks()

    def warnings(self, files: dict[str, FileReport]) -> list[str]:
        """The readers' header notes, and the no-match warning when not one play joins the metadata."""
        warnings = [n for rep in files.values() for n in rep.reader.get("header_notes", [])]
        if not self.derived and self.plays_unmatched and not self.plays_matched:
            warnings.append(_no_match_warning(self.catalog, self.cat_ids, self.unmatched_ids, self.plays_unmatched))
        return warnings

    def report(self, source: str, input_dir: Path, files: dict[str, FileReport], ctx: Context, *,
               items_total: int) -> dict[str, Any]:
        """The data-quality report (checks ``rows_read == kept + quarantined + unmatched_dropped`` per file)."""
        totals = FileReport(role="all")
        for name, rep in files.items():
            if rep.rows_read != rep.kept + rep.quarantined + rep.unmatched_dropped:
                raise RuntimeError(f"accounting bug in {name}: {rep.to_dict()}")
            totals.rows_read += rep.rows_read
            totals.kept += rep.kept
            totals.quarantined += rep.quarantined
            totals.unmatched_dropped += rep.unmatched_dropped
            totals.reasons.update(rep.reasons)
        derived, unmatched, catalog = self.derived, self.unmatched, self.catalog
        matched_items, items_with_plays = len(self.matched_items), len(self.kept_items)
        catalog_size = 0 if derived or catalog.items is None else catalog.items.num_rows
        join: dict[str, Any] = {
            "items_from": "plays" if derived else "metadata",
            "unmatched_policy": unmatched,
            "plays_matched": self.plays_matched,
            "plays_unmatched": self.plays_unmatched,
            "plays_unmatched_kept": self.plays_unmatched if unmatched == "keep" else 0,
            "plays_unmatched_dropped": self.plays_unmatched if unmatched == "drop" else 0,
            "play_items_matched": matched_items if not derived else items_with_plays,
            "play_items_unmatched": len(self.unmatched_ids),
            "metadata_items": catalog_size,
            "metadata_items_with_plays": matched_items,
            "metadata_items_without_plays": catalog_size - matched_items,
            **catalog.stats,
        }
        t = totals.to_dict()
        del t["role"]
        return {
            "source": source,
            "input_dir": str(input_dir),
            "params": {"chunk_rows": ctx.chunk_rows, "max_playcount": ctx.max_playcount, "unmatched": unmatched},
            "files": {name: rep.to_dict() for name, rep in files.items()},
            "totals": t,
            "join": join,
            "output": {
                "plays": self.plays_kept,
                "users": len(self.users),
                "items": items_total,
                "items_with_plays": items_with_plays,
                "playcount_sum": self.playcount_sum,
                "plays_with_timestamp": self.with_ts,
                "plays_parts": max(self.parts, 1),
            },
        }


def _no_match_warning(catalog: Catalog, cat_ids: pa.Array, unmatched_ids: set[str], n: int) -> str:
    plays_side, meta_side = catalog.join or ("plays: item id", "metadata: item id")
    meta_sample = repr(pc.min(cat_ids).as_py()) if len(cat_ids) else "none: the metadata has no valid item"
    return (f"none of the {n} valid plays matched the item metadata: the join compares {plays_side} "
            f"(e.g. {min(unmatched_ids)!r}) with {meta_side} (e.g. {meta_sample}); check that the columns are "
            f"not swapped or mislabelled and that both files come from the same data set")


def reasons_vocabulary() -> dict[str, str]:
    """The quarantine reasons and what each means."""
    return dict(REASONS)

