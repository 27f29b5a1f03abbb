"""The service processes: spawning, PID records, checking a PID is still ours, stopping by PID.

A started server gets its own session (process group), a log under ``<state dir>/logs`` and a PID
file under ``<state dir>/run`` that records its PID, start time and command line; only a process
that still matches its record is reported running or stopped. :func:`wait_until_ready` polls a real request
until a server answers (or it exits, or the time runs out).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from musicrec.devservices.config import HOST, ServiceConfig, ServiceError
from musicrec.devservices.private_files import PRIVATE_UMASK, private_dir, write_private


def free_ports(n: int = 1) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 right now (their +10000 neighbours are not checked)."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True



def _pid_record(proc: subprocess.Popen, cmd: list[str], extra: Mapping | None = None) -> dict:
    import psutil

    try:
        ctime = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        ctime = None
    return {"pid": proc.pid, "create_time": ctime, "cmdline": cmd, "started": time.time(), **(extra or {})}


def read_pid_record(path: Path) -> dict | None:
    """The record in a PID file (pid, create_time, cmdline, ports...), or None when missing or unreadable."""
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
        return rec if isinstance(rec, dict) and isinstance(rec.get("pid"), int) else None
    except (OSError, ValueError):
        return None


def _owned_process(rec: dict):
    """The psutil.Process for ``rec`` if that PID still runs the recorded command, else None."""
    import psutil

    try:
        p = psutil.Process(rec["pid"])
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        if rec.get("create_time") is not None and abs(p.create_time() - rec["create_time"]) > 1.0:
            return None
        cmd = p.cmdline()
    except psutil.Error:
        return None
    want = rec.get("cmdline") or []
    # Compare the distinctive arguments (the executable path may be resolved differently).
    if want and not all(a in cmd for a in want[1:]):
        return None
    return p


def service_pid(cfg: ServiceConfig, service: str) -> int | None:
    rec = read_pid_record(cfg.pid_file(service))
    return rec["pid"] if rec and _owned_process(rec) else None


def spawn_service(cfg: ServiceConfig, service: str, cmd: list[str], env: Mapping[str, str] | None = None,
                  extra: Mapping | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """Start ``cmd`` in its own session (log appended to ``logs/<service>.log``) and record its PID file."""
    private_dir(cfg.log_dir)
    private_dir(cfg.run_dir)
    fd = os.open(cfg.log_dir / f"{service}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    log = os.fdopen(fd, "ab")  # handed to the child
    try:
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd or cfg.state_dir,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # own process group: `down` can stop its children too
            close_fds=True,
            umask=PRIVATE_UMASK,  # data, databases, logs and sockets the server creates: 0600 / 0700
        )
    finally:
        log.close()
    write_private(cfg.pid_file(service), json.dumps(_pid_record(proc, cmd, extra), indent=2) + "\n")
    return proc


def _log_tail(cfg: ServiceConfig, service: str, n: int = 15) -> str:
    try:
        lines = (cfg.log_dir / f"{service}.log").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + ln[:300] for ln in lines[-n:])


def stop_service(cfg: ServiceConfig, service: str, *, grace_s: float | None = None) -> str:
    """Stop the process recorded for ``service`` (SIGTERM, then SIGKILL after ``grace_s``)."""
    import psutil

    grace = cfg.stop_grace_s if grace_s is None else grace_s
    pf = cfg.pid_file(service)
    rec = read_pid_record(pf)
    if rec is None:
        return f"{service}: not running (no pid file)"
    p = _owned_process(rec)
    if p is None:
        pf.unlink(missing_ok=True)
        return f"{service}: not running (removed stale pid file for pid {rec['pid']})"
    family = [p]
    with contextlib.suppress(psutil.Error):
        family += p.children(recursive=True)
    # The leader is verified, so its process group (created by start_new_session) is ours too.
    pgid = rec["pid"]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    for c in family:
        with contextlib.suppress(psutil.Error):
            c.terminate()
    gone, alive = psutil.wait_procs(family, timeout=grace)
    how = "stopped"
    if alive:
        how = f"killed after {grace:.0f}s grace"
        for c in alive:
            with contextlib.suppress(psutil.Error):
                c.kill()
        psutil.wait_procs(alive, timeout=5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, 0)
        os.killpg(pgid, signal.SIGKILL)  # stragglers that left the tree but kept our group
    pf.unlink(missing_ok=True)
    _remove_grpc_sockets(rec)
    return f"{service}: {how} (pid {rec['pid']})"


def _remove_grpc_sockets(rec: dict) -> None:
    """SeaweedFS also serves gRPC on /tmp/seaweedfs-<kind>-grpc-<port>.sock (not configurable) and leaves
    some behind; remove those of the ports our stopped process used."""
    ports = rec.get("ports") or {}
    for key, port in ports.items():
        kind = key.removesuffix(" grpc")
        if key.endswith(" grpc") and isinstance(port, int):
            sock = Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock")
            with contextlib.suppress(OSError):
                if sock.is_socket():
                    sock.unlink()
    # and the -filer/-s3.localSocket files it was started with (left behind on SIGTERM)
    for arg in rec.get("cmdline") or []:
        if isinstance(arg, str) and arg.startswith("-") and ".localSocket=" in arg:
            sock = Path(arg.split("=", 1)[1])
            with contextlib.suppress(OSError):
                if sock.is_socket():
                    sock.unlink()



def wait_until_ready(what: str, probe, timeout_s: float, proc: subprocess.Popen | None, cfg: ServiceConfig,
                     service: str):
    """``probe()``'s result once it stops raising; ServiceError (with the log's tail) if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(
                f"{service} exited with code {proc.returncode} during start-up; "
                f"log {cfg.log_dir / (service + '.log')}:\n{_log_tail(cfg, service)}"
            )
        try:
            return probe()
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
            time.sleep(0.3)
    raise ServiceError(
        f"{what} not ready after {timeout_s:.0f}s (last error: {last}); "
        f"log {cfg.log_dir / (service + '.log')}:\n{_log_tail(cfg, service)}"
    )



def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    """Whether a GET of ``url`` answers 200 within ``timeout_s``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 - local http only
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False

