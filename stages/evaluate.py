"""DVC stage `evaluate`: ranking metrics on held-out data, DVC metrics/plots, report, MLflow."""

import argparse
import dataclasses
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from musicrec.pipeline.runner import run_stage, set_thread_env  # noqa: E402

set_thread_env()


def main() -> None:
    from musicrec.config import load_params
    from musicrec.pipeline.evaluate import EvaluatePaths, run
    from musicrec.tracking.run import pipeline_run

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--matrices", required=True)
    ap.add_argument("--items", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--run-id-file", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--details", required=True)
    ap.add_argument("--plots", required=True, help="folder for the DVC plots files")
    ap.add_argument("--report", required=True)
    ap.add_argument("--figures", required=True)
    args = ap.parse_args()
    p = load_params(args.params)
    paths = EvaluatePaths(**{f.name: pathlib.Path(getattr(args, f.name)) for f in dataclasses.fields(EvaluatePaths)})
    metrics = run(p, paths)
    with pipeline_run(p, pathlib.Path.cwd(), run_id_file=pathlib.Path(args.run_id_file), new_run=False,
                      run_name="pipeline", dep_paths=[args.matrices, args.items, args.models]) as mlflow:
        if mlflow is not None:
            from musicrec.tracking import logger as tracking

            tracking.log_metrics(metrics)
            tracking.log_artifacts([args.metrics, args.details, args.plots, args.report, args.figures],
                                   artifact_path="reports")
    k = p.evaluate.main_k
    print("evaluate: " + ", ".join(f"{n} ndcg@{k}={m[f'ndcg@{k}']:.4f}" for n, m in metrics.items()))


if __name__ == "__main__":
    run_stage(main, "evaluate")
