"""The ``interactions`` stage: id maps, the CSR user x item matrix, split.

* Id maps: users and items sorted by their string id get contiguous indices
  ``0..n-1`` (deterministic; saved as Parquet with columns ``index``, ``id``).
* Matrix: ``scipy.sparse`` CSR, users x items, values = play counts (float32).
* No weighting here: every model weighs the play counts itself
  (``train.<model>.weighting``, :mod:`musicrec.models.weighting`), at fit and at query time.
* Split (seeded, ``np.random.default_rng(seed)``):

  - ``random``: per user, a random ``test_fraction`` of their items to test and a
    ``validation_fraction`` to validation (each at least 1 item); users with fewer
    than ``min_user_items`` items stay in train only.
  - ``temporal``: the same fractions, but each user's most recent items (by
    ``last_ts``) go to test and the ones just before to validation. Needs
    timestamps.
  - ``cold_users``: a ``cold_user_fraction`` of eligible users is removed from
    train; at query time ``cold_known_items`` of their items are revealed
    (``query``), the rest is split into validation and test.
  - ``strong_generalization``: the MSD benchmark protocol of Liang et al. (2018)
    and Steck (2019): ``heldout_users`` users each for validation and test, who
    reveal ``query_fraction`` (80%) of their items at query time and are scored
    on the rest (:func:`strong_generalization`).

Every (user, item) pair ends in exactly one of train / validation / test /
query (tested: disjoint, nothing lost), except, under ``strong_generalization``,
held-out users' pairs on items no training user has (dropped and counted, as in
the protocol).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from musicrec.errors import DataError, MissingInputError, reading

if TYPE_CHECKING:
    from musicrec.config import InteractionsParams, SplitParams


# the matrices folder's play-count files, <name>.npz (train + query: every user's row at query time)
MATRICES = ("train", "validation", "test", "query")


@dataclass(frozen=True)
class IdMaps:
    user_ids: np.ndarray  # index -> user id (str), sorted
    item_ids: np.ndarray  # index -> item id (str), sorted

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.user_ids), len(self.item_ids)

    def to_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        users = pd.DataFrame({"index": np.arange(len(self.user_ids), dtype=np.int64),
                              "user_id": pd.array(self.user_ids, dtype="string")})
        items = pd.DataFrame({"index": np.arange(len(self.item_ids), dtype=np.int64),
                              "item_id": pd.array(self.item_ids, dtype="string")})
        return users, items


@dataclass(frozen=True)
class Split:
    train: sp.csr_matrix       # play counts of the training pairs
    validation: sp.csr_matrix  # held-out pairs for tuning
    test: sp.csr_matrix        # held-out pairs for the final evaluation
    query: sp.csr_matrix       # cold-start users' revealed pairs (empty unless cold_users)


@dataclass(frozen=True)
class BuiltInteractions:
    """What :func:`build_interactions` returns: what the stage saves, and its report."""

    maps: IdMaps
    parts: Split
    report: dict

    def interactions(self) -> "Interactions":
        """The same matrices as :func:`load_interactions` gives back after :func:`save_interactions`."""
        p = self.parts
        return Interactions(maps=self.maps, train=p.train, validation=p.validation, test=p.test, query=p.query)


def _as_chunks(values: "pd.Series | pa.ChunkedArray | pa.Array") -> list[pa.Array]:
    if isinstance(values, pd.Series):
        values = pa.chunked_array([pa.array(values.astype("string").array)]) if len(values) else \
            pa.chunked_array([], type=pa.large_string())
    if isinstance(values, pa.Array):
        values = pa.chunked_array([values])
    return list(values.chunks)


def encode_sorted(values: "pd.Series | pa.ChunkedArray | pa.Array", what: str = "id") -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``values`` into their sorted vocabulary, and the vocabulary.

    Works on dictionary-encoded Arrow chunks (as Parquet is read with
    ``read_dictionary``) so that the strings of every row are never materialised:
    only each chunk's dictionary is sorted and looked up. The vocabulary is
    ordered by code point (UTF-8 byte order), the same order as ``np.sort`` on
    the strings. Returns ``(codes int32, vocabulary str array)``.
    """
    chunks = [c if pa.types.is_dictionary(c.type) else pc.dictionary_encode(c) for c in _as_chunks(values)]
    if any(c.null_count for c in chunks):
        raise ValueError(f"{what} ids contain nulls (the clean stage should have quarantined them)")
    dicts = [c.dictionary.cast(pa.large_string()) for c in chunks]
    vocab = pc.unique(pa.chunked_array(dicts, type=pa.large_string()))
    vocab = vocab.take(pc.array_sort_indices(vocab))
    if len(vocab) >= 2**31:
        raise DataError(f"{len(vocab):,} distinct {what} ids do not fit in int32 indices")
    # one lookup over all the chunks' dictionaries (one hash table of the vocabulary, not one per chunk)
    pos = np.asarray(pc.index_in(pa.chunked_array(dicts, type=pa.large_string()), value_set=vocab)
                     .to_numpy(), dtype=np.int32)
    starts = np.cumsum([0] + [len(d) for d in dicts])
    codes = [pos[starts[i]:starts[i + 1]][c.indices.to_numpy(zero_copy_only=False)] for i, c in enumerate(chunks)]
    out = np.concatenate(codes) if codes else np.empty(0, dtype=np.int32)
    return out, vocab.to_numpy(zero_copy_only=False).astype(str)


def build_id_maps(user_ids: "pd.Series | pa.ChunkedArray", item_ids: "pd.Series | pa.ChunkedArray") -> IdMaps:
    return IdMaps(encode_sorted(user_ids, "user")[1], encode_sorted(item_ids, "item")[1])


def _codes(values: pd.Series, vocabulary: np.ndarray, what: str) -> np.ndarray:
    pos = pd.Index(vocabulary, dtype=object).get_indexer(values.astype("string").to_numpy(dtype=object))
    bad = pos < 0
    if bad.any():
        raise ValueError(f"{int(bad.sum())} {what} ids are missing from the id map "
                         f"(first: {values.to_numpy(dtype=object)[bad][0]!r})")
    return pos.astype(np.int64)


def _coo_to_csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((vals, (rows, cols)), shape=shape)
    m.sum_duplicates()
    m.sort_indices()
    return m


def to_csr(plays: pd.DataFrame, maps: IdMaps, value: str = "playcount") -> sp.csr_matrix:
    """Users x items CSR of ``value`` (duplicates summed)."""
    rows = _codes(plays["user_id"], maps.user_ids, "user")
    cols = _codes(plays["item_id"], maps.item_ids, "item")
    return _coo_to_csr(rows, cols, plays[value].to_numpy(dtype=np.float64), maps.shape)


def _row_ranks(indptr: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Rank (0 = first) of each stored entry within its row, ordering by ``keys``."""
    n = len(keys)
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    order = np.lexsort((keys, rows))
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n) - indptr[rows[order]]
    return ranks


def _select(m: sp.csr_matrix, mask: np.ndarray) -> sp.csr_matrix:
    coo = m.tocoo()
    out = sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=m.shape, dtype=m.dtype)
    out.sort_indices()
    return out


def split(counts: sp.csr_matrix, params: "SplitParams", rng: np.random.Generator,
          last_ts: sp.csr_matrix | None = None) -> Split:
    """Split a users x items count matrix into train / validation / test / query (``interactions.split``)."""
    method, test_fraction, validation_fraction = params.method, params.test_fraction, params.validation_fraction
    min_user_items = params.min_user_items
    cold_user_fraction, cold_known_items = params.cold_user_fraction, params.cold_known_items
    counts = sp.csr_matrix(counts)
    counts.sort_indices()
    n_users = counts.shape[0]
    lengths = np.diff(counts.indptr)
    nnz = counts.nnz
    rows = np.repeat(np.arange(n_users), lengths)
    eligible = lengths >= min_user_items

    if method == "temporal":
        if last_ts is None:
            raise DataError("interactions.split.method=temporal needs timestamps, and this source has none; "
                             "use method: random")
        ts = sp.csr_matrix(last_ts)
        ts.sort_indices()
        if ts.shape != counts.shape or not np.array_equal(ts.indices, counts.indices):
            raise ValueError("last_ts must have the same sparsity pattern as counts")
        if not np.isfinite(ts.data).all() or (ts.data <= 0).any():
            raise DataError("interactions.split.method=temporal needs a timestamp on every interaction")
        # oldest first; ties broken by a seeded random key so the order is total
        keys = ts.data.astype(np.float64) + rng.random(nnz) * 1e-3
    else:
        keys = rng.random(nnz)
    ranks = _row_ranks(counts.indptr, keys)
    n_test = np.where(eligible, np.maximum(1, np.floor(lengths * test_fraction + 0.5)), 0).astype(np.int64)
    n_val = np.where(eligible & (validation_fraction > 0),
                     np.maximum(1, np.floor(lengths * validation_fraction + 0.5)), 0).astype(np.int64)
    n_val = np.minimum(n_val, np.maximum(lengths - n_test - 1, 0))  # train keeps at least one item
    query_mask = np.zeros(nnz, dtype=bool)

    if method == "strong_generalization":
        return strong_generalization(counts, params, rng)
    if method == "cold_users":
        cand = np.flatnonzero(eligible & (lengths > cold_known_items + 1))
        n_cold = int(round(len(cand) * cold_user_fraction))
        cold = np.zeros(n_users, dtype=bool)
        cold[rng.choice(cand, size=n_cold, replace=False)] = True
        is_cold = cold[rows]
        # cold users: ranks < known -> query; the rest split between validation and test
        query_mask = is_cold & (ranks < cold_known_items)
        rest = lengths - cold_known_items
        n_val_c = np.where(validation_fraction > 0,
                           np.floor(rest * validation_fraction / (validation_fraction + test_fraction) + 0.5), 0)
        n_val = np.where(cold, n_val_c, n_val).astype(np.int64)
        n_test = np.where(cold, rest - n_val_c, n_test).astype(np.int64)
        length_rows = lengths[rows]
        test_mask = is_cold & ~query_mask & (ranks >= length_rows - n_test[rows])
        val_mask = is_cold & ~query_mask & ~test_mask
        hot_ranks_rev = length_rows - 1 - ranks
        test_mask |= ~is_cold & (hot_ranks_rev < n_test[rows])
        val_mask |= ~is_cold & (hot_ranks_rev >= n_test[rows]) & (hot_ranks_rev < n_test[rows] + n_val[rows])
    else:
        # the highest ranks (latest for temporal, random otherwise) go to test, then validation
        rev = lengths[rows] - 1 - ranks
        test_mask = rev < n_test[rows]
        val_mask = (rev >= n_test[rows]) & (rev < n_test[rows] + n_val[rows])
    train_mask = ~(test_mask | val_mask | query_mask)
    return Split(
        train=_select(counts, train_mask),
        validation=_select(counts, val_mask),
        test=_select(counts, test_mask),
        query=_select(counts, query_mask),
    )


def heldout_user_count(n_eligible: int, params: "SplitParams") -> int:
    """Users held out for validation, and as many for test, under ``strong_generalization``."""
    n = params.heldout_users if params.heldout_users is not None else int(round(n_eligible * params.heldout_fraction))
    if n < 1 or 2 * n >= n_eligible:
        raise DataError(
            f"interactions.split: strong_generalization holds out {n:,} users for validation and {n:,} for test, "
            f"but {n_eligible:,} users have >= min_user_items={params.min_user_items} items and training needs the "
            f"rest; set interactions.split.heldout_users below {max(n_eligible - 1, 0) // 2:,} (or heldout_fraction)")
    return n


def strong_generalization(counts: sp.csr_matrix, params: "SplitParams", rng: np.random.Generator) -> Split:
    """Liang et al. (2018)'s strong-generalisation split of a users x items count matrix.

    A seeded permutation of the users with >= ``min_user_items`` items picks
    ``heldout_users`` validation users and as many test users (Liang et al.: the last
    ``2 n`` of ``np.random.permutation(users)``); every other user is a training user
    with all of their items. Each held-out user reveals ``query_fraction`` of their
    items at query time (``query``) and keeps ``floor((1 - query_fraction) * n)``
    random items to score (their ``validation`` or ``test`` rows; Liang et al.'s
    ``int(0.2 * n)``). As in Liang et al., a held-out user's pairs on items no training
    user has are dropped (the model cannot know them): the split report counts them
    (``dropped_unseen_items``); every other pair lands in exactly one part.
    """
    n_users = counts.shape[0]
    lengths = np.diff(counts.indptr)
    rows = np.repeat(np.arange(n_users), lengths)
    cand = np.flatnonzero(lengths >= params.min_user_items)
    n_h = heldout_user_count(len(cand), params)
    perm = rng.permutation(cand)
    role = np.zeros(n_users, dtype=np.int8)  # 0 train, 1 validation, 2 test
    role[perm[len(perm) - 2 * n_h:len(perm) - n_h]] = 1
    role[perm[len(perm) - n_h:]] = 2
    held = role[rows] > 0
    train_mask = ~held
    seen = np.zeros(counts.shape[1], dtype=bool)
    seen[counts.indices[train_mask]] = True
    keep = train_mask | seen[counts.indices]
    # per held-out user: score a random floor((1 - q) n) of the items kept, reveal the rest
    kept_len = np.bincount(rows[keep & held], minlength=n_users)
    n_scored = np.floor(kept_len * (1.0 - params.query_fraction) + 1e-9).astype(np.int64)
    keys = np.where(keep & held, rng.random(len(rows)), np.inf)
    ranks = _row_ranks(counts.indptr, keys)
    scored = held & keep & (ranks < n_scored[rows])
    query_mask = held & keep & ~scored
    return Split(
        train=_select(counts, train_mask),
        validation=_select(counts, scored & (role[rows] == 1)),
        test=_select(counts, scored & (role[rows] == 2)),
        query=_select(counts, query_mask),
    )


def _plays_parts(plays_dir: "Path | str") -> list:
    from pathlib import Path

    plays_dir = Path(plays_dir)
    parts = sorted(plays_dir.glob("*.parquet"))
    if not parts:
        raise MissingInputError(f"{plays_dir}: no Parquet parts (run the transform stage first)")
    return parts


def load_processed_plays(plays_dir: "Path | str") -> pd.DataFrame:
    """Read the transform output (all partitions) into one frame."""
    with reading(plays_dir, "re-run the transform stage"):
        return pd.concat([pd.read_parquet(p) for p in _plays_parts(plays_dir)], ignore_index=True)


def read_plays_table(plays_dir: "Path | str", columns: "list[str] | None" = None) -> pa.Table:
    """The transform output as one Arrow table, id columns dictionary-encoded.

    The interactions stage reads this instead of :func:`load_processed_plays`:
    only the columns it needs, and user / item ids as the Parquet dictionaries
    plus int32 indices, never one Python or NumPy string per row (at 10M plays
    that string column alone was 1.6 GB as fixed-width NumPy strings).
    """
    import pyarrow.parquet as pq

    columns = columns or ["user_id", "item_id", "playcount"]
    with reading(plays_dir, "re-run the transform stage"):
        tables = [pq.read_table(p, columns=columns, read_dictionary=[c for c in ("user_id", "item_id") if c in columns])
                  for p in _plays_parts(plays_dir)]
    return pa.concat_tables(tables)


def build_interactions(plays: "pd.DataFrame | pa.Table", params: "InteractionsParams", seed: int) -> BuiltInteractions:
    """Id maps and the split play counts, plus a report.

    ``plays`` is the transform output, as a frame or as an Arrow table
    (:func:`read_plays_table`); both give the same result.
    """
    if len(plays) == 0:
        raise DataError("no interactions left after the transform filter; lower transform.min_user_items / "
                         "transform.min_item_users")
    table = plays if isinstance(plays, pa.Table) else pa.Table.from_pandas(plays, preserve_index=False)
    rows, user_ids = encode_sorted(table["user_id"], "user")
    cols, item_ids = encode_sorted(table["item_id"], "item")
    maps = IdMaps(user_ids, item_ids)
    counts = _coo_to_csr(rows, cols, table["playcount"].to_numpy().astype(np.float64, copy=False), maps.shape)
    last_ts = None
    split_method, sp_ = params.split.method, params.split
    if split_method == "temporal":
        if "last_ts" not in table.column_names:
            raise DataError("interactions.split.method=temporal needs the last_ts column of the transform output")
        ts = table["last_ts"]
        if ts.null_count:
            raise DataError("interactions.split.method=temporal needs timestamps, and this source has none "
                             f"({ts.null_count} of {len(ts)} pairs lack one); use method: random")
        micros = pc.cast(pc.cast(ts, pa.timestamp("us", tz="UTC")), pa.int64()).to_numpy()
        last_ts = _coo_to_csr(rows, cols, micros / 1e6, maps.shape)
    del table
    parts = split(counts, sp_, np.random.default_rng(seed), last_ts=last_ts)
    n_users, n_items = counts.shape
    report = {
        "users": n_users,
        "items": n_items,
        "interactions": int(counts.nnz),
        "plays": int(counts.sum()),
        "density": round(counts.nnz / (n_users * n_items), 8),
        "split": {
            "method": split_method,
            "seed": seed,
            "train": int(parts.train.nnz),
            "validation": int(parts.validation.nnz),
            "test": int(parts.test.nnz),
            "query": int(parts.query.nnz),
            "test_users": int((np.diff(parts.test.indptr) > 0).sum()),
            "validation_users": int((np.diff(parts.validation.indptr) > 0).sum()),
            "cold_users": int((np.diff(parts.query.indptr) > 0).sum()),
        },
    }
    if split_method == "strong_generalization":
        kept = parts.train.nnz + parts.validation.nnz + parts.test.nnz + parts.query.nnz
        report["split"]["dropped_unseen_items"] = int(counts.nnz - kept)
    return BuiltInteractions(maps=maps, parts=parts, report=report)


def save_interactions(out_dir: "Path | str", built: BuiltInteractions) -> None:
    """Write the matrices folder atomically."""
    from pathlib import Path

    from musicrec.io import atomic_path, save_csr

    with atomic_path(Path(out_dir), directory=True) as tmp:
        users, items = built.maps.to_frames()
        users.to_parquet(tmp / "users.parquet", index=False)
        items.to_parquet(tmp / "items.parquet", index=False)
        for name in MATRICES:
            save_csr(tmp / f"{name}.npz", getattr(built.parts, name))


@dataclass(frozen=True)
class Interactions:
    """The interactions stage's outputs, loaded back."""

    maps: IdMaps
    train: sp.csr_matrix
    validation: sp.csr_matrix
    test: sp.csr_matrix
    query: sp.csr_matrix

    def query_rows(self, with_validation: bool = False) -> sp.csr_matrix:
        """What each user shows at query time, as play counts: train rows, or revealed rows for cold users.

        ``with_validation``: plus the validation rows (the test query of a model refitted on train +
        validation, ``evaluate.refit_on_validation``). The models weigh these rows themselves
        (``train.<model>.weighting``), as they weighed ``train``.
        """
        rows = self.train + self.query
        if with_validation:
            rows = rows + self.validation
        m = sp.csr_matrix(rows, dtype=np.float32)
        m.sort_indices()
        return m

    def train_with_validation(self) -> sp.csr_matrix:
        """The train and validation play counts together: what a refitted model is fitted on."""
        m = sp.csr_matrix(self.train + self.validation, dtype=np.float32)
        m.sort_indices()
        return m


def load_inputs(matrices: "Path | str", items_path: "Path | str") -> tuple[Interactions, pd.DataFrame]:
    """The train and catalog stages' inputs: the interactions folder and the transform's items table."""
    inter = load_interactions(matrices)
    with reading(items_path, "run the transform stage first"):
        items = pd.read_parquet(items_path)
    return inter, items


def load_interactions(out_dir: "Path | str") -> Interactions:
    from pathlib import Path

    from musicrec.io import load_csr

    d = Path(out_dir)
    with reading(d, "run the interactions stage first"):
        users = pd.read_parquet(d / "users.parquet")
        items = pd.read_parquet(d / "items.parquet")
        m = {n: load_csr(d / f"{n}.npz") for n in MATRICES}
    maps = IdMaps(users["user_id"].to_numpy(dtype=object).astype(str), items["item_id"].to_numpy(dtype=object).astype(str))
    return Interactions(maps=maps, **m)
