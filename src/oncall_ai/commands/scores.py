"""`oncall-ai scores`: how a metric moved, by slice and time."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from oncall_ai.commands import (
    AtOpt,
    FeatureOpt,
    JsonOpt,
    MetricOpt,
    SinceOpt,
    UntilOpt,
    check_names,
    get_context,
)


def register(app: typer.Typer) -> None:
    app.command("scores")(scores)


def scores(
    ctx: typer.Context,
    feature: FeatureOpt = None,
    metric: MetricOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    at: AtOpt = None,
    where: Annotated[list[str] | None, typer.Option("--where", "-w", metavar="KEY=VALUE",
                                                    help="Only events whose slice (or model_id, prompt_version, index_version, judge_id, source) matches; repeatable; KEY=a,b for either.")] = None,
    by: Annotated[list[str] | None, typer.Option("--by", "-b", metavar="KEY[,KEY...]", help="Group rows by these slice keys.")] = None,
    bucket: Annotated[str | None, typer.Option("--bucket", metavar="5m|15m|1h|1d", help="Also group by time bucket (UTC-aligned).")] = None,
    compare: Annotated[str | None, typer.Option("--compare", metavar="DURATION",
                                                help="Add a baseline: the same rows over the DURATION before --since, and the delta.")] = None,
    json_out: JsonOpt = False,
    csv_out: Annotated[bool, typer.Option("--csv", help="Print CSV on stdout.")] = False,
) -> int:
    """Count, mean, share good (by the metric's `good` rule), a 95% interval and a trend per slice.

    The interval is Wilson's for 0/1 metrics and Student's t otherwise; for sampled judge metrics it
    describes the sampled events, which is what the judge saw."""
    from oncall_ai.errors import UsageError
    from oncall_ai.scores import known_keys, parse_bucket, parse_by, parse_where, query_scores
    from oncall_ai.timeutil import parse_duration_ms, resolve_at, resolve_since, resolve_until

    if json_out and csv_out:
        raise UsageError("--json and --csv: choose one")
    c = get_context(ctx)
    cfg = c.config(required=False)
    store = c.store(create=False)
    at_ms = resolve_at(at)
    start = resolve_since(since, at_ms)
    end = resolve_until(until, at_ms)
    if end <= start:
        raise UsageError("the window is empty: --since must be before --until")
    where_d = parse_where(where)
    by_keys = parse_by(by)
    bucket_ms = parse_bucket(bucket)
    baseline = None
    if compare:
        try:
            length = parse_duration_ms(compare)
        except ValueError as e:
            raise UsageError(f"--compare: {e}") from None
        baseline = (start - length, start)
    check_names(cfg, store, feature=feature, metric=metric)
    all_series = store.series(feature, metric)
    if not all_series:
        from oncall_ai.report.console import warn

        known = store.series()
        feats = sorted({s.feature for s in known})
        mets = sorted({s.metric for s in known if feature is None or s.feature == feature})
        what = " ".join(x for x in (f"feature {feature!r}" if feature else "", f"metric {metric!r}" if metric else "") if x)
        if known:
            warn(f"no events for {what or 'this query'}; features in the store: {', '.join(feats)}; metrics: {', '.join(mets) or '-'}")
        else:
            warn(f"the store {store.url} has no events yet; run `oncall-ai ingest FILE` or `oncall-ai demo`")
    unknown = [k for k in [*by_keys, *where_d] if k not in known_keys(all_series)]
    if unknown and all_series:
        from oncall_ai.report.console import warn

        warn(f"no event carries the key(s) {', '.join(unknown)}; known: {', '.join(sorted(known_keys(all_series)))}")
    rows = query_scores(store, cfg, start=start, end=end, feature=feature, metric=metric, where=where_d,
                        by=by_keys, bucket_ms=bucket_ms, baseline=baseline,
                        trend_points=0 if (json_out or csv_out) else 24)
    _emit(rows, json_out, csv_out, by_keys, bucket_ms, cfg, start=start, end=end, at_ms=at_ms)
    return 0


def _row_dict(r, by_keys) -> dict:
    from oncall_ai.timeutil import format_time

    ci = r.ci
    d = {"feature": r.feature, "metric": r.metric, "slice": {k: r.slice[k] for k in by_keys if k in r.slice},
         "bucket": format_time(r.bucket) if r.bucket is not None else None, "count": r.agg.n,
         "mean": r.agg.mean, "good_share": r.agg.good_share, "ci": list(ci) if ci else None}
    if r.baseline is not None:
        d["baseline"] = {"count": r.baseline.n, "mean": r.baseline.mean, "good_share": r.baseline.good_share}
        d["delta"] = (r.agg.mean - r.baseline.mean) if (r.agg.n and r.baseline.n) else None
    return d


def _emit(rows, json_out, csv_out, by_keys, bucket_ms, cfg, *, start=None, end=None, at_ms=None) -> None:
    from oncall_ai.timeutil import format_time

    if json_out:
        import orjson

        out = {"schema": "oncall-ai/scores/v1", "since": format_time(start), "until": format_time(end),
               "at": format_time(at_ms), "rows": [_row_dict(r, by_keys) for r in rows]}
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
        return
    if csv_out:
        import csv

        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["feature", "metric", *[f"slice.{k}" for k in by_keys], "bucket", "count", "mean", "good_share",
                    "ci_low", "ci_high"])
        for r in rows:
            d = _row_dict(r, by_keys)
            ci = d["ci"] or [None, None]
            w.writerow([r.feature, r.metric, *[r.slice.get(k, "") for k in by_keys], d["bucket"] or "", r.agg.n,
                        _num(d["mean"]), _num(d["good_share"]), _num(ci[0]), _num(ci[1])])
        return
    from oncall_ai.report.scores import render_scores

    render_scores(rows, by_keys, bucket_ms, start=start, end=end)


def _num(x) -> str:
    return "" if x is None else f"{x:.6g}"
