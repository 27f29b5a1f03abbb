"""Reliability: `dvc repro` killed with SIGKILL in the middle of every stage loses nothing.

In a temporary clone (``SMALL_PARAMS``) a chain of ``dvc repro`` runs is started,
each in its own process group. Run *k* is SIGKILLed while stage *k* is writing
(the moment its atomic temporary ``.tmp-<out>-*`` appears next to one of its
outputs), so every stage is interrupted once and then re-executed from scratch
by the next plain ``dvc repro``. Run *k* is started with stage *k*'s outputs in
``$MUSICREC_HOLD_BEFORE_COMMIT`` (``musicrec.io``): their writer waits, its temporary
complete and not renamed, until killed, so the kill lands in stage *k* however
fast the stage is (no race with the polling). After each kill:

* every ``outs`` path of every stage is either absent or complete: a directory
  holds exactly the files of the reference run, each byte-identical (files whose
  content legitimately varies, the fit timings, only have to parse);
* no output path and nothing inside an output folder is a ``.tmp-*`` file;
* DVC accepts the next ``dvc repro`` (no stale lock: its locks are released by
  the kernel when the process dies).

A watcher thread polls every output path during all the runs and checks each
file it sees against the same rule, so a half-written file is never visible at
an output path, not even for a moment. At the end the outputs are byte-identical
to those of an uninterrupted reference run in another clone, and the next
``dvc repro`` removes the temporaries the killed runs left next to the outputs.

Whether a temporary is stale is decided by the lock its writer held, which the
kernel releases when the process dies, not by its PID: a killed stage stays a
zombie until something reaps it (late where PID 1 is slow to reap orphans), and
the rerun cleans up all the same. One test makes sure of it: the stage runs under
a parent that does not reap the processes ``dvc`` leaves (a child subreaper), so
the killed stage is still a zombie when ``dvc repro`` runs again.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from musicrec.io import HOLD_BEFORE_COMMIT_ENV, LOCK_SUFFIX, PRELOCK_SUFFIX, md5_file
from tests.support.pipeline import SMALL_PARAMS, TIMING_REPORTS, dvc, make_clone, pipeline_env
from tests.support.pipeline_clone import reference_clone
from tests.support.reliability_log import record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = SMALL_PARAMS["train"]["models"]
# in the order dvc repro runs them (train@<model> / evaluate@<model>: one stage per model)
STAGES = ["validate", "generate", "clean", "transform", "interactions", "catalog", *(f"train@{m}" for m in MODELS),
          *(f"evaluate@{m}" for m in MODELS), "compare"]
# outputs whose bytes legitimately differ between two runs: reports with timings (file -> the key that holds
# them; everything else in them is compared), and the report, which names a fresh MLflow run id
TIMINGS = {**{f"reports/train/{m}.json": "fit_seconds" for m in MODELS}, **TIMING_REPORTS}
NONDETERMINISTIC = set(TIMINGS) | {"reports/report.md"}
DVC_BIN = str(Path(sys.executable).parent / "dvc")
RUN_TIMEOUT_S = 600
LOCK_REFUSED_RE = re.compile(r"Unable to acquire lock|is busy, it is being blocked by")
STALE_LOCK_RE = re.compile(r"in RWLock-file '[^']+' had been killed\. Auto removed it from the lock file")


def stage_outs(repo: Path) -> dict[str, list[str]]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {s: [o["path"] for o in lock["stages"][s].get("outs", [])] for s in STAGES}


def files_under(repo: Path, out: str) -> list[str]:
    p = repo / out
    if p.is_file():
        return [out]
    if p.is_dir():
        return sorted(str(f.relative_to(repo)) for f in p.rglob("*") if f.is_file())
    return []


def output_md5s(repo: Path, outs: dict[str, list[str]]) -> dict[str, str]:
    return {f: md5_file(repo / f) for o in (x for v in outs.values() for x in v) for f in files_under(repo, o)}


def complete_problem(rel: str, data: bytes, known: dict[str, set[str]]) -> str | None:
    """None when ``data`` is a complete version of output file ``rel``, else what is wrong.

    ``known``: output file -> md5s of its complete versions (the reference run's, and what
    the fresh clone holds from git before any run: the small metrics files are committed).
    """
    import hashlib

    if rel in TIMINGS:
        try:
            doc = json.loads(data)
        except ValueError as err:
            return f"{rel}: not JSON ({err})"
        return None if TIMINGS[rel] in doc else f"{rel}: incomplete JSON"
    if rel == "reports/report.md":  # names its MLflow run; written whole, then with its provenance section
        return None if data.startswith(b"# musicrec evaluation report") and b"\n## Definitions\n" in data \
            else f"{rel}: incomplete report"
    if rel not in known:
        return f"{rel}: not an output file of a complete run"
    got = hashlib.md5(data).hexdigest()
    return None if got in known[rel] else f"{rel}: md5 {got} is none of the complete versions {sorted(known[rel])}"


def state_problems(repo: Path, outs: dict[str, list[str]], versions: list[dict[str, str]],
                   known: dict[str, set[str]]) -> tuple[list[str], dict[str, str]]:
    """(problems, {out: absent|complete}) for every output path right now (nothing is running)."""
    problems, state = [], {}
    for out in (o for v in outs.values() for o in v):
        p = repo / out
        if Path(out).name.startswith(".tmp-"):
            problems.append(f"{out}: output named like a temporary")
        if not p.exists():
            state[out] = "absent"
            continue
        have = files_under(repo, out)
        wants = [sorted(f for f in v if f == out or f.startswith(out + "/")) for v in versions]
        if p.is_dir() and have not in wants:
            problems.append(f"{out}: folder holds {len(have)} files, not the file set of a complete version "
                            f"({[len(w) for w in wants]}): {have[:5]}")
        for f in have:
            if Path(f).name.startswith(".tmp-"):
                problems.append(f"{f}: temporary inside an output")
            elif (why := complete_problem(f, (repo / f).read_bytes(), known)) is not None:
                problems.append(why)
        state[out] = "complete"
    return problems, state


def tmp_leftovers(repo: Path) -> list[str]:
    return sorted(str(p.relative_to(repo)) for p in repo.rglob(".tmp-*")
                  if not str(p.relative_to(repo)).startswith((".git/", ".dvc/")))


class Watcher(threading.Thread):
    """Polls every output path; every file seen there must be a complete version."""

    def __init__(self, repo: Path, outs: dict[str, list[str]], known: dict[str, set[str]]):
        super().__init__(daemon=True)
        self.repo, self.known = repo, known
        self.paths = [o for v in outs.values() for o in v]
        self.stop = threading.Event()
        self.seen: set[tuple] = set()
        self.violations: list[str] = []
        self.polls = 0

    def run(self) -> None:
        while not self.stop.is_set():
            self.polls += 1
            for out in self.paths:
                for f in files_under(self.repo, out):
                    try:
                        st = os.stat(self.repo / f)
                        key = (f, st.st_ino, st.st_size, st.st_mtime_ns)
                        if key in self.seen:
                            continue
                        data = (self.repo / f).read_bytes()
                    except OSError:  # removed by DVC before the stage runs, or replaced meanwhile
                        continue
                    self.seen.add(key)
                    if Path(f).name.startswith(".tmp-"):
                        self.violations.append(f"{f}: temporary visible inside an output")
                    elif (why := complete_problem(f, data, self.known)) is not None:
                        # a file replaced right after our stat is not a violation: check it is still the same
                        try:
                            again = os.stat(self.repo / f)
                        except OSError:
                            continue
                        if (again.st_ino, again.st_size, again.st_mtime_ns) == key[1:]:
                            self.violations.append(why)
            time.sleep(0.005)


def start_repro(repo: Path, log: Path, args: list[str] | None = None, hold: list[str] | None = None) -> subprocess.Popen:
    """``dvc repro`` in its own session; ``hold``: outputs (repo-relative) whose writer waits, its temporary
    complete, until killed (``musicrec.io.HOLD_BEFORE_COMMIT_ENV``), so that the kill lands in that stage
    however fast it runs."""
    fh = open(log, "w")  # noqa: SIM115 - closed by the caller (kill_group or the test)
    env = pipeline_env()
    if hold:
        env[HOLD_BEFORE_COMMIT_ENV] = os.pathsep.join(str(repo / o) for o in hold)
    proc = subprocess.Popen([DVC_BIN, "repro", *(args or [])], cwd=repo, env=env, stdout=fh, stderr=subprocess.STDOUT,
                            start_new_session=True)
    proc.log_file = fh  # type: ignore[attr-defined]
    return proc


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)
    proc.log_file.close()  # type: ignore[attr-defined]


def wait_for_temp(repo: Path, outs: list[str], ended: Callable[[], bool], before: set[str]) -> str | None:
    """Poll (every ~1 ms) until a new temporary ``.tmp-<out>-*`` of one of ``outs`` appears (a lock file is not
    one: the writer takes its lock before it writes); None if ``ended()`` first."""
    watch: dict[Path, list[str]] = {}
    for o in outs:
        watch.setdefault((repo / o).parent, []).append(f".tmp-{Path(o).name}-*")
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        for parent, pats in watch.items():
            try:
                names = os.listdir(parent)
            except FileNotFoundError:
                continue
            for n in names:
                rel = str((parent / n).relative_to(repo))
                if rel not in before and any(fnmatch.fnmatch(n, p) for p in pats) \
                        and not n.endswith((LOCK_SUFFIX, PRELOCK_SUFFIX)):
                    return rel
        if ended():
            return None
        time.sleep(0.001)
    raise AssertionError(f"no temporary output of {outs} within {RUN_TIMEOUT_S}s")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    repo = reference_clone(tmp_path_factory)  # shared with tests/integration/test_security.py (one run per process)
    outs = stage_outs(repo)
    train = {f: {k: v for k, v in json.loads((repo / f).read_text()).items() if k != TIMINGS[f]}
             for f in sorted(TIMINGS)}
    return outs, output_md5s(repo, outs), yaml.safe_load((repo / "dvc.lock").read_text()), train, repo


def test_sigkill_in_every_stage_then_repro_recovers_byte_identical(reference, tmp_path):
    outs, ref, ref_lock, ref_train, _ = reference
    repo = make_clone(tmp_path / "repo", SMALL_PARAMS)
    initial = output_md5s(repo, outs)  # the committed metrics/reports files a fresh clone already holds
    versions = [ref, initial]
    known: dict[str, set[str]] = {}
    for v in versions:
        for f, h in v.items():
            known.setdefault(f, set()).add(h)
    watcher = Watcher(repo, outs, known)
    watcher.start()
    kills, stale_warnings = [], 0
    try:
        for stage in STAGES:
            before = set(tmp_leftovers(repo))
            log = tmp_path / f"repro-kill-{stage}.log"
            t0 = time.monotonic()
            proc = start_repro(repo, log, hold=outs[stage])
            seen = wait_for_temp(repo, outs[stage], lambda: proc.poll() is not None, before)
            kill_group(proc)
            text = log.read_text()
            assert seen is not None, f"dvc repro ended before stage {stage} wrote anything (rc {proc.returncode}):\n{text[-3000:]}"
            assert "Unable to acquire lock" not in text, text[-3000:]
            stale_warnings += len(STALE_LOCK_RE.findall(text))
            running = re.findall(r"Running stage '([\w@]+)'", text)
            assert running and running[-1] == stage, (stage, running)
            problems, state = state_problems(repo, outs, versions, known)
            assert not problems, f"after SIGKILL in {stage}: {problems}"
            left = sorted(set(tmp_leftovers(repo)) - before)
            locks = {p.name: p.read_text(errors="replace") for p in (repo / ".dvc" / "tmp").glob("*lock*") if p.is_file()}
            kills.append({
                "stage": stage, "seconds_after_start": round(time.monotonic() - t0, 2), "temporary_seen": seen,
                "stages_run_by_this_repro": running, "outputs_of_stage_after_kill": {o: state[o] for o in outs[stage]},
                "temporaries_left_by_the_kill": left, "dvc_lock_files_after_kill": sorted(locks),
            })
        final = dvc(["repro"], repo, timeout=RUN_TIMEOUT_S)
    finally:
        watcher.stop.set()
        watcher.join(timeout=30)
    assert "Running stage 'compare'" in final.stdout, final.stdout
    # DVC notices the killed run's entries in .dvc/tmp/rwlock, warns and removes them: no user action needed
    assert "Unable to acquire lock" not in final.stderr, final.stderr
    stale_warnings += len(STALE_LOCK_RE.findall(final.stderr))
    other = [ln for ln in final.stderr.splitlines() if "lock" in ln.lower() and not STALE_LOCK_RE.search(ln)]
    assert not other, other

    # every output file byte-identical to the uninterrupted run (except the fit timings)
    got = output_md5s(repo, outs)
    assert set(got) == set(ref)
    differ = sorted(f for f in ref if got[f] != ref[f])
    assert set(differ) <= NONDETERMINISTIC, differ
    train = {f: {k: v for k, v in json.loads((repo / f).read_text()).items() if k != TIMINGS[f]}
             for f in sorted(TIMINGS)}
    assert train == ref_train
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for s in STAGES:
        want = {o["path"]: o["md5"] for o in ref_lock["stages"][s].get("outs", []) if o["path"] not in NONDETERMINISTIC}
        have = {o["path"]: o["md5"] for o in lock["stages"][s].get("outs", []) if o["path"] not in NONDETERMINISTIC}
        assert have == want, s
    assert not tmp_leftovers(repo), "the next run removes the temporaries a killed run left behind"
    status = dvc(["status"], repo).stdout
    assert "changed" not in status and "modified" not in status, status
    assert not watcher.violations, watcher.violations[:10]
    assert watcher.polls > 100 and len(watcher.seen) > len(ref)

    record("interruption", kill_points=len(kills), kills=kills, stages=STAGES,
           watcher={"polls": watcher.polls, "file_versions_checked": len(watcher.seen),
                    "partial_files_seen": len(watcher.violations)},
           stale_rwlock_warnings=stale_warnings, output_files_compared=len(ref), output_files_identical=len(ref) - len(differ),
           nondeterministic_files=sorted(differ), bytes_lost=0)


# Runs ``dvc <args>`` (argv[2:]) in its own process group as a child subreaper: what dvc leaves behind when
# the test SIGKILLs that group is reparented to the keeper, which waits until each is dead WITHOUT reaping it
# (waitid WNOWAIT), prints their PIDs, and reaps them only when its stdin closes.
KEEPER = r"""
import ctypes, os, subprocess, sys
from pathlib import Path
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER): " + os.strerror(ctypes.get_errno()))
with open(sys.argv[1], "w") as log:
    dvc = subprocess.Popen(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
print(dvc.pid, flush=True)
dvc.wait()
orphans = []
for p in Path("/proc").iterdir():
    try:
        ppid, pgrp = p.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1:3]
    except (OSError, ValueError):
        continue
    if int(ppid) == os.getpid() and int(pgrp) == dvc.pid:
        orphans.append(int(p.name))
for pid in orphans:
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
print(*orphans, flush=True)
sys.stdin.read()
for pid in orphans:
    os.waitpid(pid, 0)
"""


def process_state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_sigkilled_stage_still_a_zombie_then_repro_cleans_up(reference, tmp_path):
    outs, ref, _, _, _ = reference
    stage = "transform"  # a directory output written by Dask threads, with a derived "-pairs" temporary
    upto = STAGES[:STAGES.index(stage) + 1]
    repo = make_clone(tmp_path / "repo", SMALL_PARAMS)
    log = tmp_path / "repro-kill-unreaped.log"
    keeper = subprocess.Popen([sys.executable, "-c", KEEPER, str(log), DVC_BIN, "repro", stage], cwd=repo,
                              env=pipeline_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        dvc_pid = int(keeper.stdout.readline())
        seen = wait_for_temp(repo, outs[stage], lambda: not Path(f"/proc/{dvc_pid}").exists(), set())
        os.killpg(dvc_pid, signal.SIGKILL)
        zombies = [int(p) for p in keeper.stdout.readline().split()]
        text = log.read_text()
        assert seen is not None, f"dvc repro ended before stage {stage} wrote anything:\n{text[-3000:]}"
        assert re.findall(r"Running stage '([\w@]+)'", text)[-1] == stage, text[-3000:]
        assert zombies and all(process_state(p) == "Z" for p in zombies), zombies
        left = tmp_leftovers(repo)
        assert seen in left, (seen, left)
        rerun = dvc(["repro", stage], repo, timeout=RUN_TIMEOUT_S)
        assert f"Running stage '{stage}'" in rerun.stdout, rerun.stdout
        assert all(process_state(p) == "Z" for p in zombies), "the killed stage was reaped before the rerun"
        assert not tmp_leftovers(repo), f"the rerun left the killed (unreaped) stage's temporaries: {left}"
        got = {f: h for f, h in output_md5s(repo, {s: outs[s] for s in upto}).items() if f not in NONDETERMINISTIC}
        assert got == {f: h for f, h in ref.items() if f in got} and got, "outputs differ from the reference run"
        assert set(got) == set(output_md5s(reference[4], {s: outs[s] for s in upto})) - NONDETERMINISTIC
    finally:
        keeper.stdin.close()
        keeper.wait(timeout=60)
        keeper.stdout.close()


def test_second_repro_while_one_runs_is_refused_and_the_first_completes(reference, tmp_path):
    outs, ref, ref_lock, _, repo = reference
    first = start_repro(repo, tmp_path / "first.log", ["--force", "--single-item", "train@als"])
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while "Running stage 'train@als'" not in (tmp_path / "first.log").read_text():
        assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
        time.sleep(0.05)
    second = subprocess.run([DVC_BIN, "repro"], cwd=repo, env=pipeline_env(), capture_output=True, text=True,
                            timeout=RUN_TIMEOUT_S)
    still_running = first.poll() is None
    rc = first.wait(timeout=RUN_TIMEOUT_S)
    first.log_file.close()  # type: ignore[attr-defined]
    log = (tmp_path / "first.log").read_text()
    assert still_running, "the first repro must still hold the lock when the second starts"
    assert second.returncode != 0
    # DVC 3 holds per-path read/write locks (.dvc/tmp/rwlock) while stages run: the second repro stops at the
    # first stage whose outputs or deps the first one holds ("... is busy, it is being blocked by: (PID n)")
    assert LOCK_REFUSED_RE.search(second.stderr), second.stderr
    assert str(first.pid) in second.stderr or "Unable to acquire lock" in second.stderr, second.stderr
    assert "Running stage" not in second.stdout, second.stdout
    assert rc == 0, log
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    models = {o["path"]: o["md5"] for o in lock["stages"]["train@als"]["outs"]}
    assert models["data/models/als"] == \
        {o["path"]: o["md5"] for o in ref_lock["stages"]["train@als"]["outs"]}["data/models/als"]
    for s in STAGES:
        if s != "train@als":
            assert lock["stages"][s] == ref_lock["stages"][s], f"{s} changed although the second repro was refused"
    status = dvc(["status", "train@als"], repo).stdout
    assert "changed" not in status and "modified" not in status, status
    record("concurrent_repro", second_returncode=second.returncode, second_message=" ".join(second.stderr.split())[:300],
           first_returncode=rc, outcome="second refused with DVC's lock error; first completed, outputs unchanged")
