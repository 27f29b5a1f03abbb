"""What the notebooks share: the repository root from any working directory, the MLflow store,
one colour per model and numbers formatted for people.

>>> from musicrec import notebook
>>> root = notebook.repo_root()           # the folder holding dvc.yaml, walking up from the cwd
>>> notebook.mlflow_uri(root)             # $MLFLOW_TRACKING_URI when set, else sqlite:///<root>/mlflow.db
>>> notebook.model_colors(["als", "popularity"])   # {"als": "#d62728", ...} (the model registry's colours)
>>> notebook.show_numbers()               # pandas prints 30,000 and 0.1458, not 3.000000e+04

No pipeline logic: the notebooks read what the stages wrote.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from musicrec.errors import MissingInputError
from musicrec.formatting import number, pvalue

MARKER = "dvc.yaml"
__all__ = ["repo_root", "data_dir", "reports_dir", "mlflow_uri", "model_colors", "show_numbers", "number",
           "pvalue"]


def repo_root(start: Path | str | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: the working directory) that holds ``dvc.yaml``."""
    here = Path.cwd() if start is None else Path(start)
    here = here.resolve()
    for folder in (here, *here.parents):
        if (folder / MARKER).is_file():
            return folder
    raise MissingInputError(f"{here}: no {MARKER} here or in any parent folder; open the notebook inside a "
                            "musicrec checkout, or set DATA_DIR / REPORTS_DIR in its parameters cell")


def data_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "data"


def reports_dir(root: Path | None = None) -> Path:
    return (root or repo_root()) / "reports"


def mlflow_uri(root: Path | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` when set (a tracking server, or another store), else the pipeline's ``mlflow.db``."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env:
        return env
    return f"sqlite:///{(root or repo_root()) / 'mlflow.db'}"


def model_colors(names: Iterable[str]) -> dict[str, str]:
    """Each model's colour (``ModelSpec.color``, the same in the report figures and the DVC plots)."""
    from musicrec.models import model_color

    return {n: model_color(n) for n in names}


def show_numbers() -> None:
    """Make pandas print floats for people: thousands separators, 4 decimals, no scientific notation."""
    import pandas as pd

    pd.set_option("display.float_format", number)
