"""What the reliability tests did, as data for ``tests/support/make_reliability_report.py``.

When ``MUSICREC_RELIABILITY_LOG`` names a folder, :func:`record` writes one JSON file
per call there (``<name>.json``); otherwise it does nothing. The tests call it with
what they actually injected and observed, so the numbers in
``reports/reliability.md`` come from a real test run, never from hand-typed text.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

ENV = "MUSICREC_RELIABILITY_LOG"


def record(name: str, **data: Any) -> Path | None:
    folder = os.environ.get(ENV)
    if not folder:
        return None
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    path = out / (re.sub(r"[^\w.-]", "_", name) + ".json")
    path.write_text(json.dumps({"name": name, **data}, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path
