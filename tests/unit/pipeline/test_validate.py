"""pipeline.validate: the first stage checks the params' source folder and writes each model's fit sections."""

import json

import pytest

from musicrec.errors import MissingInputError
from musicrec.models import MODELS
from musicrec.pipeline.local import params_for
from musicrec.pipeline.validate import CHECKED, CHECKED_TEXT, MODELS_DIR, check_source, fit_sections, run


def test_fit_sections_name_what_each_fit_reads() -> None:
    t = params_for(1, train={"models": ["popularity"], "hybrid": {"collaborative": "bpr"}}).train
    assert fit_sections(t, "als") == ["als"]
    assert fit_sections(t, "content") == ["content"]
    assert fit_sections(t, "hybrid") == ["hybrid", "bpr", "content"]


def test_a_missing_real_source_folder_is_named_with_the_valid_sources(tmp_path) -> None:
    from musicrec.ingest import SOURCES

    with pytest.raises(MissingInputError) as err:
        check_source(params_for(1, source="kaggle"), tmp_path)
    msg = str(err.value)
    assert "data.source" in msg and "data/raw/kaggle/" in msg
    assert all(name in msg for name in SOURCES)
    (tmp_path / "data/raw/kaggle").mkdir(parents=True)
    assert str(check_source(params_for(1, source="kaggle"), tmp_path)) == "data/raw/kaggle"
    # the generate stage writes the synthetic folder: it need not exist yet, unless raw_root points elsewhere
    assert str(check_source(params_for(1), tmp_path / "empty")) == "data/raw/synthetic"
    with pytest.raises(MissingInputError, match="The generate stage writes data/raw/synthetic/"):
        check_source(params_for(1, data={"raw_root": "elsewhere"}), tmp_path)


def test_outputs_change_only_where_a_model_reads_the_changed_section(tmp_path) -> None:
    base = {"models": ["popularity", "als", "hybrid"], "hybrid": {"collaborative": "als"}}
    run(params_for(1, train=base), tmp_path, tmp_path / "a")
    run(params_for(1, train={**base, "als": {"factors": 8}}), tmp_path, tmp_path / "b")
    read = {d: {p.stem: p.read_bytes() for p in (tmp_path / d / MODELS_DIR).glob("*.json")} for d in ("a", "b")}
    assert set(read["a"]) == set(MODELS), "one file per registered model, trained or not"
    # the hybrid (collaborative: als) and the ensemble (default members als, ease, rp3beta) fit an ALS too
    assert {m for m in MODELS if read["a"][m] != read["b"][m]} == {"als", "hybrid", "ensemble"}
    assert json.loads(read["b"]["hybrid"])["train.als"]["factors"] == 8
    for d in ("a", "b"):
        # constant: the stages that depend on it rerun for their own changes only
        assert (tmp_path / d / CHECKED).read_text() == CHECKED_TEXT
