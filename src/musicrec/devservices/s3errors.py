"""Turn S3 failures into one clear line that says how to fix them.

Used by ``python -m musicrec.devservices check-remote`` (run by ``make push/pull``)
and by the tests. Works on botocore exceptions and, as a fallback, on any
exception whose text carries an S3 error code (s3fs / dvc wrap them).
"""

from __future__ import annotations

import re

START_HINT = "run `make services-up` (or `python -m musicrec.devservices up`)"
KEYS_HINT = (
    "check access_key_id / secret_access_key in .dvc/config.local or AWS_ACCESS_KEY_ID / "
    "AWS_SECRET_ACCESS_KEY (the local server's keys are in .services/credentials.env; "
    "`make services-up` rewrites .dvc/config.local)"
)

_KEY_CODES = {
    "InvalidAccessKeyId": "the access key is not known to the S3 server",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "AccessDenied": "access denied (wrong keys, or the identity lacks permission)",
    "403": "access denied (HTTP 403: wrong keys or no permission)",
    "Forbidden": "access denied (HTTP 403: wrong keys or no permission)",
    "InvalidToken": "the session token is invalid",
    "ExpiredToken": "the session token has expired",
}
_BUCKET_CODES = ("NoSuchBucket",)
_CONNECT_WORDS = ("Could not connect", "Connection refused", "ConnectionRefused", "Failed to establish",
                  "Name or service not known", "nodename nor servname", "Connect timeout")


def _where(endpoint: str | None) -> str:
    return f" at {endpoint}" if endpoint else ""


def error_code(exc: BaseException) -> str | None:
    """The S3 error code of ``exc`` (``NoSuchBucket``, ``403``...) or None."""
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        code = (resp.get("Error") or {}).get("Code")
        if code:
            return str(code)
    m = re.search(r"\(([A-Za-z]+|\d{3})\)", str(exc))
    return m.group(1) if m else None


def explain_s3_error(exc: BaseException, *, endpoint: str | None = None, bucket: str | None = None) -> str:
    """One line: what went wrong with the S3 request and how to fix it."""
    try:
        from botocore import exceptions as bx
    except ImportError:  # pragma: no cover - botocore ships with dvc-s3
        bx = None
    name = type(exc).__name__
    text = str(exc)
    bucket_txt = f"bucket {bucket!r}" if bucket else "the bucket"

    if bx is not None:
        if isinstance(exc, bx.NoCredentialsError):
            return f"no S3 credentials found: {KEYS_HINT}"
        if isinstance(exc, bx.ReadTimeoutError):
            return f"the S3 server{_where(endpoint)} did not answer in time: check `make services-status`"
        if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ConnectionClosedError)):
            hint = START_HINT
            if endpoint is None or "amazonaws.com" in (endpoint or ""):
                hint += "; no endpointurl is configured for the remote, so `make services-up` must write .dvc/config.local"
            return f"S3 server{_where(endpoint)} is not reachable (connection refused): {hint}"

    code = error_code(exc)
    if code in _BUCKET_CODES or (code == "404" and bucket):
        return f"{bucket_txt} does not exist on the S3 server{_where(endpoint)}: {START_HINT} (it creates it)"
    if code in _KEY_CODES:
        return f"S3 rejected the credentials{_where(endpoint)}: {_KEY_CODES[code]}; {KEYS_HINT}"
    if isinstance(exc, ConnectionError) or any(w in text for w in _CONNECT_WORDS) or name in (
        "ConnectionRefusedError",
        "EndpointConnectionError",
    ):
        return f"S3 server{_where(endpoint)} is not reachable (connection refused): {START_HINT}"
    if code:
        return f"S3 request{_where(endpoint)} failed with {code}: {text.splitlines()[0] if text else name}"
    return f"S3 request{_where(endpoint)} failed: {name}: {text.splitlines()[0] if text else ''}".rstrip(": ")
