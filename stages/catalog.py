"""DVC stage `catalog`: the id maps and the catalogue of the models folder (users, items, catalog .parquet)."""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from musicrec.pipeline.runner import run_stage  # noqa: E402


def main() -> None:
    from musicrec.config import load_params
    from musicrec.pipeline.catalog import FILES, write_catalog
    from musicrec.pipeline.interactions import load_inputs

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--matrices", required=True)
    ap.add_argument("--items", required=True)
    ap.add_argument("--out", required=True, help="models folder (data/models)")
    args = ap.parse_args()
    p = load_params(args.params)  # every stage validates the whole file
    inter, items = load_inputs(pathlib.Path(args.matrices), pathlib.Path(args.items))
    write_catalog(pathlib.Path(args.out), inter, items, p.data.source)
    print(f"catalog: {', '.join(FILES)} -> {args.out}")


if __name__ == "__main__":
    run_stage(main, "catalog")
