"""Small, dependency-free statistics helpers shared by scores, triage, judge and SLO code.

Pure functions; documented formulas; no numpy/scipy (the sizes here are aggregates, not rows).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_N = NormalDist()


def z_quantile(p: float) -> float:
    """Standard normal quantile: z_quantile(0.975) = 1.95996..."""
    return _N.inv_cdf(p)


def normal_cdf(x: float) -> float:
    return _N.cdf(x)


def t_quantile(p: float, df: float) -> float:
    """Student t quantile (Hill 1970 / Cornish-Fisher expansion); accurate to ~1e-4 for df >= 3,
    and exact-ish enough for df 1-2 via the closed forms."""
    if df <= 0:
        raise ValueError("df must be positive")
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        a = 4 * p * (1 - p)
        return (2 * p - 1) * math.sqrt(2 / a)
    z = z_quantile(p)
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160
    return z + g1 / df + g2 / df ** 2 + g3 / df ** 3 + g4 / df ** 4


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927)."""
    if n <= 0:
        return (0.0, 1.0)
    z = z_quantile(0.5 + confidence / 2)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(n: int, total: float, total_sq: float, confidence: float = 0.95) -> tuple[float, float] | None:
    """Confidence interval for a mean from (count, sum, sum of squares).

    0/1 data (sum of squares equals sum) gets the Wilson interval, which behaves at 0% and 100%;
    other data gets the t interval mean +- t * s / sqrt(n). None when n < 2 (no spread to judge)."""
    if n <= 0:
        return None
    mean = total / n
    if abs(total_sq - total) < 1e-9 * max(1.0, abs(total)) and 0 <= mean <= 1:
        return wilson_interval(total, n, confidence)
    if n < 2:
        return None
    var = max((total_sq - total * total / n) / (n - 1), 0.0)
    half = t_quantile(0.5 + confidence / 2, n - 1) * math.sqrt(var / n)
    return (mean - half, mean + half)


def welch_test(n1: int, m1: float, v1: float, n2: int, m2: float, v2: float) -> tuple[float, float]:
    """Welch's two-sample test of means: returns (t statistic of m2 - m1, two-sided p-value using
    the normal approximation for df > 30 and the t distribution otherwise via a numeric CDF)."""
    se2 = v1 / n1 + v2 / n2
    if se2 <= 0:
        return (0.0, 1.0)
    t = (m2 - m1) / math.sqrt(se2)
    df = se2 ** 2 / ((v1 / n1) ** 2 / max(n1 - 1, 1) + (v2 / n2) ** 2 / max(n2 - 1, 1))
    return t, 2 * (1 - t_cdf(abs(t), df))


def t_cdf(x: float, df: float) -> float:
    """Student t CDF via the regularised incomplete beta function."""
    if df > 1e6:
        return normal_cdf(x)
    xt = df / (df + x * x)
    tail = 0.5 * _betainc(df / 2, 0.5, xt)
    return 1 - tail if x >= 0 else tail


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) by Lentz's continued fraction (Numerical Recipes 6.4)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(lbeta + a * math.log(x) + b * math.log(1 - x))
    if x > (a + 1) / (a + b + 2):
        return 1 - _betainc(b, a, 1 - x)
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -((a + m) * (a + b + m) * x) / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1 + num * d
        d = 1 / (d if abs(d) > 1e-30 else 1e-30)
        c = 1 + num / (c if abs(c) > 1e-30 else 1e-30)
        f *= c * d
        if abs(1 - c * d) < 1e-12:
            break
    return front * (f - 1) / a


def benjamini_hochberg(p_values: list[float], q: float = 0.05) -> list[bool]:
    """Which hypotheses the Benjamini-Hochberg procedure rejects at false discovery rate q."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    cutoff = -1
    for rank, i in enumerate(order, 1):
        if p_values[i] <= q * rank / m:
            cutoff = rank
    keep = [False] * m
    for rank, i in enumerate(order, 1):
        if rank <= cutoff:
            keep[i] = True
    return keep


# --- paired differences, ranks and correlation (added for judge calibration) -----------------

def t_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float] | None:
    """(mean, low, high): the Student t interval mean +- t(n-1) * s / sqrt(n) of a sample, e.g. of
    paired differences. None for fewer than 2 values. Zero spread gives a zero-width interval, so
    callers should also ask for a minimum n before trusting it."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = t_quantile(0.5 + confidence / 2, n - 1) * math.sqrt(var / n)
    return (mean, mean - half, mean + half)


def t_test_p(values: list[float], mu: float = 0.0) -> float | None:
    """Two-sided one-sample t test p-value of mean(values) == mu. None for fewer than 2 values;
    1.0 (no evidence) when every value equals mu, 0.0 when all are equal but differ from mu."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    if var <= 0:
        return 1.0 if mean == mu else 0.0
    t = (mean - mu) / math.sqrt(var / n)
    return max(0.0, min(1.0, 2 * (1 - t_cdf(abs(t), n - 1))))


def binomial_two_sided_p(k: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided binomial test p-value (sum of outcomes no more likely than k); the sign test
    and exact McNemar test are this with p = 0.5 on the non-tied / discordant pairs."""
    if n <= 0:
        return 1.0

    def pmf(i: int) -> float:
        return math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                        + (i * math.log(p) if i else 0.0) + ((n - i) * math.log(1 - p) if n - i else 0.0))

    observed = pmf(k)
    total = sum(pmf(i) for i in range(n + 1) if pmf(i) <= observed * (1 + 1e-7))
    return min(1.0, total)


def rankdata(values: list[float]) -> list[float]:
    """Ranks 1..n, ties get the average of the ranks they span (as scipy.stats.rankdata)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        i = j + 1
    return ranks


def pearson(x: list[float], y: list[float]) -> float | None:
    """Pearson correlation; None when fewer than 2 pairs or either side has no spread."""
    n = len(x)
    if n < 2 or n != len(y):
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx <= 0 or syy <= 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman rank correlation with ties handled by average ranks (Pearson on the ranks)."""
    if len(x) != len(y):
        raise ValueError("spearman: x and y differ in length")
    return pearson(rankdata(x), rankdata(y))


def fisher_z_interval(r: float, n: int, confidence: float = 0.95,
                      variance_factor: float = 1.0) -> tuple[float, float] | None:
    """CI for a correlation through Fisher's z = atanh(r), SE = sqrt(variance_factor / (n - 3)).
    Use variance_factor 1.06 for Spearman (Fieller, Hartley & Pearson 1957). None for n < 4."""
    if n < 4:
        return None
    r = max(-0.999999, min(0.999999, r))
    z = math.atanh(r)
    half = z_quantile(0.5 + confidence / 2) * math.sqrt(variance_factor / (n - 3))
    return (math.tanh(z - half), math.tanh(z + half))

# One-sided 95% normal quantile, Phi^-1(0.95): the SLO Wilson gate (statistics.md section 8).
Z_ONE_SIDED_95 = 1.6448536269514722


def wilson_lower(k: float, n: float, z: float = Z_ONE_SIDED_95) -> float:
    """One-sided lower confidence bound of a proportion k/n (Wilson score; default 95%):
    (p + z^2/2n - z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n). `k` and `n` may be fractional
    (expected counts); n <= 0 gives 0."""
    if n <= 0:
        return 0.0
    p = min(max(k / n, 0.0), 1.0)
    z2 = z * z
    half = z * math.sqrt(max(p * (1 - p) / n + z2 / (4 * n * n), 0.0))
    return max(0.0, (p + z2 / (2 * n) - half) / (1 + z2 / n))

def bh_adjusted(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values, step-up): p~(i) = min_{j>=i} min(1, m p(j)/j).
    A hypothesis is rejected at FDR q when its adjusted value is <= q (same as benjamini_hochberg)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 1.0
    for rank in range(m, 0, -1):
        i = order[rank - 1]
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = min(1.0, running)
    return adjusted


# --- triage: upper tails, moments, Welch on moments, sample sizes ----------------------------------

def normal_sf(x: float) -> float:
    """P(Z > x), accurate far in the upper tail (p-values of 1e-20 stay distinct)."""
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t."""
    if df > 1e6 or math.isinf(df):
        return normal_sf(t)
    return 1.0 - t_cdf(t, df)


def chi2_sf_even(x: float, df: int) -> float:
    """P(X > x) for a chi-square with an even number of degrees of freedom (Fisher's method:
    2k for k p-values), exactly: exp(-x/2) * sum_{i<k} (x/2)^i / i!."""
    if df % 2 or df <= 0:
        raise ValueError("df must be a positive even number")
    if x <= 0:
        return 1.0
    h = x / 2.0
    term, total = 1.0, 1.0
    for i in range(1, df // 2):
        term *= h / i
        total += term
    return min(1.0, math.exp(-h) * total)


def whiten(z: Sequence[float], corr: Sequence[Sequence[float]]) -> list[float]:
    """z scores made independent: L^-1 z with L the Cholesky factor of their correlation matrix
    (under the null, correlated N(0, 1) scores become independent N(0, 1) ones). The first score
    stays as it is; each later one keeps only what the earlier ones do not predict."""
    k = len(z)
    L = [[0.0] * k for _ in range(k)]
    for i in range(k):
        for j in range(i + 1):
            acc = corr[i][j] - sum(L[i][m] * L[j][m] for m in range(j))
            if i == j:
                L[i][i] = math.sqrt(max(acc, 1e-9))
            else:
                L[i][j] = acc / L[j][j]
    out: list[float] = []
    for i in range(k):
        out.append((z[i] - sum(L[i][m] * out[m] for m in range(i))) / L[i][i])
    return out


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
        p = 0.5 + level / 2
        q = t_quantile(p, self.df) if self.df < 200 else z_quantile(p)
        return (self.diff - q * self.se, self.diff + q * self.se)

    def p_less(self) -> float:
        """One-sided p-value for b < a."""
        return t_sf(-self.z, self.df) if self.df < 200 else normal_sf(-self.z)

    def p_greater(self) -> float:
        return t_sf(self.z, self.df) if self.df < 200 else normal_sf(self.z)


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


def newcombe_diff(k1: float, n1: float, k2: float, n2: float, confidence: float = 0.95) -> tuple[float, float]:
    """Newcombe hybrid-score interval for p1 - p2 from two Wilson intervals (Newcombe 1998)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1, confidence)
    l2, u2 = wilson_interval(k2, n2, confidence)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def sample_size_for_diff(sd: float, delta: float, *, alpha: float = 0.01, power: float = 0.8,
                         ratio: float = 1.0) -> int:
    """Events needed in the current window to see a drop of `delta` (one-sided test at `alpha`,
    given power) against a baseline `ratio` times larger."""
    if delta <= 0 or sd <= 0:
        return 0
    z = z_quantile(1 - alpha) + z_quantile(power)
    return int(math.ceil((z * sd / delta) ** 2 * (1 + 1 / ratio)))


def binomial_signed_root(k: float, n: float, q: float, *, continuity: float = 0.5) -> float:
    """Signed root of the binomial deviance of k successes in n trials against a proportion q:
    sign(k - nq) * sqrt(2 n KL(k/n || q)), with k moved `continuity` towards nq first.

    For 0/1 metrics with a rare outcome (a 1 % failure rate) and a short window the Wald z of a
    mean difference is far too large (3 failures in 11 events: Wald z 7.8, exact tail z 3.4);
    the likelihood-ratio root with a continuity correction stays close to the exact tail
    (3.2 here) and to the Wald z when counts are large."""
    if n <= 0:
        return 0.0
    q = min(max(q, 1e-9), 1 - 1e-9)
    e = n * q
    d = k - e
    if abs(d) <= continuity:
        return 0.0
    k = k - continuity if d > 0 else k + continuity
    k = min(max(k, 0.0), n)
    dev = 0.0
    if k > 0:
        dev += k * math.log(k / e)
    if n - k > 0:
        dev += (n - k) * math.log((n - k) / (n - e))
    r = math.sqrt(max(0.0, 2 * dev))
    return r if d > 0 else -r
