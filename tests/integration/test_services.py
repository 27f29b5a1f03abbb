"""Integration: SeaweedFS S3 (keys required), the DVC S3 remote, the MLflow server."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from musicrec.devservices.config import BUCKET, HOST, ServiceConfig, ServiceError
from musicrec.devservices.credentials import (Credentials, ENV_MLFLOW_PASS, ENV_MLFLOW_USER, MlflowLogin,
                                              load_credentials, mlflow_login)
from musicrec.devservices.dvc_remote import check_remote, write_dvc_config_local
from musicrec.devservices.mlflow_server import mlflow_api_status, start_mlflow
from musicrec.devservices.process import service_pid, stop_service
from musicrec.devservices.seaweedfs import READY_KEY, ensure_bucket, ensure_versioning, s3_client, weed_binary
from musicrec.io import md5_file
from musicrec.devservices.s3errors import explain_s3_error

pytestmark = pytest.mark.integration

DVC = shutil.which("dvc") or str(Path(sys.executable).parent / "dvc")


def _run(cmd, cwd, **kw):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, **kw)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def _repo(path: Path, url: str, endpoint: str, creds: Credentials, *, version_aware: bool = False) -> Path:
    """A git repo with ``dvc init`` and the project's remote layout pointed at ``url``."""
    path.mkdir(parents=True)
    _run(["git", "init", "-q"], path)
    _run([DVC, "init", "-q"], path)
    extra = "    version_aware = true\n" if version_aware else ""
    (path / ".dvc" / "config").write_text(
        f"[core]\n    analytics = false\n    remote = s3\n['remote \"s3\"']\n    url = {url}\n{extra}"
    )
    write_dvc_config_local(path, endpoint, creds)
    return path


def test_listeners_local_and_keys_private(seaweedfs):
    cfg, _ = seaweedfs
    pid = service_pid(cfg, "seaweedfs")
    assert pid is not None
    addrs = {c.laddr.ip for c in psutil.Process(pid).net_connections("inet") if c.status == psutil.CONN_LISTEN}
    assert addrs == {"127.0.0.1"}
    assert stat.S_IMODE(cfg.s3_config_file.stat().st_mode) == 0o600
    ident = json.loads(cfg.s3_config_file.read_text())["identities"]
    assert all(i.get("credentials") for i in ident)  # no anonymous identity


def test_anonymous_refused_signed_accepted(seaweedfs):
    from botocore.exceptions import ClientError

    cfg, creds = seaweedfs
    anon = s3_client(cfg.s3_endpoint, None)
    for call in (anon.list_buckets, lambda: anon.list_objects_v2(Bucket=cfg.bucket),
                 lambda: anon.put_object(Bucket=cfg.bucket, Key="anon", Body=b"x")):
        with pytest.raises(ClientError) as ei:
            call()
        assert ei.value.response["Error"]["Code"] == "AccessDenied"
    client = s3_client(cfg.s3_endpoint, creds)
    assert cfg.bucket in [b["Name"] for b in client.list_buckets()["Buckets"]]
    client.head_bucket(Bucket=cfg.bucket)


def _http(url: str, method: str = "GET", data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    """Status and body of one plain (unsigned, unauthenticated) HTTP request."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _weed_shell(cfg: ServiceConfig, command: str) -> str:
    """``weed shell`` run where security.toml is, i.e. with the gRPC client certificate."""
    r = subprocess.run([weed_binary(), "shell", f"-master={HOST}:{cfg.master_port}.{cfg.grpc('master')}",
                        f"-filer={HOST}:{cfg.filer_port}.{cfg.grpc('filer')}"], input=command + "\n",
                       cwd=cfg.weed_conf_dir, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS


def _grpc_first_frame(port: int, conf_dir: Path | None, *, client_cert: bool) -> bytes:
    """The first 9 bytes a gRPC port sends after an HTTP/2 preface: over TLS (``conf_dir``: trust its CA,
    optionally present its client certificate) or in plain text (``conf_dir=None``); b"" when refused."""
    import socket
    import ssl

    raw = socket.create_connection((HOST, port), timeout=10)
    try:
        sock = raw
        if conf_dir is not None:
            ctx = ssl.create_default_context(cafile=str(conf_dir / "ca.crt"))
            ctx.check_hostname = False
            ctx.set_alpn_protocols(["h2"])
            if client_cert:
                ctx.load_cert_chain(conf_dir / "node.crt", conf_dir / "node.key")
            sock = ctx.wrap_socket(raw)
        sock.sendall(H2_PREFACE)
        return sock.recv(9)
    except (ssl.SSLError, ConnectionError):
        return b""
    finally:
        raw.close()


def test_no_seaweedfs_port_serves_data_without_a_key(seaweedfs):
    """Unsigned HTTP to the filer, master and volume server and certificate-less gRPC are all refused;
    the S3 gateway (keys) and the certificate holder (``weed shell`` in seaweedfs-conf/) still work."""
    cfg, creds = seaweedfs
    client = s3_client(cfg.s3_endpoint, creds)
    bucket, key, body = "probe-plain", "secret.txt", b"musicrec secret " * 64
    ensure_bucket(client, bucket)
    client.put_object(Bucket=bucket, Key=key, Body=body)
    meta = json.loads(_weed_shell(cfg, f"fs.meta.cat /buckets/{bucket}/{key}").split("}chunks", 1)[0] + "}")
    fid = meta["chunks"][0]["fileId"]  # where the object's bytes are on the volume server
    f, m, v = (f"http://{HOST}:{p}" for p in (cfg.filer_port, cfg.master_port, cfg.volume_port))
    probes = {
        "filer list": (f"{f}/buckets/{bucket}/", "GET", None),
        "filer read": (f"{f}/buckets/{bucket}/{key}", "GET", None),
        "filer write": (f"{f}/buckets/{bucket}/planted.txt", "PUT", b"planted"),
        "filer delete": (f"{f}/buckets/{bucket}/{key}", "DELETE", None),
        "master assign": (f"{m}/dir/assign", "GET", None),
        "master lookup": (f"{m}/dir/lookup?volumeId={fid.split(',')[0]}", "GET", None),
        "volume read": (f"{v}/{fid}", "GET", None),
        "volume write": (f"{v}/{fid}", "POST", b"planted"),
        "volume delete": (f"{v}/{fid}", "DELETE", None),
    }
    answers = {name: _http(url, method, data) for name, (url, method, data) in probes.items()}
    refused = {name: code for name, (code, _) in answers.items() if code in (401, 403, 404)}
    assert refused.keys() == probes.keys(), answers
    assert all(body not in got and b"fid" not in got for _, got in answers.values())
    # nothing changed: the object is intact, nothing was planted
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    assert [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]] == [key]

    grpc = {"master": cfg.grpc("master"), "volume": cfg.grpc("volume"), "filer": cfg.grpc("filer"),
            "s3": cfg.grpc("s3")}
    for name, port in grpc.items():
        assert _grpc_first_frame(port, None, client_cert=False)[3:4] != b"\x04", f"{name} gRPC speaks plain text"
        assert _grpc_first_frame(port, cfg.weed_conf_dir, client_cert=False) == b"", f"{name} gRPC without cert"
        assert _grpc_first_frame(port, cfg.weed_conf_dir, client_cert=True)[3:4] == b"\x04", f"{name} gRPC with cert"
        # weed also serves gRPC on a unix socket in /tmp (not configurable): only its owner may connect
        sock = Path(f"/tmp/seaweedfs-{name}-grpc-{port}.sock")
        if sock.exists():
            assert stat.S_IMODE(sock.stat().st_mode) & 0o077 == 0, f"{sock} is {oct(sock.stat().st_mode)}"
    # every listener is one of the ports the config names (no extra UI, metrics, IAM or debug port)
    pid = service_pid(cfg, "seaweedfs")
    listening = {c.laddr.port for c in psutil.Process(pid).net_connections("inet") if c.status == psutil.CONN_LISTEN}
    assert listening == {cfg.s3_port, cfg.filer_port, cfg.master_port, cfg.volume_port, *grpc.values()}
    client.delete_object(Bucket=bucket, Key=key)


def test_state_dir_is_private(seaweedfs):
    """Folders 0700, every file 0600 (volume files, master data, keys, logs, PID files, sockets)."""
    cfg, creds = seaweedfs
    s3_client(cfg.s3_endpoint, creds).put_object(Bucket=cfg.bucket, Key="modes/probe", Body=b"x")
    modes = {}
    for root, dirs, files in os.walk(cfg.state_dir):
        for name in [*dirs, *files]:
            p = Path(root) / name
            modes[str(p.relative_to(cfg.state_dir))] = stat.S_IMODE(p.lstat().st_mode)
    assert stat.S_IMODE(cfg.state_dir.stat().st_mode) == 0o700
    assert any(k.endswith(".dat") for k in modes) and any(k.endswith(".log") for k in modes)
    assert "seaweedfs-conf/node.key" in modes and "run/seaweedfs.pid" in modes
    assert modes["seaweedfs-conf/node.key"] == modes["seaweedfs-conf/security.toml"] == modes["s3-identities.json"] == 0o600
    assert {m for k, m in modes.items() if k.endswith((".dat", ".idx"))} == {0o600}  # the volume data
    # weed writes the .vif of a volume grown later 0644 whatever the umask: still private inside the 0700 folders
    wrong = {k: oct(m) for k, m in modes.items() if not k.endswith(".vif")
             and m != (0o700 if (cfg.state_dir / k).is_dir() and not (cfg.state_dir / k).is_symlink() else 0o600)}
    assert not wrong, wrong


def test_check_remote_explains_failures(seaweedfs, tmp_path, free_ports):
    cfg, creds = seaweedfs
    repo = tmp_path / "r"
    (repo / ".dvc").mkdir(parents=True)
    (repo / ".dvc" / "config").write_text("[core]\n    remote = s3\n['remote \"s3\"']\n    url = s3://musicrec/dvc\n")

    write_dvc_config_local(repo, cfg.s3_endpoint, creds)
    assert "reachable" in check_remote(repo)
    assert stat.S_IMODE((repo / ".dvc" / "config.local").stat().st_mode) == 0o600

    cases = [
        (Credentials(creds.access_key, "wrong-secret"), cfg.s3_endpoint, "musicrec", "secret key does not match"),
        (Credentials("NOSUCHKEY", creds.secret_key), cfg.s3_endpoint, "musicrec", "access key is not known"),
        (creds, cfg.s3_endpoint, "no-such-bucket", "does not exist"),
        (creds, f"http://127.0.0.1:{free_ports(1)[0]}", "musicrec", "not reachable"),
    ]
    for c, endpoint, bucket, expected in cases:
        (repo / ".dvc" / "config").write_text(
            f"[core]\n    remote = s3\n['remote \"s3\"']\n    url = s3://{bucket}/dvc\n")
        write_dvc_config_local(repo, endpoint, c)
        with pytest.raises(ServiceError) as ei:
            check_remote(repo, timeout_s=3)
        msg = str(ei.value)
        assert expected in msg and "\n" not in msg
        assert ("make services-up" in msg) or (".dvc/config.local" in msg)

    # the CLI used by `make push`: non-zero exit, one line on stderr
    r = subprocess.run([sys.executable, "-m", "musicrec.devservices.manager", "check-remote", "--repo", str(repo), "--timeout", "2"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "not reachable" in r.stderr and "make services-up" in r.stderr


def test_explain_plain_exceptions():
    assert "not reachable" in explain_s3_error(ConnectionRefusedError(111, "Connection refused"))
    msg = explain_s3_error(RuntimeError("An error occurred (InvalidAccessKeyId) when calling ..."))
    assert "access key" in msg and "AWS_ACCESS_KEY_ID" in msg
    assert "does not exist" in explain_s3_error(RuntimeError("An error occurred (NoSuchBucket) ..."), bucket="b")


def _push_pull(tmp_path: Path, cfg, creds, url: str, *, version_aware: bool) -> None:
    a = _repo(tmp_path / "a", url, cfg.s3_endpoint, creds, version_aware=version_aware)
    data = a / "data.bin"
    data.write_bytes(os.urandom(200_000) + b"musicrec")
    _run([DVC, "add", "-q", "data.bin"], a)
    _run([DVC, "push", "-q"], a)
    if version_aware:  # dvc records the object version in the .dvc file
        assert "version_id" in (a / "data.bin.dvc").read_text()
    _run(["git", "add", "-A"], a)
    _run(["git", "commit", "-qm", "data"], a)

    b = tmp_path / "b"
    _run(["git", "clone", "-q", str(a), str(b)], tmp_path)
    assert not (b / "data.bin").exists()
    write_dvc_config_local(b, cfg.s3_endpoint, creds)
    _run([DVC, "pull", "-q"], b)
    assert md5_file(b / "data.bin") == md5_file(data)


def test_dvc_push_pull_roundtrip(seaweedfs, tmp_path):
    cfg, creds = seaweedfs
    prefix = f"dvc-{uuid.uuid4().hex[:8]}"
    _push_pull(tmp_path, cfg, creds, f"s3://{cfg.bucket}/{prefix}", version_aware=False)
    keys = s3_client(cfg.s3_endpoint, creds).list_objects_v2(Bucket=cfg.bucket, Prefix=prefix + "/")
    assert keys.get("KeyCount", 0) >= 1  # content-addressed files/md5/xx/yyyy


def test_dvc_version_aware_remote(seaweedfs, tmp_path):
    """SeaweedFS 4.x implements bucket versioning; services-up's bucket has it on, so
    `dvc remote modify s3 version_aware true` works on it as it is."""
    cfg, creds = seaweedfs
    client = s3_client(cfg.s3_endpoint, creds)
    assert client.get_bucket_versioning(Bucket=cfg.bucket).get("Status") == "Enabled"
    assert ensure_versioning(client, cfg.bucket) is False  # idempotent
    prefix = f"va-{uuid.uuid4().hex[:8]}"
    _push_pull(tmp_path, cfg, creds, f"s3://{cfg.bucket}/{prefix}", version_aware=True)
    versions = client.list_object_versions(Bucket=cfg.bucket, Prefix=prefix + "/").get("Versions", [])
    assert any(v["Key"] == f"{prefix}/data.bin" for v in versions)


def test_config_on_free_ports_sets_every_port_once(tmp_path):
    cfg = ServiceConfig.on_free_ports(tmp_path, startup_timeout_s=7)
    ports = [cfg.s3_port, cfg.mlflow_port, *(getattr(cfg, f"{n}_port") for n in ("master", "volume", "filer")),
             *(cfg.grpc(n) for n in ("master", "volume", "filer", "s3"))]
    assert len(set(ports)) == 9 and all(getattr(cfg, f"{n}_grpc_port") for n in ("master", "volume", "filer", "s3"))
    assert cfg.state_dir == tmp_path and cfg.startup_timeout_s == 7


def test_stop_refuses_foreign_pid(tmp_path):
    cfg = ServiceConfig(state_dir=tmp_path)
    cfg.run_dir.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        rec = {"pid": other.pid, "create_time": psutil.Process(other.pid).create_time(),
               "cmdline": ["weed", "server", "-dir=/nowhere"]}
        cfg.pid_file("seaweedfs").write_text(json.dumps(rec))
        msg = stop_service(cfg, "seaweedfs", grace_s=1)
        assert "stale" in msg and other.poll() is None and not cfg.pid_file("seaweedfs").exists()
    finally:
        other.kill()
        other.wait()


def test_mlflow_server_roundtrip(seaweedfs, tmp_path, monkeypatch):
    cfg, creds = seaweedfs
    cfg = ServiceConfig(**{**cfg.__dict__, "mlflow_timeout_s": 150})
    pid = start_mlflow(cfg, creds)
    family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    try:
        from musicrec.tracking import logger as tr
        from musicrec.tracking import server

        monkeypatch.setenv("MLFLOW_TRACKING_URI", cfg.mlflow_uri)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"):
            monkeypatch.delenv(k, raising=False)  # artifacts go through the server (--serve-artifacts)
        uri = server.tracking_uri(tmp_path)
        # basic auth: no login or a wrong one is refused (API and pipeline check), the stored login works
        login = mlflow_login(cfg, create=False)
        assert mlflow_api_status(cfg, None) == 401
        assert mlflow_api_status(cfg, MlflowLogin(login.username, login.password + "x")) == 401
        assert mlflow_api_status(cfg, login) == 200
        for k in (ENV_MLFLOW_USER, ENV_MLFLOW_PASS):
            monkeypatch.delenv(k, raising=False)
        with pytest.raises(server.TrackingUnavailable, match="requires a login"):
            server.check_tracking(uri, timeout_s=5)
        monkeypatch.setenv(ENV_MLFLOW_USER, login.username)
        monkeypatch.setenv(ENV_MLFLOW_PASS, "wrong-" + login.password)
        with pytest.raises(server.TrackingUnavailable, match="login in MLFLOW_TRACKING_USERNAME"):
            server.check_tracking(uri, timeout_s=5)
        monkeypatch.setenv(ENV_MLFLOW_PASS, login.password)  # what make / credentials.env export
        server.check_tracking(uri, timeout_s=5)
        art = tmp_path / "metrics.json"
        art.write_text('{"ndcg": 0.5}\n')
        with tr.start_run("itest", run_name="train", tags={"k": "v"}, tracking_uri=uri) as run:
            tr.log_params_flat({"train": {"als": {"factors": 8}}})
            tr.log_metrics({"ndcg@10": 0.5})
            tr.log_artifacts([art])
        from mlflow.tracking import MlflowClient

        c = MlflowClient(tracking_uri=uri)
        r = c.get_run(run.info.run_id)
        assert r.data.params == {"train.als.factors": "8"}
        assert r.data.metrics == {"ndcg_10": 0.5} and r.data.tags["k"] == "v"
        assert [a.path for a in c.list_artifacts(run.info.run_id)] == ["metrics.json"]
        got = c.download_artifacts(run.info.run_id, "metrics.json", str(tmp_path / "dl"))
        assert Path(got).read_text() == art.read_text()
        objs = s3_client(cfg.s3_endpoint, creds).list_objects_v2(Bucket=cfg.bucket, Prefix="mlflow-artifacts/")
        assert any(o["Key"].endswith("/metrics.json") for o in objs.get("Contents", []))
        for db in ("mlflow.db", "basic_auth.db", "basic_auth.ini"):
            assert stat.S_IMODE((cfg.mlflow_dir / db).stat().st_mode) == 0o600, db
        assert stat.S_IMODE(cfg.credentials_file.stat().st_mode) == 0o600
        assert login.password not in cfg.mlflow_auth_config.read_text()  # passed once, in the server's env
    finally:
        print(stop_service(cfg, "mlflow", grace_s=20))
    gone, alive = psutil.wait_procs(family, timeout=5)
    assert not alive, f"still running: {alive}"


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_make_services_up_down_leaves_nothing_and_keeps_data(tmp_path, free_ports):
    """`make services-up` / `make services-down` in a copy of the project, on free ports and a temporary
    MUSICREC_SERVICES_DIR: S3 refuses anonymous requests, down leaves no process and no listener,
    and an object written before a restart is still there after it."""
    import secrets

    from botocore.exceptions import ClientError

    from tests.support.pipeline import make_clone, pipeline_env

    try:
        weed_binary()
    except ServiceError as exc:
        pytest.skip(str(exc))
    if not shutil.which("make"):
        pytest.skip("make not installed")
    repo = make_clone(tmp_path / "repo", commit=False)
    (repo / ".venv").symlink_to(Path(sys.executable).parents[1])
    state = tmp_path / "state"
    names = ["S3", "MLFLOW", "WEED_MASTER", "WEED_VOLUME", "WEED_FILER", "WEED_MASTER_GRPC", "WEED_VOLUME_GRPC",
             "WEED_FILER_GRPC", "WEED_S3_GRPC"]
    ports = dict(zip(names, free_ports(len(names))))
    env = pipeline_env({f"MUSICREC_{n}_PORT": str(p) for n, p in ports.items()}
                       | {"MUSICREC_SERVICES_DIR": str(state)})
    for k in ("MUSICREC_S3_ACCESS_KEY", "MUSICREC_S3_SECRET_KEY"):
        env.pop(k, None)

    def make(target: str) -> str:
        # -o: the shared .venv is already installed; never let make reinstall it
        r = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", target], cwd=repo, env=env,
                           capture_output=True, text=True, timeout=400)
        assert r.returncode == 0, f"make {target}:\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def family() -> list[psutil.Process]:
        procs = []
        for pf in sorted((state / "run").glob("*.pid")):
            p = psutil.Process(json.loads(pf.read_text())["pid"])
            procs += [p, *p.children(recursive=True)]
        return procs

    def assert_all_gone(procs: list[psutil.Process]) -> None:
        _, alive = psutil.wait_procs(procs, timeout=10)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], f"still running: {alive}"
        assert not list((state / "run").glob("*.pid")) and not list((state / "run").glob("*.sock"))
        busy = [f"{n} {p}" for n, p in ports.items() if _listening(p)]
        assert not busy, f"still listening: {busy}"

    endpoint = f"http://127.0.0.1:{ports['S3']}"
    key, body = "persist/object.bin", secrets.token_bytes(4096)
    try:
        out = make("services-up")
        assert f"export MLFLOW_TRACKING_URI=http://127.0.0.1:{ports['MLFLOW']}" in out
        assert (state / "credentials.env").exists() and not (repo / ".services").exists()
        assert f"endpointurl = {endpoint}" in (repo / ".dvc" / "config.local").read_text()
        procs = family()
        assert len(list((state / "run").glob("*.pid"))) == 2 and len(procs) >= 2
        cfg = ServiceConfig.from_env(state_dir=state)
        creds = load_credentials(cfg, create=False)
        anon = s3_client(endpoint, None)
        for call in (anon.list_buckets, lambda: anon.get_object(Bucket=BUCKET, Key=READY_KEY),
                     lambda: anon.put_object(Bucket=BUCKET, Key="anon", Body=b"x")):
            with pytest.raises(ClientError) as ei:
                call()
            assert ei.value.response["Error"]["Code"] == "AccessDenied"
        client = s3_client(endpoint, creds)
        assert client.get_bucket_versioning(Bucket=BUCKET).get("Status") == "Enabled"
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
        assert "running" in make("services-status")

        make("services-down")
        assert_all_gone(procs)

        make("services-up")
        procs = family()
        got = s3_client(endpoint, creds).get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert got == body, "the data survives services-down + services-up"
        make("services-down")
        assert_all_gone(procs)
    finally:
        subprocess.run([sys.executable, "-m", "musicrec.devservices.manager", "down", "--dir", str(state), "--repo", str(repo),
                        "--grace", "10"], env=env, capture_output=True, timeout=120)
