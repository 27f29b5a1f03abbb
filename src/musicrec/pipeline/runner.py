"""Shared plumbing for the thin DVC entry points in ``stages/`` and the CLI.

``run_stage(main, name)`` prints a :class:`musicrec.errors.UserError` (bad
params, bad input files, missing outputs of an earlier stage, unreachable
services, a full disk; also a permission denied on a named file, see
:func:`musicrec.errors.environment_error`) as one paragraph on stderr and exits
with status 2, instead of a traceback from deep inside a library;
``MUSICREC_DEBUG=1`` shows the traceback as well. Any other exception is a bug: its full traceback is
printed, then a line asking to report it, and the exit status is
:data:`EXIT_BUG` (70, ``EX_SOFTWARE`` of sysexits.h).
"""

from __future__ import annotations

import os
import sys
import textwrap
import traceback
from collections.abc import Callable

from musicrec.errors import UserError, environment_error

EXIT_USER_ERROR = 2
EXIT_BUG = 70  # EX_SOFTWARE
EXIT_INTERRUPTED = 130


def set_thread_env() -> None:
    """One BLAS thread per process (implicit parallelises with OpenMP itself)."""
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def user_error_text(prog: str, err: BaseException, width: int | None = 100) -> str:
    """``"<prog>: error: <message>"`` as one paragraph, wrapped at ``width`` columns (None: one line).

    A message laid out on purpose (a list of bad keys, of suggestions: lines indented
    under it) keeps its lines; any other whitespace is folded.
    """
    text = str(err)
    if "\n  " in text:
        return f"{prog}: error: {text}"
    line = f"{prog}: error: {' '.join(text.split())}"
    # paths stay whole: break lines at spaces only, never inside a word or at a hyphen
    return line if width is None else textwrap.fill(line, width=width, break_long_words=False, break_on_hyphens=False)


def bug_text(prog: str) -> str:
    return f"{prog}: internal error (a bug): please report it with the traceback above"


def run_main(main: Callable[[], object], prog: str) -> None:
    """Run ``main``; a UserError -> one paragraph + exit 2, Ctrl-C -> exit 130, anything else -> traceback + exit 70.

    An ``OSError`` that only the environment causes (permission denied, read-only file system,
    no space left, on a named file: :func:`musicrec.errors.environment_error`) counts as a user error.
    """
    try:
        main()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; no output was replaced", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        err = exc if isinstance(exc, UserError) else environment_error(exc)
        if err is None:
            traceback.print_exc()
            print(bug_text(prog), file=sys.stderr, flush=True)
            sys.exit(EXIT_BUG)
        if os.environ.get("MUSICREC_DEBUG"):
            traceback.print_exc()
        print(user_error_text(prog, err), file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


def run_stage(main: Callable[[], object], name: str) -> None:
    """:func:`run_main` for the stage ``name`` (messages start with ``musicrec <name>:``)."""
    run_main(main, f"musicrec {name}")
