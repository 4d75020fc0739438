import math

import pytest

from alignlab.code.passk import estimate_pass_at_k, pass_at_k
from alignlab.errors import ConfigError


def closed_form(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@pytest.mark.parametrize("n", [1, 2, 5, 10, 20, 50, 200])
def test_estimator_equals_the_closed_form(n: int) -> None:
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert estimate_pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), abs=1e-12)


def test_pass_at_1_is_the_fraction_correct() -> None:
    assert estimate_pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert estimate_pass_at_k(10, 0, 5) == 0.0
    assert estimate_pass_at_k(10, 8, 5) == 1.0


def test_large_n_does_not_overflow() -> None:
    value = estimate_pass_at_k(10_000, 17, 100)
    assert 0.0 < value < 1.0
    assert value == pytest.approx(closed_form(10_000, 17, 100), rel=1e-9)


def test_k_reported_only_where_every_task_has_k_samples() -> None:
    results = {"a": [True] * 3 + [False] * 7, "b": [False] * 5}
    reported = pass_at_k(results, ks=(1, 5, 10))
    assert set(reported) == {"pass@1", "pass@5"}
    assert reported["pass@1"] == pytest.approx((0.3 + 0.0) / 2)
    assert reported["pass@5"] == pytest.approx((closed_form(10, 3, 5) + 0.0) / 2)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ConfigError):
        estimate_pass_at_k(5, 2, 6)
    with pytest.raises(ConfigError):
        estimate_pass_at_k(5, 6, 1)
    assert pass_at_k({}) == {}
