"""DVC stage `train`: fit every model in `train.models` and save them (no pickle)."""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from musicrec.pipeline.runner import run_stage, set_thread_env  # noqa: E402

set_thread_env()


def main() -> None:
    from musicrec.config import load_params
    from musicrec.pipeline.train import load_inputs, run

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--matrices", required=True)
    ap.add_argument("--items", required=True)
    ap.add_argument("--out", required=True, help="models folder")
    ap.add_argument("--report", required=True)
    args = ap.parse_args()
    p = load_params(args.params)
    inter, items = load_inputs(pathlib.Path(args.matrices), pathlib.Path(args.items))
    result = run(p.train, p.seed, inter, items, pathlib.Path(args.out), pathlib.Path(args.report),
                 source=p.data.source)
    trained = result.trained
    print("train: " + ", ".join(f"{t.name} {t.seconds:.1f}s" for t in trained))


if __name__ == "__main__":
    run_stage(main, "train")
