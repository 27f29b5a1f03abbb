"""Presets (issue #15): params/presets/<name>.yaml validated and turned into `dvc exp run -S` arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from musicrec.params_file import ParamsError, read_params_file
from musicrec.tuning.presets import available, flatten, load_preset, merge, preset_path, set_args

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("name", available(REPO))
def test_every_shipped_preset_validates(name):
    from musicrec.ingest import SOURCES

    values = load_preset(name, params_path=REPO / "params.yaml", root=REPO)
    assert values["data.source"] in SOURCES
    if name in SOURCES:  # a source's tuned settings are named after it; a protocol's (msd_...) after the protocol
        assert values["data.source"] == name


def test_there_is_a_hetrec_preset():
    assert "hetrec_lastfm_2k" in available(REPO)


def _write(tmp_path, text):
    (tmp_path / "params/presets").mkdir(parents=True)
    (tmp_path / "params/presets/p.yaml").write_text(text)
    return tmp_path


def test_a_preset_becomes_set_arguments_in_its_order(tmp_path):
    root = _write(tmp_path, "data:\n  source: hetrec_lastfm_2k\ntrain:\n  models: [popularity, ease]\n"
                            "  ease: {weighting: binary, l2: 250.0}\n  popularity: {recent_days: null}\n")
    values = load_preset("p", params_path=REPO / "params.yaml", root=root)
    assert set_args(values) == ["-S", "data.source=hetrec_lastfm_2k", "-S", 'train.models=["popularity","ease"]',
                                "-S", "train.ease.weighting=binary", "-S", "train.ease.l2=250.0",
                                "-S", "train.popularity.recent_days=null"]
    # keys params.yaml lacks get DVC's (Hydra's) + prefix, or dvc exp run refuses them
    base = read_params_file(REPO / "params.yaml")
    assert set_args(values, base)[-1] == "+train.popularity.recent_days=null"
    assert set_args(values, base)[:2] == ["-S", "data.source=hetrec_lastfm_2k"]


@pytest.mark.parametrize("text, key", [
    ("train:\n  als:\n    factor: 8\n", "train.als.factor"),
    ("trian:\n  als:\n    factors: 8\n", "trian.als.factors"),
    ("interactions:\n  weighting: log1p\n", "interactions.weighting"),
])
def test_an_unknown_key_names_the_preset_file_and_the_key(tmp_path, text, key):
    root = _write(tmp_path, text)
    with pytest.raises(ParamsError) as err:
        load_preset("p", params_path=REPO / "params.yaml", root=root)
    msg = str(err.value)
    assert str(preset_path("p", root)) in msg and key in msg and "Traceback" not in msg


def test_a_bad_value_names_the_preset_file_and_the_key(tmp_path):
    root = _write(tmp_path, "train:\n  als:\n    factors: -3\n")
    with pytest.raises(ParamsError, match=r"p\.yaml(.|\n)*train\.als\.factors"):
        load_preset("p", params_path=REPO / "params.yaml", root=root)


def test_a_missing_preset_lists_the_presets(tmp_path):
    root = _write(tmp_path, "data:\n  source: synthetic\n")
    with pytest.raises(ParamsError, match=r"nope\.yaml: preset not found .*: p\)"):
        load_preset("nope", params_path=REPO / "params.yaml", root=root)


def test_flatten_and_merge_round_trip():
    tree = {"train": {"als": {"alpha": 5.0}, "popularity": {}}, "seed": 1}
    assert flatten(tree) == {"train.als.alpha": 5.0, "train.popularity": {}, "seed": 1}
    assert merge({}, flatten(tree)) == tree


def test_the_preset_command_prints_one_shell_word_per_line(capsys, monkeypatch):
    import shlex

    from musicrec.tuning.__main__ import main

    monkeypatch.chdir(REPO)
    main(["preset", "hetrec_lastfm_2k"])
    words = [shlex.split(line)[0] for line in capsys.readouterr().out.splitlines()]
    assert words[:2] == ["-S", "data.source=hetrec_lastfm_2k"] and words[::2] == ["-S"] * (len(words) // 2)
    assert "transform.min_item_users=1" in words


def test_a_bad_preset_is_one_paragraph_and_exit_2(capsys, monkeypatch):
    from musicrec.tuning.__main__ import main

    monkeypatch.chdir(REPO)
    with pytest.raises(SystemExit) as stop:
        main(["preset", "no_such_preset"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "no_such_preset.yaml: preset not found" in err and "Traceback" not in err
