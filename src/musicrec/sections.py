"""The strict base every params section derives from (``params.yaml`` sections and each model's ``Params``).

Kept apart from :mod:`musicrec.config` so that a model module can declare its own
``Params`` next to its code (:mod:`musicrec.models.registry`) without importing the
loader, which in turn builds ``train`` from the model registry.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

MAX_STRING_CHARS = 4096  # PATH_MAX: the longest string any param needs (data.raw_root)


class Section(BaseModel):
    """Base of every params section: strictness and bounds that every field gets.

    Unknown keys are refused; types are strict (``true`` is not 1, ``1.5`` or ``"3"``
    not an int; an int is accepted for a float); floats must be finite; strings are at
    most :data:`MAX_STRING_CHARS` long and printable (no control characters).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False,
                              str_max_length=MAX_STRING_CHARS)

    @field_validator("*", mode="after")
    @classmethod
    def _printable(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.isprintable():
            raise ValueError("must be printable text without control characters (tabs, newlines, NUL, ...)")
        return v
