"""DVC stage `evaluate@<model>`: one model's ranking metrics on held-out data, per user (for the compare stage)."""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from musicrec.pipeline.runner import run_stage, set_thread_env  # noqa: E402

set_thread_env()


def main() -> None:
    from musicrec.config import load_params
    from musicrec.pipeline.evaluate import run_one

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", required=True, help="a registered model name")
    ap.add_argument("--matrices", required=True)
    ap.add_argument("--items", required=True)
    ap.add_argument("--model-dir", required=True, help="the model's folder (data/models/<model>)")
    ap.add_argument("--out", required=True, help="the model's evaluation folder (data/evaluation/<model>)")
    ap.add_argument("--metrics", help="the model's DVC metrics file (reports/metrics/<model>.json)")
    ap.add_argument("--train-report", help="the train@<model> report (reports/train/<model>.json): the "
                                           "validation metrics of a model refitted on train + validation")
    args = ap.parse_args()
    p = load_params(args.params)
    part = run_one(p, args.model, pathlib.Path(args.matrices), pathlib.Path(args.items),
                   pathlib.Path(args.model_dir), pathlib.Path(args.out),
                   pathlib.Path(args.metrics) if args.metrics else None,
                   pathlib.Path(args.train_report) if args.train_report else None)
    k = p.evaluate.main_k
    print(f"evaluate: {args.model} ndcg@{k}={part.result['metrics'][f'ndcg@{k}']:.4f}")


if __name__ == "__main__":
    run_stage(main, "evaluate")
