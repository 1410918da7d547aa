"""Is the current window worse than the baseline beyond noise, and since when?

Method (../shared/research/statistics.md sections 1, 2, 4):

- Every bucket's observed mean is compared with what the baseline predicts for it: the baseline
  mean of each slice cell, weighted by the bucket's own cell counts (indirect standardisation).
  The residual is the *rate* signal: quality moving inside cells. Traffic mix moving between
  cells (diurnal mixes, campaigns) leaves it alone.
- A second signal tracks the *mix*: what the bucket's cell counts predict against what the
  baseline mix for that hour of day predicts (like with like for diurnal traffic).
- Sampling noise: a bucket mean of n judged items has variance sigma^2/n (sigma^2 the pooled
  within-cell variance of single scores); between-bucket overdispersion is measured on the
  baseline as a Pearson dispersion factor phi >= 1 and multiplies every variance.
- Onset: a single change point (profile likelihood of a mean step, weighted by n) scanned over
  every bucket boundary in the window, on the whole feature and on every single slice value.
  The p-value is Bonferroni-corrected over candidate onsets and scanned scopes, so a noise-only
  day stays below the threshold. Earlier steps in the same direction (canary ramps) are
  followed back to the first one.
- Too little data for a verdict is a verdict too: it says how many events would be needed.

Everything here is pure: the cube comes in, a Detection goes out.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field

from oncall_ai.analysis.cube import Cell, Cube
from oncall_ai.analysis.stats import (
    DiffTest,
    Moments,
    binomial_signed_root,
    chi2_sf_even,
    normal_sf,
    sample_size_for_diff,
    welch,
    whiten,
    z_quantile,
)
from oncall_ai.timeutil import format_time


@dataclass(frozen=True)
class DetectParams:
    alpha: float = 0.001  # family-wise false-alarm rate for one (feature, metric)
    prior_strength: float = 20.0  # events of pseudo-count pulling a sparse cell's mean to the grand mean
    min_events: int = 30  # fewer events in the current window (or the baseline): no verdict
    min_post_events: int = 8  # a candidate onset leaves at least this many events after it
    min_effect_sd: float = 0.05  # a drop smaller than this many SDs of single values is not reported
    mix_prior: float = 50.0  # pseudo-count pulling an hour-of-day mix towards the overall mix
    scan_slices: bool = True
    max_slice_scopes: int = 40
    family: int = 1  # (feature, metric) pairs examined in the same run: alpha is split over them
    min_recovered_ms: int = 2 * 3_600_000  # "recovered" needs at least this long back at baseline
    # Between alpha and this (family-wise), a drop is "suspected": not a regression (detected stays
    # false, nothing pages), but the onset, slices and candidate causes are worked out and shown as
    # unconfirmed, with how many more events would settle it. 0 turns the tier off. 0.1 rather
    # than 0.05: on 120 demo noise days (tuning seeds 1-120) both show suspects on the same 5 days
    # (the corrections are conservative), while 0.1 leaves 4 fewer of 640 incidents with nothing.
    suspect_alpha: float = 0.1


@dataclass
class Reference:
    """What "normal" looks like, fitted on the baseline buckets [b0, b1)."""

    b0: int
    b1: int
    mu: list[float]  # per cell of the cube
    grand: float
    sigma2: float  # pooled within-cell variance of single values
    phi: float = 1.0  # overdispersion of bucket residuals (multiplicative, for window tests)
    tau2: float = 0.0  # the same as an added between-bucket variance (for the scans)
    phi_mix: float = 1.0
    mix_var: float = 0.0  # variance of cell means across traffic (what mix can move)
    hour_mix: list[list[float]] | None = None  # [hour][cell] baseline share, or None
    mix: list[float] = field(default_factory=list)  # [cell] overall baseline share

    def mu_by_cell(self, cube: Cube) -> dict[Cell, float]:
        return {c: self.mu[i] for i, c in enumerate(cube.cells)}


@dataclass
class Scan:
    scope: dict  # {} for the whole feature, {"language": "de"} for a slice, {"mix": ...} for mix
    kind: str  # "rate" or "mix"
    tau: int | None  # first bucket of the post segment
    z: float  # in the bad direction: positive = worse
    p_one: float
    delta: float  # post - pre residual mean, metric units
    n_candidates: int
    profile: list[tuple[int, float]] = field(default_factory=list)  # (tau, z) per candidate
    mult: float = 0.0  # Bonferroni multiplier of the test within the run (see _scan_all)
    anchor: object = None  # for kind "anchor": the change the step was tested at
    tests: int = 1  # 2 when an anchor's p-value is the smaller of its own and a combined test
    support: list = field(default_factory=list)  # [(feature, metric, z)]: companions tested with it
    p_own: float | None = None  # an anchor's own-metric p-value, when combined


@dataclass
class Detection:
    detected: bool
    verdict: str  # regression | suspected | no_regression | insufficient_data | recovered
    reason: str
    higher_is_better: bool
    onset: int | None = None  # epoch ms
    onset_range: tuple[int, int] | None = None
    onset_bucket: int | None = None
    baseline_window: tuple[int, int] | None = None
    current_window: tuple[int, int] | None = None
    baseline: Moments = field(default_factory=Moments)
    current: Moments = field(default_factory=Moments)
    test: DiffTest | None = None
    p_value: float | None = None
    z: float = 0.0
    signal: str = "rate"  # rate | mix: which scan carried the verdict
    scope: dict = field(default_factory=dict)
    needed_n: int | None = None
    mde: float | None = None  # minimum detectable drop with the current sample
    reference: Reference | None = None
    scans: list[Scan] = field(default_factory=list)
    recovered_at: int | None = None
    anchor: object = None  # the Anchor (known change time) whose step test carried the verdict
    support: list = field(default_factory=list)  # [(feature, metric, z)]: other metrics tested at the anchor
    needed_more: int | None = None  # suspected: about how many more events after the onset settle it
    alpha: float = 0.001  # the family-wise level a regression had to pass

    @property
    def has_drop(self) -> bool:
        """A drop with an onset worth working out (slices, causes): a regression, or a suspected one."""
        return self.detected or self.verdict == "suspected"

    @property
    def delta(self) -> float | None:
        if self.baseline.n and self.current.n:
            return self.current.mean - self.baseline.mean
        return None


# --- reference model ----------------------------------------------------------------------------

def fit_reference(cube: Cube, b0: int, b1: int, *, prior_strength: float = 20.0,
                  mix_prior: float = 50.0) -> Reference | None:
    """Cell means (shrunk towards the grand mean), pooled variance, dispersion and mix on [b0, b1)."""
    b0, b1 = max(0, b0), min(cube.n_buckets, b1)
    total = cube.moments(b0, b1)
    if total.n < 2:
        return None
    grand = total.mean
    mu: list[float] = []
    within_ss, within_df = 0.0, 0.0
    cell_n: list[float] = []
    for ci in range(len(cube.cells)):
        m = cube.cell_moments(ci, b0, b1)
        cell_n.append(m.n)
        mu.append((m.s + prior_strength * grand) / (m.n + prior_strength))
        if m.n >= 2:
            within_ss += m.ss - m.s * m.s / m.n
            within_df += m.n - 1
    sigma2 = within_ss / within_df if within_df > 0 else (total.var or 0.0)
    # A floor keeps degenerate data (all values equal) from producing infinite z scores.
    sigma2 = max(sigma2, 1e-6, 0.0025 * (total.var or 0.0))
    tn = sum(cell_n)
    mix = [x / tn for x in cell_n] if tn else [0.0] * len(cube.cells)
    mix_var = sum(w * (m - grand) ** 2 for w, m in zip(mix, mu, strict=True))
    ref = Reference(b0, b1, mu, grand, sigma2, mix=mix, mix_var=mix_var)
    ref.hour_mix = _hour_mix(cube, b0, b1, mix, mix_prior)
    y, w = rate_residuals(cube, ref)
    ref.phi = _dispersion(y, w, b0, b1)
    ref.tau2 = between_bucket_var(y, w, b0, b1)
    if mix_var > 0:
        ref.phi_mix = _dispersion(*mix_residuals(cube, ref), b0, b1)
    return ref


def _hour_mix(cube: Cube, b0: int, b1: int, mix: list[float], prior: float) -> list[list[float]] | None:
    """Baseline traffic share of each cell per hour of day (UTC), shrunk towards the overall mix."""
    if cube.bucket_ms > 3_600_000 or not cube.cells:
        return None
    counts = [[0.0] * len(cube.cells) for _ in range(24)]
    per = 86_400_000 // cube.bucket_ms if 86_400_000 % cube.bucket_ms == 0 else 0
    for ci in range(len(cube.cells)):
        cn = cube.n[ci]
        if per:  # buckets of one hour of day are every `per`-th: sum the strided slices
            for first in range(b0, min(b1, b0 + per)):
                counts[_hour(cube, first)][ci] += sum(cn[first:b1:per])
            continue
        for b in range(b0, b1):
            if cn[b]:
                counts[_hour(cube, b)][ci] += cn[b]
    out = []
    for h in range(24):
        nh = sum(counts[h])
        out.append([(counts[h][ci] + prior * mix[ci]) / (nh + prior) for ci in range(len(cube.cells))])
    return out


def _hour(cube: Cube, b: int) -> int:
    return (cube.time_of(b) // 3_600_000) % 24


def between_bucket_var(y: Sequence[float], w: Sequence[float], b0: int, b1: int) -> float:
    """DerSimonian-Laird estimate of the variance of bucket residuals beyond sampling (tau^2, in
    the metric's units squared), from buckets [b0, b1) with weights w = n / sigma^2."""
    ys = [(y[b], w[b]) for b in range(b0, b1) if w[b] > 0]
    if len(ys) < 6:
        return 0.0
    s1 = sum(x for _, x in ys)
    s2 = sum(x * x for _, x in ys)
    m = sum(v * x for v, x in ys) / s1
    q = sum(x * (v - m) ** 2 for v, x in ys)
    den = s1 - s2 / s1
    return max(0.0, (q - (len(ys) - 1)) / den) if den > 0 else 0.0


def scope_weights(y: Sequence[float], w: Sequence[float], ref: Reference) -> list[float]:
    """Weights 1 / (sigma^2/n + tau^2) for a scope's bucket residuals: hour-to-hour wobble adds
    a variance tau^2 to every bucket mean rather than multiplying the sampling variance, so a
    small slice (few events an hour) is not penalised for the whole feature's overdispersion.
    tau^2 is the larger of the whole feature's and the scope's own baseline estimate."""
    t2 = max(ref.tau2, between_bucket_var(y, w, ref.b0, ref.b1))
    if t2 <= 0:
        return list(w)
    return [x / (1 + x * t2) if x > 0 else 0.0 for x in w]


def _dispersion(y: list[float], w: list[float], b0: int, b1: int) -> float:
    """Pearson chi-square / df of bucket residuals around their weighted mean; >= 1."""
    ys = [(y[b], w[b]) for b in range(b0, b1) if w[b] > 0]
    if len(ys) < 6:
        return 1.0
    sw = sum(x[1] for x in ys)
    m = sum(v * x for v, x in ys) / sw
    chi2 = sum(x * (v - m) ** 2 for v, x in ys)
    return max(1.0, chi2 / (len(ys) - 1))


def rate_residuals(cube: Cube, ref: Reference, cells: Sequence[int] | None = None,
                   mu: Sequence[float] | None = None, *, expected: list | None = None) -> tuple[list[float], list[float]]:
    """Per bucket: observed mean minus the baseline prediction for the bucket's own cell counts,
    and the weight n/sigma^2 (phi not applied). `expected`, when a list is given, receives the
    predicted mean per bucket (for the binomial test of 0/1 metrics)."""
    mu = ref.mu if mu is None else mu
    idx = range(len(cube.cells)) if cells is None else cells
    nb = cube.n_buckets
    n, obs, exp = _bucket_sums(cube, idx, mu)
    y = [(obs[b] - exp[b]) / n[b] if n[b] else 0.0 for b in range(nb)]
    w = [n[b] / ref.sigma2 for b in range(nb)]
    if expected is not None:
        expected[:] = [exp[b] / n[b] if n[b] else 0.0 for b in range(nb)]
    return y, w


def _bucket_sums(cube: Cube, idx: Sequence[int], mu: Sequence[float],
                 with_obs: bool = True) -> tuple[list[float], list[float], list[float]]:
    """Per bucket, over the cells idx: events, observed sum, and events * baseline cell mean
    (columns summed in C: a full scan does this for every slice of every pair)."""
    nb = cube.n_buckets
    idx = list(idx)
    if not idx or not nb:
        return [0.0] * nb, [0.0] * nb, [0.0] * nb
    ns = [cube.n[ci] for ci in idx]
    mus = [mu[ci] for ci in idx]
    n = list(map(sum, zip(*ns, strict=True)))
    obs = list(map(sum, zip(*[cube.s[ci] for ci in idx], strict=True))) if with_obs else [0.0] * nb
    exp = [sum(map(operator.mul, col, mus)) for col in zip(*ns, strict=True)]
    return n, obs, exp


def mix_residuals(cube: Cube, ref: Reference) -> tuple[list[float], list[float]]:
    """Per bucket: the mean the bucket's cell mix predicts minus the mean the baseline mix for
    that hour of day predicts (both with baseline cell means), and its multinomial weight."""
    nb = cube.n_buckets
    n, _, exp = _bucket_sums(cube, range(len(cube.cells)), ref.mu, with_obs=False)
    overall = sum(w * m for w, m in zip(ref.mix, ref.mu, strict=True))
    hour_ref = None
    if ref.hour_mix is not None:
        hour_ref = [sum(w * m for w, m in zip(ref.hour_mix[h], ref.mu, strict=True)) for h in range(24)]
    y, w = [0.0] * nb, [0.0] * nb
    v = ref.mix_var
    for b in range(nb):
        if not n[b]:
            continue
        expected = hour_ref[_hour(cube, b)] if hour_ref is not None else overall
        y[b] = exp[b] / n[b] - expected
        w[b] = n[b] / v if v > 0 else 0.0
    return y, w


# --- change-point scan ---------------------------------------------------------------------------

def scan_step(y: Sequence[float], w: Sequence[float], *, pre_start: int, lo: int, hi: int, end: int,
              sign: int, phi: float = 1.0, min_post_w: float = 0.0,
              binary: tuple | None = None) -> tuple[int | None, float, float, list]:
    """Best single mean step in y (weights w) with the post segment starting in [lo, hi):
    pre = [pre_start, tau), post = [tau, end). Returns (tau, z_bad, delta, profile) where z_bad > 0
    means post is worse (sign = +1: higher is better).

    `binary` = (expected mean per bucket, sigma2, raw weights n/sigma2) for 0/1 metrics: the post
    segment's count is then tested against its expected proportion with the binomial
    likelihood-ratio root (a few rare failures in a short window are not a 7-sigma event), scaled
    to the variance of the difference under the weights `w` (overdispersion, the pre segment)."""
    W = [0.0] * (end + 1)
    WY = [0.0] * (end + 1)
    for b in range(pre_start, end):
        W[b + 1] = W[b] + w[b]
        WY[b + 1] = WY[b] + w[b] * y[b]
    if binary is not None:
        e, s2, wr = binary
        R = [0.0] * (end + 1)
        RY = [0.0] * (end + 1)
        RE = [0.0] * (end + 1)
        for b in range(pre_start, end):
            R[b + 1] = R[b] + wr[b]
            RY[b + 1] = RY[b] + wr[b] * y[b]
            RE[b + 1] = RE[b] + wr[b] * e[b]
    best: tuple[int | None, float, float] = (None, -math.inf, 0.0)
    profile = []
    tw, twy = W[end] - W[pre_start], WY[end] - WY[pre_start]
    for tau in range(max(lo, pre_start + 1), min(hi, end)):
        wa, wya = W[tau] - W[pre_start], WY[tau] - WY[pre_start]
        wb, wyb = tw - wa, twy - wya
        if wa <= 0 or wb <= 0 or wb < min_post_w:
            continue
        delta = wyb / wb - wya / wa
        if binary is not None:
            ra, rya = R[tau] - R[pre_start], RY[tau] - RY[pre_start]
            rb, ryb, reb = R[end] - R[tau], RY[end] - RY[tau], RE[end] - RE[tau]
            if ra <= 0 or rb <= 0:
                continue
            q = reb / rb + rya / ra  # expected post proportion, shifted by the pre segment's level
            r = binomial_signed_root((ryb + reb) * s2, rb * s2, q)
            z = -sign * r * math.sqrt((1 / rb) / (phi * (1 / wa + 1 / wb)))
        else:
            z = -sign * delta / math.sqrt(phi * (1 / wa + 1 / wb))
        profile.append((tau, z))
        if z > best[1]:
            best = (tau, z, delta)
    return best[0], best[1], best[2], profile


def onset_support(profile: list[tuple[int, float]], z_best: float, *, width: float = 2.0) -> tuple[int, int]:
    """Candidates whose profile log-likelihood (z^2/2) is within `width` of the best: an
    approximate 95 % interval for the onset (statistics.md section 2.2)."""
    top = z_best * z_best / 2
    inside = [t for t, z in profile if z > 0 and top - z * z / 2 <= width]
    return (min(inside), max(inside)) if inside else (0, 0)


# --- detection -----------------------------------------------------------------------------------

def detect_regression(cube: Cube, *, window_start: int, at: int, higher_is_better: bool = True,
                      params: DetectParams | None = None, anchors: Sequence[Anchor] = (),
                      companions: Sequence[Companion] = ()) -> Detection:
    """Is [window_start, at) worse than what came before, and since when? (coarse buckets)

    `anchors`: known change times (and the slice each can reach) in the window. Besides the free
    scan over every onset, a step exactly at each anchor is tested in its footprint: a few tests
    fixed before looking at the data, so alpha is split between the two families (half each).
    `companions`: the feature's other metrics; the step at an anchor is also tested on every one
    its change can reach, and the evidence combined (see _combine_companions)."""
    p = params or DetectParams()
    sign = 1 if higher_is_better else -1
    iw0 = cube.boundary(window_start)
    nb = cube.n_buckets
    det = Detection(False, "no_regression", "", higher_is_better, alpha=p.alpha)
    window = cube.moments(iw0, nb)
    history = cube.moments(0, iw0)
    det.current = window
    det.baseline = history
    det.current_window = (cube.time_of(iw0), at)
    det.baseline_window = (cube.time_of(0), cube.time_of(iw0))
    sd_all = math.sqrt(max((window.var or 0.0), (history.var or 0.0), 1e-12))

    if window.n < p.min_events or (history.n + window.n) < 2 * p.min_events:
        det.verdict = "insufficient_data"
        det.needed_n = max(p.min_events, sample_size_for_diff(sd_all, 0.25 * sd_all, alpha=p.alpha)
                           if sd_all > 1e-9 else p.min_events)
        det.reason = (f"too little data for a verdict: {int(window.n)} events in the window"
                      f" and {int(history.n)} before it; about {det.needed_n} events in the window"
                      f" are needed to see a drop of a quarter of a standard deviation")
        return det

    # Baseline: the history before the window when it has enough events; else the whole range
    # (a first pass), refined to the part before the onset once one is found.
    if history.n >= p.min_events:
        ref_end = iw0
    else:
        ref_end = nb
    ref = fit_reference(cube, 0, ref_end, prior_strength=p.prior_strength, mix_prior=p.mix_prior)
    best, scans = _scan_all(cube, ref, iw0, sign, p, anchors, companions)
    if best.tau is not None and ref_end == nb:
        # Refit on the part before the first pass's onset, then scan again.
        if cube.moments(0, best.tau).n >= p.min_events:
            ref = fit_reference(cube, 0, best.tau, prior_strength=p.prior_strength, mix_prior=p.mix_prior)
            best, scans = _scan_all(cube, ref, iw0, sign, p, anchors, companions)
    det.reference = ref
    det.scans = scans
    n_tests = max(1, len(det.scans))
    p_adj = _adjusted_p(best) if best.tau is not None else 1.0
    det.p_value = p_adj
    det.z = best.z if best.tau is not None else 0.0
    det.signal = "rate" if best.kind == "anchor" else best.kind
    det.anchor = best.anchor
    det.scope = best.scope
    det.support = list(best.support)

    if best.tau is None:
        det.reason = "no candidate onset with enough events after it"
        return _not_detected(det, cube, iw0, nb, ref, p)

    tau = best.tau
    # Canary ramps and staged rollouts: follow earlier steps in the same direction back.
    tau = _first_step(cube, ref, best, iw0, sign, p, n_tests)
    det.onset_bucket = tau
    det.onset = cube.time_of(tau)
    lo, hi = onset_support(best.profile, best.z)
    det.onset_range = (cube.time_of(min(lo, tau)), cube.time_of(max(hi, tau) + 1))

    base = cube.moments(0, tau)
    cur = cube.moments(tau, nb)
    det.baseline, det.current = base, cur
    det.baseline_window = (cube.time_of(0), cube.time_of(tau))
    det.current_window = (cube.time_of(tau), at)
    det.test = welch(base, cur, var_floor=ref.sigma2, inflation=ref.phi)
    sd = math.sqrt(ref.sigma2 * ref.phi)
    min_effect = p.min_effect_sd * math.sqrt(ref.sigma2)

    # Went away? A later step back up that leaves the latest part no worse than the baseline.
    rec = _recovery(cube, ref, best, tau, sign, p)
    if p_adj < p.alpha and rec is not None:
        det.recovered_at = cube.time_of(rec)
        det.verdict = "recovered"
        det.reason = (f"a drop started at {format_time(cube.time_of(tau))} but the metric is back to its "
                      f"baseline since {format_time(cube.time_of(rec))}")
        return det

    effect = abs(best.delta)
    if p_adj < p.alpha and effect >= min_effect:
        det.detected = True
        det.verdict = "regression"
        det.reason = "worse than baseline beyond noise"
        return det
    det.mde = _mde(sd, cur.n, base.n, p)
    if p_adj < p.alpha:
        det.reason = f"a statistically clear change smaller than the minimum effect ({min_effect:.3g})"
    elif p_adj < p.suspect_alpha and effect >= min_effect and best.z > 0 and rec is None:
        return _suspected(det, best, cube, tau, p)
    return _not_detected(det, cube, iw0, nb, ref, p)


def _suspected(det: Detection, best: Scan, cube: Cube, tau: int, p: DetectParams) -> Detection:
    """Not beyond noise, but not nothing: family-wise p between alpha and suspect_alpha. Nothing is
    claimed (detected stays false); the onset is kept so the slices and candidate causes can be
    shown as unconfirmed, with about how many more events after the onset would settle it (the
    z of a step grows with the square root of the events after it)."""
    det.detected = False
    det.verdict = "suspected"
    need_z = z_quantile(1 - p.alpha / max(1.0, best.mult))
    cells = cube.cells_where(best.scope) if best.scope and best.kind != "mix" else range(len(cube.cells))
    n_post = sum(sum(cube.n[c][best.tau:]) for c in cells)
    if best.z > 0 and n_post > 0:
        det.needed_more = max(1, int(math.ceil(n_post * ((need_z / best.z) ** 2 - 1))))
    more = f"; about {det.needed_more:,} more events after it would settle it" if det.needed_more else ""
    det.reason = (f"a drop since {format_time(cube.time_of(tau))} that is not beyond noise yet: "
                  f"p={det.p_value:.2g} after correction for every onset, slice and change time tested "
                  f"(a regression needs p < {p.alpha:g}){more}")
    return det


def _not_detected(det: Detection, cube: Cube, iw0: int, nb: int, ref: Reference | None,
                  p: DetectParams) -> Detection:
    det.detected = False
    det.verdict = "no_regression"
    det.onset = det.onset_bucket = det.onset_range = None
    base = cube.moments(0, iw0)
    if base.n < p.min_events:  # no history before the window: compare its halves
        mid = (iw0 + nb) // 2
        base = cube.moments(0, mid)
        det.current = cube.moments(mid, nb)
        det.baseline_window = (cube.time_of(0), cube.time_of(mid))
        det.current_window = (cube.time_of(mid), det.current_window[1] if det.current_window else cube.time_of(nb))
    else:
        det.current = cube.moments(iw0, nb)
        det.baseline_window = (cube.time_of(0), cube.time_of(iw0))
    det.baseline = base
    if ref is not None:
        det.test = welch(base, det.current, var_floor=ref.sigma2, inflation=ref.phi)
        sd = math.sqrt(ref.sigma2 * ref.phi)
        det.mde = _mde(sd, det.current.n, base.n, p)
    if not det.reason:
        det.reason = "no change beyond noise in the window"
    return det


def _mde(sd: float, n_cur: float, n_base: float, p: DetectParams) -> float | None:
    if n_cur <= 0 or n_base <= 0:
        return None
    return (z_quantile(1 - p.alpha) + z_quantile(0.8)) * sd * math.sqrt(1 / n_cur + 1 / n_base)


@dataclass(frozen=True)
class Anchor:
    """A known change time to test a step at, inside the slice the change can reach ({}: the
    whole feature). `label` says which change it is (for the reason text)."""

    at: int
    scope: tuple[tuple[str, str], ...] = ()
    label: str = ""


def _scan_all(cube: Cube, ref: Reference | None, iw0: int, sign: int,
              p: DetectParams, anchors: Sequence[Anchor] = (),
              companions: Sequence[Companion] = ()) -> tuple[Scan, list[Scan]]:
    """Rate scans on the whole feature and each single slice value, plus the mix scan, plus a
    step test at each anchor (known change time) in its footprint.
    Returns the best (by corrected one-sided p-value) and all of them.

    Multiple comparisons (Bonferroni, family-wise alpha for the run): alpha is split over the
    `family` pairs of the run, then half to the free scans and half to the anchor tests (when
    there are any), and within the free scans half to the whole-feature rate scan and half
    shared by the slice and mix scans, each over its candidate onsets."""
    scans: list[Scan] = []
    nb = cube.n_buckets
    none = Scan({}, "rate", None, 0.0, 1.0, 0.0, 0)
    if ref is None:
        return none, scans
    scopes: list[tuple[dict, list[int] | None]] = [({}, None)]
    if p.scan_slices:
        values = cube.slice_values()
        slice_scopes = []
        for key, vals in values.items():
            if len(vals) < 2:
                continue
            for v in vals:
                slice_scopes.append(({key: v}, cube.cells_where({key: v})))
        scopes += slice_scopes[: p.max_slice_scopes]
    scope_series = scope_series_fn(cube, ref, {})
    min_post_w = p.min_post_events / ref.sigma2
    for scope, cells in scopes:
        y, w, bin_args = scope_series(scope, cells)
        tau, z, delta, prof = scan_step(y, w, pre_start=0, lo=iw0, hi=nb, end=nb, sign=sign,
                                        min_post_w=min_post_w, binary=bin_args)
        scans.append(Scan(scope, "rate", tau, z, normal_sf(z) if tau is not None else 1.0, delta,
                          len(prof), prof))
    if ref.mix_var > 0 and len(cube.cells) > 1:
        y, w = mix_residuals(cube, ref)
        tau, z, delta, prof = scan_step(y, w, pre_start=0, lo=iw0, hi=nb, end=nb, sign=sign,
                                        phi=ref.phi_mix, min_post_w=p.min_post_events / ref.mix_var)
        scans.append(Scan({}, "mix", tau, z, normal_sf(z) if tau is not None else 1.0, delta, len(prof), prof))
    anchored: list[Scan] = []
    t_lo = cube.time_of(iw0)
    seen: set = set()
    for a in anchors:
        if not t_lo <= a.at < cube.time_of(nb):
            continue
        tau = cube.boundary(a.at)
        part = cube.bucket_of(a.at)
        if (tau, part, a.scope) in seen:  # changes landing in the same bucket: one test
            continue
        seen.add((tau, part, a.scope))
        step = _anchor_step(cube, a, sign, min_post_w, scope_series)
        if step is None:
            continue
        t2, z, delta, prof, own = step
        scan = Scan(dict(a.scope), "anchor", t2, z, normal_sf(z), delta, 1, prof, anchor=a)
        _combine_companions(scan, own, a, iw0, sign, companions, p)
        anchored.append(scan)
    fam = max(1, p.family) * (2 if anchored else 1)
    n_free = len(scans)
    for s in scans:
        k = max(1, s.n_candidates)
        s.mult = fam * k * 2 * (1 if (s.kind == "rate" and not s.scope) else max(1, n_free - 1))
    for s in anchored:
        s.mult = fam * len(anchored) * s.tests
    scans += anchored
    valid = [s for s in scans if s.tau is not None]
    if not valid:
        return none, scans
    # Smallest corrected p-value; ties (p underflows to 0) go to the larger z, then the whole feature.
    return min(valid, key=lambda s: (_adjusted_p(s), -s.z, len(s.scope), s.kind == "anchor")), scans


@dataclass
class Companion:
    """Another metric the same changes can reach (the feature's user signals and checks; other
    features' metrics for a shared index or judge), tested at the same known change times. A
    change that makes the product worse shows in every metric it reaches (the judge's score and
    the users' thumbs both follow the answers' quality), so a step seen in two of them at a
    change's time is stronger evidence than either alone. `labels`: the anchors (change ids)
    whose change can move this metric (a judge change cannot move user signals). The cube is
    loaded (`load`) and its reference fitted only when an anchor first needs them: on most days
    no anchor passes the own-metric gate and no companion is read at all."""

    feature: str
    metric: str
    higher_is_better: bool
    labels: frozenset
    cube: Cube | None = None
    load: object = None  # () -> Cube, when cube is None
    # The loaded cube, fitted reference and residual series: shared by copies of this companion
    # made with other labels (dataclasses.replace), so each pair of a run reads and fits it once.
    state: dict = field(default_factory=dict)

    def reference(self, iw0: int, p: DetectParams) -> Reference | None:
        st = self.state
        if "ref" not in st:
            cube = self.cube if self.cube is not None else (self.load() if self.load is not None else None)
            st["cube"] = cube
            st["series"] = {}
            st["ref"] = None
            if cube is not None and cube.moments(0, iw0).n >= p.min_events:
                st["ref"] = fit_reference(cube, 0, iw0, prior_strength=p.prior_strength, mix_prior=p.mix_prior)
        return st["ref"]

    @property
    def loaded(self) -> Cube:
        return self.state["cube"]


# The own metric must itself move at the change (one-sided 5 %) for the combined evidence to count:
# a change that broke a schema check does not, by itself, make a flat judge score a regression.
OWN_GATE_Z = 1.645


def _anchor_step(cube: Cube, a: Anchor, sign: int, min_post_w: float, scope_series):
    """The step test at one anchor in its footprint: (tau, z, delta, profile, (y, w)) or None.
    (y, w): the residual series and weights the test used (for correlations between metrics)."""
    nb = cube.n_buckets
    tau = cube.boundary(a.at)
    part = cube.bucket_of(a.at)
    scope = dict(a.scope)
    cells = cube.cells_where(scope) if scope else None
    if cells == []:
        return None
    y, w, bin_args = scope_series(scope, cells)
    if part != tau:  # the bucket the change landed in is part old, part new: left out
        w = list(w)
        w[part] = 0.0
        if bin_args is not None:
            wr = list(bin_args[2])
            wr[part] = 0.0
            bin_args = (bin_args[0], bin_args[1], wr)
    t2, z, delta, prof = scan_step(y, w, pre_start=0, lo=tau, hi=tau + 1, end=nb, sign=sign,
                                   min_post_w=min_post_w, binary=bin_args)
    if t2 is None:
        return None
    if part != tau and bin_args is None:
        # The part of the change's own bucket after it counts too: a regression on the
        # exposure (0 before, the fraction of the bucket after the change, 1 after).
        w_full = scope_series(scope, cells)[1]
        x = [0.0] * part + [(cube.time_of(tau) - a.at) / cube.bucket_ms] + [1.0] * (nb - tau)
        z, delta = _exposure_z(y, w_full, x, sign)
        prof = [(tau, z)]
    return t2, z, delta, prof, (y, w)


def scope_series_fn(cube: Cube, ref: Reference, cache: dict):
    """scope, cells -> (residuals, weights, binary-test arguments or None) of a scope, memoised in
    `cache` (a full scan asks for the same slice from several scans and anchors)."""
    binary = cube.is_binary()

    def scope_series(scope: dict, cells: list[int] | None):
        key = tuple(sorted(scope.items()))
        if key not in cache:
            e: list | None = [] if binary else None
            y, wr = rate_residuals(cube, ref, cells, expected=e)
            cache[key] = (y, scope_weights(y, wr, ref), (e, ref.sigma2, wr) if binary else None)
        return cache[key]
    return scope_series


def _combine_companions(scan: Scan, own: tuple, a: Anchor, iw0: int, sign: int,
                        companions: Sequence[Companion], p: DetectParams) -> None:
    """Combine the anchor's own step with the same step on the companion metrics its change can
    reach: Fisher's method on one-sided p-values, after whitening the z scores with the metrics'
    correlation over the baseline hours (judge scores and thumbs of the same hours need not be
    independent; a negative correlation is taken as 0, which is conservative). The anchor's
    p-value becomes the smaller of its own and the combined one, with a factor 2 for having looked
    at both; the combined one counts only when the own metric moved too (z >= OWN_GATE_Z)."""
    comps = [c for c in companions if a.label in c.labels]
    if not comps or scan.z < OWN_GATE_Z:
        return
    zs = [scan.z]
    bad = [_bad_residuals(*own, sign, iw0)]
    names = []
    for c in comps:
        ref = c.reference(iw0, p)
        if ref is None:
            continue
        sign_c = 1 if c.higher_is_better else -1
        step = _anchor_step(c.loaded, a, sign_c, p.min_post_events / ref.sigma2,
                            scope_series_fn(c.loaded, ref, c.state["series"]))
        if step is None:
            continue
        zs.append(step[1])
        bad.append(_bad_residuals(*step[4], sign_c, iw0))
        names.append((c.feature, c.metric, step[1]))
    if not names:
        return
    k = len(zs)
    corr = [[1.0 if i == j else max(0.0, min(0.9, _corr(bad[i], bad[j]))) for j in range(k)] for i in range(k)]
    white = whiten(zs, corr)
    x = -2.0 * sum(math.log(max(normal_sf(v), 1e-300)) for v in white)
    p_comb = chi2_sf_even(x, 2 * k)
    scan.p_own = scan.p_one
    scan.tests = 2
    scan.support = names
    scan.p_one = min(scan.p_one, p_comb)


def _bad_residuals(y: Sequence[float], w: Sequence[float], sign: int, iw0: int) -> list[float | None]:
    """Baseline bucket residuals standardised by their weights, in the bad direction (None: empty)."""
    return [-sign * y[b] * math.sqrt(w[b]) if w[b] > 0 else None for b in range(min(iw0, len(y)))]


def _corr(a: Sequence[float | None], b: Sequence[float | None]) -> float:
    """Pearson correlation over the buckets both have (0 with fewer than 12)."""
    pairs = [(x, y) for x, y in zip(a, b, strict=False) if x is not None and y is not None]
    if len(pairs) < 12:
        return 0.0
    n = len(pairs)
    ma = sum(x for x, _ in pairs) / n
    mb = sum(y for _, y in pairs) / n
    sab = sum((x - ma) * (y - mb) for x, y in pairs)
    saa = sum((x - ma) ** 2 for x, _ in pairs)
    sbb = sum((y - mb) ** 2 for _, y in pairs)
    return sab / math.sqrt(saa * sbb) if saa > 0 and sbb > 0 else 0.0


def _exposure_z(y: Sequence[float], w: Sequence[float], x: Sequence[float], sign: int) -> tuple[float, float]:
    """Weighted regression of y on the exposure x (with an intercept): (z of the slope in the bad
    direction, slope). With x only 0 and 1 it is the step test of scan_step."""
    sw = sum(w)
    if sw <= 0:
        return 0.0, 0.0
    xb = sum(wi * xi for wi, xi in zip(w, x, strict=True)) / sw
    yb = sum(wi * yi for wi, yi in zip(w, y, strict=True)) / sw
    sxx = sum(wi * (xi - xb) ** 2 for wi, xi in zip(w, x, strict=True))
    if sxx <= 0:
        return 0.0, 0.0
    slope = sum(wi * (xi - xb) * (yi - yb) for wi, xi, yi in zip(w, x, y, strict=True)) / sxx
    return -sign * slope * math.sqrt(sxx), slope


def _adjusted_p(scan: Scan) -> float:
    """Family-wise p-value of one test within the run (Bonferroni; the multiplier is set by
    _scan_all): close to exact in the tail, where the shortest post windows dominate."""
    return min(1.0, scan.p_one * max(1.0, scan.mult))


def _scope_series(cube: Cube, ref: Reference, scan: Scan) -> tuple[list[float], list[float], float, float, tuple | None]:
    if scan.kind == "mix":
        y, w = mix_residuals(cube, ref)
        return y, w, ref.phi_mix, ref.mix_var, None
    cells = cube.cells_where(scan.scope) if scan.scope else None
    y, w, bin_args = scope_series_fn(cube, ref, {})(scan.scope, cells)
    return y, w, 1.0, ref.sigma2, bin_args


def _first_step(cube: Cube, ref: Reference, best: Scan, iw0: int, sign: int, p: DetectParams,
                n_tests: int) -> int:
    """Walk back from the best onset while an earlier step in the same direction is clear."""
    if best.kind == "anchor":
        return best.tau  # a step at a known change time: not walked back
    y, w, phi, var, binary = _scope_series(cube, ref, best)
    tau = best.tau
    per_onset = best.mult / max(1, best.n_candidates)
    for _ in range(4):
        if tau is None or tau - iw0 < 1:
            break
        # Step inside [0, tau): is [t, tau) already worse than [0, t)?
        t2, z2, _d, prof = scan_step(y, w, pre_start=0, lo=iw0, hi=tau, end=tau, sign=sign, phi=phi,
                                     min_post_w=p.min_post_events / var, binary=binary)
        if t2 is None:
            break
        p2 = min(1.0, normal_sf(z2) * len(prof) * per_onset)
        if p2 >= p.alpha:
            break
        tau = t2
    return tau


def _recovery(cube: Cube, ref: Reference, best: Scan, tau: int, sign: int, p: DetectParams) -> int | None:
    """A clear step back up after the onset, after which the metric is not worse than baseline."""
    y, w, phi, var, binary = _scope_series(cube, ref, best)
    nb = cube.n_buckets
    # "Back to baseline" needs a few hours of it: one quiet hour (a slice's traffic at its daily
    # low, a lucky sample) is not a recovery.
    hi = nb - max(1, -(-p.min_recovered_ms // cube.bucket_ms))
    t3, z3, _d, prof = scan_step(y, w, pre_start=tau, lo=tau + 1, hi=hi, end=nb, sign=-sign, phi=phi,
                                 min_post_w=p.min_post_events / var, binary=binary)
    if t3 is None or min(1.0, normal_sf(z3) * max(1, len(prof))) >= p.alpha:
        return None
    # After t3, is the residual mean still clearly bad?
    wb = sum(w[t3:nb])
    if wb <= 0:
        return None
    mb = sum(w[b] * y[b] for b in range(t3, nb)) / wb
    z_after = -sign * mb / math.sqrt(phi / wb)
    if z_after >= 2.0:
        return None
    if best.kind == "mix" and _mix_persists(cube, ref, tau, t3):
        return None
    return t3


def _mix_persists(cube: Cube, ref: Reference, tau: int, t3: int) -> bool:
    """A traffic shift whose metric effect faded (the slice that grew is at its daily low, so it
    moves the mean less) is not over while that slice still has far more than its usual share
    for the hour: the slice value that grew most in [tau, t3) must be back below halfway."""
    if ref.hour_mix is None:
        return False
    nb = cube.n_buckets
    best_ratio, after = 1.0, 1.0
    for key, vals in cube.slice_values().items():
        if len(vals) < 2:
            continue
        for v in vals:
            cells = cube.cells_where({key: v})
            ratios = []
            for lo, hi in ((tau, t3), (t3, nb)):
                obs = exp = 0.0
                for b in range(lo, hi):
                    hm = ref.hour_mix[_hour(cube, b)]
                    n_b = sum(cube.n[c][b] for c in range(len(cube.cells)))
                    obs += sum(cube.n[c][b] for c in cells)
                    exp += n_b * sum(hm[c] for c in cells)
                ratios.append(obs / exp if exp > 0 else 1.0)
            if ratios[0] > best_ratio:
                best_ratio, after = ratios
    return best_ratio > 1.5 and after - 1 > 0.5 * (best_ratio - 1)


# --- onset refinement on fine buckets -------------------------------------------------------------

def refine_onset(fine: Cube, mu: dict[Cell, float], sigma2: float, phi: float, *, sign: int,
                 scope: dict | None = None, level: float, lo_ms: int, hi_ms: int,
                 grand: float | None = None) -> tuple[int, tuple[int, int]] | None:
    """Onset on fine buckets (5-15 min) inside [lo_ms, hi_ms): the step from the baseline level
    (residual 0) to the known post level `level` (residual, metric units) that fits best.
    Residuals use the baseline cell means `mu` (cells not in it: `grand`)."""
    if fine.n_buckets == 0 or level == 0:
        return None
    cells = fine.cells_where(scope) if scope else list(range(len(fine.cells)))
    fallback = grand if grand is not None else (sum(mu.values()) / len(mu) if mu else 0.0)
    m = [mu.get(c, fallback) for c in fine.cells]
    ref = Reference(0, 0, m, fallback, sigma2, phi)
    y, w = rate_residuals(fine, ref, cells, mu=m)
    b_lo = max(0, fine.bucket_of(lo_ms))
    b_hi = min(fine.n_buckets, fine.boundary(hi_ms))
    if b_hi - b_lo < 2:
        return None
    # gain(tau) = sum_{t >= tau} w_t * level * (2 y_t - level) / (2 phi): log-likelihood of "post"
    # over "pre" for the buckets after tau. Maximise over tau.
    gains = []
    acc = 0.0
    for b in range(b_hi - 1, b_lo - 1, -1):
        if w[b] > 0:
            acc += w[b] * level * (2 * y[b] - level) / (2 * phi)
        gains.append((b, acc))
    gains.reverse()
    best_b, best_g = max(gains, key=lambda x: (x[1], -x[0]))
    inside = [b for b, g in gains if best_g - g <= 2.0]
    return fine.time_of(best_b), (fine.time_of(min(inside)), fine.time_of(max(inside) + 1))


def hour_adjusted_mix_z(cube: Cube, ref: Reference, pre: tuple[int, int], post: tuple[int, int]) -> float | None:
    """z of the mix effect between two windows against the baseline mix *for the same hours of
    day* (positive: the mix predicts a higher mean after). A window of night hours has a night
    mix; only a mix unusual for its hours is an input shift."""
    if ref.mix_var <= 0:
        return None
    means = _window_means(*mix_residuals(cube, ref), pre, post)
    if means is None:
        return None
    wa, wb, ma, mb = means
    return (mb - ma) / math.sqrt(ref.phi_mix * (1 / wa + 1 / wb))


def _window_means(y: Sequence[float], w: Sequence[float], pre: tuple[int, int],
                  post: tuple[int, int]) -> tuple[float, float, float, float] | None:
    """(weight before, weight after, weighted mean before, weighted mean after) of y over two
    bucket windows; None when either window has no weight."""
    wa = sum(w[b] for b in range(*pre))
    wb = sum(w[b] for b in range(*post))
    if wa <= 0 or wb <= 0:
        return None
    ma = sum(w[b] * y[b] for b in range(*pre)) / wa
    mb = sum(w[b] * y[b] for b in range(*post)) / wb
    return wa, wb, ma, mb


def compare_windows(cube: Cube, *, pre: tuple[int, int], post: tuple[int, int], sign: int,
                    prior_strength: float = 20.0, scope: dict | None = None) -> tuple[float, float, int] | None:
    """Mix-adjusted change of a metric between two bucket windows: (z in the bad direction,
    delta of residual means, events after). Used for the other metrics of a feature (do user
    signals move with the judge?)."""
    ref = fit_reference(cube, *pre, prior_strength=prior_strength)
    if ref is None:
        return None
    cells = cube.cells_where(scope) if scope else None
    if cells == []:
        return None
    means = _window_means(*rate_residuals(cube, ref, cells), pre, post)
    if means is None:
        return None
    wa, wb, ma, mb = means
    se = math.sqrt(ref.phi * (1 / wa + 1 / wb))
    return -sign * (mb - ma) / se, mb - ma, int(wb * ref.sigma2)
