"""Measuring a subprocess: wall time and the peak RSS of its process tree; the worker command line and
its JSON result; the machine the numbers come from."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def measure(cmd: list[str], cwd: Path, *, env: dict[str, str] | None = None, timeout: float = 3600,
            poll_s: float = 0.02) -> dict[str, Any]:
    """Run ``cmd``; return wall seconds, peak RSS (MB) of the process tree, exit code and output tail."""
    import psutil

    log = tempfile.TemporaryFile(mode="w+")
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env or dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                            text=True)
    peak = 0
    try:
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            peak = max(peak, tree_rss(root))
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                break
            time.sleep(poll_s)
    finally:
        rc = proc.wait()
    wall = time.perf_counter() - t0
    log.seek(0)
    out = log.read()
    log.close()
    return {"wall_s": round(wall, 3), "peak_rss_mb": round(peak / 2**20, 1), "rc": rc, "tail": out[-3000:],
            "load1": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def tree_rss(root: Any) -> int:
    """Resident bytes of the psutil process ``root`` and all its descendants (processes that vanish meanwhile
    count 0)."""
    import psutil

    rss = 0
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        procs = []
    for p in procs:
        try:
            rss += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return rss


def checked(name: str, res: dict[str, Any]) -> dict[str, Any]:
    if res["rc"] != 0:
        raise RuntimeError(f"{name} failed (exit {res['rc']}):\n{res['tail']}")
    print(f"  {name:28s} {res['wall_s']:9.2f} s  {res['peak_rss_mb']:9.1f} MB  (load {res['load1']})", flush=True)
    return res


def worker_cmd(mode: str, *args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve().with_name("run.py")), "--worker", mode, *args]


def last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON result in worker output:\n{text[-2000:]}")


def machine() -> dict[str, Any]:
    import importlib.metadata as md

    import psutil

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libs = {}
    for pkg in ("numpy", "pandas", "pyarrow", "scipy", "dask", "distributed", "implicit", "duckdb", "dvc", "mlflow",
                "s3fs", "psutil"):
        try:
            libs[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            libs[pkg] = None
    return {"cpu": cpu, "cores_logical": os.cpu_count(), "cores_physical": psutil.cpu_count(logical=False),
            "ram_gb": round(psutil.virtual_memory().total / 2**30, 1), "os": platform.platform(),
            "python": platform.python_version(), "libraries": libs,
            "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
