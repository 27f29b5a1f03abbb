"""musicrec.notebook: the repository root from any folder, the MLflow store, colours and number display."""

from __future__ import annotations

import pandas as pd
import pytest

from musicrec import notebook
from musicrec.errors import MissingInputError


def test_repo_root_walks_up_to_dvc_yaml(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    deep = tmp_path / "notebooks" / "a" / "b"
    deep.mkdir(parents=True)
    assert notebook.repo_root(deep) == tmp_path.resolve()
    monkeypatch.chdir(deep)
    assert notebook.repo_root() == tmp_path.resolve()
    assert notebook.data_dir() == tmp_path.resolve() / "data"
    assert notebook.reports_dir() == tmp_path.resolve() / "reports"


def test_no_checkout_is_one_clear_error(tmp_path):
    with pytest.raises(MissingInputError, match="no dvc.yaml here or in any parent folder"):
        notebook.repo_root(tmp_path)


def test_mlflow_uri_prefers_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert notebook.mlflow_uri(tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert notebook.mlflow_uri(tmp_path) == "http://127.0.0.1:5000"


def test_model_colors_come_from_the_registry():
    from musicrec.models import MODELS

    assert notebook.model_colors(["als", "popularity", "unknown"]) == {
        "als": MODELS["als"].color, "popularity": MODELS["popularity"].color, "unknown": "#000000"}


def test_show_numbers_formats_pandas_floats_for_people():
    try:
        notebook.show_numbers()
        text = pd.DataFrame({"users": [30000.0], "ndcg": [0.145845]}).to_string()
    finally:
        pd.reset_option("display.float_format")
    assert "30,000" in text and "0.1458" in text and "e+04" not in text
