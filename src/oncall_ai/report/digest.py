"""Rendering the digest (`oncall-ai/digest/v1`, built by oncall_ai.digest): plain text for the
terminal, Markdown for the wiki (stable: the same document gives the same bytes, no clock), and
a short Slack mrkdwn summary. Renderers are pure functions of the document."""

from __future__ import annotations

TITLES = {
    "prompt_changes": "Prompt diffs that landed",
    "model_migrations": "Model migrations in flight",
    "borderline": "Eval slices flagged borderline",
    "judge": "Judge calibration and drift",
    "slos": "SLO budget status",
    "incidents": "Open silent-regression incidents and pending eval improvements",
    "rollbacks": "Rollbacks done",
    "other_changes": "Other changes (indexes, config, traffic)",
}
ORDER = ("prompt_changes", "model_migrations", "borderline", "judge", "slos", "incidents", "rollbacks",
         "other_changes")


def _pct(x, nd: int = 2) -> str:
    return "-" if x is None else f"{x * 100:.{nd}f}%"


def _g(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def _signed(x) -> str:
    return "-" if x is None else f"{x:+.3g}"


def _slice(s: dict | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((s or {}).items())) or "all traffic"


def _code(text: str | None, md: bool) -> str:
    if text is None:
        return "-"
    return f"`{text}`" if md else text


def _esc(text: str | None, md: bool) -> str:
    if text is None:
        return ""
    text = " ".join(str(text).split())
    return text.replace("|", "\\|") if md else text


# --- one line per item ---------------------------------------------------------------------------

def _traffic(t: dict | None) -> str:
    if not t:
        return "not seen in traffic"
    share = t.get("share_new")
    if t["state"] == "complete":
        return "complete" + (f" ({share * 100:.0f}% of traffic on the new model)" if share is not None else "")
    if t["state"] == "canary":
        ramp = " ".join(f"{s * 100:.0f}%" for _, s in (t.get("ramp") or [])[-6:])
        return f"canary at {share * 100:.0f}% of traffic" + (f" (hourly: {ramp})" if ramp else "")
    if t["state"] == "rolled back":
        return "rolled back (no traffic on the new model)"
    return "seen in traffic"


def prompt_lines(it: dict, md: bool) -> list[str]:
    d = it["diff"]
    stat = f"+{d['added']} -{d['removed']} in {d['files']} file(s)"
    lines = [f"{_code(it['change_id'], md)} {it['at']} by {_esc(it['by'] or '?', md)}: {_esc(it['summary'], md)} "
             f"({', '.join(it['paths']) or it['target']}; {stat})"]
    for ex in it.get("diff_excerpt") or []:
        lines.append(f"    {_code(ex, md)}" if md else f"      {ex}")
    return lines


def model_line(it: dict, md: bool) -> str:
    what = ("provider-side model change" if it["migration"] == "provider-side" else f"pin {it['target']}")
    move = f"{it.get('from') or '(none)'} -> {it.get('to') or '(none)'}"
    flight = "IN FLIGHT" if it["in_flight"] else "done"
    return (f"{_code(it['change_id'], md)} {it['at']} {what}: {move} for {', '.join(it['features'])}"
            f"{' by ' + _esc(it['by'], md) if it.get('by') else ''}; traffic: {_traffic(it['traffic'])} [{flight}]")


def borderline_line(it: dict, md: bool) -> str:
    if it["type"] == "near_slo":
        over = (f"vs objective {_pct(it['objective'], 1)} over {it['window']}" if it["window"] == it["slo_window"]
                else f"over {it['window']} vs objective {_pct(it['objective'], 1)} over {it['slo_window']}")
        return (f"SLO {it['slo']} ({it['feature']}/{it['metric']}), slice {_slice(it['slice'])}: SLI "
                f"{_pct(it['sli'])} {over}, burn {it['burn']:.2f}x "
                f"(95% lower bound {it['burn_lower']:.2f}x, {it['events']} events) [{it['state']}]")
    head = {"significant": "significant drop", "possible": "possible drop",
            "recovered": "drop, recovered"}.get(it["strength"], it["strength"])
    if it["signal"] == "traffic mix":
        head += " (traffic mix)"
    text = (f"{it['feature']}/{it['metric']} in {_slice(it['slice'])}: {head}, {_g(it['baseline'])} -> "
            f"{_g(it['current'])} ({_signed(it['delta'])}) since {it['onset']}, p={_g(it['p_value'])}, "
            f"{it['events_after']} events after")
    if it.get("recovered_at"):
        text += f", back since {it['recovered_at']}"
    near = it.get("changes_near_onset") or []
    if near:
        text += "; changes before the onset: " + ", ".join(f"{_code(c['change_id'], md)} ({c['kind']} {c['target']})"
                                                          for c in near)
    return text


NOTABLE_RUN_STATES = ("drifted", "unclear", "insufficient")


def judge_lines(sec: dict, md: bool) -> list[str]:
    """Per metric: the drift verdict and the runs of the window in one line; then only the runs
    worth a look (drifted, unclear, too small, or a different judge than the run before)."""
    out = []
    runs_by_metric: dict[str, list[dict]] = {}
    for r in sec["items"]:
        runs_by_metric.setdefault(r["metric"] or "?", []).append(r)
    drift = {d["metric"]: d for d in sec.get("drift") or []}
    for metric in sorted(set(drift) | set(runs_by_metric)):
        d = drift.get(metric)
        runs = runs_by_metric.get(metric, [])
        if d is None:
            head = f"{metric}: no verdict"
        elif d["drifted"]:
            head = (f"{metric}: DRIFTED since run {_code(d['since_run'], md)} ({d.get('direction') or 'shift'} "
                    f"{_signed(d['shift'])} vs baseline run {_code(d['baseline_run'], md)})")
        else:
            head = f"{metric}: no drift over {d['runs']} run(s)" + (
                f" (latest shift {_signed(d['shift'])} vs the baseline run)" if d.get("shift") is not None else "")
        if runs:
            states: dict[str, int] = {}
            for r in runs:
                states[r.get("state") or "?"] = states.get(r.get("state") or "?", 0) + 1
            last = runs[-1]
            head += (f"; {len(runs)} calibration run(s) in the window ("
                     + ", ".join(f"{n} {k}" for k, n in sorted(states.items())) + f"), latest {_code(last['run_id'], md)} "
                     f"{last['at']} judge {_code(last['judge_id'], md)}, bias {_signed(last.get('bias'))}")
        else:
            head += "; no calibration run in the window"
        out.append(head)
        for r in runs:
            if r.get("state") in NOTABLE_RUN_STATES or r.get("judge_changed"):
                out.append(f"run {_code(r['run_id'], md)} {r['at']} {metric} judge {_code(r['judge_id'], md)}: "
                           f"{r['items']} items, bias {_signed(r.get('bias'))}, {r.get('state')}"
                           + (" (judge changed)" if r.get("judge_changed") else ""))
    for c in sec.get("changes") or []:
        out.append(f"judge change {_code(c['change_id'], md)} {c['at']} {c['target']}: {_esc(c['summary'], md)}")
    return out


def incident_line(it: dict, md: bool) -> list[str]:
    state = it["state"] + (f" ({it['resolution']})" if it.get("resolution") else "")
    change = (("cause " if it["cause_confirmed"] else "suspect ") + _code(it["change_id"], md)) if it.get("change_id") \
        else "no change identified"
    lines = [f"{it['incident']} [{state}, {it['severity']}] {_esc(it['title'], md)}; {change}; "
             f"{it['eval_cases_exported']} eval case(s) exported"]
    for p in it["pending"]:
        lines.append(f"    pending: {p}" if not md else f"    - [ ] {p}")
    return lines


def rollback_line(it: dict, md: bool) -> str:
    undone = ", ".join(_code(u, md) for u in it["undoes"]) or (f"to {it['to']}" if it.get("to") else "")
    return (f"{it['at']} {it['kind']} {it['target']}: commit {_code(it['commit'], md)} on {it['branch']}"
            + (f" undoing {undone}" if undone else "") + (f" for {it['incident']}" if it.get("incident") else "")
            + (f" by {_esc(it['by'], md)}" if it.get("by") else "") + (" (pushed)" if it.get("pushed") else " (not pushed)"))


def other_line(it: dict, md: bool) -> str:
    move = f" {it['from']} -> {it['to']}" if it.get("from") or it.get("to") else ""
    return (f"{_code(it['change_id'], md)} {it['at']} {it['kind']} {it['target']}{move}: {_esc(it['summary'], md)}"
            + (f" (by {_esc(it['by'], md)})" if it.get("by") else ""))


def _by_feature(items: list[dict]) -> list[tuple[str, list[dict]]]:
    groups: dict[str, list[dict]] = {}
    for it in items:
        for f in it["features"] or ["(no feature)"]:
            groups.setdefault(f, []).append(it)
    return sorted(groups.items())


def _section_lines(name: str, sec: dict, md: bool) -> list[str]:
    items = sec.get("items") or []
    bullet = "- " if md else "  - "
    out: list[str] = []
    if sec.get("status") == "error" or (sec.get("status") == "not_configured" and not items):
        return [f"{bullet}{sec.get('note') or sec['status']}"]
    if name == "slos":
        if md:
            out += ["| SLO | feature/metric | state | SLI | objective | budget left | events | alerts |",
                    "| --- | --- | --- | --- | --- | --- | --- | --- |"]
            for s in items:
                out.append(f"| {s['slo']} | {s['feature']}/{s['metric']} | {s['state'].upper()} | {_pct(s['sli'])} | "
                           f"{_pct(s['objective'], 1)} over {s['window']} | {_pct(s['budget_left'], 0)} | {s['events']} | "
                           f"{s['alerts_sent']} |")
        else:
            out += [bullet + slo_line(s, md) for s in items]
    elif name == "prompt_changes":
        for feature, group in _by_feature(items):
            out.append(f"### {feature}" if md else f"  {feature}:")
            for it in group:
                lines = prompt_lines(it, md)
                out.append(("- " if md else "    - ") + lines[0])
                out += lines[1:]
            if md:
                out.append("")
        if md and out and out[-1] == "":
            out.pop()
    elif name == "judge":
        out += [bullet + line for line in judge_lines(sec, md)]
    elif name == "incidents":
        for it in items:
            lines = incident_line(it, md)
            out.append(bullet + lines[0])
            out += lines[1:]
    else:
        fn = {"model_migrations": model_line, "borderline": borderline_line, "rollbacks": rollback_line,
              "other_changes": other_line}[name]
        out += [bullet + fn(it, md) for it in items]
    if not out:
        out.append(f"{bullet}none")
    if sec.get("note"):
        out.append(f"{bullet}note: {sec['note']}" if not md else f"\n_Note: {_esc(sec['note'], md)}_")
    return out


def _count(name: str, sec: dict) -> str:
    if sec.get("status") == "error" or (sec.get("status") != "ok" and not sec.get("items")):
        return ""
    items = sec.get("items") or []
    if name == "model_migrations":
        flying = sum(1 for it in items if it["in_flight"])
        return f" ({len(items)}, {flying} in flight)"
    if name == "incidents":
        active = sum(1 for it in items if it["state"] != "resolved")
        return f" ({active} open, {len(items) - active} resolved)"
    return f" ({len(items)})"


def markdown(doc: dict) -> str:
    out = [f"# {doc['title']}: {doc['since']} to {doc['at']} (UTC)", ""]
    for name in ORDER:
        sec = doc[name]
        out.append(f"## {TITLES[name]}{_count(name, sec)}")
        out.append("")
        out += _section_lines(name, sec, md=True)
        out.append("")
    if doc.get("notes"):
        out.append("## Notes")
        out.append("")
        out += [f"- {_esc(n, True)}" for n in doc["notes"]]
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def text(doc: dict) -> str:
    out = [f"{doc['title']}: {doc['since']} .. {doc['at']} (last {doc['window']})", ""]
    for name in ORDER:
        sec = doc[name]
        head = f"{TITLES[name]}{_count(name, sec)}"
        out.append(head)
        out.append("-" * len(head))
        out += _section_lines(name, sec, md=False)
        out.append("")
    for n in doc.get("notes") or []:
        out.append(f"note: {n}")
    return "\n".join(out).rstrip("\n") + "\n"


# --- Slack ---------------------------------------------------------------------------------------

def slo_line(s: dict, md: bool) -> str:
    return (f"{s['state'].upper()} {s['slo']}: SLI {_pct(s['sli'])} (objective {_pct(s['objective'], 1)} over "
            f"{s['window']}), budget left {_pct(s['budget_left'], 0)}, {s['events']} events, "
            f"{s['alerts_sent']} alert(s) sent")


def item_lines(name: str, sec: dict, md: bool) -> list[str]:
    """One line per item (the first line of each: what a chat summary shows); for the judge, one
    line per metric and the runs worth a look."""
    items = sec.get("items") or []
    if name == "judge":
        return judge_lines(sec, md)
    if name == "prompt_changes":
        return [f"{', '.join(it['features'])}: " + prompt_lines(it, md)[0] for it in items]
    if name == "incidents":
        return [incident_line(it, md)[0] for it in items]
    fn = {"slos": slo_line, "model_migrations": model_line, "borderline": borderline_line,
          "rollbacks": rollback_line, "other_changes": other_line}[name]
    return [fn(it, md) for it in items]


def slack_text(doc: dict, max_items: int = 10) -> str:
    """Slack mrkdwn: bold section titles, one bullet per item (the first `max_items`), change ids
    in code spans. Slack has no tables or headings."""
    out = [f"*{doc['title']}: {doc['since']} to {doc['at']}*"]
    for name in ORDER:
        sec = doc[name]
        out.append("")
        out.append(f"*{TITLES[name]}{_count(name, sec)}*")
        if sec.get("status") != "ok" and not sec.get("items"):
            out.append(f"• {sec.get('note') or sec['status']}")
            continue
        lines = item_lines(name, sec, md=True)
        out += ["• " + ln for ln in lines[:max_items]]
        if len(lines) > max_items:
            out.append(f"• ... and {len(lines) - max_items} more (`oncall-ai digest` has them all)")
        if not lines:
            out.append("• none")
    return "\n".join(out) + "\n"


def slack_payload(doc: dict, max_items: int = 10) -> dict:
    body = slack_text(doc, max_items)
    # Slack: a section block holds at most 3000 characters; split on blank lines between sections.
    blocks, cur = [], ""
    for part in body.split("\n\n"):
        if cur and len(cur) + len(part) + 2 > 2900:
            blocks.append(cur)
            cur = ""
        cur = f"{cur}\n\n{part}" if cur else part
    if cur:
        blocks.append(cur)
    return {"text": f"{doc['title']}: {doc['since']} to {doc['at']}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": b[:3000]}} for b in blocks[:49]]}
