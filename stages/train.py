"""DVC stage `train`: fit every model in `train.models` and save them (no pickle)."""

import argparse
import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from musicrec.pipeline.runner import run_stage, set_thread_env  # noqa: E402

set_thread_env()


def main() -> None:
    from musicrec.config import load_params
    from musicrec.pipeline.train import load_inputs, run
    from musicrec.tracking.run import pipeline_run

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--matrices", required=True)
    ap.add_argument("--items", required=True)
    ap.add_argument("--out", required=True, help="models folder")
    ap.add_argument("--report", required=True)
    ap.add_argument("--run-id-file", required=True, help="where the MLflow run id is recorded for evaluate")
    args = ap.parse_args()
    p = load_params(args.params)
    inter, items = load_inputs(pathlib.Path(args.matrices), pathlib.Path(args.items))  # before the MLflow run opens
    root = pathlib.Path.cwd()
    with pipeline_run(p, root, run_id_file=pathlib.Path(args.run_id_file), new_run=True, run_name="pipeline",
                      dep_paths=[args.matrices, args.items]) as mlflow:
        result = run(p.train, p.seed, inter, items, pathlib.Path(args.out), pathlib.Path(args.report),
                     source=p.data.source)
        trained, report = result.trained, result.report
        if mlflow is not None:
            from musicrec.tracking import logger as tracking

            tracking.log_params_flat(json.loads(p.model_dump_json()))
            tracking.log_metrics({"fit_seconds": report["fit_seconds"]})
            tracking.log_model_artifacts(args.out, args.matrices)  # model/ + model/history/ (serving.download_run)
    print("train: " + ", ".join(f"{t.name} {t.seconds:.1f}s" for t in trained))


if __name__ == "__main__":
    run_stage(main, "train")
