"""Trained models as MLflow Models: logged once per content, registered, the champion alias.

:func:`stage_model` gathers what one model needs to serve (its folder, the id maps and
catalogue of the models folder, the users' rows under ``history/``) into a folder whose DVC md5
is the model's content hash. :func:`log_or_reuse` logs it as a ``pyfunc`` model from code
(:mod:`musicrec.tracking.pyfunc_model`) tagged with that hash, or, when a logged model of the
experiment already has it, links that one to the run (``mlflow.log_outputs``) instead of copying
the files again. :func:`register` adds one version per run to ``musicrec-<source>`` and moves the
``champion`` alias only when the version's validation nDCG beats the current champion's.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from musicrec.tracking import pyfunc_model
from musicrec.tracking.provenance import dvc_md5

CONTENT_TAG = "musicrec_content_md5"   # on logged models: the md5 of the staged folder
CODE_TAG = "musicrec_code_md5"         # on logged models: the md5 of pyfunc_model.py (the code MLflow copied)
MODEL_NAME_TAG = "musicrec_model"      # on logged models and versions: the model's name in train.models
RUN_MODEL_TAG = "musicrec.model."      # on runs: + name -> models:/<model id> (also for reused models)
VAL_TAG = "val_metric"                 # on versions: "<metric>=<value>" the champion is chosen by
CHAMPION = "champion"
REQUIREMENTS = ("mlflow", "numpy", "pandas", "scipy", "pyarrow", "implicit")


@dataclass(frozen=True)
class LoggedModelRef:
    name: str          # the model's name (als, hybrid, ...)
    model_id: str      # the MLflow logged model (m-...)
    content_md5: str
    reused: bool       # True: an earlier run logged the same files

    @property
    def uri(self) -> str:
        return f"models:/{self.model_id}"


def registered_name(source: str) -> str:
    return f"musicrec-{source}"


def link_or_copy(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (a copy across file systems); creates its folder."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def stage_model(models_dir: Path, name: str, history_files: Iterable[Path], dest: Path) -> Path:
    """``dest`` = ``<name>/`` + the models folder's top-level files + ``history/``; returns ``dest``."""
    models_dir = Path(models_dir)
    for f in sorted((models_dir / name).rglob("*")):
        if f.is_file():
            link_or_copy(f, dest / name / f.relative_to(models_dir / name))
    for f in sorted(models_dir.iterdir()):
        if f.is_file():
            link_or_copy(f, dest / f.name)
    for f in history_files:
        link_or_copy(Path(f), dest / pyfunc_model.HISTORY / Path(f).name)
    return dest


def _requirements() -> list[str]:
    out = []
    for pkg in REQUIREMENTS:
        try:
            out.append(f"{pkg}=={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def _input_example(staged: Path) -> Any:
    import pandas as pd

    users = pd.read_parquet(staged / "users.parquet")["user_id"].astype(str)
    return pd.DataFrame({"user_id": users.iloc[:1].tolist(), "n": [5]})


def code_md5() -> str:
    from musicrec.io import md5_file

    return md5_file(Path(pyfunc_model.__file__))


def find_logged(experiment_id: str, name: str, content_md5: str) -> str | None:
    """Id of a READY logged model of the experiment named ``name`` with content ``content_md5``
    and the current :mod:`~musicrec.tracking.pyfunc_model` code (a changed wrapper is logged anew)."""
    import mlflow

    found = mlflow.search_logged_models(
        experiment_ids=[experiment_id],
        filter_string=f"name = '{name}' AND tags.{CONTENT_TAG} = '{content_md5}' "
                      f"AND tags.{CODE_TAG} = '{code_md5()}'",
        output_format="list", max_results=10)
    for m in found:
        if str(getattr(m.status, "name", m.status)).upper().endswith("READY"):
            return m.model_id
    return None


def log_or_reuse(name: str, staged: Path, experiment_id: str) -> LoggedModelRef:
    """Log the staged folder as pyfunc model ``name`` of the active run, or link the one logged before."""
    import mlflow
    from mlflow.entities import LoggedModelOutput

    md5 = dvc_md5(staged)
    assert md5 is not None, staged
    found = find_logged(experiment_id, name, md5)
    if found is not None:
        mlflow.log_outputs(models=[LoggedModelOutput(found, 0)])
        ref = LoggedModelRef(name, found, md5, reused=True)
    else:
        with warnings.catch_warnings():  # the model's schema is its signature, not predict's type hints
            warnings.filterwarnings("ignore", message=".*[Tt]ype hint", category=UserWarning)
            info = mlflow.pyfunc.log_model(
                name=name, python_model=pyfunc_model.__file__, artifacts={pyfunc_model.ARTIFACT: str(staged)},
                signature=pyfunc_model.signature(), input_example=_input_example(staged),
                pip_requirements=_requirements(), tags={CONTENT_TAG: md5, CODE_TAG: code_md5(), MODEL_NAME_TAG: name})
        ref = LoggedModelRef(name, info.model_id, md5, reused=False)
    mlflow.set_tag(RUN_MODEL_TAG + name, ref.uri)
    return ref


def register(ref: LoggedModelRef, *, source: str, run_id: str, metric: str, value: float | None,
             tracking_uri: str | None = None) -> dict[str, Any]:
    """A new version of ``musicrec-<source>`` for ``ref``; ``champion`` moves to it when ``value`` beats it.

    Returns ``{"name", "version", "champion": bool, "previous_champion": version or None}``.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    reg = registered_name(source)
    try:
        client.create_registered_model(reg, description=f"The main musicrec model trained on {source} data.")
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    tags = {MODEL_NAME_TAG: ref.name, CONTENT_TAG: ref.content_md5}
    if value is not None:
        tags[VAL_TAG] = f"{metric}={value!r}"
    mv = client.create_model_version(reg, ref.uri, run_id=run_id, tags=tags, model_id=ref.model_id,
                                     description=f"{ref.name} from run {run_id}")
    previous = best = None
    try:
        champ = client.get_model_version_by_alias(reg, CHAMPION)
        previous = champ.version
        best = metric_of(champ.tags.get(VAL_TAG), metric)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise
    wins = beats(value, best, has_champion=previous is not None)
    if wins:
        client.set_registered_model_alias(reg, CHAMPION, mv.version)
    return {"name": reg, "version": mv.version, "champion": wins, "previous_champion": previous}


def beats(value: float | None, best: float | None, *, has_champion: bool) -> bool:
    """Whether a version scoring ``value`` takes the alias from a champion scoring ``best``.

    No value (the metric is missing): never. No champion yet, or one scored on another metric
    (``best`` None): always. Otherwise only a strictly higher value: a tie keeps the champion.
    """
    if value is None or value != value:  # NaN
        return False
    return not has_champion or best is None or value > best


def metric_of(tag: str | None, metric: str) -> float | None:
    """The value of a ``<metric>=<value>`` tag when it is the same metric, else None."""
    if not tag or "=" not in tag:
        return None
    name, _, v = tag.rpartition("=")
    try:
        return float(v) if name == metric else None
    except ValueError:
        return None
