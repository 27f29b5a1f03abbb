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
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from musicrec.errors import DataError, MissingInputError, reading

if TYPE_CHECKING:
    from pathlib import Path

    from musicrec.config import InteractionsParams, SplitParams
    from musicrec.progress import StepTimer


# the matrices folder's play-count files, <name>.npz (train + query: every user's row at query time)
MATRICES = ("train", "validation", "test", "query")


@dataclass(frozen=True)
class IdMaps:
    """index -> user / item id (str), sorted: NumPy arrays, or Arrow strings as :func:`build_interactions`
    makes them (48 MB for a million 40-character ids where NumPy holds a Python string each)."""

    user_ids: "np.ndarray | pa.Array"
    item_ids: "np.ndarray | pa.Array"

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.user_ids), len(self.item_ids)

    def numpy(self) -> "IdMaps":
        """The same maps as NumPy string arrays (what :func:`load_interactions` gives)."""
        return IdMaps(_numpy_ids(self.user_ids), _numpy_ids(self.item_ids))

    def to_frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        users = pd.DataFrame({"index": np.arange(len(self.user_ids), dtype=np.int64),
                              "user_id": _string_array(self.user_ids)})
        items = pd.DataFrame({"index": np.arange(len(self.item_ids), dtype=np.int64),
                              "item_id": _string_array(self.item_ids)})
        return users, items


def _arrow_ids(ids: Any) -> bool:
    return isinstance(ids, (pa.Array, pa.ChunkedArray))


def _numpy_ids(ids: "np.ndarray | pa.Array") -> np.ndarray:
    return ids.to_numpy(zero_copy_only=False).astype(str) if _arrow_ids(ids) else ids


def _string_array(ids: "np.ndarray | pa.Array") -> "pd.api.extensions.ExtensionArray":
    """pandas ``string`` ids (the same Parquet bytes either way; Arrow ids are not copied to Python strings)."""
    if _arrow_ids(ids):
        return pd.arrays.ArrowStringArray(pa.chunked_array([ids.cast(pa.large_string())])
                                          if isinstance(ids, pa.Array) else ids.cast(pa.large_string()))
    return pd.array(ids, dtype="string")


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
        return Interactions(maps=self.maps.numpy(), train=p.train, validation=p.validation, test=p.test, query=p.query)


def _as_chunks(values: "pd.Series | pa.ChunkedArray | pa.Array") -> list[pa.Array]:
    if isinstance(values, pd.Series):
        values = pa.chunked_array([pa.array(values.astype("string").array)]) if len(values) else \
            pa.chunked_array([], type=pa.large_string())
    if isinstance(values, pa.Array):
        values = pa.chunked_array([values])
    return list(values.chunks)


def _dictionary_chunks(values: "pd.Series | pa.ChunkedArray | pa.Array", what: str) -> list[pa.DictionaryArray]:
    chunks = [c if pa.types.is_dictionary(c.type) else pc.dictionary_encode(c) for c in _as_chunks(values)]
    if any(c.null_count for c in chunks):
        raise ValueError(f"{what} ids contain nulls (the clean stage should have quarantined them)")
    return chunks


class _Encoder:
    """Codes into one sorted vocabulary for the id columns of several parts.

    :meth:`add` keeps each part's ids as int32 indices into its dictionary (Parquet's
    row groups come back with a dictionary each: they are unified). The parts'
    dictionaries are sorted and de-duplicated a group at a time (about
    :data:`_VOCAB_GROUP` entries; code point = UTF-8 byte order, the same order as
    ``np.sort`` on the strings), each entry kept as its int32 position in its group's
    distinct ids, so that the strings of a dictionary are dropped as soon as its group
    is sorted (at 48M pairs the parts' item dictionaries held 24M strings). :meth:`vocabulary`
    merges the groups' distinct ids, and :meth:`codes` turns one part's indices into
    int32 codes and forgets them: a row's string is never materialised.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self.indices: list[list[np.ndarray] | None] = []  # per part: its dictionary indices, per chunk
        self.local: list[np.ndarray] = []     # per part: each dictionary entry's position in its group's ids
        self.group_of: list[int] = []         # per part: its group
        self.group_ids: list[pa.Array] = []   # per group: its distinct ids, sorted
        self._pending: list[pa.Array] = []    # dictionaries of the group being filled
        self._to_group: list[np.ndarray] | None = None  # per group: its ids' codes in the vocabulary

    def add(self, values: "pd.Series | pa.ChunkedArray | pa.Array") -> None:
        chunks = _dictionary_chunks(values, self.what)
        if len(chunks) > 1:
            chunks = pa.chunked_array(chunks).unify_dictionaries().chunks
        dictionary = chunks[0].dictionary.cast(pa.large_string()) if chunks else pa.array([], pa.large_string())
        self.indices.append([c.indices.to_numpy(zero_copy_only=False) for c in chunks])
        if self._pending and sum(map(len, self._pending)) + len(dictionary) > _VOCAB_GROUP:
            self._flush()
        self._pending.append(dictionary)

    def _flush(self) -> None:
        """Sort the pending dictionaries' ids into the next group; keep each entry's position in it."""
        if not self._pending:
            return
        every = pa.concat_arrays(self._pending)
        ids, order, first = _sorted_unique(every)
        pos = np.empty(len(order), dtype=np.int32)
        pos[order] = np.cumsum(first, dtype=np.int64) - 1
        at = 0
        for d in self._pending:
            self.local.append(pos[at:at + len(d)])
            self.group_of.append(len(self.group_ids))
            at += len(d)
        self.group_ids.append(ids)
        self._pending = []

    def vocabulary(self) -> pa.Array:
        """The sorted vocabulary (an Arrow string array; ``.to_numpy(zero_copy_only=False)`` for NumPy)."""
        self._flush()
        if len(self.group_ids) <= 1:  # one group: its ids are the vocabulary
            vocab = self.group_ids[0] if self.group_ids else pa.array([], pa.large_string())
            self._to_group = [np.arange(len(vocab), dtype=np.int32)]
        else:  # merged group by group, then each group's ids looked up
            vocab = self.group_ids[0]
            for ids in self.group_ids[1:]:
                vocab = _sorted_unique(pa.concat_arrays([vocab, ids]))[0]
            self._to_group = [np.asarray(pc.index_in(ids, value_set=vocab).to_numpy(), dtype=np.int32)
                              for ids in self.group_ids]
        if len(vocab) >= 2**31:
            raise DataError(f"{len(vocab):,} distinct {self.what} ids do not fit in int32 indices")
        self.group_ids = []
        return vocab

    def codes(self, i: int) -> np.ndarray:
        assert self._to_group is not None, "vocabulary() first"
        indices, self.indices[i] = self.indices[i] or [], None
        pos = self._to_group[self.group_of[i]][self.local[i]]
        out = np.empty(sum(len(x) for x in indices), dtype=np.int32)
        at = 0
        for x in indices:
            out[at:at + len(x)] = pos[x]
            at += len(x)
        return out


# dictionary entries sorted at once when building a vocabulary (about 60 bytes each while sorting)
_VOCAB_GROUP = 1 << 22


def _sorted_unique(values: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """The distinct strings of ``values`` in code point order (sorted, not hashed: Arrow's hash tables of a
    million 40-character ids took 250 MB), the sort order, and which sorted entries start a run of equal ones."""
    order = pc.array_sort_indices(values)
    ordered = values.take(order)
    n = len(ordered)
    first = np.ones(n, dtype=bool)
    if n > 1:
        first[1:] = pc.not_equal(ordered.slice(1), ordered.slice(0, n - 1)).to_numpy(zero_copy_only=False)
    unique = ordered if first.all() else ordered.filter(pa.array(first))
    return unique, order.to_numpy(), first


def encode_sorted(values: "pd.Series | pa.ChunkedArray | pa.Array", what: str = "id") -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``values`` into their sorted vocabulary, and the vocabulary.

    Works on dictionary-encoded Arrow chunks (as Parquet is read with
    ``read_dictionary``) so that the strings of every row are never materialised:
    only each chunk's dictionary is sorted and looked up. The vocabulary is
    ordered by code point (UTF-8 byte order), the same order as ``np.sort`` on
    the strings. Returns ``(codes int32, vocabulary str array)``.
    """
    enc = _Encoder(what)
    enc.add(values)
    vocab = enc.vocabulary()
    return enc.codes(0), vocab.to_numpy(zero_copy_only=False).astype(str)


def build_id_maps(user_ids: "pd.Series | pa.ChunkedArray", item_ids: "pd.Series | pa.ChunkedArray") -> IdMaps:
    return IdMaps(encode_sorted(user_ids, "user")[1], encode_sorted(item_ids, "item")[1])


def _codes(values: pd.Series, vocabulary: np.ndarray, what: str) -> np.ndarray:
    pos = pd.Index(vocabulary, dtype=object).get_indexer(values.astype("string").to_numpy(dtype=object))
    bad = pos < 0
    if bad.any():
        raise ValueError(f"{int(bad.sum())} {what} ids are missing from the id map "
                         f"(first: {values.to_numpy(dtype=object)[bad][0]!r})")
    return pos.astype(np.int64)


def _value_dtype(values: np.ndarray) -> type:
    """float32 (the matrices' values, what the models read) when it holds ``values`` exactly, else float64."""
    return np.float32 if np.array_equal(values.astype(np.float32).astype(values.dtype, copy=False), values) \
        else np.float64


def _coo_to_csr(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Users x items CSR from (row, column, value) triples, repeated pairs summed; float32 where exact."""
    m = sp.csr_matrix((np.asarray(vals, dtype=np.float64), (rows, cols)), shape=shape)
    m.sum_duplicates()
    m.sort_indices()
    return m.astype(_value_dtype(m.data), copy=False)


def to_csr(plays: pd.DataFrame, maps: IdMaps, value: str = "playcount") -> sp.csr_matrix:
    """Users x items CSR of ``value`` (duplicates summed)."""
    rows = _codes(plays["user_id"], maps.user_ids, "user")
    cols = _codes(plays["item_id"], maps.item_ids, "item")
    return _coo_to_csr(rows, cols, plays[value].to_numpy(dtype=np.float64), maps.shape)


# entries per block of the split's per-entry work (bounded temporaries whatever the data size: ~10 MB)
_BLOCK = 1 << 18


def _row_blocks(indptr: np.ndarray, block: int | None = None) -> "Iterator[tuple[int, int, int, int]]":
    """Consecutive row ranges ``[lo, hi)`` of about ``block`` (:data:`_BLOCK`) stored entries each (whole rows),
    each as ``(lo, hi, start, end)``: the rows and their stored entries ``[start, end)``."""
    block = block or _BLOCK
    n_rows, r = len(indptr) - 1, 0
    while r < n_rows:
        nxt = int(np.searchsorted(indptr, indptr[r] + block, side="right")) - 1
        nxt = min(max(nxt, r + 1), n_rows)
        yield r, nxt, int(indptr[r]), int(indptr[nxt])
        r = nxt


def _local_rows(indptr: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The row (``lo``-based) of each stored entry of rows ``lo..hi``."""
    return np.repeat(np.arange(hi - lo, dtype=np.int32), np.diff(indptr[lo:hi + 1]))


def _row_ranks(indptr: np.ndarray, keys: "np.ndarray | Callable[[int, int], np.ndarray]",
               block: int | None = None) -> np.ndarray:
    """Rank (0 = first) of each stored entry within its row, ordering by ``keys`` (int32).

    ``keys``: one per stored entry, or ``keys(start, end)`` giving the keys of entries
    ``start..end``, called block after block in order (a seeded stream drawn in blocks
    gives the same numbers as one draw). Ties keep the stored order.
    """
    nnz = int(indptr[-1])
    ranks = np.empty(nnz, dtype=np.int32)
    for lo, hi, s, e in _row_blocks(indptr, block):
        k = keys(s, e) if callable(keys) else keys[s:e]
        local = _local_rows(indptr, lo, hi)
        order = np.lexsort((k, local))
        ranks[s + order] = np.arange(e - s, dtype=np.int64) - (indptr[lo:hi] - s)[local[order]]
    return ranks


# what each stored entry of the counts becomes (:func:`_parts`)
TRAIN, VALIDATION, TEST, QUERY, DROPPED = range(5)


def _parts(counts: sp.csr_matrix, part: np.ndarray) -> Split:
    """The four matrices of a split from each entry's part code; the values stay the counts' dtype.

    Each row's entries per part are counted block by block, so that a part costs only a
    boolean mask over the entries besides its own arrays.
    """
    indptr = counts.indptr
    per_row = np.zeros((counts.shape[0], DROPPED + 1), dtype=np.int32)
    for lo, hi, s, e in _row_blocks(indptr):
        local = _local_rows(indptr, lo, hi).astype(np.int64)
        per_row[lo:hi] = np.bincount(local * (DROPPED + 1) + part[s:e], minlength=(hi - lo) * (DROPPED + 1)) \
            .reshape(hi - lo, DROPPED + 1)
    out = []
    for code in (TRAIN, VALIDATION, TEST, QUERY):
        mask = part == code
        part_indptr = np.zeros(len(indptr), dtype=indptr.dtype)
        np.cumsum(per_row[:, code], out=part_indptr[1:])
        m = sp.csr_matrix((counts.data[mask], counts.indices[mask], part_indptr), shape=counts.shape)
        m.has_sorted_indices = True
        out.append(m)
    return Split(*out)


def _canonical(counts: sp.csr_matrix) -> sp.csr_matrix:
    counts = sp.csr_matrix(counts)
    counts.sort_indices()
    return counts


def split(counts: sp.csr_matrix, params: "SplitParams", rng: np.random.Generator,
          last_ts: sp.csr_matrix | None = None) -> Split:
    """Split a users x items count matrix into train / validation / test / query (``interactions.split``).

    The per-entry work runs in blocks of whole rows (:data:`_BLOCK` entries): besides the
    counts, it holds an int32 rank and a one-byte part code per entry, then the parts.
    """
    method = params.method
    counts = _canonical(counts)
    indptr = counts.indptr

    if method == "temporal":
        if last_ts is None:
            raise DataError("interactions.split.method=temporal needs timestamps, and this source has none; "
                             "use method: random")
        ts = _canonical(last_ts)
        if ts.shape != counts.shape or not np.array_equal(ts.indices, counts.indices):
            raise ValueError("last_ts must have the same sparsity pattern as counts")
        if not np.isfinite(ts.data).all() or (ts.data <= 0).any():
            raise DataError("interactions.split.method=temporal needs a timestamp on every interaction")
        # oldest first; ties broken by a seeded random key so the order is total
        ranks = _row_ranks(indptr, lambda s, e: ts.data[s:e].astype(np.float64) + rng.random(e - s) * 1e-3)
    elif method == "strong_generalization":
        for _, _, s, e in _row_blocks(indptr):  # the stream as the other methods draw it, so that seeds keep their split
            rng.random(e - s)
        return strong_generalization(counts, params, rng)
    else:
        ranks = _row_ranks(indptr, lambda s, e: rng.random(e - s))
    part = _assign_parts(indptr, ranks, params, rng)
    del ranks
    return _parts(counts, part)


def _assign_parts(indptr: np.ndarray, ranks: np.ndarray, params: "SplitParams", rng: np.random.Generator) -> np.ndarray:
    """Each entry's part code under ``random`` / ``temporal`` / ``cold_users`` from its rank in its row
    (its per-user arrays are gone once it returns, before the parts are built)."""
    test_fraction, validation_fraction = params.test_fraction, params.validation_fraction
    cold_user_fraction, cold_known_items = params.cold_user_fraction, params.cold_known_items
    lengths = np.diff(indptr).astype(np.int64)
    eligible = lengths >= params.min_user_items
    n_users, nnz = len(lengths), len(ranks)
    n_test = np.where(eligible, np.maximum(1, np.floor(lengths * test_fraction + 0.5)), 0).astype(np.int64)
    n_val = np.where(eligible & (validation_fraction > 0),
                     np.maximum(1, np.floor(lengths * validation_fraction + 0.5)), 0).astype(np.int64)
    n_val = np.minimum(n_val, np.maximum(lengths - n_test - 1, 0))  # train keeps at least one item
    cold = np.zeros(n_users, dtype=bool)
    if params.method == "cold_users":
        cand = np.flatnonzero(eligible & (lengths > cold_known_items + 1))
        n_cold = int(round(len(cand) * cold_user_fraction))
        cold[rng.choice(cand, size=n_cold, replace=False)] = True
        # cold users: ranks < known -> query; the rest split between validation and test
        rest = lengths - cold_known_items
        n_val_c = np.where(validation_fraction > 0,
                           np.floor(rest * validation_fraction / (validation_fraction + test_fraction) + 0.5), 0)
        n_val = np.where(cold, n_val_c, n_val).astype(np.int64)
        n_test = np.where(cold, rest - n_val_c, n_test).astype(np.int64)
    part = np.empty(nnz, dtype=np.int8)
    for lo, hi, s, e in _row_blocks(indptr):
        local = _local_rows(indptr, lo, hi)
        rk = ranks[s:e]
        # the highest ranks (latest for temporal, random otherwise) go to test, then validation
        rev = (lengths[lo:hi] - 1)[local] - rk
        nt, nv = n_test[lo:hi][local], n_val[lo:hi][local]
        test = rev < nt
        val = (rev >= nt) & (rev < nt + nv)
        code = np.where(test, TEST, np.where(val, VALIDATION, TRAIN)).astype(np.int8)
        is_cold = cold[lo:hi][local]
        if is_cold.any():
            # cold users reveal their lowest ranks (query) and split the rest, the highest to test
            query = rk < cold_known_items
            c_test = ~query & (rk >= (lengths[lo:hi])[local] - nt)
            c_code = np.where(query, QUERY, np.where(c_test, TEST, VALIDATION)).astype(np.int8)
            code = np.where(is_cold, c_code, code)
        part[s:e] = code
    return part


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
    counts = _canonical(counts)
    n_users = counts.shape[0]
    indptr, indices = counts.indptr, counts.indices
    lengths = np.diff(indptr)
    cand = np.flatnonzero(lengths >= params.min_user_items)
    n_h = heldout_user_count(len(cand), params)
    perm = rng.permutation(cand)
    role = np.zeros(n_users, dtype=np.int8)  # 0 train, 1 validation, 2 test
    role[perm[len(perm) - 2 * n_h:len(perm) - n_h]] = 1
    role[perm[len(perm) - n_h:]] = 2
    held_row = role > 0
    seen = np.zeros(counts.shape[1], dtype=bool)
    for lo, hi, s, e in _row_blocks(indptr):
        seen[indices[s:e][~held_row[lo:hi][_local_rows(indptr, lo, hi)]]] = True
    # held-out users' pairs on items some training user has: the ones a held-out user is scored or queried on
    part = np.empty(len(indices), dtype=np.int8)
    kept_len = np.zeros(n_users, dtype=np.int64)
    for lo, hi, s, e in _row_blocks(indptr):
        local = _local_rows(indptr, lo, hi)
        held = held_row[lo:hi][local]
        kept = held & seen[indices[s:e]]
        kept_len[lo:hi] = np.bincount(local[kept], minlength=hi - lo)
        part[s:e] = np.where(held, np.where(kept, QUERY, DROPPED), TRAIN)
    # per held-out user: score a random floor((1 - q) n) of the items kept, reveal the rest
    n_scored = np.floor(kept_len * (1.0 - params.query_fraction) + 1e-9).astype(np.int64)
    ranks = _row_ranks(indptr, lambda s, e: np.where(part[s:e] == QUERY, rng.random(e - s), np.inf))
    for lo, hi, s, e in _row_blocks(indptr):
        local = _local_rows(indptr, lo, hi)
        scored = (part[s:e] == QUERY) & (ranks[s:e] < n_scored[lo:hi][local])
        part[s:e] = np.where(scored, np.where(role[lo:hi][local] == 1, VALIDATION, TEST), part[s:e])
    del ranks
    return _parts(counts, part)


ID_COLUMNS = ("user_id", "item_id")


@dataclass(frozen=True)
class PlaysParts:
    """The transform output, part by part: what :func:`build_interactions` reads, one column of one
    part at a time (user / item ids as Arrow dictionaries + int32 indices, never a string per row)."""

    count: int                                  # parts
    rows: int                                   # rows over all parts
    column_names: tuple[str, ...]
    read: "Callable[[int, str], pa.ChunkedArray]"  # (part, column) -> that column

    @classmethod
    def from_dir(cls, plays_dir: "Path | str") -> "PlaysParts":
        """The transform's Parquet folder (``part.NNNNN.parquet``, in name order)."""
        import pyarrow.parquet as pq

        with reading(plays_dir, "re-run the transform stage"):
            paths = _plays_parts(plays_dir)
            files = [pq.ParquetFile(p) for p in paths]
            names = tuple(files[0].schema_arrow.names)
            rows = sum(f.metadata.num_rows for f in files)

        def read(i: int, column: str) -> pa.ChunkedArray:
            with reading(paths[i], "re-run the transform stage"):
                return pq.read_table(paths[i], columns=[column],
                                     read_dictionary=[column] if column in ID_COLUMNS else None).column(0)

        return cls(len(paths), rows, names, read)

    @classmethod
    def from_table(cls, plays: "pd.DataFrame | pa.Table") -> "PlaysParts":
        """One part held in memory (a frame or an Arrow table)."""
        table = plays if isinstance(plays, pa.Table) else pa.Table.from_pandas(plays, preserve_index=False)
        return cls(1, len(table), tuple(table.column_names), lambda i, column: table[column])


def _plays_parts(plays_dir: "Path | str") -> list:
    from pathlib import Path

    plays_dir = Path(plays_dir)
    parts = sorted(plays_dir.glob("*.parquet"))
    if not parts:
        raise MissingInputError(f"{plays_dir}: no Parquet parts (run the transform stage first)")
    return parts


def load_processed_plays(plays_dir: "Path | str") -> pd.DataFrame:
    """Read the transform output (all partitions) into one frame (for notebooks; the stage reads :class:`PlaysParts`)."""
    with reading(plays_dir, "re-run the transform stage"):
        return pd.concat([pd.read_parquet(p) for p in _plays_parts(plays_dir)], ignore_index=True)


def _row_lengths_if_canonical(rows: list[np.ndarray], cols: list[np.ndarray], n_rows: int) -> np.ndarray | None:
    """Entries per row when every part is sorted by (row, column) without a repeated pair and each
    row lies in one part (what the transform writes), else None."""
    lengths = np.zeros(n_rows, dtype=np.int64)
    runs = 0
    for r, c in zip(rows, cols):
        if not len(r):
            continue
        dr = np.diff(r)
        if (dr < 0).any() or (np.diff(c)[dr == 0] <= 0).any():
            return None
        runs += 1 + int(np.count_nonzero(dr))
        lengths += np.bincount(r, minlength=n_rows)
    return lengths if runs == int(np.count_nonzero(lengths)) else None


def _destinations(r: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Where a canonical part's entries go in the CSR arrays: each row's run is contiguous in both."""
    if not len(r):  # an empty part (a partition no user hashed to)
        return np.empty(0, dtype=np.int64)
    first = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    run_len = np.diff(np.r_[first, len(r)])
    return np.repeat(indptr[r[first]].astype(np.int64) - first, run_len) + np.arange(len(r))


def _assemble(rows: list[np.ndarray], cols: list[np.ndarray], values: "dict[str, Callable[[int], np.ndarray]]",
              shape: tuple[int, int]) -> dict[str, sp.csr_matrix]:
    """One users x items CSR per ``values`` column (same pattern; float32 where that is exact, else float64).

    Parts as the transform writes them are placed straight into the CSR arrays, part by
    part, each part's codes freed once placed; anything else (a frame, overlapping parts,
    repeated pairs) goes through COO with duplicates summed.
    """
    n_parts = len(rows)
    lengths = _row_lengths_if_canonical(rows, cols, shape[0])
    if lengths is None:
        r, c = np.concatenate(rows), np.concatenate(cols)
        rows.clear(), cols.clear()
        return {k: _coo_to_csr(r, c, np.concatenate([get(i) for i in range(n_parts)]), shape)
                for k, get in values.items()}
    nnz = int(lengths.sum())
    index_dtype = np.int32 if nnz < 2**31 else np.int64
    indptr = np.zeros(shape[0] + 1, dtype=index_dtype)
    np.cumsum(lengths, out=indptr[1:])
    indices = np.empty(nnz, dtype=np.int32)
    data = {k: np.empty(nnz, dtype=np.float32) for k in values}
    for i in range(n_parts):
        dest = _destinations(rows[i], indptr)
        indices[dest] = cols[i]
        rows[i] = cols[i] = None  # type: ignore[call-overload]
        for k, get in values.items():
            v = get(i)
            if data[k].dtype == np.float32 and _value_dtype(v) is np.float64:
                data[k] = data[k].astype(np.float64)
            data[k][dest] = v
    out = {}
    for k, d in data.items():
        m = sp.csr_matrix((d, indices, indptr), shape=shape)
        m.has_sorted_indices = True
        out[k] = m
    return out


def build_interactions(plays: "pd.DataFrame | pa.Table | PlaysParts", params: "InteractionsParams", seed: int,
                       timer: "StepTimer | None" = None) -> BuiltInteractions:
    """Id maps and the split play counts, plus a report.

    ``plays`` is the transform output: :meth:`PlaysParts.from_dir` (what the stage reads),
    or a frame or Arrow table; all give the same result. ``timer`` times the phases.
    """
    from musicrec.progress import StepTimer

    parts = plays if isinstance(plays, PlaysParts) else PlaysParts.from_table(plays)
    if parts.rows == 0:
        raise DataError("no interactions left after the transform filter; lower transform.min_user_items / "
                         "transform.min_item_users")
    split_method, sp_ = params.split.method, params.split
    if split_method == "temporal" and "last_ts" not in parts.column_names:
        raise DataError("interactions.split.method=temporal needs the last_ts column of the transform output")
    timer = timer if timer is not None else StepTimer("interactions", quiet=True)
    # one id column at a time: its indices and dictionaries, then its codes (Arrow strings: 1M ids of 40
    # characters are 48 MB)
    user_ids, rows = _encode_column(parts, "user_id", "user")
    item_ids, cols = _encode_column(parts, "item_id", "item")
    timer.lap("read and encode ids")
    values = {"counts": lambda i: parts.read(i, "playcount").to_numpy()}
    if split_method == "temporal":
        values["last_ts"] = lambda i: _seconds(parts.read(i, "last_ts"))
    matrices = _assemble(rows, cols, values, (len(user_ids), len(item_ids)))
    counts, last_ts = matrices["counts"], matrices.get("last_ts")
    timer.lap("matrix")
    parts_ = split(counts, sp_, np.random.default_rng(seed), last_ts=last_ts)
    del last_ts, matrices
    timer.lap("split")
    n_users, n_items = counts.shape
    report = {
        "users": n_users,
        "items": n_items,
        "interactions": int(counts.nnz),
        "plays": int(counts.data.sum(dtype=np.float64)),
        "density": round(counts.nnz / (n_users * n_items), 8),
        "split": {
            "method": split_method,
            "seed": seed,
            "train": int(parts_.train.nnz),
            "validation": int(parts_.validation.nnz),
            "test": int(parts_.test.nnz),
            "query": int(parts_.query.nnz),
            "test_users": int((np.diff(parts_.test.indptr) > 0).sum()),
            "validation_users": int((np.diff(parts_.validation.indptr) > 0).sum()),
            "cold_users": int((np.diff(parts_.query.indptr) > 0).sum()),
        },
    }
    if split_method == "strong_generalization":
        kept = parts_.train.nnz + parts_.validation.nnz + parts_.test.nnz + parts_.query.nnz
        report["split"]["dropped_unseen_items"] = int(counts.nnz - kept)
    return BuiltInteractions(maps=IdMaps(user_ids, item_ids), parts=parts_, report=report)


def _encode_column(parts: PlaysParts, column: str, what: str) -> tuple[pa.Array, list[np.ndarray]]:
    """The sorted vocabulary of an id column over every part, and each part's int32 codes into it."""
    enc = _Encoder(what)
    for i in range(parts.count):
        enc.add(parts.read(i, column))
    vocab = enc.vocabulary()
    return vocab, [enc.codes(i) for i in range(parts.count)]


def _seconds(ts: pa.ChunkedArray) -> np.ndarray:
    """A ``last_ts`` column as seconds since the epoch (float64); a missing one is a data error."""
    if ts.null_count:
        raise DataError("interactions.split.method=temporal needs timestamps, and this source has none "
                         f"({ts.null_count} of {len(ts)} pairs lack one); use method: random")
    return pc.cast(pc.cast(ts, pa.timestamp("us", tz="UTC")), pa.int64()).to_numpy() / 1e6


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
