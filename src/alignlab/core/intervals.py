"""The confidence interval every measured rate in alignlab reports: Wilson's score interval.

One small implementation, so the base install and the pillars without scipy report the
same interval; it equals ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``
(tested against it where scipy is installed).
"""

from __future__ import annotations

import math

# The two-sided 95% normal quantile, norm.ppf(0.975), as scipy computes it.
Z95 = 1.959963984540054


def wilson(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of the proportion ``k / n``; ``(0, 1)`` when ``n == 0``.

    Args:
        k: successes (a float is allowed for tallies of 0/1 credits).
        n: trials.
        z: the normal quantile of the confidence level (95% by default).
    """
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
