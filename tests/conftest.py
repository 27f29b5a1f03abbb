"""Shared fixtures: quiet tools, git identity, free ports, a SeaweedFS S3 server."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest

from musicrec.devservices import process

_ENV = {
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    # dvc exp / git commit in temporary clones need an identity.
    "GIT_AUTHOR_NAME": "musicrec tests",
    "GIT_AUTHOR_EMAIL": "tests@musicrec.invalid",
    "GIT_COMMITTER_NAME": "musicrec tests",
    "GIT_COMMITTER_EMAIL": "tests@musicrec.invalid",
}


@pytest.fixture(scope="session", autouse=True)
def _test_env() -> Iterator[None]:
    old = {k: os.environ.get(k) for k in _ENV}
    for k, v in _ENV.items():
        os.environ.setdefault(k, v)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def seaweed_test_config(state_dir, *, startup_timeout_s: float):
    """``(ServiceConfig, Credentials)`` for services on free 127.0.0.1 ports, random keys, in ``state_dir``."""
    from musicrec.devservices.config import ServiceConfig
    from musicrec.devservices.credentials import Credentials

    cfg = ServiceConfig.on_free_ports(state_dir, startup_timeout_s=startup_timeout_s)
    return cfg, Credentials("test" + secrets.token_hex(6), secrets.token_urlsafe(24))


@pytest.fixture
def free_ports():
    """Call ``free_ports(n)`` for ``n`` free 127.0.0.1 ports."""
    return process.free_ports


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory):
    """A SeaweedFS S3 server on free ports with its own data folder and random keys.

    Yields ``(cfg, creds)``: a :class:`musicrec.devservices.config.ServiceConfig` (endpoint
    ``cfg.s3_endpoint``, bucket ``cfg.bucket`` already created; ``cfg.mlflow_port`` is a
    free port for tests that start MLflow) and its :class:`Credentials`. Stopped at the
    end of the session; teardown asserts the process is gone. Skipped when ``weed`` is
    missing or cannot start.
    """
    import psutil

    from musicrec.devservices.config import ServiceError
    from musicrec.devservices.process import stop_service
    from musicrec.devservices.seaweedfs import start_seaweedfs, weed_binary

    try:
        weed_binary()
    except ServiceError as exc:
        pytest.skip(str(exc))
    cfg, creds = seaweed_test_config(tmp_path_factory.mktemp("seaweedfs-state"), startup_timeout_s=60)
    try:
        pid = start_seaweedfs(cfg, creds)
    except ServiceError as exc:
        pytest.skip(f"SeaweedFS could not start: {exc}")
    try:
        yield cfg, creds
    finally:
        stop_service(cfg, "seaweedfs")
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
