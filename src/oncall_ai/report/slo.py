"""Rendering for `slo status` and `slo check`: plain text for people and cron, JSON envelopes
(`oncall-ai/slo-status/v1`, `oncall-ai/slo-check/v1`) for scripts."""

from __future__ import annotations

from oncall_ai.report.sparkline import sparkline
from oncall_ai.timeutil import format_duration, format_time

STATE_WORD = {"ok": "OK", "ticket": "TICKET", "page": "PAGE", "no_data": "UNKNOWN"}


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f}%"


def _burn(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}x" if x < 10 else f"{x:.1f}x"


def _dur(ms: int | None) -> str:
    if ms is None:
        return "-"
    if ms >= 3_600_000:
        return f"{ms / 3_600_000:.1f}h".replace(".0h", "h")
    return f"{round(ms / 60_000)}m"


def one_line(st) -> str:
    """`PAGE name: why` - Nagios-style, short enough for a pager."""
    word = STATE_WORD.get(st.state, st.state.upper())
    period = format_duration(st.period_ms)
    if st.sli is not None:
        tail = f"SLI {_pct(st.sli)} over {period} (objective {st.objective * 100:g}%), budget left {_pct(st.budget_left, 0)}"
    else:  # `slo check` without --budget counts only the alert windows
        tail = f"objective {st.objective * 100:g}% over {period}"
    if st.state in ("page", "ticket"):
        firing = [p for p in st.pairs if p.firing]
        firing = [p for p in firing if p.pair.severity == firing[0].pair.severity][:1]
        why = "; ".join(f"{p.pair.name} {_burn(p.long.burn)} over {format_duration(p.pair.long_ms)} and "
                        f"{_burn(p.short.burn)} over {format_duration(p.pair.short_ms)} > {p.pair.burn:g}x"
                        for p in firing)
        return f"{word} {st.name}: {why}; {tail}"
    if st.state == "no_data":
        return f"{word} {st.name}: {st.reasons[0]}"
    fast_long = min(p.pair.long_ms for p in st.pairs)
    fast = next((w for w in st.windows if w.window_ms == fast_long and w.burn is not None), None)
    burn = f", burn {_burn(fast.burn)} over {format_duration(fast.window_ms)}" if fast else ""
    if fast and fast.bad_lower is not None:
        burn += f" (95% lower bound {_burn(fast.bad_lower / st.budget)}, sampled)"
    return f"{word} {st.name}: {tail}{burn}"


def check_lines(statuses) -> str:
    return "".join(one_line(st) + "\n" for st in statuses)


def _pair_json(p) -> dict:
    return {
        "name": p.pair.name, "severity": p.pair.severity, "long": format_duration(p.pair.long_ms),
        "short": format_duration(p.pair.short_ms), "burn_threshold": p.pair.burn,
        "bad_ratio_threshold": p.threshold, "budget_fraction": p.pair.budget_fraction,
        "long_burn": p.long.burn, "short_burn": p.short.burn, "long_bad_lower": p.long.bad_lower,
        "evaluable": p.evaluable, "firing": p.firing, "reason": p.reason,
    }


def _sampling_json(note) -> dict | None:
    if note is None:
        return None
    return {
        "sample_rate": note.sample_rate, "judged_per_hour": round(note.judged_per_hour, 3),
        "responses_per_hour": None if note.responses_per_hour is None else round(note.responses_per_hour, 3),
        "scenario": {"bad_ratio": round(note.scenario_bad_ratio, 6), "burn": round(note.scenario_burn, 3)},
        "time_to_page_seconds": None if note.time_to_page_ms is None else note.time_to_page_ms // 1000,
        "sample_rate_to_page_within": {"seconds": note.target_ms // 1000,
                                       "sample_rate": note.sample_rate_to_page_within_target},
    }


def slo_json(st, cfg=None) -> dict:
    slo = next((s for s in cfg.slos if s.name == st.name), None) if cfg else None
    return {
        "name": st.name, "feature": st.feature, "metric": st.metric,
        "where": dict(slo.where) if slo else {}, "objective": st.objective,
        "window": format_duration(st.period_ms), "state": st.state, "exit_code": st.exit_code,
        "sli": st.sli, "events": st.n, "bad": st.bad, "error_budget": round(st.budget, 12),
        "budget_left": st.budget_left, "sampled": st.sampled, "min_events": st.min_events,
        "severity": st.severity, "reasons": list(st.reasons),
        "windows": [{"window": format_duration(w.window_ms), "events": w.n, "bad": w.bad,
                     "bad_ratio": w.bad_ratio, "burn": w.burn, "bad_lower": w.bad_lower} for w in st.windows],
        "pairs": [_pair_json(p) for p in st.pairs],
        "sparkline": {"bucket": format_duration(st.spark_bucket_ms) if st.spark_bucket_ms else None,
                      "sli": list(st.spark), "text": sparkline(list(st.spark)) if st.spark else ""},
        "sampling": _sampling_json(st.sampling),
    }


def status_json(statuses, cfg, at_ms: int) -> dict:
    return {"schema": "oncall-ai/slo-status/v1", "at": format_time(at_ms),
            "slos": [slo_json(st, cfg) for st in statuses]}


def check_json(statuses, at_ms: int, code: int, sends) -> dict:
    state = {0: "ok", 1: "ticket", 2: "page"}.get(code, "unknown")
    return {
        "schema": "oncall-ai/slo-check/v1", "at": format_time(at_ms), "state": state, "exit_code": code,
        "slos": [{"name": st.name, "state": st.state, "exit_code": st.exit_code, "line": one_line(st),
                  "sli": st.sli, "budget_left": st.budget_left,
                  "burn": {format_duration(w.window_ms): w.burn for w in st.windows},
                  "firing": [p.pair.name for p in st.pairs if p.firing]} for st in statuses],
        "notifications": [s.as_dict() for s in sends],
    }


def _fit(line: str, width: int | None) -> list[str]:
    """A long line as lines of at most `width` columns, continued 4 columns deeper. Items that
    are separated by two spaces (the burn windows) are never split inside."""
    if width is None or len(line) <= width:
        return [line]
    import textwrap

    indent = line[: len(line) - len(line.lstrip(" "))]
    cont = indent + "    "
    body = line[len(indent):]

    def wrap(text: str) -> list[str]:
        return textwrap.wrap(text, width, subsequent_indent=cont, break_long_words=False, break_on_hyphens=False)

    if "  " in body:
        out, cur = [], indent
        for item in body.split("  "):
            if cur.strip() and len(cur) + 2 + len(item) > width:
                out.append(cur)
                cur = cont + item
            else:
                cur = cur + ("  " if cur.strip() else "") + item
        out.append(cur)
        # an item longer than a line still wraps, at single spaces
        return [w for o in out for w in (wrap(o) if len(o) > width else [o])]
    return wrap(line)


def status_text(statuses, cfg, at_ms: int, width: int | None = None) -> str:
    """The report for people; `width` (a terminal's columns) wraps long lines."""
    out = [f"SLO status at {format_time(at_ms)}", ""]
    for st in statuses:
        slo = next((s for s in cfg.slos if s.name == st.name), None)
        where = (" where " + ", ".join(f"{k}={v}" for k, v in slo.where)) if slo and slo.where else ""
        kind = (f"sampled: windows need >= {st.min_events} events, alerts use the 95% lower bound"
                if st.sampled else f"unsampled, windows need >= {st.min_events} event{'s' if st.min_events != 1 else ''}")
        out.append(f"{STATE_WORD.get(st.state, st.state)}  {st.name}  ({st.feature}/{st.metric}{where}; "
                   f"objective {st.objective * 100:g}% over {format_duration(st.period_ms)}; {kind})")
        out.append(f"  SLI {_pct(st.sli)} of {st.n:,} events ({st.bad:,} bad); error budget "
                   f"{_pct(st.budget, 3)}, left {_pct(st.budget_left, 1)}")
        if st.spark:
            out.append(f"  SLI per {format_duration(st.spark_bucket_ms)}: {sparkline(list(st.spark))}  "
                       f"(low {_pct(min((v for v in st.spark if v is not None), default=None))}, "
                       f"high {_pct(max((v for v in st.spark if v is not None), default=None))})")
        burns = "  ".join(f"{format_duration(w.window_ms)} {_burn(w.burn)}" + (f" (n={w.n})" if st.sampled else "")
                          for w in st.windows)
        out.append(f"  burn: {burns}")
        out.append("  why:")
        shown = set()
        for r in st.reasons:
            out.append(f"    {r}")
            shown.add(r)
        for p in st.pairs:
            if p.reason not in shown:
                out.append(f"    {p.reason}")
        note = st.sampling
        if note is not None:
            rate = (f"sample rate {note.sample_rate:.4g}" if note.sample_rate is not None
                    else "events carry no sample_rate")
            line = f"  sampling: {rate}, {note.judged_per_hour:,.1f} judged events/h"
            if note.responses_per_hour is not None:
                line += f" of ~{note.responses_per_hour:,.0f} responses/h"
            out.append(line)
            ttp = (f"would page in about {_dur(note.time_to_page_ms)}" if note.time_to_page_ms is not None
                   else f"would not page within {_dur(note.horizon_ms)} at this sampling rate")
            out.append(f"    a drop to {_pct(note.scenario_bad_ratio, 1)} bad ({note.scenario_burn:.1f}x burn) {ttp}")
            need = note.sample_rate_to_page_within_target
            if note.responses_per_hour is None:
                out.append("    (record sample_rate on events to see which sampling rate pages within an hour)")
            elif need is None:
                out.append(f"    not even judging every response pages within {_dur(note.target_ms)}")
            else:
                out.append(f"    sampling at >= {need:.3g} would page within {_dur(note.target_ms)}")
        out.append("")
    return "\n".join(part for line in out for part in _fit(line, width))
