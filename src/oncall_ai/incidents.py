"""Incident records for silent regressions: open (with a snapshot of the triage finding), ack,
resolve with the causing change, a timeline, the impact measured from the scores, and a
postmortem draft. Stored as store documents of kind `incident` (one per incident, replaced on
every update; `transitions` keeps the history of states).

    inc = open_incident(cfg, store, at_ms=..., feature="summarizer", metric="helpfulness",
                        from_triage=True)
    ack_incident(store, inc.id, at_ms=...)
    resolve_incident(cfg, store, inc.id, at_ms=..., cause="2044a85", resolution="rollback")
    timeline(cfg, store, body, at_ms)      impact(cfg, store, body, at_ms)

Ids are `INC-YYYYMMDD-N` (the UTC day the incident was opened, N counting that day's incidents),
so replaying the same commands gives the same ids. Every time is a parameter: only the command
line reads the clock.

Linked records: rollbacks (docs of kind `action` written by `rollback-prompt`/`rollback-pin`)
belong to an incident when they name it (`--incident ID`) or undo its causing or suspected
change; pages are `notify` actions for an SLO of the incident's feature and metric; eval cases
exported from it are docs of kind `export_case` (see oncall_ai.eval_cases).
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field

from oncall_ai.errors import DataError, UsageError
from oncall_ai.store.base import Doc
from oncall_ai.timeutil import format_duration, format_time, parse_time_ms

KIND = "incident"
ACTION_KIND = "action"
EXPORT_KIND = "export_case"
SCHEMA = "oncall-ai/incident/v1"
STATES = ("open", "acknowledged", "resolved")
RESOLUTIONS = ("rollback", "narrowed", "accepted", "false-alarm")
SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
ROLLBACK_ACTIONS = ("rollback-prompt", "rollback-pin")
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# How far before the onset changes are searched when resolving --cause, and the baseline length
# the impact is measured against.
CAUSE_LOOKBACK_MS = 7 * DAY_MS
IMPACT_BASELINE_MS = 7 * DAY_MS


def actor() -> str:
    """Who is acting: $ONCALL_AI_USER, else the login name."""
    name = os.environ.get("ONCALL_AI_USER")
    if name:
        return name
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


def _ms(text: str | None) -> int | None:
    return parse_time_ms(text) if text else None


# --- reading ------------------------------------------------------------------------------------

def list_incidents(store, *, state: str | None = None) -> list[dict]:
    """Every incident body, oldest first; `state` "active" means open or acknowledged."""
    out = [d.body for d in store.get_docs(KIND)]
    if state == "active":
        out = [b for b in out if b.get("state") != "resolved"]
    elif state is not None:
        out = [b for b in out if b.get("state") == state]
    return out


def get_incident(store, incident_id: str) -> dict:
    doc = store.get_doc(KIND, incident_id)
    if doc is None:
        known = [d.id for d in store.get_docs(KIND)][-5:]
        raise UsageError(f"no incident {incident_id!r} in the store",
                         hint=(f"recent incidents: {', '.join(known)}" if known else
                               "`oncall-ai incident open --from-triage` opens one"))
    return doc.body


def _save(store, body: dict) -> None:
    store.put_docs(KIND, [Doc(KIND, body["id"], parse_time_ms(body["opened_at"]), body)], replace=True)


def _next_id(store, at_ms: int) -> str:
    day = format_time(at_ms)[:10].replace("-", "")
    prefix = f"INC-{day}-"
    taken = {d.id for d in store.get_docs(KIND) if d.id.startswith(prefix)}
    n = 1
    while f"{prefix}{n}" in taken:
        n += 1
    return f"{prefix}{n}"


# --- opening ------------------------------------------------------------------------------------

@dataclass
class OpenResult:
    incident: dict
    created: bool
    notes: list[str] = field(default_factory=list)


def span_text(ms: int | None) -> str | None:
    """A duration for people: 45s, 12m, 3h05m, 2d04h."""
    if ms is None:
        return None
    s = max(0, int(ms // 1000))
    d, h, m = s // 86_400, s % 86_400 // 3600, s % 3600 // 60
    if d:
        return f"{d}d{h:02d}h"
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m"
    return f"{s}s"


def _g(x) -> str:
    return "?" if x is None else f"{x:.3g}"


def _default_title(feature: str, metric: str, finding: dict | None) -> str:
    if not finding or not (finding.get("regression") or {}).get("detected"):
        return f"{feature}/{metric}: investigating"
    reg = finding["regression"]
    scope = finding.get("scope") or {}
    base, cur = reg.get("baseline"), reg.get("current")
    for s in finding.get("slices") or []:
        if s.get("slice") == scope:
            base, cur = s.get("baseline"), s.get("current")
    where = f" in {', '.join(f'{k}={v}' for k, v in sorted(scope.items()))}" if scope else ""
    return f"{feature}/{metric} dropped{where} ({_g(base)} -> {_g(cur)}) since {reg.get('onset')}"


def _suspect(finding: dict | None) -> dict | None:
    hyps = (finding or {}).get("hypotheses") or []
    if not hyps:
        return None
    h = hyps[0]
    ch = h.get("change") or {}
    return {"kind": h.get("kind"), "target": h.get("target"), "change_id": ch.get("id"), "score": h.get("score"),
            "rollback": h.get("rollback"), "runbook": h.get("runbook"), "summary": ch.get("summary"),
            "by": ch.get("by"), "at": ch.get("at")}


def open_incident(cfg, store, *, at_ms: int, since_ms: int, feature: str | None = None,
                  metric: str | None = None, from_triage: bool = False, title: str | None = None,
                  severity: str | None = None, force: bool = False, by: str | None = None,
                  since_text: str | None = None, triage_fn=None) -> OpenResult:
    """Open an incident with a snapshot of the triage finding for its feature and metric.

    from_triage: run triage (over every pair, or the given feature/metric) and take the worst
    detected regression; a DataError when there is none. Otherwise --feature and --metric are
    required and triage of that pair is still snapshotted (a regression triage cannot see yet).
    An incident already active for the same feature and metric is returned instead of opening a
    second one, unless `force`."""
    if severity is not None and severity not in SEVERITIES:
        raise UsageError(f"--severity {severity!r}: use one of {', '.join(SEVERITIES)}")
    if not from_triage and (feature is None or metric is None):
        raise UsageError("give --from-triage, or both --feature and --metric",
                         hint="`oncall-ai incident open --from-triage` opens one for the worst regression triage finds")
    if triage_fn is None:
        from oncall_ai.triage import run_triage as triage_fn
    from oncall_ai.analysis.finding import SCHEMA as TRIAGE_SCHEMA

    result = triage_fn(cfg, store, at=at_ms, since=since_ms, feature=feature, metric=metric,
                       since_text=since_text or format_duration(at_ms - since_ms))
    notes = list(result.notes)
    finding = None
    if from_triage:
        detected = [f for f in result.findings if f.detection.detected]
        if not detected:
            what = f"{feature or 'any feature'}/{metric or 'any metric'}"
            raise DataError(f"triage found no regression for {what} between {format_time(since_ms)} and "
                            f"{format_time(at_ms)}; no incident opened",
                            hint="widen --since, or open one by hand with --feature F --metric M")
        finding = detected[0]
    else:
        finding = next((f for f in result.findings if f.feature == feature and f.metric == metric), None)
    fjson = finding.to_json() if finding is not None else None
    feature = finding.feature if finding is not None else feature
    metric = finding.metric if finding is not None else metric

    if not force:
        active = [b for b in list_incidents(store, state="active")
                  if b.get("feature") == feature and b.get("metric") == metric]
        if active:
            return OpenResult(active[-1], False, notes + [
                f"incident {active[-1]['id']} is already open for {feature}/{metric}; not opening another "
                "(--force opens one anyway)"])

    detected = bool(fjson and fjson["regression"]["detected"])
    by = by or actor()
    opened = format_time(at_ms)
    body = {
        "schema": SCHEMA,
        "id": _next_id(store, at_ms),
        "title": title or _default_title(feature, metric, fjson),
        "severity": severity or ("sev2" if detected else "sev3"),
        "state": "open",
        "feature": feature,
        "metric": metric,
        "scope": dict((fjson or {}).get("scope") or {}),
        "onset": fjson["regression"]["onset"] if detected else None,
        "opened_at": opened,
        "opened_by": by,
        "acked_at": None,
        "resolved_at": None,
        "triage": {"schema": TRIAGE_SCHEMA, "at": format_time(at_ms), "since": format_time(since_ms),
                   "finding": fjson, "notes": notes},
        "suspect": _suspect(fjson),
        "cause": None,
        "resolution": None,
        "note": None,
        "transitions": [{"at": opened, "from": None, "to": "open", "by": by,
                         "note": "opened from triage" if from_triage else "opened by hand"}],
    }
    _save(store, body)
    return OpenResult(body, True, notes)


# --- state changes ------------------------------------------------------------------------------

def _transition(body: dict, to: str, at_ms: int, by: str, note: str | None) -> None:
    opened = parse_time_ms(body["opened_at"])
    if at_ms < opened:
        raise UsageError(f"--at {format_time(at_ms)} is before the incident was opened ({body['opened_at']})")
    body["transitions"].append({"at": format_time(at_ms), "from": body["state"], "to": to, "by": by, "note": note})
    body["state"] = to


def ack_incident(store, incident_id: str, *, at_ms: int, note: str | None = None, by: str | None = None) -> dict:
    body = get_incident(store, incident_id)
    if body["state"] != "open":
        raise DataError(f"incident {incident_id} is {body['state']}, not open; nothing changed")
    _transition(body, "acknowledged", at_ms, by or actor(), note)
    body["acked_at"] = format_time(at_ms)
    _save(store, body)
    return body


def linked_rollbacks(store, body: dict, *, until_ms: int | None = None) -> list[dict]:
    """Rollback actions of this incident: naming it, or undoing its causing or suspected change."""
    changes = {c for c in ((body.get("cause") or {}).get("id"), (body.get("suspect") or {}).get("change_id")) if c}
    opened = parse_time_ms(body["opened_at"])
    onset = _ms(body.get("onset")) or opened
    out = []
    for d in store.get_docs(ACTION_KIND, until=None if until_ms is None else until_ms + 1):
        b = d.body
        if b.get("kind") not in ROLLBACK_ACTIONS:
            continue
        named = b.get("incident") == body["id"]
        undoes = set(b.get("undoes") or [])
        if named or (changes & undoes and d.ts >= onset):
            out.append({"id": d.id, "ts": d.ts, **b})
    return out


def _find_change(cfg, store, body: dict, cause: str, at_ms: int) -> dict:
    """The change --cause names, as `changes list` gives it (full sha for git changes)."""
    from oncall_ai.sources.changes import collect_changes

    onset = _ms(body.get("onset")) or parse_time_ms(body["opened_at"])
    cs = collect_changes(cfg, store, onset - CAUSE_LOOKBACK_MS, at_ms + 1, feature=None, with_diffs=False)
    cands = [c for c in cs.changes if c.id == cause]
    if not cands and len(cause) >= 7:
        cands = [c for c in cs.changes if c.id.startswith(cause) and c.source.startswith("git:")]
    ids = sorted({c.id for c in cands})
    if len(ids) > 1:
        raise UsageError(f"--cause {cause!r} is ambiguous: {', '.join(ids)}")
    if ids:
        affecting = [c for c in cands if c.affects(body["feature"])] or cands
        c = affecting[0]
        return {"id": c.id, "kind": c.kind, "target": c.target, "at": format_time(c.at), "by": c.by,
                "summary": c.summary, "source": c.source, "features": list(c.features)}
    # Not in the window's timeline: a hypothesis of the snapshot still names it in full.
    for h in (((body.get("triage") or {}).get("finding") or {}).get("hypotheses") or []):
        ch = h.get("change") or {}
        if ch.get("id") and (ch["id"] == cause or (len(cause) >= 7 and ch["id"].startswith(cause))):
            return {"id": ch["id"], "kind": ch.get("kind"), "target": h.get("target"), "at": ch.get("at"),
                    "by": ch.get("by"), "summary": ch.get("summary"), "source": ch.get("source"), "features": []}
    raise UsageError(
        f"--cause {cause!r}: no change with that id between {format_time(onset - CAUSE_LOOKBACK_MS)} and "
        f"{format_time(at_ms)}",
        hint=f"`oncall-ai changes list --feature {body['feature']} --since 7d --json` lists change ids")


def resolve_incident(cfg, store, incident_id: str, *, at_ms: int, resolution: str, cause: str | None = None,
                     note: str | None = None, by: str | None = None) -> tuple[dict, list[str]]:
    """Resolve: the causing change (an id as `changes list` gives it), how it was resolved and a
    note. Without --cause, a rollback linked to the incident that undid exactly one change names it."""
    if resolution not in RESOLUTIONS:
        raise UsageError(f"--resolution {resolution!r}: use one of {', '.join(RESOLUTIONS)}")
    body = get_incident(store, incident_id)
    if body["state"] == "resolved":
        raise DataError(f"incident {incident_id} was already resolved at {body['resolved_at']}; nothing changed")
    notes: list[str] = []
    if cause is None and resolution != "false-alarm":
        undone = {u for a in linked_rollbacks(store, body, until_ms=at_ms) for u in (a.get("undoes") or [])}
        if len(undone) == 1:
            cause = next(iter(undone))
            notes.append(f"cause: {cause}, the change the incident's rollback undid")
        elif resolution in ("rollback", "narrowed"):
            raise UsageError(f"--cause is needed for --resolution {resolution}: the id of the change that caused it",
                             hint=f"`oncall-ai incident show {incident_id}` shows the suspected change")
    if cause is not None:
        body["cause"] = _find_change(cfg, store, body, cause, at_ms)
    _transition(body, "resolved", at_ms, by or actor(), note)
    body["resolved_at"] = format_time(at_ms)
    body["resolution"] = resolution
    body["note"] = note
    if resolution == "rollback" and not linked_rollbacks(store, body, until_ms=at_ms):
        notes.append("resolution rollback, but no rollback action names this incident or undoes its cause "
                     "(`rollback-prompt ... --incident ID` links one)")
    _save(store, body)
    return body, notes


# --- derived views: pages, exports, timeline, impact, detection ---------------------------------

def pages(cfg, store, body: dict, *, until_ms: int) -> list[dict]:
    """Alerts sent (`slo check --notify`) for an SLO of the incident's feature and metric, from an
    hour before the onset."""
    names = {s.name for s in (cfg.slos if cfg is not None else ()) if s.feature == body["feature"]
             and s.metric == body["metric"]}
    if not names:
        return []
    start = (_ms(body.get("onset")) or parse_time_ms(body["opened_at"])) - HOUR_MS
    out = []
    for d in store.get_docs(ACTION_KIND, since=start, until=until_ms + 1):
        b = d.body
        if b.get("kind") == "notify" and b.get("slo") in names and b.get("action") == "trigger" and b.get("ok"):
            out.append({"ts": d.ts, **b})
    return out


def exported_cases(store, incident_id: str) -> list[Doc]:
    return [d for d in store.get_docs(EXPORT_KIND) if d.body.get("incident") == incident_id]


def end_of_impact(store, body: dict, at_ms: int) -> tuple[int, str]:
    """When the harm stopped (as far as the records say): the first linked rollback, else the
    resolution, else `at`."""
    rbs = linked_rollbacks(store, body, until_ms=at_ms)
    if rbs:
        return min(r["ts"] for r in rbs), "rollback"
    if body.get("resolved_at"):
        return parse_time_ms(body["resolved_at"]), "resolved"
    return at_ms, "still open"


def timeline(cfg, store, body: dict, at_ms: int) -> list[dict]:
    """Changes (suspected, causing, other candidates), the onset, pages, state transitions,
    rollbacks and eval-case exports, in time order: [{at, what, text, change_id?}]."""
    ev: list[dict] = []
    finding = (body.get("triage") or {}).get("finding") or {}
    cause_id = (body.get("cause") or {}).get("id")
    seen_changes: set[str] = set()
    for h in (finding.get("hypotheses") or [])[:3]:
        ch = h.get("change") or {}
        if not ch.get("id") or not ch.get("at") or ch["id"] in seen_changes:
            continue
        seen_changes.add(ch["id"])
        role = "cause" if ch["id"] == cause_id else f"suspect #{h.get('rank')} (score {h.get('score')})"
        ev.append({"at": ch["at"], "what": "change", "change_id": ch["id"],
                   "text": f"{h.get('kind')} {h.get('target')} landed: {ch.get('summary') or ''} "
                           f"by {ch.get('by') or '?'} [{role}]"})
    cause = body.get("cause")
    if cause and cause["id"] not in seen_changes and cause.get("at"):
        ev.append({"at": cause["at"], "what": "change", "change_id": cause["id"],
                   "text": f"{cause.get('kind')} {cause.get('target')} landed: {cause.get('summary') or ''} "
                           f"by {cause.get('by') or '?'} [cause]"})
    reg = finding.get("regression") or {}
    if body.get("onset"):
        where = ", ".join(f"{k}={v}" for k, v in sorted((body.get("scope") or {}).items()))
        ev.append({"at": body["onset"], "what": "onset",
                   "text": f"{body['feature']}/{body['metric']} starts dropping ({reg.get('baseline')} -> "
                           f"{reg.get('current')}{', ' + where if where else ''})"})
    for p in pages(cfg, store, body, until_ms=at_ms):
        ev.append({"at": format_time(p["ts"]), "what": "page",
                   "text": f"{p.get('severity')} sent to {p.get('target')} for SLO {p.get('slo')}"})
    for t in body.get("transitions") or []:
        text = f"incident {t['to']} by {t.get('by') or '?'}"
        if t["to"] == "resolved" and body.get("resolution"):
            text += f" ({body['resolution']})"
        if t.get("note"):
            text += f": {t['note']}"
        ev.append({"at": t["at"], "what": "state", "text": text})
    for r in linked_rollbacks(store, body, until_ms=at_ms):
        undone = ", ".join(r.get("undoes") or []) or r.get("to") or ""
        item = {"at": format_time(r["ts"]), "what": "rollback",
                "text": f"{r['kind']} {r.get('target')}: commit {r.get('after')} on {r.get('branch')}"
                        + (f" undoing {undone}" if undone else "") + (f" by {r['by']}" if r.get("by") else "")}
        if r.get("undoes"):
            item["change_id"] = r["undoes"][0]
        ev.append(item)
    batches: dict[int, list[Doc]] = {}
    for d in exported_cases(store, body["id"]):
        batches.setdefault(int(d.body.get("batch") or 1), []).append(d)
    for b, docs in sorted(batches.items()):
        ev.append({"at": format_time(min(d.ts for d in docs)), "what": "export",
                   "text": f"{len(docs)} eval case(s) exported (batch {b})"})
    order = {"change": 0, "onset": 1, "page": 2, "state": 3, "rollback": 4, "export": 5}
    ev.sort(key=lambda e: (parse_time_ms(e["at"]), order.get(e["what"], 9), e["text"]))
    return ev


def scope_series(store, body: dict) -> list:
    """The series of the incident's feature and metric inside its scope (affected slices)."""
    scope = body.get("scope") or {}
    return [s for s in store.series(body["feature"], body["metric"])
            if all(s.get(k) == v for k, v in scope.items())]


def impact(cfg, store, body: dict, at_ms: int) -> dict | None:
    """Measured from the scores, inside the incident's scope: events during [onset, end of impact)
    against the week before the onset; mean drop, bad share, and an estimate of the responses
    served worse (from the sample rate when events carry one). None without an onset."""
    onset = _ms(body.get("onset"))
    if onset is None:
        return None
    end, end_reason = end_of_impact(store, body, at_ms)
    series = scope_series(store, body)
    rule = cfg.metric(body["metric"]).good if cfg is not None else None
    out = {"scope": dict(body.get("scope") or {}), "start": format_time(onset), "end": format_time(end),
           "end_reason": end_reason, "duration": span_text(max(0, end - onset)),
           "duration_ms": max(0, end - onset), "events": 0, "mean_before": None, "mean_during": None,
           "mean_drop": None, "bad_share_before": None, "bad_share_during": None, "extra_bad_events": None,
           "sample_rate": None, "estimated_responses": None, "estimated_extra_bad_responses": None,
           "higher_is_better": cfg.metric(body["metric"]).higher_is_better if cfg is not None else True}
    if not series or end <= onset:
        return out
    ids = [s.id for s in series]
    from oncall_ai.store.base import Agg

    def total(start: int, stop: int) -> Agg:
        a = Agg(good=0 if rule is not None else None)
        for v in store.aggregate(ids, start, stop, good_rule=rule).values():
            a.add(v)
        return a

    before = total(onset - IMPACT_BASELINE_MS, onset)
    during = total(onset, end)
    out["events"] = during.n
    out["events_before"] = before.n
    out["mean_before"] = _r(before.mean)
    out["mean_during"] = _r(during.mean)
    if before.mean is not None and during.mean is not None:
        out["mean_drop"] = _r(during.mean - before.mean)
    if rule is not None and before.n and during.n:
        bb, bd = 1 - before.good / before.n, 1 - during.good / during.n
        out["bad_share_before"], out["bad_share_during"] = _r(bb), _r(bd)
        out["extra_bad_events"] = round(max(0.0, bd - bb) * during.n, 1)
    from oncall_ai.slos import recent_sample_rate

    rate = recent_sample_rate(store, series, end)
    if rate:
        out["sample_rate"] = rate
        out["estimated_responses"] = round(during.n / rate)
        if out["extra_bad_events"] is not None:
            out["estimated_extra_bad_responses"] = round(out["extra_bad_events"] / rate)
    return out


def detection(cfg, store, body: dict, at_ms: int) -> dict:
    """How long from the onset to the first page and to the incident being opened, acknowledged,
    mitigated (first rollback) and resolved."""
    onset = _ms(body.get("onset"))
    ps = pages(cfg, store, body, until_ms=at_ms)
    first_page = min((p["ts"] for p in ps), default=None)
    opened = parse_time_ms(body["opened_at"])
    rbs = linked_rollbacks(store, body, until_ms=at_ms)
    mitigated = min((r["ts"] for r in rbs), default=None)
    marks = {"page": first_page, "open": opened, "ack": _ms(body.get("acked_at")), "mitigate": mitigated,
             "resolve": _ms(body.get("resolved_at"))}
    out: dict = {"onset": body.get("onset"), "first_page": format_time(first_page),
                 "detected_by": "page" if first_page is not None and first_page <= opened else "incident opened",
                 "detected_at": format_time(min(x for x in (first_page, opened) if x is not None))}
    for k, v in [*marks.items(), ("detect", min(x for x in (first_page, opened) if x is not None))]:
        gap = (v - onset) if onset is not None and v is not None else None
        out[f"time_to_{k}"] = span_text(gap)
        out[f"time_to_{k}_ms"] = gap
    return out


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)
