"""The ``transform`` stage: Dask, out of core, over the cleaned data.

1. Read ``interim/plays`` (Parquet parts) lazily with ``dask.dataframe``.
2. Shuffle by ``user_id`` into ``partitions`` partitions (hash partitioning, so
   every row of a user lands in one partition) and aggregate plays per
   (user, item): ``playcount`` summed, ``first_ts``/``last_ts`` = min/max of the
   event timestamps. The aggregated pairs are spilled to Parquet, so memory does
   not grow with the input.
3. Join with the item metadata (``interim/items.parquet``) and count how many
   items and plays have metadata.
4. Minimum-activity filter iterated to a fixed point: keep users with at least
   ``min_user_items`` distinct items and items with at least ``min_item_users``
   distinct users, recount, repeat until nothing changes. Each pass scans the
   spilled pairs; only the keep sets live in memory. Not converging within
   ``max_passes`` is an error (raise the param).
5. Write ``processed/plays/part.NNNNN.parquet`` (rows sorted by user, item in
   each partition: bit-for-bit deterministic) and ``processed/items.parquet``.

The scheduler is ``threads`` (default), ``processes``, ``synchronous`` or the
``tcp://host:port`` address of an existing Dask cluster; the code is the same.

The interim input may also be an fsspec URL (``s3://bucket/prefix/interim``) with
``storage_options`` (for s3fs: ``key``, ``secret``, ``client_kwargs.endpoint_url``),
so that the workers of a cluster read the input without a shared disk.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from musicrec.errors import DataError, MissingInputError, ResourceUnavailable, reading
from musicrec.io import atomic_path, write_parquet
from musicrec.progress import StepTimer, progress
from musicrec.schema import PROCESSED_PLAY_COLUMNS

if TYPE_CHECKING:
    from musicrec.config import DaskParams, TransformParams

_TS_DTYPE = "datetime64[us, UTC]"
# In-memory buffer of Dask's disk shuffle (partd) on the local schedulers: partd's default
# (1 GB) was a third of the stage's peak RSS at 10M rows; the data spills to disk beyond it.
_SHUFFLE_BUFFER_BYTES = 128 * 2**20


@contextlib.contextmanager
def _bounded_memory() -> Iterator[None]:
    """Lower the stage's peak RSS without changing a byte of its output.

    * partd's shuffle buffer bounded to ``_SHUFFLE_BUFFER_BYTES``;
    * Arrow allocations from the system allocator (freed memory goes back to the
      OS between the filter passes, where mimalloc kept it).

    Measured at 10M rows on 2 cores (``benchmarks/run.py``): peak 2.70 -> 2.04 GB, same time.
    Both are restored on exit (the tests run the transform in-process).
    """
    try:
        import partd
    except ImportError:  # pragma: no cover - partd comes with dask[dataframe]
        partd = None
    old_defaults = partd.Buffer.__init__.__defaults__ if partd is not None else None
    old_pool = pa.default_memory_pool()
    try:
        if partd is not None:
            partd.Buffer.__init__.__defaults__ = (float(_SHUFFLE_BUFFER_BYTES),)
        pa.set_memory_pool(pa.system_memory_pool())
        yield
    finally:
        if partd is not None:
            partd.Buffer.__init__.__defaults__ = old_defaults
        pa.set_memory_pool(old_pool)


@dataclass(frozen=True)
class FilterSpec:
    min_user_items: int
    min_item_users: int
    max_passes: int


@contextlib.contextmanager
def dask_scheduler(scheduler: str, num_workers: int, *, connect_timeout: str = "10s") -> Iterator[dict[str, Any]]:
    """Configure Dask for one stage run; yield ``{"client": Client | None}``.

    A ``tcp://`` / ``tls://`` address connects to an existing cluster (clear
    error if it cannot be reached); otherwise a local scheduler is used.
    """
    import dask

    if scheduler.startswith(("tcp://", "tls://")):
        from distributed import Client

        try:
            client = Client(scheduler, timeout=connect_timeout, set_as_default=True)
        except OSError as err:
            raise ResourceUnavailable(
                f"cannot reach the Dask scheduler at {scheduler} (dask.scheduler in params.yaml): {err}. "
                "Start one with `dask scheduler` + `dask worker`, or set dask.scheduler: threads"
            ) from None
        try:
            yield {"client": client}
        finally:
            client.close()
        return
    with dask.config.set(scheduler=scheduler, num_workers=num_workers):
        yield {"client": None}


def _aggregate_partition(df: pd.DataFrame) -> pd.DataFrame:
    """Aggregate one user-partition to one row per (user, item), sorted."""
    if df.empty:
        return _empty_pairs()
    ts = df["timestamp"]
    g = df.assign(first_ts=ts, last_ts=ts).groupby(["user_id", "item_id"], sort=True, observed=True)
    out = g.agg(playcount=("playcount", "sum"), first_ts=("first_ts", "min"), last_ts=("last_ts", "max"))
    out = out.reset_index()
    out["playcount"] = out["playcount"].astype("int64")
    return out[list(PROCESSED_PLAY_COLUMNS)]


def _empty_pairs() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.Series([], dtype="string"),
            "item_id": pd.Series([], dtype="string"),
            "playcount": pd.Series([], dtype="int64"),
            "first_ts": pd.Series([], dtype=_TS_DTYPE),
            "last_ts": pd.Series([], dtype=_TS_DTYPE),
        }
    )


def _value_set(keys: Any) -> pa.Array | None:
    """A keep set as one Arrow string array (``None`` stays ``None``)."""
    if keys is None:
        return None
    if isinstance(keys, (pa.Array, pa.ChunkedArray)):
        arr = keys
    else:
        arr = pa.array(pd.array(np.asarray(keys, dtype=object), dtype="string[pyarrow]"))
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _isin(col: pd.Series, keys: Any) -> np.ndarray:
    """``col.isin(keys)`` for string columns, in Arrow's hash-set kernel.

    (pandas' ``isin`` on Arrow-backed strings turns the value set into Python
    objects on every call: seconds per partition with a million keys.)
    """
    values = _value_set(keys)
    try:
        arr = pa.array(col.array)
    except (TypeError, pa.ArrowException):
        return col.isin(pd.Index(values.to_pylist())).to_numpy()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return col.isin(pd.Index(values.to_pylist())).to_numpy()
    mask = pc.fill_null(pc.is_in(arr, value_set=values.cast(arr.type)), False)
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)


@dataclass(frozen=True)
class Selection:
    """The ids a filter pass keeps: ``keys`` are the ids kept (``keep``) or the ids dropped (not ``keep``).

    The filter passes whichever is smaller (:func:`iterate_filter`): a million kept user ids
    were hashed again for every partition of every pass, where the few dropped ones select
    the same pairs. ``keys`` is a ``pd.Index`` or an Arrow string array (what the Dask graph carries).
    """

    keys: Any
    keep: bool = True

    def arrow(self) -> "Selection":
        return Selection(_value_set(self.keys), self.keep)


def _smaller(kept: pd.Index, dropped: pd.Index) -> Selection:
    return Selection(kept, True) if len(kept) <= len(dropped) else Selection(dropped, False)


def _keep(df: pd.DataFrame, users: Selection | None, items: Selection | None) -> pd.DataFrame:
    """Rows whose user and item the selections keep (``None`` = no restriction)."""
    mask = np.ones(len(df), dtype=bool)
    for column, sel in (("user_id", users), ("item_id", items)):
        if sel is not None:
            hit = _isin(df[column], sel.keys)
            mask &= hit if sel.keep else ~hit
    return df[mask]


def _sort_partition(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["user_id", "item_id"], kind="mergesort").reset_index(drop=True)


def iterate_filter(
    count_fn: Any, spec: FilterSpec
) -> tuple[pd.Index, pd.Index, list[dict[str, int]]]:
    """Run the fixed-point filter.

    ``count_fn(users, items)`` must return ``(user_counts, item_counts)`` (pandas
    Series of distinct-partner counts) over the pairs the two :class:`Selection`\ s keep
    (``None`` = no restriction). Each pass keeps the users and items its counts reach
    the minimum; the next pass is given, per side, the ids kept or every id dropped so
    far, whichever is fewer: both select the same pairs (an id dropped once never comes
    back, and an id kept so far has never been dropped). Returns the final keep sets
    and per-pass statistics. Pure: the tests drive it with an in-memory ``count_fn``.
    """
    users: Selection | None = None
    items: Selection | None = None
    dropped_users = dropped_items = pd.Index([], dtype=object)
    passes: list[dict[str, int]] = []
    # iter(): the number of passes is not known in advance (max_passes is a bound)
    for i in progress(iter(range(1, spec.max_passes + 1)), "transform: filter", unit="passes"):
        user_counts, item_counts = count_fn(users, items)
        user_ok = user_counts.to_numpy() >= spec.min_user_items
        item_ok = item_counts.to_numpy() >= spec.min_item_users
        new_users = pd.Index(user_counts.index[user_ok]).sort_values()
        new_items = pd.Index(item_counts.index[item_ok]).sort_values()
        passes.append(
            {
                "pass": i,
                "pairs": int(user_counts.sum()),
                "users_in": int(len(user_counts)),
                "items_in": int(len(item_counts)),
                "users_kept": int(len(new_users)),
                "items_kept": int(len(new_items)),
            }
        )
        if len(new_users) == len(user_counts) and len(new_items) == len(item_counts):
            return new_users, new_items, passes
        dropped_users = dropped_users.append(pd.Index(user_counts.index[~user_ok], dtype=object))
        dropped_items = dropped_items.append(pd.Index(item_counts.index[~item_ok], dtype=object))
        users, items = _smaller(new_users, dropped_users), _smaller(new_items, dropped_items)
    raise DataError(
        f"the minimum-activity filter did not reach a fixed point in transform.max_passes={spec.max_passes} "
        f"passes (last pass kept {passes[-1]['users_kept']} users, {passes[-1]['items_kept']} items); "
        "raise transform.max_passes"
    )


def filter_pairs_in_memory(pairs: pd.DataFrame, spec: FilterSpec) -> pd.DataFrame:
    """Reference implementation of the filter on a pandas frame (for tests)."""

    def count(users: Selection | None, items: Selection | None) -> tuple[pd.Series, pd.Series]:
        df = _keep(pairs, users, items)
        return df["user_id"].value_counts(sort=False), df["item_id"].value_counts(sort=False)

    users, items, _ = iterate_filter(count, spec)
    return _sort_partition(_keep(pairs, Selection(users), Selection(items)))


def _is_url(p: Any) -> bool:
    return isinstance(p, str) and "://" in p and not p.startswith("file://")


def run_transform(
    interim_dir: Path | str,
    out_plays: Path,
    out_items: Path,
    params: "TransformParams",
    dask_params: "DaskParams",
    *,
    storage_options: dict[str, Any] | None = None,
    timer: StepTimer | None = None,
) -> dict[str, Any]:
    """Run the whole transform; return the report written to ``reports/transform.json``
    (``timer``: the phases' seconds and peak memory, which the stage adds to that file).

    ``interim_dir`` is a local folder or an fsspec URL (``s3://...``) read with
    ``storage_options``; the outputs are always local paths. ``params`` (the
    ``transform`` section) gives the activity filter and the number of output
    partitions (``params.partitions_for`` of the input's row count, read from
    the Parquet footers); ``dask_params`` (the ``dask`` section) the scheduler,
    its workers and the read block size.
    """
    import dask
    import dask.dataframe as dd

    if _is_url(interim_dir):
        import fsspec

        base = str(interim_dir).rstrip("/")
        plays_src, items_src = f"{base}/plays", f"{base}/items.parquet"
        fs, _ = fsspec.core.url_to_fs(base, **(storage_options or {}))
        exists = fs.exists
        rows_src, rows_fs = fs._strip_protocol(plays_src), fs
    else:
        interim_dir = Path(interim_dir).resolve()
        plays_src, items_src = str(interim_dir / "plays"), str(interim_dir / "items.parquet")
        exists = lambda p: Path(p).exists()  # noqa: E731
        storage_options = None
        rows_src, rows_fs = plays_src, None
    for p in (plays_src, items_src):
        if not exists(p):
            raise MissingInputError(f"{p}: missing input of the transform stage (run the clean stage first)")
    with reading(items_src, "re-run the clean stage"):
        items = pd.read_parquet(items_src, storage_options=storage_options)
    spec = FilterSpec(params.min_user_items, params.min_item_users, params.max_passes)
    if params.partitions == "auto":  # a function of the input's row count (the Parquet footers)
        import pyarrow.dataset as pads

        partitions = params.partitions_for(pads.dataset(rows_src, filesystem=rows_fs, format="parquet").count_rows())
    else:
        partitions = int(params.partitions)
    blocksize = dask_params.blocksize
    out_plays = Path(out_plays)
    timer = timer if timer is not None else StepTimer("transform")
    with dask_scheduler(dask_params.effective_scheduler, dask_params.num_workers), _bounded_memory(), \
            atomic_path(out_plays, directory=True) as tmp_out:
        spill = tmp_out.parent / f"{tmp_out.name}-pairs"
        try:
            raw = dd.read_parquet(
                plays_src, columns=["user_id", "item_id", "playcount", "timestamp"],
                blocksize=blocksize, storage_options=storage_options,
            )
            raw = raw.astype({"user_id": "string", "item_id": "string", "playcount": "int64", "timestamp": _TS_DTYPE})
            n_rows = raw.shape[0]
            shuffled = raw.shuffle("user_id", npartitions=partitions, ignore_index=True)
            pairs = shuffled.map_partitions(_aggregate_partition, meta=_empty_pairs())
            # the first filter pass's counts (over every pair) come with the spill, from the same partitions
            n_rows_in, _, *first_counts = dask.compute(
                n_rows, pairs.to_parquet(str(spill), write_index=False, compute=False, write_metadata_file=False),
                pairs["user_id"].value_counts(sort=False), pairs["item_id"].value_counts(sort=False))
            timer.lap("read, aggregate and spill the pairs")
            spilled = dd.read_parquet(str(spill))
            ids = spilled[["user_id", "item_id"]]
            last: list[Selection | None] = [None, None]  # the selections of the last pass: the fixed point's

            def count(users: Selection | None, its: Selection | None) -> tuple[pd.Series, pd.Series]:
                if users is None and its is None:  # the first pass: counted with the spill
                    return first_counts[0], first_counts[1]
                # selections travel as Arrow arrays; meta given, so Dask does not run _keep to infer it
                last[:] = [users and users.arrow(), its and its.arrow()]
                kept = ids.map_partitions(_keep, *last, meta=ids._meta)
                uc, ic = dask.compute(kept["user_id"].value_counts(sort=False), kept["item_id"].value_counts(sort=False))
                return uc, ic

            users, kept_items, passes = iterate_filter(count, spec)
            timer.lap(f"filter ({len(passes)} passes)")
            final = spilled.map_partitions(_keep, *last, meta=spilled._meta)
            final = final.map_partitions(_sort_partition, meta=spilled._meta)
            # write and count in one pass over the data (computing the counts afterwards re-ran the graph)
            write = final.to_parquet(
                str(tmp_out), write_index=False, write_metadata_file=False, compression="zstd",
                name_function=lambda i: f"part.{i:05d}.parquet", compute=False,
            )
            _, *stats = dask.compute(write, final["playcount"].sum(), final.shape[0])
            timer.lap("write")
        finally:
            shutil.rmtree(spill, ignore_errors=True)
    n_pairs_total = passes[0]["pairs"]
    kept_idx = pd.Index(kept_items)
    meta_ids = pd.Index(items["item_id"].astype("string"))
    has_meta = kept_idx.isin(meta_ids)
    out_items_df = (
        items[items["item_id"].isin(kept_idx)].sort_values("item_id", kind="mergesort").reset_index(drop=True)
    )
    write_parquet(out_items_df, out_items)
    return {
        "rows_in": int(n_rows_in),
        "pairs_in": int(n_pairs_total),
        "pairs_kept": int(stats[1]),
        "plays_kept": int(stats[0]),
        "users_in": passes[0]["users_in"],
        "items_in": passes[0]["items_in"],
        "users_kept": int(len(users)),
        "items_kept": int(len(kept_idx)),
        "items_with_metadata": int(has_meta.sum()),
        "items_without_metadata": int((~has_meta).sum()),
        "filter": {
            "min_user_items": spec.min_user_items,
            "min_item_users": spec.min_item_users,
            "passes": passes,
        },
        "partitions": partitions,
    }
