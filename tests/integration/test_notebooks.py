"""Both notebooks execute top to bottom (nbclient) against a small pipeline output.

The output is built once in a temporary folder by running the real stage
scripts (so that ``reports/`` and an MLflow store exist); the notebooks'
parameters cells are replaced with that folder's paths before execution.
The notebooks are stored without outputs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.pipeline import SMALL_PARAMS, deep_update, pipeline_env, run

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
STAGES = ROOT / "stages"


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """generate -> ... -> evaluate by the stage scripts, small sizes, in a scratch folder."""
    from musicrec.config import GenerateParams
    from musicrec.ingest.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("nb")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    deep_update(params, SMALL_PARAMS)
    deep_update(params, {"generate": {"n_tracks": 800, "n_users": 600, "n_plays": 20_000, "n_artists": 150},
                         "train": {"models": ["popularity", "itemknn", "als", "content", "hybrid"]}})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    g = params["generate"]
    write_synthetic(root / "data/raw/synthetic", GenerateParams(**g), seed=params["seed"])
    py, env = sys.executable, pipeline_env()
    for cmd in (
        [py, STAGES / "clean.py", "--input", "data/raw/synthetic", "--out", "data/interim",
         "--report", "reports/data_quality.json"],
        [py, STAGES / "transform.py", "--interim", "data/interim", "--out-plays", "data/processed/plays",
         "--out-items", "data/processed/items.parquet", "--report", "reports/transform.json"],
        [py, STAGES / "interactions.py", "--plays", "data/processed/plays", "--out", "data/processed/matrices",
         "--report", "reports/interactions.json"],
        [py, STAGES / "catalog.py", "--matrices", "data/processed/matrices", "--items", "data/processed/items.parquet",
         "--out", "data/models"],
        *([py, STAGES / "train.py", "--model", m, "--matrices", "data/processed/matrices", "--items",
           "data/processed/items.parquet", "--out", f"data/models/{m}", "--report", f"reports/train/{m}.json"]
          for m in params["train"]["models"]),
        *([py, STAGES / "evaluate.py", "--model", m, "--matrices", "data/processed/matrices", "--items",
           "data/processed/items.parquet", "--model-dir", f"data/models/{m}", "--out", f"data/evaluation/{m}"]
          for m in params["train"]["models"]),
        [py, STAGES / "compare.py", "--evaluation", "data/evaluation", "--matrices", "data/processed/matrices",
         "--items", "data/processed/items.parquet", "--models", "data/models", "--catalog", "data/models/catalog.parquet", "--metrics", "reports/metrics.json",
         "--details", "reports/evaluation.json", "--plots", "reports/plots", "--report", "reports/report.md",
         "--figures", "reports/figures"],
    ):
        run([str(c) for c in cmd[:2]] + ["--params", "params.yaml"] + [str(c) for c in cmd[2:]], root, env)
    assert (root / "mlflow.db").exists()
    return root


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """Make kernel ``python3`` run this interpreter, with ``musicrec`` importable."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "PYTHONPATH", "MPLBACKEND")}
    # `import streamlit` (the app's tests, earlier in the session) sets MPLBACKEND=Agg for this process; a
    # kernel inheriting it draws no inline figures
    os.environ.pop("MPLBACKEND", None)
    src = str(ROOT / "src")
    os.environ["PYTHONPATH"] = src + (os.pathsep + saved["PYTHONPATH"] if saved["PYTHONPATH"] else "")
    try:
        argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
    except NoSuchKernel:
        argv0 = None
    # jupyter_client runs a spec whose argv[0] is "python" with sys.executable itself
    if argv0 not in ("python", f"python{sys.version_info[0]}", sys.executable):
        from ipykernel.kernelspec import install

        prefix = tmp_path_factory.mktemp("kernelspec")
        install(kernel_name="python3", prefix=str(prefix))  # argv: this sys.executable
        os.environ["JUPYTER_PATH"] = str(prefix / "share" / "jupyter") + (
            os.pathsep + saved["JUPYTER_PATH"] if saved["JUPYTER_PATH"] else "")
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def load(name: str):
    return nbformat.read(NOTEBOOKS / name, as_version=4)


def execute(nb, params_source: str, cwd: Path):
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    cells[0].source = params_source
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return nb


def outputs_text(nb) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            parts.append(o.get("text", ""))
            parts.extend(str(v) for k, v in o.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


def images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.parametrize("name", ["01_explore_data.ipynb", "02_compare_models.ipynb"])
def test_notebooks_are_stored_clean(name):
    nb = load(name)
    nbformat.validate(nb)
    for c in nb.cells:
        if c.cell_type == "code":
            assert not c.outputs and c.execution_count is None, f"{name}: commit the notebook without outputs"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for forbidden in ("build_model", ".fit(", "train_all", "assess(", "build_interactions", "write_json"):
        assert forbidden not in source, f"{name}: no pipeline logic in notebooks ({forbidden})"


def test_explore_notebook_runs(project, kernel_env):
    nb = execute(load("01_explore_data.ipynb"), f'DATA_DIR = "{project / "data"}"', project)
    text = outputs_text(nb)
    assert "(user, track) pairs" in text
    assert "top 1% of tracks" in text
    assert images(nb) >= 4


def test_compare_notebook_runs_with_mlflow(project, kernel_env):
    src = (f'REPORTS_DIR = "{project / "reports"}"\nMLFLOW_URI = "sqlite:///{project / "mlflow.db"}"\n'
           'EXPERIMENT = "musicrec"\nMAIN_K = 10')
    nb = execute(load("02_compare_models.ipynb"), src, project)
    text = outputs_text(nb)
    assert "models: als, content, hybrid, itemknn, popularity" in text
    assert "1 run(s) in experiment 'musicrec'" in text
    assert "als.ndcg_10" in text
    assert images(nb) >= 4


def test_compare_notebook_runs_without_mlflow_store(project, kernel_env, tmp_path):
    src = (f'REPORTS_DIR = "{project / "reports"}"\nMLFLOW_URI = "sqlite:///{tmp_path / "none.db"}"\n'
           'EXPERIMENT = "musicrec"\nMAIN_K = 10')
    nb = execute(load("02_compare_models.ipynb"), src, project)
    assert "no MLflow store" in outputs_text(nb)
    assert not (tmp_path / "none.db").exists()


def test_notebooks_find_the_repo_root_from_another_cwd_and_mlflow_from_the_environment(project, kernel_env,
                                                                                       monkeypatch):
    """With the parameters as committed (None): paths from the folder holding dvc.yaml, MLflow from the env."""
    import shutil

    shutil.copy(ROOT / "dvc.yaml", project / "dvc.yaml")  # what marks a checkout's root
    cwd = project / "notebooks" / "deeper"
    cwd.mkdir(parents=True, exist_ok=True)
    elsewhere = project / "elsewhere.db"
    shutil.copy(project / "mlflow.db", elsewhere)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{elsewhere}")
    for name, needle in (("01_explore_data.ipynb", "(user, track) pairs"),
                         ("02_compare_models.ipynb", f"MLflow store: sqlite:///{elsewhere}")):
        nb = load(name)
        committed = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert "= None" in committed, f"{name}: commit the parameters as None (found from the repo root)"
        text = outputs_text(execute(nb, committed, cwd))
        assert needle in text, (name, text[-2000:])
        assert "e+0" not in text, f"{name}: a number in scientific notation"
    assert "1 run(s) in experiment 'musicrec'" in text
