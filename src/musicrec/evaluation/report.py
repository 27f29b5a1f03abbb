"""``reports/report.md``: the evaluation report, written to read well on GitHub.

Data summary (with a popularity long-tail plot), the split, every model's
metrics with bootstrap intervals and the paired comparison against popularity,
metric-vs-K and precision-recall plots (PNG, matplotlib), per-segment results,
and a few sample users' listening next to each model's recommendations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec.formatting import number
from musicrec.formatting import pvalue
from musicrec.models import model_color
from musicrec.pipeline.evaluate import Assessment
from musicrec.pipeline.interactions import Interactions


def data_summary(inter: Interactions) -> dict[str, Any]:
    full = (inter.train + inter.validation + inter.test + inter.query).tocsr()
    n_users, n_items = full.shape
    item_pop = np.sort(np.diff(full.tocsc().indptr))[::-1]
    top = max(1, int(round(0.01 * n_items)))
    user_act = np.diff(full.indptr)
    return {
        "users": n_users, "items": n_items, "interactions": int(full.nnz), "plays": int(full.sum()),
        "sparsity": 1 - full.nnz / max(n_users * n_items, 1),
        "top1pct_item_share": float(item_pop[:top].sum() / max(item_pop.sum(), 1)),
        "median_items_per_user": float(np.median(user_act)) if n_users else 0.0,
        "max_items_per_user": int(user_act.max()) if n_users else 0,
        "split": {n: int(getattr(inter, n).nnz) for n in ("train", "validation", "test", "query")},
        "item_popularity_sorted": item_pop,
    }


def make_figures(fig_dir: Path, summary: dict[str, Any], a: Assessment, main_k: int) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matplotlib.rcParams["svg.hashsalt"] = "musicrec"
    fig_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    meta = {"Software": None, "Creation Time": None}

    pop = summary["item_popularity_sorted"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.loglog(np.arange(1, len(pop) + 1), np.maximum(pop, 1), lw=1.5)
    ax.set(xlabel="item rank", ylabel="listeners", title="Item popularity (long tail)")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(fig_dir / "long_tail.png", dpi=110, metadata=meta)
    plt.close(fig)
    files["long_tail"] = "long_tail.png"

    curve = pd.DataFrame(a.curve)
    if not curve.empty:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        for name, g in curve.groupby("model", sort=True):
            axes[0].plot(g["k"], g["ndcg"], marker="o", label=name, color=model_color(name))
            axes[1].plot(g["recall"], g["precision"], marker="o", label=name, color=model_color(name))
        axes[0].set(xlabel="K", ylabel="nDCG@K", title="nDCG at K")
        axes[1].set(xlabel="recall@K", ylabel="precision@K", title="Precision-recall over K")
        for ax in axes:
            ax.grid(True, alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(fig_dir / "metrics_at_k.png", dpi=110, metadata=meta)
        plt.close(fig)
        files["metrics_at_k"] = "metrics_at_k.png"

        seg_rows = []
        for name, res in sorted(a.results.items()):
            for s in ("light", "medium", "heavy"):
                seg_rows.append((name, s, res["segments"][s]["metrics"].get(f"ndcg@{main_k}") or 0.0))
        seg = pd.DataFrame(seg_rows, columns=["model", "segment", "ndcg"])
        fig, ax = plt.subplots(figsize=(7, 3.6))
        models = sorted(seg.model.unique())
        width = 0.8 / max(len(models), 1)
        for i, m in enumerate(models):
            vals = seg[seg.model == m].set_index("segment").loc[["light", "medium", "heavy"], "ndcg"]
            ax.bar(np.arange(3) + i * width, vals.to_numpy(), width, label=m, color=model_color(m))
        ax.set_xticks(np.arange(3) + width * (len(models) - 1) / 2, ["light", "medium", "heavy"])
        ax.set(ylabel=f"nDCG@{main_k}", title="By listener segment (train activity terciles)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(fig_dir / "segments.png", dpi=110, metadata=meta)
        plt.close(fig)
        files["segments"] = "segments.png"
    return files


def _label(catalog: pd.DataFrame, idx: int) -> str:
    if idx < 0 or idx >= len(catalog):
        return "–"
    row = catalog.iloc[idx]
    name = row.get("name")
    artist = row.get("artist")
    name = str(row["item_id"]) if name is None or pd.isna(name) else str(name)
    text = name if artist is None or pd.isna(artist) else f"{name} — {artist}"
    return text.replace("|", "\\|")


def sample_users_section(inter: Interactions, a: Assessment, catalog: pd.DataFrame, n_users: int,
                         seed: int, n_show: int = 5) -> list[str]:
    if n_users <= 0 or len(a.test_users) == 0:
        return []
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(a.test_users), size=min(n_users, len(a.test_users)), replace=False))
    query = inter.query_rows()
    lines = ["## Sample users", "",
             "Each user's most-played known tracks, the held-out tracks, and each model's top "
             f"{n_show} (✓ = a held-out hit).", ""]
    for p in pick:
        u = int(a.test_users[p])
        row = query[u]
        top = row.indices[np.argsort(-row.data, kind="stable")][:n_show]
        held = set(inter.test[u].indices.tolist())
        lines.append(f"### User `{inter.maps.user_ids[u]}`")
        lines.append("")
        lines.append(f"- **listened to** ({row.nnz} tracks): " + "; ".join(_label(catalog, i) for i in top))
        lines.append(f"- **held out** ({len(held)}): " + "; ".join(_label(catalog, i) for i in sorted(held)[:n_show]))
        lines.append("")
        lines.append("| model | recommendations |")
        lines.append("|---|---|")
        for name in sorted(a.recs):
            recs = a.recs[name][p][:n_show]
            cells = "; ".join(("✓ " if i in held else "") + _label(catalog, int(i)) for i in recs if i >= 0)
            lines.append(f"| {name} | {cells} |")
        lines.append("")
    return lines


def render(summary: dict[str, Any], a: Assessment, *, ks: list[int], main_k: int, figures: dict[str, str],
           fig_rel: str, sample_lines: list[str], split_method: str) -> str:
    s = summary
    L = ["# musicrec evaluation report", "",
         "Generated by the `evaluate` stage (`dvc repro`); numbers are on the held-out **test** set "
         "unless marked validation.", "",
         "## Data", "",
         "| users | items | interactions | plays | sparsity | top 1% items' share | median items/user |",
         "|---:|---:|---:|---:|---:|---:|---:|",
         f"| {number(s['users'])} | {number(s['items'])} | {number(s['interactions'])} | {number(s['plays'])} | "
         f"{s['sparsity']:.5f} | {s['top1pct_item_share']:.1%} | {s['median_items_per_user']:.0f} |", ""]
    if "long_tail" in figures:
        L += [f"![item popularity long tail]({fig_rel}/{figures['long_tail']})", ""]
    sp_ = s["split"]
    L += ["## Split", "",
          f"Method **{split_method}**: train {number(sp_['train'])}, validation {number(sp_['validation'])}, "
          f"test {number(sp_['test'])}, cold-start query {number(sp_['query'])} interactions; "
          f"{number(len(a.test_users))} test users. Models never see validation or test pairs; "
          "seen items are excluded from recommendations.", ""]
    L += [f"## Results at K={main_k}", "",
          f"95% bootstrap intervals over users in brackets. Δ vs popularity: mean per-user difference in "
          f"nDCG@{main_k} with its interval and the Wilcoxon signed-rank p-value.", "",
          "| model | nDCG | recall | precision | MAP | hit rate | coverage | novelty | ARP | val nDCG | Δ nDCG vs pop (p) |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    order = sorted(a.results, key=lambda n: -(a.results[n]["metrics"].get(f"ndcg@{main_k}") or 0))
    for name in order:
        m, ci = a.results[name]["metrics"], a.results[name]["ci"]

        def cell(key: str) -> str:
            v = number(m.get(key))
            if key in ci and ci[key][0] is not None:
                v += f" [{ci[key][0]:.3f}, {ci[key][1]:.3f}]"
            return v

        comp = a.comparisons.get(name, {}).get(f"ndcg@{main_k}")
        delta = "baseline" if name == "popularity" else "–"
        if comp and comp.get("mean_diff") is not None:
            c = comp.get("ci") or [None, None]
            p = comp.get("wilcoxon_p")
            delta = f"{comp['mean_diff']:+.4f}" + (f" [{c[0]:+.3f}, {c[1]:+.3f}]" if c[0] is not None else "") + \
                ("" if p is None else (f" (p{pvalue(p)})" if p < 1e-3 else f" (p={pvalue(p)})"))
        val = a.validation.get(name, {}).get(f"ndcg@{main_k}")
        L.append(f"| **{name}** | {cell(f'ndcg@{main_k}')} | {cell(f'recall@{main_k}')} | "
                 f"{cell(f'precision@{main_k}')} | {cell(f'map@{main_k}')} | {cell(f'hit_rate@{main_k}')} | "
                 f"{number(m.get(f'coverage@{main_k}'))} | {number(m.get(f'novelty@{main_k}'), 2)} | "
                 f"{number(m.get(f'arp@{main_k}'), 1)} | {number(val)} | {delta} |")
    L += ["", "### nDCG at every K", "", "| model | " + " | ".join(f"K={k}" for k in ks) + " |",
          "|---|" + "---|" * len(ks)]
    for name in order:
        L.append(f"| {name} | " + " | ".join(number(a.results[name]["metrics"].get(f"ndcg@{k}")) for k in ks) + " |")
    L.append("")
    if "metrics_at_k" in figures:
        L += [f"![metrics at K]({fig_rel}/{figures['metrics_at_k']})", ""]
    L += [f"### By listener segment (nDCG@{main_k})", "", "| model | light | medium | heavy |", "|---|---|---|---|"]
    for name in order:
        seg = a.results[name]["segments"]
        L.append(f"| {name} | " + " | ".join(
            f"{number(seg[s]['metrics'].get(f'ndcg@{main_k}'))} (n={number(seg[s]['n_users'])})" for s in ("light", "medium", "heavy")) + " |")
    thr = a.results[order[0]]["segments"].get("thresholds", {}) if order else {}
    L += ["", f"Segments are terciles of training interactions per user (light ≤ {thr.get('light_max')}, "
          f"medium ≤ {thr.get('medium_max')}).", ""]
    if "segments" in figures:
        L += [f"![segments]({fig_rel}/{figures['segments']})", ""]
    L += sample_lines
    L += ["## Definitions", "",
          "precision@K = hits/K; recall@K = hits/|held-out|; nDCG@K with binary gains and log2 discount; "
          "MAP@K averages precision at each hit over min(|held-out|, K); hit rate = share of users with at "
          "least one hit; coverage = distinct recommended items / catalogue; novelty = mean self-information "
          "−log2(popularity/users); ARP = average train popularity of recommended items. See "
          "`src/musicrec/evaluation/metrics.py`.", ""]
    return "\n".join(L)


def write_report(report_path: Path, fig_dir: Path, inter: Interactions, a: Assessment, catalog: pd.DataFrame, *,
                 ks: list[int], main_k: int, sample_users: int, seed: int, split_method: str) -> None:
    import os

    from musicrec.io import atomic_path, write_text

    summary = data_summary(inter)
    with atomic_path(fig_dir, directory=True) as tmp:
        figures = make_figures(tmp, summary, a, main_k)
    rel = os.path.relpath(fig_dir, report_path.parent)
    lines = sample_users_section(inter, a, catalog, sample_users, seed)
    write_text(report_path, render(summary, a, ks=ks, main_k=main_k, figures=figures, fig_rel=rel,
                                   sample_lines=lines, split_method=split_method))


# --------------------------------------------------------------------------- provenance

PROVENANCE_HEADING = "## Provenance"


def provenance_lines(prov: dict[str, Any]) -> list[str]:
    """The report's provenance section: what the MLflow run page shows (run, source, code, params, md5s)."""
    from musicrec.tracking.provenance import changed_lines, run_name

    g = prov.get("git") or {}
    dirty = {True: "yes: " + ", ".join(f"`{p}`" for p in g.get("dirty_paths", [])[:20]), False: "no",
             None: "unknown"}[g.get("dirty")]
    L = [PROVENANCE_HEADING, "",
         f"- **run**: {run_name(prov)}, MLflow run id `{prov.get('run_id') or 'none (tracking off)'}`",
         f"- **data source**: {prov.get('data_source')}",
         f"- **git commit**: `{g.get('commit') or 'unknown'}`; tracked inputs changed: {dirty}"]
    if prov.get("dvc_exp_name"):
        L.append(f"- **DVC experiment**: {prov['dvc_exp_name']} (baseline `{prov.get('dvc_exp_baseline_rev')}`)")
    changed = changed_lines(prov)
    L.append("- **params changed from the commit**: " + ("none" if not changed else ""))
    L += [f"  - `{line}`" for line in changed]
    L += ["", "| data | DVC md5 |", "|---|---|"]
    L += [f"| `{path}` | `{md5 or 'missing'}` |" for path, md5 in (prov.get("data") or {}).items()]
    return L + [""]


def reported_run_id(report_path: Path | str) -> str | None:
    """The MLflow run id the report's provenance section names; None without one (or with tracking off)."""
    import re

    try:
        text = Path(report_path).read_text(encoding="utf-8")
    except OSError:
        return None
    _, sep, section = text.partition("\n" + PROVENANCE_HEADING + "\n")
    m = re.search(r"MLflow run id `([A-Za-z0-9_-]+)`", section) if sep else None
    return m.group(1) if m else None


def write_provenance(report_path: Path, prov: dict[str, Any]) -> None:
    """Replace (or append) the provenance section of ``report_path``, atomically; it stays the last section."""
    from musicrec.io import write_text

    text = Path(report_path).read_text(encoding="utf-8")
    head, sep, _ = text.partition("\n" + PROVENANCE_HEADING + "\n")
    body = head if sep else text
    write_text(report_path, body.rstrip("\n") + "\n\n" + "\n".join(provenance_lines(prov)))
