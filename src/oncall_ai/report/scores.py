"""The `scores` table for people."""

from __future__ import annotations

from rich import box
from rich.table import Table

from oncall_ai.report.console import stdout_console
from oncall_ai.report.sparkline import sparkline
from oncall_ai.timeutil import format_time


def render_scores(rows, by_keys, bucket_ms, *, start, end) -> None:
    console = stdout_console()
    if not rows:
        console.print(f"no events between {format_time(start)} and {format_time(end)}")
        return
    multi = len({(r.feature, r.metric) for r in rows}) > 1
    has_base = any(r.baseline is not None for r in rows)
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"{format_time(start)} .. {format_time(end)}",
              title_justify="left")
    if multi:
        t.add_column("feature")
        t.add_column("metric")
    for k in by_keys:
        t.add_column(k)
    if bucket_ms is not None:
        t.add_column("bucket")
    t.add_column("count", justify="right")
    t.add_column("mean", justify="right")
    t.add_column("95% CI", justify="right")
    t.add_column("good", justify="right")
    if has_base:
        t.add_column("base", justify="right")
        t.add_column("Δ", justify="right")
    if bucket_ms is None:
        t.add_column("trend")
    for r in rows:
        ci = r.ci
        cells = []
        if multi:
            cells += [r.feature, r.metric]
        cells += [r.slice.get(k, "-") for k in by_keys]
        if bucket_ms is not None:
            cells.append(format_time(r.bucket) or "")
        cells += [f"{r.agg.n:,}", _fmt(r.agg.mean), f"{_fmt(ci[0])}..{_fmt(ci[1])}" if ci else "-",
                  f"{r.agg.good_share:.1%}" if r.agg.good_share is not None else "-"]
        if has_base:
            b = r.baseline
            cells.append(_fmt(b.mean) if b and b.n else "-")
            delta = (r.agg.mean - b.mean) if (b and b.n and r.agg.n) else None
            worse = delta is not None and ((delta < 0) == r.higher_is_better) and delta != 0
            cells.append(("[red]" if worse else "") + (f"{delta:+.3g}" if delta is not None else "-") + ("[/red]" if worse else ""))
        if bucket_ms is None:
            cells.append(sparkline(r.trend))
        t.add_row(*cells)
    console.print(t)


def _fmt(x) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if abs(x) < 100 else f"{x:,.1f}"
