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
                  at_ms: int, *, per_series_out: dict | None = None) -> dict[str, dict[int, Counts]]:
    """Counts per SLO per window ending at at_ms, with as few store calls as possible.
    `per_series_out`, when given, receives the counts per series: {(window ms, metric): {series id: Counts}}
    (the digest reads slices near their SLO from them instead of asking the store again)."""
    # (window, metric) -> the series ids of every SLO that needs it
    wanted: dict[tuple[int, str], set[int]] = {}
    for slo in slos:
        ids = {s.id for s in series_by_slo[slo.name]}
        if not ids:
            continue
        for w in slo_math.windows_needed(slo.window_ms):
            wanted.setdefault((w, slo.metric), set()).update(ids)
    per_series: dict[tuple[int, str], dict[int, Counts]] = {}
    for (w, metric), ids in sorted(wanted.items()):
        rule = cfg.metric(metric).good
        aggs = store.aggregate(ids, at_ms - w, at_ms, good_rule=rule)
        per_series[(w, metric)] = {sid: Counts(a.n, a.good or 0) for (sid, _b), a in aggs.items()}
    if per_series_out is not None:
        per_series_out.update(per_series)
    out: dict[str, dict[int, Counts]] = {}
    for slo in slos:
        counts = {}
        for w in slo_math.windows_needed(slo.window_ms):
            cells = per_series.get((w, slo.metric), {})
            total = Counts()
            for s in series_by_slo[slo.name]:
                c = cells.get(s.id)
                if c is not None:
                    total = total + c
            counts[w] = total
        out[slo.name] = counts
    return out


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
                 details: bool = False, per_series_out: dict | None = None) -> list[SLOStatus]:
    """Every configured SLO (or those named) at at_ms. `details` adds the sparkline and, for sampled
    metrics, the time-to-page note (a few more store calls: `slo status`). `per_series_out`: see
    window_counts."""
    slos = list(cfg.slos)
    if names:
        wanted = set(names)
        slos = [s for s in slos if s.name in wanted]
    all_series = store.series()
    series_by_slo = {slo.name: slo_series(all_series, slo) for slo in slos}
    counts = window_counts(store, cfg, slos, series_by_slo, at_ms, per_series_out=per_series_out)
    out = []
    for slo in slos:
        series = series_by_slo[slo.name]
        rate = None
        need_probe = details or (slo.sampled is None and cfg.metric(slo.metric).source != "judge"
                                 and not any(s.source == "judge" for s in series))
        if need_probe:
            rate = recent_sample_rate(store, series, at_ms)
        sampled = is_sampled(slo, cfg, series, rate)
        st = slo_math.evaluate(name=slo.name, feature=slo.feature, metric=slo.metric, objective=slo.objective,
                               period_ms=slo.window_ms, counts=counts[slo.name], sampled=sampled,
                               min_events=slo.min_events, severity=slo.severity)
        if details:
            st = _with_details(store, cfg, slo, series, st, at_ms, rate)
        out.append(st)
    return out


def spark_bucket_ms(period_ms: int) -> int:
    """About 24 buckets over the period, in whole hours (so rollups answer them)."""
    return max(HOUR_MS, round(period_ms / 24 / HOUR_MS) * HOUR_MS)


def _with_details(store: Store, cfg: Config, slo: SLOConfig, series: list[Series], st: SLOStatus,
                  at_ms: int, rate: float | None) -> SLOStatus:
    bucket = spark_bucket_ms(slo.window_ms)
    start = at_ms - slo.window_ms
    first = start - start % bucket
    spark: list[float | None] = []
    if series:
        aggs = store.aggregate([s.id for s in series], first, at_ms, bucket_ms=bucket,
                               good_rule=cfg.metric(slo.metric).good)
        by_bucket: dict[int, Counts] = {}
        for (_sid, b), a in aggs.items():
            by_bucket[b] = by_bucket.get(b, Counts()) + Counts(a.n, a.good or 0)
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
