"""Adding a model is one file plus one registry line (issue #13), shown with a tiny model that is not shipped.

The model below lives in a module written into ``tmp_path``: its ``Params`` (the
``train.<name>`` section) and the recommender are in that one file; the only other
change is its line among the registry's entries. The params schema, ``build_model``,
``load_model``, training's feature check and the hybrid's choice of collaborative
part then all know it.
"""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp

from musicrec import config
from musicrec.config import ParamsError, parse_params, train_params_model
from musicrec.models import build_model, default_params, load_model, validate_params
from musicrec.models import registry
from musicrec.models.hybrid import collaborative_models

MODEL_FILE = '''
"""Scores every item by a constant plus its popularity (an example, not shipped)."""

from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from musicrec.models.base import ArrayBundle, Recommender
from musicrec.sections import Section


class ShiftParams(Section):
    shift: float = Field(1.0, ge=0, le=10)


class ShiftRecommender(Recommender):
    name = "shift"
    Params: ClassVar[type[Section]] = ShiftParams

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


@pytest.fixture
def shift_registered(tmp_path, monkeypatch):
    """The example model file on sys.path and its one line added to the registry."""
    (tmp_path / "shift_model.py").write_text(textwrap.dedent(MODEL_FILE))
    monkeypatch.syspath_prepend(str(tmp_path))
    entries = (*registry.ENTRIES, "shift_model:ShiftRecommender")  # the one registry line
    models = registry.load_entries(entries)
    for name, cls in models.items():  # what import-time registration gives, for this test only
        monkeypatch.setitem(registry.MODELS, name, cls)
    monkeypatch.setattr(config, "TrainParams", train_params_model({n: c.Params for n, c in models.items()}))
    yield models["shift"]
    sys.modules.pop("shift_model", None)


def test_a_new_model_is_one_file_and_one_registry_line(shift_registered, tmp_path):
    assert registry.MODELS["shift"] is shift_registered
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


def test_registry_refuses_an_entry_without_its_own_name_and_params():
    with pytest.raises(TypeError, match="not a Recommender with its own name and Params"):
        registry.load_entries(("musicrec.models.base:Recommender",))
    with pytest.raises(TypeError, match="registered twice"):
        registry.load_entries(("musicrec.models.mf:ALSRecommender", "musicrec.models.mf:ALSRecommender"))


def test_every_registered_model_is_in_the_params_schema_and_the_committed_file_loads():
    assert tuple(config.TrainParams.model_fields) == ("models", *registry.MODELS)
    assert config.MODELS == tuple(registry.MODELS)
    p = parse_params(config.load_params("params.yaml").model_dump(mode="json"))
    assert set(p.train.models) <= set(registry.MODELS)
    with pytest.raises(ParamsError, match=r"train\.models\.1: Input should be 'popularity'"):
        raw = p.model_dump(mode="json")
        raw["train"]["models"] = ["popularity", "nope"]
        parse_params(raw)
