"""DVC stage ``clean``: one raw source -> data/interim (plays, items, quarantine) + data-quality report.

Usage: python stages/clean.py --params params.yaml --input data/raw/<source> --out data/interim \
           --report reports/data_quality.json

Exit status 2 with a one-paragraph message on stderr for invalid params or input files.
"""

import sys, pathlib  # noqa: E401

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

from musicrec.pipeline.clean import CleanConfig, clean  # noqa: E402
from musicrec.config import load_params  # noqa: E402
from musicrec.params_file import ParamsError  # noqa: E402
from musicrec.io import write_json  # noqa: E402
from musicrec.ingest.inputs import InputFormatError, InputPolicy  # noqa: E402
from musicrec.pipeline.runner import run_stage  # noqa: E402
from musicrec.progress import StepTimer  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml", type=Path)
    ap.add_argument("--input", required=True, type=Path, help="raw input folder of the source (data/raw/<source>)")
    ap.add_argument("--out", required=True, type=Path, help="output folder (data/interim)")
    ap.add_argument("--report", required=True, type=Path, help="data-quality report (JSON)")
    args = ap.parse_args(argv)
    try:
        params = load_params(args.params)
        policy = InputPolicy.from_params(params.data, root=args.params.absolute().parent)  # the repository
        timer = StepTimer("clean", quiet=True)  # stderr keeps its lines as they were: progress, or one error
        report = clean(params.data.source, args.input, args.out, CleanConfig.from_params(params), policy, timer)
    except (InputFormatError, ParamsError) as err:
        print(f"clean: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    # the phases' seconds and peak memory: the only part of the report that differs between runs
    write_json(args.report, {**report, "phases": timer.phases()})
    t = report["totals"]
    print(f"clean: {params.data.source}: read {t['rows_read']} rows, kept {t['kept']}, quarantined "
          f"{t['quarantined']}, unmatched dropped {t['unmatched_dropped']}; {report['output']['plays']} plays, "
          f"{report['output']['users']} users, {report['output']['items']} items -> {args.out}")
    return 0


if __name__ == "__main__":
    run_stage(lambda: sys.exit(main()), "clean")  # other errors (e.g. disk full): one paragraph, exit 2
