"""The whole pipeline in process, on one folder: generate -> clean -> transform -> interactions -> train -> evaluate.

:func:`run_local` runs the stages' package functions from one :class:`~musicrec.config.Params`,
in the order of ``dvc.yaml``, writing each step's outputs under :class:`LocalPaths` (the layout of
``dvc.yaml`` by default) and returning what each step produced in a :class:`LocalRun`. ``start`` and
``stop`` pick a contiguous run of steps; a step that is not run in process (before ``start``) is read
back from its files. For tests, studies (:mod:`musicrec.evaluation.cold_start`) and benchmarks that
need the pipeline's data without ``dvc repro``; no stage imports it. Not run: the MLflow tracking and
the compare stage's report files. The train and evaluate steps cover every model of ``train.models``
in one call (the ``train@<model>`` / ``evaluate@<model>`` stages' functions, model by model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

    from musicrec.config import Params
    from musicrec.ingest.inputs import InputPolicy
    from musicrec.pipeline.evaluate import Assessment
    from musicrec.pipeline.interactions import BuiltInteractions, Interactions
    from musicrec.pipeline.train import Trained

Step = Literal["generate", "clean", "transform", "interactions", "train", "evaluate"]
STEPS: tuple[Step, ...] = ("generate", "clean", "transform", "interactions", "train", "evaluate")


@dataclass(frozen=True)
class LocalPaths:
    """Where each step reads and writes (the names of ``dvc.yaml``'s outs)."""

    raw: Path        # the raw source folder (generate writes it; clean reads it)
    interim: Path    # clean's output folder
    plays: Path      # transform's plays folder
    items: Path      # transform's items.parquet
    matrices: Path   # interactions' output folder
    models: Path     # train's models folder

    @classmethod
    def under(cls, root: Path | str, raw: Path | str | None = None, source: str = "synthetic") -> "LocalPaths":
        """The ``dvc.yaml`` layout under ``root``; ``raw`` defaults to ``root/data/raw/<source>``."""
        data = Path(root) / "data"
        return cls(raw=Path(raw) if raw is not None else data / "raw" / source, interim=data / "interim",
                   plays=data / "processed/plays", items=data / "processed/items.parquet",
                   matrices=data / "processed/matrices", models=data / "models")


@dataclass
class LocalRun:
    """What the steps that ran returned (``None``: the step did not run in process)."""

    paths: LocalPaths
    generate: dict[str, Any] | None = None       # write_synthetic's summary
    clean: dict[str, Any] | None = None          # the data-quality report
    transform: dict[str, Any] | None = None      # the transform report
    built: "BuiltInteractions | None" = None     # maps, split parts, report
    trained: "list[Trained] | None" = None
    assessment: "Assessment | None" = None

    def interactions(self) -> "Interactions":
        """The interactions of this run: in memory when the step ran, else read from ``paths.matrices``."""
        from musicrec.pipeline.interactions import load_interactions

        return self.built.interactions() if self.built is not None else load_interactions(self.paths.matrices)

    def items(self) -> "pd.DataFrame":
        """The transform's items table."""
        import pandas as pd

        from musicrec.errors import reading

        with reading(self.paths.items, "run the transform step first"):
            return pd.read_parquet(self.paths.items)


def params_for(seed: int, source: str = "synthetic", **sections: dict[str, Any]) -> "Params":
    """A validated :class:`~musicrec.config.Params` from section dicts, for an in-process run.

    The sections that ``params.yaml`` must have but a run may not use get placeholders when not
    given: ``generate`` (read only for ``data.source: synthetic``) and ``train`` (popularity).
    """
    from musicrec.config import Params

    data = {"source": source, **sections.pop("data", {})}
    sections.setdefault("generate", {"n_tracks": 1, "n_users": 1, "n_plays": 1, "n_artists": 1})
    sections.setdefault("train", {"models": ["popularity"]})
    return Params.model_validate({"seed": seed, "data": data, **sections})


def run_local(params: "Params", paths: LocalPaths, *, start: Step = "generate", stop: Step = "evaluate",
              policy: "InputPolicy | None" = None) -> LocalRun:
    """Run the steps ``start`` .. ``stop`` (inclusive) of :data:`STEPS` in process.

    ``policy`` is the clean step's input policy (default: ``ingest.inputs.DEFAULT_POLICY``). The
    generate step runs only for ``data.source: synthetic``. Each step writes the files its stage
    writes (outputs atomically, as the stages do), so a later call can ``start`` after it.
    """
    if STEPS.index(start) > STEPS.index(stop):
        raise ValueError(f"start={start!r} comes after stop={stop!r} (the steps are {', '.join(STEPS)})")
    steps = STEPS[STEPS.index(start):STEPS.index(stop) + 1]
    run = LocalRun(paths)
    if "generate" in steps and params.data.source == "synthetic":
        from musicrec.pipeline import generate

        run.generate = generate.run(params, paths.raw)
    if "clean" in steps:
        from musicrec.ingest.inputs import DEFAULT_POLICY
        from musicrec.pipeline.clean import CleanConfig, clean

        run.clean = clean(params.data.source, paths.raw, paths.interim, CleanConfig.from_params(params),
                          policy or DEFAULT_POLICY)
    if "transform" in steps:
        from musicrec.pipeline.transform import run_transform

        run.transform = run_transform(paths.interim, paths.plays, paths.items, params.transform, params.dask)
    if "interactions" in steps:
        from musicrec.pipeline.interactions import PlaysParts, build_interactions, save_interactions

        run.built = build_interactions(PlaysParts.from_dir(paths.plays), params.interactions, params.seed)
        save_interactions(paths.matrices, run.built)
    if "train" in steps:
        from musicrec.pipeline.train import refit_k, save_models, train_all

        inter, items = run.interactions(), run.items()
        run.trained = train_all(inter, items, params.train, params.seed, refit_k(params))
        save_models(paths.models, run.trained, inter, items, source=params.data.source)
    if "evaluate" in steps:
        from musicrec.pipeline.evaluate import assess_with_params

        inter, items = run.interactions(), run.items()
        if run.trained is not None:
            models = {t.name: t.model for t in run.trained}
            refitted = {t.name: t.validation for t in run.trained if t.validation is not None}
        else:
            from musicrec.models.factory import load_model

            if params.evaluate.refit_on_validation:
                raise ValueError("evaluate.refit_on_validation: the models of a folder carry no validation metrics "
                                 "of their train fit; run from the train step (start='train' or earlier)")
            models = {name: load_model(paths.models / name) for name in params.train.models}
            refitted = None
        run.assessment = assess_with_params(params, models, inter, items, refitted)
    return run
