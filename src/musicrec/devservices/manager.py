"""Local S3 (SeaweedFS) and MLflow tracking server for the DVC remote and experiment tracking.

Run as ``python -m musicrec.devservices up|down|status|check-remote|check-pull|env``
(``check-pull``: which cached outs of dvc.lock the remote lacks, one line each with what to run; ``make pull``).

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
import os
import sys
from dataclasses import replace
from pathlib import Path

from musicrec.devservices.config import ENV_STATE_DIR, ServiceConfig, ServiceError
from musicrec.devservices.credentials import ENV_MLFLOW_PASS, ENV_MLFLOW_USER, load_credentials, mlflow_login
from musicrec.devservices.dvc_remote import check_pull, check_remote, default_remote, write_dvc_config_local
from musicrec.devservices.mlflow_server import start_mlflow
from musicrec.devservices.process import http_ok, read_pid_record, service_pid, stop_service
from musicrec.devservices.s3errors import explain_s3_error
from musicrec.devservices.seaweedfs import s3_client, start_seaweedfs


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
        rec = read_pid_record(cfg.pid_file(service)) or {}
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
        healthy = http_ok(cfg.mlflow_uri + "/health")
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
    ap.add_argument("command", choices=["up", "down", "status", "check-remote", "check-pull", "env", "ui-url"])
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
        elif a.command == "check-pull":  # every cached out of dvc.lock in the remote? one line per missing out
            print(check_pull(root))
        else:
            print(check_remote(root, timeout_s=a.timeout))
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
