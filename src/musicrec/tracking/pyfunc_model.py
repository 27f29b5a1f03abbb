"""A trained musicrec model as an MLflow ``pyfunc`` model, logged as "models from code" (nothing pickled).

MLflow copies this file into the logged model and runs it when the model is loaded
(``mlflow.pyfunc.load_model``, ``mlflow models serve``); :func:`mlflow.models.set_model` says which
object serves. The model's only artifact, ``musicrec``, is a models folder with one model
(``<name>/model.json`` + arrays, no pickle), the id maps and catalogue, and ``history/`` (the users'
rows at query time), which :class:`musicrec.serving.recommender.ModelServer` loads.

Input: a frame with ``n`` and, per row, either ``user_id`` (a known user) or ``liked_ids`` (track
ids a new listener likes). Output: one row per recommendation, ``request`` (the input row),
``rank``, ``item_id``, ``name``, ``artist``, ``score`` and ``why``. Bad ids, a bad ``n`` or a row
with neither or both of ``user_id`` / ``liked_ids`` raise a ``ServingError`` naming the row.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import mlflow.pyfunc
from mlflow.models import set_model

ARTIFACT = "musicrec"      # the artifact key: the models folder
HISTORY = "history"        # its sub-folder of user rows
OUTPUT_COLUMNS = ("request", "rank", "item_id", "name", "artist", "score", "why")


def signature() -> Any:
    """The model signature (input and output schema)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    inputs = Schema([ColSpec(DataType.string, "user_id", required=False),
                     ColSpec(Array(DataType.string), "liked_ids", required=False),
                     ColSpec(DataType.long, "n", required=False)])
    outputs = Schema([ColSpec(DataType.long, "request"), ColSpec(DataType.long, "rank"),
                      ColSpec(DataType.string, "item_id"), ColSpec(DataType.string, "name", required=False),
                      ColSpec(DataType.string, "artist", required=False), ColSpec(DataType.double, "score"),
                      ColSpec(DataType.string, "why")])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _missing(v: Any) -> bool:
    """None, NaN (a missing cell of a frame) or a blank string."""
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


warnings.filterwarnings("ignore", message=r".*type hints to the `predict` method", category=UserWarning)


class MusicrecModel(mlflow.pyfunc.PythonModel):
    """Recommendations of one trained model (see the module docstring).

    ``predict`` has no type hints on purpose: MLflow would read them as a second schema
    (the signature is :func:`signature`); its "add type hints" warning is silenced below.
    """

    def load_context(self, context):  # noqa: ANN001, ANN201
        from pathlib import Path

        from musicrec.serving.recommender import ModelServer

        folder = Path(context.artifacts[ARTIFACT])
        self.server = ModelServer.load(folder, None, matrices_dir=folder / HISTORY)

    def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
        import pandas as pd

        from musicrec.serving.artifacts import ServingError

        frames = []
        rows = model_input.to_dict(orient="records") if hasattr(model_input, "to_dict") else list(model_input)
        for i, row in enumerate(rows):
            user, liked, n = row.get("user_id"), row.get("liked_ids"), row.get("n")
            n = 10 if _missing(n) else int(n)
            has_user, has_liked = not _missing(user), liked is not None and len(liked) > 0
            if has_user == has_liked:
                raise ServingError(f"input row {i}: give either user_id or liked_ids (got "
                                   f"{'both' if has_user else 'neither'})")
            df = (self.server.recommend_user(str(user), n) if has_user
                  else self.server.recommend_liked([str(t) for t in liked], n))
            frames.append(df.assign(request=i))
        if not frames:
            return pd.DataFrame(columns=list(OUTPUT_COLUMNS))
        return pd.concat(frames, ignore_index=True)[list(OUTPUT_COLUMNS)]


set_model(MusicrecModel())
