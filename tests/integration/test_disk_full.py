"""Reliability: a full disk while a stage writes loses nothing and says so in one paragraph.

There is no root here to mount a small tmpfs, so the stage scripts run with
``RLIMIT_FSIZE`` lowered (and ``SIGXFSZ`` ignored): the write that crosses the limit
fails with ``EFBIG``, exactly where ``ENOSPC`` would on a full disk. Both become
:class:`musicrec.io.DiskFullError` in ``atomic_path``, naming the output being
written; ``musicrec.pipeline.runner.run_stage`` prints it as one paragraph and exits 2. The
temporary is removed and an output that existed before is left untouched.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from musicrec.io import DiskFullError, atomic_path, remove_stale_temporaries, write_text
from tests.support.pipeline import REPO_ROOT, SMALL_PARAMS, deep_update, pipeline_env
from tests.support.reliability_log import record

STAGES = REPO_ROOT / "stages"

# stage -> (command line relative to the work folder, main output, report, file-size limit in bytes)
CASES = {
    "generate": (["generate.py", "--out", "{out}/synthetic"], "{out}/synthetic", None, 64 * 1024),
    "clean": (["clean.py", "--input", "raw/synthetic", "--out", "{out}/interim", "--report", "{out}/dq.json"],
              "{out}/interim", "{out}/dq.json", 16 * 1024),
    "transform": (["transform.py", "--interim", "interim", "--out-plays", "{out}/plays", "--out-items",
                   "{out}/items.parquet", "--report", "{out}/transform.json"], "{out}/plays", "{out}/transform.json",
                  16 * 1024),
    "interactions": (["interactions.py", "--plays", "processed/plays", "--out", "{out}/matrices", "--report",
                      "{out}/interactions.json"], "{out}/matrices", "{out}/interactions.json", 16 * 1024),
}
SETUP = [
    ["generate.py", "--out", "raw/synthetic"],
    ["clean.py", "--input", "raw/synthetic", "--out", "interim", "--report", "reports/dq.json"],
    ["transform.py", "--interim", "interim", "--out-plays", "processed/plays", "--out-items",
     "processed/items.parquet", "--report", "reports/transform.json"],
    ["interactions.py", "--plays", "processed/plays", "--out", "processed/matrices", "--report",
     "reports/interactions.json"],
]
COMPLETE = {"generate": "raw/synthetic", "clean": "interim", "transform": "processed/plays",
            "interactions": "processed/matrices"}


def run_stage_script(work: Path, args: list[str], limit: int | None = None) -> subprocess.CompletedProcess[str]:
    def lower_limit() -> None:  # in the child, before exec: SIGXFSZ ignored -> write() fails with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run([sys.executable, str(STAGES / args[0]), "--params", "params.yaml", *args[1:]], cwd=work,
                          env=pipeline_env(), capture_output=True, text=True, timeout=300,
                          preexec_fn=lower_limit if limit else None)


def tree_md5(path: Path) -> dict[str, str]:
    return {str(f.relative_to(path)): hashlib.md5(f.read_bytes()).hexdigest() for f in sorted(path.rglob("*"))
            if f.is_file()}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder with params.yaml (SMALL_PARAMS) and the complete outputs of generate .. interactions."""
    w = tmp_path_factory.mktemp("diskfull")
    params = deep_update(yaml.safe_load((REPO_ROOT / "params.yaml").read_text()), SMALL_PARAMS)
    (w / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for args in SETUP:
        r = run_stage_script(w, args)
        assert r.returncode == 0, r.stderr
    return w


@pytest.mark.integration
@pytest.mark.parametrize("existing", [False, True], ids=["no-previous-output", "previous-output-kept"])
@pytest.mark.parametrize("stage", list(CASES))
def test_stage_on_a_full_disk_exits_2_naming_the_output(work, stage, existing):
    args, main_out, report, limit = CASES[stage]
    out = f"lim-{stage}-{int(existing)}"
    args = [a.format(out=out) for a in args]
    main_out, report = main_out.format(out=out), report and report.format(out=out)
    if existing:
        shutil.copytree(work / COMPLETE[stage], work / main_out)
        before = tree_md5(work / main_out)
    r = run_stage_script(work, args, limit)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    # the stage's progress lines (its phases' timings), then the one error paragraph
    head, sep, tail = r.stderr.partition(f"musicrec {stage}: error: ")
    assert sep, r.stderr
    assert all(line.startswith(f"{stage}: ") for line in head.splitlines()), head
    msg = sep + " ".join(tail.split())
    assert f"disk full / file too large while writing {main_out}" in msg, msg
    assert "nothing was replaced" in msg
    if existing:
        assert tree_md5(work / main_out) == before, "the previous complete output is untouched"
    else:
        assert not (work / main_out).exists()
    if report:
        assert not (work / report).exists()
    leftovers = [str(p.relative_to(work)) for p in (work / out).rglob(".tmp-*")] if (work / out).exists() else []
    assert not leftovers
    if not existing:  # with space again, the same command succeeds and writes the same bytes as the setup run
        assert run_stage_script(work, args).returncode == 0
        assert tree_md5(work / main_out) == tree_md5(work / COMPLETE[stage])
    record(f"disk_full-{stage}-{'existing' if existing else 'fresh'}", stage=stage, limit_bytes=limit,
           previous_output=existing, exit_code=r.returncode, message=msg, bytes_lost=0,
           outcome="exit 2, output path named, nothing replaced, no temporaries"
           + ("" if existing else "; rerun with space writes identical bytes"))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT])
def test_atomic_path_turns_no_space_into_disk_full_error(tmp_path, code):
    final = tmp_path / "out" / "data.bin"
    write_text(final, "old complete version\n")
    with pytest.raises(DiskFullError) as err, atomic_path(final) as tmp:
        tmp.write_bytes(b"partial")
        raise OSError(code, os.strerror(code))
    assert err.value.errno == code
    assert str(err.value).startswith(f"disk full / file too large while writing {final} ")
    assert final.read_text() == "old complete version\n"
    assert [p.name for p in final.parent.iterdir()] == ["data.bin"]


def test_nested_outputs_report_the_outer_output(tmp_path):
    final = tmp_path / "matrices"
    with pytest.raises(DiskFullError, match=re.escape(f"while writing {final} (")), \
            atomic_path(final, directory=True) as tmp, atomic_path(tmp / "train.npz") as inner:
        inner.write_bytes(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert not list(tmp_path.iterdir())


def test_other_errors_pass_unchanged(tmp_path):
    with pytest.raises(PermissionError), atomic_path(tmp_path / "x"):
        raise PermissionError(errno.EACCES, "denied")


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    final = tmp_path / "plays"
    # names of the PID-based scheme of earlier versions carry no lock: stale, even when the PID in the name
    # is alive (reused); liveness is the lock a writer holds (tests/unit/core/test_temporaries.py)
    stale = [tmp_path / f".tmp-plays-{dead.pid}-abc123", tmp_path / f".tmp-plays-{dead.pid}-abc123-pairs",
             tmp_path / f".tmp-plays-old-{dead.pid}", tmp_path / f".tmp-plays-{os.getpid()}-zzz"]
    alive = [tmp_path / f".tmp-playsx-{dead.pid}-a", tmp_path / f".tmp-items-{dead.pid}-a", tmp_path / "plays-keep"]
    with atomic_path(final, directory=True) as live:  # a live writer of the same output
        for p in stale[:2] + stale[3:]:
            (p / "sub").mkdir(parents=True)
            (p / "sub" / "part.parquet").write_bytes(b"partial")
        for p in stale[2:3] + alive:
            p.write_bytes(b"x")
        removed = remove_stale_temporaries(final)
        assert sorted(removed) == sorted(stale)
        assert live.is_dir() and all(p.exists() for p in alive) and not any(p.exists() for p in stale)
    # atomic_path does it before writing
    (tmp_path / f".tmp-plays-{dead.pid}-again").mkdir()
    with atomic_path(final, directory=True) as tmp:
        (tmp / "part.0.parquet").write_bytes(b"ok")
    assert not (tmp_path / f".tmp-plays-{dead.pid}-again").exists()
