"""`make exp-show`: `dvc exp show` cut to what tells experiments apart.

Shown: the data source (``data.source``, always: HetRec and synthetic rows must not look
alike), ``train.models``, the params of the trained models (``train.models``) that differ
between the rows, and each trained model's test nDCG / recall and validation nDCG at
``evaluate.main_k``; sorted by the validation nDCG (tune on validation) of the last model of
``train.models`` (ALS in the default params). Hidden: the params of models that are not trained, the other
metrics (``dvc metrics show``, ``reports/evaluation.json``) and the dependencies' hashes.
Extra arguments go to ``dvc exp show`` (e.g. ``--csv``, ``-A``).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import yaml

from musicrec.models import MODELS

METRICS_FILE = "reports/metrics.json"
SHOWN_METRICS = ("ndcg", "recall", "val_ndcg")


def exp_show_args(params: dict, extra: list[str]) -> list[str]:
    """The ``dvc exp show`` command line for ``params`` (``params.yaml`` as a dict)."""
    trained = [m for m in params.get("train", {}).get("models", []) if m in MODELS]
    k = params.get("evaluate", {}).get("main_k", 10)
    names = "|".join(map(re.escape, trained)) or "(?!)"
    untrained = "|".join(map(re.escape, (m for m in MODELS if m not in trained))) or "(?!)"
    metrics = "|".join(SHOWN_METRICS)
    keep = [r"Experiment$", r"Created$", r"data\.source$", r"train\.models$",
            rf"({names})\.({metrics})@{k}$"]
    drop = [rf"train\.({untrained})\.", r".*/", rf"({names})\."]  # untrained params, dep hashes, other metrics
    sort = trained[-1] if trained else None  # the last of train.models: ALS in the default params
    args = ["exp", "show", "--only-changed", "--keep", "|".join(keep), "--drop", "|".join(drop)]
    if sort:
        args += ["--sort-by", f"{METRICS_FILE}:{sort}.val_ndcg@{k}", "--sort-order", "desc"]
    return args + extra


def main() -> None:
    try:
        params = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        sys.exit(f"exp-show: cannot read params.yaml ({' '.join(str(err).split())}); run it in the repository root")
    if not isinstance(params, dict):
        sys.exit("exp-show: params.yaml is not a mapping of sections")
    dvc = shutil.which("dvc") or "dvc"
    os.execvp(dvc, [dvc, *exp_show_args(params, sys.argv[1:])])


if __name__ == "__main__":
    main()
