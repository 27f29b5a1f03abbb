"""The ``validate`` stage: check ``params.yaml`` and the raw source folder before any stage runs.

DVC removes a stage's outputs before running it, so a stage that only finds out that
``params.yaml`` is invalid (``dvc exp run -S train.als.factors=-1``) or that ``data.source``
names no folder (``-S data.source=hetrec``) has already deleted the previous models or
reports. Every stage with outputs depends on this stage's outputs (``generate`` and
``clean`` directly, the rest through them), so DVC runs it first; its outputs are
``persist`` (DVC leaves them in place), so when it fails nothing has been removed and
``git checkout params.yaml`` brings back a consistent workspace.

It writes (:func:`run`):

* ``checked``: a constant text, so that the stages that depend on it rerun only for
  their own changes;
* ``models/<name>.json`` for every registered model: the ``train`` sections fitting it reads
  (:func:`fit_sections`; the hybrid reads its components'), the
  ``train@<name>`` stage's dependency.
"""

from __future__ import annotations

from pathlib import Path

from musicrec.config import Params, TrainParams
from musicrec.errors import MissingInputError

CHECKED = "checked"
CHECKED_TEXT = ("params.yaml and the raw source folder were checked by the validate stage "
                "(musicrec.pipeline.validate) before any stage ran\n")
MODELS_DIR = "models"
# printed after the error when the check fails under `dvc exp run` (DVC sets EXPERIMENT_ENV for the stages of an
# experiment, and leaves its -S values in params.yaml when one fails); a plain `dvc repro` gets the error alone
EXPERIMENT_ENV = "DVC_EXP_BASELINE_REV"
RESTORE_HINT = ("musicrec validate: no stage ran and no output was removed. To undo the experiment's -S values "
                "in the workspace: `git checkout params.yaml` (then `dvc status` says the pipeline is up to date).")
GENERATED_SOURCE = "synthetic"  # written by the generate stage, not provided by the user
GENERATED_FOLDER = Path("data/raw") / GENERATED_SOURCE  # where it writes it (dvc.yaml passes ${paths.raw}/synthetic)


def check_source(params: Params, root: Path, generated: Path = GENERATED_FOLDER) -> Path:
    """The raw source folder ``<data.raw_root>/<data.source>`` (relative to ``root``); an error when it is absent.

    ``generated`` (the generate stage's output folder) need not exist yet: that stage runs before clean.
    """
    from musicrec.ingest import SOURCES

    d = params.data
    folder = Path(d.raw_root) / d.source
    if folder != Path(generated) and not (Path(root) / folder).is_dir():
        fix = ("Download the dataset into it (README: Using the real datasets) or set data.source to another of "
               f"{', '.join(SOURCES)}" if d.source != GENERATED_SOURCE else
               f"The generate stage writes {generated}/: set data.raw_root to {Path(generated).parent}")
        raise MissingInputError(f"data.source: {d.source!r} reads the folder {folder}/ (data.raw_root/data.source), "
                                f"which does not exist. {fix}")
    return folder


def fit_sections(params: "TrainParams", name: str) -> list[str]:
    """The ``train`` sections that fitting model ``name`` reads, its own first.

    A model that needs item features reads ``content`` (the features' weights); a hybrid fits
    its components itself (its params section's ``components()``), so it reads their sections.
    Imports no model code (the validate stage must not rerun when a model's code changes).
    """
    from musicrec.models import MODELS

    section = getattr(params, name)
    names = [name, *(section.components() if hasattr(section, "components") else ())]
    if MODELS[name].needs_item_features:
        names.append("content")
    return list(dict.fromkeys(names))


def model_sections(params: Params) -> dict[str, dict[str, object]]:
    """``{model: {"train.<section>": values}}`` for every registered model (what ``models/<name>.json`` holds)."""
    from musicrec.models import MODELS

    t = params.train
    return {name: {f"train.{s}": t.model_params(s) for s in fit_sections(t, name)} for name in MODELS}


def run(params: Params, root: Path, out_dir: Path, generated: Path = GENERATED_FOLDER) -> Path:
    """Check the source folder, then write the folder ``out_dir`` (:data:`CHECKED`, the per-model sections) atomically.

    ``params`` is already validated (:func:`musicrec.config.load_params`). Returns the source folder.
    """
    from musicrec.io import atomic_path, write_json, write_text

    folder = check_source(params, root, generated)
    with atomic_path(Path(out_dir), directory=True) as tmp:
        for name, sections in model_sections(params).items():
            write_json(tmp / MODELS_DIR / f"{name}.json", sections)
        write_text(tmp / CHECKED, CHECKED_TEXT)
    return folder
