"""DVC stage `interactions`: id maps, CSR play-count matrices and the seeded split."""

import argparse
import pathlib
import sys

import pyarrow as pa

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from musicrec.config import load_params  # noqa: E402
from musicrec.pipeline.interactions import PlaysParts, build_interactions, save_interactions  # noqa: E402
from musicrec.io import write_json  # noqa: E402
from musicrec.pipeline.runner import run_stage  # noqa: E402
from musicrec.progress import StepTimer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--plays", required=True, help="Parquet folder written by the transform stage")
    ap.add_argument("--out", required=True, help="folder for id maps and matrices")
    ap.add_argument("--report", required=True)
    args = ap.parse_args()
    p = load_params(args.params)
    # malloc's pool, not mimalloc's: the Parquet reads' buffers go back when freed instead of staying in the
    # peak (measured at 10M pairs: 736 -> 662 MB)
    pa.set_memory_pool(pa.system_memory_pool())
    timer = StepTimer("interactions")
    built = build_interactions(PlaysParts.from_dir(args.plays), p.interactions, p.seed, timer)
    with timer.step("save"):
        save_interactions(args.out, built)
    # the phases' seconds and peak memory: the only part of the report that differs between runs
    report = {**built.report, "phases": timer.phases()}
    write_json(args.report, report)
    s = report["split"]
    print(f"interactions: {report['users']:,} users x {report['items']:,} items, {report['interactions']:,} pairs; "
          f"train {s['train']:,} / validation {s['validation']:,} / test {s['test']:,} / query {s['query']:,}")


if __name__ == "__main__":
    run_stage(main, "interactions")
