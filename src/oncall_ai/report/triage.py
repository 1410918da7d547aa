"""The triage report for people at 3am: verdict first, then chart, slices, rate vs mix,
ranked hypotheses with evidence, the diff of the top prompt change and the rollback command.
Reads at 80 columns and with NO_COLOR (no meaning is carried by colour alone)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from oncall_ai.analysis.finding import FALSE_PAGE_RUNBOOK, Finding

MAX_DIFF_LINES = 40
CHART_HEIGHT = 7


def render_triage(result, console: Console) -> None:
    findings: list[Finding] = result.findings
    if not findings:
        console.print("Nothing to triage: " + ("; ".join(result.notes) or "no events in the store."))
        return
    window = f"{_clock(result.since)} .. {_clock(result.at)} UTC"
    if len(findings) > 1:
        _summary(findings, console, window)
        detailed = [f for f in findings if f.detection.detected]
        for f in detailed:
            console.print()
            console.rule(Text(f"{f.feature} / {f.metric}", style="bold"), characters="─")
            _finding(f, console, result)
    else:
        _finding(findings[0], console, result)
    if not any(f.detection.detected for f in findings):
        console.print()
        console.print(Text.assemble(("If this paged: ", "bold"), f"{FALSE_PAGE_RUNBOOK} says what to check "
                                    "before closing it (sample size, slices, the judge)."), overflow="fold")
    notes = list(result.notes)
    for f in findings:
        notes.extend(f"{f.feature}/{f.metric}: {n}" for n in f.notes if len(findings) > 1)
        if len(findings) == 1:
            notes.extend(f.notes)
    if notes:
        console.print()
        for n in dict.fromkeys(notes):
            console.print(Text(f"note: {n}", style="dim"), overflow="fold")


# --- summary for a full scan ----------------------------------------------------------------------

def _summary(findings: list[Finding], console: Console, window: str) -> None:
    n_reg = sum(f.detection.detected for f in findings)
    head = f"{n_reg} regression{'s' if n_reg != 1 else ''} in {len(findings)} feature/metric pairs, {window}"
    console.print(Text(head, style="bold red" if n_reg else "bold green"))
    t = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    t.add_column("feature/metric", no_wrap=True, min_width=min(40, max(len(f"{f.feature}/{f.metric}") for f in findings)))
    words = {"regression": "REGRESSION", "recovered": "recovered", "insufficient_data": "too little data",
             "no_regression": "ok", "suspected": "suspected"}
    # On a narrow terminal the top hypothesis (repeated in full below) gives way; the verdict and
    # the onset never do ("REGRESS…" at 80 columns).
    t.add_column("verdict", no_wrap=True,
                 min_width=max(len(words.get(f.detection.verdict, f.detection.verdict)) for f in findings))
    t.add_column("change", justify="right", no_wrap=True, min_width=12)
    t.add_column("since", no_wrap=True, min_width=8)
    t.add_column("top hypothesis", overflow="ellipsis", no_wrap=True, ratio=1)
    for f in findings:
        d = f.detection
        verdict = words.get(d.verdict, d.verdict)
        delta = "" if d.delta is None else f"{_num(d.baseline.mean)}→{_num(d.current.mean)}"
        since = _clock(d.onset) if d.detected and d.onset else ""
        top = f.hypotheses[0] if f.hypotheses else None
        t.add_row(f"{f.feature}/{f.metric}", Text(verdict, style="bold red" if d.detected else ""), delta, since,
                  f"{top.kind} {top.target}" if top else "")
    console.print(t)


# --- one finding --------------------------------------------------------------------------------

def _finding(f: Finding, console: Console, result) -> None:
    console.print(verdict_line(f, result.at), overflow="fold")
    d = f.detection
    suspected = d.verdict == "suspected"
    if d.has_drop or d.verdict == "recovered":
        console.print(_detail_line(f), overflow="fold")
    else:
        console.print(Text(d.reason, style="dim"), overflow="fold")
    if f.chart:
        console.print()
        for line in chart_lines(f, width=max(20, min(console.width, 100) - 10)):
            console.print(line, overflow="crop", no_wrap=True)
    if not d.has_drop:
        return
    _slices(f, console)
    _decomposition(f, console)
    _hypotheses(f, console)
    _diff(f, console)
    top = f.hypotheses[0] if f.hypotheses else None
    if top is not None:
        console.print()
        if top.rollback and suspected:
            console.print(Text("Not confirmed: re-run triage later before rolling back. If it is confirmed, "
                               "the rollback of the top suspect would be:", style="bold"), overflow="fold")
            _command(console, "  ", top.rollback)
        elif top.rollback:
            console.print(Text("Roll back (top hypothesis):", style="bold"))
            _command(console, "  ", top.rollback, style="bold")
        else:
            console.print(Text("No rollback command for the top hypothesis; see "
                               f"{top.runbook}", style="bold"), overflow="fold")
        if top.next_check:
            _command(console, "Confirm: ", top.next_check)


def verdict_line(f: Finding, at: int) -> Text:
    d = f.detection
    name = f"{f.feature}/{f.metric}"
    if d.verdict == "insufficient_data":
        return Text.assemble(("TOO LITTLE DATA ", "bold yellow"), (f"{name}: ", "bold"),
                             f"{int(d.current.n)} events in the window; about {d.needed_n} needed for a verdict")
    base, cur = d.baseline.mean, d.current.mean
    move = f"{_num(base)} → {_num(cur)} ({_signed(d.delta)}{_pct(d.delta, base)})" if d.delta is not None else ""
    if d.verdict == "recovered":
        return Text.assemble(("RECOVERED ", "bold yellow"), (f"{name} ", "bold"),
                             f"dropped at {_short_time(d.onset)}, back to baseline since "
                             f"{_short_time(d.recovered_at)}")
    if d.verdict == "suspected":
        return Text.assemble(("SUSPECTED, NOT CONFIRMED ", "bold yellow"), (f"{name} ", "bold"), move,
                             f" since {_short_time(d.onset)}, not beyond noise yet")
    if not d.detected:
        ci = d.test.ci() if d.test is not None else None
        ci_txt = f", 95% CI {_signed(ci[0])}..{_signed(ci[1])}" if ci else ""
        return Text.assemble(("NO REGRESSION ", "bold green"), (f"{name} ", "bold"),
                             f"{move}{ci_txt}".strip())
    sure = _sureness(d.p_value)
    ago = _ago(at - d.onset) if d.onset else ""
    return Text.assemble(("REGRESSION ", "bold red"), (f"{name} ", "bold"), move,
                         f" since {_short_time(d.onset)} ({ago} ago), {sure}")


def _detail_line(f: Finding) -> Text:
    d = f.detection
    parts = [f"p{_p(d.p_value)} (corrected for every onset, slice and change time tested)",
             f"{int(d.baseline.n):,} events before, {int(d.current.n):,} after"]
    if d.test is not None:
        lo, hi = d.test.ci()
        parts.append(f"95% CI of the change {_signed(lo)}..{_signed(hi)}")
    if d.onset_range:
        parts.append(f"onset between {_clock(d.onset_range[0])} and {_clock(d.onset_range[1])}")
    if d.support:
        parts.append("the step at the change's time, tested on " +
                     ", ".join(f"{m if g == f.feature else g + '/' + m} (z {z:.1f})" for g, m, z in d.support)
                     + " too, counts as evidence")
    if d.verdict == "suspected":
        parts.append(f"a regression needs p < {d.alpha:g}" +
                     (f"; about {d.needed_more:,} more events after the onset would settle it"
                      if d.needed_more else ""))
    return Text("; ".join(parts), style="dim")


def _sureness(p: float | None) -> str:
    if p is None:
        return "certainty unknown"
    if p < 1e-6:
        return "almost certainly real"
    if p < 1e-4:
        return "very likely real"
    return "likely real"


# --- chart ---------------------------------------------------------------------------------------

def chart_lines(f: Finding, width: int = 64) -> list[Text]:
    """A small line chart of the metric per bucket, the onset (^) and changes (1-9) marked below."""
    pts = f.chart
    if not pts:
        return []
    cols = min(width, len(pts))
    per = len(pts) / cols
    values: list[float | None] = []
    spans = []
    for c in range(cols):
        group = pts[int(c * per): max(int((c + 1) * per), int(c * per) + 1)]
        n = sum(p.n for p in group)
        s = sum(p.mean * p.n for p in group if p.mean is not None)
        values.append(s / n if n else None)
        spans.append((group[0].start, group[-1].end))
    present = [v for v in values if v is not None]
    if not present:
        return [Text("(no events in the window)", style="dim")]
    lo, hi = min(present), max(present)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    h = CHART_HEIGHT
    grid = [[" "] * cols for _ in range(h)]
    for c, v in enumerate(values):
        if v is None:
            continue
        r = int(round((hi - v) / (hi - lo) * (h - 1)))
        grid[r][c] = "•"
    lines = []
    label_w = max(len(_num(hi)), len(_num(lo)))
    for r in range(h):
        label = _num(hi) if r == 0 else _num(lo) if r == h - 1 else ""
        lines.append(Text(f"{label:>{label_w}} │" + "".join(grid[r])))
    marks = [" "] * cols
    legend = []

    def col_of(ts: int) -> int | None:
        for c, (s, e) in enumerate(spans):
            if s <= ts < e:
                return c
        return None

    changes = [c for c in f.changes_in_window if col_of(c.at) is not None][-9:]
    for i, ch in enumerate(changes, 1):
        c = col_of(ch.at)
        marks[c] = str(i)
        legend.append(f"{i} {_clock(ch.at)} {ch.kind} {_short_target(ch)}")
    if f.detection.detected and f.detection.onset is not None:
        c = col_of(f.detection.onset)
        if c is not None:
            marks[c] = "^"
    lines.append(Text(" " * label_w + " └" + "─" * cols))
    lines.append(Text(" " * (label_w + 2) + "".join(marks)))
    axis = f"{_clock(spans[0][0])}"
    end = f"{_clock(spans[-1][1])}"
    pad = max(1, cols - len(axis) - len(end))
    lines.append(Text(" " * (label_w + 2) + axis + " " * pad + end, style="dim"))
    key = "^ onset" if f.detection.detected else ""
    if legend or key:
        lines.append(Text(" " * (label_w + 2) + "   ".join(x for x in [key] if x), style="dim"))
        for entry in legend:
            lines.append(Text(" " * (label_w + 2) + entry[: max(10, width)], style="dim"))
    return lines


def _short_target(ch) -> str:
    sid = ch.id[:8] if len(ch.id) >= 20 else ch.id
    tgt = ch.target or ""
    if ch.provider_side:
        tgt = f"{ch.target} -> {ch.to_value} (provider side)"
    return f"{tgt} ({sid})" if tgt else sid


# --- sections --------------------------------------------------------------------------------------

def _slices(f: Finding, console: Console) -> None:
    loc = f.localization
    console.print()
    if loc is None or not loc.slices:
        console.print(Text("Slices: no single slice or pair stands out; the drop is spread across traffic."))
        return
    where = ("concentrated in " + ", ".join(f"{k}={v}" for k, v in loc.scope.items())) if loc.scope \
        else "spread over several slices"
    console.print(Text.assemble(("Slices", "bold"), f" (drop {where}; Benjamini-Hochberg q<0.05):"))
    t = Table(box=None, pad_edge=False, header_style="bold")
    t.add_column("slice", overflow="fold", max_width=30)
    t.add_column("before", justify="right")
    t.add_column("after", justify="right")
    t.add_column("change", justify="right")
    t.add_column("n after", justify="right")
    t.add_column("share", justify="right")
    for s in loc.slices:
        t.add_row(s.label, _num(s.baseline), _num(s.current), _signed(s.delta), f"{s.n:,}",
                  f"{s.share_of_drop:.0%}" if s.share_of_drop is not None else "")
    console.print(t)


def _decomposition(f: Finding, console: Console) -> None:
    d = f.decomposition
    if d is None:
        return
    sign = 1 if f.higher_is_better else -1
    console.print()
    console.print(Text("Rate vs mix", style="bold"), Text("(Kitagawa decomposition of the change):"))
    console.print(f"  quality within slices   {_signed(d.rate):>8}  ±{1.96 * d.rate_se:.3g}")
    console.print(f"  traffic mix             {_signed(d.mix):>8}  ±{1.96 * d.mix_se:.3g}")
    if d.is_mostly_mix(sign) and d.grew:
        g = d.grew
        console.print(Text(f"  mostly a traffic-mix shift: {g.target} grew from {g.share_before:.0%} to "
                           f"{g.share_after:.0%} of traffic"), overflow="fold")
    elif -sign * d.rate > 0:
        console.print(Text("  mostly a real quality drop inside slices"))


def _hypotheses(f: Finding, console: Console) -> None:
    console.print()
    if not f.hypotheses:
        console.print(Text("Hypotheses: no change in the window can explain it; nothing to roll back yet.",
                           style="bold"), overflow="fold")
        return
    if f.detection.verdict == "suspected":
        console.print(Text("Suspects", style="bold"),
                      Text("(NOT CONFIRMED; most likely first; score = share of belief):"))
    else:
        console.print(Text("Hypotheses", style="bold"), Text("(most likely first; score = share of belief):"))
    for h in f.hypotheses[:5]:
        console.print(Text.assemble(f"{h.rank}. ", (h.kind, "bold"), f" {h.target}",
                                    f"  score {h.score:.2f}"), overflow="fold")
        ch = h.change
        if ch is not None:
            who = f" by {ch.by}" if ch.by else ""
            summary = f": {ch.summary}" if ch.summary else ""
            _hang(console, "   change ", f"{ch.id}{who} at {_short_time(ch.at)}{summary}")
        for e in h.evidence:
            _hang(console, "   - ", e)
        if h.rollback:
            _command(console, "   rollback: ", h.rollback)
        if h.next_check:
            _command(console, "   confirm:  ", h.next_check, style="dim")
        console.print(Text(f"   runbook:  {h.runbook}", style="dim"))


def _hang(console: Console, prefix: str, text: str, style: str = "") -> None:
    """`prefix` + text, wrapped with its later lines indented under the text (not at column 0)."""
    import textwrap

    lines = textwrap.wrap(text, width=max(console.width, len(prefix) + 20), initial_indent=prefix,
                          subsequent_indent=" " * len(prefix), break_on_hyphens=False) or [prefix.rstrip()]
    for line in lines:
        console.print(Text(line, style=style), overflow="fold")


def _command(console: Console, prefix: str, command: str, style: str = "") -> None:
    """A command someone will paste at 3am: too long for one line, it is broken between words with
    ` \\` continuations (aligned under its start), so the pasted text is still one command."""
    width = max(console.width - len(prefix), 20)
    lines: list[str] = []
    for word in command.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) + 2 <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    for i, line in enumerate(lines):
        lead = prefix if i == 0 else " " * len(prefix)
        tail = " \\" if i < len(lines) - 1 else ""
        console.print(Text(lead + line + tail, style=style), overflow="fold")


def _diff(f: Finding, console: Console) -> None:
    top_prompt = next((h for h in f.hypotheses[:3] if h.kind == "prompt_change" and h.change is not None
                       and getattr(h.change, "diff", None)), None)
    if top_prompt is None:
        return
    console.print()
    console.print(Text.assemble(("Diff", "bold"), f" of {top_prompt.change.id[:12]} ({top_prompt.target}):"))
    lines = top_prompt.change.diff.splitlines()
    for line in lines[:MAX_DIFF_LINES]:
        style = "green" if line.startswith("+") and not line.startswith("+++") else \
            "red" if line.startswith("-") and not line.startswith("---") else "cyan" if line.startswith("@@") else ""
        console.print(Text(line, style=style), overflow="fold")
    if len(lines) > MAX_DIFF_LINES:
        console.print(Text(f"... {len(lines) - MAX_DIFF_LINES} more lines: oncall-ai changes show "
                           f"{top_prompt.change.id}", style="dim"), overflow="fold")


# --- formatting --------------------------------------------------------------------------------------

def _num(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def _signed(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    if abs(x) >= 1:
        return f"{x:+.2f}"
    return f"{x:+.3f}"


def _pct(delta: float | None, base: float | None) -> str:
    if delta is None or not base:
        return ""
    return f", {delta / abs(base):+.1%}"


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    if p < 1e-4:
        return "<0.0001"
    return f"={p:.2g}"


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _short_time(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%b %d %H:%M UTC")


def _clock(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%d %H:%M")


def _ago(ms: int) -> str:
    m = ms // 60_000
    if m < 60:
        return f"{m} min"
    if m < 48 * 60:
        return f"{m // 60}h{m % 60:02d}m"
    return f"{m // 1440}d{(m % 1440) // 60}h"
