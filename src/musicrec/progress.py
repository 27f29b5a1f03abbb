"""Progress of long steps: a bar on a terminal, plain periodic lines otherwise (DVC captures stage output).

``with Progress("clean: reading", unit="chunk") as bar: ... bar.update(1)`` (or ``bar.iter(items)``)
draws a tqdm bar when stderr is a terminal; otherwise it prints one line every ``interval`` seconds
and a last one at the end ("clean: reading: 1,200,000 rows, 12 s"); a step shorter than ``interval``
prints nothing. :class:`StepTimer` times a stage's
steps: ``with timer.step("filter"):`` logs "transform: filter: 3.2 s" and keeps the durations
(``timer.durations``) for the stage's report. Everything goes to stderr; ``MUSICREC_PROGRESS`` =
``bar`` / ``lines`` / ``off`` overrides the choice. Outputs never depend on it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, TypeVar

from musicrec.formatting import duration, number

T = TypeVar("T")
MODES = ("bar", "lines", "off")


def mode(stream: IO[str] | None = None) -> str:
    """``bar`` on a terminal, else ``lines``; ``MUSICREC_PROGRESS`` overrides (an unknown value: ``lines``)."""
    chosen = os.environ.get("MUSICREC_PROGRESS", "").strip().lower()
    if chosen in MODES:
        return chosen
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


class Progress:
    """A count of done work for one long step (see the module docstring)."""

    def __init__(self, desc: str, total: int | None = None, *, unit: str = "items", interval: float = 10.0,
                 stream: IO[str] | None = None, clock=time.monotonic) -> None:
        self.desc, self.total, self.unit, self.interval = desc, total, unit, interval
        self.stream = sys.stderr if stream is None else stream
        self.mode = mode(self.stream)
        self.clock = clock
        self.n = 0
        self.start = self.last = clock()
        self.lines = 0
        self._bar = None
        if self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=True, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.mode == "lines" and self.clock() - self.last >= self.interval:
            self.last = self.clock()
            self._line()

    def iter(self, items: Iterable[T]) -> Iterator[T]:
        for item in items:
            yield item
            self.update(1)

    def _line(self, final: bool = False) -> None:
        done = number(self.n) if self.total is None else f"{number(self.n)}/{number(self.total)}"
        elapsed = duration(self.clock() - self.start)
        self.lines += 1
        print(f"{self.desc}: {done} {self.unit}, {elapsed}{'' if final else ' ...'}", file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.mode == "lines" and (self.lines or self.clock() - self.start >= self.interval):
            self._line(final=True)
        self.mode = "off"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(items: Iterable[T], desc: str, total: int | None = None, **kw) -> Iterator[T]:
    """``items`` with a :class:`Progress` (closed when the loop ends or is left)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(desc, total, **kw) as bar:
        yield from bar.iter(items)


class StepTimer:
    """Per-step durations of one stage: logs ``"<stage>: <step>: 3.2 s"`` and keeps them in ``durations``.

    ``with timer.step("filter"): ...`` times a block; ``timer.lap("filter")`` times what ran since the
    previous lap (or since the timer was made), for a step that is a run of statements.
    """

    def __init__(self, stage: str, *, stream: IO[str] | None = None, clock=time.perf_counter,
                 quiet: bool = False) -> None:
        self.stage, self.stream, self.clock, self.quiet = stage, stream, clock, quiet
        self.durations: dict[str, float] = {}
        self.peaks: dict[str, float] = {}  # the process's peak RSS (MB) when each step ended
        self._mark = clock()

    def record(self, name: str, seconds: float) -> None:
        self.durations[name] = round(self.durations.get(name, 0.0) + seconds, 3)
        self.peaks[name] = peak_rss_mb()
        stream = sys.stderr if self.stream is None else self.stream
        if not self.quiet and mode(stream) != "off":
            print(f"{self.stage}: {name}: {duration(seconds)}", file=stream, flush=True)
        self._mark = self.clock()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        t0 = self.clock()
        try:
            yield
        finally:
            self.record(name, self.clock() - t0)

    def lap(self, name: str) -> None:
        self.record(name, self.clock() - self._mark)

    def total(self) -> float:
        return round(sum(self.durations.values()), 3)

    def phases(self) -> list[dict[str, float | str]]:
        """The steps in order, for a stage's report: seconds, and the process's peak RSS so far
        (a high-water mark: the step where it rises is the one that needed the memory)."""
        return [{"phase": n, "seconds": s, "peak_rss_mb": self.peaks[n]} for n, s in self.durations.items()]


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, MB (0 where the platform does not say)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux / macOS
        return 0.0
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)
