"""The one Wilson interval: the closed form, and scipy's where scipy is installed."""

from __future__ import annotations

import math

import pytest

from alignlab.core.intervals import Z95, wilson


def test_wilson_interval_matches_the_closed_form() -> None:
    low, high = wilson(70, 100)
    z, p, n = Z95, 0.7, 100
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert low == pytest.approx((centre - half) / (1 + z * z / n)) and low == pytest.approx(0.6042, abs=1e-4)
    assert high == pytest.approx((centre + half) / (1 + z * z / n))
    assert high == pytest.approx(0.7811, abs=1e-4)


def test_wilson_interval_brackets_the_rate_and_stays_in_the_unit_interval() -> None:
    low, high = wilson(3, 40)
    assert 0 < low < 3 / 40 < high < 1
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)
    assert wilson(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 40), (70, 100), (10, 10), (1, 1), (517, 1200)])
def test_wilson_interval_equals_scipys(k: int, n: int) -> None:
    stats = pytest.importorskip("scipy.stats")
    interval = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson(k, n) == pytest.approx((interval.low, interval.high), abs=1e-12)
