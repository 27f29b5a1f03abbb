import hashlib

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.pipeline import write_interim
from musicrec.config import DaskParams, TransformParams
from musicrec.pipeline.transform import FilterSpec, _keep, filter_pairs_in_memory, iterate_filter, run_transform


def _pairs(rows):
    df = pd.DataFrame(rows, columns=["user_id", "item_id"]).astype("string")
    df["playcount"] = 1
    return df


def test_filter_reaches_a_fixed_point_by_hand():
    # u3 has 1 item -> dropped; then item c has only u1 -> dropped; then u1 has 1 item left -> dropped...
    rows = [("u1", "a"), ("u1", "c"), ("u2", "a"), ("u2", "b"), ("u4", "a"), ("u4", "b"), ("u3", "c")]
    out = filter_pairs_in_memory(_pairs(rows), FilterSpec(2, 2, 10))
    assert sorted(zip(out.user_id, out.item_id)) == [("u2", "a"), ("u2", "b"), ("u4", "a"), ("u4", "b")]


def test_filter_result_satisfies_both_thresholds():
    rng = np.random.default_rng(0)
    rows = list({(f"u{rng.zipf(1.6) % 300}", f"i{rng.zipf(1.4) % 400}") for _ in range(5000)})
    out = filter_pairs_in_memory(_pairs(rows), FilterSpec(4, 3, 50))
    assert len(out) > 0
    assert out.groupby("user_id").size().min() >= 4
    assert out.groupby("item_id").size().min() >= 3


def test_filter_not_converging_names_the_param():
    rows = [(f"u{i}", f"i{j}") for i in range(6) for j in range(6) if j <= i]
    with pytest.raises(ValueError, match="transform.max_passes=1"):
        filter_pairs_in_memory(_pairs(rows), FilterSpec(3, 3, 1))


def _write_interim(d, n=20_000, seed=0):
    return write_interim(d, n, parts=3, n_users=400, n_items=600, seed=seed)


def _digest(folder):
    return hashlib.md5(b"".join(p.read_bytes() for p in sorted(folder.glob("*.parquet")))).hexdigest()


@pytest.mark.parametrize("scheduler", ["threads", "synchronous"])
def test_run_transform_matches_pandas_reference_and_is_deterministic(tmp_path, scheduler):
    raw = _write_interim(tmp_path / "interim")
    spec = FilterSpec(3, 3, 30)
    kw = dict(params=TransformParams(min_user_items=3, min_item_users=3, max_passes=30, partitions=3),
              dask_params=DaskParams(scheduler=scheduler, num_workers=2))
    r1 = run_transform(tmp_path / "interim", tmp_path / "o1" / "plays", tmp_path / "o1" / "items.parquet", **kw)
    r2 = run_transform(tmp_path / "interim", tmp_path / "o2" / "plays", tmp_path / "o2" / "items.parquet", **kw)
    assert r1 == r2
    assert _digest(tmp_path / "o1" / "plays") == _digest(tmp_path / "o2" / "plays")
    got = pd.read_parquet(tmp_path / "o1" / "plays").sort_values(["user_id", "item_id"]).reset_index(drop=True)
    agg = raw.groupby(["user_id", "item_id"]).agg(
        playcount=("playcount", "sum"), first_ts=("timestamp", "min"), last_ts=("timestamp", "max")).reset_index()
    ref = filter_pairs_in_memory(agg, spec)
    pd.testing.assert_frame_equal(got, ref, check_dtype=False)
    assert r1["rows_in"] == len(raw) and r1["pairs_kept"] == len(ref) and r1["plays_kept"] == ref.playcount.sum()
    items = pd.read_parquet(tmp_path / "o1" / "items.parquet")
    assert set(items.item_id) <= set(ref.item_id)
    assert r1["items_with_metadata"] == len(items)
    assert r1["items_with_metadata"] + r1["items_without_metadata"] == r1["items_kept"]


def test_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the clean stage first"):
        run_transform(tmp_path, tmp_path / "p", tmp_path / "i.parquet",
                      TransformParams(min_user_items=1, min_item_users=1, max_passes=2, partitions=1), DaskParams())


def test_iterate_filter_reports_passes():
    pairs = _pairs([("u1", "a"), ("u2", "a")])

    def count(users, items):
        return pairs["user_id"].value_counts(), pairs["item_id"].value_counts()

    users, items, passes = iterate_filter(count, FilterSpec(1, 1, 3))
    assert list(users) == ["u1", "u2"] and list(items) == ["a"] and passes[0]["pairs"] == 2


def test_partitions_from_the_input_row_count(tmp_path, monkeypatch):
    """transform.partitions: auto: the number of partitions is a function of the input rows (Parquet footers)."""
    raw = _write_interim(tmp_path / "interim")
    seen = []

    def partitions_for(n_rows):
        seen.append(n_rows)
        return 5

    monkeypatch.setattr(TransformParams, "partitions_for", lambda self, n_rows: partitions_for(n_rows))
    r = run_transform(tmp_path / "interim", tmp_path / "o" / "plays", tmp_path / "o" / "items.parquet",
                      TransformParams(min_user_items=3, min_item_users=3, max_passes=30, partitions="auto"),
                      DaskParams(scheduler="synchronous"))
    assert seen == [len(raw)] and r["partitions"] == 5
    assert len(list((tmp_path / "o" / "plays").glob("*.parquet"))) == 5


def _keep_set_filter(pairs, spec):
    """The filter as it was first written: every pass restricted to the kept users and items themselves."""
    users = items = None
    passes = []
    while True:
        df = pairs[(users is None or pairs["user_id"].isin(users)) & (items is None or pairs["item_id"].isin(items))] \
            if users is not None else pairs
        uc, ic = df["user_id"].value_counts(), df["item_id"].value_counts()
        new_u, new_i = set(uc.index[uc >= spec.min_user_items]), set(ic.index[ic >= spec.min_item_users])
        passes.append((len(df), len(uc), len(ic), len(new_u), len(new_i)))
        if len(new_u) == len(uc) and len(new_i) == len(ic):
            return df, passes
        users, items = new_u, new_i


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 9)), min_size=1, max_size=120, unique=True),
       st.integers(1, 4), st.integers(1, 4))
def test_filter_with_dropped_id_sets_selects_what_keep_sets_select(edges, min_user, min_item):
    """iterate_filter hands a pass the dropped ids where they are fewer than the kept ones: same passes, same pairs."""
    pairs = _pairs([(f"u{u}", f"t{i}") for u, i in edges])
    spec = FilterSpec(min_user, min_item, 50)
    want, want_passes = _keep_set_filter(pairs, spec)

    def count(users, items):
        df = _keep(pairs, users, items)
        return df["user_id"].value_counts(sort=False), df["item_id"].value_counts(sort=False)

    _, _, passes = iterate_filter(count, spec)
    assert [(p["pairs"], p["users_in"], p["items_in"], p["users_kept"], p["items_kept"]) for p in passes] == want_passes
    got = filter_pairs_in_memory(pairs, spec)
    assert sorted(map(tuple, got[["user_id", "item_id"]].to_numpy().tolist())) == \
        sorted(map(tuple, want[["user_id", "item_id"]].to_numpy().tolist()))


def test_a_pass_after_few_drops_gets_the_dropped_ids():
    """One user of ten falls below the minimum: the next pass is handed that one id to drop, not nine to keep."""
    rows = [(f"u{u}", t) for u in range(9) for t in ("a", "b")] + [("u9", "a")]
    given_sets = []

    def count(users, items):
        given_sets.append(users)
        df = _keep(_pairs(rows), users, items)
        return df["user_id"].value_counts(sort=False), df["item_id"].value_counts(sort=False)

    users, _, passes = iterate_filter(count, FilterSpec(2, 1, 5))
    assert given_sets[0] is None and not given_sets[1].keep and list(given_sets[1].keys) == ["u9"]
    assert len(users) == 9 and len(passes) == 2
