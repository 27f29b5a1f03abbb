"""Reliability: the S3 remote stops during `dvc push`, or serves a corrupted object to `dvc pull`.

A dedicated SeaweedFS (not the session fixture: these tests stop and restart it on
the same ports and data folder) behind temporary repos that use the project's own
``.dvc/config`` (remote ``s3``, ``verify = true``) with the URL pointed at a test prefix.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from conftest import seaweed_test_config
from musicrec.devservices.config import ServiceConfig, ServiceError
from musicrec.devservices.credentials import Credentials
from musicrec.devservices.dvc_remote import write_dvc_config_local
from musicrec.devservices.process import service_pid, stop_service
from musicrec.devservices.seaweedfs import s3_client, start_seaweedfs, weed_binary
from tests.support.pipeline import REPO_ROOT, pipeline_env
from tests.support.reliability_log import record

pytestmark = pytest.mark.integration

DVC = str(Path(sys.executable).parent / "dvc")


def sh(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, cwd=cwd, env=pipeline_env(), capture_output=True, text=True, timeout=300)
    if check:
        assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def md5s(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def weed(tmp_path_factory):
    """``(cfg, creds)`` of a SeaweedFS this module may stop and restart (same ports, same data folder)."""
    try:
        weed_binary()
    except ServiceError as exc:
        pytest.skip(str(exc))
    cfg, creds = seaweed_test_config(tmp_path_factory.mktemp("weed-restartable"), startup_timeout_s=90)
    try:
        start_seaweedfs(cfg, creds)
    except ServiceError as exc:
        pytest.skip(f"SeaweedFS could not start: {exc}")
    try:
        yield cfg, creds
    finally:
        pid = service_pid(cfg, "seaweedfs")
        stop_service(cfg, "seaweedfs", grace_s=3)
        assert pid is None or not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def project_repo(path: Path, cfg: ServiceConfig, creds: Credentials, url: str) -> Path:
    """A git + DVC repo with the project's .dvc/config; endpoint, keys and a test URL in config.local."""
    path.mkdir(parents=True)
    sh(["git", "init", "-q"], path)
    sh([DVC, "init", "-q"], path)
    shutil.copy(REPO_ROOT / ".dvc" / "config", path / ".dvc" / "config")
    local(path, cfg, creds, url)
    return path


def local(repo: Path, cfg: ServiceConfig, creds: Credentials, url: str) -> None:
    write_dvc_config_local(repo, cfg.s3_endpoint, creds)
    sh([DVC, "remote", "modify", "--local", "s3", "url", url], repo)


def add_data(repo: Path, n: int, size: int) -> dict[str, str]:
    d = repo / "data"
    d.mkdir()
    for i in range(n):
        (d / f"blob{i:02d}.bin").write_bytes(os.urandom(size))
    sh([DVC, "add", "data"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-qm", "data"], repo)
    return md5s(d)


def remote_keys(cfg, creds, prefix: str, client=None) -> list[str]:
    client = client or s3_client(cfg.s3_endpoint, creds, timeout_s=2)
    out, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = client.list_objects_v2(Bucket=cfg.bucket, Prefix=prefix + "/", **kw)
        out += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


def test_project_remote_verifies_downloads():
    text = (REPO_ROOT / ".dvc" / "config").read_text()
    section = text.split("['remote \"s3\"']", 1)[1]
    assert "verify = true" in section


@pytest.mark.slow
def test_s3_stopped_during_push_fails_clearly_and_push_completes_after_restart(weed, tmp_path):
    cfg, creds = weed
    start_seaweedfs(cfg, creds)  # no-op when it runs; restarts it if an earlier test left it stopped
    prefix = f"push-{uuid.uuid4().hex[:8]}"
    url = f"s3://{cfg.bucket}/{prefix}"
    a = project_repo(tmp_path / "a", cfg, creds, url)
    want = add_data(a, n=5, size=3 << 20)

    # 1. freeze the server (SIGSTOP) the moment the first object of the push has landed, then SIGKILL it
    log = open(tmp_path / "push1.log", "w")  # noqa: SIM115
    push = subprocess.Popen([DVC, "push", "-j", "1"], cwd=a, env=pipeline_env(), stdout=log, stderr=subprocess.STDOUT)
    pid = service_pid(cfg, "seaweedfs")
    client = s3_client(cfg.s3_endpoint, creds, timeout_s=2)  # one client: a new one per poll is too slow
    deadline = time.monotonic() + 120
    landed: list[str] = []
    while push.poll() is None and time.monotonic() < deadline:
        try:
            landed = remote_keys(cfg, creds, prefix, client)
        except Exception:  # noqa: BLE001 - not yet listing
            landed = []
        if landed:
            os.killpg(pid, signal.SIGSTOP)  # its own process group (start_new_session)
            break
        time.sleep(0.002)
    stop_service(cfg, "seaweedfs", grace_s=0)
    t_stop = time.monotonic()
    rc1 = push.wait(timeout=300)
    phases = {"push_ended_after_stop_s": round(time.monotonic() - t_stop, 1)}
    log.close()
    text1 = (tmp_path / "push1.log").read_text()
    # the push died with the server unless its last upload completed before the SIGSTOP (a race we record)
    stopped_while_pushing = rc1 != 0
    if stopped_while_pushing:
        # DVC retries each file for a few seconds, then names the endpoint and counts what failed
        assert f"Could not connect to the endpoint URL: \"{cfg.s3_endpoint}/" in text1, text1
        assert re.search(r"failed to push data to the cloud - \d+ files? failed to upload", text1), text1
    else:
        assert "files pushed" in text1, text1

    # 2. with the server down: a clear error naming the endpoint, from dvc and from `make push`'s check
    t = time.monotonic()
    down = sh([DVC, "push"], a, check=False)
    phases["push_while_down_s"] = round(time.monotonic() - t, 1)
    assert down.returncode != 0
    assert f"Could not connect to the endpoint URL: \"{cfg.s3_endpoint}/" in down.stderr, down.stderr
    assert "Traceback" not in down.stderr
    check = sh([sys.executable, "-m", "musicrec.devservices.manager", "check-remote"], a, check=False)
    assert check.returncode == 1
    assert f"S3 server at {cfg.s3_endpoint} is not reachable" in check.stderr, check.stderr
    assert "make services-up" in check.stderr

    # 3. restart on the same ports and data folder: what landed before the stop is still there; push completes
    t = time.monotonic()
    start_seaweedfs(cfg, creds)
    phases["restart_s"] = round(time.monotonic() - t, 1)
    survived = remote_keys(cfg, creds, prefix)
    assert set(landed) <= set(survived)
    t = time.monotonic()
    ok = sh([DVC, "push"], a)
    phases["push_after_restart_s"] = round(time.monotonic() - t, 1)
    assert "files pushed" in ok.stdout or "Everything is up to date" in ok.stdout, ok.stdout
    assert len(remote_keys(cfg, creds, prefix)) == len(want) + 1  # every file + the .dir listing
    assert "in sync" in sh([DVC, "status", "--cloud"], a).stdout

    # 4. a fresh clone pulls everything and every file has its original md5
    b = tmp_path / "b"
    sh(["git", "clone", "-q", str(a), str(b)], tmp_path)
    local(b, cfg, creds, url)
    sh([DVC, "pull"], b)
    assert md5s(b / "data") == want
    record("s3_down_during_push", stopped_while_pushing=stopped_while_pushing, first_push_returncode=rc1,
           objects_on_remote_at_stop=len(landed), push_while_down_returncode=down.returncode,
           push_while_down_message=down.stderr.strip().splitlines()[0][:200],
           check_remote_message=check.stderr.strip()[:300], files=len(want), files_pulled_identical=len(want),
           phases=phases, bytes_lost=0, outcome="clear error while down; push after restart completes; fresh clone pulls identical files")


def test_corrupted_object_on_the_remote_is_detected_on_pull(weed, tmp_path):
    cfg, creds = weed
    start_seaweedfs(cfg, creds)  # no-op when it runs; restarts it if an earlier test left it stopped
    prefix = f"corrupt-{uuid.uuid4().hex[:8]}"
    url = f"s3://{cfg.bucket}/{prefix}"
    a = project_repo(tmp_path / "a", cfg, creds, url)
    want = add_data(a, n=3, size=256 * 1024)
    sh([DVC, "push"], a)
    victim = "blob01.bin"
    key = f"{prefix}/files/md5/{want[victim][:2]}/{want[victim][2:]}"
    assert key in remote_keys(cfg, creds, prefix)
    bad = b"corrupted on the remote " * 1000
    s3_client(cfg.s3_endpoint, creds).put_object(Bucket=cfg.bucket, Key=key, Body=bad)

    # with the project's config (verify = true) the pull fails and nothing corrupted reaches the workspace/cache
    b = tmp_path / "b"
    sh(["git", "clone", "-q", str(a), str(b)], tmp_path)
    local(b, cfg, creds, url)
    r = sh([DVC, "pull"], b, check=False)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "failed to pull data from the cloud" in r.stderr and "data" in r.stderr, r.stderr
    present = md5s(b / "data") if (b / "data").exists() else {}
    assert all(want[f] == h for f, h in present.items()), "every file in the workspace is an original"
    assert victim not in present
    cached = [p for p in (b / ".dvc" / "cache").rglob("*") if p.is_file() and p.read_bytes() == bad]
    assert not cached, "the corrupted object did not enter the cache"

    # why the project sets it: with DVC's default (verify = false) the corrupted bytes are checked out silently
    c = tmp_path / "c"
    sh(["git", "clone", "-q", str(a), str(c)], tmp_path)
    local(c, cfg, creds, url)
    sh([DVC, "remote", "modify", "--local", "s3", "verify", "false"], c)
    silent = sh([DVC, "pull"], c, check=False)
    silently_corrupted = silent.returncode == 0 and (c / "data" / victim).read_bytes() == bad
    record("s3_corrupted_object", pull_returncode=r.returncode, message=" ".join(r.stderr.split())[:300],
           files_in_workspace=len(present), corrupted_in_workspace=0, corrupted_in_cache=len(cached),
           default_verify_false_silently_corrupted=silently_corrupted,
           outcome="pull fails (verify = true); no corrupted byte in workspace or cache")
