"""Small statistics helpers in pure Python (no numpy/scipy), shared by the analysis modules.

Everything here is deterministic and side-effect free. Formulas and defaults follow
../shared/research/statistics.md (sections 2.3, 3.1, 4.1, 7.3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

SQRT2 = math.sqrt(2.0)


# --- normal and Student t distributions ------------------------------------------------

def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / SQRT2)


def norm_sf(x: float) -> float:
    """P(Z > x), accurate far in the upper tail."""
    return 0.5 * math.erfc(x / SQRT2)


def norm_ppf(p: float) -> float:
    """Inverse of the standard normal CDF (Wichura's AS241, ~1e-16 relative accuracy)."""
    if not 0.0 < p < 1.0:
        if p == 0.0:
            return -math.inf
        if p == 1.0:
            return math.inf
        raise ValueError(f"probability out of range: {p}")
    q = p - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        num = (((((((2509.0809287301226727 * r + 33430.575583588128105) * r + 67265.770927008700853) * r
                   + 45921.953931549871457) * r + 13731.693765509461125) * r + 1971.5909503065514427) * r
                + 133.14166789178437745) * r + 3.387132872796366608)
        den = (((((((5226.495278852545925 * r + 28729.085735721942674) * r + 39307.89580009271061) * r
                   + 21213.794301586595867) * r + 5394.1960214247511077) * r + 687.1870074920579083) * r
                + 42.313330701600911252) * r + 1.0)
        return q * num / den
    r = p if q < 0 else 1.0 - p
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r -= 1.6
        num = (((((((7.7454501427834140764e-4 * r + 0.0227238449892691845833) * r + 0.24178072517745061177) * r
                   + 1.27045825245236838258) * r + 3.64784832476320460504) * r + 5.7694972214606914055) * r
                + 4.6303378461565452959) * r + 1.42343711074968357734)
        den = (((((((1.05075007164441684324e-9 * r + 5.475938084995344946e-4) * r + 0.0151986665636164571966) * r
                   + 0.14810397642748007459) * r + 0.68976733498510000455) * r + 1.6763848301838038494) * r
                + 2.05319162663775882187) * r + 1.0)
    else:
        r -= 5.0
        num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 0.0012426609473880784386) * r
                   + 0.026532189526576123093) * r + 0.29656057182850489123) * r + 1.7848265399172913358) * r
                + 5.4637849111641143699) * r + 6.6579046435011037772)
        den = (((((((2.04426310338993978564e-15 * r + 1.4215117583164458887e-7) * r + 1.8463183175100546818e-5) * r
                   + 7.868691311456132591e-4) * r + 0.0148753612908506148525) * r + 0.13692988092273580531) * r
                + 0.59983220655588793769) * r + 1.0)
    x = num / den
    return -x if q < 0 else x


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the regularized incomplete beta (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 3e-16:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with df degrees of freedom (normal beyond df = 1e6)."""
    if math.isnan(t):
        return math.nan
    if df <= 0 or math.isinf(df) or df > 1e6:
        return norm_sf(t)
    x = df / (df + t * t)
    tail = 0.5 * betainc(df / 2.0, 0.5, x)
    return tail if t > 0 else 1.0 - tail


def t_ppf(p: float, df: float) -> float:
    """Quantile of Student's t (bisection on t_sf; only used for a few interval bounds)."""
    if df > 1e6:
        return norm_ppf(p)
    if p == 0.5:
        return 0.0
    target = 1.0 - p  # upper tail
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_sf(mid, df) > target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# --- moments ------------------------------------------------------------------------------

@dataclass
class Moments:
    """n, sum and sum of squares of a set of values: everything a mean/variance test needs."""

    n: float = 0.0
    s: float = 0.0
    ss: float = 0.0

    def add(self, n: float, s: float, ss: float) -> None:
        self.n += n
        self.s += s
        self.ss += ss

    def merge(self, other: Moments) -> None:
        self.add(other.n, other.s, other.ss)

    @property
    def mean(self) -> float | None:
        return self.s / self.n if self.n > 0 else None

    @property
    def var(self) -> float | None:
        """Unbiased sample variance of the individual values."""
        if self.n < 2:
            return None
        return max((self.ss - self.s * self.s / self.n) / (self.n - 1), 0.0)


# --- tests and intervals ------------------------------------------------------------------

@dataclass(frozen=True)
class DiffTest:
    """Difference of two means (b - a) with its standard error and a z/t statistic."""

    a_mean: float
    b_mean: float
    diff: float
    se: float
    z: float
    df: float
    n_a: float
    n_b: float

    def ci(self, level: float = 0.95) -> tuple[float, float]:
        q = t_ppf(0.5 + level / 2, self.df) if self.df < 200 else norm_ppf(0.5 + level / 2)
        return (self.diff - q * self.se, self.diff + q * self.se)

    def p_less(self) -> float:
        """One-sided p-value for b < a."""
        return t_sf(-self.z, self.df) if self.df < 200 else norm_cdf(self.z)

    def p_greater(self) -> float:
        return t_sf(self.z, self.df) if self.df < 200 else norm_sf(self.z)

    def p_two_sided(self) -> float:
        return min(1.0, 2.0 * min(self.p_less(), self.p_greater()))


def welch(a: Moments, b: Moments, *, var_floor: float = 0.0, inflation: float = 1.0) -> DiffTest | None:
    """Welch's test of mean(b) - mean(a) on moments. `inflation` multiplies both variances (an
    overdispersion factor phi); `var_floor` keeps a degenerate sample (all values equal) honest."""
    if a.n < 1 or b.n < 1:
        return None
    va = max(a.var if a.var is not None else var_floor, var_floor) * inflation
    vb = max(b.var if b.var is not None else var_floor, var_floor) * inflation
    sa, sb = va / a.n, vb / b.n
    se = math.sqrt(sa + sb)
    diff = b.mean - a.mean
    if se <= 0:
        z = 0.0 if diff == 0 else math.copysign(math.inf, diff)
        return DiffTest(a.mean, b.mean, diff, 0.0, z, math.inf, a.n, b.n)
    num = (sa + sb) ** 2
    den = (sa * sa / (a.n - 1) if a.n > 1 else 0.0) + (sb * sb / (b.n - 1) if b.n > 1 else 0.0)
    df = num / den if den > 0 else math.inf
    return DiffTest(a.mean, b.mean, diff, se, diff / se, max(df, 1.0), a.n, b.n)


def wilson(k: float, n: float, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe_diff(k1: float, n1: float, k2: float, n2: float,
                  z: float = 1.959963984540054) -> tuple[float, float]:
    """Newcombe hybrid-score interval for p1 - p2 from two Wilson intervals."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def mean_ci(m: Moments, level: float = 0.95) -> tuple[float, float] | None:
    if m.n < 2 or m.var is None:
        return None
    se = math.sqrt(m.var / m.n)
    q = t_ppf(0.5 + level / 2, m.n - 1) if m.n < 200 else norm_ppf(0.5 + level / 2)
    return (m.mean - q * se, m.mean + q * se)


def benjamini_hochberg(pvalues: Sequence[float]) -> list[float]:
    """BH-adjusted p-values (step-up): p~(i) = min_{j>=i} min(1, m p(j) / j)."""
    m = len(pvalues)
    if m == 0:
        return []
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, pvalues[i] * m / rank)
        adjusted[i] = min(1.0, running)
    return adjusted


def sample_size_for_diff(sd: float, delta: float, *, alpha: float = 0.01, power: float = 0.8,
                         ratio: float = 1.0) -> int:
    """Events needed in the current window to see a drop of `delta` with a one-sided test at
    `alpha` and the given power, against a baseline `ratio` times larger."""
    if delta <= 0 or sd <= 0:
        return 0
    z = norm_ppf(1 - alpha) + norm_ppf(power)
    n = (z * sd / delta) ** 2 * (1 + 1 / ratio)
    return int(math.ceil(n))


def weighted_mean(values: Sequence[float], weights: Sequence[float]) -> float | None:
    w = sum(weights)
    if w <= 0:
        return None
    return sum(v * x for v, x in zip(values, weights, strict=True)) / w


def clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x
