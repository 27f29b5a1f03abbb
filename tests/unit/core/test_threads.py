"""musicrec.threads.prefetched: an iterator run in a background thread."""

import threading

import pytest

from musicrec.errors import DataError
from musicrec.threads import prefetched


def test_items_arrive_in_order_from_another_thread():
    threads = []

    def items():
        for i in range(50):
            threads.append(threading.current_thread().name)
            yield i

    assert list(prefetched(items(), depth=3)) == list(range(50))
    assert set(threads) == {"musicrec-prefetch"}


def test_a_producer_error_is_raised_in_the_consumer_with_its_class_and_traceback():
    def items():
        yield 1
        raise DataError("bad row in f.csv line 2")

    got = []
    with pytest.raises(DataError, match="line 2") as err:
        for x in prefetched(items()):
            got.append(x)
    assert got == [1]
    assert any(f.name == "items" for f in __import__("traceback").extract_tb(err.value.__traceback__))


def test_stopping_early_closes_the_producer_in_its_thread():
    closed = threading.Event()

    def items():
        try:
            for i in range(10**6):
                yield i
        finally:
            closed.set()

    it = prefetched(items(), depth=1)
    assert next(it) == 0
    it.close()  # the consumer stops: the producer stops after the item at hand and runs its finally
    assert closed.is_set()


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth"):
        list(prefetched(iter([]), depth=0))
