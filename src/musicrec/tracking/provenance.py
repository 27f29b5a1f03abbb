"""Provenance of a pipeline run: its code, params and data, as a plain dict (no MLflow).

:func:`compute` returns what the evaluate stage writes into ``reports/report.md`` and tags on
the MLflow run (also when tracking is off): the git commit and whether the run's tracked inputs
differ from it (:func:`git_state`), the DVC experiment name, the params that differ from the
committed ``params.yaml`` (:func:`changed_params`), the data source, and the DVC md5 of every
path the run read (:func:`dvc_md5`: the hash DVC writes into ``dvc.lock`` for that path,
computed with ``dvc-data`` from the files as they are now, so it is never one run behind).
:func:`run_name`, :func:`description` and :func:`tags` turn it into the run's name, note and tags.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# What counts as an input for ``git.dirty``: code, the pipeline definition, params and the ``.dvc``
# files of tracked data. The run's own outputs (dvc.lock, reports/, .gitignore lines DVC adds) do not.
TRACKED_INPUTS = ("src", "stages", "dvc.yaml", "params.yaml", ":(glob)**/*.dvc", "pyproject.toml",
                  ":(glob)requirements*.txt")
MAX_DIRTY_SHOWN = 20


def _git(repo_root: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=repo_root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def git_state(repo_root: Path | str) -> dict[str, Any]:
    """``{"commit", "short", "dirty", "dirty_paths"}``; ``commit`` is None outside a git repository.

    ``dirty`` is true when a tracked input (:data:`TRACKED_INPUTS`) differs from the commit, in
    the index or the work tree; the pipeline's outputs never make it dirty.
    """
    root = Path(repo_root)
    commit = (_git(root, "rev-parse", "HEAD") or "").strip() or None
    if commit is None:
        return {"commit": None, "short": None, "dirty": None, "dirty_paths": []}
    out = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=no", "--", *TRACKED_INPUTS)
    paths = None if out is None else sorted({e[3:] for e in out.split("\0") if len(e) > 3 and e[2] == " "})
    short = (_git(root, "rev-parse", "--short", "HEAD") or commit[:7]).strip()
    return {"commit": commit, "short": short, "dirty": None if paths is None else bool(paths),
            "dirty_paths": paths or []}


def changed_params(repo_root: Path | str, params_file: Path | str) -> dict[str, dict[str, Any]]:
    """``{"train.als.factors": {"from": 64, "to": 32}}``: ``params_file`` against its committed version.

    ``from`` is None for a key the commit lacks, ``to`` None for one removed. Outside git (or for a
    file git does not track) nothing is known to have changed: ``{}``.
    """
    import yaml

    from musicrec.tracking.logger import flatten

    root = Path(repo_root).resolve()
    path = Path(params_file)
    path = path if path.is_absolute() else root / path
    try:
        rel = path.resolve().relative_to(root).as_posix()
    except ValueError:
        return {}
    old_text = _git(root, "show", f"HEAD:{rel}")
    if old_text is None:
        return {}
    try:
        docs = [yaml.safe_load(old_text) or {}, yaml.safe_load(path.read_text(encoding="utf-8")) or {}]
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return {}
    if not all(isinstance(d, dict) for d in docs):
        return {}
    old, new = (flatten(d) for d in docs)
    return {k: {"from": old.get(k), "to": new.get(k)} for k in sorted(old.keys() | new.keys())
            if old.get(k) != new.get(k)}


def dvc_md5(path: Path | str, repo_root: Path | str | None = None) -> str | None:
    """The md5 DVC records for ``path`` (``<md5>.dir`` for a folder), or None when it does not exist.

    Computed with ``dvc-data`` (the library DVC hashes outputs with), honouring the repository's
    ``.dvcignore`` when ``repo_root`` is given.
    """
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem
    from dvc_objects.fs.memory import MemoryFileSystem

    p = Path(path)
    if not p.exists():
        return None
    fs = LocalFileSystem()
    ignore = None
    if repo_root is not None and (Path(repo_root) / ".dvcignore").is_file():
        from dvc.ignore import DvcIgnoreFilter

        ignore = DvcIgnoreFilter(fs, str(Path(repo_root).resolve()))
    odb = HashFileDB(MemoryFileSystem(), "/musicrec-staging")
    _, _, obj = build(odb, str(p.resolve()), fs, "md5", dry_run=True, ignore=ignore)
    return str(obj.hash_info.value)


def rel_path(root: Path, p: Path | str) -> str:
    """``p`` relative to ``root`` (POSIX), the key of :func:`compute`'s ``data``."""
    root = Path(root).resolve()
    full = Path(p) if Path(p).is_absolute() else root / p
    try:
        return full.resolve().relative_to(root).as_posix()
    except ValueError:
        return os.path.normpath(str(full))


def compute(repo_root: Path | str, *, params_file: Path | str, data_source: str,
            data: Iterable[Path | str], run_id: str | None = None) -> dict[str, Any]:
    """The run's provenance as a plain dict (JSON-ready); see the module docstring."""
    root = Path(repo_root).resolve()
    return {
        "run_id": run_id,
        "git": git_state(root),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME") or None,
        "dvc_exp_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV") or None,
        "data_source": data_source,
        "changed_params": changed_params(root, params_file),
        "data": {rel_path(root, p): dvc_md5(p if Path(p).is_absolute() else root / p, root) for p in data},
    }


def run_name(prov: Mapping[str, Any]) -> str:
    """``<dvc exp name or git short sha> · <data source>`` (``local`` outside git)."""
    head = prov.get("dvc_exp_name") or (prov.get("git") or {}).get("short") or "local"
    if (prov.get("git") or {}).get("dirty") and not prov.get("dvc_exp_name"):
        head += "+dirty"
    return f"{head} · {prov.get('data_source')}"


def _value(v: Any) -> str:
    import json

    return "–" if v is None else v if isinstance(v, str) else json.dumps(v)


def changed_lines(prov: Mapping[str, Any]) -> list[str]:
    """One ``key: from -> to`` line per changed param."""
    return [f"{k}: {_value(c['from'])} -> {_value(c['to'])}" for k, c in (prov.get("changed_params") or {}).items()]


def description(prov: Mapping[str, Any]) -> str:
    """The run's note (Markdown): the changed params, or that the run used the committed ones."""
    lines = changed_lines(prov)
    if not lines:
        return f"Committed params ({prov.get('data_source')} data)."
    return "Params changed from the commit:\n\n" + "\n".join(f"- `{line}`" for line in lines)


def tags(prov: Mapping[str, Any]) -> dict[str, str]:
    """The run's provenance tags: ``git.*``, ``dvc.exp_name``, ``data.source``, ``dvc.dep.<path>.md5``."""
    g = prov.get("git") or {}
    out: dict[str, str] = {"data.source": str(prov.get("data_source"))}
    if g.get("commit"):
        out["git.commit"] = out["mlflow.source.git.commit"] = g["commit"]
        out["git.dirty"] = "unknown" if g.get("dirty") is None else str(g["dirty"]).lower()
        if g.get("dirty_paths"):
            shown = g["dirty_paths"][:MAX_DIRTY_SHOWN]
            more = len(g["dirty_paths"]) - len(shown)
            out["git.dirty_paths"] = " ".join(shown) + (f" (+{more} more)" if more > 0 else "")
    else:
        out["git.commit"] = "unknown"
    for key, tag in (("dvc_exp_name", "dvc.exp_name"), ("dvc_exp_baseline_rev", "dvc.exp_baseline_rev")):
        if prov.get(key):
            out[tag] = str(prov[key])
    if prov.get("changed_params"):
        out["params.changed"] = ", ".join(sorted(prov["changed_params"]))
    for path, md5 in (prov.get("data") or {}).items():
        out[f"dvc.dep.{path}.md5"] = md5 or "missing"
    return out
