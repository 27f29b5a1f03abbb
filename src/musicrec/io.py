"""Atomic output writing and small file helpers.

Every output of every stage goes through :func:`atomic_path` (or one of the
writers built on it): data is written to a temporary sibling and renamed into
place only when complete, so an interrupted stage never leaves a half-written
file or directory at an output path.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from musicrec.errors import UserError

TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    """The process umask: from /proc on Linux (no side effect), else by setting and restoring it."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status", encoding="ascii") as fh:
            return int(next(line for line in fh if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(final: Path | str, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it into place on success.

    With ``directory=True`` the temporary path is a fresh empty directory and the
    whole directory replaces ``final``. On any exception the temporary path is
    removed and ``final`` is left as it was. Files end up mode 0644, directories
    0755 less the bits the umask removes (not ``mkdtemp``'s 0700).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    prefix = f"{TMP_PREFIX}{final.name}-{os.getpid()}-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory:
            # mkdtemp creates the directory 0700: make the output 0755 (less what the umask removes)
            os.chmod(tmp, 0o755 & ~_umask())
            old = None
            if final.exists():
                old = final.parent / f"{TMP_PREFIX}{final.name}-old-{os.getpid()}"
                os.replace(final, old)
            os.replace(tmp, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
        else:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            if final.is_dir():
                shutil.rmtree(final)
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            raise DiskFullError(exc.errno, f"disk full / file too large while writing {final} "
                                f"({os.strerror(exc.errno)}); nothing was replaced") from exc
        raise


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class DiskFullError(UserError, OSError):
    """No space left on the device (or over the file-size limit) while writing an output."""

    def __str__(self) -> str:
        return str(self.strerror)


def remove_stale_temporaries(final: Path) -> list[Path]:
    """Remove the temporaries of ``final`` left by a killed process (``.tmp-<name>-<pid>-*`` of a dead pid).

    A SIGKILLed stage cannot clean up after itself; its next run does, before it writes.
    Temporaries of a process that is still alive are left alone.
    """
    pat = re.compile(rf"{re.escape(TMP_PREFIX + final.name)}-(?:old-)?(\d+)(?:-|$)")
    removed = []
    with contextlib.suppress(OSError):
        for p in final.parent.iterdir():
            m = pat.match(p.name)
            if not m or _pid_alive(int(m.group(1))):
                continue
            with contextlib.suppress(OSError):
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                removed.append(p)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists
        return True
    return True


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path | str, obj: Any) -> None:
    """Write JSON with sorted keys and a trailing newline (stable bytes)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: Path | str) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_csr(path: Path | str, matrix: sp.csr_matrix) -> None:
    """Save a CSR matrix as an uncompressed ``.npz`` (no pickle; stable bytes)."""
    matrix = sp.csr_matrix(matrix)
    matrix.sort_indices()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            sp.save_npz(fh, matrix, compressed=False)


def load_csr(path: Path | str) -> sp.csr_matrix:
    path = Path(path)
    try:
        m = sp.load_npz(path)
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{path}: not a valid sparse .npz matrix ({err})") from None
    return sp.csr_matrix(m)


def save_arrays(path: Path | str, **arrays: np.ndarray) -> None:
    """Save named numeric arrays as an uncompressed ``.npz`` (loaded without pickle)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_arrays(path: Path | str) -> dict[str, np.ndarray]:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a valid array .npz file ({err})") from None


def md5_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_parquet(df: "pd.DataFrame", path: Path | str) -> None:
    """Write one Parquet file atomically (zstd, no index; stable bytes for equal input)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, compression="zstd")


if False:  # pragma: no cover - typing only
    import pandas as pd  # noqa: F401
