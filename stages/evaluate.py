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
    from musicrec.evaluation.report import write_provenance
    from musicrec.tracking.run import RunInputs, pipeline_run

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--matrices", required=True)
    ap.add_argument("--items", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--details", required=True)
    ap.add_argument("--plots", required=True, help="folder for the DVC plots files")
    ap.add_argument("--report", required=True)
    ap.add_argument("--figures", required=True)
    args = ap.parse_args()
    p = load_params(args.params)
    paths = EvaluatePaths(**{f.name: pathlib.Path(getattr(args, f.name)) for f in dataclasses.fields(EvaluatePaths)})
    metrics = run(p, paths)
    # MLflow: the one block (provenance into the report, then the run's params, metrics, datasets, models)
    inputs = RunInputs(params_file=pathlib.Path(args.params), matrices=paths.matrices, items=paths.items,
                       models=paths.models, reports=[paths.metrics, paths.details, paths.plots, paths.report,
                                                     paths.figures])
    with pipeline_run(p, pathlib.Path.cwd(), inputs) as mlrun:
        write_provenance(paths.report, mlrun.provenance)
        mlrun.log_results(metrics)
    k = p.evaluate.main_k
    print("evaluate: " + ", ".join(f"{n} ndcg@{k}={m[f'ndcg@{k}']:.4f}" for n, m in metrics.items()))


if __name__ == "__main__":
    run_stage(main, "evaluate")
