"""Write the model colours of the DVC plot templates (.dvc/plots/musicrec_*.json) from the model registry.

    python mk/plot_templates.py     # after adding a model to musicrec.models.MODELS

Each template's colour scale gets ``domain`` = the registered model names and ``range`` = their
``ModelSpec.color``, in registry order, so every model keeps its colour in `dvc plots show`
(tests/integration/test_dvc_plots.py checks the templates agree with the registry).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
TEMPLATES = ROOT / ".dvc" / "plots"


def main() -> int:
    from musicrec.models import MODELS

    for path in sorted(TEMPLATES.glob("musicrec_*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        scale = doc["encoding"]["color"]["scale"]
        scale["domain"] = list(MODELS)
        scale["range"] = [spec.color for spec in MODELS.values()]
        path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"{path.relative_to(ROOT)}: {len(MODELS)} model colours")
    return 0


if __name__ == "__main__":
    sys.exit(main())
