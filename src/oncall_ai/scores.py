"""Scores by slice and time: the query behind `oncall-ai scores` (and a building block for others).

Everything is computed from additive aggregates (count, sum, sum of squares, count good) that
the store pushes down, grouped here by the requested keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from oncall_ai.analysis.stats import mean_interval
from oncall_ai.errors import UsageError
from oncall_ai.store.base import PSEUDO_KEYS, Agg, Series, Store
from oncall_ai.timeutil import parse_duration_ms

BUCKETS = ("5m", "15m", "1h", "1d")


@dataclass
class ScoreRow:
    feature: str
    metric: str
    slice: dict[str, str]
    bucket: int | None
    agg: Agg
    higher_is_better: bool = True
    baseline: Agg | None = None
    trend: list[float | None] = field(default_factory=list)

    @property
    def ci(self) -> tuple[float, float] | None:
        return mean_interval(self.agg.n, self.agg.total, self.agg.total_sq)


def parse_where(items: Iterable[str]) -> dict[str, set[str]]:
    where: dict[str, set[str]] = {}
    for item in items or ():
        if "=" not in item:
            raise UsageError(f"--where {item!r}: write key=value, e.g. --where language=de")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k:
            raise UsageError(f"--where {item!r}: empty key")
        values = {x.strip() for x in v.split(",")} - {""}
        if not values:
            raise UsageError(f"--where {item!r}: no value; write e.g. --where {k}=de (or {k}=de,fr for either)")
        where.setdefault(k, set()).update(values)
    return where


def parse_by(items: Iterable[str] | None) -> list[str]:
    keys: list[str] = []
    for item in items or ():
        for k in item.split(","):
            k = k.strip()
            if k and k not in keys:
                keys.append(k)
    return keys


def parse_bucket(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        ms = parse_duration_ms(text)
    except ValueError:
        raise UsageError(f"--bucket {text!r}: use one of {', '.join(BUCKETS)}") from None
    if ms < 60_000 or 86_400_000 % ms and ms % 86_400_000:
        raise UsageError(f"--bucket {text!r}: use a whole divisor of a day, e.g. {', '.join(BUCKETS)}")
    return ms


def select_series(series: list[Series], where: dict[str, set[str]]) -> list[Series]:
    if not where:
        return series
    return [s for s in series if all(s.get(k) in vals for k, vals in where.items())]


def _by_values(by: list[str]):
    """series -> ((key, value), ...) for the --by keys. Series share slice tuples (versions
    differ), so with slice keys only, each distinct slice is looked at once."""
    if any(k in PSEUDO_KEYS for k in by):
        return lambda s: tuple([(k, s.get(k)) for k in by])
    seen: dict[tuple, tuple] = {}

    def values(s: Series) -> tuple:
        v = seen.get(s.slice)
        if v is None:
            d = dict(s.slice)
            v = seen[s.slice] = tuple([(k, d.get(k)) for k in by])
        return v

    return values


def query_scores(store: Store, cfg, *, start: int, end: int, feature: str | None = None,
                 metric: str | None = None, where: dict[str, set[str]] | None = None,
                 by: list[str] | None = None, bucket_ms: int | None = None,
                 baseline: tuple[int, int] | None = None, trend_points: int = 0) -> list[ScoreRow]:
    """Rows per (feature, metric, by-values[, bucket]), ordered by feature, metric, slice, bucket."""
    by = by or []
    by_values = _by_values(by)
    chosen = select_series(store.series(feature, metric), where or {})
    by_metric: dict[str, list[Series]] = {}
    for s in chosen:
        by_metric.setdefault(s.metric, []).append(s)
    rows: dict[tuple, ScoreRow] = {}
    for m, series in sorted(by_metric.items()):
        mcfg = cfg.metric(m) if cfg is not None else None
        rule = mcfg.good if mcfg else None
        higher = mcfg.higher_is_better if mcfg else True
        group_of = {s.id: (s.feature, m, by_values(s)) for s in series}
        # Summed per group where the data is (SQLite/ClickHouse group in SQL): one row per
        # (group, bucket) comes back, not one per series.
        aggs = store.aggregate_groups(group_of, start, end, bucket_ms=bucket_ms, good_rule=rule)
        for (g, b), agg in aggs.items():
            key = (*g, b)
            row = rows.get(key)
            if row is None:
                rows[key] = ScoreRow(g[0], m, {k: v for k, v in g[2] if v is not None}, b,
                                     Agg(0, 0.0, 0.0, 0 if rule else None), higher)
                row = rows[key]
            row.agg.add(agg)
        if baseline is not None:
            base_by_group: dict[tuple, Agg] = {}
            for (g, _), agg in store.aggregate_groups(group_of, baseline[0], baseline[1], good_rule=rule).items():
                base_by_group.setdefault(g, Agg(0, 0.0, 0.0, 0 if rule else None)).add(agg)
            for key, row in rows.items():
                if key[1] == m:
                    row.baseline = base_by_group.get(key[:3])
        if trend_points and bucket_ms is None:
            step = max(3_600_000, -(-(end - start) // trend_points // 3_600_000) * 3_600_000)
            first = start - start % step
            n_points = -(-(end - first) // step)
            series_trend = store.aggregate_groups(group_of, start, end, bucket_ms=step)
            sums: dict[tuple, dict[int, Agg]] = {}
            for (g, b), agg in series_trend.items():
                per = sums.setdefault(g, {})
                per.setdefault(b, Agg(0, 0.0, 0.0, None)).add(agg)
            for key, row in rows.items():
                if key[1] != m:  # rows of the metrics done before keep their trend
                    continue
                per = sums.get(key[:3], {})
                row.trend = [per[first + i * step].mean if first + i * step in per else None for i in range(n_points)]
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], k[1], [(x or "") for _, x in k[2]], k[3] or 0))]


def known_keys(series: list[Series]) -> set[str]:
    keys = set(PSEUDO_KEYS)
    for s in series:
        keys.update(k for k, _ in s.slice)
    return keys
