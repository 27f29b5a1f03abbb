"""What must never reach the tracking server: credential-like keys, configured secrets, passwords in URLs.

Every param and tag the pipeline logs passes through :func:`scrub`: a key that looks like a
credential (:data:`SECRET_KEY_RE`) or a value that contains the value of one of
:data:`SECRET_ENV_VARS` becomes :data:`REDACTED`, and a password in a URL
(``https://user:pw@host``) is replaced in place. The tracking-server messages redact URLs
the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***redacted***"
SECRET_KEY_RE = re.compile(r"secret|password|passwd|token|access[_-]?key|credential|api[_-]?key|private[_-]?key", re.I)
SECRET_ENV_VARS = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
    "MUSICREC_S3_SECRET_KEY",
    "MUSICREC_S3_ACCESS_KEY",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
_URL_USERINFO_RE = re.compile(r"(://[^/\s:@]+):[^/\s@]+@")


def _secret_values() -> list[str]:
    return [v for k in SECRET_ENV_VARS if len(v := os.environ.get(k, "")) >= 4]


def redact_url(value: str) -> str:
    """``value`` with the password of any ``scheme://user:password@host`` replaced by :data:`REDACTED`."""
    return _URL_USERINFO_RE.sub(r"\1:" + REDACTED + "@", value)


def is_secret_key(key: str) -> bool:
    return bool(SECRET_KEY_RE.search(key))


def scrub(items: Mapping[str, Any]) -> dict[str, Any]:
    """Copy of ``items`` with credential-like keys and secret values replaced by ``***redacted***``."""
    secrets_ = _secret_values()
    out: dict[str, Any] = {}
    for k, v in items.items():
        if is_secret_key(str(k)):
            out[k] = REDACTED
            continue
        if isinstance(v, str):
            if any(s in v for s in secrets_):
                out[k] = REDACTED
                continue
            v = redact_url(v)
        out[k] = v
    return out
