"""The setup every benchmark script shares: import this checkout's ``src`` and pin the BLAS threads.

Scripts in ``benchmarks/`` are run as ``python benchmarks/<script>.py``, so this folder is on
``sys.path`` and they import each other as top-level modules (``from bench_env import ...``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# one BLAS thread per process: the benchmarks measure the libraries' own threading (implicit: OpenMP)
THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def use_checkout(**env: str) -> None:
    """Put this checkout's ``src`` first on ``sys.path`` (then its root, for ``tests.support``) and default the
    thread variables (and ``env``)."""
    sys.path[:0] = [str(REPO / "src"), str(REPO)]
    for var, val in {**THREAD_ENV, **env}.items():
        os.environ.setdefault(var, val)
