"""DVC stage `compare`: every model's evaluation side by side: DVC metrics and plots, report, MLflow."""

import argparse
import dataclasses
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from musicrec.pipeline.runner import run_stage, set_thread_env  # noqa: E402

set_thread_env()


def main() -> None:
    from musicrec.config import load_params
    from musicrec.pipeline.compare import ComparePaths, run
    from musicrec.evaluation.report import write_provenance
    from musicrec.tracking.run import RunInputs, pipeline_run

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", required=True, help="the models folder (logged to MLflow)")
    ap.add_argument("--items", required=True, help="the items table the models were trained with (an MLflow dataset)")
    for f in dataclasses.fields(ComparePaths):
        ap.add_argument(f"--{f.name}", required=True)
    args = ap.parse_args()
    p = load_params(args.params)
    paths = ComparePaths(**{f.name: pathlib.Path(getattr(args, f.name)) for f in dataclasses.fields(ComparePaths)})
    result = run(p, paths)
    # MLflow: the one block (provenance into the report, then the run's params, metrics, datasets, models)
    inputs = RunInputs(params_file=pathlib.Path(args.params), matrices=paths.matrices, items=pathlib.Path(args.items),
                       models=pathlib.Path(args.models),
                       reports=[paths.metrics, paths.details, paths.plots, paths.report, paths.figures])
    with pipeline_run(p, pathlib.Path.cwd(), inputs) as mlrun:
        write_provenance(paths.report, mlrun.provenance)
        mlrun.log_results(result.all_metrics)
    k = p.evaluate.main_k
    print("compare: " + ", ".join(f"{n} ndcg@{k}={m[f'ndcg@{k}']:.4f}" for n, m in result.metrics.items()))


if __name__ == "__main__":
    run_stage(main, "compare")
