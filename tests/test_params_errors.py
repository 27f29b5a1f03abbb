"""Bad params files: every mistake is a ParamsError whose message names the offending key."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from musicrec.config import ParamsError, load_params, parse_params, resolve_path

ROOT = Path(__file__).resolve().parents[1]
BASE: dict[str, Any] = yaml.safe_load((ROOT / "params.yaml").read_text())


def mutate(path: str, value: Any = None, *, delete: bool = False, rename: str | None = None) -> dict[str, Any]:
    """A copy of params.yaml with ``path`` (dotted) set, deleted or renamed."""
    raw = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    if delete:
        del node[last]
    elif rename is not None:
        node[rename] = node.pop(last)
    else:
        node[last] = value
    return raw


def test_the_repository_params_are_valid() -> None:
    p = load_params(ROOT / "params.yaml")
    assert p.data.source in ("synthetic", "kaggle", "taste_profile", "lastfm_1k", "lastfm_360k", "hetrec_lastfm_2k")


CASES = [
    # misspelled keys
    ("misspelled_top_level", mutate("seed", rename="sed"), [r"^  sed: unknown key \(misspelled\?\)", r"^  seed: missing required key"]),
    ("misspelled_data_key", mutate("data.source", rename="sorce"), [r"^  data\.sorce: unknown key", r"^  data\.source: missing required key"]),
    ("misspelled_nested_model_key", mutate("train.als.factors", rename="factor"), [r"^  train\.als\.factor: unknown key \(misspelled\?\)"]),
    ("misspelled_split_key", mutate("interactions.split.test_fraction", rename="test_frac"), [r"^  interactions\.split\.test_frac: unknown key"]),
    ("unknown_section", {**copy.deepcopy(BASE), "trian": {}}, [r"^  trian: unknown key"]),
    # out-of-range values
    ("negative_factors", mutate("train.als.factors", -4), [r"^  train\.als\.factors: .*greater than 0.*\(got -4\)"]),
    ("zero_chunk_rows", mutate("data.chunk_rows", 0), [r"^  data\.chunk_rows: .*greater than 0.*\(got 0\)"]),
    ("test_fraction_above_one", mutate("interactions.split.test_fraction", 1.5), [r"^  interactions\.split\.test_fraction: .*less than 1"]),
    ("fractions_sum_to_one", mutate("interactions.split.validation_fraction", 0.8), [r"^  interactions\.split: .*test_fraction \+ validation_fraction must be below 1"]),
    ("too_many_partitions", mutate("transform.partitions", 5000), [r"^  transform\.partitions: .*less than or equal to 4096.*\(got 5000\)"]),
    ("negative_seed", mutate("seed", -1), [r"^  seed: .*greater than or equal to 0"]),
    ("n_genres_over_64", mutate("generate.n_genres", 65), [r"^  generate\.n_genres: .*less than or equal to 64"]),
    ("max_playcount_zero", mutate("clean.max_playcount", 0), [r"^  clean\.max_playcount: .*greater than 0"]),
    ("max_artist_playcount_negative", mutate("clean.max_artist_playcount", -1), [r"^  clean\.max_artist_playcount: .*greater than 0"]),
    ("bm25_b_above_one", mutate("interactions.bm25_b", 1.2), [r"^  interactions\.bm25_b: "]),
    ("mmr_lambda_above_one", mutate("train.hybrid.mmr_lambda", 2), [r"^  train\.hybrid\.mmr_lambda: "]),
    ("main_k_not_in_k", mutate("evaluate.main_k", 7), [r"^  evaluate: .*main_k=7 must be one of k"]),
    ("timeout_negative", mutate("mlflow.timeout_s", -1), [r"^  mlflow\.timeout_s: .*greater than 0"]),
    # wrong types
    ("seed_text", mutate("seed", "abc"), [r"^  seed: .*valid integer.*\(got 'abc'\)"]),
    ("seed_float", mutate("seed", 1.5), [r"^  seed: .*\(got 1\.5\)"]),
    ("chunk_rows_text", mutate("data.chunk_rows", "lots"), [r"^  data\.chunk_rows: "]),
    ("models_not_a_list", mutate("train.models", "als"), [r"^  train\.models: .*valid list"]),
    ("k_list_with_text", mutate("evaluate.k", [5, "ten"]), [r"^  evaluate\.k\.1: "]),
    ("section_not_a_mapping", mutate("clean", 5), [r"^  clean: "]),
    ("unknown_model", mutate("train.models", ["popularity", "gpt"]), [r"^  train\.models\.1: .*\(got 'gpt'\)"]),
    ("popularity_removed", mutate("train.models", ["als"]), [r"^  train\.models: .*popularity must stay"]),
    ("models_listed_twice", mutate("train.models", ["popularity", "als", "als"]), [r"^  train\.models: .*listed twice.*als"]),
    ("bad_dask_scheduler", mutate("dask.scheduler", "gpu"), [r"^  dask\.scheduler: .*threads, processes, synchronous"]),
    ("bad_dask_address", mutate("dask.address", "localhost:8786"), [r"^  dask\.address: .*tcp://"]),
    ("unmatched_policy", mutate("data.unmatched", "maybe"), [r"^  data\.unmatched: .*'keep' or 'drop'.*\(got 'maybe'\)"]),
    # unknown data.source
    ("unknown_source", mutate("data.source", "spotify"), [r"^  data\.source: .*'synthetic'.*\(got 'spotify'\)"]),
    ("source_case_matters", mutate("data.source", "Kaggle"), [r"^  data\.source: .*\(got 'Kaggle'\)"]),
    # missing sections / keys
    ("missing_data_section", mutate("data", delete=True), [r"^  data: missing required key$"]),
    ("missing_train_section", mutate("train", delete=True), [r"^  train: missing required key$"]),
    ("missing_generate_section", mutate("generate", delete=True), [r"^  generate: missing required key$"]),
    ("missing_models", mutate("train.models", delete=True), [r"^  train\.models: missing required key$"]),
    ("missing_n_users", mutate("generate.n_users", delete=True), [r"^  generate\.n_users: missing required key$"]),
]


@pytest.mark.parametrize("name, raw, patterns", CASES, ids=[c[0] for c in CASES])
def test_bad_params_name_the_key(tmp_path: Path, name: str, raw: dict, patterns: list[str]) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(ParamsError) as err:
        load_params(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: invalid parameters:"), msg
    for pat in patterns:
        assert re.search(pat, msg, re.M), f"{pat!r} not in:\n{msg}"
    # every reported line names a key path that exists in the input or in the schema
    for line in msg.splitlines()[1:]:
        assert re.match(r"^  [A-Za-z_][\w.]*: \S", line), line


def test_every_bad_key_is_reported_at_once(tmp_path: Path) -> None:
    raw = mutate("train.als.factors", 0)
    raw["data"]["sorce"] = raw["data"].pop("source")
    raw["transform"]["partitions"] = "eight"
    with pytest.raises(ParamsError) as err:
        parse_params(raw, tmp_path / "p.yaml")
    keys = {line.split(":")[0].strip() for line in str(err.value).splitlines()[1:]}
    assert keys == {"train.als.factors", "data.sorce", "data.source", "transform.partitions"}


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("- a\n- b\n", r"expected a YAML mapping at the top level, got list"),
        ("", r"expected a YAML mapping at the top level, got NoneType"),
        ("seed: [1,\n", r"not valid YAML"),
        ("seed: 1\nseed: 2\ndata: {source: kaggle\n", r"not valid YAML"),
    ],
)
def test_unreadable_params_file(tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=pattern) as err:
        load_params(path)
    assert str(path) in str(err.value)


def test_missing_params_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"nope\.yaml: params file not found"):
        load_params(tmp_path / "nope.yaml")


@pytest.mark.parametrize("source, key", [("synthetic", "max_playcount"), ("kaggle", "max_playcount"),
                                         ("taste_profile", "max_playcount"), ("lastfm_1k", "max_playcount"),
                                         ("lastfm_360k", "max_artist_playcount"),
                                         ("hetrec_lastfm_2k", "max_artist_playcount")])
def test_play_count_cap_depends_on_the_item_level_of_the_source(tmp_path: Path, source: str, key: str) -> None:
    raw = mutate("data.source", source)
    raw["clean"] = {"max_playcount": 7, "max_artist_playcount": 11}
    assert parse_params(raw, tmp_path / "p.yaml").clean.cap_for(source) == raw["clean"][key]
    defaults = load_params(ROOT / "params.yaml").clean
    assert (defaults.max_playcount, defaults.max_artist_playcount) == (100_000, 10_000_000)


# --------------------------------------------------------------------------- path escaping


def test_resolve_path_inside_the_repository(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    assert resolve_path("data/raw", root=tmp_path) == tmp_path.resolve() / "data" / "raw"
    assert resolve_path("data/../data/raw", root=tmp_path) == tmp_path.resolve() / "data" / "raw"
    assert resolve_path(tmp_path / "data", root=tmp_path) == tmp_path.resolve() / "data"  # absolute but inside


@pytest.mark.parametrize("p", ["../outside", "data/../../outside", "/etc/passwd", "/"])
def test_resolve_path_refuses_escapes(tmp_path: Path, p: str) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    with pytest.raises(ParamsError) as err:
        resolve_path(p, root=root)
    msg = str(err.value)
    assert repr(p) in msg and "outside the repository" in msg and "data.allow_absolute_paths" in msg, msg
    assert resolve_path(p, root=root, allow_absolute=True).is_absolute()


def test_resolve_path_refuses_symlink_escape(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "data" / "raw").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ParamsError, match=r"'data/raw' resolves to .*elsewhere, outside the repository"):
        resolve_path("data/raw", root=root)


@pytest.mark.parametrize("raw_root", ["/etc", "../../outside", "data/../../outside"])
def test_raw_root_escape_is_a_params_error(tmp_path: Path, raw_root: str) -> None:
    with pytest.raises(ParamsError, match=r"(?m)^  data\.raw_root: ") as err:
        parse_params(mutate("data.raw_root", raw_root), tmp_path / "params.yaml")
    assert repr(raw_root) in str(err.value) and "data.allow_absolute_paths: true" in str(err.value)
    allowed = mutate("data.raw_root", raw_root)
    allowed["data"]["allow_absolute_paths"] = True
    assert parse_params(allowed, tmp_path / "params.yaml").data.raw_root == raw_root


@pytest.mark.parametrize("raw_root", ["data/raw", "./data/raw", "data/../data/raw", "raw"])
def test_raw_root_inside_the_repository_is_accepted(tmp_path: Path, raw_root: str) -> None:
    assert parse_params(mutate("data.raw_root", raw_root), tmp_path / "params.yaml").data.raw_root == raw_root


# --------------------------------------------------------------------------- stage scripts


def _run_stage(script: str, params: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "stages" / script), "--params", str(params), *args],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


@pytest.mark.parametrize(
    "raw, key",
    [(mutate("train.als.factors", -4), r"train\.als\.factors"), (mutate("data.source", "spotify"), r"data\.source"),
     (mutate("clean", delete=True) | {"clen": {"max_playcount": 5}}, r"clen")],
    ids=["out_of_range", "unknown_source", "misspelled_section"],
)
def test_clean_stage_with_bad_params_exits_2(tmp_path: Path, raw: dict, key: str) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    (tmp_path / "raw").mkdir()
    out, report = tmp_path / "interim", tmp_path / "dq.json"
    res = _run_stage("clean.py", params, tmp_path, "--input", str(tmp_path / "raw"), "--out", str(out),
                     "--report", str(report))
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip()
    assert "Traceback" not in err and err.count("\n") == 0, err
    assert re.search(key, err) and str(params) in err, err
    assert not out.exists() and not report.exists()


def test_transform_stage_with_bad_params_exits_2(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(mutate("transform.min_user_items", 0), sort_keys=False))
    res = _run_stage("transform.py", params, tmp_path, "--interim", str(tmp_path / "interim"), "--out-plays",
                     str(tmp_path / "plays"), "--out-items", str(tmp_path / "items.parquet"), "--report",
                     str(tmp_path / "t.json"))
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert re.search(r"transform\.min_user_items: .*greater than or equal to 1", res.stderr), res.stderr
    assert not (tmp_path / "plays").exists()


@pytest.mark.parametrize("value, rows, expected", [
    (8, 10**9, 8), ("auto", 1_000_000, 8), ("auto", 10_000_000, 34), ("auto", 48_000_000, 160), ("auto", 0, 8),
    ("auto", 10**12, 4096)])
def test_transform_partitions_auto_scales_with_rows(value, rows, expected):
    raw = mutate("transform.partitions", value)
    assert parse_params(raw).transform.partitions_for(rows) == expected


@pytest.mark.parametrize("value", ["eight", 0, 5000, True, 2.5])
def test_transform_partitions_must_be_auto_or_a_count(value, tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"transform\.partitions: .*auto"):
        parse_params(mutate("transform.partitions", value), tmp_path / "p.yaml")
