"""DVC stage `validate`: check params.yaml and the raw source folder before any stage removes its outputs."""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from musicrec.pipeline.runner import EXIT_USER_ERROR, run_stage  # noqa: E402


def main() -> None:
    from musicrec.config import load_params
    from musicrec.pipeline.validate import GENERATED_FOLDER, run

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True, help="folder for the check marker and the per-model sections")
    ap.add_argument("--generated", default=GENERATED_FOLDER, type=pathlib.Path,
                    help="the folder the generate stage writes (need not exist yet)")
    args = ap.parse_args()
    p = load_params(args.params)
    folder = run(p, pathlib.Path(args.params).absolute().parent, pathlib.Path(args.out), args.generated)
    print(f"validate: params.yaml is valid; data.source {p.data.source} reads {folder}/")


if __name__ == "__main__":
    try:
        run_stage(main, "validate")
    except SystemExit as done:
        import os

        from musicrec.pipeline.validate import EXPERIMENT_ENV

        if done.code == EXIT_USER_ERROR and EXPERIMENT_ENV in os.environ:  # under `dvc exp run`: say how to undo -S
            from musicrec.pipeline.validate import RESTORE_HINT

            print(RESTORE_HINT, file=sys.stderr)
        raise
