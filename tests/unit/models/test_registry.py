"""Adding a model is one file plus its registry entry (issue #13), shown with a tiny model that is not shipped.

The model's code lives in a module written into ``tmp_path``; the only other change is
its entry in the registry (:data:`musicrec.models.MODELS`: its ``Params`` section and
one ``ModelSpec`` line). The params schema, ``build_model``, ``load_model`` and the
hybrid's choice of collaborative part then all know it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from pydantic import Field

from musicrec import config
from musicrec.config import parse_params, train_params_model
from musicrec.params_file import ParamsError
from musicrec import models as registry
from musicrec.models import ModelSpec, collaborative_models
from musicrec.models.factory import build_model, default_params, load_model, validate_params
from musicrec.sections import Section

MODEL_FILE = '''
"""Scores every item by a constant plus its popularity (an example, not shipped)."""

from typing import Any

import numpy as np
from musicrec.models.base import Recommender
from musicrec.models.persist import ArrayBundle


class ShiftRecommender(Recommender):
    name = "shift"

    def __init__(self, shift: float = 1.0, *, seed: int = 0, num_threads: int = 0):
        super().__init__(seed=seed, num_threads=num_threads)
        self.shift = float(shift)
        self.scores_ = None

    def get_params(self) -> dict[str, Any]:
        return {"shift": self.shift}

    def _fit(self, X, *, item_features, item_last_ts) -> None:
        self.scores_ = (self.item_popularity + self.shift).astype(np.float32)

    def _score(self, userids, X) -> np.ndarray:
        return np.broadcast_to(self.scores_, (len(userids), self.n_items)).copy()

    def _item_similarity(self, itemids) -> np.ndarray:
        return self._score(itemids, None)

    def _get_state(self):
        return {}, {"scores": self.scores_}

    def _set_state(self, meta: dict[str, Any], arrays: ArrayBundle) -> None:
        self.scores_ = arrays.array("scores", dtype=np.float32, shape=(self.n_items,))
'''


class ShiftParams(Section):  # the registry entry: the params section ...
    shift: float = Field(1.0, ge=0, le=10)


SHIFT = ModelSpec("shift_model:ShiftRecommender", ShiftParams)  # ... and its one line in MODELS


@pytest.fixture
def shift_registered(tmp_path, monkeypatch):
    """The example model file on sys.path and its entry in the registry (for this test only)."""
    (tmp_path / "shift_model.py").write_text(textwrap.dedent(MODEL_FILE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(registry.MODELS, "shift", SHIFT)
    # config builds train's schema from the registry when it is imported: rebuild it as a new process would
    monkeypatch.setattr(config, "TrainParams", train_params_model({n: s.Params for n, s in registry.MODELS.items()}))
    yield registry.model_class("shift")
    sys.modules.pop("shift_model", None)


def test_a_new_model_is_one_file_and_one_registry_line(shift_registered, tmp_path):
    assert registry.MODELS["shift"] is SHIFT and shift_registered.name == "shift"
    assert default_params("shift") == {"shift": 1.0}
    assert validate_params("shift", {"shift": 2.5}) == {"shift": 2.5}
    with pytest.raises(ValueError, match=r"train\.shift\.shift: .*less than or equal to 10"):
        validate_params("shift", {"shift": 11})

    train = config.TrainParams.model_validate({"models": ["popularity", "shift"], "shift": {"shift": 3.0}})
    assert train.model_params("shift") == {"shift": 3.0}
    assert train.model_params("als") == default_params("als")  # the other sections keep their defaults
    with pytest.raises(ValueError, match="shfit"):
        config.TrainParams.model_validate({"models": ["popularity", "shift"], "shift": {"shfit": 3.0}})

    X = sp.csr_matrix(np.array([[1, 0, 2, 0], [0, 3, 0, 1], [1, 1, 0, 0]], dtype=np.float32))
    model = build_model("shift", train.model_params("shift"), seed=0).fit(X)
    ids, scores = model.recommend(np.arange(3), X, N=2)
    assert ids.shape == (3, 2) and np.all(np.diff(scores, axis=1) <= 0)
    model.save(tmp_path / "saved")
    again = load_model(tmp_path / "saved")
    assert type(again) is shift_registered and again.get_params() == {"shift": 3.0}
    assert np.array_equal(again.recommend(np.arange(3), X, N=2)[0], ids)
    assert "shift" in collaborative_models()  # is_collaborative defaults to True: a hybrid can blend it


def test_every_entry_names_a_class_whose_name_is_its_key(monkeypatch):
    for name in registry.MODELS:
        assert registry.model_class(name).name == name
    monkeypatch.setitem(registry.MODELS, "wrong", ModelSpec("musicrec.models.mf:ALSRecommender", Section))
    with pytest.raises(TypeError, match="registry entry 'wrong': .* has name 'als'"):
        registry.model_class("wrong")
    with pytest.raises(ValueError, match="unknown model 'nope'; expected one of popularity, itemknn"):
        registry.model_class("nope")


def test_the_registry_imports_no_model_code():
    """Every stage validates the whole params file: a model's code must not be a dependency of the data stages."""
    code = "import sys, musicrec.config; print(sorted(m for m in sys.modules if m.startswith('musicrec.models')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['musicrec.models']"


def test_every_registered_model_is_in_the_params_schema_and_the_committed_file_loads():
    assert tuple(config.TrainParams.model_fields) == ("models", *registry.MODELS)
    assert config.TrainParams.model_fields["als"].annotation is registry.ALSParams
    assert config.MODELS == tuple(registry.MODELS)
    p = parse_params(config.load_params("params.yaml").model_dump(mode="json"))
    assert set(p.train.models) <= set(registry.MODELS)
    with pytest.raises(ParamsError, match=r"train\.models\.1: Input should be 'popularity'"):
        raw = p.model_dump(mode="json")
        raw["train"]["models"] = ["popularity", "nope"]
        parse_params(raw)


# --------------------------------------------------------------------------- sources

SOURCE_FILE = '''
"""A headerless ``user<TAB>item<TAB>plays`` file (an example, not shipped)."""

from musicrec.ingest.values import empty_to_null, parse_playcount
from musicrec.ingest.contract import Catalog, find_file, plays_table, stream_plays
from musicrec.ingest.inputs import InputFile
from musicrec.ingest.keys import dedup_text
from musicrec.ingest.spec import TableSpec

SPEC = TableSpec(columns=("user", "item", "plays"), sep="\\t", header="none", description="example triplets")


def locate(input_dir):
    return InputFile(find_file(input_dir, ("triplets.tsv",), "the example triplets"))


def load_catalog(inputs, ctx):
    return Catalog(items=None)


def _build(f, checks, max_playcount):
    checks.check_id(f["user"], "user_id", None)
    checks.check_id(f["item"], "item_id", None)
    counts = parse_playcount(f["plays"], checks, max_playcount)
    name = empty_to_null(f["item"])
    return plays_table(f["user"], f["item"], counts, None, f["_line"], dedup_text(f["user"], f["item"]),
                       _name=name, _artist=name)


def iter_plays(inputs, ctx):
    yield from stream_plays(inputs, SPEC, ctx, lambda f, c: _build(f, c, ctx.max_playcount))
'''


def test_a_new_source_is_one_adapter_file_and_one_registry_line(tmp_path, monkeypatch):
    from musicrec import ingest
    from musicrec.pipeline.clean import CleanConfig, clean

    (tmp_path / "example_source.py").write_text(textwrap.dedent(SOURCE_FILE))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(ingest.SOURCES, "example", ingest.Source("example_source"))  # the one registry line
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "triplets.tsv").write_text("u1\ta\t3\nu1\tb\t1\nu2\ta\tx\nu2\tb\t2\n")
    rep = clean("example", raw, tmp_path / "interim", CleanConfig(chunk_rows=1000, max_playcount=1000, unmatched="keep"))
    (only,) = rep["files"].values()
    assert (only["kept"], only["quarantined"], only["rows_read"]) == (3, 1, 4)
    assert only["reasons"] == {"playcount_not_integer": 1}
    sys.modules.pop("example_source", None)


def test_every_source_is_in_the_params_schema():
    from musicrec import ingest

    assert config.SOURCES == tuple(ingest.SOURCES)
    assert set(config.ARTIST_LEVEL_SOURCES) == {n for n, s in ingest.SOURCES.items() if s.artist_level}
    for name in ingest.SOURCES:
        assert callable(ingest.get_adapter(name).iter_plays)


def test_each_composite_params_section_names_the_components_its_class_builds():
    """validate.fit_sections reads a hybrid's components from its params section (no model code imported)."""
    from musicrec.models import MODELS, model_class
    from musicrec.models.factory import component_names, default_params

    for name, spec in MODELS.items():
        params = default_params(name)
        built = set(component_names(name, params))
        declared = set(spec.Params(**params).components()) if hasattr(spec.Params, "components") else set()
        assert declared == built, name
        assert model_class(name).has_components == bool(built), name
