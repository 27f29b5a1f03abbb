"""DVC stage `interactions`: id maps, CSR play-count matrices and the seeded split."""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from musicrec.config import load_params  # noqa: E402
from musicrec.pipeline.interactions import build_interactions, read_plays_table, save_interactions  # noqa: E402
from musicrec.io import write_json  # noqa: E402
from musicrec.pipeline.runner import run_stage  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--plays", required=True, help="Parquet folder written by the transform stage")
    ap.add_argument("--out", required=True, help="folder for id maps and matrices")
    ap.add_argument("--report", required=True)
    args = ap.parse_args()
    p = load_params(args.params)
    columns = ["user_id", "item_id", "playcount"] + (["last_ts"] if p.interactions.split.method == "temporal" else [])
    built = build_interactions(read_plays_table(args.plays, columns), p.interactions, p.seed)
    save_interactions(args.out, built)
    report = built.report
    write_json(args.report, report)
    s = report["split"]
    print(f"interactions: {report['users']:,} users x {report['items']:,} items, {report['interactions']:,} pairs; "
          f"train {s['train']:,} / validation {s['validation']:,} / test {s['test']:,} / query {s['query']:,}")


if __name__ == "__main__":
    run_stage(main, "interactions")
