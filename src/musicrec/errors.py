"""The errors a user can fix, and only those.

A :class:`UserError` is a problem the person running musicrec can fix without
touching the code: a bad value in ``params.yaml``, a raw input file in the
wrong format, a missing output of an earlier stage, a corrupt saved model
folder, a wrong command-line argument, a service that does not answer, a full
disk, a file they named that cannot be read. Its message is one paragraph that
names the file (with the line / column) or the params key, says what was found
and what was expected, and where it can, the fix. The stage scripts
(:func:`musicrec.pipeline.runner.run_stage`) and the CLI print it without a traceback and
exit with status 2 (``MUSICREC_DEBUG=1`` adds the traceback).

Every other exception is a bug, a broken invariant of the code (two of our own
arrays that disagree, rows lost in the accounting, a model used before it was
fitted): it keeps its traceback, followed by a line asking to report it.
Argument checks of the library API (a model constructor given ``k=0``) stay
plain ``ValueError``s, like numpy's or implicit's: the values that reach them
from ``params.yaml`` are validated first by :mod:`musicrec.config`.

Each subclass also derives from the builtin exception it replaced
(``ValueError``, ``OSError``, ``RuntimeError``), so code that catches the
builtin still catches it. The classes defined elsewhere on this base:
``ParamsError`` (:mod:`musicrec.params_file`), ``InputFormatError``
(:mod:`musicrec.ingest.inputs`), ``DiskFullError`` (:mod:`musicrec.io`),
``ServiceError`` (:mod:`musicrec.devservices.config`), ``TrackingUnavailable``
(:mod:`musicrec.tracking.server`) and ``ServingError`` (:mod:`musicrec.serving.artifacts`).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path


class UserError(Exception):
    """Base of every error the user can fix (params, input files, saved artifacts, environment).

    The message is one paragraph naming the file and line, or the params key, and
    what was expected; it is shown without a traceback.
    """


class DataError(UserError, ValueError):
    """Data cannot be used as asked: an input file, an earlier stage's output or a saved model is
    corrupt or inconsistent, or the data does not fit the params (no interactions left after the
    filter, a temporal split of a source without timestamps)."""


class FileAccessError(UserError, OSError):
    """A file or folder the user named (or an earlier stage wrote) cannot be read: permission
    denied, a directory where a file was expected, an I/O error."""


class MissingInputError(FileAccessError, FileNotFoundError):
    """A file or folder the command needs is not there: a path given on the command line, or the
    output of an earlier stage (the message says which stage to run)."""


class ResourceUnavailable(UserError, RuntimeError):
    """Something the params ask for is not available here: a service that does not answer (Dask
    scheduler, MLflow, S3) or a device (a GPU)."""


# OS errors that say something about the machine, never about the code: permission denied, a read-only
# file system, no space left (outside musicrec.io.atomic_path, which raises DiskFullError itself)
_ENVIRONMENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def environment_error(exc: BaseException) -> FileAccessError | None:
    """The user error for an ``OSError`` on a named file that only the environment can cause, else None.

    The safety net of :func:`musicrec.pipeline.runner.run_main` for the read and write boundaries
    that do not wrap their ``OSError`` s yet: ``PermissionError: [Errno 13] ... 'data/raw/x.csv'``
    becomes ``data/raw/x.csv: Permission denied``. A missing file is not in this class
    (a wrong path computed by the code is a bug); wrap those reads in :func:`reading`.
    """
    if isinstance(exc, OSError) and not isinstance(exc, UserError) and exc.errno in _ENVIRONMENT_ERRNOS \
            and exc.filename is not None:
        other = f" -> {exc.filename2}" if exc.filename2 is not None else ""
        return FileAccessError(f"{os.fsdecode(exc.filename)}{other}: {exc.strerror or os.strerror(exc.errno)}")
    return None


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


@contextlib.contextmanager
def reading(path: Path | str, hint: str = "") -> Iterator[None]:
    """Turn the errors of reading ``path`` into UserErrors that name it.

    For the boundary where a file or folder the user named, or an earlier stage
    wrote, is read: a missing path becomes :class:`MissingInputError`, any other
    ``OSError`` (permission denied, is a directory, I/O error)
    :class:`FileAccessError`, and a ``ValueError`` of the parser (pyarrow's
    ``ArrowInvalid`` for a corrupt Parquet file, numpy's for a bad ``.npz``)
    :class:`DataError`. ``hint`` (e.g. ``"run the transform stage first"``) ends
    the message. UserErrors pass unchanged. Keep the block to the read itself,
    so that a bug in the code around it is not reported as a user error.
    """
    tail = f" ({hint})" if hint else ""
    try:
        yield
    except UserError:
        raise
    except FileNotFoundError as err:
        if err.filename is None and os.path.exists(path):  # something inside: the library's message names it
            raise MissingInputError(f"{path}: {_one_line(err)}{tail}") from err
        raise MissingInputError(f"{err.filename or path}: not found{tail}") from err
    except OSError as err:
        what = err.strerror or _one_line(err)
        if err.filename is not None and str(err.filename) != str(path):
            what = f"{err.filename}: {what}"
        raise FileAccessError(f"{path}: cannot be read: {what}{tail}") from err
    except ValueError as err:
        msg = _one_line(err)
        if not msg.startswith(str(path)):
            msg = f"{path}: not a valid file: {msg}"
        raise DataError(f"{msg}{tail}") from err
