"""Small statistics functions in pure Python (no numpy/scipy), shared by the analysis modules."""

from __future__ import annotations

import math

# One-sided 95% normal quantile: Phi^-1(0.95).
Z_ONE_SIDED_95 = 1.6448536269514722
# Two-sided 95% normal quantile: Phi^-1(0.975).
Z_TWO_SIDED_95 = 1.959963984540054


def wilson_interval(k: float, n: float, z: float = Z_TWO_SIDED_95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n (statistics.md section 2.3).

    (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n). Near-nominal coverage at small n,
    which is why sampled judge scores use it. `k` and `n` may be fractional (expected counts).
    n <= 0 gives the uninformative (0, 1)."""
    if n <= 0:
        return 0.0, 1.0
    p = min(max(k / n, 0.0), 1.0)
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = p + z2 / (2.0 * n)
    half = z * math.sqrt(max(p * (1.0 - p) / n + z2 / (4.0 * n * n), 0.0))
    return max(0.0, (centre - half) / denom), min(1.0, (centre + half) / denom)


def wilson_lower(k: float, n: float, z: float = Z_ONE_SIDED_95) -> float:
    """One-sided lower confidence bound of a proportion (default 95%)."""
    return wilson_interval(k, n, z)[0]
