"""Overlapping the steps of a stream: :func:`prefetched` runs an iterator in a background thread.

The clean stage reads and splits a file's records in one thread, validates them in
another and checks duplicates, joins and writes in the main one: Arrow's kernels and
the file reads release the GIL, so on two cores the three overlap.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items`` computed in a background thread up to ``depth`` ahead of the consumer, in order.

    An exception in the producer is raised here, with its traceback; when the consumer
    stops early (its own error, or it stops iterating), the producer stops after the item
    at hand and closes ``items`` in its own thread (files closed by the generator's ``finally``).
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1 (got {depth})")
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[BaseException | None, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((None, item)):
                    break
            else:
                put((None, _END))
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, which raises it
            put((err, None))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="musicrec-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            err, item = q.get()
            if err is not None:
                raise err
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        worker.join()
