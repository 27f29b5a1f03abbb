"""DVC stage `evaluate`: ranking metrics on held-out data, DVC metrics/plots, report, MLflow."""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from musicrec.pipeline.runner import run_stage, set_thread_env  # noqa: E402

set_thread_env()


def main() -> None:
    import pandas as pd

    from musicrec.pipeline.evaluate import assess, details_json, metrics_json
    from musicrec.config import load_params
    from musicrec.errors import reading
    from musicrec.pipeline.interactions import load_interactions
    from musicrec.io import write_json
    from musicrec.models.factory import load_model
    from musicrec.evaluation.report import write_report
    from musicrec.tracking.run import pipeline_run
    from musicrec.pipeline.train import item_features_for

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
    inter = load_interactions(args.matrices)
    with reading(args.items, "run the transform stage first"):
        items = pd.read_parquet(args.items)
    models = {name: load_model(pathlib.Path(args.models) / name) for name in p.train.models}
    vectors = item_features_for(items, inter, p.train).vectors
    a = assess(models, inter, ks=p.evaluate.k, main_k=p.evaluate.main_k, bootstrap=p.evaluate.bootstrap,
               seed=p.seed, item_vectors=vectors)
    metrics = metrics_json(a)
    write_json(args.metrics, metrics)
    write_json(args.details, details_json(a))
    plots = pathlib.Path(args.plots)
    curve = pd.DataFrame(a.curve)
    from musicrec.io import atomic_path

    for name, cols in (("metrics_at_k.csv", ["model", "k", "precision", "recall", "ndcg", "map", "hit_rate"]),
                       ("precision_recall.csv", ["model", "k", "recall", "precision"])):
        with atomic_path(plots / name) as tmp:
            curve[cols].to_csv(tmp, index=False, float_format="%.6f")
    with reading(pathlib.Path(args.models) / "catalog.parquet", "run the train stage first"):
        catalog = pd.read_parquet(pathlib.Path(args.models) / "catalog.parquet")
    write_report(pathlib.Path(args.report), pathlib.Path(args.figures), inter, a, catalog, ks=p.evaluate.k,
                 main_k=p.evaluate.main_k, sample_users=p.evaluate.sample_users, seed=p.seed,
                 split_method=p.interactions.split.method)
    with pipeline_run(p, pathlib.Path.cwd(), run_id_file=pathlib.Path(args.run_id_file), new_run=False,
                      run_name="pipeline", dep_paths=[args.matrices, args.items, args.models]) as mlflow:
        if mlflow is not None:
            from musicrec.tracking import logger as tracking

            tracking.log_metrics(metrics)
            tracking.log_artifacts([args.metrics, args.details, str(plots), args.report, args.figures],
                                   artifact_path="reports")
    k = p.evaluate.main_k
    print("evaluate: " + ", ".join(f"{n} ndcg@{k}={m[f'ndcg@{k}']:.4f}" for n, m in metrics.items()))


if __name__ == "__main__":
    run_stage(main, "evaluate")
