"""`make exp-grid`: a grid of DVC experiments, run one after the other with `dvc exp run --temp`.

    python mk/exp_grid.py -S 'train.als.factors=32,64,128' -S 'train.als.alpha=1,4' [--dry-run]

Each ``-S key=v1,v2,...`` is one axis (``dvc exp run``'s sweep syntax; a value in brackets, such
as ``train.models=[popularity,als]``, is one value); every combination is one experiment,
run in a temporary copy (``--temp``), so the workspace and ``params.yaml`` stay as they are
and each experiment is an ordinary one in ``dvc exp show`` / ``make exp-show``. It does not
use DVC's queue (``dvc exp run --queue`` + ``--run-all``), whose worker can stop half way
with a ``JSONDecodeError`` in its file-system message broker (treeverse/dvc#10428: the
rest stays "Queued" until ``dvc queue start``). A failed experiment (an invalid value) is
reported and the grid goes on; the exit status is 1 when any failed.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
from pathlib import Path


def axis(setting: str) -> tuple[str, list[str]]:
    """``key=v1,v2`` -> (key, [v1, v2]); commas inside brackets or quotes do not split."""
    key, sep, values = setting.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"-S {setting!r}: expected key=value[,value...]")
    out, depth, quote, current = [], 0, "", ""
    for ch in values:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(current)
            current = ""
            continue
        current += ch
    out.append(current)
    if any(not v.strip() for v in out):
        raise ValueError(f"-S {setting!r}: an empty value")
    return key.strip(), [v.strip() for v in out]


def combinations(settings: list[str]) -> list[list[str]]:
    """Every combination of the axes, as ``key=value`` lists (the first axis varies slowest)."""
    axes = [axis(s) for s in settings]
    return [[f"{k}={v}" for (k, _), v in zip(axes, values)]
            for values in itertools.product(*(vals for _, vals in axes))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-S", "--set-param", dest="settings", action="append", default=[], metavar="KEY=V1,V2",
                    help="one axis of the grid (repeat)")
    ap.add_argument("--dry-run", action="store_true", help="print the experiments, run nothing")
    args = ap.parse_args()
    if not args.settings:
        ap.error("give at least one -S key=v1,v2")
    try:
        grid = combinations(args.settings)
    except ValueError as err:
        ap.error(str(err))
    beside = Path(sys.executable).parent / "dvc"  # the venv's dvc, as make runs it
    dvc = str(beside) if beside.is_file() else (shutil.which("dvc") or "dvc")
    failed = []
    for i, combo in enumerate(grid, 1):
        print(f"exp-grid: {i}/{len(grid)}: {' '.join(combo)}", flush=True)
        if args.dry_run:
            continue
        cmd = [dvc, "exp", "run", "--temp", *itertools.chain.from_iterable(("-S", c) for c in combo)]
        if subprocess.run(cmd).returncode != 0:
            failed.append(" ".join(combo))
            print(f"exp-grid: {i}/{len(grid)} failed (above); going on", flush=True)
    if failed:
        print(f"exp-grid: {len(failed)} of {len(grid)} failed: " + "; ".join(failed), file=sys.stderr)
        return 1
    print(f"exp-grid: {len(grid)} experiments done ({'dry run' if args.dry_run else 'make exp-show'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
