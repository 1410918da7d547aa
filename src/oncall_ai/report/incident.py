"""Rendering incidents: the list, one incident with its timeline, and the postmortem draft
(Markdown in the usual sections: summary, impact, detection, root cause and trigger, resolution,
timeline, action items typed prevent/mitigate/process, lessons learned)."""

from __future__ import annotations

from oncall_ai.timeutil import format_time

LIST_SCHEMA = "oncall-ai/incidents/v1"
SHOW_SCHEMA = "oncall-ai/incident/v1"


def _num(x, nd: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}g}" if abs(x) < 1 else f"{x:.{nd + 1}g}"
    return str(x)


def _signed(x) -> str:
    return "-" if x is None else f"{x:+.3g}"


def _pct(x) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _scope(scope: dict | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted((scope or {}).items())) or "all traffic"


def _short(change_id: str | None) -> str:
    return "-" if not change_id else change_id


# --- list and show -------------------------------------------------------------------------------

def list_json(bodies: list[dict]) -> dict:
    return {"schema": LIST_SCHEMA, "incidents": [_summary_json(b) for b in bodies]}


def _summary_json(b: dict) -> dict:
    return {k: b.get(k) for k in ("id", "title", "severity", "state", "feature", "metric", "scope", "onset",
                                  "opened_at", "acked_at", "resolved_at", "resolution")} | {
        "suspect_change": (b.get("suspect") or {}).get("change_id"), "cause": (b.get("cause") or {}).get("id")}


def list_text(bodies: list[dict]) -> str:
    if not bodies:
        return "no incidents\n"
    from tabulate import tabulate

    rows = [[b["id"], b["state"], b["severity"], f"{b['feature']}/{b['metric']}", b["opened_at"],
             (b.get("cause") or {}).get("id", "")[:12] or ((b.get("suspect") or {}).get("change_id") or "")[:12],
             b["title"][:60]] for b in bodies]
    return tabulate(rows, headers=["id", "state", "sev", "feature/metric", "opened", "change", "title"]) + "\n"


def show_json(b: dict, tl: list[dict], imp: dict | None, det: dict, cases: int) -> dict:
    return {"schema": SHOW_SCHEMA, "incident": b, "timeline": tl, "impact": imp, "detection": det,
            "eval_cases_exported": cases}


def show_text(b: dict, tl: list[dict], imp: dict | None, det: dict, cases: int) -> str:
    lines = [f"{b['id']} [{b['state']}, {b['severity']}] {b['title']}",
             f"  feature/metric  {b['feature']}/{b['metric']} in {_scope(b.get('scope'))}",
             f"  onset           {b.get('onset') or '-'}",
             f"  opened          {b['opened_at']} by {b.get('opened_by') or '?'}"]
    if b.get("acked_at"):
        lines.append(f"  acknowledged    {b['acked_at']}")
    if b.get("resolved_at"):
        lines.append(f"  resolved        {b['resolved_at']} ({b.get('resolution')})" + (f": {b['note']}" if b.get("note") else ""))
    s = b.get("suspect")
    if s:
        lines.append(f"  suspect         {s.get('kind')} {s.get('target')} change {_short(s.get('change_id'))} "
                     f"(score {s.get('score')})")
        if s.get("rollback"):
            lines.append(f"  rollback        {s['rollback']}")
        if s.get("runbook"):
            lines.append(f"  runbook         {s['runbook']}")
    c = b.get("cause")
    if c:
        lines.append(f"  cause           {c.get('kind')} {c.get('target')} change {c['id']}")
    if imp:
        lines.append(f"  impact          {imp['events']} events over {imp['duration']} ({imp['start']} .. {imp['end']}, "
                     f"{imp['end_reason']}); mean {_num(imp['mean_before'])} -> {_num(imp['mean_during'])} "
                     f"({_signed(imp['mean_drop'])})")
    if det.get("time_to_detect"):
        lines.append(f"  detection       {det['time_to_detect']} from onset to {det['detected_by']}")
    lines.append(f"  eval cases      {cases} exported" + ("" if cases else
                 f" (next: oncall-ai incident export-cases {b['id']})"))
    lines.append("")
    lines.append("Timeline (UTC):")
    for e in tl:
        cid = f" [{e['change_id']}]" if e.get("change_id") and e["change_id"] not in e["text"] else ""
        lines.append(f"  {e['at']}  {e['what']:<8} {e['text']}{cid}")
    return "\n".join(lines) + "\n"


# --- postmortem ----------------------------------------------------------------------------------

def postmortem_markdown(b: dict, tl: list[dict], imp: dict | None, det: dict, cases: int,
                        rollbacks: list[dict]) -> str:
    """A draft for people to finish: every number is measured from the store; the prose sections
    that need judgement are left as prompts."""
    finding = (b.get("triage") or {}).get("finding") or {}
    reg = finding.get("regression") or {}
    cause = b.get("cause")
    suspect = b.get("suspect") or {}
    scope = _scope(b.get("scope"))
    out: list[str] = []
    w = out.append
    w(f"# Postmortem (draft): {b['id']} {b['title']}")
    w("")
    status = "resolved" if b["state"] == "resolved" else f"{b['state']} (not resolved yet)"
    w(f"- Status: draft; incident {status}" + (f", resolution: {b['resolution']}" if b.get("resolution") else ""))
    w(f"- Severity: {b['severity']}")
    w(f"- Feature / metric: {b['feature']} / {b['metric']} ({scope})")
    w(f"- Opened: {b['opened_at']} by {b.get('opened_by') or '?'}"
      + (f"; resolved: {b['resolved_at']}" if b.get("resolved_at") else ""))
    w("")
    w("## Summary")
    w("")
    what = (f"{b['feature']}/{b['metric']} dropped from {_num(reg.get('baseline'))} to {_num(reg.get('current'))} "
            f"in {scope}" if reg.get("detected") else f"{b['feature']}/{b['metric']} was reported as degraded")
    if b.get("onset"):
        what += f" from {b['onset']}"
    sent = [what + "."]
    if cause:
        sent.append(f"The cause was the {cause.get('kind')} change {cause['id']} ({cause.get('target')}: "
                    f"{cause.get('summary') or ''}) by {cause.get('by') or '?'}.")
    elif suspect.get("change_id"):
        sent.append(f"Triage suspected the {suspect.get('kind')} change {suspect['change_id']} "
                    f"({suspect.get('target')}); no cause was confirmed.")
    if rollbacks:
        r = rollbacks[0]
        sent.append(f"It was mitigated by {r['kind']} at {format_time(r['ts'])} (commit {r.get('after')}).")
    elif b.get("resolution"):
        sent.append(f"It was resolved as {b['resolution']}.")
    w(" ".join(sent))
    w("")
    w("## Impact")
    w("")
    if imp is None:
        w("Not measured: triage saw no regression when the incident was opened, so there is no onset to "
          "measure from. Describe the impact by hand.")
    else:
        w(f"Measured from the scores of {b['feature']}/{b['metric']} in {scope}, {imp['start']} to {imp['end']} "
          f"(end: {imp['end_reason']}):")
        w("")
        w("| measure | value |")
        w("| --- | --- |")
        w(f"| duration | {imp['duration']} |")
        w(f"| affected events (scored responses) | {imp['events']} |")
        if imp.get("estimated_responses") is not None:
            w(f"| estimated responses served (sample rate {imp['sample_rate']:g}) | {imp['estimated_responses']} |")
        w(f"| mean {b['metric']} before (7 days) | {_num(imp['mean_before'])} |")
        w(f"| mean {b['metric']} during | {_num(imp['mean_during'])} |")
        w(f"| mean drop | {_signed(imp['mean_drop'])} |")
        if imp.get("bad_share_before") is not None:
            w(f"| bad share before / during | {_pct(imp['bad_share_before'])} / {_pct(imp['bad_share_during'])} |")
            w(f"| extra bad events | {imp['extra_bad_events']:g} |")
            if imp.get("estimated_extra_bad_responses") is not None:
                w(f"| estimated extra bad responses | {imp['estimated_extra_bad_responses']} |")
    w("")
    w("## Detection")
    w("")
    if det.get("time_to_detect") is not None:
        w(f"Detected by {det['detected_by']} at {det['detected_at']}, {det['time_to_detect']} after the onset "
          f"({det['onset']}).")
    else:
        w(f"Detected by {det['detected_by']} at {det['detected_at']}; the onset is unknown.")
    w("")
    w("| from onset to | time |")
    w("| --- | --- |")
    for key, label in (("page", "first page"), ("open", "incident opened"), ("ack", "acknowledged"),
                       ("mitigate", "mitigated (rollback)"), ("resolve", "resolved")):
        w(f"| {label} | {det.get(f'time_to_{key}') or '-'} |")
    w("")
    w("## Root cause and trigger")
    w("")
    if cause:
        w(f"- Trigger: {cause.get('kind')} change `{cause['id']}` to {cause.get('target')} at {cause.get('at')} "
          f"by {cause.get('by') or '?'}: {cause.get('summary') or ''}")
        if suspect.get("change_id"):
            agree = "the same change" if suspect["change_id"] == cause["id"] else f"`{suspect['change_id']}` instead"
            w(f"- Triage's top hypothesis ({suspect.get('kind')}, score {suspect.get('score')}) named {agree}.")
    elif suspect.get("change_id"):
        w(f"- Suspected (not confirmed): {suspect.get('kind')} change `{suspect['change_id']}` to "
          f"{suspect.get('target')} (triage score {suspect.get('score')}).")
    else:
        w("- Trigger: unknown.")
    w("- Root cause: _why did this change lower quality, and why did no eval catch it before it shipped? "
      "(5 whys)_")
    w("")
    w("## Resolution")
    w("")
    if rollbacks:
        for r in rollbacks:
            undone = ", ".join(f"`{u}`" for u in r.get("undoes") or []) or (f"to {r.get('to')}" if r.get("to") else "")
            w(f"- {r['kind']} {r.get('target')} at {format_time(r['ts'])}: commit `{r.get('after')}` on "
              f"{r.get('branch')} in {r.get('repo')}" + (f", undoing {undone}" if undone else "")
              + (f", by {r['by']}" if r.get("by") else ""))
    if b.get("resolution"):
        w(f"- Resolved {b.get('resolved_at')} as **{b['resolution']}**" + (f": {b['note']}" if b.get("note") else ""))
    if not rollbacks and not b.get("resolution"):
        w("- Not resolved yet.")
    w("")
    w("## Timeline (UTC)")
    w("")
    w("| time | event |")
    w("| --- | --- |")
    for e in tl:
        text = e["text"].replace("|", "\\|")
        if e.get("change_id") and e["change_id"] not in text:
            text += f" (`{e['change_id']}`)"
        w(f"| {e['at']} | {e['what']}: {text} |")
    w("")
    w("## Action items")
    w("")
    w("| type | action item | owner | status |")
    w("| --- | --- | --- | --- |")
    cases_item = (f"Eval cases added: {cases} lowest-scoring requests exported (`oncall-ai incident export-cases "
                  f"{b['id']}`); add them to the {b['feature']} eval suite and gate changes on them")
    w(f"| prevent | {cases_item} | | {'DONE (exported; add to the suite)' if cases else 'TODO'} |")
    changed = (cause or {}).get("kind") or suspect.get("kind") or "change"
    w(f"| prevent | Run the {b['feature']} evals on {scope} before a {changed} change ships | | TODO |")
    if det.get("time_to_detect_ms") and det["time_to_detect_ms"] > 3_600_000:
        w(f"| mitigate | Page sooner: detection took {det['time_to_detect']}; add or tighten an SLO on "
          f"{b['feature']}/{b['metric']} ({scope}) or raise the judge's sample rate | | TODO |")
    else:
        w(f"| mitigate | Check the SLO on {b['feature']}/{b['metric']} ({scope}) would have paged for this drop | | TODO |")
    runbook = suspect.get("runbook") or "runbooks/"
    w(f"| process | Review {runbook} with what this incident taught | | TODO |")
    w("")
    w("## Lessons learned")
    w("")
    w("- What went well: _..._")
    w("- What went wrong: _..._")
    w("- Where we got lucky: _..._")
    w("")
    w("## Supporting information")
    w("")
    t = b.get("triage") or {}
    w(f"- Replay triage: `oncall-ai triage --feature {b['feature']} --metric {b['metric']} --since {t.get('since')} "
      f"--at {t.get('at')}`")
    w(f"- Incident record: `oncall-ai incident show {b['id']} --json`")
    return "\n".join(out) + "\n"
