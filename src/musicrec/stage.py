"""Shared plumbing for the thin DVC entry points in ``stages/``.

``run_stage(main)`` turns the errors a user can cause (bad params, bad input
files, unreachable services) into one paragraph on stderr and exit code 2,
instead of a traceback from deep inside a library. ``MUSICREC_DEBUG=1`` shows
the traceback as well.
"""

from __future__ import annotations

import os
import sys
import textwrap
import traceback
from collections.abc import Callable

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, RuntimeError, PermissionError, OSError)


def set_thread_env() -> None:
    """One BLAS thread per process (implicit parallelises with OpenMP itself)."""
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def run_stage(main: Callable[[], None], name: str) -> None:
    try:
        main()
    except USER_ERRORS as err:
        if os.environ.get("MUSICREC_DEBUG"):
            traceback.print_exc()
        msg = " ".join(str(err).split()) if "\n  " not in str(err) else str(err)
        # a path in the message is never split (a wrap at a hyphen or inside a long word would break it)
        print(textwrap.fill(f"musicrec {name}: error: {msg}", width=100, break_on_hyphens=False,
                            break_long_words=False) if "\n" not in msg
              else f"musicrec {name}: error: {msg}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"musicrec {name}: interrupted; no output was replaced", file=sys.stderr)
        sys.exit(130)
