"""One small pipeline run shared by the reliability and security tests of a pytest process.

``reference_clone`` runs ``dvc repro`` once (``SMALL_PARAMS``) in a temporary clone with
fake credentials in the environment (:data:`FAKE_SECRETS`: AWS keys in the real key
format and an MLflow tracking password, random per process), so that the security
tests can check that none of them reached MLflow, and the interruption tests get
their uninterrupted reference outputs, without paying for two runs.
"""

from __future__ import annotations

import secrets
import string
from pathlib import Path

from tests.support.pipeline import SMALL_PARAMS, dvc, make_clone, pipeline_env

_UPPER = string.ascii_uppercase + string.digits
FAKE_SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIA" + "".join(secrets.choice(_UPPER) for _ in range(16)),
    "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30)[:40],
    "MLFLOW_TRACKING_USERNAME": "musicrec-" + secrets.token_hex(4),
    "MLFLOW_TRACKING_PASSWORD": secrets.token_urlsafe(18),
}

_CLONE: Path | None = None


def reference_clone(tmp_path_factory) -> Path:
    """The clone after one complete ``dvc repro`` run with :data:`FAKE_SECRETS` set (built once per process)."""
    global _CLONE
    if _CLONE is None:
        repo = make_clone(tmp_path_factory.mktemp("reference-run") / "repo", SMALL_PARAMS)
        dvc(["repro"], repo, env=pipeline_env(FAKE_SECRETS))
        _CLONE = repo
    return _CLONE
