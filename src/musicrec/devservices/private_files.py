"""Private state: folders 0700 and files 0600 under the services' state dir, written atomically.

Everything the services keep (keys, certificates, databases, logs, PID files) is private to the
user; :data:`PRIVATE_UMASK` is the servers' umask, so what they create themselves is private too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from musicrec.devservices.config import ServiceConfig

PRIVATE_UMASK = 0o077  # the servers' umask: what they create is 0600 / 0700


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


def write_private(path: Path, text: str | bytes) -> None:
    """Write ``text`` to ``path`` with mode 0600 (atomically, :func:`musicrec.io.atomic_path`); a missing folder is made 0700."""
    from musicrec.io import atomic_path

    _mkdirs_private(path.parent)
    with atomic_path(path, private=True) as tmp:
        tmp.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)

