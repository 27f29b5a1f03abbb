"""``dvc repro`` with nothing to do and ``dvc pull`` throughput from a local SeaweedFS, on a small clone."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from measure import checked, measure

DVC = str(Path(sys.executable).parent / "dvc")  # the venv's dvc, next to this interpreter


def run_dvc(workdir: Path) -> dict[str, Any]:
    """``dvc repro`` no-op time and ``dvc pull`` throughput from a local SeaweedFS (small clone)."""
    from tests.support.pipeline import SMALL_PARAMS, dvc, make_clone, pipeline_env

    base = (workdir / "dvc").resolve()
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    params = json.loads(json.dumps(SMALL_PARAMS))
    params["mlflow"] = {"required": False}
    clone = make_clone(base / "a", params)
    env = pipeline_env({"MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}"})
    res: dict[str, Any] = {}
    print("[dvc] full repro of the small clone", flush=True)
    t0 = time.perf_counter()
    dvc(["repro"], clone, env=env, timeout=1800)
    res["small_repro_s"] = round(time.perf_counter() - t0, 2)
    noop = [checked("dvc repro (no-op)", measure([DVC, "repro"], clone, env=env)) for _ in range(3)]
    res["noop_repro_s"] = [r["wall_s"] for r in noop]
    res["noop_repro_best_s"] = min(res["noop_repro_s"])
    res["noop_said_up_to_date"] = all("up to date" in r["tail"] or "didn't change" in r["tail"] for r in noop)
    st = checked("dvc status", measure([DVC, "status"], clone, env=env))
    res["dvc_status_s"] = st["wall_s"]
    imp = checked("python -c 'import dvc.cli'", measure([sys.executable, "-c", "import dvc.cli"], clone, env=env))
    res["import_dvc_s"] = imp["wall_s"]

    res.update(push_pull(workdir, base, clone, env))
    return res


def push_pull(workdir: Path, base: Path, clone: Path, env: dict[str, str]) -> dict[str, Any]:
    """``dvc push`` of ``clone``'s cache to a SeaweedFS started on free 127.0.0.1 ports, and ``dvc pull`` into a
    second clone: MB/s for one big file (the largest generated history in ``workdir``) and the pipeline outputs."""
    import secrets

    from musicrec.devservices.config import ServiceConfig
    from musicrec.devservices.credentials import Credentials
    from musicrec.devservices.dvc_remote import write_dvc_config_local
    from musicrec.devservices.process import stop_service
    from musicrec.devservices.seaweedfs import start_seaweedfs
    from tests.support.pipeline import dvc, run

    # a big file next to the pipeline outputs, for bulk throughput
    big_src = None
    for name in ("10m", "1m"):
        cand = workdir / name / "raw" / "synthetic" / "User Listening History.csv"
        if cand.exists():
            big_src = cand
            break

    cfg = ServiceConfig.on_free_ports(base / "services", startup_timeout_s=90)
    creds = Credentials("bench" + secrets.token_hex(6), secrets.token_urlsafe(24))
    print("[dvc] SeaweedFS + push/pull", flush=True)
    start_seaweedfs(cfg, creds)
    try:
        if big_src is not None:
            (clone / "data" / "bulk").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(big_src, clone / "data" / "bulk" / "history.csv")
            dvc(["add", "data/bulk/history.csv"], clone, env=env)
            run(["git", "add", "-A"], clone, env=env)
            run(["git", "commit", "-qm", "bulk file"], clone, env=env)
        run(["git", "add", "-A"], clone, env=env, check=False)
        run(["git", "commit", "-qm", "repro outputs"], clone, env=env, check=False)
        write_dvc_config_local(clone, cfg.s3_endpoint, creds)
        cache_mb = _dir_mb(clone / ".dvc" / "cache")
        push = checked("dvc push", measure([DVC, "push", "-j", "8"], clone, env=env))
        second = base / "b"
        run(["git", "clone", "-q", str(clone), str(second)], base, env=env)
        write_dvc_config_local(second, cfg.s3_endpoint, creds)
        pulls = {}
        if big_src is not None:
            r = checked("dvc pull (one big file)", measure([DVC, "pull", "data/bulk/history.csv.dvc"], second,
                                                            env=env))
            mb = (second / "data" / "bulk" / "history.csv").stat().st_size / 2**20
            pulls["big_file"] = {"mb": round(mb, 1), "wall_s": r["wall_s"], "mb_per_s": round(mb / r["wall_s"], 1)}
        before = _dir_mb(second / ".dvc" / "cache")
        r = checked("dvc pull (pipeline outs)", measure([DVC, "pull"], second, env=env))
        mb = _dir_mb(second / ".dvc" / "cache") - before
        nfiles = sum(1 for p in (second / ".dvc" / "cache").rglob("*") if p.is_file())
        pulls["pipeline_outs"] = {"mb": round(mb, 1), "wall_s": r["wall_s"], "mb_per_s": round(mb / r["wall_s"], 2),
                                  "cache_files_total": nfiles}
        return {"cache_mb": round(cache_mb, 1), "push_s": push["wall_s"],
                "push_mb_per_s": round(cache_mb / push["wall_s"], 1), "pull": pulls}
    finally:
        stop_service(cfg, "seaweedfs")


def _dir_mb(d: Path) -> float:
    return sum(p.stat().st_size for p in Path(d).rglob("*") if p.is_file()) / 2**20 if Path(d).exists() else 0.0
