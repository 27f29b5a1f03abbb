"""The download cache of MLflow runs (``musicrec cache`` / ``musicrec cache prune``).

:func:`musicrec.serving.artifacts.download_run` keeps each run's model under
``cache_root()/mlflow-runs/<store hash>/<run id>/`` (complete when it holds ``.complete``).
:func:`usage` lists those runs and their sizes; :func:`prune` removes the ones downloaded
before a cutoff (all by default). A run folder being written is an ``atomic_path``
temporary (``.tmp-*``), never a complete run, so pruning cannot remove a download in progress.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from musicrec.serving.artifacts import ServingError, cache_root

RUNS = "mlflow-runs"
COMPLETE = ".complete"


@dataclass(frozen=True)
class CachedRun:
    path: Path
    run_id: str
    size_bytes: int
    downloaded: float  # POSIX time the download completed


def _size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())


def usage(root: Path | None = None) -> list[CachedRun]:
    """The complete cached runs under ``root`` (default :func:`cache_root`), oldest first."""
    base = (cache_root() if root is None else Path(root)) / RUNS
    if not base.is_dir():
        return []
    runs = []
    try:
        for store in sorted(base.iterdir()):
            if not store.is_dir() or store.is_symlink():
                continue
            for run in sorted(store.iterdir()):
                marker = run / COMPLETE
                if run.is_dir() and not run.is_symlink() and marker.is_file():
                    runs.append(CachedRun(run, run.name, _size(run), marker.stat().st_mtime))
    except OSError as exc:
        raise ServingError(f"{base}: cannot read the download cache ({exc.strerror or exc})") from None
    return sorted(runs, key=lambda r: (r.downloaded, str(r.path)))


def prune(older_than_days: float = 0.0, *, root: Path | None = None, dry_run: bool = False,
          now: float | None = None) -> list[CachedRun]:
    """Remove the cached runs downloaded more than ``older_than_days`` ago (0: all); return them."""
    if older_than_days < 0:
        raise ServingError(f"--older-than must be 0 or more days (got {older_than_days:g})")
    cutoff = (time.time() if now is None else now) - older_than_days * 86_400
    removed = [r for r in usage(root) if r.downloaded <= cutoff]
    if not dry_run:
        for r in removed:
            try:
                shutil.rmtree(r.path)
            except OSError as exc:
                raise ServingError(f"{r.path}: cannot remove it ({exc.strerror or exc})") from None
            parent = r.path.parent
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
    return removed
