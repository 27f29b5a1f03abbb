"""DVC stage ``generate``: write the synthetic dataset in the Kaggle schema.

    python stages/generate.py --params params.yaml --out data/raw/synthetic
"""

import sys, pathlib  # noqa: E401

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

from musicrec.config import load_params  # noqa: E402
from musicrec.pipeline.runner import run_stage  # noqa: E402
from musicrec.pipeline import generate  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    ap.add_argument("--out", default="data/raw/synthetic", help="output directory (replaced atomically)")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    summary = generate.run(params, Path(args.out))
    print(
        f"generate: wrote {summary['rows']} plays by {summary['users']} users over "
        f"{summary['tracks']} tracks to {args.out} in {summary['seconds']:.1f}s (seed {params.seed})"
    )


if __name__ == "__main__":
    run_stage(main, "generate")
