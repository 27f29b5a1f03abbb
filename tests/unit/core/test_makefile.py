"""`make` alone lists every target, from the `## ` comment on each target's line (Makefile and mk/*.mk)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MAKEFILES = [ROOT / "Makefile", *sorted((ROOT / "mk").glob("*.mk"))]
# a rule line: "name: prerequisites" (not a variable assignment "name := ...", not a file target with "/" or ".")
RULE = re.compile(r"^([A-Za-z0-9_-]+)\s*:(?![:=])(.*)$")
make = shutil.which("make")


def rule_lines() -> list[tuple[str, str, str]]:
    return [(f.name, m.group(1), m.group(2)) for f in MAKEFILES for line in f.read_text().splitlines()
            if (m := RULE.match(line))]


def test_the_makefiles_have_rules():
    names = {name for _, name, _ in rule_lines()}
    assert {"help", "repro", "test", "lock", "notebooks", "push", "pull"} <= names


def test_every_target_has_a_one_line_description():
    missing = [f"{f}: {name}" for f, name, rest in rule_lines() if not re.search(r"##\s+\S", rest)]
    assert not missing, "add `## what it does` after these targets' prerequisites: " + ", ".join(missing)


@pytest.mark.skipif(make is None, reason="make is not installed")
def test_make_alone_lists_every_target_with_its_description():
    out = subprocess.run([make, "--no-print-directory"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    listed = dict(re.findall(r"^\s*make (\S+)\s+(.+)$", out, flags=re.M))
    for _, name, rest in rule_lines():
        assert listed.get(name) == rest.split("## ", 1)[1].strip(), name


@pytest.mark.skipif(make is None, reason="make is not installed")
def test_make_notebooks_binds_localhost_with_the_token_on():
    out = subprocess.run([make, "-n", "--no-print-directory", "notebooks"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    lab = [line for line in out.splitlines() if "jupyter lab" in line]
    assert len(lab) == 1
    assert "--ip 127.0.0.1" in lab[0] and "--no-browser" in lab[0]
    assert "token" not in lab[0].lower() and "password" not in lab[0].lower()  # Jupyter's default: a token


@pytest.mark.skipif(make is None, reason="make is not installed")
@pytest.mark.parametrize(("target", "stamp"), [("repro", ".installed"), ("test", ".installed-dev")])
def test_repro_needs_the_runtime_set_and_test_the_dev_set(target, stamp):
    out = subprocess.run([make, "-n", "-B", "--no-print-directory", target], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert "-r requirements.txt" in out
    assert ("-r requirements-dev.txt" in out) == (stamp == ".installed-dev")
