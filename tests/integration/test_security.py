"""Security: no credential reaches MLflow or git; services listen on 127.0.0.1; tampered models fail cleanly.

Also part of the security checks, tested elsewhere:

* tampered model files fail to load with a message naming the file:
  ``tests/unit/models/test_models.py::test_tampered_component_raises``,
  ``tests/unit/models/test_models_contract.py::TestContract::test_tampered_files_raise`` (and below, on a real pipeline model);
* paths in params that escape the project are rejected: ``tests/unit/core/test_params_errors.py``;
* raw files, folders, archives and the SQLite database that are symlinks out of the repository are refused
  without printing what they hold, and SQLite opens read-only by a quoted URI: ``tests/unit/ingest/test_paths_archives.py``;
  decompression bombs and too-long lines are stopped: ``tests/unit/ingest/test_bad_inputs.py`` (round 2 cases);
* the running SeaweedFS listens on 127.0.0.1 only, its key file is 0600 and anonymous S3 requests are refused:
  ``tests/integration/test_services.py::test_listeners_local_and_keys_private``, ``::test_anonymous_refused_signed_accepted``;
* no other SeaweedFS port (filer / master / volume HTTP, every gRPC port) serves data to an unsigned request or a
  client without the certificate: ``tests/integration/test_services.py::test_no_seaweedfs_port_serves_data_without_a_key``;
* the state dir is 0700 with 0600 files: ``tests/integration/test_services.py::test_state_dir_is_private``;
* the MLflow server refuses requests without the login (401) and the pipeline logs with it:
  ``tests/integration/test_services.py::test_mlflow_server_roundtrip``;
* secret-looking params and tags are redacted before logging: ``tests/unit/tracking/test_tracking.py::test_scrub_keys_values_and_urls``.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from musicrec.devservices.config import ServiceConfig, ServiceError
from musicrec.devservices.credentials import ENV_ACCESS, ENV_MLFLOW_PASS, ENV_SECRET, load_credentials, mlflow_login
from musicrec.devservices.mlflow_server import mlflow_env, mlflow_server_command, write_mlflow_auth_config
from musicrec.devservices.seaweedfs import (WEED_GRPC_SECTIONS, WEED_JWT_SECTIONS, weed_binary, weed_command,
                                            write_weed_security)
from tests.support.pipeline import REPO_ROOT
from tests.support.pipeline_clone import FAKE_SECRETS, reference_clone
from tests.support.reliability_log import record

KEY_PATTERNS = {
    "AWS access key id": re.compile(r"AKIA[0-9A-Z]{16}"),
    "aws_secret_access_key": re.compile(r"aws_secret_access_key", re.I),
    "password=": re.compile(r"password=", re.I),
}
# in source history, identifiers such as `aws_secret_access_key=creds.secret_key` are fine: only literal values count
SELF = "tests/integration/test_security.py"
HISTORY_PATTERNS = {
    "AWS access key id": re.compile(r"AKIA[0-9A-Z]{16}"),
    "literal AWS secret key": re.compile(r"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+=]{40}", re.I),
    "literal password": re.compile(r"password\s*=\s*['\"]?(?![\s'\"{$<]|\*|os\.|env|None|getpass)[^\s'\",)]{4,}", re.I),
    "private key": re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    "secret in a URL": re.compile(r"https?://[^/\s:@'\"]+:(?!\*|\{|\$)[^/\s@'\"]{6,}@(?!example\.com)"),
}


def _findings(text: str, where: str, patterns: dict[str, re.Pattern]) -> list[str]:
    out = [f"{where}: contains the value of ${name}" for name, value in FAKE_SECRETS.items()
           if name != "MLFLOW_TRACKING_USERNAME" and value in text]
    out += [f"{where}: matches {label}" for label, pat in patterns.items() if pat.search(text)]
    return out


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    return reference_clone(tmp_path_factory)


@pytest.mark.integration
@pytest.mark.slow
def test_no_secret_reaches_mlflow_params_tags_or_artifacts(clone):
    con = sqlite3.connect(clone / "mlflow.db")
    runs = [r for (r,) in con.execute("select run_uuid from runs")]
    assert runs, "the pipeline logged a run"
    findings, scanned = [], {"params": 0, "tags": 0, "metrics": 0, "runs": 0, "experiments": 0, "artifacts": 0}
    for table, cols in (("params", "key, value"), ("tags", "key, value"), ("latest_metrics", "key"),
                        ("runs", "name, artifact_uri, source_name, user_id"), ("experiments", "name, artifact_location")):
        for row in con.execute(f"select {cols} from {table}"):  # noqa: S608 - fixed table names
            scanned["metrics" if table == "latest_metrics" else table] += 1
            findings += _findings(" ".join(str(v) for v in row), f"{table} {row[0]!r}", KEY_PATTERNS)
    con.close()
    assert scanned["params"] > 20 and scanned["tags"] > 3
    artifact_files = [p for p in (clone / "mlruns").rglob("*") if p.is_file()] if (clone / "mlruns").exists() else []
    assert artifact_files, "the run has artifacts"
    for p in artifact_files:
        if p.stat().st_size <= 2_000_000:
            scanned["artifacts"] += 1
            findings += _findings(p.read_bytes().decode("utf-8", "replace"), str(p.relative_to(clone)), KEY_PATTERNS)
    for p in (clone / "reports").rglob("*"):  # what the stages wrote next to the run (also logged as artifacts)
        if p.is_file():
            findings += _findings(p.read_bytes().decode("utf-8", "replace"), str(p.relative_to(clone)), KEY_PATTERNS)
    assert not findings, findings
    # the scanner sees what it looks for
    assert _findings(f"x {FAKE_SECRETS['AWS_SECRET_ACCESS_KEY']} y", "probe", {})
    assert _findings(FAKE_SECRETS["AWS_ACCESS_KEY_ID"], "probe", KEY_PATTERNS)
    record("security_mlflow_scan", runs=len(runs), scanned=scanned, findings=len(findings),
           secrets_in_env=sorted(FAKE_SECRETS))


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout


PRIVATE_PATHS = [".dvc/config.local", ".env", ".services/credentials.env", ".services/s3-identities.json",
                 ".services/mlflow/mlflow.db", "mlflow.db", "mlruns/0/meta.yaml", ".dvc/cache/files/md5/00/x",
                 ".dvc/tmp/lock"]


def test_private_files_are_ignored_and_not_tracked():
    tracked = set(_git("ls-files").splitlines())
    leaked = sorted(f for f in tracked if f in PRIVATE_PATHS or f.startswith((".services/", ".dvc/cache/", ".dvc/tmp/"))
                    or f.endswith("config.local") or Path(f).name == ".env")
    assert not leaked, leaked
    r = subprocess.run(["git", "check-ignore", "--no-index", "-v", *PRIVATE_PATHS], cwd=REPO_ROOT,
                       capture_output=True, text=True)
    ignored = {line.split("\t", 1)[1] for line in r.stdout.splitlines() if "\t" in line}
    assert ignored == set(PRIVATE_PATHS), sorted(set(PRIVATE_PATHS) - ignored)
    record("security_git_ignore", checked_paths=PRIVATE_PATHS, tracked_files=len(tracked), leaked=len(leaked))


def test_git_history_holds_no_credentials():
    log = _git("log", "-p", "--all", "--no-color", "--no-ext-diff")
    # every path this file has had (it moved with the tests' layout): its self-checks are skipped under each
    own_paths = {SELF, *_git("log", "--follow", "--name-only", "--format=", "--", SELF).split()}
    findings = []
    current = ""
    for i, line in enumerate(log.splitlines()):
        if line.startswith("diff --git "):
            current = line.rsplit(" b/", 1)[-1]
        # this file holds the patterns' own self-checks (below), so it is the one file not scanned
        if current in own_paths and line.startswith("+") and not line.startswith("+++"):
            continue
        if line.startswith("+") and not line.startswith("+++"):
            findings += [f"git log -p line {i}: {label}: {line[:120]}" for label, pat in HISTORY_PATTERNS.items()
                         if pat.search(line)]
    assert not findings, findings
    # the scanner itself finds what it should
    assert HISTORY_PATTERNS["AWS access key id"].search("key = AKIA" + "ABCDEFGHIJKLMNOP")
    assert HISTORY_PATTERNS["literal password"].search("MLFLOW_TRACKING_PASSWORD=" + "hunter22")
    assert HISTORY_PATTERNS["literal AWS secret key"].search("aws_secret_access_key = " + "a" * 40)
    assert not HISTORY_PATTERNS["literal AWS secret key"].search("aws_secret_access_key=creds.secret_key")
    record("security_git_history", commits=len(_git("rev-list", "--all").split()), lines_scanned=log.count("\n"),
           findings=len(findings))


def test_local_services_bind_to_loopback_only(tmp_path):
    cfg = ServiceConfig(state_dir=tmp_path)
    weed = weed_command(cfg) if _has_weed() else None
    binds = []
    if weed is not None:
        for flag in ("-ip=", "-ip.bind=", "-s3.ip.bind="):
            vals = [a.split("=", 1)[1] for a in weed if a.startswith(flag)]
            assert vals == ["127.0.0.1"], (flag, vals)
            binds.append(flag + vals[0])
        for component in ("master", "volume", "filer"):  # no component-level bind overriding the global one
            assert not [a for a in weed if a.startswith(f"-{component}.ip")], weed
    ml = mlflow_server_command(cfg)
    assert ml[ml.index("--host") + 1] == "127.0.0.1"
    binds.append("mlflow --host 127.0.0.1")
    assert "0.0.0.0" not in " ".join((weed or []) + ml)
    record("security_loopback", binds=binds)


def test_local_services_are_configured_to_require_keys(tmp_path, monkeypatch):
    """What services-up generates, without starting anything: random per-state-dir JWT keys and gRPC
    certificates (0600, in a 0700 folder, kept across calls), MLflow basic auth with no default access."""
    import stat
    import tomllib

    for k in (ENV_ACCESS, ENV_SECRET):
        monkeypatch.delenv(k, raising=False)
    a, b = ServiceConfig(state_dir=tmp_path / "a"), ServiceConfig(state_dir=tmp_path / "b")
    if _has_weed():
        assert "-disableHttp" in weed_command(a)  # no master / filer HTTP API
    ml = mlflow_server_command(a)
    assert ml[ml.index("--app-name") + 1] == "basic-auth"

    def keys(cfg) -> dict[str, str]:
        doc = tomllib.loads(write_weed_security(cfg).read_text())

        def section(dotted: str) -> dict:
            part = doc
            for name in dotted.split("."):
                part = part[name]
            return part

        for sec in WEED_GRPC_SECTIONS:  # e.g. grpc.filer: the shared certificate
            assert Path(section(sec)["cert"]).is_file() and Path(section(sec)["key"]).is_file()
        assert Path(doc["grpc"]["ca"]).is_file()
        return {sec: section(sec)["key"] for sec in WEED_JWT_SECTIONS}

    ka = keys(a)
    assert all(len(v) >= 32 for v in ka.values()) and len(set(ka.values())) == len(ka)
    assert keys(a) == ka  # made once, kept
    assert not set(keys(b).values()) & set(ka.values())  # another state dir, other keys
    assert stat.S_IMODE(a.weed_conf_dir.stat().st_mode) == 0o700
    assert {stat.S_IMODE(f.stat().st_mode) for f in a.weed_conf_dir.iterdir()} == {0o600}
    assert stat.S_IMODE(a.state_dir.stat().st_mode) == 0o700

    login = mlflow_login(a)
    assert mlflow_login(a) == login and len(login.password) >= 24
    assert stat.S_IMODE(a.credentials_file.stat().st_mode) == 0o600
    creds = load_credentials(a)
    stored = a.credentials_file.read_text()
    assert login.password in stored and creds.secret_key in stored  # one file holds both
    ini = write_mlflow_auth_config(a, login).read_text()
    assert stat.S_IMODE(a.mlflow_dir.stat().st_mode) == 0o700
    assert "default_permission = NO_PERMISSIONS" in ini and str(a.mlflow_dir) in ini
    assert login.password not in ini
    monkeypatch.setenv(ENV_MLFLOW_PASS, "a-client-login-of-another-server")
    env = mlflow_env(a, creds, login)
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == login.password and ENV_MLFLOW_PASS not in env
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == str(a.mlflow_auth_config)
    # `eval "$(python -m musicrec.devservices env)"` gives a shell the login without printing it
    import sys

    out = subprocess.run(["bash", "-c", f'eval "$({sys.executable} -m musicrec.devservices env --dir {a.state_dir})"; '
                          f'echo "$MLFLOW_TRACKING_USERNAME $MLFLOW_TRACKING_PASSWORD"'],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split() == [login.username, login.password]
    listed = subprocess.run([sys.executable, "-m", "musicrec.devservices.manager", "env", "--dir", str(a.state_dir)],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert login.password not in listed and creds.secret_key not in listed
    record("security_service_config", jwt_sections=list(ka), grpc_sections=list(WEED_GRPC_SECTIONS),
           mlflow_default_permission="NO_PERMISSIONS")


def _has_weed() -> bool:
    try:
        weed_binary()
        return True
    except ServiceError:
        return False


@pytest.mark.integration
@pytest.mark.slow
def test_tampered_pipeline_model_fails_to_load_cleanly(clone, tmp_path):
    from musicrec.models.factory import load_model

    models = tmp_path / "models"
    shutil.copytree(clone / "data" / "models", models)
    load_model(models / "als")  # the untouched copy loads
    victim = sorted((models / "als").rglob("*.npz"))[0]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(ValueError) as err:
        load_model(models / "als")
    assert victim.name in str(err.value)
    record("security_tampered_model", file=str(victim.relative_to(models)), error=str(err.value)[:200])
