"""The MLflow UI and the devservices tracking server run in MLflow's lightest mode: one worker and
no GenAI job runner (MLflow 3 starts huey job consumers by default: 15 processes / ~2.4 GB RSS for a
local ``mlflow ui`` against 2 / ~0.5 GB), bound to 127.0.0.1; ``make ui`` links the model-training view.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIGHT_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false"


def test_make_ui_starts_a_light_local_ui_and_links_the_model_training_view(tmp_path):
    venv = Path(sys.executable).parent.parent
    r = subprocess.run(["make", "-n", "--no-print-directory", "ui", f"VENV={venv}", "MLFLOW_UI_PORT=5999"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "MUSICREC_SERVICES_DIR": str(tmp_path / "none")})
    assert r.returncode == 0, r.stderr
    recipe = " ".join(r.stdout.split())
    ui = recipe[recipe.index(" ui --backend-store-uri"):]
    assert LIGHT_ENV in recipe and "--workers 1" in ui and "--host 127.0.0.1 --port 5999" in ui
    assert "http://127.0.0.1:5999/#/experiments?workflowType=machine_learning" in recipe
    assert "$url/#/experiments?workflowType=machine_learning" in recipe  # the tracking server's link too


def test_devservices_server_is_light_too(tmp_path):
    from musicrec.devservices.config import ServiceConfig
    from musicrec.devservices.credentials import Credentials
    from musicrec.devservices.mlflow_server import mlflow_env, mlflow_server_command

    cfg = ServiceConfig.on_free_ports(tmp_path)
    cmd = mlflow_server_command(cfg)
    assert cmd[cmd.index("--workers") + 1] == "1" and cmd[cmd.index("--host") + 1] == "127.0.0.1"
    env = mlflow_env(cfg, Credentials("k" * 8, "s" * 24))
    assert "=".join(["MLFLOW_SERVER_ENABLE_JOB_EXECUTION", env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]]) == LIGHT_ENV
