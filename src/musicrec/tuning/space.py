"""The search space of every tunable model: one declaration per ``train.<model>`` key, in one place.

:data:`SEARCH_SPACES` maps a registered model name (:data:`musicrec.models.MODELS`) to its
tuned keys and their ranges; keys not listed keep their ``params.yaml`` (or preset) value.
A dimension with ``when`` is only searched when the keys already drawn have those values
(``bm25_k1`` / ``bm25_b`` only when ``weighting`` is ``bm25``). Every key is a field of the
model's ``Params`` section and every range lies inside its bounds (checked by
:func:`check_spaces`, run by the tests), so a trial's params always validate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Float:
    low: float
    high: float
    log: bool = False
    when: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False
    when: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    options: tuple[Any, ...]
    when: Mapping[str, Any] = field(default_factory=dict)


Dimension = Float | Int | Choice
BM25 = {"weighting": "bm25"}

SEARCH_SPACES: dict[str, dict[str, Dimension]] = {
    "als": {
        "weighting": Choice(("log1p", "bm25", "binary")),
        "bm25_k1": Float(1.0, 1000.0, log=True, when=BM25),
        "bm25_b": Float(0.0, 1.0, when=BM25),
        "factors": Int(16, 512, log=True),
        "regularization": Float(0.01, 1000.0, log=True),
        # bm25 weights run to hundreds on play counts: confidences need alphas well below 1 there
        "alpha": Float(0.01, 100.0, log=True),
        "iterations": Int(5, 30),
    },
    "itemknn": {
        "similarity": Choice(("cosine", "bm25")),
        "k": Int(10, 1000, log=True),
        "weighting": Choice(("raw", "log1p", "binary", "bm25")),
        # K1 / B serve both weighting: bm25 and similarity: bm25
        "bm25_k1": Float(0.1, 1000.0, log=True),
        "bm25_b": Float(0.0, 1.0),
    },
    "userknn": {
        "similarity": Choice(("cosine", "bm25")),
        "k": Int(10, 1000, log=True),
        "shrink": Float(0.0, 100.0),
        "weighting": Choice(("log1p", "binary", "bm25")),
        "bm25_k1": Float(0.1, 1000.0, log=True),
        "bm25_b": Float(0.0, 1.0),
    },
    "bpr": {
        "factors": Int(16, 256, log=True),
        "learning_rate": Float(1e-3, 0.3, log=True),
        "regularization": Float(1e-5, 1.0, log=True),
        "iterations": Int(20, 400, log=True),
    },
    "ease": {
        "weighting": Choice(("binary", "log1p", "bm25")),
        "bm25_k1": Float(1.0, 1000.0, log=True, when=BM25),
        "bm25_b": Float(0.0, 1.0, when=BM25),
        "l2": Float(1.0, 1e5, log=True),
    },
    "rp3beta": {
        "weighting": Choice(("binary", "log1p", "raw")),
        "alpha": Float(0.1, 2.0),
        "beta": Float(0.0, 1.0),
        "k": Int(10, 1000, log=True),
    },
    "content": {
        "weighting": Choice(("binary", "log1p")),
        "tag_weight": Float(0.0, 10.0),
        "audio_weight": Float(0.0, 10.0),
    },
}

# models whose fit runs iterations that report intermediate validation scores (pruning)
ITERATIVE = ("als",)


def tunable_models() -> tuple[str, ...]:
    return tuple(SEARCH_SPACES)


def suggest(trial: Any, model: str) -> dict[str, Any]:
    """Draw one value per active dimension of ``model``'s space from an Optuna ``trial``."""
    drawn: dict[str, Any] = {}
    for key, dim in SEARCH_SPACES[model].items():
        if any(drawn.get(k) != v for k, v in dim.when.items()):
            continue
        if isinstance(dim, Choice):
            drawn[key] = trial.suggest_categorical(key, list(dim.options))
        elif isinstance(dim, Int):
            drawn[key] = trial.suggest_int(key, dim.low, dim.high, log=dim.log)
        else:
            drawn[key] = trial.suggest_float(key, dim.low, dim.high, log=dim.log)
    return drawn


def corners(model: str) -> list[dict[str, Any]]:
    """Params at the low and the high end of every dimension (the first option of choices), for checks."""
    out = []
    for end in ("low", "high"):
        p: dict[str, Any] = {}
        for key, dim in SEARCH_SPACES[model].items():
            p[key] = dim.options[0] if isinstance(dim, Choice) else getattr(dim, end)
        out.append(p)
    return out


def check_spaces() -> None:
    """Every space names a registered model and its keys, and its ends validate (ValueError otherwise)."""
    from musicrec.models import MODELS
    from musicrec.models.factory import validate_params

    for model, space in SEARCH_SPACES.items():
        if model not in MODELS:
            raise ValueError(f"search space for unknown model {model!r}")
        unknown = set(space) - set(MODELS[model].Params.model_fields)
        if unknown:
            raise ValueError(f"search space of {model!r}: {sorted(unknown)} are not train.{model} keys")
        for key, dim in space.items():
            for k in dim.when:
                if k not in space:
                    raise ValueError(f"search space of {model!r}: {key} depends on {k}, which is not searched")
            if isinstance(dim, Choice):
                for option in dim.options:
                    validate_params(model, {key: option})
        for p in corners(model):
            validate_params(model, p)
