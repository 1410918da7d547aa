"""Evaluate the configured SLOs against the store (the I/O around analysis/slo.py).

Counts come from `Store.aggregate`, one call per distinct window and good rule for all SLOs at
once (the SQLite backend answers whole hours from rollups and only the partial hours at window
edges from raw events), so `slo check` stays well under a second on a 10-million-event store.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import replace

from oncall_ai.analysis import slo as slo_math
from oncall_ai.analysis.slo import HOUR_MS, Counts, SLOStatus
from oncall_ai.config import Config, SLOConfig
from oncall_ai.store.base import Series, Store

SAMPLE_PROBE_EVENTS = 500
_RECENT_MS = 24 * HOUR_MS  # windows shorter than this are answered from the last day's hourly cells


def slo_series(all_series: Iterable[Series], slo: SLOConfig) -> list[Series]:
    """The series an SLO counts: its feature and metric, and every `where` key matching."""
    out = []
    for s in all_series:
        if s.feature != slo.feature or s.metric != slo.metric:
            continue
        if all(s.get(k) == v for k, v in slo.where):
            out.append(s)
    return out


def window_counts(store: Store, cfg: Config, slos: list[SLOConfig], series_by_slo: dict[str, list[Series]],
                  at_ms: int, *, period: bool = True) -> dict[str, dict[int, Counts]]:
    """Counts per SLO per window ending at at_ms, with as few store calls as possible.

    The windows all end at at_ms, so they nest. Each window [at - w, at) is split into
        head [at - w, next hour)  +  whole hours [next hour, h0)  +  tail [h0, at)
    (h0 = the hour at_ms is in). The last day's whole hours come from one hourly-bucketed rollup
    query, which also tells which series have events in each hour: the head and tail raw queries
    then only ask for those (most series of a sliced, versioned metric are quiet in any one hour).
    Older whole hours are read as rings between consecutive windows (rollups only, each cell read
    once). Every piece goes straight into per-SLO sums."""
    out: dict[str, dict[int, Counts]] = {}
    h0 = at_ms - at_ms % HOUR_MS
    for slo in slos:
        out[slo.name] = {w: Counts() for w in slo_math.windows_needed(slo.window_ms, period=period)}
    # One pass per good rule, not per metric: metrics judged by the same rule (helpfulness and
    # faithfulness both ">= 4") share every query, and long windows cost a scan per pass.
    def rule_key(slo: SLOConfig) -> str:
        return str(cfg.metric(slo.metric).good)

    for key in sorted({rule_key(slo) for slo in slos}):
        group = [slo for slo in slos if rule_key(slo) == key and series_by_slo[slo.name]]
        if not group:
            continue
        rule = cfg.metric(group[0].metric).good
        owners: dict[int, list[int]] = {}  # series id -> indexes (in group) of the SLOs counting it
        for i, slo in enumerate(group):
            for srs in series_by_slo[slo.name]:
                owners.setdefault(srs.id, []).append(i)
        needs = [set(slo_math.windows_needed(slo.window_ms, period=period)) for slo in group]
        ws = sorted(set().union(*needs))
        longest = [max(n) for n in needs]
        ids_from = {w: {sid for sid, own in owners.items() if any(longest[i] >= w for i in own)} for w in ws}

        def per_slo(cells, owners=owners, size=len(group)) -> list[list[int]]:
            sums = [[0, 0] for _ in range(size)]
            for (sid, _b), a in cells.items():
                for i in owners.get(sid, ()):
                    sums[i][0] += a.n
                    sums[i][1] += a.good or 0
            return sums

        def read(ids, start, end, rule=rule, per_slo=per_slo, size=len(group)) -> list[list[int]]:
            if end <= start or not ids:
                return [[0, 0] for _ in range(size)]
            return per_slo(store.aggregate(ids, start, end, good_rule=rule))

        recent = [w for w in ws if w < _RECENT_MS]
        lo = h0 - (-(-max(recent) // HOUR_MS) * HOUR_MS) if recent else h0  # earliest hour they touch
        by_bucket: dict[int, dict] = {}
        if recent:
            for (sid, b), a in store.aggregate(ids_from[ws[0]], lo, h0 + HOUR_MS, bucket_ms=HOUR_MS,
                                               good_rule=rule).items():
                by_bucket.setdefault(b, {})[(sid, None)] = a

        def active(bucket, ids, lo=lo, by_bucket=by_bucket, known=bool(recent)):
            if known and lo <= bucket <= h0:
                cells = by_bucket.get(bucket, {})
                return {sid for sid in ids if (sid, None) in cells}
            return ids

        tail = read(active(h0, ids_from[ws[0]]), h0, at_ms)
        hours = [[0, 0] for _ in group]  # whole hours [boundary, h0), growing backwards
        boundary = h0
        for w in ws:
            start = at_ms - w
            if start >= h0:  # inside the current hour: one raw query
                _store(out, group, needs, w, read(active(h0, ids_from[w]), start, at_ms))
                continue
            next_hour = -(-start // HOUR_MS) * HOUR_MS
            while boundary > next_hour and boundary > lo:
                boundary -= HOUR_MS
                _add_sums(hours, per_slo(by_bucket.get(boundary, {})))
            if next_hour < boundary:
                _add_sums(hours, read(ids_from[w], next_hour, boundary))
                boundary = next_hour
            head = read(active(next_hour - HOUR_MS, ids_from[w]), start, next_hour)
            _store(out, group, needs, w, [[h[0] + t[0] + d[0], h[1] + t[1] + d[1]]
                                          for h, t, d in zip(hours, tail, head, strict=True)])
    return out


def _add_sums(acc: list[list[int]], more: list[list[int]]) -> None:
    for a, m in zip(acc, more, strict=True):
        a[0] += m[0]
        a[1] += m[1]


def _store(out, group, needs, w, sums) -> None:
    for i, slo in enumerate(group):
        if w in needs[i]:
            out[slo.name][w] = Counts(sums[i][0], sums[i][1])


def recent_sample_rate(store: Store, series: list[Series], at_ms: int) -> float | None:
    """Median sample_rate of the latest events (within a day); None when no event carries one."""
    ids = [s.id for s in series]
    if not ids:
        return None
    for back in (HOUR_MS, 24 * HOUR_MS):
        events = store.events(ids, at_ms - back, at_ms, order="-ts", limit=SAMPLE_PROBE_EVENTS)
        if events:
            rates = [e.sample_rate for e in events if e.sample_rate is not None]
            return statistics.median(rates) if rates else None
    return None


def is_sampled(slo: SLOConfig, cfg: Config, series: list[Series], sample_rate: float | None) -> bool:
    """`sampled:` in the SLO if set; else a judge metric (config or events), or events sampled below 1."""
    if slo.sampled is not None:
        return slo.sampled
    if cfg.metric(slo.metric).source == "judge" or any(s.source == "judge" for s in series):
        return True
    return sample_rate is not None and sample_rate < 1


def evaluate_all(store: Store, cfg: Config, at_ms: int, *, names: Iterable[str] | None = None,
                 details: bool = False, period: bool = True) -> list[SLOStatus]:
    """Every configured SLO (or those named) at at_ms. `details` adds the sparkline and, for sampled
    metrics, the time-to-page note (a few more store calls: `slo status`). Without `period` only the
    alert windows are counted: the same states, but no SLI / budget over the whole period."""
    slos = list(cfg.slos)
    if names:
        wanted = set(names)
        slos = [s for s in slos if s.name in wanted]
    by_pair: dict[tuple[str, str], list[Series]] = {}
    for slo in slos:  # only the series of the SLOs' features and metrics (an indexed lookup each)
        if (slo.feature, slo.metric) not in by_pair:
            by_pair[(slo.feature, slo.metric)] = store.series(slo.feature, slo.metric)
    series_by_slo = {slo.name: slo_series(by_pair[(slo.feature, slo.metric)], slo) for slo in slos}
    counts = window_counts(store, cfg, slos, series_by_slo, at_ms, period=period or details)
    out = []
    rate_by: dict[str, float | None] = {}
    for slo in slos:
        series = series_by_slo[slo.name]
        rate = None
        need_probe = details or (slo.sampled is None and cfg.metric(slo.metric).source != "judge"
                                 and not any(s.source == "judge" for s in series))
        if need_probe:
            rate = recent_sample_rate(store, series, at_ms)
        rate_by[slo.name] = rate
        sampled = is_sampled(slo, cfg, series, rate)
        st = slo_math.evaluate(name=slo.name, feature=slo.feature, metric=slo.metric, objective=slo.objective,
                               period_ms=slo.window_ms, counts=counts[slo.name], sampled=sampled,
                               min_events=slo.min_events, severity=slo.severity)
        out.append(st)
    if details:
        sparks = spark_counts(store, cfg, slos, series_by_slo, at_ms)
        out = [_with_details(slo, st, sparks[slo.name], rate_by[slo.name], at_ms)
               for slo, st in zip(slos, out, strict=True)]
    return out


def spark_counts(store: Store, cfg: Config, slos: list[SLOConfig], series_by_slo: dict[str, list[Series]],
                 at_ms: int) -> dict[str, dict[int, Counts]]:
    """Counts per SLO per sparkline bucket over its period: one bucketed query per good rule and
    period for all SLOs sharing them (a scan of the period each)."""
    out: dict[str, dict[int, Counts]] = {slo.name: {} for slo in slos}
    groups: dict[tuple[str, int], list[SLOConfig]] = {}
    for slo in slos:
        if series_by_slo[slo.name]:
            groups.setdefault((str(cfg.metric(slo.metric).good), slo.window_ms), []).append(slo)
    for (_rule, period_ms), group in groups.items():
        bucket = spark_bucket_ms(period_ms)
        start = at_ms - period_ms
        owners: dict[int, list[str]] = {}
        for slo in group:
            for srs in series_by_slo[slo.name]:
                owners.setdefault(srs.id, []).append(slo.name)
        aggs = store.aggregate(owners, start - start % bucket, at_ms, bucket_ms=bucket,
                               good_rule=cfg.metric(group[0].metric).good)
        for (sid, b), a in aggs.items():
            for name in owners[sid]:
                cells = out[name]
                cells[b] = cells.get(b, Counts()) + Counts(a.n, a.good or 0)
    return out


def spark_bucket_ms(period_ms: int) -> int:
    """About 24 buckets over the period, in whole hours (so rollups answer them)."""
    return max(HOUR_MS, round(period_ms / 24 / HOUR_MS) * HOUR_MS)


def _with_details(slo: SLOConfig, st: SLOStatus, by_bucket: dict[int, Counts], rate: float | None,
                  at_ms: int) -> SLOStatus:
    bucket = spark_bucket_ms(slo.window_ms)
    start = at_ms - slo.window_ms
    first = start - start % bucket
    spark: list[float | None] = []
    b = first
    while b < at_ms:
        c = by_bucket.get(b)
        spark.append(c.good / c.n if c and c.n else None)
        b += bucket
    note = None
    if st.sampled:
        pages = [p for p in slo_math.burn_pairs(slo.window_ms) if p.severity == "page"]
        probe_ms = max(p.long_ms for p in pages)
        probe = next((w for w in st.windows if w.window_ms == probe_ms), None)
        judged_per_hour = (probe.n if probe else 0) / (probe_ms / HOUR_MS)
        baseline = (st.bad / st.n) if st.n else 0.0
        note = slo_math.sampling_note(period_ms=slo.window_ms, objective=slo.objective,
                                      judged_per_hour=judged_per_hour,
                                      sample_rate=rate if rate is not None else None,
                                      baseline_bad=baseline, min_events=st.min_events)
    return replace(st, spark=tuple(spark), spark_bucket_ms=bucket, sampling=note)
