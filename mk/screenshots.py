"""README's screenshots of the MLflow run page and the DVC plots page, with headless Chromium from the OS.

    make screenshots            # after make repro: writes reports/screenshots/{mlflow-run,dvc-plots}.png

The MLflow page: `mlflow ui` in its light mode (one worker, no job runner) on a free 127.0.0.1 port over
the repository's store (``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db``), opened at the newest run
of the ``mlflow.experiment`` experiment; stopped by its PID. The plots page: ``dvc plots show``
(offline template), opened from ``dvc_plots/index.html``. Needs /usr/bin/chromium and
/usr/bin/chromedriver (Debian: ``apt-get install chromium chromium-driver``) and selenium (dev).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

CHROMIUM = os.environ.get("MUSICREC_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MUSICREC_CHROMEDRIVER", "/usr/bin/chromedriver")
START_TIMEOUT_S = 120  # a broken start fails instead of hanging


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1600,1100", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def wait_for(driver, css: str, timeout: float = 60) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.3).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))


def latest_run(store: str, experiment: str) -> tuple[str, str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise SystemExit(f"no MLflow experiment {experiment!r} in {store}: run make repro first")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise SystemExit(f"experiment {experiment!r} in {store} has no run: run make repro first")
    return exp.experiment_id, runs[0].info.run_id


def mlflow_page(driver, out: Path, store: str, experiment: str) -> None:
    from musicrec.devservices.process import free_ports, http_ok

    exp_id, run_id = latest_run(store, experiment)
    port = free_ports(1)[0]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--host",
                             "127.0.0.1", "--port", str(port), "--workers", "1"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not http_ok(f"{base}/health"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"mlflow ui did not start (exit {proc.poll()})")
            time.sleep(0.3)
        driver.get(f"{base}/#/experiments/{exp_id}/runs/{run_id}?workflowType=machine_learning")
        wait_for(driver, '[data-testid="run-page-tabs"], [role="tablist"]')
        time.sleep(2)  # let the overview's tables draw; the page has no "done" signal
        driver.save_screenshot(str(out))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def plots_page(driver, out: Path) -> None:
    subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--out", "dvc_plots"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    driver.get((ROOT / "dvc_plots/index.html").as_uri())
    wait_for(driver, ".vega-embed canvas, .vega-embed svg")
    time.sleep(1)
    driver.save_screenshot(str(out))


def main(argv: list[str] | None = None) -> int:
    from musicrec.config import load_params

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "reports/screenshots"))
    a = ap.parse_args(argv)
    for exe in (CHROMIUM, CHROMEDRIVER):
        if not Path(exe).is_file():
            raise SystemExit(f"{exe} not found: apt-get install chromium chromium-driver (Debian/Ubuntu)")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    store = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{ROOT / 'mlflow.db'}"
    driver = browser()
    try:
        mlflow_page(driver, out / "mlflow-run.png", store, load_params(ROOT / "params.yaml").mlflow.experiment)
        plots_page(driver, out / "dvc-plots.png")
    finally:
        driver.quit()
    print(f"wrote {out / 'mlflow-run.png'} and {out / 'dvc-plots.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
