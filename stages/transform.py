"""DVC stage `transform`: Dask aggregation, metadata join and minimum-activity filter."""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from musicrec.config import load_params  # noqa: E402
from musicrec.io import write_json  # noqa: E402
from musicrec.pipeline.runner import run_stage  # noqa: E402
from musicrec.pipeline.transform import run_transform  # noqa: E402
from musicrec.progress import StepTimer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--interim", required=True, help="output folder of the clean stage")
    ap.add_argument("--out-plays", required=True)
    ap.add_argument("--out-items", required=True)
    ap.add_argument("--report", required=True)
    args = ap.parse_args()
    p = load_params(args.params)
    timer = StepTimer("transform")
    report = run_transform(
        pathlib.Path(args.interim), pathlib.Path(args.out_plays), pathlib.Path(args.out_items),
        p.transform, p.dask, timer=timer)
    # the phases' seconds and peak memory (of this process: a cluster's workers are not in it) are the only
    # part of the report that differs between runs
    write_json(args.report, {**report, "phases": timer.phases()})
    print(f"transform: {report['pairs_kept']:,} (user, item) pairs, {report['users_kept']:,} users, "
          f"{report['items_kept']:,} items after {len(report['filter']['passes'])} filter passes")


if __name__ == "__main__":
    run_stage(main, "transform")
