import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from musicrec.config import InteractionsParams, SplitParams
from musicrec.pipeline.interactions import (
    build_id_maps,
    build_interactions,
    load_interactions,
    save_interactions,
    split,
    to_csr,
)


def _plays(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "playcount"]).astype(
        {"user_id": "string", "item_id": "string", "playcount": "int64"})


def test_id_maps_are_sorted_and_contiguous():
    plays = _plays([("u2", "b", 1), ("u1", "c", 2), ("u2", "a", 3)])
    maps = build_id_maps(plays["user_id"], plays["item_id"])
    assert list(maps.user_ids) == ["u1", "u2"]
    assert list(maps.item_ids) == ["a", "b", "c"]
    m = to_csr(plays, maps)
    assert m.toarray().tolist() == [[0, 0, 2], [3, 1, 0]]


def test_to_csr_rejects_unknown_ids():
    plays = _plays([("u1", "a", 1)])
    maps = build_id_maps(plays["user_id"], plays["item_id"])
    with pytest.raises(ValueError, match="item ids are missing"):
        to_csr(_plays([("u1", "zz", 1)]), maps)


def _random_counts(seed, n_users=60, n_items=40, density=0.2):
    return sp.random(n_users, n_items, density=density, format="csr", random_state=seed,
                     data_rvs=lambda k: np.random.default_rng(seed).integers(1, 9, k).astype(float))


def _check_partition(counts, parts):
    total = parts.train + parts.validation + parts.test + parts.query
    assert (total != counts).nnz == 0, "every pair lands in exactly one part, unchanged"
    masks = [(m > 0).astype(int) for m in (parts.train, parts.validation, parts.test, parts.query)]
    assert (sum(masks) > 1).nnz == 0, "parts are disjoint"


@pytest.mark.parametrize("method", ["random", "temporal", "cold_users"])
def test_split_is_a_seeded_partition(method):
    counts = _random_counts(0)
    ts = counts.copy()
    ts.data = np.random.default_rng(1).integers(1_000_000, 2_000_000, ts.nnz).astype(float)
    params = SplitParams(method=method, test_fraction=0.2, validation_fraction=0.1, min_user_items=5,
                         cold_user_fraction=0.2, cold_known_items=2)
    last_ts = ts if method == "temporal" else None
    a = split(counts, params, np.random.default_rng(7), last_ts=last_ts)
    b = split(counts, params, np.random.default_rng(7), last_ts=last_ts)
    c = split(counts, params, np.random.default_rng(8), last_ts=last_ts)
    _check_partition(counts, a)
    for name in ("train", "validation", "test", "query"):
        assert (getattr(a, name) != getattr(b, name)).nnz == 0, "same seed, same split"
    if method != "temporal":  # temporal order is fixed by the timestamps
        assert (a.test != c.test).nnz > 0, "another seed, another split"
    lengths = np.diff(counts.indptr)
    short = lengths < 5
    assert np.diff(a.test.indptr)[short].sum() == 0, "users with few items stay in train"
    if method == "cold_users":
        cold = np.diff(a.query.indptr) > 0
        assert cold.any()
        assert np.diff(a.train.indptr)[cold].sum() == 0, "cold users have no training rows"
        assert (np.diff(a.query.indptr)[cold] == 2).all()
    else:
        assert a.query.nnz == 0
        hot = lengths >= 5
        assert (np.diff(a.test.indptr)[hot] >= 1).all() and (np.diff(a.train.indptr)[hot] >= 1).all()


def test_temporal_split_holds_out_the_latest_items():
    counts = sp.csr_matrix(np.ones((1, 10)))
    ts = sp.csr_matrix(np.arange(1, 11, dtype=float)[None, :])
    parts = split(counts, SplitParams(method="temporal", test_fraction=0.2, validation_fraction=0.1,
                                      min_user_items=5), np.random.default_rng(0), last_ts=ts)
    assert parts.test.indices.tolist() == [8, 9]
    assert parts.validation.indices.tolist() == [7]
    assert parts.train.indices.tolist() == list(range(7))


def test_temporal_split_without_timestamps_is_a_clear_error():
    with pytest.raises(ValueError, match="needs timestamps"):
        split(sp.csr_matrix(np.ones((2, 6))), SplitParams(method="temporal"), np.random.default_rng(0))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), test_fraction=st.floats(0.05, 0.5), val=st.floats(0.0, 0.3))
def test_split_partition_property(seed, test_fraction, val):
    counts = _random_counts(seed % 97, density=0.3)
    parts = split(counts, SplitParams(method="random", test_fraction=test_fraction, validation_fraction=val,
                                      min_user_items=4), np.random.default_rng(seed))
    _check_partition(counts, parts)


def test_build_and_roundtrip(tmp_path):
    rng = np.random.default_rng(3)
    rows = [(f"u{u}", f"i{i}", int(rng.integers(1, 20))) for u in range(30) for i in range(25) if rng.random() < 0.4]
    plays = _plays(rows)
    built = build_interactions(plays, InteractionsParams(), seed=42)
    maps, parts, report = built.maps, built.parts, built.report
    assert report["interactions"] == len(rows)
    assert report["split"]["train"] + report["split"]["validation"] + report["split"]["test"] == len(rows)
    save_interactions(tmp_path / "m", built)
    back = load_interactions(tmp_path / "m")
    assert list(back.maps.user_ids) == list(maps.numpy().user_ids)
    assert (back.test != parts.test).nnz == 0
    assert not any(p.name.startswith(".tmp") for p in tmp_path.iterdir())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(alphabet="ab\u00e9\u4e2dZ09_-", min_size=1, max_size=6), min_size=1, max_size=60),
       st.integers(1, 4))
def test_encode_sorted_matches_numpy_sort_across_dictionary_chunks(ids, n_chunks):
    import pyarrow as pa

    from musicrec.pipeline.interactions import encode_sorted

    step = max(1, len(ids) // n_chunks)
    chunks = [pa.array(ids[i:i + step]).dictionary_encode() for i in range(0, len(ids), step)]
    codes, vocab = encode_sorted(pa.chunked_array(chunks), "user")
    expected = np.sort(np.unique(np.array(ids, dtype=str)))
    assert vocab.tolist() == expected.tolist()
    assert codes.dtype == np.int32 and vocab[codes].tolist() == ids


def test_build_interactions_same_from_arrow_table_and_frame(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from musicrec.pipeline.interactions import PlaysParts

    rng = np.random.default_rng(3)
    n = 600
    plays = pd.DataFrame({"user_id": [f"u{int(i):03d}" for i in rng.integers(0, 40, n)],
                          "item_id": [f"t{int(i):03d}" for i in rng.integers(0, 30, n)],
                          "playcount": rng.integers(1, 50, n)}).drop_duplicates(["user_id", "item_id"])
    plays = plays.sort_values(["user_id", "item_id"], ignore_index=True)
    (tmp_path / "plays").mkdir()
    half = len(plays) // 2  # two parts, as the transform writes them, each with its own dictionaries
    for i, part in enumerate((plays.iloc[:half], plays.iloc[half:])):
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), tmp_path / "plays" / f"part.{i}.parquet",
                       row_group_size=97)
    params = InteractionsParams()
    a = build_interactions(PlaysParts.from_dir(tmp_path / "plays"), params, seed=7)
    b = build_interactions(plays.astype({"user_id": object, "item_id": object}), params, seed=7)
    a, b = [(r.maps, r.parts, r.report) for r in (a, b)]
    assert a[0].user_ids.tolist() == b[0].user_ids.tolist() and a[0].item_ids.tolist() == b[0].item_ids.tolist()
    for name in ("train", "validation", "test", "query"):
        assert (getattr(a[1], name) != getattr(b[1], name)).nnz == 0
    assert a[2] == b[2] and a[2]["interactions"] == len(plays)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 6), min_size=1, max_size=30), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_row_ranks_in_blocks_equal_one_block_and_a_per_row_sort(lengths, block, seed):
    from musicrec.pipeline.interactions import _row_ranks

    indptr = np.r_[0, np.cumsum(lengths)].astype(np.int32)
    keys = np.random.default_rng(seed).integers(0, 4, indptr[-1]).astype(float)  # ties: stored order
    blocked = _row_ranks(indptr, keys, block=block)
    assert blocked.dtype == np.int32 and blocked.tolist() == _row_ranks(indptr, keys, block=10**6).tolist()
    for r in range(len(lengths)):
        row = keys[indptr[r]:indptr[r + 1]]
        assert blocked[indptr[r]:indptr[r + 1]].tolist() == np.argsort(np.argsort(row, kind="stable")).tolist()


@pytest.mark.parametrize("method", ["random", "temporal", "cold_users", "strong_generalization"])
def test_split_in_small_blocks_is_the_same_split(method, monkeypatch):
    import musicrec.pipeline.interactions as mod

    counts = _random_counts(4, n_users=80, n_items=50, density=0.3)
    ts = counts.copy()
    ts.data = np.random.default_rng(2).integers(1_000_000, 2_000_000, ts.nnz).astype(float)
    params = SplitParams(method=method, cold_user_fraction=0.2, cold_known_items=2, heldout_users=10)
    last_ts = ts if method == "temporal" else None
    whole = split(counts, params, np.random.default_rng(3), last_ts=last_ts)
    monkeypatch.setattr(mod, "_BLOCK", 17)  # many blocks of whole rows
    blocked = split(counts, params, np.random.default_rng(3), last_ts=last_ts)
    for name in ("train", "validation", "test", "query"):
        assert (getattr(whole, name) != getattr(blocked, name)).nnz == 0, name
    if method != "strong_generalization":
        _check_partition(counts, blocked)


def _parquet_parts(tmp_path, frames):
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path / "plays"
    d.mkdir()
    for i, f in enumerate(frames):
        pq.write_table(pa.Table.from_pandas(f, preserve_index=False), d / f"part.{i:05d}.parquet", row_group_size=50)
    return d


@pytest.mark.parametrize("group", [1 << 22, 7], ids=["one-sort", "merged-in-groups"])
def test_parts_as_the_transform_writes_them_are_placed_without_a_sort(tmp_path, monkeypatch, group):
    """Users hashed to parts, each part sorted by (user, item): placed straight into the CSR arrays, with the
    same matrices as the COO route, float32 play counts and int32 indices."""
    import musicrec.pipeline.interactions as mod
    from musicrec.pipeline.interactions import PlaysParts

    rng = np.random.default_rng(9)
    n = 900
    plays = pd.DataFrame({"user_id": [f"u{int(i):03d}" for i in rng.integers(0, 70, n)],
                          "item_id": [f"t{int(i):03d}" for i in rng.integers(0, 40, n)],
                          "playcount": rng.integers(1, 500, n)}).drop_duplicates(["user_id", "item_id"])
    by_hash = [plays[plays["user_id"].map(lambda u: hash(u) % 3 == k)].sort_values(["user_id", "item_id"])
               for k in range(3)]
    monkeypatch.setattr(mod, "_VOCAB_GROUP", group)  # 7: the parts' dictionaries merged a few at a time
    placed = []
    real = mod._row_lengths_if_canonical
    monkeypatch.setattr(mod, "_row_lengths_if_canonical", lambda *a: placed.append(real(*a)) or placed[-1])
    got = build_interactions(PlaysParts.from_dir(_parquet_parts(tmp_path, by_hash)), InteractionsParams(), seed=1)
    assert placed and placed[0] is not None, "the canonical parts took the direct route"
    want = build_interactions(plays.sample(frac=1, random_state=2), InteractionsParams(), seed=1)  # unsorted: COO
    assert placed[-1] is None
    for name in ("train", "validation", "test", "query"):
        a, b = getattr(got.parts, name), getattr(want.parts, name)
        assert a.data.dtype == np.float32 and a.indices.dtype == np.int32 and a.has_sorted_indices
        assert (a != b).nnz == 0, name
    assert got.report == want.report and got.report["plays"] == int(plays["playcount"].sum())


def test_repeated_pairs_are_summed_and_large_counts_stay_exact():
    big = 2**24 + 1  # not a float32
    plays = _plays([("u1", "a", 1), ("u1", "a", 2), ("u2", "b", big), ("u1", "b", 1), ("u2", "a", 1),
                    ("u3", "a", 1), ("u3", "b", 1)])
    built = build_interactions(plays, InteractionsParams(split=SplitParams(min_user_items=10)), seed=0)
    train = built.parts.train
    assert train.dtype == np.float64, "float64 where float32 would round a count"
    assert train.toarray().tolist() == [[3, 1], [1, big], [1, 1]]
    assert built.report["plays"] == 3 + 1 + big + 1 + 2


def test_empty_parts_are_read_and_placed(tmp_path):
    """A partition no user hashed to is an empty Parquet part: it adds nothing and breaks nothing."""
    from musicrec.pipeline.interactions import PlaysParts

    plays = pd.DataFrame({"user_id": ["u1"] * 6 + ["u2"] * 6, "item_id": [f"t{i}" for i in range(6)] * 2,
                          "playcount": list(range(1, 13))})
    d = _parquet_parts(tmp_path, [plays.iloc[:6], plays.iloc[:0], plays.iloc[6:], plays.iloc[:0]])
    got = build_interactions(PlaysParts.from_dir(d), InteractionsParams(), seed=3)
    want = build_interactions(plays, InteractionsParams(), seed=3)
    assert got.report == want.report and got.report["interactions"] == 12
    for name in ("train", "validation", "test", "query"):
        assert (getattr(got.parts, name) != getattr(want.parts, name)).nnz == 0
