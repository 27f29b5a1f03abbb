"""The shared settings of the local services: their 127.0.0.1 host, bucket, region and ports.

:class:`ServiceConfig` says where the services keep their state (data, logs, keys, PID files under
one state dir) and which ports they use, from the defaults, the ``MUSICREC_*_PORT`` environment
variables or explicit values; :class:`ServiceError` is what every devservices module raises when a
service cannot be started, reached or stopped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from musicrec.errors import ResourceUnavailable

HOST = "127.0.0.1"
BUCKET = "musicrec"
REGION = "us-east-1"

ENV_STATE_DIR = "MUSICREC_SERVICES_DIR"  # data, logs, keys and PID files (default <repo>/.services)

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

    @classmethod
    def on_free_ports(cls, state_dir: Path | str, **settings) -> "ServiceConfig":
        """A config in ``state_dir`` whose ports (S3, MLflow, SeaweedFS HTTP and gRPC) are all free on 127.0.0.1 now.

        For tests and benchmarks that start their own servers beside any others; ``settings`` sets
        the other fields (``startup_timeout_s=...``).
        """
        from musicrec.devservices.process import free_ports

        ports = dict(zip(_PORT_ENV, free_ports(len(_PORT_ENV)), strict=True))
        return cls(state_dir=Path(state_dir), **ports, **settings)

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

