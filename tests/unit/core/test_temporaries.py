"""Liveness of atomic temporaries: decided by the writer's lock, never by a PID.

A temporary ``.tmp-<name>-<token>`` is live while the lock file of its token is
held (``flock``) by the writer; the kernel drops the lock when the writer dies.
A PID says nothing here: a killed stage stays a zombie until it is reaped (and
``kill(pid, 0)`` still succeeds), a PID is reused, and in a container every run
is PID 1 of its own namespace. Each test sets up such a state for certain (a
zombie is waited for with ``waitid(WNOWAIT)``, which does not reap it) and then
checks what a cleaner does, so nothing depends on reaping or scheduling timing.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from musicrec.io import LOCK_SUFFIX, PRELOCK_SUFFIX, TMP_PREFIX, atomic_path, remove_stale_temporaries
from tests.support.pipeline import REPO_ROOT

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "src"),
                                                                  os.environ.get("PYTHONPATH")]))}
# A writer inside atomic_path (a directory with a derived "-pairs" sibling, as transform has, or a file):
# prints "<pid> <temporary>" once it has written, then waits to be killed.
WRITER = r"""
import os, signal, sys
from pathlib import Path
from musicrec.io import atomic_path
final, kind = Path(sys.argv[1]), sys.argv[2]
with atomic_path(final, directory=kind == "dir") as tmp:
    if kind == "dir":
        (tmp / "part.0.parquet").write_bytes(b"partial")
        Path(f"{tmp}-pairs").mkdir()
        Path(f"{tmp}-pairs", "part.0.parquet").write_bytes(b"partial")
    else:
        tmp.write_bytes(b"partial")
    print(os.getpid(), tmp, flush=True)
    while True:
        signal.pause()
"""
CLEANER = ("import json, sys; from pathlib import Path; from musicrec.io import remove_stale_temporaries as clean; "
           "print(json.dumps([str(p) for p in clean(Path(sys.argv[1]))]))")
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]


def start_writer(final: Path, kind: str = "dir", wrapper: list[str] = ()) -> tuple[subprocess.Popen, int, Path]:
    """(process, the writer's PID as it sees it, its temporary) once the writer is inside atomic_path."""
    proc = subprocess.Popen([*wrapper, sys.executable, "-c", WRITER, str(final), kind], env=ENV,
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line, f"the writer did not start (rc {proc.wait()})"
    pid, tmp = line.rstrip("\n").split(" ", 1)
    return proc, int(pid), Path(tmp)


def stop(proc: subprocess.Popen) -> None:
    proc.kill()
    proc.wait()
    proc.stdout.close()


def stat_field(pid: int, index: int) -> str:
    """Field ``index`` (0 = state) after the command name of /proc/<pid>/stat."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[index]


def children(pid: int) -> list[int]:
    kids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int(stat_field(int(p.name), 1)) == pid:
                    kids.append(int(p.name))
            except (OSError, IndexError):  # exited meanwhile
                continue
    return kids


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(TMP_PREFIX))


def token_names(tmp: Path) -> list[Path]:
    """Everything named after the token of temporary ``tmp``: itself, derived siblings, its lock file."""
    return sorted(p for p in tmp.parent.iterdir() if p.name.startswith(tmp.name))


def test_a_live_writers_temporaries_survive_the_cleaner(tmp_path):
    final = tmp_path / "out"
    proc, _, tmp = start_writer(final)
    try:
        names = token_names(tmp)
        assert [p.name for p in names] == [tmp.name, tmp.name + "-pairs", tmp.name + LOCK_SUFFIX]
        assert remove_stale_temporaries(final) == []
        with atomic_path(final, directory=True) as mine:  # another writer of the same output, this process
            assert remove_stale_temporaries(final) == []  # its own lock is held by another open file: live too
            (mine / "part.0.parquet").write_bytes(b"complete")
        assert token_names(tmp) == names and (final / "part.0.parquet").read_bytes() == b"complete"
    finally:
        stop(proc)


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_temporaries_of_a_killed_writer_that_is_still_a_zombie_are_removed(tmp_path, kind):
    final = tmp_path / "out"
    proc, pid, tmp = start_writer(final, kind)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # returns once it is dead; it is NOT reaped
        assert stat_field(pid, 0) == "Z"
        os.kill(pid, 0)  # a zombie's PID still "exists": it cannot tell a live writer from a dead one
        assert tmp.exists()
        with atomic_path(final, directory=kind == "dir") as new:  # the rerun: removes them before it writes
            (new / "part.0.parquet" if kind == "dir" else new).write_bytes(b"complete")
        assert leftovers(tmp_path) == []
        assert stat_field(pid, 0) == "Z", "still unreaped while the rerun cleaned up"
    finally:
        stop(proc)


def test_leftovers_named_after_a_live_unrelated_process_are_removed(tmp_path):
    final = tmp_path / "plays"
    for pid in (os.getpid(), os.getppid()):
        os.kill(pid, 0)  # both alive, and neither is writing anything
    legacy = [tmp_path / f".tmp-plays-{os.getpid()}-abc12345", tmp_path / f".tmp-plays-{os.getpid()}-abc12345-pairs",
              tmp_path / f".tmp-plays-old-{os.getppid()}"]  # the PID-named scheme of earlier versions
    dead = tmp_path / f".tmp-plays-{'0123456789abcdef' * 2}"  # a writer that died: its lock file, held by nobody
    new = [dead, tmp_path / f"{dead.name}-old", tmp_path / f"{dead.name}{LOCK_SUFFIX}",
           tmp_path / f".tmp-plays-{'f' * 32}"]  # a temporary whose writer removed its lock and died
    unrelated = [tmp_path / f".tmp-playsx-{os.getpid()}-abc12345", tmp_path / f".tmp-items-{os.getpid()}-abc12345",
                 tmp_path / f".tmp-plays-2024-{'e' * 32}", tmp_path / f".tmp-plays-2024-x-{'e' * 32}-pairs",
                 tmp_path / "plays-keep"]  # temporaries of the outputs "plays-2024" and "plays-2024-x"
    with atomic_path(final, directory=True) as live:  # a live writer of the same output in this process
        (live / "part.0.parquet").write_bytes(b"complete")
        for p in legacy[:2] + new[:2]:
            (p / "sub").mkdir(parents=True)
            (p / "sub" / "part.parquet").write_bytes(b"partial")
        for p in legacy[2:] + new[2:] + unrelated:
            p.write_bytes(b"x")
        assert sorted(remove_stale_temporaries(final)) == sorted(legacy + new)
        assert live.is_dir() and all(p.exists() for p in unrelated)
        assert not any(os.path.lexists(p) for p in legacy + new)
    assert (final / "part.0.parquet").read_bytes() == b"complete"
    assert leftovers(tmp_path) == sorted(p.name for p in unrelated if p.name.startswith(TMP_PREFIX))


def test_a_leftover_old_directory_named_like_this_run_does_not_fail_it(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "v1.parquet").write_bytes(b"1")
    clash = tmp_path / f".tmp-out-old-{os.getpid()}"  # what a killed run with this PID left (earlier scheme)
    (clash / "sub").mkdir(parents=True)
    (clash / "sub" / "v0.parquet").write_bytes(b"0")
    with atomic_path(final, directory=True) as tmp:
        (tmp / "v2.parquet").write_bytes(b"2")
    assert sorted(p.name for p in final.iterdir()) == ["v2.parquet"]
    assert leftovers(tmp_path) == []


HOLDER = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
          "print('locked', flush=True); sys.stdin.read()")


@pytest.mark.parametrize("suffix", [LOCK_SUFFIX, PRELOCK_SUFFIX])
def test_a_lock_file_decides_whoever_holds_it(tmp_path, suffix):
    """Held by a live process: everything of its token stays. Held by nobody: all of it goes, lock included."""
    final = tmp_path / "out"
    base = tmp_path / f".tmp-out-{'1' * 32}"
    (base / "sub").mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, f"{base}{suffix}"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        assert remove_stale_temporaries(final) == []
        assert base.is_dir() and Path(f"{base}{suffix}").exists()
    finally:
        holder.stdin.close()
        holder.wait()
        holder.stdout.close()
    assert sorted(remove_stale_temporaries(final)) == sorted([base, Path(f"{base}{suffix}")])
    assert leftovers(tmp_path) == []


def test_a_writer_whose_unlocked_lock_a_cleaner_took_starts_again(tmp_path, monkeypatch):
    """The one moment a lock file is unlocked (.lock-new, just created): a cleaner removes it, the writer's
    rename fails, and it starts again with a new token."""
    final = tmp_path / "out"
    real_flock, raced = fcntl.flock, []

    def flock(fd, op):
        if op == fcntl.LOCK_EX and not raced:  # the writer, about to lock its .lock-new
            raced.extend(remove_stale_temporaries(final))
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    with atomic_path(final) as tmp:
        tmp.write_bytes(b"complete")
    assert len(raced) == 1 and raced[0].name.endswith(PRELOCK_SUFFIX), raced
    assert not tmp.name.startswith(raced[0].name.removesuffix(PRELOCK_SUFFIX)), "a new token"
    assert final.read_bytes() == b"complete" and leftovers(tmp_path) == []


@pytest.fixture(scope="module")
def unshare() -> list[str]:
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed: cannot create PID namespaces")
    r = subprocess.run([*UNSHARE, "true"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"not permitted to create a PID namespace here: {' '.join(r.stderr.split())}")
    return UNSHARE


def clean_in_own_namespace(final: Path, unshare: list[str]) -> list[Path]:
    r = subprocess.run([*unshare, sys.executable, "-c", CLEANER, str(final)], env=ENV, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    return sorted(Path(p) for p in json.loads(r.stdout))


@pytest.mark.parametrize("writer_pid", [1, 2], ids=["writer-is-pid-1", "writer-is-pid-2"])
def test_writer_and_cleaner_in_different_pid_namespaces(tmp_path, unshare, writer_pid):
    """PID 1 exists in every namespace (a killed one looked alive forever); PID 2 in none but the writer's
    (a live one looked dead to a run in another container sharing the volume)."""
    final = tmp_path / "interim"
    wrapper = unshare if writer_pid == 1 else [*unshare, "sh", "-c", '"$@" & wait', "sh"]
    proc, pid, tmp = start_writer(final, "dir", wrapper)
    try:
        assert pid == writer_pid
        names = token_names(tmp)
        assert clean_in_own_namespace(final, unshare) == []
        assert token_names(tmp) == names, "a live writer's temporaries survive a cleaner in another namespace"
        (init,) = children(proc.pid)  # the writer's namespace's PID 1, as this namespace numbers it
        os.kill(init, signal.SIGKILL)  # kills every process in that namespace ...
        proc.wait()  # ... and unshare can only reap that init once all of them are gone
        assert clean_in_own_namespace(final, unshare) == names
        assert leftovers(tmp_path) == []
    finally:
        stop(proc)


@pytest.mark.parametrize("rel", [".tmp-x-1234-abcdefgh", f"data/.tmp-interim-{'a' * 32}.lock",
                                 f"data/processed/.tmp-plays-{'a' * 32}-pairs/part.0.parquet",
                                 f"reports/.tmp-train.json-{'a' * 32}.lock-new"])
def test_temporaries_are_git_ignored_at_any_depth(rel):
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    r = subprocess.run(["git", "check-ignore", "--no-index", "-v", rel], cwd=REPO_ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"{rel} is not git-ignored: git add -A would commit it"
