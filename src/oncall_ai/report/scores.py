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
    headers: list[tuple[str, str]] = []  # (name, justify)
    if multi:
        headers += [("feature", "left"), ("metric", "left")]
    headers += [(k, "left") for k in by_keys]
    if bucket_ms is not None:
        headers.append(("bucket", "left"))
    headers += [("count", "right"), ("mean", "right"), ("95% CI", "right"), ("good", "right")]
    if has_base:
        headers += [("base", "right"), ("Δ", "right")]
    body = []
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
        body.append(cells)

    def table(trend: int | None) -> Table:
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, title=f"{format_time(start)} .. {format_time(end)}",
                  title_justify="left")
        for name, justify in headers:
            t.add_column(name, justify=justify)
        if trend is not None:
            t.add_column("trend", no_wrap=True)
        for r, cells in zip(rows, body, strict=True):
            t.add_row(*cells, *([sparkline(r.trend[-trend:]) if trend else ""] if trend is not None else []))
        return t

    trend = None
    if bucket_ms is None:
        # The trend gets the width the other columns leave, latest points kept: a sparkline wrapped
        # onto a second line, or cut to "…" at its latest end, no longer reads as a trend.
        points = max((len(r.trend) for r in rows), default=0)
        spare = console.width - console.measure(table(0)).maximum + len("trend")
        trend = min(points, spare) if spare >= len("trend") else None
    console.print(table(trend))


def _fmt(x) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if abs(x) < 100 else f"{x:,.1f}"
