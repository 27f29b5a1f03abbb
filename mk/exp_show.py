"""`make exp-show`: the experiments as a table that fits a terminal, a row per experiment and trained model.

Read from ``dvc exp show --json`` (the workspace, the commit and its experiments; extra
arguments go to it, e.g. ``-A``). Columns: the experiment, when it was made, the data source
(always: HetRec and synthetic rows must not look alike), the model, the model's params that
differ between the experiments (``factors=64 alpha=4``; also ``train.models`` when it differs),
and the model's test nDCG / recall and validation nDCG at ``evaluate.main_k`` from its DVC
metrics file (``reports/metrics/<model>.json``). Experiments are sorted by the validation nDCG
(tune on validation) of the last model of ``train.models`` (ALS in the default params).
Hidden: the params of models that are not trained, the other metrics (``dvc metrics show``,
``reports/evaluation.json``), the dependencies' hashes and every timing. ``--csv`` prints CSV;
``--no-pager`` is accepted (the table is printed, never paged).
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from musicrec.formatting import number

METRICS_DIR = "reports/metrics"  # evaluate@<model>'s DVC metrics: reports/metrics/<model>.json
SHOWN_METRICS = ("ndcg", "recall", "val_ndcg")
OWN_FLAGS = ("--csv", "--no-pager")


@dataclass
class Experiment:
    """One row group: a revision (the workspace, a commit, an experiment) with its params and metrics."""

    name: str
    created: str
    params: dict[str, Any]
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> its metrics file
    error: str = ""


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def _revisions(entries: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every revision of ``dvc exp show --json``: each top-level entry, then its experiments' revisions."""
    for entry in entries:
        yield entry
        for group in entry.get("experiments") or []:
            yield from _revisions(group.get("revs") or [])


def experiments(entries: list[dict[str, Any]]) -> list[Experiment]:
    """The revisions of ``dvc exp show --json`` output (a list) as :class:`Experiment` rows."""
    out = []
    for rev in _revisions(entries):
        data = rev.get("data") or {}
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        name = rev.get("name") or (rev.get("rev") or "?")
        if name != "workspace" and name == rev.get("rev"):
            name = name[:7]
        exp = Experiment(name=name, created=(data.get("timestamp") or "")[:16].replace("T", " "),
                         params=params, error="failed" if rev.get("error") or data.get("error") else "")
        for path, block in (data.get("metrics") or {}).items():
            p = Path(path)
            if p.parent.as_posix() == METRICS_DIR and p.suffix == ".json" and isinstance(block.get("data"), dict):
                exp.metrics[p.stem] = block["data"]
        out.append(exp)
    return out


def _trained(exp: Experiment) -> list[str]:
    models = (exp.params.get("train") or {}).get("models") or []
    return [m for m in models if isinstance(m, str)]


def changed_keys(exps: list[Experiment], model: str) -> list[str]:
    """The keys of ``train.<model>`` whose values differ between the experiments that train ``model``."""
    sections = [flatten((e.params.get("train") or {}).get(model) or {}) for e in exps if model in _trained(e)]
    keys = sorted({k for s in sections for k in s})
    return [k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for s in sections}) > 1]


def table(exps: list[Experiment]) -> tuple[list[str], list[list[str]]]:
    """The header and rows: a row per experiment and trained model, best experiment first."""
    if not exps:
        return [], []
    k = (exps[0].params.get("evaluate") or {}).get("main_k", 10)
    show_models = len({json.dumps(_trained(e)) for e in exps}) > 1
    sort_model = (_trained(exps[0]) or [None])[-1]

    def score(e: Experiment) -> float:
        v = (e.metrics.get(sort_model) or {}).get(f"val_ndcg@{k}")
        return v if isinstance(v, (int, float)) else float("-inf")

    ordered = [exps[0], *sorted(exps[1:], key=score, reverse=True)]  # the workspace stays first
    changed = {m: changed_keys(exps, m) for e in exps for m in _trained(e)}
    header = ["experiment", "created", "data.source", "model", "changed params",
              *(f"{m}@{k}" for m in SHOWN_METRICS)]
    rows = []
    for e in ordered:
        source = str((e.params.get("data") or {}).get("source", "-"))
        models = _trained(e) or ["-"]
        for i, model in enumerate(models):
            section = flatten((e.params.get("train") or {}).get(model) or {})
            shown = [f"{key}={section[key]}" for key in changed.get(model, []) if key in section]
            if i == 0 and show_models:
                shown.insert(0, f"models={','.join(models)}")
            m = e.metrics.get(model) or {}
            values = [number(m[f"{name}@{k}"]) if isinstance(m.get(f"{name}@{k}"), (int, float)) else "-"
                      for name in SHOWN_METRICS]
            rows.append([e.name if i == 0 else "", (e.created if i == 0 else ""), source if i == 0 else "",
                         model, " ".join(shown) or ("(failed)" if e.error else ""), *values])
    return header, rows


def render(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    numeric = {i for i, h in enumerate(header) if "@" in h}
    lines = []
    for row in [header, *rows]:
        cells = [str(c).rjust(w) if i in numeric else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def main() -> None:
    args = sys.argv[1:]
    if not Path("params.yaml").is_file() or not Path("dvc.yaml").is_file():
        sys.exit("exp-show: params.yaml / dvc.yaml not found; run it in the repository root")
    beside = Path(sys.executable).parent / "dvc"  # the venv's dvc, as make runs it
    dvc = str(beside) if beside.is_file() else (shutil.which("dvc") or "dvc")
    r = subprocess.run([dvc, "exp", "show", "--json", *(a for a in args if a not in OWN_FLAGS)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"exp-show: dvc exp show failed:\n{r.stderr.strip() or r.stdout.strip()}")
    try:
        entries = json.loads(r.stdout or "[]")
    except json.JSONDecodeError as err:
        sys.exit(f"exp-show: dvc exp show --json printed no JSON ({err}): {r.stdout[:200]!r}")
    header, rows = table(experiments(entries))
    if "--csv" in args:
        w = csv.writer(sys.stdout)
        w.writerow(header)
        w.writerows(rows)
    else:
        print(render(header, rows) if rows else "exp-show: no experiments")


if __name__ == "__main__":
    main()
