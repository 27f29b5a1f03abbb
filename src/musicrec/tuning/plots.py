"""Plots of a study: the optimisation history and the parameter importances (PNG, matplotlib backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_plots(study: Any, out_dir: Path) -> list[Path]:
    """``history.png`` and, with 2+ completed trials, ``importances.png`` in ``out_dir``; the paths written."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as ovm

    from musicrec.io import atomic_path

    out_dir.mkdir(parents=True, exist_ok=True)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    todo = [("history.png", ovm.plot_optimization_history)]
    if len(complete) >= 2 and len({tuple(sorted(t.params.items())) for t in complete}) >= 2:
        todo.append(("importances.png", ovm.plot_param_importances))
    written = []
    for name, plot in todo:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
            try:
                ax = plot(study)
            except (ValueError, RuntimeError) as err:  # e.g. importances when every drawn value is the same
                warnings.warn(f"{name}: not plotted ({err})", RuntimeWarning, stacklevel=2)
                continue
        fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        with atomic_path(out_dir / name) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
        plt.close(fig)
        written.append(out_dir / name)
    return written
