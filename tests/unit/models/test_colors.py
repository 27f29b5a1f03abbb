"""One colour per model, from the registry, in every figure."""

from __future__ import annotations

import re

import numpy as np
import pytest

from musicrec.models import MODELS

EXPECTED = {"popularity": "#7f7f7f", "itemknn": "#1f77b4", "als": "#d62728", "bpr": "#ff7f0e",
            "ease": "#2ca02c", "rp3beta": "#9467bd", "content": "#8c564b", "hybrid": "#e377c2"}


def test_every_model_has_its_own_colour():
    colours = {name: spec.color for name, spec in MODELS.items()}
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in colours.values()), colours
    assert len(set(colours.values())) == len(colours), "two models share a colour"
    assert {n: colours[n] for n in EXPECTED} == EXPECTED  # the DVC plot templates use the same values


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255


def test_report_figures_draw_each_model_in_its_colour(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from musicrec.evaluation.report import make_figures
    from musicrec.pipeline.evaluate import Assessment

    names = ["als", "popularity", "itemknn"]
    seg = {s: {"metrics": {"ndcg@10": 0.1 + 0.1 * i}, "n_users": 5} for i, s in enumerate(("light", "medium", "heavy"))}
    a = Assessment(results={n: {"segments": seg} for n in names}, validation={}, comparisons={},
                   curve=[{"model": n, "k": k, "ndcg": 0.1 * k, "recall": 0.05 * k, "precision": 0.3 / k}
                          for n in names for k in (1, 5, 10)],
                   recs={}, test_users=np.arange(3))
    summary = {"item_popularity_sorted": np.array([50, 20, 5, 1])}
    files = make_figures(tmp_path, summary, a, 10)
    for fig in ("metrics_at_k", "segments"):
        pixels = imread(tmp_path / files[fig])[..., :3].reshape(-1, 3)
        for n in names:
            closest = np.abs(pixels - _rgb(MODELS[n].color)).max(axis=1).min()
            assert closest < 0.02, f"{fig}: no pixel in {n}'s colour {MODELS[n].color}"
        for other in ("bpr", "ease"):  # not drawn: their colours do not appear
            assert np.abs(pixels - _rgb(MODELS[other].color)).max(axis=1).min() > 0.02, (fig, other)
