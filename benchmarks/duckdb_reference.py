"""The DuckDB reference: the clean + transform job in DuckDB SQL over the same CSVs (a worker), and its
comparison with the clean + transform stages just measured."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from measure import checked, last_json, measure, worker_cmd


def worker_duckdb(argv: list[str]) -> None:
    """Reference: the clean + transform job in DuckDB SQL, over the same CSVs."""
    import duckdb

    from musicrec.config import load_params

    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    p = load_params(a.params)
    mu, mi, maxpc = p.transform.min_user_items, p.transform.min_item_users, p.clean.max_playcount
    raw, out = Path(a.raw), Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads={a.threads}; SET preserve_insertion_order=false;")
    hist = str(raw / "User Listening History.csv").replace("'", "''")
    info = str(raw / "Music Info.csv").replace("'", "''")
    ident = r"'^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$'"
    con.execute(f"""CREATE TABLE h AS SELECT * FROM read_csv('{hist}', header=true, all_varchar=true)""")
    con.execute(f"""CREATE TABLE m AS SELECT track_id AS item_id FROM read_csv('{info}', header=true, all_varchar=true)""")
    valid = (f"regexp_matches(track_id, {ident}) AND regexp_matches(user_id, {ident}) "
             f"AND TRY_CAST(playcount AS BIGINT) BETWEEN 1 AND {maxpc}")
    rows, invalid = con.execute(f"SELECT count(*), count(*) FILTER (WHERE NOT coalesce({valid}, false)) FROM h").fetchone()
    con.execute(f"""CREATE TABLE pairs AS
        SELECT user_id, track_id AS item_id, sum(pc)::BIGINT AS playcount FROM (
          SELECT DISTINCT user_id, track_id, CAST(playcount AS BIGINT) AS pc FROM h WHERE coalesce({valid}, false))
        GROUP BY ALL""")
    con.execute("DROP TABLE h")
    pairs_in, dups = con.execute("SELECT count(*), 0 FROM pairs").fetchone()
    passes = 0
    while True:
        passes += 1
        n_users, n_items, n_pairs = con.execute(
            "SELECT count(DISTINCT user_id), count(DISTINCT item_id), count(*) FROM pairs").fetchone()
        con.execute(f"""CREATE OR REPLACE TABLE pairs AS SELECT * FROM pairs
            WHERE user_id IN (SELECT user_id FROM pairs GROUP BY 1 HAVING count(*) >= {mu})
              AND item_id IN (SELECT item_id FROM pairs GROUP BY 1 HAVING count(*) >= {mi})""")
        if con.execute("SELECT count(*) FROM pairs").fetchone()[0] == n_pairs:
            break
        if passes >= p.transform.max_passes:
            raise SystemExit("duckdb reference: filter did not converge")
    plays_dir = str(out / "plays").replace("'", "''")
    con.execute(f"""COPY (SELECT user_id, item_id, playcount, NULL::TIMESTAMPTZ AS first_ts, NULL::TIMESTAMPTZ AS last_ts
        FROM pairs ORDER BY user_id, item_id) TO '{plays_dir}.parquet' (FORMAT parquet, COMPRESSION zstd)""")
    items_path = str(out / "items.parquet").replace("'", "''")
    con.execute(f"""COPY (SELECT * FROM m WHERE item_id IN (SELECT item_id FROM pairs) ORDER BY item_id)
        TO '{items_path}' (FORMAT parquet, COMPRESSION zstd)""")
    pk, uk, ik, plays = con.execute(
        "SELECT count(*), count(DISTINCT user_id), count(DISTINCT item_id), sum(playcount) FROM pairs").fetchone()
    print(json.dumps({"rows_in": rows, "invalid": invalid, "pairs_in": pairs_in, "pairs_kept": pk, "users_kept": uk,
                      "items_kept": ik, "plays_kept": int(plays), "passes": passes,
                      "inner_s": round(time.perf_counter() - t0, 3)}))


def compare_duckdb(stages: dict[str, Any], tr: dict[str, Any], raw: Path, work: Path, env: dict[str, str],
                   threads: int) -> dict[str, Any]:
    """The DuckDB reference on the same CSVs, against the clean + transform stages just measured."""
    duck = checked("duckdb reference", measure(
        worker_cmd("duckdb", "--raw", str(raw), "--out", str(work / "duckdb"), "--params", "params.yaml",
                   "--threads", str(threads)), work, env=env))
    dres = last_json(duck["tail"])
    ours_t = stages["clean"]["wall_s"] + stages["transform"]["wall_s"]
    ours_m = max(stages["clean"]["peak_rss_mb"], stages["transform"]["peak_rss_mb"])
    agree = all(dres[k] == tr[k] for k in ("pairs_kept", "users_kept", "items_kept", "plays_kept"))
    if not agree:
        print(f"  WARNING: DuckDB result differs: {dres} vs {tr}", flush=True)
    return {
        "musicrec_clean_plus_transform_s": round(ours_t, 3), "musicrec_peak_rss_mb": ours_m,
        "duckdb_s": duck["wall_s"], "duckdb_peak_rss_mb": duck["peak_rss_mb"], "duckdb_inner": dres,
        "duckdb_load1": duck["load1"],
        "time_ratio": round(ours_t / duck["wall_s"], 2), "memory_ratio": round(ours_m / duck["peak_rss_mb"], 2),
        "same_result": agree,
    }
