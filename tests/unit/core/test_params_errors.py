"""Bad params files: every mistake is a ParamsError whose message names the offending key."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import BaseModel

from musicrec.ingest import SOURCES
from musicrec.models.hybrid import collaborative_models
from musicrec.config import MODELS, Params, load_params, parse_params, resolve_path
from musicrec.params_file import MAX_DEPTH, MAX_ERRORS, MAX_FILE_BYTES, MAX_VALUE_CHARS, ParamsError

ROOT = Path(__file__).resolve().parents[3]
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
    assert p.data.source in SOURCES


def _subset(raw: Any, loaded: Any) -> bool:
    if isinstance(raw, dict):
        return all(_subset(v, loaded[k]) for k, v in raw.items())
    return raw == loaded and type(raw) in (type(loaded), int)  # an int given for a float field


def test_the_repository_params_keep_their_meaning() -> None:
    """Every value of the committed params.yaml is loaded as written (strictness changed no value)."""
    assert _subset(BASE, load_params(ROOT / "params.yaml").model_dump())


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
    ("bm25_b_above_one", mutate("train.itemknn.bm25_b", 1.2), [r"^  train\.itemknn\.bm25_b: "]),
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


@pytest.mark.parametrize("source, key", [(name, "max_artist_playcount" if src.artist_level else "max_playcount")
                                         for name, src in SOURCES.items()])
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


# --------------------------------------------------------------------------- hostile params files: the YAML level
#
# Each case is the committed params.yaml with one edit (``text`` maps its text to the hostile one) and the exact
# one-line message expected after "<file>: ". Every message names the line and column (or the key) and says
# what was expected.

TEXT = (ROOT / "params.yaml").read_text(encoding="utf-8")
LINES = TEXT.splitlines()


def line_of(needle: str) -> int:
    """The 1-based line of the committed params.yaml that contains ``needle``."""
    return next(i for i, line in enumerate(LINES, 1) if needle in line)


def bomb(levels: int = 9) -> str:
    """A "billion laughs" flow sequence: 9 levels of 9 aliases each expand to 9**9 strings."""
    out = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    out += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(out) + "]"


def replace(old: str, new: str) -> Any:
    assert TEXT.count(old) == 1, old
    return lambda text: text.replace(old, new)


ALIASES = r"refused: YAML anchors and aliases \(&name, \*name\) are not allowed in a params file; write each value out$"
YAML_CASES = [
    # anchors and aliases: refused at the first anchor, under any key, so a bomb never expands
    ("alias_bomb_at_top", lambda t: t + f"extra: {bomb()}\n", rf"line {len(LINES) + 1}, column 9: {ALIASES}"),
    ("alias_bomb_under_train", replace("  popularity: {}", f"  popularity: {{bombs: {bomb()}}}"),
     rf"line {line_of('popularity: {}')}, column 24: {ALIASES}"),
    ("alias_bomb_in_evaluate_k", replace("  k: [5, 10, 20, 50]", f"  k: {bomb()}"),
     rf"line {line_of('k: [5, 10, 20, 50]')}, column 7: {ALIASES}"),
    ("anchor_without_alias", replace("  factors: 32", "  factors: &f 32"),
     rf"line {line_of('factors: 32')}, column 14: {ALIASES}"),
    ("alias_of_a_section", lambda t: t.replace("clean:\n", "clean: &c\n") + "clean2: *c\n",
     rf"line {line_of('clean:')}, column 8: {ALIASES}"),
    ("merge_key", replace("  popularity: {}", "  popularity: {<<: {recent_days: 3}}"),
     rf"line {line_of('popularity: {}')}, column 16: refused: YAML merge keys \(<<\) are not allowed"),
    # duplicate keys at any depth, with both lines (PyYAML alone keeps the last copy; DVC refuses the file)
    ("duplicate_section", lambda t: t + "data:\n  source: kaggle\n",
     rf"line {len(LINES) + 1}, column 1: refused: key 'data' is given twice, at line {line_of('data:')} and line "
     rf"{len(LINES) + 1}; keep one \(DVC refuses such a file too\)$"),
    ("duplicate_top_level_value", lambda t: t + "seed: 7\n",
     rf"line {len(LINES) + 1}, column 1: refused: key 'seed' is given twice, at line {line_of('seed: 42')} and"),
    ("duplicate_nested_key", replace("    factors: 32\n", "    factors: 32\n    factors: 64\n"),
     rf"line {line_of('factors: 32') + 1}, column 5: refused: key 'train.als.factors' is given twice, at line "
     rf"{line_of('factors: 32')} and line {line_of('factors: 32') + 1}"),
    ("duplicate_split_key", replace("    method: random", "    method: random\n    method: temporal"),
     rf"key 'interactions.split.method' is given twice, at line {line_of('method: random')} and line "
     rf"{line_of('method: random') + 1}"),
    ("duplicate_in_flow_mapping", replace("  popularity: {}", "  popularity: {recent_days: 1, recent_days: 2}"),
     rf"column 32: refused: key 'train.popularity.recent_days' is given twice"),
    ("duplicate_key_spelled_differently", lambda t: t + '"seed": 7\n', r"refused: key 'seed' is given twice"),
    # nesting is bounded (no recursion blow-up in the composer)
    ("deeply_nested_lists", lambda t: t + "extra: " + "[" * 5000 + "]" * 5000 + "\n",
     rf"line {len(LINES) + 1}, column {8 + MAX_DEPTH - 1}: refused: nested more than {MAX_DEPTH} levels deep$"),
    ("deeply_nested_mappings", lambda t: t + "extra: " + "{a: " * 100 + "1" + "}" * 100 + "\n",
     rf"refused: nested more than {MAX_DEPTH} levels deep$"),
    # syntax
    ("tab_indent", replace("  n_tracks: 20000", "\tn_tracks: 20000"),
     rf"line {line_of('n_tracks')}, column 1: not valid YAML: found character '\\t' that cannot start any token; "
     "indent with spaces, not tabs$"),
    ("unclosed_flow_list", replace("  k: [5, 10, 20, 50]", "  k: [5, 10, 20, 50"),
     rf"line \d+, column \d+: not valid YAML: .*\(while parsing a flow sequence at line {line_of('k: [5')}, "
     "column 6\\)$"),
    ("bad_indentation", replace("  n_users: 30000", "   n_users: 30000"),
     rf"line {line_of('n_users')}, column 11: not valid YAML: mapping values are not allowed here$"),
    ("two_documents", lambda t: t + "---\nseed: 1\n",
     rf"line {len(LINES) + 1}, column 1: not valid YAML: but found another document"),
    # explicit tags: a params file needs none (!!python/... would run code with an unsafe loader; !!int abc,
    # !!bool maybe or !!map [1] broke PyYAML's constructors with a traceback)
    ("python_tag", replace("seed: 42", "seed: !!python/object/apply:os.system ['true']"),
     r"line 3, column 7: refused: explicit YAML tags \('!!python/object/apply:os\.system'\) are not allowed in a "
     r"params file; write the plain value$"),
    ("int_tag", replace("seed: 42", "seed: !!int abc"), r"line 3, column 7: refused: explicit YAML tags \('!!int'\)"),
    ("bool_tag", replace("required: true", "required: !!bool maybe"),
     rf"line {line_of('required: true')}, column 13: refused: explicit YAML tags \('!!bool'\)"),
    ("map_tag_on_a_list", replace("  popularity: {}", "  popularity: !!map [1]"), r"refused: explicit YAML tags"),
    ("local_tag", replace("  als:", "  als: !custom"), rf"line {line_of('  als:')}, column 8: refused: explicit YAML "
                                                       r"tags \('!custom'\)"),
    ("long_unknown_tag", replace("seed: 42", "seed: !" + "t" * 5000 + " 42"),
     r"line 3, column 7: refused: explicit YAML tags \('!t+\.\.\.t+'\) are not allowed"),
    # values PyYAML's constructors cannot build
    ("int_of_5000_digits", replace("seed: 42", "seed: " + "9" * 5000),
     r"line 3, column 7: refused: cannot read the value '9+\.\.\.9+' \(Exceeds the limit \(4300 digits\)"),
    ("impossible_date", replace("seed: 42", "seed: 2020-02-30"),
     r"line 3, column 7: refused: cannot read the value '2020-02-30' \(day is out of range for month\)$"),
    ("control_character", replace("experiment: musicrec", "experiment: mus\x07ic"),
     rf"line {line_of('experiment: musicrec')}, column 18: not valid YAML: the character U\+0007 is not allowed"),
    ("unhashable_key", lambda t: t + "? [a, b]\n: 1\n",
     rf"line {len(LINES) + 1}, column 3: not valid YAML: found unhashable key"),
    # not a mapping at the top
    ("top_level_list", lambda t: "- seed\n- 42\n",
     r"expected a YAML mapping at the top level, got list \(a YAML list\)$"),
    ("top_level_text", lambda t: "just some words\n",
     r"expected a YAML mapping at the top level, got str \(a single value 'just some words'\)$"),
    ("empty_file", lambda t: "", r"expected a YAML mapping at the top level, got NoneType \(an empty document\)$"),
    ("only_comments", lambda t: "# nothing here\n",
     r"expected a YAML mapping at the top level, got NoneType \(an empty document\)$"),
    ("huge_top_level_value", lambda t: "x" * 60_000 + "\n",
     r"expected a YAML mapping at the top level, got str \(a single value 'x+\.\.\.x+'\)$"),
]


@pytest.mark.parametrize("name, text, expected", YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_hostile_yaml_is_refused_with_line_and_column(tmp_path: Path, name: str, text: Any, expected: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text(TEXT), encoding="utf-8")
    with pytest.raises(ParamsError) as err:
        load_params(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg and len(msg.removeprefix(f"{path}: ")) < 300, msg
    assert re.search(expected, msg.removeprefix(f"{path}: ")), f"{expected!r} does not match:\n{msg}"


ENCODED = TEXT.replace("experiment: musicrec", "experiment: musicréc")
ENCODING_CASES = [
    ("utf16_le_bom", ENCODED.encode("utf-16"),
     r"is UTF-16 text \(it starts with a UTF-16 byte-order mark\); expected UTF-8: convert it, e\.g\. iconv "
     r"-f UTF-16 -t UTF-8$"),
    ("utf16_be_bom", b"\xfe\xff" + ENCODED.encode("utf-16-be"), r"is UTF-16 text .*expected UTF-8"),
    ("utf32_bom", ENCODED.encode("utf-32"), r"is UTF-32 text \(it starts with a UTF-32 byte-order mark\); expected"),
    ("utf16_le_without_bom", ENCODED.encode("utf-16-le"),
     r"line 1, column 2: contains a NUL byte; expected UTF-8 text \(is it UTF-16/UTF-32 without a byte-order "
     r"mark, or a binary file\?\)$"),
    ("utf16_be_without_bom", ENCODED.encode("utf-16-be"), r"line 1, column 1: contains a NUL byte; expected UTF-8"),
    ("latin1", ENCODED.encode("latin-1"),
     rf"line {line_of('experiment: musicrec')}, column 21: not UTF-8 text \(byte 0xE9 cannot be decoded; Latin-1 "
     r"or another legacy encoding\?\); expected UTF-8$"),
    ("binary", bytes(range(1, 256)) * 4, r"line 2, column 118: not UTF-8 text \(byte 0x80 cannot be decoded"),
    ("binary_with_nul", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"line 3, column 1: contains a NUL byte"),
    ("too_large", TEXT.encode() + b"#" * MAX_FILE_BYTES,
     rf"larger than {MAX_FILE_BYTES // 1024} KiB; a params file is a few KiB of YAML \(is this the right file\?\)$"),
]


@pytest.mark.parametrize("name, data, expected", ENCODING_CASES, ids=[c[0] for c in ENCODING_CASES])
def test_a_file_that_is_not_utf8_text_is_refused_naming_it(tmp_path: Path, name: str, data: bytes,
                                                           expected: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(data)
    with pytest.raises(ParamsError) as err:
        load_params(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: ") and "\n" not in msg, msg
    assert re.search(expected, msg.removeprefix(f"{path}: ")), f"{expected!r} does not match:\n{msg}"


def test_utf8_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + ENCODED.encode("utf-8"))
    assert load_params(path).mlflow.experiment == "musicréc"


def test_a_directory_is_not_a_params_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=rf"^{re.escape(str(tmp_path))}: is a directory; expected a params YAML"):
        load_params(tmp_path)


# --------------------------------------------------------------------------- strict types and bounds, every key


def leaf_fields(model: type[BaseModel] = Params, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, annotation) of every leaf param of the schema, nested sections walked."""
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += leaf_fields(ann, f"{prefix}{name}.")
        else:
            out.append((f"{prefix}{name}", ann))
    return out


def kinds(ann: Any) -> set[Any]:
    return {ann} if typing.get_origin(ann) is None else set(typing.get_args(ann))


LEAVES = leaf_fields()
INT_KEYS = [k for k, ann in LEAVES if int in kinds(ann)]
FLOAT_KEYS = [k for k, ann in LEAVES if float in kinds(ann)]
LITERAL_KEYS = [(k, ann) for k, ann in LEAVES if typing.get_origin(ann) is Literal]
# a choice among registered models is checked by a validator (the registry is not known when the class is made)
LITERAL_KEYS.append(("train.hybrid.collaborative", Literal[collaborative_models()]))
LITERAL_KEYS.append(("train.adaptive_hybrid.collaborative", Literal[collaborative_models()]))
STR_KEYS = [k for k, ann in LEAVES if str in kinds(ann)]


def test_the_schema_walk_finds_the_params() -> None:
    assert {"seed", "data.chunk_rows", "transform.partitions", "evaluate.main_k"} <= set(INT_KEYS)
    assert {"train.als.alpha", "mlflow.timeout_s", "train.popularity.recent_days"} <= set(FLOAT_KEYS)
    assert {"data.source", "train.hybrid.collaborative"} <= {k for k, _ in LITERAL_KEYS}
    assert {"dask.blocksize", "dask.address", "mlflow.experiment", "data.raw_root"} <= set(STR_KEYS)


def load_with(tmp_path: Path, key: str, value: Any) -> str:
    """The ParamsError message of params.yaml with ``key`` set to ``value`` (the test fails if it loads)."""
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(mutate(key, value), sort_keys=False))
    with pytest.raises(ParamsError) as err:
        load_params(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: invalid parameters:\n"), msg
    return msg


def key_line(key: str) -> str:
    return rf"(?m)^  {re.escape(key)}: "


@pytest.mark.parametrize("key", INT_KEYS)
@pytest.mark.parametrize("value, expected", [
    (True, r"(Input should be a valid integer|must be auto or a whole number).* \(got True\)$"),
    (False, r"(Input should be a valid integer|must be auto or a whole number).* \(got False\)$"),
    (1.5, r"(Input should be a valid integer|must be auto or a whole number).* \(got 1\.5\)$"),
    (8.0, r"(Input should be a valid integer|must be auto or a whole number).* \(got 8\.0\)$"),
    ("3", r"(Input should be a valid integer: decimal digits without quotes or leading zeros|must be auto or a "
          r"whole number).* \(got '3'\)$"),
    (1e20, r"(Input should be a valid integer|must be auto or a whole number).* \(got 1e\+20\)$"),
    (10**20, r"(less than or equal to \d+|1 to 4096).* \(got 100000000000000000000\)$"),
    (10**400, r"(less than or equal to \d+|1 to 4096).* \(got 1000000000.*\.\.\..*\)$"),
], ids=["true", "false", "1.5", "8.0", "quoted", "1e20", "1e20_digits", "400_digits"])
def test_every_int_param_is_strict_and_bounded(tmp_path: Path, key: str, value: Any, expected: str) -> None:
    """No bool -> int, no float -> int, no text -> int, and an upper bound on every int (int64/Arrow safe)."""
    msg = load_with(tmp_path, key, value)
    assert re.search(key_line(key) + ".*" + expected, msg, re.M), msg


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value, expected", [
    (True, r"Input should be a valid number \(got True\)$"),
    ("0.5", r"Input should be a valid number without quotes \(got '0\.5'\)$"),
    (float("inf"), r"Input should be a finite number \(got inf\)$"),
    (float("-inf"), r"(Input should be a finite number \(got -inf\)|greater than)"),
    (float("nan"), r"Input should be a finite number \(got nan\)$"),
    (1e300, r"less than (or equal to )?[\d.e+]+ \(got 1e\+300\)$"),
], ids=["true", "quoted", "inf", "-inf", "nan", "1e300"])
def test_every_float_param_is_strict_finite_and_bounded(tmp_path: Path, key: str, value: Any, expected: str) -> None:
    msg = load_with(tmp_path, key, value)
    assert re.search(key_line(key) + ".*" + expected, msg, re.M), msg


@pytest.mark.parametrize("spelling", [".inf", "-.inf", ".nan", ".NaN", "1.0e+400", "-1.0e+400"])
@pytest.mark.parametrize("key", ["train.als.alpha", "mlflow.timeout_s", "train.itemknn.bm25_k1"])
def test_yaml_spellings_of_inf_and_nan_are_refused(tmp_path: Path, key: str, spelling: str) -> None:
    *section, leaf = key.split(".")
    path = tmp_path / "params.yaml"
    old = f"{leaf}: {BASE_VALUE[key]}"
    path.write_text(TEXT.replace(old, f"{leaf}: {spelling}", 1))
    with pytest.raises(ParamsError, match=key_line(key) + r"Input should be a finite number \(got -?(inf|nan)\)$"):
        load_params(path)


BASE_VALUE = {"train.als.alpha": "10.0", "mlflow.timeout_s": "10", "train.itemknn.bm25_k1": "1.2"}


# Plain scalars are read as YAML 1.2 (like DVC), not YAML 1.1: no yes/on booleans, no octal/hex/base-60 integers;
# 1e6 is a float. (old text in params.yaml, new text, the message line expected or the loaded value)
RESOLUTION_CASES = [
    ("chunk_rows: 500000", "chunk_rows: 1e20", r"data\.chunk_rows: Input should be a valid integer \(got 1e\+20\)$"),
    ("chunk_rows: 500000", "chunk_rows: 1:30", r"data\.chunk_rows: Input should be a valid integer: decimal digits "
                                               r"without quotes or leading zeros \(got '1:30'\)$"),
    ("chunk_rows: 500000", "chunk_rows: 0777", r"data\.chunk_rows: .* \(got '0777'\)$"),
    ("chunk_rows: 500000", "chunk_rows: 0x7A120", r"data\.chunk_rows: .* \(got '0x7A120'\)$"),
    ("chunk_rows: 500000", "chunk_rows: 0b1010", r"data\.chunk_rows: .* \(got '0b1010'\)$"),
    ("chunk_rows: 500000", "chunk_rows: true", r"data\.chunk_rows: Input should be a valid integer \(got True\)$"),
    ("chunk_rows: 500000", "chunk_rows: 5.0e+5",
     r"data\.chunk_rows: Input should be a valid integer \(got 500000\.0\)$"),
    ("required: true", "required: yes", r"mlflow\.required: Input should be a valid boolean \(got 'yes'\)$"),
    ("required: true", "required: on", r"mlflow\.required: Input should be a valid boolean \(got 'on'\)$"),
    ("required: true", "required: 1", r"mlflow\.required: Input should be a valid boolean \(got 1\)$"),
    ("unmatched: keep", "unmatched: no", r"data\.unmatched: Input should be 'keep' or 'drop' \(got 'no'\)$"),
    ("use_gpu: false", "use_gpu: off", r"train\.als\.use_gpu: must be false, true or auto \(got 'off'\)$"),
    ("seed: 42", "seed: 2020-01-01", r"seed: Input should be a valid integer \(got datetime\.date\(2020, 1, 1\)\)$"),
    ("alpha: 10.0", "alpha: 1e1", ("train.als.alpha", 10.0)),
    ("learning_rate: 0.01", "learning_rate: 1E-2", ("train.bpr.learning_rate", 0.01)),
    ("chunk_rows: 500000", "chunk_rows: 500_000", ("data.chunk_rows", 500_000)),
    ("required: true", "required: True", ("mlflow.required", True)),
]


@pytest.mark.parametrize("old, new, expected", RESOLUTION_CASES, ids=[c[1] for c in RESOLUTION_CASES])
def test_scalars_are_read_as_yaml_1_2(tmp_path: Path, old: str, new: str, expected: Any) -> None:
    path = tmp_path / "params.yaml"
    assert TEXT.count(old) == 1, old
    path.write_text(TEXT.replace(old, new))
    if isinstance(expected, tuple):
        key, value = expected
        got: Any = load_params(path)
        for part in key.split("."):
            got = getattr(got, part)
        assert got == value and type(got) is type(value)
        return
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert re.search(r"(?m)^  " + expected, str(err.value)), str(err.value)


@pytest.mark.parametrize("key, ann", LITERAL_KEYS, ids=[k for k, _ in LITERAL_KEYS])
@pytest.mark.parametrize("value", ["bogus", True, 3])
def test_every_enum_names_the_allowed_values(tmp_path: Path, key: str, ann: Any, value: Any) -> None:
    msg = load_with(tmp_path, key, value)
    line = next(line for line in msg.splitlines() if line.startswith(f"  {key}: "))
    assert all(f"'{v}'" in line for v in typing.get_args(ann)), line
    assert line.endswith(f"(got {value!r})"), line


@pytest.mark.parametrize("key", STR_KEYS)
@pytest.mark.parametrize("value, expected", [
    (5, r".* \(got 5\)$"),
    ("x" * 10_000, r".* \(got 'x+\.\.\.x+'\)$"),
    ("a\nb", r".* \(got 'a\\nb'\)$"),
    ("a\x00b", r".* \(got 'a\\x00b'\)$"),
], ids=["number", "10000_chars", "newline", "nul"])
def test_every_string_param_is_typed_bounded_and_printable(tmp_path: Path, key: str, value: Any,
                                                           expected: str) -> None:
    msg = load_with(tmp_path, key, value)
    assert re.search(key_line(key) + expected, msg, re.M), msg
    assert all(len(line) < 300 for line in msg.splitlines()), msg


@pytest.mark.parametrize("value", ["lots", "64", "64 bytes", "", "-5MB", "0MB", "5GB", "1e400MB", 64_000_000, True,
                                   None])
def test_dask_blocksize_must_be_a_size_with_its_unit(tmp_path: Path, value: Any) -> None:
    msg = load_with(tmp_path, "dask.blocksize", value)
    assert re.search(r"(?m)^  dask\.blocksize: must be a size from 1MB to 1GiB written with its unit, such as 64MB "
                     rf"or 128MiB \(got {re.escape(repr(value))}\)$", msg), msg


@pytest.mark.parametrize("value", ["64MB", "64MiB", "128 MB", "1GiB", "1e6", "2.5MB"])
def test_dask_blocksize_sizes_are_accepted_as_written(value: str) -> None:
    assert parse_params(mutate("dask.blocksize", value)).dask.blocksize == value


@pytest.mark.parametrize("key", ["dask.address", "dask.scheduler"])
@pytest.mark.parametrize("value", ["localhost:8786", "tcp://", "tcp://:8786", "tcp://host", "tcp://host:0",
                                   "tcp://host:99999", "tcp://host:port", "tcp://[::1", "http://host:8786",
                                   "tcp://host:8786/path", "tcp://user@host:8786"])
def test_dask_addresses_are_tcp_host_port(tmp_path: Path, key: str, value: str) -> None:
    msg = load_with(tmp_path, key, value)
    assert re.search(key_line(key) + r"must be .*tcp://host:port.* \(got " + re.escape(repr(value)) + r"\)$", msg,
                     re.M), msg


@pytest.mark.parametrize("value", ["tcp://127.0.0.1:8786", "tls://scheduler.example:8786", "tcp://[::1]:8786"])
def test_dask_addresses_that_are_valid(value: str) -> None:
    assert parse_params(mutate("dask.address", value)).dask.effective_scheduler == value
    assert parse_params(mutate("dask.scheduler", value)).dask.scheduler == value


@pytest.mark.parametrize("key, value, expected", [
    ("evaluate.k", [5, 10, 10, 50], r"cut-offs listed twice: \[10\]; list each K once \(got \[5, 10, 10, 50\]\)$"),
    ("evaluate.k", [5, 5, 10, 20, 20], r"cut-offs listed twice: \[5, 20\]"),
    ("evaluate.k", [], r"List should have at least 1 item"),
    ("evaluate.k", list(range(1, 18)), r"List should have at most 16 items after validation, not 17 \(got \[1, 2, "
                                       r"3, 4, 5, 6, \.\.\.\]\)$"),
    ("evaluate.k", 10, r"Input should be a valid list \(got 10\)$"),
    ("train.models", ["popularity", "als", "popularity"], r"models listed twice: \['popularity'\]"),
    ("train.models", ["popularity"] * (len(MODELS) + 1), rf"List should have at most {len(MODELS)} items"),
], ids=["k_twice", "k_twice_two", "k_empty", "k_too_many", "k_scalar", "models_twice", "models_too_many"])
def test_lists_that_are_sets_refuse_duplicates_and_are_bounded(tmp_path: Path, key: str, value: Any,
                                                               expected: str) -> None:
    msg = load_with(tmp_path, key, value)
    assert re.search(key_line(key) + expected, msg, re.M), msg


@pytest.mark.parametrize("index, value, expected", [
    (1, True, r"Input should be a valid integer \(got True\)$"),
    (1, 2.5, r"Input should be a valid integer \(got 2\.5\)$"),
    (1, 0, r"Input should be greater than 0 \(got 0\)$"),
    (1, 10**6, r"Input should be less than or equal to 1000 \(got 1000000\)$"),
])
def test_every_cut_off_is_a_bounded_int(tmp_path: Path, index: int, value: Any, expected: str) -> None:
    msg = load_with(tmp_path, "evaluate.k", [10, value])
    assert re.search(key_line(f"evaluate.k.{index}") + expected, msg, re.M), msg


# --------------------------------------------------------------------------- the messages stay short


def test_many_errors_are_listed_up_to_a_limit(tmp_path: Path) -> None:
    raw = copy.deepcopy(BASE)
    raw["train"].update({f"bad{i}": i for i in range(MAX_ERRORS + 7)})
    with pytest.raises(ParamsError) as err:
        parse_params(raw, tmp_path / "p.yaml")
    lines = str(err.value).splitlines()
    assert lines[0] == f"{tmp_path / 'p.yaml'}: invalid parameters:"
    assert lines[1:-1] == [f"  train.bad{i}: unknown key (misspelled?) (got {i})" for i in range(MAX_ERRORS)]
    assert lines[-1] == "  ... and 7 more"


@pytest.mark.parametrize("value", [list(range(50_000)), {"a" * 10_000: [1] * 10_000}, "y" * 1_000_000, 7**5000,
                                   [[[[[[1]]]]]] * 1000])
def test_a_huge_value_is_cut_in_the_message(tmp_path: Path, value: Any) -> None:
    with pytest.raises(ParamsError) as err:
        parse_params(mutate("train.als.factors", value), tmp_path / "p.yaml")
    line = str(err.value).splitlines()[1]
    assert line.startswith("  train.als.factors: ") and len(line) < 250, line
    if not isinstance(value, dict):  # a mapping given for a value is not shown
        assert re.search(r"\(got .{1,%d}\)$" % MAX_VALUE_CHARS, line), line


@pytest.mark.parametrize("key, shown", [("k" * 5000, r"k{40,}\.\.\."), ("two\nlines", r"'two\\nlines'"),
                                        (7, r"7"), (None, r"None")])
def test_an_odd_unknown_key_is_shown_cut_and_on_one_line(tmp_path: Path, key: Any, shown: str) -> None:
    raw = copy.deepcopy(BASE)
    raw["train"][key] = 1
    with pytest.raises(ParamsError) as err:
        parse_params(raw, tmp_path / "p.yaml")
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and re.match(rf"^  train\.{shown}: ", lines[1]) and len(lines[1]) < 200, lines


def test_model_params_given_directly_are_strict_too() -> None:
    """``build_model`` validates with the same schema as params.yaml (no bool -> int, no inf, bounds)."""
    from musicrec.models.factory import build_model, default_params

    with pytest.raises(ValueError, match=r"^train\.als\.factors: Input should be a valid integer \(got True\)$"):
        build_model("als", {**default_params("als"), "factors": True}, seed=0)
    with pytest.raises(ValueError, match=r"^train\.ease\.l2: Input should be a finite number \(got inf\)$"):
        build_model("ease", {**default_params("ease"), "l2": float("inf")}, seed=0)
    with pytest.raises(ValueError, match=r"^train\.itemknn\.k: Input should be less than or equal to 10000 "
                                         r"\(got 100000000000000000000\)$"):
        build_model("itemknn", {**default_params("itemknn"), "k": 10**20}, seed=0)


# --------------------------------------------------------------------------- through a stage script


STAGE_CASES = [
    ("alias_bomb", lambda t: t.replace("  popularity: {}", f"  popularity: {{bombs: {bomb()}}}"),
     r"line \d+, column 24: refused: YAML anchors and aliases"),
    ("duplicate_section", lambda t: t + "clean:\n  max_playcount: 5\n", r"refused: key 'clean' is given twice"),
    ("utf16", lambda t: t.encode("utf-16"), r"is UTF-16 text"),
    ("bool_chunk_rows", lambda t: t.replace("chunk_rows: 500000", "chunk_rows: true"),
     r"data\.chunk_rows: Input should be a valid integer \(got True\)"),
    ("huge_max_playcount", lambda t: t.replace("max_playcount: 100000 ", "max_playcount: 100000000000000000000 "),
     r"clean\.max_playcount: Input should be less than or equal to 1000000000"),
    ("inf_alpha", lambda t: t.replace("alpha: 10.0", "alpha: .inf"), r"train\.als\.alpha: Input should be a finite"),
    ("blocksize_lots", lambda t: t.replace("blocksize: 64MB", "blocksize: lots"),
     r"dask\.blocksize: must be a size from 1MB to 1GiB"),
    ("k_twice", lambda t: t.replace("k: [5, 10, 20, 50]", "k: [5, 10, 10, 50]"), r"evaluate\.k: cut-offs listed twice"),
]


@pytest.mark.parametrize("stage", ["clean", "transform"])
@pytest.mark.parametrize("name, edit, expected", STAGE_CASES, ids=[c[0] for c in STAGE_CASES])
def test_stage_with_hostile_params_exits_2_and_keeps_previous_outputs(tmp_path: Path, stage: str, name: str,
                                                                      edit: Any, expected: str) -> None:
    params = tmp_path / "params.yaml"
    data = edit(TEXT)
    params.write_bytes(data if isinstance(data, bytes) else data.encode())
    out = tmp_path / "previous"
    out.mkdir()
    (out / "part.0.parquet").write_bytes(b"previous output")
    report = tmp_path / "report.json"
    report.write_text("{}")
    args = {"clean": ["--input", str(tmp_path / "raw"), "--out", str(out), "--report", str(report)],
            "transform": ["--interim", str(tmp_path / "interim"), "--out-plays", str(out), "--out-items",
                          str(tmp_path / "items.parquet"), "--report", str(report)]}[stage]
    res = _run_stage(f"{stage}.py", params, tmp_path, *args)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and res.stdout == "", res.stderr
    err = " ".join(res.stderr.split())
    assert str(params) in err and re.search(expected, err), err
    assert len(res.stderr) < 1000 and "\n\n" not in res.stderr.strip(), res.stderr
    assert [p.name for p in out.iterdir()] == ["part.0.parquet"] and (out / "part.0.parquet").read_bytes() == \
        b"previous output" and report.read_text() == "{}"


@pytest.mark.parametrize("stage, args", [
    ("generate", ["--out", "previous"]),
    ("interactions", ["--plays", "plays", "--out", "previous", "--report", "report.json"]),
    ("validate", ["--out", "previous"]),
    ("catalog", ["--matrices", "m", "--items", "i", "--out", "previous"]),
    ("train", ["--model", "popularity", "--matrices", "m", "--items", "i", "--out", "previous", "--report",
               "report.json"]),
    ("evaluate", ["--model", "popularity", "--matrices", "m", "--items", "i", "--model-dir", "previous", "--out", "e"]),
    ("compare", ["--evaluation", "e", "--matrices", "m", "--items", "i", "--models", "previous", "--catalog", "c", "--metrics",
                 "report.json", "--details", "d.json", "--plots", "plots", "--report", "r.md", "--figures", "f"]),
], ids=["generate", "interactions", "validate", "catalog", "train", "evaluate", "compare"])
def test_every_stage_refuses_hostile_params_in_one_paragraph(tmp_path: Path, stage: str, args: list[str]) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(TEXT.replace("  popularity: {}", f"  popularity: {{bombs: {bomb()}}}"))
    (tmp_path / "previous").mkdir()
    (tmp_path / "previous" / "kept").write_text("previous output")
    res = _run_stage(f"{stage}.py", params, tmp_path, *args)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert re.fullmatch(rf"musicrec {stage}: error: {re.escape(str(params))}: line \d+, column 24: {ALIASES}",
                        " ".join(res.stderr.split())), res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "previous"]
    assert [p.name for p in (tmp_path / "previous").iterdir()] == ["kept"]


def test_the_params_file_reader_imports_only_yaml_and_pydantic():
    """Every stage reads params.yaml first: musicrec.params_file pulls in no other musicrec module and no data library."""
    code = ("import sys, musicrec.params_file; print(sorted(m for m in sys.modules if m.startswith('musicrec')), "
            "[m for m in ('numpy', 'pandas', 'scipy', 'dask', 'mlflow') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['musicrec', 'musicrec.errors', 'musicrec.params_file'] []"
