"""musicrec command line: recommendations from a trained models folder.

    python -m musicrec recommend --user USER_ID -n 10
    python -m musicrec recommend --like TRACK_ID [TRACK_ID ...] -n 10
    python -m musicrec similar TRACK_ID -n 10
    python -m musicrec models                  # each model's params, size and test metrics
    python -m musicrec search "radiohead"      # tracks, artists and users by name or id prefix
    python -m musicrec cache prune             # empty the download cache of MLflow runs
    python -m musicrec --version
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
:mod:`musicrec.serving.recommender` (and :mod:`musicrec.serving.artifacts`, :mod:`musicrec.serving.cache`).
For an artist-level source (HetRec, Last.fm 360K) the items are artists, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from musicrec.errors import UserError
from musicrec.pipeline.runner import EXIT_USER_ERROR, run_main, user_error_text


def package_version() -> str:
    """The installed ``musicrec`` distribution's version (pyproject.toml), or a note when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("musicrec")
    except PackageNotFoundError:
        return "(not installed: pip install -e .)"


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
    ap.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rec = sub.add_parser("recommend", parents=[common], help="tracks (or artists) for a known user or from a few liked ones")
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", metavar="USER_ID", help="a user id of the training data")
    who.add_argument("--like", metavar="TRACK_ID", nargs="+",
                     help="cold start: one or more liked track ids (artist ids for an artist-level source)")
    rec.add_argument("-n", type=int, default=10, help="number of recommendations (default: %(default)s)")
    rec.add_argument("--matrices", default="data/processed/matrices",
                     help="interactions folder with the users' histories (default: %(default)s)")

    sim = sub.add_parser("similar", parents=[common], help="tracks similar to a track")
    sim.add_argument("track", metavar="TRACK_ID", help="a track id (an artist id for an artist-level source)")
    sim.add_argument("-n", type=int, default=10, help="number of tracks (default: %(default)s)")

    mod = sub.add_parser("models", parents=[common], help="the trained models: params, size and test metrics")
    mod.add_argument("--metrics", default="reports/metrics.json",
                     help="the evaluate stage's metrics (default: %(default)s; not read with --run-id)")
    mod.add_argument("-k", type=int, default=10, help="the K of the metrics shown (default: %(default)s)")

    find = sub.add_parser("search", parents=[common], help="tracks, artists and users by name or id prefix")
    find.add_argument("query", metavar="TEXT", help="part of a name, or the start of an id (case-insensitive)")
    find.add_argument("-n", type=int, default=10, help="at most this many of each kind (default: %(default)s)")

    cache = sub.add_parser("cache", help="the download cache of MLflow runs: show it, or prune it")
    cache.add_argument("action", nargs="?", choices=("show", "prune"), default="show")
    cache.add_argument("--older-than", type=float, default=0.0, metavar="DAYS",
                       help="prune only runs downloaded more than DAYS ago (default: all)")
    cache.add_argument("--dry-run", action="store_true", help="say what prune would remove, remove nothing")
    cache.add_argument("--json", action="store_true", help="print JSON instead of text")
    return ap


def _models_dir(args: argparse.Namespace) -> str:
    from musicrec.serving import artifacts

    if args.run_id:
        return str(artifacts.download_run(args.run_id, tracking_uri=args.tracking_uri)[0])
    if args.model_uri:
        return str(artifacts.download_model(args.model_uri, tracking_uri=args.tracking_uri)[0])
    return args.models


def _models_command(args: argparse.Namespace) -> str:
    from musicrec.errors import reading
    from musicrec.serving import recommender as serving

    if args.k <= 0:
        raise serving.ServingError(f"-k must be a positive integer (got {args.k})")
    metrics = None
    path = Path(args.metrics)
    if not (args.run_id or args.model_uri) and path.is_file():
        with reading(path, "re-run the evaluate stage (dvc repro evaluate)"):
            metrics = json.loads(path.read_text(encoding="utf-8"))
    summaries = serving.model_summaries(_models_dir(args), metrics, args.k)
    if args.json:
        default = next((s["name"] for s in summaries if s["default"]), None)
        return json.dumps({"models": [s["name"] for s in summaries], "default": default, "details": summaries},
                          indent=2)
    return serving.format_models(summaries, args.k) or "no trained models"


def _search_command(args: argparse.Namespace) -> str:
    from musicrec.serving import recommender as serving

    found = serving.search(serving.Catalog.read(_models_dir(args)), args.query, args.n)
    if args.json:
        return json.dumps({"query": args.query, "results": serving.to_records(found)}, indent=2)
    return serving.format_search(found)


def _cache_command(args: argparse.Namespace) -> str:
    from musicrec.formatting import bytes_size
    from musicrec.serving import cache
    from musicrec.serving.artifacts import cache_root

    root = cache_root()
    runs = cache.prune(args.older_than, dry_run=args.dry_run) if args.action == "prune" else cache.usage()
    total = sum(r.size_bytes for r in runs)
    if args.json:
        return json.dumps({"cache": str(root), "action": args.action, "dry_run": args.dry_run,
                           "runs": [{"run_id": r.run_id, "path": str(r.path), "size_bytes": r.size_bytes}
                                    for r in runs], "size_bytes": total}, indent=2)
    if args.action == "show":
        lines = [f"{r.run_id}  {bytes_size(r.size_bytes)}" for r in runs]
        return "\n".join([f"{root}: {len(runs)} cached run(s), {bytes_size(total)}", *lines])
    verb = "would remove" if args.dry_run else "removed"
    return f"{root}: {verb} {len(runs)} cached run(s), {bytes_size(total)}"


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")
    args = _parser().parse_args(argv)
    from musicrec.serving import artifacts
    from musicrec.serving import recommender as serving

    try:
        listing = {"models": _models_command, "search": _search_command, "cache": _cache_command}
        if args.command in listing:
            return _print(listing[args.command](args))
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
        text = json.dumps({"model": rec.model_name, "item_kind": rec.item_kind, **query,
                           "results": serving.to_records(df)}, indent=2)
    else:
        kind = rec.item_kind
        top = f"top {len(df)}" + (" artists" if kind == "artist" else "")  # "top 5 similar to", "top 5 artists ..."
        if args.command == "similar":
            title = f"similar to {rec.explainer.label(rec.item_index(args.track))}"
        elif args.user is not None:
            title = f"for user {args.user}"
        else:
            title = f"for a listener who likes {len(args.like)} {kind}(s)"
        text = f"{rec.model_name}: {top} {title}\n{serving.format_table(df, item_kind=kind)}"
    return _print(text)


def _print(text: str) -> int:
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
