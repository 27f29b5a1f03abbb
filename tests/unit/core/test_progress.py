"""musicrec.progress: a bar on a terminal, periodic plain lines otherwise, and per-step durations."""

from __future__ import annotations

import io

import pytest

from musicrec.progress import Progress, StepTimer, mode, progress


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    monkeypatch.delenv("MUSICREC_PROGRESS", raising=False)


def test_mode_follows_the_stream_and_the_override(monkeypatch):
    assert mode(io.StringIO()) == "lines"
    assert mode(Tty()) == "bar"
    monkeypatch.setenv("MUSICREC_PROGRESS", "off")
    assert mode(Tty()) == "off"
    monkeypatch.setenv("MUSICREC_PROGRESS", "lines")
    assert mode(Tty()) == "lines"


def test_plain_lines_come_every_interval_and_at_the_end():
    out, clock = io.StringIO(), Clock()
    with Progress("clean: reading", 300, unit="rows", interval=10, stream=out, clock=clock) as bar:
        for _ in range(3):
            clock.t += 4
            bar.update(100)
    lines = out.getvalue().splitlines()
    # 4 s, 8 s: nothing; 12 s: a line; the end: the last line
    assert lines == ["clean: reading: 300/300 rows, 12 s ...", "clean: reading: 300/300 rows, 12 s"]
    assert "\r" not in out.getvalue()


def test_a_step_shorter_than_the_interval_prints_nothing():
    out, clock = io.StringIO(), Clock()
    with Progress("clean: reading", unit="rows", interval=10, stream=out, clock=clock) as bar:
        clock.t = 9.9
        bar.update(2)
    assert out.getvalue() == ""


def test_progress_wraps_an_iterable_and_counts_it():
    out, clock = io.StringIO(), Clock()

    def slow():
        for i in range(5):
            clock.t += 3
            yield i

    items = progress(slow(), "evaluate: als", total=5, unit="batches", interval=10, stream=out, clock=clock)
    assert list(items) == [0, 1, 2, 3, 4]
    assert out.getvalue().splitlines() == ["evaluate: als: 4/5 batches, 12 s ...", "evaluate: als: 5/5 batches, 15 s"]


def test_a_terminal_gets_a_tqdm_bar():
    out = Tty()
    with Progress("train: als", 3, unit="iterations", stream=out) as bar:
        bar.update(3)
    text = out.getvalue()
    assert "train: als" in text and "3/3" in text and "\r" in text


def test_off_prints_nothing(monkeypatch):
    monkeypatch.setenv("MUSICREC_PROGRESS", "off")
    out = io.StringIO()
    list(progress(range(3), "x", stream=out))
    timer = StepTimer("x", stream=out)
    timer.lap("a")
    assert out.getvalue() == "" and list(timer.durations) == ["a"]


def test_step_timer_logs_and_keeps_durations():
    out, clock = io.StringIO(), Clock()
    timer = StepTimer("transform", stream=out, clock=clock)
    clock.t = 1.5
    timer.lap("aggregate")
    with timer.step("filter"):
        clock.t = 4.75
    clock.t = 5.0
    timer.lap("write")
    assert timer.durations == {"aggregate": 1.5, "filter": 3.25, "write": 0.25}
    assert timer.total() == 5.0
    assert out.getvalue().splitlines() == ["transform: aggregate: 1.5 s", "transform: filter: 3.2 s",
                                           "transform: write: 0.25 s"]


def _sparse(seed: int = 0):
    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    return sp.random(30, 20, density=0.3, format="csr", random_state=rng, dtype=np.float32)


def test_the_long_steps_report_progress(monkeypatch, capsys):
    """ALS iterations, the filter passes and evaluation batches go through musicrec.progress (bar forced)."""
    import numpy as np
    import pandas as pd

    from musicrec.models.mf import ALSRecommender
    from musicrec.pipeline.evaluate import recommend_batched
    from musicrec.pipeline.transform import FilterSpec, filter_pairs_in_memory

    monkeypatch.setenv("MUSICREC_PROGRESS", "bar")
    X = _sparse()
    model = ALSRecommender(factors=4, iterations=3, seed=1).fit(X)
    err = capsys.readouterr().err
    assert "train: als" in err and "3/3" in err
    pairs = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u3"], "item_id": ["a", "b", "a", "c"],
                          "playcount": [1, 2, 3, 4]})
    filter_pairs_in_memory(pairs, FilterSpec(min_user_items=2, min_item_users=1, max_passes=5))
    assert "transform: filter" in capsys.readouterr().err
    recommend_batched(model, np.arange(5), X, 3)
    assert "evaluate: als" in capsys.readouterr().err



def test_step_timer_phases_give_seconds_and_the_peak_memory_so_far():
    import io

    from musicrec.progress import StepTimer

    ticks = iter([0.0, 1.0, 1.0, 2.0, 2.5, 2.5])  # made, lap, its mark, step start, end, its mark
    out = io.StringIO()
    t = StepTimer("stage", stream=out, clock=lambda: next(ticks), quiet=True)
    t.lap("read")
    with t.step("write"):
        pass
    phases = t.phases()
    assert [(p["phase"], p["seconds"]) for p in phases] == [("read", 1.0), ("write", 0.5)]
    assert all(p["peak_rss_mb"] > 0 for p in phases) and phases[1]["peak_rss_mb"] >= phases[0]["peak_rss_mb"]
    assert out.getvalue() == "", "quiet: nothing printed"
