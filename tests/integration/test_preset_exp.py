"""``make exp PRESET=hetrec_lastfm_2k`` in a temporary clone: the preset's values, per-model weighting included,
reach ``dvc exp run`` and the experiment's metrics are the ones ``benchmarks/tune_hetrec.py`` recorded.

The clone holds the HetRec zip as the README says (``data/raw/hetrec_lastfm_2k/``, tracked by DVC).
``make`` runs with ``-o .venv/.installed`` and this interpreter (``PY``/``DVC``), so it builds no venv.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.pipeline import HETREC_ZIP, clone_tracking_hetrec, dvc, model_metrics, run

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXP = "preset-hetrec"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    import sys

    if not HETREC_ZIP.is_file():
        pytest.skip(f"HetRec Last.fm 2K zip not found at {HETREC_ZIP}")
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    repo = clone_tracking_hetrec(tmp_path_factory.mktemp("preset") / "repo")  # README, "Using the real datasets"
    bin_dir = Path(sys.executable).parent
    out = run(["make", "-o", ".venv/.installed", "exp", "PRESET=hetrec_lastfm_2k", f"PY={sys.executable}",
               f"DVC={bin_dir / 'dvc'}", f"EXP_ARGS=-n {EXP} -S evaluate.bootstrap=0"], repo, timeout=2400)
    shown = json.loads(dvc(["exp", "show", "--json"], repo).stdout)
    found = [r.get("data") or {} for rev in shown for exp in rev.get("experiments") or []
             for r in exp.get("revs", []) if r.get("name") == EXP]
    assert len(found) == 1, out.stdout[-2000:]
    return found[0]


def test_the_experiment_has_the_preset_values(experiment):
    from musicrec.tuning.presets import flatten, load_preset

    params = flatten(experiment["params"]["params.yaml"]["data"])
    for key, value in load_preset("hetrec_lastfm_2k", params_path=REPO / "params.yaml", root=REPO).items():
        assert params[key] == value, key


def test_the_experiment_reproduces_the_recorded_numbers(experiment):
    metrics = model_metrics(experiment["metrics"])
    recorded = json.loads((REPO / "reports/hetrec_tuned.json").read_text())["models"]
    for name, rec in recorded.items():
        assert metrics[name]["ndcg@10"] == pytest.approx(rec["test"]["ndcg@10"], abs=0.01), name
        assert metrics[name]["val_ndcg@10"] == pytest.approx(rec["validation"]["ndcg@10"], abs=0.01), name
