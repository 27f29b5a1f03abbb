"""``python -m musicrec.tuning``: tune a model, print or run the winner as a DVC experiment, or expand a preset.

    python -m musicrec.tuning tune --model als --trials 50 [--preset hetrec_lastfm_2k] [--apply print|run]
    python -m musicrec.tuning preset hetrec_lastfm_2k        # the -S arguments of `dvc exp run`, one per line
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from musicrec.pipeline.runner import run_stage


def _params(params_path: Path, preset: str | None) -> tuple[Any, dict[str, Any]]:
    from musicrec.config import parse_params
    from musicrec.params_file import read_params_file
    from musicrec.tuning.presets import load_preset, merge

    values = load_preset(preset, params_path=params_path) if preset else {}
    return parse_params(merge(read_params_file(params_path), values), params_path), values


def cmd_preset(a: argparse.Namespace) -> None:
    from musicrec.params_file import read_params_file
    from musicrec.tuning.presets import load_preset, set_args

    args = set_args(load_preset(a.name, params_path=a.params), read_params_file(a.params))
    # one shell word per line: `make exp` reads them with xargs
    print("\n".join(shlex.quote(x) for x in args))


def cmd_tune(a: argparse.Namespace) -> None:
    import pandas as pd

    from musicrec.errors import reading
    from musicrec.pipeline.interactions import load_interactions
    from musicrec.tuning.presets import set_args, write_preset
    from musicrec.tuning.study import apply_values, study_name, tune

    params, preset = _params(a.params, a.preset)
    inter = load_interactions(a.matrices)
    items = None
    if a.items.is_file():
        with reading(a.items, "run the transform stage first"):
            items = pd.read_parquet(a.items)
    name = a.study or study_name(params, a.model)
    out_dir = a.out or Path("reports/tuning") / name
    print(f"tune: study {name}: {a.trials} more trials of {a.model} on {a.matrices} "
          f"({inter.train.shape[0]:,} users x {inter.train.shape[1]:,} items), selecting on validation", flush=True)
    result = tune(params, a.model, inter, trials=a.trials, items=items, storage=a.storage, name=name,
                  timeout_s=a.timeout, out_dir=out_dir, progress=not a.no_progress)
    print(f"tune: best trial {result.best_trial} of {result.trials} ({result.completed} completed, "
          f"{result.pruned} pruned): {result.metric} {result.best_value:.4f}")
    print(f"tune: best train.{a.model}: {result.best_params}")
    print(f"tune: wrote {', '.join(str(f) for f in result.files)}")
    values = apply_values(result, params, preset)
    from musicrec.params_file import read_params_file

    command = ["dvc", "exp", "run", *set_args(values, read_params_file(a.params))]
    if a.write_preset:
        write_preset(a.write_preset, values, f"tuned by `python -m musicrec.tuning tune --model {a.model}`: study "
                     f"{name}, best trial {result.best_trial}, {result.metric} {result.best_value:.4f}")
        print(f"tune: wrote preset {a.write_preset} (apply it with: make exp PRESET={a.write_preset})")
    print("tune: the winner as a DVC experiment (test metrics in reports/metrics.json):")
    print("  " + shlex.join(command))
    if a.apply == "run":
        sys.stdout.flush()
        subprocess.run(command, check=True)


def main(argv: list[str] | None = None) -> None:
    from musicrec.tuning.space import tunable_models

    ap = argparse.ArgumentParser(prog="python -m musicrec.tuning", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tune", help="Bayesian search over a model's space on the validation split")
    t.add_argument("--model", required=True, choices=tunable_models())
    t.add_argument("--trials", type=int, default=50)
    t.add_argument("--params", type=Path, default=Path("params.yaml"))
    t.add_argument("--preset", help="params/presets/<name>.yaml (or a path) applied over --params")
    t.add_argument("--matrices", type=Path, default=Path("data/processed/matrices"),
                   help="the built interactions (the interactions stage's output for these params)")
    t.add_argument("--items", type=Path, default=Path("data/processed/items.parquet"))
    t.add_argument("--study", help="study name (default: <model>-<source>-<digest of the data params>)")
    t.add_argument("--storage", help="Optuna storage URL (default: sqlite optuna.db next to mlflow.db)")
    t.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    t.add_argument("--out", type=Path, help="plots and best.json (default: reports/tuning/<study>)")
    t.add_argument("--write-preset", type=Path, help="write the winner (and --preset) as a preset YAML")
    t.add_argument("--apply", choices=("print", "run"), default="print",
                   help="print (default) or run the winner's `dvc exp run -S ...`")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=cmd_tune)
    p = sub.add_parser("preset", help="print a preset's `dvc exp run -S` arguments, one per line")
    p.add_argument("name")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.set_defaults(func=cmd_preset)
    a = ap.parse_args(argv)
    if getattr(a, "trials", 1) < 1:
        ap.error("--trials must be at least 1")
    run_stage(lambda: a.func(a), name="tune")


if __name__ == "__main__":
    main()
