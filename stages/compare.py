"""DVC stage `compare`: every model's evaluation side by side: DVC metrics and plots, report, MLflow."""

import argparse
import dataclasses
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from musicrec.pipeline.runner import run_stage, set_thread_env  # noqa: E402

set_thread_env()


def main() -> None:
    from musicrec.config import load_params
    from musicrec.pipeline.compare import ComparePaths, run
    from musicrec.tracking.run import pipeline_run

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", required=True, help="the models folder (logged to MLflow)")
    for f in dataclasses.fields(ComparePaths):
        ap.add_argument(f"--{f.name}", required=True)
    args = ap.parse_args()
    p = load_params(args.params)
    paths = ComparePaths(**{f.name: pathlib.Path(getattr(args, f.name)) for f in dataclasses.fields(ComparePaths)})
    result = run(p, paths)
    # the MLflow block (one run per pipeline run; the run id is not kept in a file)
    with tempfile.TemporaryDirectory() as tmp, \
            pipeline_run(p, pathlib.Path.cwd(), run_id_file=pathlib.Path(tmp) / "run_id", new_run=True,
                         run_name="pipeline", dep_paths=[args.matrices, args.models, args.evaluation]) as mlflow:
        if mlflow is not None:
            import json

            from musicrec.tracking import logger as tracking

            tracking.log_params_flat(json.loads(p.model_dump_json()))
            tracking.log_metrics(result.all_metrics)
            tracking.log_artifacts([args.metrics, args.details, args.plots, args.report, args.figures],
                                   artifact_path="reports")
            tracking.log_model_artifacts(args.models, args.matrices)  # model/ + model/history/ (serving.download_run)
    k = p.evaluate.main_k
    print("compare: " + ", ".join(f"{n} ndcg@{k}={m[f'ndcg@{k}']:.4f}" for n, m in result.metrics.items()))


if __name__ == "__main__":
    run_stage(main, "compare")
