"""Small models folders for the app's tests (tests/unit/serving/test_app_*.py, tests/integration/test_app_browser.py).

:func:`tiny_workspace` trains every model family on a tiny generated dataset once per test session
(``tests/unit/serving/test_cli.py``'s builder) into ``<basetemp>/app-tiny``; :func:`variant` copies its
models folder and changes it (drop models, add preview URLs to the catalogue).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

ALL_MODELS = ["popularity", "itemknn", "als", "content", "hybrid"]


def tiny_workspace(base: Path) -> Path:
    """A workspace root with ``data/models`` (all of :data:`ALL_MODELS`) and ``data/processed``, built once."""
    root = base / "app-tiny"
    if not (root / "data/models/hybrid/model.json").is_file():
        from tests.unit.serving.test_cli import build_pipeline_output

        shutil.rmtree(root, ignore_errors=True)
        build_pipeline_output(root, models=ALL_MODELS)
    return root


def variant(root: Path, dest: Path, *, drop: tuple[str, ...] = (),
            catalog: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> Path:
    """A copy of ``root``'s models folder under ``dest`` without the models ``drop``, its catalogue passed
    through ``catalog``; returns the new models folder."""
    out = dest / "models"
    shutil.copytree(root / "data/models", out)
    for name in drop:
        shutil.rmtree(out / name)
    if catalog is not None:
        df = catalog(pd.read_parquet(out / "catalog.parquet"))
        df.to_parquet(out / "catalog.parquet", index=False)
    return out


def with_previews(df: pd.DataFrame) -> pd.DataFrame:
    """The catalogue with a preview URL on every other track (and a local path, never to be served, on one)."""
    from musicrec.pipeline.catalog import PREVIEW_COLUMN

    urls: list[str | None] = [f"https://p.scdn.co/mp3-preview/{i:040x}" if i % 2 == 0 else None for i in range(len(df))]
    urls[1] = "/etc/passwd"
    return df.assign(**{PREVIEW_COLUMN: urls})
