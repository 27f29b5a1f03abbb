"""The Explore page's data: the catalogue's long tail, listener activity, tags, audio features,
the model comparison from ``reports/metrics.json`` + ``reports/evaluation.json`` and the run's provenance.

Each function returns a small DataFrame (or a dict) ready to chart; a missing or unreadable
report is a note (one line naming the file), never an exception.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from musicrec.schema import AUDIO_FEATURES

COMPARISON_METRICS = ("ndcg", "recall", "coverage", "novelty")


def long_tail(popularity: np.ndarray, points: int = 100) -> pd.DataFrame:
    """Share of listens covered by the most listened tracks: ``tracks %`` -> ``listens %`` (``points`` rows)."""
    pop = np.sort(np.asarray(popularity, dtype=np.float64))[::-1]
    total = pop.sum()
    if len(pop) == 0 or total <= 0:
        return pd.DataFrame({"tracks %": [], "listens %": []})
    cum = np.cumsum(pop) / total * 100
    at = np.unique(np.linspace(0, len(pop) - 1, min(points, len(pop))).round().astype(np.int64))
    return pd.DataFrame({"tracks %": ((at + 1) / len(pop) * 100).round(2), "listens %": cum[at].round(2)})


def listener_activity(history: sp.csr_matrix) -> pd.DataFrame:
    """Listeners by number of distinct tracks played, in powers-of-two bins (``tracks``: "4-7", ``listeners``)."""
    counts = np.diff(history.indptr)
    counts = counts[counts > 0]
    if len(counts) == 0:
        return pd.DataFrame({"tracks": [], "listeners": []})
    b = np.floor(np.log2(counts)).astype(np.int64)
    n = np.bincount(b)
    first = int(b.min())
    labels = [f"{2 ** k}-{2 ** (k + 1) - 1}" for k in range(first, len(n))]
    return pd.DataFrame({"tracks": labels, "listeners": n[first:].astype(np.int64)})


def top_tags(catalog: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """The ``n`` most frequent tags of the catalogue (``tag``, ``tracks``)."""
    if "tags" not in catalog.columns:
        return pd.DataFrame({"tag": [], "tracks": []})
    tags = catalog["tags"].dropna().astype(str).str.lower().str.split(",").explode().str.strip()
    tags = tags[tags != ""]
    counts = tags.value_counts()
    counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable").head(n)
    return pd.DataFrame({"tag": counts.index.astype(str), "tracks": counts.to_numpy(dtype=np.int64)})


def audio_features(items: pd.DataFrame | None) -> pd.DataFrame:
    """Per audio feature: tracks with a value, mean, std, 5th / 50th / 95th percentile (empty without items)."""
    cols = [c for c in AUDIO_FEATURES if items is not None and c in items.columns]
    rows = []
    for c in cols:
        v = pd.to_numeric(items[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        v = v[np.isfinite(v)]
        if len(v):
            p5, p50, p95 = np.percentile(v, [5, 50, 95])
            rows.append((c, len(v), v.mean(), v.std(), p5, p50, p95))
    df = pd.DataFrame(rows, columns=["feature", "tracks", "mean", "std", "p5", "median", "p95"])
    return df.round(4)


def _read_json(path: Path, notes: list[str]) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        notes.append(f"{path}: not found (run the evaluate stage: make repro)")
        return {}
    except (OSError, ValueError) as exc:
        notes.append(f"{path}: cannot be read ({' '.join(str(exc).split())})")
        return {}
    if not isinstance(doc, dict):
        notes.append(f"{path}: expected a JSON object of models")
        return {}
    return doc


def model_comparison(reports: Path | str, k: int = 10) -> tuple[pd.DataFrame, list[str]]:
    """One row per evaluated model: nDCG@k with its bootstrap interval, recall, coverage and novelty at k.

    Returns ``(table, notes)``; notes say which report is missing or malformed.
    """
    reports = Path(reports)
    notes: list[str] = []
    metrics = _read_json(reports / "metrics.json", notes)
    evaluation = _read_json(reports / "evaluation.json", notes)
    rows = []
    for model, m in sorted(metrics.items()):
        if not isinstance(m, dict):
            notes.append(f"{reports / 'metrics.json'}: {model!r} is not an object of metrics")
            continue
        ci = (evaluation.get(model) or {}).get("ci") if isinstance(evaluation.get(model), dict) else None
        lo, hi = (ci or {}).get(f"ndcg@{k}", (None, None)) if isinstance(ci, dict) else (None, None)
        row = {"model": model}
        for name in COMPARISON_METRICS:
            v = m.get(f"{name}@{k}")
            row[f"{name}@{k}"] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
        row[f"ndcg@{k} low"], row[f"ndcg@{k} high"] = lo, hi
        rows.append(row)
    cols = ["model", f"ndcg@{k}", f"ndcg@{k} low", f"ndcg@{k} high", *(f"{n}@{k}" for n in COMPARISON_METRICS[1:])]
    df = pd.DataFrame(rows, columns=cols)
    if len(df):
        df = df.sort_values(f"ndcg@{k}", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    return df, notes


def provenance(source_label: str, models_dir: Path, run_id: str | None, reports: Path | str,
               params_path: Path | str | None = "params.yaml", repo_root: Path | str = ".") -> dict[str, str]:
    """Where the served models come from: source, MLflow run id (the report's Provenance), data source, the
    models folder's md5 as DVC computes it, git commit."""
    out = {"models": source_label, "models folder": str(models_dir)}
    reports = Path(reports)
    if run_id is None:
        from musicrec.evaluation.report import reported_run_id

        run_id = reported_run_id(reports / "report.md")
    out["MLflow run id"] = run_id or "unknown (reports/report.md names no run: tracking was off, or no evaluate yet)"
    root = Path(repo_root)
    from musicrec.config import load_params
    from musicrec.errors import UserError

    try:
        if params_path is None:
            raise UserError("no params file given")
        out["data source"] = load_params(params_path).data.source
    except UserError as exc:  # a page line, not a failure: params.yaml may be absent or invalid here
        out["data source"] = "unknown: " + str(exc).splitlines()[0]
    try:
        from musicrec.tracking.provenance import dvc_md5, git_state

        rel = Path(models_dir).resolve().relative_to(root.resolve())
        out[f"{rel.as_posix()} md5"] = dvc_md5(root / rel, root) or "missing"
        git = git_state(root)
        out["git commit"] = git["commit"] or "unknown (not a git checkout)"
        out["tracked inputs changed"] = {True: "yes", False: "no", None: "unknown"}[git["dirty"]]
    except ValueError:
        out["data md5"] = "see the MLflow run's tags (models outside this workspace)"
    return out
