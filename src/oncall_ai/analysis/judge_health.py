"""Judge health on traffic, and the evidence triage's `judge_drift` hypothesis uses.

Pure part (no store, no clock): per judge_id statistics over time, the judge_id switch seen in
traffic, and "judge-only movement" (research/statistics.md 7.4): the judge-scored metric moved at
the onset while the feature's deterministic checks and user signals (100 % of traffic) stayed flat.
Movement is tested on hourly bucket means (Welch t, each bucket one observation), so
bucket-to-bucket overdispersion of high-volume metrics is in the error term, not ignored.

Thin loader at the bottom: `judge_evidence(cfg, store, feature, metric, start_ms, end_ms, onset_ms)`
reads the store (Store.series + Store.aggregate) and the calibration runs, and returns a
JudgeEvidence with plain-English `words` and a 0..1 `score` (strength of "the judge moved, not the
product"). Null scores cannot be ingested (CONTRACT section 1: `value` is required), so the traffic
null rate is unknown (None); the calibration runs carry the judge's null rate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from oncall_ai.analysis.stats import t_cdf

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
MOVE_T = 2.0  # |t| on bucket means that counts as "moved" (one pre-specified test at a known onset)
MIN_BUCKETS = 3  # per side
NEAR_ONSET_MS = 3 * HOUR_MS


@dataclass(frozen=True)
class Cell:
    """Aggregate of one metric in one bucket (optionally for one judge_id)."""

    bucket: int
    n: int
    total: float
    total_sq: float = 0.0
    good: int | None = None
    judge_id: str | None = None


@dataclass
class JudgeIdStats:
    judge_id: str | None
    n: int
    mean: float | None
    sd: float | None
    good_share: float | None
    first_ms: int
    last_ms: int
    daily: list[dict] = field(default_factory=list)  # [{"day": ms, "n", "mean", "good_share"}]
    histogram: dict[str, int] | None = None  # rounded score -> count (from raw events, may be sampled)
    null_rate: float | None = None  # unknown on traffic (events cannot carry a null score)

    def to_dict(self) -> dict:
        from oncall_ai.timeutil import format_time

        return {"judge_id": self.judge_id, "n": self.n, "mean": _r(self.mean), "sd": _r(self.sd),
                "good_share": _r(self.good_share), "first_seen": format_time(self.first_ms),
                "last_seen": format_time(self.last_ms), "null_rate": self.null_rate,
                "histogram": self.histogram,
                "daily": [{"day": format_time(d["day"]), "n": d["n"], "mean": _r(d["mean"]),
                           "good_share": _r(d["good_share"])} for d in self.daily]}


@dataclass(frozen=True)
class JudgeIdChange:
    at_ms: int  # first bucket the new judge_id scored in
    from_id: str | None
    to_id: str | None
    share_after: float  # share of judged events by to_id after the switch

    def to_dict(self) -> dict:
        from oncall_ai.timeutil import format_time

        return {"at": format_time(self.at_ms), "from": self.from_id, "to": self.to_id,
                "share_after": _r(self.share_after)}


@dataclass(frozen=True)
class Movement:
    metric: str
    source: str
    before: float | None
    after: float | None
    delta: float | None
    t: float | None
    p_value: float | None
    buckets: tuple[int, int]
    worse: bool  # moved significantly in the bad direction

    def to_dict(self) -> dict:
        return {"metric": self.metric, "source": self.source, "before": _r(self.before), "after": _r(self.after),
                "delta": _r(self.delta), "t": _r(self.t, 2), "p_value": _r(self.p_value, 6),
                "buckets": list(self.buckets), "worse": self.worse}


@dataclass
class JudgeEvidence:
    """What triage's `judge_drift` hypothesis needs; `score` in 0..1 is the strength of the
    explanation "the judge moved, not the product"."""

    feature: str
    metric: str
    drifted: bool = False  # calibration says the judge drifted
    since_run: str | None = None
    calibration_bias: float | None = None  # latest run's mean judge - human
    bias_ci: tuple[float, float] | None = None
    judge_id_changed: bool = False
    judge_id_change: JudgeIdChange | None = None
    judge_only_movement: bool | None = None
    movements: list[Movement] = field(default_factory=list)
    judges: list[JudgeIdStats] = field(default_factory=list)
    calibration_shift: float | None = None  # latest drifted run vs baseline, same items
    calibration_direction: str | None = None
    words: list[str] = field(default_factory=list)
    score: float = 0.0
    calibrated: bool = False  # a calibration run against human labels exists for the metric

    def to_dict(self) -> dict:
        return {
            "feature": self.feature, "metric": self.metric, "drifted": self.drifted, "since_run": self.since_run,
            "calibration_bias": _r(self.calibration_bias),
            "bias_ci": None if self.bias_ci is None else [_r(self.bias_ci[0]), _r(self.bias_ci[1])],
            "calibration_shift": _r(self.calibration_shift), "calibration_direction": self.calibration_direction,
            "judge_id_changed": self.judge_id_changed,
            "judge_id_change": self.judge_id_change.to_dict() if self.judge_id_change else None,
            "judge_only_movement": self.judge_only_movement,
            "movements": [m.to_dict() for m in self.movements],
            "judges": [j.to_dict() for j in self.judges],
            "evidence": list(self.words), "score": round(self.score, 3),
        }


# --- pure computations ------------------------------------------------------------------------

def judge_id_stats(cells: list[Cell], *, day_ms: int = DAY_MS) -> list[JudgeIdStats]:
    """Per judge_id: n, mean, sd, good share, first/last seen, and daily n/mean/good share."""
    by_id: dict[str | None, list[Cell]] = defaultdict(list)
    for c in cells:
        if c.n > 0:
            by_id[c.judge_id].append(c)
    out = []
    for jid, cs in by_id.items():
        n = sum(c.n for c in cs)
        tot = sum(c.total for c in cs)
        tsq = sum(c.total_sq for c in cs)
        goods = [c.good for c in cs]
        good = None if any(g is None for g in goods) else sum(goods)
        mean = tot / n
        sd = math.sqrt(max(0.0, (tsq - tot * tot / n) / (n - 1))) if n > 1 else None
        days: dict[int, list[Cell]] = defaultdict(list)
        for c in cs:
            days[c.bucket - c.bucket % day_ms].append(c)
        daily = []
        for day in sorted(days):
            dn = sum(c.n for c in days[day])
            dg = [c.good for c in days[day]]
            daily.append({"day": day, "n": dn, "mean": sum(c.total for c in days[day]) / dn,
                          "good_share": None if any(g is None for g in dg) else sum(dg) / dn})
        out.append(JudgeIdStats(jid, n, mean, sd, None if good is None else good / n,
                                min(c.bucket for c in cs), max(c.bucket for c in cs), daily))
    out.sort(key=lambda s: (s.first_ms, str(s.judge_id)))
    return out


def detect_judge_id_change(cells: list[Cell]) -> JudgeIdChange | None:
    """The latest judge_id that started scoring after another one had been scoring: (when, from,
    to, its share of judged events afterwards). None with a single judge_id in the window."""
    first_seen: dict[str | None, int] = {}
    for c in cells:
        if c.n > 0:
            first_seen[c.judge_id] = min(first_seen.get(c.judge_id, c.bucket), c.bucket)
    if len(first_seen) < 2:
        return None
    start = min(first_seen.values())
    newcomers = [(t, j) for j, t in first_seen.items() if t > start]
    if not newcomers:
        return None
    at, to_id = max(newcomers, key=lambda x: (x[0], str(x[1])))
    before: dict[str | None, int] = defaultdict(int)
    after_total = after_new = 0
    for c in cells:
        if c.bucket < at:
            before[c.judge_id] += c.n
        else:
            after_total += c.n
            after_new += c.n if c.judge_id == to_id else 0
    from_id = max(before.items(), key=lambda kv: kv[1])[0] if before else None
    return JudgeIdChange(at, from_id, to_id, after_new / after_total if after_total else 0.0)


def bucket_means(cells: list[Cell]) -> dict[int, float]:
    """Mean per bucket, pooling judge ids / slices within a bucket."""
    n: dict[int, int] = defaultdict(int)
    tot: dict[int, float] = defaultdict(float)
    for c in cells:
        n[c.bucket] += c.n
        tot[c.bucket] += c.total
    return {b: tot[b] / n[b] for b in n if n[b] > 0}


def movement(metric: str, source: str, means: dict[int, float], onset_ms: int, *,
             higher_is_better: bool = True) -> Movement:
    """Welch t test of bucket means after `onset_ms` against before it."""
    before = [v for b, v in means.items() if b < onset_ms]
    after = [v for b, v in means.items() if b >= onset_ms]
    nb, na = len(before), len(after)
    if nb < MIN_BUCKETS or na < MIN_BUCKETS:
        mb = sum(before) / nb if nb else None
        ma = sum(after) / na if na else None
        return Movement(metric, source, mb, ma, None if mb is None or ma is None else ma - mb, None, None,
                        (nb, na), False)
    mb, ma = sum(before) / nb, sum(after) / na
    vb = sum((x - mb) ** 2 for x in before) / (nb - 1)
    va = sum((x - ma) ** 2 for x in after) / (na - 1)
    se2 = vb / nb + va / na
    delta = ma - mb
    if se2 <= 0:
        t = 0.0 if delta == 0 else math.copysign(math.inf, delta)
        p = 1.0 if delta == 0 else 0.0
    else:
        t = delta / math.sqrt(se2)
        df = se2 ** 2 / ((vb / nb) ** 2 / (nb - 1) + (va / na) ** 2 / (na - 1))
        p = max(0.0, min(1.0, 2 * (1 - t_cdf(abs(t), df))))
    bad = -t if higher_is_better else t
    return Movement(metric, source, mb, ma, delta, t, p, (nb, na), bad >= MOVE_T)


def judge_only(judge: Movement, others: list[Movement]) -> bool | None:
    """True: the judge metric got worse and none of the checks/user signals did; False: the judge
    metric did not move, or something else moved with it; None: nothing to compare with."""
    informative = [m for m in others if m.t is not None]
    if judge.t is None:
        return None
    if not judge.worse:
        return False
    if not informative:
        return None
    return not any(m.worse for m in informative)


def assess(feature: str, metric: str, *, verdict=None, judge_cells: list[Cell], other_moves: list[Movement],
           onset_ms: int | None, higher_is_better: bool = True, judges: list[JudgeIdStats] | None = None,
           run_ts: dict[str, int] | None = None) -> JudgeEvidence:
    """Combine calibration (a DriftVerdict or None) and traffic into JudgeEvidence.

    Score (a documented heuristic, clipped to 0..1):
      +0.50 calibration says the judge drifted in the direction the metric moved (+0.40 when the
            traffic direction is unknown, +0.10 the other way); halved when the judge was still in
            line in a calibration run after the onset
      +0.20 a new judge_id appeared in traffic in the window, +0.15 more within 3 h of the onset
      +0.30 judge-only movement (checks and user signals flat), x0.4 when they moved too
      x0.3  calibration found no drift and a calibration run after the onset agreed with the baseline."""
    from oncall_ai.timeutil import format_time

    ev = JudgeEvidence(feature=feature, metric=metric)
    ev.judges = judges if judges is not None else judge_id_stats(judge_cells)
    words = ev.words
    change = detect_judge_id_change(judge_cells)
    ev.judge_id_change = change
    ev.judge_id_changed = change is not None
    onset = onset_ms if onset_ms is not None else (change.at_ms if change else None)

    jmove = None
    if onset is not None:
        jmove = movement(metric, "judge", bucket_means(judge_cells), onset, higher_is_better=higher_is_better)
        ev.movements = [jmove, *other_moves]
        ev.judge_only_movement = judge_only(jmove, other_moves)

    score = 0.0
    clean_after_onset = False
    if verdict is not None and verdict.runs:
        ev.calibrated = True
        latest = verdict.runs[-1]
        ev.calibration_bias, ev.bias_ci = latest.bias, latest.bias_ci
        ev.drifted, ev.since_run = verdict.drifted, verdict.since_run
        if verdict.drifted:
            ev.calibration_shift, ev.calibration_direction = verdict.shift, verdict.direction
            words.extend(f"calibration: {w}" for w in verdict.words[:2])
            traffic_dir = None
            if jmove is not None and jmove.delta is not None and jmove.t is not None and abs(jmove.t) >= 2:
                traffic_dir = math.copysign(1, jmove.delta)
            part = 0.4
            if traffic_dir is not None and verdict.shift:
                part = 0.5 if math.copysign(1, verdict.shift) == traffic_dir else 0.1
                if part == 0.1:
                    words.append("but the calibration shift points the other way than the traffic movement")
            if onset is not None and run_ts:
                ok_after = [r for r in verdict.runs if r.state in ("ok", "baseline") and r.ts > onset]
                if ok_after:
                    part /= 2
                    words.append(f"calibration run {ok_after[-1].run_id} after the onset still agreed with "
                                 "the baseline judge")
            score += part
        else:
            words.append(f"calibration: no judge drift for {metric} "
                         f"({verdict.words[0] if verdict.words else 'runs agree with the baseline'})")
            after = [r for r in verdict.runs if onset is not None and r.ts > onset and r.state in ("ok", "baseline")]
            if after:
                clean_after_onset = True
                words.append(f"calibration run {after[-1].run_id} after the onset found the judge in line "
                             "with its baseline")
    else:
        words.append(f"calibration: no calibration runs for {metric}; "
                     f"run `oncall-ai judge calibrate --metric {metric}` to check the judge against human labels")

    if change is not None:
        near = onset_ms is not None and abs(change.at_ms - onset_ms) <= NEAR_ONSET_MS
        words.append(f"traffic: judge_id changed {change.from_id} -> {change.to_id} at {format_time(change.at_ms)}"
                     f" ({change.share_after:.0%} of judged events after)" + (", at the onset" if near else ""))
        score += 0.2 + (0.15 if near else 0.0)
    by_id = {j.judge_id: j for j in ev.judges}
    if change is not None and change.from_id in by_id and change.to_id in by_id:
        a, b = by_id[change.from_id], by_id[change.to_id]
        if a.mean is not None and b.mean is not None:
            words.append(f"traffic: {change.from_id} mean {a.mean:.3g} (n={a.n}) vs {change.to_id} mean "
                         f"{b.mean:.3g} (n={b.n})")

    if ev.judge_only_movement is True:
        flat = ", ".join(f"{m.metric} {m.delta:+.3g} (t={m.t:+.1f})" for m in other_moves if m.t is not None)
        words.append(f"traffic: {metric} moved {jmove.delta:+.3g} (t={jmove.t:+.1f}) after "
                     f"{format_time(onset)} while checks and user signals stayed flat: {flat}")
        score += 0.3
    elif ev.judge_only_movement is False and jmove is not None and jmove.worse:
        moved = ", ".join(f"{m.metric} {m.delta:+.3g} (t={m.t:+.1f})" for m in other_moves if m.worse)
        words.append(f"traffic: {metric} moved and so did {moved}: the product likely changed, not only the judge")
        score *= 0.4
    elif jmove is not None and jmove.t is not None and not jmove.worse:
        words.append(f"traffic: {metric} shows no significant drop after {format_time(onset)} "
                     f"({jmove.delta:+.3g}, t={jmove.t:+.1f})")
    if clean_after_onset:
        score *= 0.3
    ev.score = max(0.0, min(1.0, score))
    return ev


def _r(x, digits: int = 4):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), digits)


# --- thin loader ------------------------------------------------------------------------------

def load_cells(store, series_list, start_ms: int, end_ms: int, *, bucket_ms: int = HOUR_MS,
               good_rule=None, by_judge: bool = True) -> list[Cell]:
    """Hourly cells per (judge_id, bucket) of the given series, summed over slices and versions."""
    if not series_list:
        return []
    by_sid = {s.id: s for s in series_list}
    aggs = store.aggregate(list(by_sid), start_ms, end_ms, bucket_ms=bucket_ms, good_rule=good_rule)
    acc: dict[tuple, list] = {}
    for (sid, bucket), agg in aggs.items():
        key = (by_sid[sid].judge_id if by_judge else None, bucket)
        a = acc.setdefault(key, [0, 0.0, 0.0, 0])
        a[0] += agg.n
        a[1] += agg.total
        a[2] += agg.total_sq
        a[3] = None if (a[3] is None or agg.good is None) else a[3] + agg.good
    return [Cell(b, n, t, q, g, j) for (j, b), (n, t, q, g) in sorted(acc.items(), key=lambda kv: (kv[0][1], str(kv[0][0])))]


def judge_evidence(cfg, store, feature: str, metric: str, start_ms: int, end_ms: int,
                   onset_ms: int | None = None, *, verdict=None, histograms: bool = False) -> JudgeEvidence:
    """Evidence for "the judge moved, not the product" for (feature, metric) over [start, end).

    `verdict`: a precomputed calibration DriftVerdict for the metric (else computed from the
    store, as of end_ms). Never raises for missing calibration data: it becomes words."""
    from oncall_ai.errors import OncallError

    mc = cfg.metric(metric)
    all_series = store.series(feature=feature)
    jseries = [s for s in all_series if s.metric == metric]
    if jseries and all(s.source != "judge" for s in jseries):
        return JudgeEvidence(feature=feature, metric=metric,
                             words=[f"{metric} is not judge-scored (source {jseries[0].source}): no judge drift"])
    cells = load_cells(store, jseries, start_ms, end_ms, good_rule=mc.good)
    judges = judge_id_stats(cells)
    if histograms:
        for j in judges:
            ids = [s.id for s in jseries if s.judge_id == j.judge_id]
            evs = store.events(ids, start_ms, end_ms, limit=20_000)
            hist: dict[str, int] = defaultdict(int)
            for e in evs:
                hist[f"{round(e.value, 1):g}"] += 1
            j.histogram = dict(sorted(hist.items(), key=lambda kv: float(kv[0])))
    if verdict is None:
        try:
            from oncall_ai.judge_runs import calibration_verdicts

            found = calibration_verdicts(cfg, store, metric=metric, at_ms=end_ms, strict=False)
            verdict = found[0] if found and found[0].runs else None
        except OncallError:
            verdict = None
    change = detect_judge_id_change(cells)
    onset = onset_ms if onset_ms is not None else (change.at_ms if change else None)
    others = []
    if onset is not None:
        by_metric: dict[str, list] = defaultdict(list)
        for s in all_series:
            if s.metric != metric and s.source in ("check", "user"):
                by_metric[s.metric].append(s)
        for m, ss in sorted(by_metric.items()):
            oc = load_cells(store, ss, start_ms, end_ms, good_rule=cfg.metric(m).good, by_judge=False)
            others.append(movement(m, ss[0].source, bucket_means(oc), onset,
                                   higher_is_better=cfg.metric(m).higher_is_better))
    run_ts = {r.run_id: r.ts for r in verdict.runs} if verdict is not None else None
    return assess(feature, metric, verdict=verdict, judge_cells=cells, other_moves=others, onset_ms=onset_ms,
                  higher_is_better=mc.higher_is_better, judges=judges, run_ts=run_ts)
