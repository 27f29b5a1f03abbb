"""Atomic output writing and small file helpers.

Every output of every stage goes through :func:`atomic_path` (or one of the
writers built on it): data is written to a temporary sibling and renamed into
place only when complete, so an interrupted stage never leaves a half-written
file or directory at an output path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(final: Path | str, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it into place on success.

    With ``directory=True`` the temporary path is a fresh empty directory and the
    whole directory replaces ``final``. On any exception the temporary path is
    removed and ``final`` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX + final.name + "-", dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=TMP_PREFIX + final.name + "-", dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory:
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
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


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
