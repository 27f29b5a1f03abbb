"""Build, validate and load the registered models (:data:`musicrec.models.MODELS`), all behind one interface.

>>> model = build_model("als", params.train.model_params("als"), seed=params.seed)
>>> model.fit(train_matrix)
>>> ids, scores = model.recommend(userids, train_matrix[userids], N=10)
>>> model.save(path); model = load_model(path)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from musicrec.models.base import NotFittedError, Recommender
from musicrec.models import MODELS, model_class

MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def _check_name(name: str) -> None:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODEL_NAMES)}")


def default_params(name: str) -> dict[str, Any]:
    """The ``train.<name>`` defaults (the model's ``Params``)."""
    _check_name(name)
    return MODELS[name].Params().model_dump()


def validate_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Validate ``params`` against the ``train.<name>`` schema; errors name each key."""
    _check_name(name)
    if not isinstance(params, dict):
        raise ValueError(f"train.{name}: params must be a mapping (got {type(params).__name__})")
    try:
        return MODELS[name].Params.model_validate(params).model_dump()
    except ValidationError as err:
        from musicrec.params_file import describe_validation_errors

        raise ValueError("; ".join(describe_validation_errors(err, prefix=f"train.{name}"))) from None


def build_model(
    name: str,
    params: dict[str, Any],
    *,
    seed: int,
    num_threads: int = 0,
    component_params: dict[str, dict[str, Any]] | None = None,
) -> Recommender:
    """An unfitted model from its ``train.<name>`` params (``Params.train.model_params(name)``).

    ``component_params`` (the hybrids only: models with components) gives the
    params of the models it is built from (key: the model name,
    :func:`component_names`); absent ones use the defaults.
    """
    clean = validate_params(name, params)
    cls = model_class(name)
    if cls.has_components:
        return cls.from_params(clean, seed=seed, num_threads=num_threads, component_params=component_params)
    if component_params is not None:
        raise ValueError(f"component_params is only accepted by the hybrid models, those with components "
                         f"(got model {name!r})")
    return cls.from_params(clean, seed=seed, num_threads=num_threads)


def component_names(name: str, params: dict[str, Any]) -> tuple[str, ...]:
    """The registered models that model ``name`` with ``params`` is built from (empty for most models)."""
    return model_class(name).component_names(validate_params(name, params))


def load_model(directory: Path | str, *, num_threads: int = 0) -> Recommender:
    """Load any model saved with ``Recommender.save`` (:meth:`Recommender.load`).

    A missing, tampered or corrupt file raises ValueError naming the file.
    """
    return Recommender.load(directory, num_threads=num_threads)


__all__ = [
    "MODEL_NAMES",
    "NotFittedError",
    "Recommender",
    "build_model",
    "component_names",
    "default_params",
    "load_model",
    "validate_params",
]
