"""musicrec command line: recommendations from a trained models folder.

    python -m musicrec recommend --user USER_ID -n 10
    python -m musicrec recommend --like TRACK_ID [TRACK_ID ...] -n 10
    python -m musicrec similar TRACK_ID -n 10
    python -m musicrec models
    python -m musicrec recommend --run-id RUN_ID --user USER_ID    # the model logged to an MLflow run
    python -m musicrec recommend --model-uri models:/musicrec-synthetic@champion --user USER_ID

Common options (after the command): ``--models data/models``, ``--model NAME``
(default: the hybrid if trained, else als, else the first), ``--matrices
data/processed/matrices`` (user histories), ``--json``; ``--run-id RUN_ID``
(with ``--tracking-uri``, default ``MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``)
loads the models and user histories from that MLflow run instead of the local
folders. Unknown ids print close matches and exit with status 2, like every
error the user can fix (:class:`musicrec.errors.UserError`: a wrong argument, a
missing or corrupt models folder); anything else is a bug and keeps its
traceback (exit status 70, see :mod:`musicrec.pipeline.runner`). The logic lives in
:mod:`musicrec.serving.recommender` (and :mod:`musicrec.serving.artifacts`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

from musicrec.errors import UserError
from musicrec.pipeline.runner import EXIT_USER_ERROR, run_main, user_error_text


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--models", default="data/models", help="trained models folder (default: %(default)s)")
    common.add_argument("--model", default=None,
                        help="model to use (default: hybrid if trained, else als, else the first)")
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    common.add_argument("--run-id", default=None, metavar="RUN_ID",
                        help="load the model from this MLflow run (artifact model/) instead of --models; "
                             "(the evaluate stage prints it; reports/report.md names it)")
    common.add_argument("--model-uri", default=None, metavar="URI",
                        help="load the model from MLflow: models:/musicrec-synthetic@champion, "
                             "models:/<name>/<version>, runs:/<run id>/<model>")
    common.add_argument("--tracking-uri", default=None, metavar="URI",
                        help="MLflow store of --run-id / --model-uri (default: $MLFLOW_TRACKING_URI, else "
                             "sqlite:///mlflow.db)")
    ap = argparse.ArgumentParser(prog="musicrec", description="Music recommendations from a trained musicrec pipeline.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rec = sub.add_parser("recommend", parents=[common], help="tracks for a known user or from a few liked tracks")
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="USER_ID", help="a user id of the training data")
    who.add_argument("--like", metavar="TRACK_ID", nargs="+", help="cold start: one or more liked track ids")
    rec.add_argument("-n", type=int, default=10, help="number of recommendations (default: %(default)s)")
    rec.add_argument("--matrices", default="data/processed/matrices",
                     help="interactions folder with the users' histories (default: %(default)s)")

    sim = sub.add_parser("similar", parents=[common], help="tracks similar to a track")
    sim.add_argument("track", metavar="TRACK_ID")
    sim.add_argument("-n", type=int, default=10, help="number of tracks (default: %(default)s)")

    sub.add_parser("models", parents=[common], help="list the trained models")
    return ap


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    args = _parser().parse_args(argv)
    from musicrec.serving import artifacts
    from musicrec.serving import recommender as serving

    try:
        if args.command == "models":
            models_dir = args.models
            if args.run_id:
                models_dir, _ = artifacts.download_run(args.run_id, tracking_uri=args.tracking_uri)
            elif args.model_uri:
                models_dir, _ = artifacts.download_model(args.model_uri, tracking_uri=args.tracking_uri)
            names = artifacts.available_models(models_dir)
            default = artifacts.default_model(names) if names else None
            if args.json:
                print(json.dumps({"models": names, "default": default}))
            else:
                for n in names:
                    print(f"{n}{'  (default)' if n == default else ''}")
            return 0
        if args.n <= 0:
            raise artifacts.ServingError(f"-n must be a positive integer (got {args.n})")
        if args.model_uri:
            models_dir, history = artifacts.download_model(args.model_uri, tracking_uri=args.tracking_uri)
            rec = serving.ModelServer.load(models_dir, args.model,
                                           matrices_dir=history or getattr(args, "matrices", None))
        elif args.run_id:
            rec = serving.ModelServer.from_run(args.run_id, args.model, tracking_uri=args.tracking_uri,
                                               matrices_dir=getattr(args, "matrices", None))
        else:
            rec = serving.ModelServer.load(args.models, args.model,
                                           matrices_dir=getattr(args, "matrices", None))
        if args.command == "similar":
            df, query = rec.similar(args.track, args.n), {"similar": args.track}
        elif args.user is not None:
            df, query = rec.recommend_user(args.user, args.n), {"user": args.user}
        else:
            df, query = rec.recommend_liked(args.like, args.n), {"like": args.like}
    except UserError as err:  # bad argument, unknown id, missing or corrupt models folder: one paragraph, exit 2
        if os.environ.get("MUSICREC_DEBUG"):
            traceback.print_exc()
        if args.json:
            doc: dict = {"error": " ".join(str(err).split())}
            if isinstance(err, serving.UnknownIdError):
                doc = {"error": err.short, "suggestions": [{"id": i, "label": lab} for i, lab in err.suggestions]}
            print(json.dumps(doc), file=sys.stderr)
        else:
            print(user_error_text("musicrec", err, width=None), file=sys.stderr)
        return EXIT_USER_ERROR
    if args.json:
        text = json.dumps({"model": rec.model_name, **query, "results": serving.to_records(df)}, indent=2)
    else:
        if args.command == "similar":
            title = f"similar to {rec.explainer.label(rec.item_index(args.track))}"
        elif args.user is not None:
            title = f"for user {args.user}"
        else:
            title = f"for a listener who likes {len(args.like)} track(s)"
        text = f"{rec.model_name}: top {len(df)} {title}\n{serving.format_table(df)}"
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `python -m musicrec ... | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def run() -> None:
    """The ``musicrec`` command: :func:`main` where anything but a UserError is a bug (traceback + exit 70)."""
    run_main(lambda: sys.exit(main()), "musicrec")


if __name__ == "__main__":
    run()
