"""Helpers for tests that run the real pipeline in a temporary clone of the repo.

A throw-away copy of the project (:func:`make_clone`, small :data:`SMALL_PARAMS`), the
environment its ``dvc`` / stage subprocesses run in (:func:`pipeline_env`), small inputs
built with the package functions (:func:`build_small_matrices`, :func:`write_interim`)
and free local ports. Test code, not product code: the benchmarks import it too, as
``tests.support.pipeline`` with the repository root on ``sys.path``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_REAL = REPO_ROOT.parent / "shared" / "data" / "real"
HETREC_ZIP = SHARED_REAL / "hetrec2011-lastfm-2k" / "hetrec2011-lastfm-2k.zip"

SMALL_PARAMS: dict[str, Any] = {
    "generate": {"n_tracks": 1500, "n_users": 1200, "n_plays": 45_000, "n_artists": 300, "n_genres": 8},
    "transform": {"partitions": 2},
    "train": {"models": ["popularity", "itemknn", "als"], "als": {"factors": 16, "iterations": 6}},
    "evaluate": {"bootstrap": 30, "sample_users": 2},
}

GIT_ENV = {
    "GIT_AUTHOR_NAME": "musicrec tests", "GIT_AUTHOR_EMAIL": "tests@musicrec.local",
    "GIT_COMMITTER_NAME": "musicrec tests", "GIT_COMMITTER_EMAIL": "tests@musicrec.local",
}


def pipeline_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for running dvc/stages: the current interpreter's bin first."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update({"DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "OPENBLAS_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0", **GIT_ENV})
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("DVC_EXP_NAME", None)
    if extra:
        env.update(extra)
    return env


def deep_update(base: dict[str, Any], upd: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in upd.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            deep_update(base[k], v)
        else:
            base[k] = v
    return base


def project_files(root: Path = REPO_ROOT) -> list[str]:
    """Tracked files plus untracked ones git does not ignore (what a commit would hold)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root, check=True,
                         capture_output=True).stdout.decode()
    return sorted({f for f in out.split("\0") if f and (root / f).is_file()})


def make_clone(dest: Path, params: Mapping[str, Any] | None = None, *, root: Path = REPO_ROOT,
               commit: bool = True) -> Path:
    """Copy the project into ``dest`` as a fresh git repo (one commit), with params overridden."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in project_files(root):
        if f.startswith("data/") and not f.endswith((".dvc", ".gitignore")):
            continue
        target = dest / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / f, target)
    # the lock file belongs to the committed params, not to the overridden ones
    (dest / "dvc.lock").unlink(missing_ok=True)
    if params:
        p = yaml.safe_load((dest / "params.yaml").read_text())
        deep_update(p, params)
        (dest / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = pipeline_env()
    if commit:
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dest, check=True, env=env)
        subprocess.run(["git", "add", "-A"], cwd=dest, check=True, env=env)
        subprocess.run(["git", "commit", "-qm", "test clone"], cwd=dest, check=True, env=env)
    return dest


def run(cmd: list[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 900,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=dict(env or pipeline_env()), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def dvc(args: list[str], cwd: Path, **kw: Any) -> subprocess.CompletedProcess[str]:
    return run([str(Path(sys.executable).parent / "dvc"), *args], cwd, **kw)


def model_metrics(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``metrics`` of a ``dvc exp show --json`` / ``dvc metrics show --json`` revision, per model:
    the evaluate@<model> stages' ``reports/metrics/<model>.json`` files."""
    return {Path(path).stem: block["data"] for path, block in metrics.items()
            if Path(path).parent.as_posix() == "reports/metrics"}


# the data stages' reports whose bytes differ between runs: file -> the key holding the phases' timings
# (everything else in them is deterministic; lock_outs(..., timings=False) reads them without it)
TIMING_REPORTS = {f"reports/{r}.json": "phases" for r in ("data_quality", "transform", "interactions")}


def lock_outs(lock_path: Path, stages: list[str], *, timings: bool = True) -> dict[str, str]:
    """``{stage:path: md5}`` for the outs of the given stages in a dvc.lock.

    ``timings=False``: a report of :data:`TIMING_REPORTS` is given as its content without its timings
    (a JSON string, read beside the lock), so that two runs of a deterministic stage compare equal.
    """
    lock = yaml.safe_load(lock_path.read_text())
    out = {}
    for s in stages:
        for o in lock["stages"][s].get("outs", []):
            path = o["path"]
            if not timings and path in TIMING_REPORTS:
                doc = json.loads((lock_path.parent / path).read_text())
                doc.pop(TIMING_REPORTS[path], None)
                out[f"{s}:{path}"] = json.dumps(doc, sort_keys=True)
            else:
                out[f"{s}:{path}"] = o["md5"]
    return out


def build_small_matrices(root: Path, *, seed: int = 42) -> Path:
    """generate -> clean -> transform -> interactions with the package functions, small sizes, under ``root``.

    Writes ``data/raw/synthetic``, ``data/interim``, ``data/processed/{plays,items.parquet,matrices}`` (the
    layout of ``dvc.yaml``) in a few seconds; for tests that need trained-model inputs without ``dvc repro``.
    """
    from musicrec.pipeline.local import LocalPaths, params_for, run_local

    params = params_for(seed, data={"chunk_rows": 100_000},
                        generate={"n_tracks": 600, "n_users": 500, "n_plays": 15_000, "n_genres": 6, "n_artists": 120},
                        transform={"partitions": 1}, dask={"scheduler": "synchronous", "num_workers": 1})
    run_local(params, LocalPaths.under(root), stop="interactions")
    return root


def write_interim(d: Path, n: int, *, parts: int, n_users: int, n_items: int, seed: int = 0) -> "Any":
    """A clean-stage output folder (``plays/`` parts + ``items.parquet``) of ``n`` Zipf-distributed plays.

    Users ``u000000..`` and tracks ``TR000000..`` (fixed width, so string order is
    numeric order); every other track has metadata. Returns the plays frame.
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    (d / "plays").mkdir(parents=True)
    u = rng.zipf(1.5, n) % n_users
    i = rng.zipf(1.3, n) % n_items
    df = pd.DataFrame({
        "user_id": pd.array([f"u{x:06d}" for x in u], dtype="string"),
        "item_id": pd.array([f"TR{x:06d}" for x in i], dtype="string"),
        "playcount": rng.integers(1, 5, n).astype("int64"),
        "timestamp": pd.to_datetime(rng.integers(1_100_000_000, 1_200_000_000, n), unit="s", utc=True)
        .astype("datetime64[us, UTC]"),
    })
    for k in range(parts):
        df.iloc[k::parts].to_parquet(d / "plays" / f"part-{k:05d}.parquet", index=False)
    items = pd.DataFrame({"item_id": pd.array([f"TR{x:06d}" for x in range(0, n_items, 2)], dtype="string"),
                          "name": "song"})
    items.to_parquet(d / "items.parquet", index=False)
    return df


def run_stage_script(root: Path, stage: str, args: list[str], *, params: str = "params.yaml",
                     env_extra: Mapping[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``stages/<stage>.py --params <params> <args>`` in ``root``, as ``dvc repro`` runs it."""
    return subprocess.run([sys.executable, str(REPO_ROOT / "stages" / f"{stage}.py"), "--params", params, *args],
                          cwd=root, env=pipeline_env(env_extra), capture_output=True, text=True, timeout=timeout)


def model_stage_args(out: str, models: list[str]) -> list[tuple[str, list[str]]]:
    """The catalog, ``train@<model>`` and ``evaluate@<model>`` stages of ``dvc.yaml``, outputs under ``out/``
    (``out/models``, ``out/evaluation``, ``out/train``), inputs ``data/processed/{matrices,items.parquet}``."""
    inputs = ["--matrices", "data/processed/matrices", "--items", "data/processed/items.parquet"]
    stages = [("catalog", [*inputs, "--out", f"{out}/models"])]
    stages += [("train", ["--model", m, *inputs, "--out", f"{out}/models/{m}", "--report", f"{out}/train/{m}.json"])
               for m in models]
    stages += [("evaluate", ["--model", m, *inputs, "--model-dir", f"{out}/models/{m}", "--out",
                             f"{out}/evaluation/{m}"]) for m in models]
    return stages


def compare_stage_args(out: str) -> list[str]:
    """The ``compare`` stage's arguments for the layout of :func:`model_stage_args` (its reports under ``out/``)."""
    return ["--evaluation", f"{out}/evaluation", "--matrices", "data/processed/matrices",
            "--items", "data/processed/items.parquet", "--models", f"{out}/models",
            "--catalog", f"{out}/models/catalog.parquet", "--metrics", f"{out}/metrics.json",
            "--details", f"{out}/evaluation.json", "--plots", f"{out}/plots", "--report", f"{out}/report.md",
            "--figures", f"{out}/figures"]


def run_model_stages(root: Path, out: str, models: list[str], *, params: str = "params.yaml",
                     env_extra: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Every stage before ``compare`` (:func:`model_stage_args`); stops at the first that fails and returns it."""
    r = None
    for stage, args in model_stage_args(out, models):
        r = run_stage_script(root, stage, args, params=params, env_extra=env_extra)
        if r.returncode != 0:
            return r
    assert r is not None
    return r


def clone_tracking_hetrec(dest: Path) -> Path:
    """A clone (generate params of :data:`SMALL_PARAMS`) whose ``data/raw/hetrec_lastfm_2k`` holds the real
    HetRec zip, tracked with ``dvc add`` and committed: README's "Using the real datasets", step by step."""
    repo = make_clone(dest, {k: v for k, v in SMALL_PARAMS.items() if k == "generate"})
    raw = repo / "data" / "raw" / "hetrec_lastfm_2k"
    raw.mkdir(parents=True)
    shutil.copyfile(HETREC_ZIP, raw / HETREC_ZIP.name)
    dvc(["add", "data/raw/hetrec_lastfm_2k"], repo)
    run(["git", "add", "data/raw/hetrec_lastfm_2k.dvc", "data/raw/.gitignore"], repo)
    run(["git", "commit", "-qm", "Track the HetRec 2011 Last.fm 2K zip with DVC"], repo)
    return repo
