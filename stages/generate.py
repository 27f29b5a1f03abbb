"""DVC stage `generate`: a deterministic synthetic dataset in the Kaggle MSD + Spotify + Last.fm schema."""

import argparse
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "src"))

from musicrec.config import load_params  # noqa: E402
from musicrec.stage import run_stage  # noqa: E402
from musicrec.synth import write_synthetic  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", required=True, help="output folder (Music Info.csv, User Listening History.csv)")
    args = ap.parse_args()
    p = load_params(args.params)
    g = p.generate
    s = write_synthetic(pathlib.Path(args.out), n_tracks=g.n_tracks, n_users=g.n_users, n_plays=g.n_plays,
                        n_genres=g.n_genres, n_artists=g.n_artists, seed=p.seed, chunk_rows=p.data.chunk_rows)
    print(f"generate: {s['rows']:,} listening rows, {s['users']:,} users, {s['tracks']:,} tracks -> {args.out}")


if __name__ == "__main__":
    run_stage(main, "generate")
