"""Runtime and development requirements: the names once (requirements*.in), the pins in the .txt files.

pyproject.toml's dependencies are read from requirements.in (setuptools dynamic metadata), every runtime
name is pinned in requirements.txt, and requirements-dev.txt holds the same runtime pins plus the dev ones.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def names(path: Path) -> list[str]:
    """Top-level requirement names of a .in file (extras dropped; -r / -c lines skipped)."""
    out = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(canonical(re.match(r"[A-Za-z0-9_.-]+", line).group(0)))
    return out


def pins(path: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", path.read_text(), flags=re.M)
    return {canonical(n): v for n, v in found}


def test_pyproject_reads_its_dependencies_from_requirements_in():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "dependencies" in project["project"]["dynamic"]
    assert "dependencies" not in project["project"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["dependencies"]
    assert dynamic == {"file": ["requirements.in"]}


def test_requirements_in_has_names_only():
    # setuptools reads requirements.in as a list of requirements: no pip options, no pins (they are in .txt)
    for line in (ROOT / "requirements.in").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        assert not line.startswith("-"), line
        assert not re.search(r"[=<>~!]", line), f"requirements.in: pin {line!r} in requirements.txt (make lock)"


def test_every_runtime_name_is_pinned():
    runtime = pins(ROOT / "requirements.txt")
    missing = [n for n in names(ROOT / "requirements.in") if n not in runtime]
    assert not missing, f"not pinned in requirements.txt (run make lock): {missing}"


def test_dev_pins_are_the_runtime_pins_plus_the_dev_names():
    runtime, dev = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-dev.txt")
    assert {n: dev.get(n) for n in runtime} == runtime
    missing = [n for n in names(ROOT / "requirements-dev.in") if n not in dev]
    assert not missing, f"not pinned in requirements-dev.txt (run make lock): {missing}"
    assert "-c requirements.txt" in (ROOT / "requirements-dev.in").read_text()


def test_test_only_packages_stay_out_of_the_runtime_set():
    runtime = pins(ROOT / "requirements.txt")
    for name in ("pytest", "hypothesis", "duckdb", "jupyterlab", "nbclient", "ipykernel", "pip-tools", "moto"):
        assert name not in runtime, name
