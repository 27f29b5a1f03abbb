"""musicrec.formatting: numbers as people write them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from musicrec.formatting import bytes_size, duration, number, percent, pvalue


@pytest.mark.parametrize(("value", "text"), [
    (30000.0, "30,000"), (3e4, "30,000"), (30_000, "30,000"), (np.int64(1_234_567), "1,234,567"),
    (np.float64(2.5e6), "2,500,000"), (0.123456, "0.1235"), (1234.5, "1,234.5000"), (0.0, "0.0000"),
    (None, "–"), (math.nan, "–"), (math.inf, "∞"), (-12, "-12"), (1e-7, "0.0000"),
])
def test_number(value, text):
    assert number(value) == text


def test_number_digits_and_no_scientific_notation():
    assert number(3.14159, 2) == "3.14"
    assert "e" not in number(1.5e22) and number(1.5e22).startswith("15,000,000,000,000,000,000,000")


@pytest.mark.parametrize(("p", "text"), [(2e-9, "<0.001"), (0.000999, "<0.001"), (0.001, "0.001"),
                                         (0.0421, "0.042"), (1.0, "1.000"), (None, "–"), (math.nan, "–")])
def test_pvalue(p, text):
    assert pvalue(p) == text


def test_percent_bytes_duration():
    assert percent(0.4213) == "42.1%" and percent(None) == "–"
    assert [bytes_size(n) for n in (0, 999, 1000, 1_500_000, 3_200_000_000)] == \
        ["0 B", "999 B", "1.0 kB", "1.5 MB", "3.2 GB"]
    assert [duration(s) for s in (0.42, 3.21, 42.4, 125)] == ["0.42 s", "3.2 s", "42 s", "2 min 05 s"]
