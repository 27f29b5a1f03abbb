"""`make pull`'s check: which cached outs of dvc.lock the remote lacks, one line each with what to run.

A two-stage DVC project in a temporary folder with a local-directory remote: stage ``a`` is pushed,
stage ``b`` is not (what happens when dvc.lock is committed without `dvc push`). A second clone then
cannot pull ``b``; the check names it, says why and what to run, and how to pull the rest.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.pipeline import dvc, pipeline_env, run

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

DVC_YAML = """\
stages:
  a:
    cmd: python -c "open('a.txt', 'w').write('a')"
    outs: [a.txt]
  b:
    cmd: python -c "import os; os.makedirs('b', exist_ok=True); open('b/x.txt', 'w').write('b')"
    outs: [b]
  c:
    cmd: python -c "open('c.json', 'w').write('{}')"
    outs:
      - c.json:
          cache: false
"""


def git(args: list[str], cwd: Path) -> None:
    run(["git", *args], cwd)


@pytest.fixture
def repos(tmp_path):
    """(origin: built, only stage a pushed; clone: a fresh clone of it; remote folder)."""
    origin, remote = tmp_path / "origin", tmp_path / "remote"
    origin.mkdir()
    remote.mkdir()
    git(["init", "-q", "-b", "main"], origin)
    dvc(["init", "-q"], origin)
    (origin / "dvc.yaml").write_text(DVC_YAML)
    dvc(["remote", "add", "-d", "store", str(remote)], origin)
    dvc(["repro", "-q"], origin)
    dvc(["push", "a"], origin)
    git(["add", "-A"], origin)
    git(["commit", "-q", "-m", "pipeline"], origin)
    clone = tmp_path / "clone"
    git(["clone", "-q", str(origin), str(clone)], tmp_path)
    return origin, clone, remote


def check(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = pipeline_env({"PYTHONPATH": str(ROOT / "src")})
    return subprocess.run([sys.executable, "-m", "musicrec.devservices", "check-pull", "--repo", str(cwd),
                           "--dir", str(cwd / ".services")], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_outs_status_sees_remote_and_cache(repos):
    from musicrec.devservices.dvc_remote import outs_status

    origin, clone, _ = repos
    by_path = {s.path: s for s in outs_status(origin)}
    assert set(by_path) == {"a.txt", "b"}  # c.json is cache: false (in git)
    assert (by_path["a.txt"].in_remote, by_path["a.txt"].in_cache) == (True, True)
    assert (by_path["b"].in_remote, by_path["b"].in_cache) == (False, True)  # built here, never pushed
    by_path = {s.path: s for s in outs_status(clone)}
    assert (by_path["a.txt"].in_remote, by_path["a.txt"].in_cache) == (True, False)
    assert (by_path["b"].in_remote, by_path["b"].in_cache) == (False, False)
    assert by_path["b"].stage == "b"


def test_the_check_names_each_missing_out_and_what_to_run(repos):
    origin, clone, _ = repos
    proc = check(clone)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, proc.stderr
    assert lines[0].startswith("error: b (stage b): not in DVC remote 'store' nor in the local cache")
    assert "`dvc repro b`" in lines[0] and "`make push` on the machine that built it" in lines[0]
    assert lines[1] == "the other stages' outs can be pulled with: dvc pull a"
    assert "Traceback" not in proc.stderr
    assert check(origin).returncode == 0  # the machine that built it has b in its cache
    # what it says works: pull the rest, rebuild the missing stage
    dvc(["pull", "a"], clone)
    assert (clone / "a.txt").read_text() == "a"


def test_after_pushing_everything_the_check_passes_and_pull_works(repos):
    origin, clone, _ = repos
    dvc(["push"], origin)
    proc = check(clone)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "every out in dvc.lock can be pulled from DVC remote 'store' (2 outs)"
    dvc(["pull"], clone)
    assert (clone / "b" / "x.txt").read_text() == "b"


def test_a_folder_out_with_a_file_missing_from_the_remote_is_missing(repos):
    origin, clone, remote = repos
    dvc(["push"], origin)
    blob = next(p for p in (remote / "files" / "md5").rglob("*") if p.is_file() and not p.name.endswith(".dir")
                and p.read_bytes() == b"b")
    blob.unlink()
    proc = check(clone)
    assert proc.returncode == 1 and "error: b (stage b): not in DVC remote 'store'" in proc.stderr
    shutil.rmtree(remote)
