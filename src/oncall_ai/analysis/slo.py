"""Quality SLOs: SLI, error budget, burn rates and multi-window multi-burn-rate (MWMB) states.

Pure functions over counts: no store, no clock (`at` is the caller's), no randomness.

Definitions (Google SRE Workbook ch. 5 "Alerting on SLOs"; research notes sre-alerting.md section 1)
- SLI over a window: good / n, the share of scored events that are good by the metric's `good` rule.
- Error budget: B = 1 - objective (0.01 for a 99% SLO). Bad ratio r(W) = (n - good) / n over W.
- Burn rate over W: r(W) / B. Burn 1 spends exactly the whole budget over the SLO period P.
- Budget left over the period: 1 - r(P) / B (negative when overspent).
- Budget spent when a burn b is sustained for a window W: f = b * W / P, so b = f * P / W.

Alert pairs (page/ticket). For P = 30 days the Workbook's pairs are used unchanged:

    page    14.4x over 1h  AND 5m     (2% of the budget spent in the long window)
    page       6x over 6h  AND 30m    (5%)
    ticket     3x over 1d  AND 2h     (10%; the chapter's ticket expression, Sloth's "ticket quick")
    ticket     1x over 3d  AND 6h     (10%)

Both windows must burn faster than the threshold: the long window makes the alert significant, the
short one (1/12 of the long) makes it stop soon after the burn stops (short blips never page).

Other periods keep the same budget-consumption fractions with the windows scaled to the period:
    long = W30 * P / 30d, snapped (on a log scale) to the nearest of 5m 10m 15m 30m 1h 2h 3h 4h 6h 8h
           12h 1d 2d 3d 4d 7d 14d 21d 28d (then whole days), short = long / 12 (whole minutes),
           burn = f * P / long.
With the snap, 28d gives Sloth's 28d factors exactly (13.44 / 5.6 / 2.8 / 0.933 over 1h / 6h / 1d / 3d).
Short periods would scale the windows below anything quality data can fill (a 24h SLO's fast page
window would be 2 minutes), so each long window has a floor: 1h, 2h, 4h, 8h (short 5m, 10m, 20m,
40m). A pair whose snapped window is below its floor is floored; it keeps the Workbook burn
(14.4 / 6 / 3 / 1): burn = f' * P / long with the fraction raised to f' = f * floor / (W30 * P / 30d),
and f' is capped at 100% (a pair never waits for more than the whole budget: then burn = P / long).
For a 24h SLO:

    page    14.4x over 1h  AND 5m     (60% of the day's budget)
    page       6x over 2h  AND 10m    (50%)
    ticket     3x over 4h  AND 20m    (50%)
    ticket     1x over 8h  AND 40m    (33%)

A period shorter than its longest long window (below 8h) is rejected by the config validation.

Sampled metrics (events with sample_rate < 1, or source judge) are "low traffic" in the Workbook's
sense: a handful of judged events per window make point estimates flap. For them (statistics.md
section 8):
- a long window counts only when it holds at least `min_events` events (default 20);
- its condition is on the one-sided 95% Wilson lower bound of the bad ratio, not the point
  estimate, so sampling noise alone does not page or ticket;
- the short window stays a point estimate: it only confirms the burn is still going on.
Unsampled metrics use the point estimate and need at least `min_events` (default 1) events.

States: page (a page pair fires), ticket (a ticket pair fires), ok, no_data (no pair could be
evaluated: no events or too few in every long window). An SLO with `severity: ticket` reports a
page-level burn as a ticket.

Time to page at the current sampling rate (`time_to_page`) is an expected-count approximation:
judged events arrive at a steady rate, the bad ratio steps from its baseline to the scenario's at
t = 0, and the long windows fill linearly. With fewer than one judged event per short window the
real time is longer and random.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from oncall_ai.analysis.stats import Z_ONE_SIDED_95, wilson_lower

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
WORKBOOK_PERIOD_MS = 30 * DAY_MS

DEFAULT_SAMPLED_MIN_EVENTS = 20
DEFAULT_MIN_EVENTS = 1
STATES = ("ok", "ticket", "page", "no_data")

# (name, severity, budget fraction, long window for a 30d period, floor of the long window)
WORKBOOK_PAIRS = (
    ("page-fast", "page", 0.02, HOUR_MS, HOUR_MS),
    ("page-slow", "page", 0.05, 6 * HOUR_MS, 2 * HOUR_MS),
    ("ticket-fast", "ticket", 0.10, DAY_MS, 4 * HOUR_MS),
    ("ticket-slow", "ticket", 0.10, 3 * DAY_MS, 8 * HOUR_MS),
)
_LADDER_MS = (5 * MINUTE_MS, 10 * MINUTE_MS, 15 * MINUTE_MS, 30 * MINUTE_MS) + tuple(
    h * HOUR_MS for h in (1, 2, 3, 4, 6, 8, 12, 24, 48, 72, 96, 168, 336, 504, 672))


@dataclass(frozen=True)
class BurnPair:
    """One multi-window alert condition: both windows' bad ratio above burn * budget."""

    name: str  # page-fast, page-slow, ticket-fast, ticket-slow
    severity: str  # page | ticket
    long_ms: int
    short_ms: int
    burn: float
    budget_fraction: float  # share of the period's budget spent in `long_ms` at exactly `burn`
    floored: bool = False  # the scaled long window was below its floor

    def threshold(self, budget: float) -> float:
        return self.burn * budget


def _snap(ms: float) -> int:
    """Nearest ladder window on a log scale; beyond the ladder, whole days."""
    if ms > _LADDER_MS[-1]:
        return max(1, round(ms / DAY_MS)) * DAY_MS
    return min(_LADDER_MS, key=lambda w: abs(math.log(w / ms)))


def burn_pairs(period_ms: int) -> tuple[BurnPair, ...]:
    """The MWMB pairs for an SLO period (see the module docstring for the math)."""
    scale = period_ms / WORKBOOK_PERIOD_MS
    pairs = []
    for name, severity, fraction, long30, floor in WORKBOOK_PAIRS:
        scaled = long30 * scale
        long_ms, floored = _snap(scaled), False
        if long_ms < floor:
            # Keep the Workbook burn: raise the fraction by the factor the window was stretched.
            long_ms, floored = floor, True
            fraction = fraction * floor / scaled
        fraction = min(fraction, 1.0)
        burn = round(fraction * period_ms / long_ms, 6)
        short_ms = max(MINUTE_MS, round(long_ms / 12 / MINUTE_MS) * MINUTE_MS)
        pairs.append(BurnPair(name, severity, long_ms, short_ms, burn, round(fraction, 6), floored))
    return tuple(pairs)


def longest_alert_window_ms(period_ms: int) -> int:
    return max(p.long_ms for p in burn_pairs(period_ms))


def period_problem(period_ms: int) -> str | None:
    """Why a period cannot carry MWMB alerts, or None when it can."""
    longest = longest_alert_window_ms(period_ms)
    if period_ms < longest:
        from oncall_ai.timeutil import format_duration

        return (f"{format_duration(period_ms)} is shorter than the longest alert window "
                f"({format_duration(longest)}) of its multi-window burn-rate alerts; "
                f"use a window of at least {format_duration(longest)} (24h, 7d, 28d or 30d are usual)")
    return None


def windows_needed(period_ms: int, *, period: bool = True) -> tuple[int, ...]:
    """Every window (ending at `at`) whose counts an evaluation needs, shortest first. Without
    `period`, only the alert windows: the state does not depend on the whole period (SLI and
    budget left do), and on a big store a 30-day window costs more than all alert windows."""
    ws = {period_ms} if period else set()
    for p in burn_pairs(period_ms):
        ws.add(p.long_ms)
        ws.add(p.short_ms)
    return tuple(sorted(ws))


@dataclass(frozen=True)
class Counts:
    n: int = 0
    good: int = 0

    @property
    def bad(self) -> int:
        return self.n - self.good

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.n + other.n, self.good + other.good)


@dataclass(frozen=True)
class WindowStat:
    window_ms: int
    n: int
    bad: int
    bad_ratio: float | None
    burn: float | None
    bad_lower: float | None = None  # one-sided 95% Wilson lower bound (sampled metrics)


@dataclass(frozen=True)
class PairStatus:
    pair: BurnPair
    threshold: float  # bad-ratio threshold = burn * budget
    long: WindowStat
    short: WindowStat
    evaluable: bool  # the long window holds enough events
    firing: bool
    reason: str


@dataclass(frozen=True)
class SamplingNote:
    """For sampled metrics: how fast a real drop would page at today's sampling rate."""

    sample_rate: float | None  # typical sample_rate of recent events (None: not recorded)
    judged_per_hour: float
    responses_per_hour: float | None
    scenario_bad_ratio: float
    scenario_burn: float
    time_to_page_ms: int | None  # None: would not page within the horizon
    horizon_ms: int
    target_ms: int  # "what sampling rate would page within this long"
    sample_rate_to_page_within_target: float | None  # None: not even judging every response


@dataclass(frozen=True)
class SLOStatus:
    name: str
    feature: str
    metric: str
    objective: float
    period_ms: int
    budget: float
    state: str
    sli: float | None
    n: int
    bad: int
    budget_left: float | None
    windows: tuple[WindowStat, ...]
    pairs: tuple[PairStatus, ...]
    sampled: bool
    min_events: int
    severity: str
    reasons: tuple[str, ...]
    sampling: SamplingNote | None = None
    spark: tuple[float | None, ...] = field(default=(), compare=False)
    spark_bucket_ms: int | None = None

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "ticket": 1, "page": 2}.get(self.state, 3)


def effective_min_events(min_events: int, sampled: bool) -> int:
    if min_events and min_events > 0:
        return min_events
    return DEFAULT_SAMPLED_MIN_EVENTS if sampled else DEFAULT_MIN_EVENTS


def window_stat(window_ms: int, c: Counts, budget: float, sampled: bool) -> WindowStat:
    if not c.n:
        return WindowStat(window_ms, 0, 0, None, None, None)
    ratio = c.bad / c.n
    lower = wilson_lower(c.bad, c.n, Z_ONE_SIDED_95) if sampled else None
    return WindowStat(window_ms, c.n, c.bad, ratio, ratio / budget, lower)


def _fmt_w(ms: int) -> str:
    from oncall_ai.timeutil import format_duration

    return format_duration(ms)


def _pair_status(pair: BurnPair, long: WindowStat, short: WindowStat, budget: float, sampled: bool,
                 min_events: int) -> PairStatus:
    thr = pair.threshold(budget)
    lw, sw = _fmt_w(pair.long_ms), _fmt_w(pair.short_ms)
    head = f"{pair.name} ({pair.burn:g}x over {lw} and {sw}, bad ratio > {thr:.4g})"
    if long.n < min_events:
        return PairStatus(pair, thr, long, short, False, False,
                          f"{head}: not evaluated, {long.n} events over {lw} < min_events {min_events}")
    assert long.bad_ratio is not None
    long_value = long.bad_lower if sampled else long.bad_ratio
    assert long_value is not None
    long_desc = f"{lw} {long.bad_ratio:.4g} ({long.burn:.3g}x, n={long.n})"
    if sampled:
        long_desc += f", 95% lower bound {long_value:.4g}"
    long_ok = long_value > thr
    if short.n == 0:
        short_ok = False
        short_desc = f"{sw} has no events"
    else:
        assert short.bad_ratio is not None
        short_ok = short.bad_ratio > thr
        short_desc = f"{sw} {short.bad_ratio:.4g} ({short.burn:.3g}x, n={short.n})"
    firing = long_ok and short_ok
    if firing:
        verdict = "FIRING"
    elif sampled and not long_ok and long.bad_ratio > thr:
        verdict = "quiet: the long window's point estimate is above the threshold but its lower bound is not (sampling noise)"
    elif long_ok and not short_ok:
        verdict = "quiet: the burn has stopped (short window below)" if short.n else "quiet: the short window is empty"
    elif short_ok and not long_ok:
        verdict = "quiet: only the short window is above (a short blip, or a burn too young for the long window)"
    else:
        verdict = "quiet"
    return PairStatus(pair, thr, long, short, True, firing, f"{head}: {long_desc}; {short_desc} -> {verdict}")


def evaluate(*, name: str, feature: str, metric: str, objective: float, period_ms: int,
             counts: Mapping[int, Counts], sampled: bool, min_events: int = 0,
             severity: str = "page") -> SLOStatus:
    """State of one SLO from its counts per window (window ms -> Counts, ending at the same `at`).
    `counts` must hold every window of `windows_needed(period_ms)`; without the period itself
    (`windows_needed(period_ms, period=False)`) the state is the same and sli / budget_left are None."""
    budget = 1.0 - objective
    me = effective_min_events(min_events, sampled)
    has_period = period_ms in counts
    stats = {w: window_stat(w, counts.get(w, Counts()), budget, sampled)
             for w in windows_needed(period_ms, period=has_period)}
    pairs = tuple(_pair_status(p, stats[p.long_ms], stats[p.short_ms], budget, sampled, me)
                  for p in burn_pairs(period_ms))
    period = stats[period_ms] if has_period else stats[max(stats)]
    sli = None if not period.n or not has_period else 1.0 - (period.bad_ratio or 0.0)
    budget_left = None if period.bad_ratio is None or not has_period else 1.0 - period.bad_ratio / budget

    firing = [p for p in pairs if p.firing]
    evaluable = [p for p in pairs if p.evaluable]
    reasons: list[str]
    if any(p.pair.severity == "page" for p in firing):
        state = "page" if severity == "page" else "ticket"
        reasons = [p.reason for p in firing]
        if state == "ticket":
            reasons.append("page-level burn reported as a ticket (severity: ticket)")
    elif firing:
        state = "ticket"
        reasons = [p.reason for p in firing]
    elif not evaluable:
        state = "no_data"
        if not period.n:
            reasons = [f"no events in the {'SLO' if has_period else 'longest alert'} window "
                       f"({_fmt_w(period.window_ms)})"]
        else:
            longest = max(pairs, key=lambda p: p.pair.long_ms)
            reasons = [f"too few events: {longest.long.n} over {_fmt_w(longest.pair.long_ms)} "
                       f"< min_events {me} in every alert window"]
    else:
        state = "ok"
        reasons = [f"no alert pair fires ({len(evaluable)} of {len(pairs)} evaluated)"]
        reasons += [p.reason for p in pairs if not p.evaluable and p.pair.severity == "page"]
    return SLOStatus(name=name, feature=feature, metric=metric, objective=objective, period_ms=period_ms,
                     budget=budget, state=state, sli=sli, n=period.n, bad=period.bad,
                     budget_left=budget_left, windows=tuple(stats[w] for w in sorted(stats)), pairs=pairs,
                     sampled=sampled, min_events=me, severity=severity, reasons=tuple(reasons))


def worst_state(states: Sequence[str]) -> str:
    """The state `slo check` exits with: page > ticket > no_data (unknown) > ok."""
    order = {"page": 3, "ticket": 2, "no_data": 1, "ok": 0}
    return max(states, key=lambda s: order.get(s, 1)) if states else "no_data"


def check_exit_code(states: Sequence[str]) -> int:
    """Nagios convention: 0 ok, 1 ticket, 2 page, 3 unknown. A page anywhere wins, then a ticket;
    an SLO without data makes an otherwise quiet check unknown."""
    return {"ok": 0, "ticket": 1, "page": 2, "no_data": 3}[worst_state(states)]


# --- sampled metrics: detection latency ---------------------------------------------------------

def _fires(pair: BurnPair, rate_per_ms: float, t_ms: float, p0: float, p1: float, budget: float,
           min_events: int) -> bool:
    thr = pair.threshold(budget)
    n_long = rate_per_ms * pair.long_ms
    if n_long < min_events:
        return False
    bad_frac = (min(t_ms, pair.long_ms) * p1 + max(0.0, pair.long_ms - t_ms) * p0) / pair.long_ms
    if wilson_lower(bad_frac * n_long, n_long, Z_ONE_SIDED_95) <= thr:
        return False
    short_frac = (min(t_ms, pair.short_ms) * p1 + max(0.0, pair.short_ms - t_ms) * p0) / pair.short_ms
    return short_frac > thr


def time_to_page(*, period_ms: int, objective: float, judged_per_hour: float, baseline_bad: float,
                 drop_bad: float, min_events: int, horizon_ms: int | None = None,
                 step_ms: int = MINUTE_MS) -> int | None:
    """Expected time from a step of the bad ratio (baseline_bad -> drop_bad) until a page pair of a
    sampled SLO fires, at `judged_per_hour` judged events; None when not within the horizon
    (default: the longest page window, after which nothing changes any more)."""
    budget = 1.0 - objective
    pages = [p for p in burn_pairs(period_ms) if p.severity == "page"]
    horizon = horizon_ms or max(p.long_ms for p in pages)
    rate = judged_per_hour / HOUR_MS
    if rate <= 0:
        return None
    t = step_ms
    while t <= horizon:
        if any(_fires(p, rate, t, baseline_bad, drop_bad, budget, min_events) for p in pages):
            return t
        t += step_ms
    return None


def sample_rate_to_page_within(*, target_ms: int, responses_per_hour: float, **kw) -> float | None:
    """The smallest sampling rate (3 significant digits, rounded up) at which `time_to_page` is at
    most `target_ms`; None when even judging every response is not enough."""
    def ok(rate: float) -> bool:
        t = time_to_page(judged_per_hour=responses_per_hour * rate, horizon_ms=target_ms, **kw)
        return t is not None and t <= target_ms

    if responses_per_hour <= 0 or not ok(1.0):
        return None
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    digits = 3 - int(math.floor(math.log10(hi))) - 1
    return min(1.0, math.ceil(hi * 10 ** digits) / 10 ** digits)


def default_scenario_bad_ratio(period_ms: int, objective: float) -> float:
    """The drop `slo status` explains for sampled metrics: the bad ratio at twice the fastest page
    burn (a clear fast burn, e.g. 28.8% bad for a 30d 99% SLO), capped at 100% bad."""
    fast = min((p for p in burn_pairs(period_ms) if p.severity == "page"), key=lambda p: p.long_ms)
    return min(1.0, 2 * fast.threshold(1.0 - objective))


def sampling_note(*, period_ms: int, objective: float, judged_per_hour: float, sample_rate: float | None,
                  baseline_bad: float, min_events: int, scenario_bad: float | None = None,
                  target_ms: int = HOUR_MS) -> SamplingNote:
    drop = default_scenario_bad_ratio(period_ms, objective) if scenario_bad is None else scenario_bad
    kw = dict(period_ms=period_ms, objective=objective, baseline_bad=min(baseline_bad, drop),
              drop_bad=drop, min_events=min_events)
    pages = [p for p in burn_pairs(period_ms) if p.severity == "page"]
    horizon = max(p.long_ms for p in pages)
    ttp = time_to_page(judged_per_hour=judged_per_hour, horizon_ms=horizon, **kw)
    responses = judged_per_hour / sample_rate if sample_rate else None
    needed = (sample_rate_to_page_within(target_ms=target_ms, responses_per_hour=responses, **kw)
              if responses else None)
    return SamplingNote(sample_rate=sample_rate, judged_per_hour=judged_per_hour, responses_per_hour=responses,
                        scenario_bad_ratio=drop, scenario_burn=drop / (1.0 - objective), time_to_page_ms=ttp,
                        horizon_ms=horizon, target_ms=target_ms, sample_rate_to_page_within_target=needed)
