"""Atomic output writing and small file helpers.

Every output of every stage goes through :func:`atomic_path` (or one of the
writers built on it): data is written to a temporary sibling and renamed into
place only when complete, so an interrupted stage never leaves a half-written
file or directory at an output path.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from musicrec.errors import UserError

TMP_PREFIX = ".tmp-"
LOCK_SUFFIX = ".lock"  # .tmp-<name>-<token>.lock: held (flock) by the writer that owns <token>
PRELOCK_SUFFIX = ".lock-new"  # the same lock file before it is locked and renamed into place

# what follows ".tmp-<name>-" in a name: a writer's token, then what it names ("" the temporary, "-old",
# LOCK_SUFFIX, a sibling the caller derives such as "-pairs") ...
_TOKEN_RE = re.compile(r"([0-9a-f]{32})(.*)", re.DOTALL)
# ... or a name of the PID-based scheme of earlier versions ("<pid>-<random>[-...]", "old-<pid>"), unless it
# holds a token: ".tmp-plays-2024-x-<token>" is a temporary of the output "plays-2024-x", not a legacy one of "plays"
_LEGACY_RE = re.compile(r"\d+-\w+(?:[-.].*)?|old-\d+(?:\..*)?", re.DOTALL | re.ASCII)
_HAS_TOKEN_RE = re.compile(r"-[0-9a-f]{32}")


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
def atomic_path(final: Path | str, *, directory: bool = False, private: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it into place on success.

    With ``directory=True`` the temporary path is a fresh empty directory and the
    whole directory replaces ``final``. On any exception the temporary path is
    removed and ``final`` is left as it was. Files end up mode 0644, directories
    0755 less the bits the umask removes (not ``mkdtemp``'s 0700); with
    ``private=True`` 0600 and 0700 (keys, credentials: never readable by others, not
    even while being written).

    The temporary is ``.tmp-<name>-<token>`` (a random token); this call holds the
    lock that marks every name starting with it as live until it has removed them
    (see :func:`remove_stale_temporaries`), so a sibling derived from it
    (``f"{tmp}-pairs"``) is a temporary of this call too, removed with it.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    try:
        lock_fd, tmp = _lock_new_token(final)
        try:
            if directory:
                os.mkdir(tmp, 0o700)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            yield tmp
            _hold_if_asked(final)
            _commit(tmp, final, directory, private)
        finally:
            _release(tmp, lock_fd)  # everything named after the token (all of it after a failure), then the lock
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise DiskFullError(exc.errno, f"disk full / file too large while writing {final} "
                                f"({os.strerror(exc.errno)}); nothing was replaced") from exc
        raise


HOLD_BEFORE_COMMIT_ENV = "MUSICREC_HOLD_BEFORE_COMMIT"


def _hold_if_asked(final: Path) -> None:
    """Fault injection for the interruption tests: when ``final`` (resolved) is one of the paths listed in
    ``$MUSICREC_HOLD_BEFORE_COMMIT`` (``os.pathsep``-separated), wait here, the complete temporary written and
    not yet renamed, until the process is killed. A kill point that does not depend on polling fast enough."""
    held = os.environ.get(HOLD_BEFORE_COMMIT_ENV)
    if held and str(final.resolve()) in {str(Path(p).resolve()) for p in held.split(os.pathsep) if p}:
        while True:
            time.sleep(60)


def _commit(tmp: Path, final: Path, directory: bool, private: bool = False) -> None:
    """Move the complete temporary ``tmp`` to ``final``; a replaced ``final`` goes to ``<tmp>-old``."""
    if directory:
        # the directory is created 0700: make the output 0755 (less what the umask removes)
        os.chmod(tmp, 0o700 if private else 0o755 & ~_umask())
    else:
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600 if private else 0o644)
    # rename() cannot put a directory over an existing path, nor a file over a directory
    old = tmp.with_name(tmp.name + "-old") if (final.exists() if directory else final.is_dir()) else None
    if old is not None:
        os.replace(final, old)  # a name unique to this call, like tmp
    try:
        os.replace(tmp, final)
    except BaseException:
        if old is not None:  # put the previous output back: the caller's _release removes what is named "-old"
            with contextlib.suppress(OSError):
                os.replace(old, final)
        raise
    _fsync_dir(final.parent)


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class DiskFullError(UserError, OSError):
    """No space left on the device (or over the file-size limit) while writing an output."""

    def __str__(self) -> str:
        return str(self.strerror)


def remove_stale_temporaries(final: Path | str) -> list[Path]:
    """Remove the temporaries of ``final`` whose writer is gone; return the paths removed.

    A SIGKILLed stage cannot clean up after itself; its next run does, before it writes.

    Liveness is decided by a lock the writer holds, never by a PID (a PID says nothing
    about a zombie, a reused PID or another PID namespace). Each :func:`atomic_path`
    call draws a random 128-bit token and owns every name starting with
    ``.tmp-<name>-<token>``: the temporary, its ``-old`` directory, siblings derived
    from it, and the lock file ``.tmp-<name>-<token>.lock``. It holds an exclusive
    ``flock`` on the lock file from before its first temporary exists until after it
    has removed the last one. The kernel releases a flock when the last descriptor of
    it is closed, which for a killed process happens when it dies (before it is a
    zombie, whatever its PID or namespace), so *the lock can be taken* means *the
    writer is gone*.

    A lock file only ever appears under the ``.lock`` name already locked: the writer
    creates it as ``.lock-new``, locks it, then renames it (atomically). For each token
    the cleaner opens (never creates) the ``.lock-new`` path and then the ``.lock`` path
    itself, rather than trusting its directory listing, and tries ``flock(LOCK_NB)``:

    * ``.lock-new`` locked: a writer is about to rename it and has no temporary yet; skip.
      Lockable: its writer has not locked it yet (or died first); the cleaner removes
      it, the writer's rename then fails and it starts again with a new token.
    * ``.lock`` locked: the writer is alive; skip. Lockable: the writer is gone; remove
      its names while holding the lock, then the lock. Absent (and, checked before,
      no ``.lock-new``): the writer had renamed its lock and has since removed it, which
      it does only after its temporaries (or a cleaner did), so what is left is stale.

    Every step goes one way, so the cleaner never removes a live writer's temporary
    and always removes a dead writer's, with no dependence on timing. Names of the
    PID-based scheme of earlier versions (``.tmp-<name>-<pid>-*``, ``.tmp-<name>-old-<pid>``)
    carry no lock and no code writes them any more: they are always stale.

    A child forked without exec shares the writer's lock (Python opens it close-on-exec,
    so ``subprocess`` children do not): the temporary stays live while such a child
    runs, which may still be writing into it. On a file system without ``flock`` the
    writer writes unlocked and the cleaner, unable to take a lock, removes nothing there.
    """
    final = Path(final)
    parent, prefix = final.parent, f"{TMP_PREFIX}{final.name}-"
    try:
        names = sorted(n for n in os.listdir(parent) if n.startswith(prefix))
    except OSError:
        return []
    removed, tokens = [], {}
    for name in names:
        rest = name[len(prefix):]
        if m := _TOKEN_RE.fullmatch(rest):
            tokens[m.group(1)] = None
        elif _LEGACY_RE.fullmatch(rest) and not _HAS_TOKEN_RE.search(name) and _remove(parent / name):
            removed.append(parent / name)
    for token in tokens:
        removed += _remove_if_writer_gone(parent / f"{prefix}{token}")
    return removed


_HELD, _ABSENT, _UNKNOWN = "held", "absent", "unknown"


def _try_lock(path: Path) -> int | str:
    """A descriptor of ``path`` holding its exclusive flock, or why there is none (_HELD, _ABSENT, _UNKNOWN)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return _ABSENT
    except OSError:  # e.g. another user's lock we cannot read: assume it is live
        return _UNKNOWN
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        return _HELD if isinstance(err, BlockingIOError) else _UNKNOWN
    return fd


def _remove_if_writer_gone(base: Path) -> list[Path]:
    """Remove what is named after the token of ``base`` (``.tmp-<name>-<token>``) if its writer is gone."""
    removed = []
    pre = base.with_name(base.name + PRELOCK_SUFFIX)
    fd = _try_lock(pre)  # before the lock: a writer renames .lock-new to .lock, never back
    if fd in (_HELD, _UNKNOWN):
        return []
    if isinstance(fd, int):
        try:
            pre.unlink()
            removed.append(pre)
        except OSError:
            return []
        finally:
            os.close(fd)
    fd = _try_lock(base.with_name(base.name + LOCK_SUFFIX))
    if fd in (_HELD, _UNKNOWN):
        return removed
    if fd == _ABSENT:
        return removed + _remove_named_after(base)
    return removed + _release(base, fd)


def _lock_new_token(final: Path) -> tuple[int, Path]:
    """Draw a token for ``final`` and hold its lock: (descriptor holding it, ``.tmp-<name>-<token>``)."""
    while True:
        base = final.parent / f"{TMP_PREFIX}{final.name}-{secrets.token_hex(16)}"
        pre = base.with_name(base.name + PRELOCK_SUFFIX)
        fd = os.open(pre, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            with contextlib.suppress(OSError):  # no flock on this file system: write unlocked (never cleaned)
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(pre, base.with_name(base.name + LOCK_SUFFIX))
            return fd, base
        except FileNotFoundError:  # a cleaner took .lock-new before we locked it: start again
            os.close(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                pre.unlink()
            raise


def _release(base: Path, fd: int) -> list[Path]:
    """Remove everything named after the token of ``base``, then its lock file; close ``fd`` (the lock)."""
    try:
        removed = _remove_named_after(base)
        with contextlib.suppress(FileNotFoundError):
            base.with_name(base.name + LOCK_SUFFIX).unlink()
            removed.append(base.with_name(base.name + LOCK_SUFFIX))
        return removed
    finally:
        os.close(fd)


def _remove_named_after(base: Path) -> list[Path]:
    """Remove the siblings of ``base`` whose name starts with it, except its lock files."""
    locks = {base.name + LOCK_SUFFIX, base.name + PRELOCK_SUFFIX}
    try:
        names = sorted(n for n in os.listdir(base.parent) if n.startswith(base.name) and n not in locks)
    except OSError:
        return []
    return [base.parent / n for n in names if _remove(base.parent / n)]


def _remove(path: Path) -> bool:
    """Remove a file or a directory tree; True when it is gone.

    A directory is first renamed to a name of the same token, so a thread of this
    process still writing into it by path (a failed Dask compute returns before its
    other tasks end) cannot add entries while it is being removed.
    """
    try:
        if not path.is_dir() or path.is_symlink():
            path.unlink()
            return True
        trash = path.with_name(f"{path.name}.del-{secrets.token_hex(4)}")
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return False
        except OSError:
            trash = path
        shutil.rmtree(trash, ignore_errors=True)
        return not os.path.lexists(trash)
    except OSError:
        return False


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
