"""The ``generate`` stage: the deterministic synthetic twin of the Kaggle files, from the ``generate`` params.

The generator itself is :mod:`musicrec.ingest.synthetic` (it writes a raw source in its
published shape, like the files users download); this module is the stage's entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from musicrec.ingest.synthetic import write_synthetic

if TYPE_CHECKING:
    from musicrec.config import Params


def run(params: Params, out_dir: Path) -> dict[str, Any]:
    """Write ``Music Info.csv`` and ``User Listening History.csv`` into ``out_dir`` (atomically); return the summary."""
    return write_synthetic(Path(out_dir), params.generate, params.seed, chunk_rows=params.data.chunk_rows)
