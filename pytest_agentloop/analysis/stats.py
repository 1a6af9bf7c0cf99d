"""Small-sample statistics for pass/fail data, in pure Python so a saved results file needs no scipy.

The methodology runs few repetitions (N >= 3), so every rate is shown with an interval and every
comparison with a paired test: a raw 8/9 vs 6/9 is not a winner.
"""

from __future__ import annotations

import math


def wilson(passes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a pass rate: sane at 0/n and n/n, unlike the normal approximation."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= passes <= n:
        raise ValueError(f"wilson: passes={passes} is outside 0..n={n}")
    p = passes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))
