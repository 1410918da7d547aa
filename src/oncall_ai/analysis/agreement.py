"""Judge-human agreement and judge drift over calibration runs (research/statistics.md section 6).

Pure functions over plain data: a run is the judge's scores for calibration items (None where it
refused or failed), humans are the item labels. Nothing here reads files, the store or the clock.

Per run against the human labels: mean bias (judge - human) with a t interval, exact and within-one
agreement, quadratic-weighted Cohen's kappa, Spearman's rho (ties: average ranks) with a Fisher-z
interval, and the judge's false-bad / false-good rates at the metric's `good` threshold (Wilson
intervals). Between two runs on the same items: the paired difference (t interval, t test, exact
sign test, Bland-Altman limits) and the good/bad threshold flips (exact McNemar).

The drift verdict compares every run with a baseline run (default: the metric's first run) and
calls a run drifted only when the shift is both large enough to matter (`min_shift`, default 5 % of
the score range: 0.2 on a 1-5 scale) and larger than its uncertainty (the 99 % confidence interval
excludes zero: runs accumulate, so each look is strict), on at least `min_items` paired items; or when rank agreement with the humans
collapsed (Spearman down by `min_rho_drop`, significant at 1 % even treating the runs as
independent, which is conservative). Small sets therefore stay "unclear" instead of crying drift.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from oncall_ai.analysis.stats import (
    binomial_two_sided_p,
    fisher_z_interval,
    normal_cdf,
    spearman,
    t_cdf,
    t_interval,
    t_quantile,
    t_test_p,
    wilson_interval,
)

CONFIDENCE = 0.95  # intervals describing one run (bias, Spearman, false-bad/good rates)
DECISION_CONFIDENCE = 0.99  # intervals behind the drift verdict: runs pile up, so each look is strict
MIN_ITEMS = 10
MIN_RHO_DROP = 0.2
MIN_SHIFT_SHARE = 0.05  # of the score range


# --- the inputs -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunScores:
    """One calibration run of one metric: the judge's score per calibration item id."""

    run_id: str
    ts: int
    judge_id: str | None
    scores: Mapping[str, float | None]
    reasons: Mapping[str, str] = field(default_factory=dict)  # item id -> why the score is None
    attempts: Mapping[str, int] = field(default_factory=dict)


# --- agreement between two score vectors ------------------------------------------------------

def _pairs(judge: Mapping[str, float | None], human: Mapping[str, float]) -> tuple[list[float], list[float]]:
    ids = sorted(i for i, s in judge.items() if s is not None and i in human)
    return [float(judge[i]) for i in ids], [float(human[i]) for i in ids]


def mean_bias(judge: Sequence[float], human: Sequence[float],
              confidence: float = CONFIDENCE) -> tuple[float, float, float] | None:
    """(mean of judge - human, CI low, CI high) by the paired t interval; None for n < 2."""
    return t_interval([j - h for j, h in zip(judge, human, strict=True)], confidence)


def exact_agreement(judge: Sequence[float], human: Sequence[float]) -> float | None:
    """Share of items where judge and human give the same level (scores rounded to integers)."""
    if not judge:
        return None
    return sum(round(j) == round(h) for j, h in zip(judge, human, strict=True)) / len(judge)


def within_one_agreement(judge: Sequence[float], human: Sequence[float]) -> float | None:
    """Share of items where judge and human are at most one level apart (rounded scores)."""
    if not judge:
        return None
    return sum(abs(round(j) - round(h)) <= 1 for j, h in zip(judge, human, strict=True)) / len(judge)


def quadratic_weighted_kappa(judge: Sequence[float], human: Sequence[float]) -> float | None:
    """Cohen's kappa with quadratic weights: 1 - sum(w O) / sum(w E), where O is the observed joint
    distribution of (judge, human) levels, E the product of its marginals and w = (a - b)^2 on the
    level values. Levels are the rounded scores; for contiguous integer levels this is exactly
    sklearn's cohen_kappa_score(weights="quadratic"). None when undefined (no variation at all)."""
    n = len(judge)
    if n == 0:
        return None
    a = [round(j) for j in judge]
    b = [round(h) for h in human]
    pa, pb = Counter(a), Counter(b)
    observed = sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) / n
    expected = sum(ca * cb * (x - y) ** 2 for x, ca in pa.items() for y, cb in pb.items()) / (n * n)
    if expected <= 0:
        return None
    return 1 - observed / expected


def good_rates(judge: Sequence[float], human: Sequence[float], rule, confidence: float = CONFIDENCE) -> dict:
    """The judge's errors at the metric's good threshold, with Wilson intervals:
    false_bad  = P(judge not good | human good)   (the judge pages on good answers),
    false_good = P(judge good | human not good)   (the judge hides bad answers)."""
    human_good = [rule.is_good(h) for h in human]
    judge_good = [rule.is_good(j) for j in judge]
    n_hg = sum(human_good)
    n_hb = len(human_good) - n_hg
    fb = sum(1 for hg, jg in zip(human_good, judge_good, strict=True) if hg and not jg)
    fg = sum(1 for hg, jg in zip(human_good, judge_good, strict=True) if not hg and jg)
    return {
        "false_bad_rate": fb / n_hg if n_hg else None,
        "false_bad_ci": list(wilson_interval(fb, n_hg, confidence)) if n_hg else None,
        "false_bad_n": n_hg,
        "false_good_rate": fg / n_hb if n_hb else None,
        "false_good_ci": list(wilson_interval(fg, n_hb, confidence)) if n_hb else None,
        "false_good_n": n_hb,
        "judge_good_share": sum(judge_good) / len(judge_good) if judge_good else None,
        "human_good_share": n_hg / len(human_good) if human_good else None,
    }


# --- two runs on the same items ---------------------------------------------------------------

@dataclass(frozen=True)
class PairedComparison:
    """`after` minus `before` on the items both runs scored (or, with too few shared items, the
    difference of their biases against the humans, unpaired)."""

    before: str
    after: str
    n: int
    paired: bool
    shift: float | None
    ci: tuple[float, float] | None
    p_value: float | None
    sign_test_p: float | None = None
    n_up: int = 0
    n_down: int = 0
    n_tied: int = 0
    limits_of_agreement: tuple[float, float] | None = None  # Bland-Altman: mean +- 1.96 sd
    to_good: int = 0  # items the `after` run calls good and `before` did not
    to_bad: int = 0
    mcnemar_p: float | None = None

    def to_dict(self) -> dict:
        return {
            "before": self.before, "after": self.after, "n": self.n, "paired": self.paired,
            "shift": _r(self.shift), "ci": _rl(self.ci), "p_value": _r(self.p_value, 6),
            "sign_test_p": _r(self.sign_test_p, 6), "n_up": self.n_up, "n_down": self.n_down,
            "n_tied": self.n_tied, "limits_of_agreement": _rl(self.limits_of_agreement),
            "to_good": self.to_good, "to_bad": self.to_bad, "mcnemar_p": _r(self.mcnemar_p, 6),
        }


def paired_comparison(before: RunScores, after: RunScores, human: Mapping[str, float] | None = None,
                      rule=None, *, confidence: float = CONFIDENCE, min_paired: int = 5) -> PairedComparison:
    """Compare two runs. With at least `min_paired` items scored by both: d_i = after_i - before_i,
    mean with t interval and t-test p-value, exact sign test on the non-tied pairs, Bland-Altman
    limits, and the exact McNemar test on items crossing the good threshold. Otherwise, if human
    labels are given: the difference of the two runs' mean biases, Welch-style (unpaired)."""
    shared = sorted(i for i, s in after.scores.items()
                    if s is not None and before.scores.get(i) is not None)
    if len(shared) >= min_paired or human is None:
        d = [float(after.scores[i]) - float(before.scores[i]) for i in shared]
        ti = t_interval(d, confidence)
        up = sum(1 for x in d if x > 0)
        down = sum(1 for x in d if x < 0)
        loa = None
        if ti is not None:
            sd = math.sqrt(sum((x - ti[0]) ** 2 for x in d) / (len(d) - 1))
            loa = (ti[0] - 1.96 * sd, ti[0] + 1.96 * sd)
        to_good = to_bad = 0
        mcnemar = None
        if rule is not None and shared:
            for i in shared:
                gb, ga = rule.is_good(float(before.scores[i])), rule.is_good(float(after.scores[i]))
                to_good += ga and not gb
                to_bad += gb and not ga
            mcnemar = binomial_two_sided_p(to_good, to_good + to_bad) if to_good + to_bad else 1.0
        return PairedComparison(
            before=before.run_id, after=after.run_id, n=len(d), paired=True,
            shift=ti[0] if ti else (d[0] if d else None), ci=(ti[1], ti[2]) if ti else None,
            p_value=t_test_p(d), sign_test_p=binomial_two_sided_p(up, up + down) if up + down else 1.0,
            n_up=up, n_down=down, n_tied=len(d) - up - down, limits_of_agreement=loa,
            to_good=to_good, to_bad=to_bad, mcnemar_p=mcnemar)
    # Too few shared items: compare each run's bias against the humans instead (unpaired).
    j1, h1 = _pairs(before.scores, human)
    j2, h2 = _pairs(after.scores, human)
    d1 = [j - h for j, h in zip(j1, h1, strict=True)]
    d2 = [j - h for j, h in zip(j2, h2, strict=True)]
    n = min(len(d1), len(d2))
    if len(d1) < 2 or len(d2) < 2:
        return PairedComparison(before.run_id, after.run_id, n, False, None, None, None)
    m1, m2 = sum(d1) / len(d1), sum(d2) / len(d2)
    v1 = sum((x - m1) ** 2 for x in d1) / (len(d1) - 1)
    v2 = sum((x - m2) ** 2 for x in d2) / (len(d2) - 1)
    se2 = v1 / len(d1) + v2 / len(d2)
    shift = m2 - m1
    if se2 <= 0:
        return PairedComparison(before.run_id, after.run_id, n, False, shift, (shift, shift),
                                1.0 if shift == 0 else 0.0)
    df = se2 ** 2 / ((v1 / len(d1)) ** 2 / (len(d1) - 1) + (v2 / len(d2)) ** 2 / (len(d2) - 1))
    half = t_quantile(0.5 + confidence / 2, df) * math.sqrt(se2)
    t = shift / math.sqrt(se2)
    return PairedComparison(before.run_id, after.run_id, n, False, shift, (shift - half, shift + half),
                            max(0.0, min(1.0, 2 * (1 - t_cdf(abs(t), df)))))


# --- one run against the humans ---------------------------------------------------------------

@dataclass
class RunStats:
    run_id: str
    ts: int
    judge_id: str | None
    n: int  # calibration items of this metric in the run
    scored: int
    null: int
    null_reasons: dict[str, int]
    labelled: int  # scored items that have a human label
    bias: float | None = None
    bias_ci: tuple[float, float] | None = None
    exact_agreement: float | None = None
    within_one_agreement: float | None = None
    kappa_w: float | None = None
    spearman: float | None = None
    spearman_ci: tuple[float, float] | None = None
    rates: dict = field(default_factory=dict)
    retries: int = 0  # extra attempts beyond the first, over all items
    judge_changed: bool = False  # judge_id differs from the previous run's
    vs_baseline: PairedComparison | None = None
    vs_previous: PairedComparison | None = None
    state: str = "ok"  # baseline | ok | unclear | drifted | insufficient | before_baseline
    reasons: list[str] = field(default_factory=list)

    @property
    def null_rate(self) -> float | None:
        return self.null / self.n if self.n else None

    def to_dict(self) -> dict:
        from oncall_ai.timeutil import format_time

        return {
            "run_id": self.run_id, "ts": format_time(self.ts), "judge_id": self.judge_id,
            "n": self.n, "scored": self.scored, "null": self.null, "null_rate": _r(self.null_rate),
            "null_reasons": dict(self.null_reasons), "labelled": self.labelled,
            "bias": _r(self.bias), "bias_ci": _rl(self.bias_ci),
            "exact_agreement": _r(self.exact_agreement), "within_one_agreement": _r(self.within_one_agreement),
            "kappa_w": _r(self.kappa_w), "spearman": _r(self.spearman), "spearman_ci": _rl(self.spearman_ci),
            **{k: (_rl(v) if isinstance(v, list | tuple) else _r(v) if isinstance(v, float) else v)
               for k, v in self.rates.items()},
            "retries": self.retries, "judge_changed": self.judge_changed,
            "vs_baseline": self.vs_baseline.to_dict() if self.vs_baseline else None,
            "vs_previous": self.vs_previous.to_dict() if self.vs_previous else None,
            "state": self.state, "drifted": self.state == "drifted", "reasons": list(self.reasons),
        }


def run_stats(run: RunScores, human: Mapping[str, float], rule=None, *,
              confidence: float = CONFIDENCE) -> RunStats:
    """Agreement of one run with the human labels (items without a label are ignored for
    agreement, but counted in n and the null rate)."""
    n = len(run.scores)
    null = sum(1 for s in run.scores.values() if s is None)
    reasons = Counter(run.reasons.get(i) or "unknown" for i, s in run.scores.items() if s is None)
    j, h = _pairs(run.scores, human)
    st = RunStats(run_id=run.run_id, ts=run.ts, judge_id=run.judge_id, n=n, scored=n - null, null=null,
                  null_reasons=dict(sorted(reasons.items())), labelled=len(j),
                  retries=sum(max(0, a - 1) for a in run.attempts.values()))
    if not j:
        return st
    b = mean_bias(j, h, confidence)
    if b is not None:
        st.bias, st.bias_ci = b[0], (b[1], b[2])
    else:
        st.bias = j[0] - h[0]
    st.exact_agreement = exact_agreement(j, h)
    st.within_one_agreement = within_one_agreement(j, h)
    st.kappa_w = quadratic_weighted_kappa(j, h)
    st.spearman = spearman(j, h)
    if st.spearman is not None:
        st.spearman_ci = fisher_z_interval(st.spearman, len(j), confidence, variance_factor=1.06)
    if rule is not None:
        st.rates = good_rates(j, h, rule, confidence)
    return st


# --- drift over runs --------------------------------------------------------------------------

@dataclass
class DriftVerdict:
    metric: str
    drifted: bool
    since_run: str | None
    baseline_run: str | None
    runs: list[RunStats]
    shift: float | None = None  # latest run vs baseline
    shift_ci: tuple[float, float] | None = None
    p_value: float | None = None
    direction: str | None = None  # "harsher" | "more lenient" | None
    min_shift: float = 0.0
    confidence: float = DECISION_CONFIDENCE  # of shift_ci and the per-run shift intervals
    words: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "metric": self.metric, "drifted": self.drifted, "since_run": self.since_run,
            "baseline_run": self.baseline_run, "shift": _r(self.shift), "shift_ci": _rl(self.shift_ci),
            "p_value": _r(self.p_value, 6), "direction": self.direction, "min_shift": _r(self.min_shift),
            "confidence": self.confidence, "evidence": list(self.words),
            "runs": [r.to_dict() for r in self.runs],
        }


def default_min_shift(human: Mapping[str, float], scale: tuple[float, float] | None = None) -> float:
    """5 % of the score range (the metric's configured scale, else the range of the human labels):
    0.2 on a 1-5 scale, 0.05 on 0/1."""
    if scale is not None:
        span = scale[1] - scale[0]
    elif human:
        span = max(human.values()) - min(human.values())
    else:
        span = 1.0
    return MIN_SHIFT_SHARE * (span if span > 0 else 1.0)


def classify_shift(cmp: PairedComparison | None, *, min_shift: float, min_items: int = MIN_ITEMS) -> str:
    """drifted: |shift| >= min_shift and the CI excludes 0 (on >= min_items items);
    unclear: |shift| >= min_shift but not established; ok: |shift| < min_shift;
    insufficient: too few items to say anything."""
    if cmp is None or cmp.shift is None or cmp.ci is None or cmp.n < min_items:
        return "insufficient"
    if abs(cmp.shift) < min_shift:
        return "ok"
    lo, hi = cmp.ci
    return "drifted" if (lo > 0 or hi < 0) else "unclear"


def _rank_drop(base: RunStats, run: RunStats, min_rho_drop: float) -> bool:
    """Spearman with the humans fell by >= min_rho_drop and the fall is significant at 1 %
    one-sided, treating the two runs as independent samples (conservative for the same items)."""
    if base.spearman is None or run.spearman is None or base.labelled < 10 or run.labelled < 10:
        return False
    if base.spearman - run.spearman < min_rho_drop:
        return False
    z1 = math.atanh(max(-0.999999, min(0.999999, base.spearman)))
    z2 = math.atanh(max(-0.999999, min(0.999999, run.spearman)))
    se = math.sqrt(1.06 / (base.labelled - 3) + 1.06 / (run.labelled - 3))
    return 1 - normal_cdf((z1 - z2) / se) < 0.01


def drift_verdict(metric: str, runs: Sequence[RunScores], human: Mapping[str, float], rule=None, *,
                  higher_is_better: bool = True, min_shift: float | None = None,
                  baseline_run: str | None = None, confidence: float = CONFIDENCE,
                  decision_confidence: float = DECISION_CONFIDENCE, min_items: int = MIN_ITEMS,
                  min_rho_drop: float = MIN_RHO_DROP,
                  scale: tuple[float, float] | None = None) -> DriftVerdict:
    """Has the judge of `metric` moved, since which run, by how much, how sure.

    Runs are taken in time order. Each run after the baseline is compared with the baseline on the
    same items (see classify_shift) and checked for a collapse of rank agreement with the humans.
    The metric has drifted when some run after the last run that was clearly back in line ("ok") is
    drifted; `since_run` is the first such run. Runs too small to tell ("insufficient") or with a
    large but unconfirmed shift ("unclear") neither start nor end a drift."""
    ordered = sorted(runs, key=lambda r: (r.ts, r.run_id))
    if min_shift is None:
        min_shift = default_min_shift(human, scale)
    verdict = DriftVerdict(metric=metric, drifted=False, since_run=None, baseline_run=None, runs=[],
                           min_shift=min_shift, confidence=decision_confidence)
    if not ordered:
        verdict.words.append(f"no calibration runs for {metric}: run `oncall-ai judge calibrate --metric {metric}`")
        return verdict
    base_idx = 0
    if baseline_run is not None:
        ids = [r.run_id for r in ordered]
        if baseline_run not in ids:
            raise ValueError(f"baseline run {baseline_run!r} is not a run of {metric}")
        base_idx = ids.index(baseline_run)
    base = ordered[base_idx]
    verdict.baseline_run = base.run_id
    stats = [run_stats(r, human, rule, confidence=confidence) for r in ordered]
    for i, (r, st) in enumerate(zip(ordered, stats, strict=True)):
        if i > 0:
            st.vs_previous = paired_comparison(ordered[i - 1], r, human, rule, confidence=decision_confidence)
            st.judge_changed = (r.judge_id or None) != (ordered[i - 1].judge_id or None)
        if i == base_idx:
            st.state = "baseline"
            continue
        st.vs_baseline = paired_comparison(base, r, human, rule, confidence=decision_confidence)
        if i < base_idx:
            st.state = "before_baseline"
            continue
        st.state = classify_shift(st.vs_baseline, min_shift=min_shift, min_items=min_items)
        if st.state == "drifted":
            st.reasons.append("mean_shift")
        if _rank_drop(stats[base_idx], st, min_rho_drop):
            st.reasons.append("rank_agreement_drop")
            st.state = "drifted"
    verdict.runs = stats

    last_ok = base_idx
    for i in range(base_idx + 1, len(stats)):
        if stats[i].state == "ok":
            last_ok = i
    drifted = [i for i in range(last_ok + 1, len(stats)) if stats[i].state == "drifted"]
    latest = stats[-1]
    if latest.vs_baseline is not None:
        verdict.shift = latest.vs_baseline.shift
        verdict.shift_ci = latest.vs_baseline.ci
        verdict.p_value = latest.vs_baseline.p_value
    if drifted:
        first = stats[drifted[0]]
        verdict.drifted = True
        verdict.since_run = first.run_id
        ref = latest if latest.state == "drifted" else stats[drifted[-1]]
        cmp = ref.vs_baseline
        verdict.shift, verdict.shift_ci, verdict.p_value = cmp.shift, cmp.ci, cmp.p_value
        if cmp.shift is not None and cmp.shift != 0:
            lower = cmp.shift < 0
            verdict.direction = "harsher" if lower == higher_is_better else "more lenient"
    verdict.words = _drift_words(verdict, stats, base_idx, higher_is_better)
    return verdict


def _drift_words(v: DriftVerdict, stats: list[RunStats], base_idx: int, higher_is_better: bool) -> list[str]:
    words: list[str] = []
    base = stats[base_idx]
    pct = int(round(v.confidence * 100))
    if v.drifted:
        first = next(s for s in stats if s.run_id == v.since_run)
        cmp = first.vs_baseline
        if "mean_shift" in first.reasons and cmp and cmp.shift is not None and cmp.ci:
            words.append(
                f"judge of {v.metric} drifted since run {first.run_id}: it scores {abs(cmp.shift):.2f} "
                f"{'lower' if cmp.shift < 0 else 'higher'} than baseline run {base.run_id} on the same "
                f"{cmp.n} items ({pct}% CI {cmp.ci[0]:+.2f} to {cmp.ci[1]:+.2f}, p {_p(cmp.p_value)}; "
                f"threshold {v.min_shift:.2f})")
        if "rank_agreement_drop" in first.reasons:
            words.append(f"rank agreement with the humans fell from Spearman {base.spearman:.2f} to "
                         f"{first.spearman:.2f} at run {first.run_id}")
        if first.judge_changed:
            prev = stats[stats.index(first) - 1]
            words.append(f"the judge changed at that run: {prev.judge_id} -> {first.judge_id}")
        latest = stats[-1]
        if latest is not first and latest.vs_baseline and latest.vs_baseline.shift is not None:
            words.append(f"latest run {latest.run_id}: shift {latest.vs_baseline.shift:+.2f} vs baseline "
                         f"({latest.state})")
    else:
        latest = stats[-1]
        if latest is base:
            words.append(f"only the baseline run {base.run_id} so far: nothing to compare with")
        elif latest.state == "unclear":
            cmp = latest.vs_baseline
            words.append(f"run {latest.run_id} shifts {cmp.shift:+.2f} vs baseline but the {pct}% CI "
                         f"({cmp.ci[0]:+.2f} to {cmp.ci[1]:+.2f}) includes 0 on {cmp.n} items: not established")
        elif latest.state == "insufficient":
            words.append(f"run {latest.run_id} shares too few scored items with the baseline to tell")
        elif latest.vs_baseline is not None and latest.vs_baseline.shift is not None:
            cmp = latest.vs_baseline
            ci = f", {pct}% CI {cmp.ci[0]:+.2f} to {cmp.ci[1]:+.2f}" if cmp.ci else ""
            words.append(f"no drift: latest run {latest.run_id} is within {v.min_shift:.2f} of baseline "
                         f"{base.run_id} (shift {cmp.shift:+.2f}{ci}, {cmp.n} items)")
    if base.bias is not None and base.bias_ci is not None and (base.bias_ci[0] > 0 or base.bias_ci[1] < 0) \
            and abs(base.bias) >= v.min_shift:
        words.append(f"note: the baseline judge itself is biased {base.bias:+.2f} vs the humans "
                     f"(CI {base.bias_ci[0]:+.2f} to {base.bias_ci[1]:+.2f})")
    latest = stats[-1]
    if latest.null_rate:
        words.append(f"latest run: {latest.null} of {latest.n} items without a score "
                     f"({', '.join(f'{k} {c}' for k, c in latest.null_reasons.items())})")
    return words


# --- formatting helpers -----------------------------------------------------------------------

def _r(x, digits: int = 4):
    if x is None:
        return None
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return round(float(x), digits)


def _rl(pair, digits: int = 4):
    return None if pair is None else [_r(pair[0], digits), _r(pair[1], digits)]


def _p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"
