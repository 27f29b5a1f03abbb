"""`make exp-grid` (mk/exp_grid.py): the -S sweep axes expanded into one `dvc exp run --temp` each."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("exp_grid", ROOT / "mk/exp_grid.py")
exp_grid = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(exp_grid)


def test_every_combination_first_axis_slowest():
    grid = exp_grid.combinations(["train.als.factors=32,64", "train.als.alpha=1,4,8"])
    assert len(grid) == 6
    assert grid[0] == ["train.als.factors=32", "train.als.alpha=1"]
    assert grid[-1] == ["train.als.factors=64", "train.als.alpha=8"]


def test_brackets_and_quotes_are_one_value():
    assert exp_grid.axis("train.models=[popularity,als],[popularity,ease]") == (
        "train.models", ["[popularity,als]", "[popularity,ease]"])
    assert exp_grid.axis("data.source='a,b'") == ("data.source", ["'a,b'"])
    assert exp_grid.axis(" seed = 1 ") == ("seed", ["1"])


@pytest.mark.parametrize("bad", ["train.als.factors", "=1,2", "train.als.factors=1,,2"])
def test_malformed_axes_are_named(bad):
    with pytest.raises(ValueError, match="-S"):
        exp_grid.axis(bad)


def test_dry_run_lists_the_experiments_and_runs_nothing(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "mk/exp_grid.py"), "--dry-run", "-S", "a=1,2", "-S", "b=x"],
                       cwd=tmp_path, capture_output=True, text=True, check=True)
    assert r.stdout.splitlines()[:2] == ["exp-grid: 1/2: a=1 b=x", "exp-grid: 2/2: a=2 b=x"]
    r = subprocess.run([sys.executable, str(ROOT / "mk/exp_grid.py"), "-S", "a"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 2 and "expected key=value" in r.stderr and "Traceback" not in r.stderr
