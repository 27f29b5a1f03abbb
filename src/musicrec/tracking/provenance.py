"""Provenance tags tying an MLflow run to its code and data.

:func:`provenance_tags` records the git commit and dirty flag, the DVC experiment (when run
by ``dvc exp``) and, for each dependency, its md5 from ``dvc.lock``, from its ``.dvc`` file or
computed from the file, with where the hash came from.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from musicrec.tracking.logger import safe_key


def _git(repo_root: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=repo_root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def _lock_hashes(repo_root: Path) -> dict[str, str]:
    """path -> md5 for every dep and out recorded in dvc.lock and in ``*.dvc`` files next to the paths."""
    import yaml

    out: dict[str, str] = {}
    lock = repo_root / "dvc.lock"
    if lock.exists():
        try:
            doc = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            doc = {}
        for stage in (doc.get("stages") or {}).values():
            for kind in ("deps", "outs"):
                for ent in stage.get(kind) or []:
                    if isinstance(ent, dict) and ent.get("path") and ent.get("md5"):
                        out[os.path.normpath(ent["path"])] = str(ent["md5"])
    return out


def _dvc_file_hash(repo_root: Path, rel: str) -> str | None:
    import yaml

    f = repo_root / (rel + ".dvc")
    if not f.exists():
        return None
    with contextlib.suppress(yaml.YAMLError, OSError, AttributeError, TypeError):
        for ent in (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("outs") or []:
            if ent.get("md5"):
                return str(ent["md5"])
    return None


def provenance_tags(repo_root: Path | str, dep_paths: Iterable[Path | str] = ()) -> dict[str, str]:
    """Tags tying a run to code and data: git commit + dirty flag, DVC experiment, data md5s.

    For each dependency: ``dvc.dep.<path>.md5`` and ``dvc.dep.<path>.source`` — ``dvc.lock``,
    ``<path>.dvc``, ``computed`` (file not yet locked: md5 of its bytes) or ``unlocked`` /
    ``missing`` (folder not locked / path absent).
    """
    root = Path(repo_root).resolve()
    tags: dict[str, str] = {}
    commit = _git(root, "rev-parse", "HEAD")
    if commit:
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
        tags["git.commit"] = commit
        tags["mlflow.source.git.commit"] = commit
        tags["git.dirty"] = "unknown" if dirty is None else str(bool(dirty)).lower()
    else:
        tags["git.commit"] = "unknown"
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.exp_baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    locked = _lock_hashes(root)
    for dep in dep_paths:
        p = Path(dep)
        full = p if p.is_absolute() else root / p
        try:
            rel = os.path.normpath(full.resolve().relative_to(root))
        except ValueError:
            rel = os.path.normpath(str(full))
        key = f"dvc.dep.{safe_key(rel)}"
        if rel in locked:
            md5, source = locked[rel], "dvc.lock"
        elif (h := _dvc_file_hash(root, rel)) is not None:
            md5, source = h, f"{rel}.dvc"
        elif full.is_file():
            from musicrec.io import md5_file

            md5, source = md5_file(full), "computed"
        elif full.exists():
            md5, source = "unlocked", "unlocked"
        else:
            md5, source = "missing", "missing"
        tags[f"{key}.md5"] = md5
        tags[f"{key}.source"] = source
    return tags
