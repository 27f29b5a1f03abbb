"""DVC stage `train@<model>`: fit one model of `train.models` and save its folder (no pickle)."""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from musicrec.pipeline.runner import run_stage, set_thread_env  # noqa: E402

set_thread_env()


def main() -> None:
    from musicrec.config import load_params
    from musicrec.pipeline.interactions import load_inputs
    from musicrec.pipeline.train import refit_k, run_one

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", required=True, help="a registered model name (train.<model> holds its params)")
    ap.add_argument("--matrices", required=True)
    ap.add_argument("--items", required=True)
    ap.add_argument("--out", required=True, help="the model's folder (data/models/<model>)")
    ap.add_argument("--report", required=True, help="shape and fit seconds (JSON; not a DVC metric)")
    args = ap.parse_args()
    p = load_params(args.params)
    inter, items = load_inputs(pathlib.Path(args.matrices), pathlib.Path(args.items))
    result = run_one(p.train, p.seed, args.model, inter, items, pathlib.Path(args.out), pathlib.Path(args.report),
                     refit_k(p))
    print(f"train: {args.model} on {result.trained.fitted_on} {result.trained.seconds:.1f}s -> {args.out}")


if __name__ == "__main__":
    run_stage(main, "train")
