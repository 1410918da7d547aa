"""The weekly handoff (`oncall-ai digest`): what landed and what is borderline, as one document.

    doc = build_digest(cfg, store, at_ms=..., since_ms=...)     # the `oncall-ai/digest/v1` JSON

Sections, each `{"status": "ok" | "not_configured" | "error", "note": ..., "items": [...]}`:

- prompt_changes     prompt diffs that landed: per change its features, author, time, paths and a
                     short diff summary (lines added/removed, the first changed lines)
- model_migrations   pin changes and provider-side model changes seen in traffic, with the share
                     of traffic on the new model (canary shares) and whether it is still in flight
- borderline         eval slices flagged borderline: drops that are real or likely but do not page
                     (no paging SLO, no incident) found by the triage detector with a looser alpha
                     on coarse buckets, and slices whose SLI over an SLO's window burns close to or
                     beyond its budget (95% lower bound of the burn >= `near_slo_burn`) over the SLO's
                     window, or the digest's window when that is shorter
- judge              calibration runs in the window, the drift verdict per metric, judge changes
- slos               SLO budget status at `at` (and alerts sent in the window)
- incidents          incidents still open, and those resolved in the window, with their pending
                     eval improvements (eval cases to export or to add to the suite)
- rollbacks          rollbacks done in the window (docs of kind `action`)
- other_changes      index, config, traffic and other changes (nothing `changes list` shows is lost)

Every item that stems from a change carries `change_id` exactly as `changes list` gives it.
Pure of the clock (`at_ms` is a parameter) and sorted everywhere, so the same store gives the
same document. Every source degrades to its section's status and note, never a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from oncall_ai.errors import ConfigError, OncallError
from oncall_ai.timeutil import format_duration, format_time, parse_duration_ms

SCHEMA = "oncall-ai/digest/v1"
HOUR_MS = 3_600_000
TRIAGE_ALPHA = 0.001  # what triage calls a regression (DetectParams default)
SECTIONS = ("prompt_changes", "model_migrations", "borderline", "judge", "slos", "incidents", "rollbacks",
            "other_changes")
SETTING_KEYS = ("near_slo_burn", "borderline_alpha", "bucket", "baseline", "min_slice_events", "team", "max_items")
DIFF_EXCERPT_LINES = 4
DIFF_LINE_CHARS = 100


@dataclass(frozen=True)
class DigestSettings:
    """The config's `digest:` section (all optional)."""

    near_slo_burn: float = 0.75  # a slice whose burn's 95% lower bound reaches this is "near its SLO"
    borderline_alpha: float = 0.05  # drops with a corrected p below this are listed (triage uses 0.001)
    # Detector buckets for borderline drops, and history before the window to compare with. Daily
    # buckets over the window alone keep a 10-million-event store under a second (the store answers
    # from hourly rollups; rows grow with series x buckets); `triage` has the fine-grained view.
    bucket_ms: int = 24 * HOUR_MS
    baseline_ms: int = 0
    min_slice_events: int = 30
    team: str | None = None  # shown in the title
    max_items: int = 10  # per section in the Slack summary

    @classmethod
    def from_config(cls, cfg) -> DigestSettings:
        sec = cfg.section("digest") if cfg is not None else {}
        where = cfg.describe() if cfg is not None else "config"

        def fail(key: str, msg: str):
            raise ConfigError(f"{where}: digest.{key}: {msg}")

        for k in sec:
            if k not in SETTING_KEYS:
                fail(str(k), f"unknown key (known: {', '.join(SETTING_KEYS)})")

        def num(key: str, default: float, lo: float, hi: float) -> float:
            v = sec.get(key, default)
            if isinstance(v, bool) or not isinstance(v, int | float) or not lo < v < hi:
                fail(key, f"must be a number between {lo:g} and {hi:g}")
            return float(v)

        def dur(key: str, default: int) -> int:
            if key not in sec:
                return default
            try:
                return parse_duration_ms(str(sec[key]))
            except ValueError as e:
                fail(key, str(e))

        def whole(key: str, default: int) -> int:
            v = sec.get(key, default)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                fail(key, "must be a whole number >= 1")
            return v

        team = sec.get("team")
        if team is not None and not isinstance(team, str):
            fail("team", "must be a string")
        return cls(near_slo_burn=num("near_slo_burn", 0.75, 0, 100),
                   borderline_alpha=num("borderline_alpha", 0.05, 0, 0.5),
                   bucket_ms=dur("bucket", 24 * HOUR_MS), baseline_ms=0 if sec.get("baseline") in (None, 0, "0") else dur("baseline", 0),
                   min_slice_events=whole("min_slice_events", 30), team=team, max_items=whole("max_items", 10))


def _section(status: str = "ok", note: str | None = None, items: list | None = None, **extra) -> dict:
    return {"status": status, "note": note, "items": items or [], **extra}


def _r(x: float | None, nd: int = 4) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(x, nd)


# --- changes ------------------------------------------------------------------------------------

def diff_summary(diff: str | None) -> dict:
    """{files, added, removed, excerpt}: counts of changed lines and the first few of them."""
    if not diff:
        return {"files": 0, "added": 0, "removed": 0, "excerpt": []}
    files = added = removed = 0
    excerpt: list[str] = []
    for line in diff.splitlines():
        if line.startswith("diff --git"):
            files += 1
        elif line.startswith(("+++", "---")):
            continue
        elif line.startswith("+") or line.startswith("-"):
            if line.startswith("+"):
                added += 1
            else:
                removed += 1
            body = line[1:].strip()
            if body and len(excerpt) < DIFF_EXCERPT_LINES:
                text = line[0] + " " + body
                excerpt.append(text if len(text) <= DIFF_LINE_CHARS else text[:DIFF_LINE_CHARS - 3] + "...")
    return {"files": max(files, 1 if added or removed else 0), "added": added, "removed": removed, "excerpt": excerpt}


def _features(c, all_features: list[str]) -> list[str]:
    return list(c.features) if c.features else list(all_features)


def _change_base(c, all_features: list[str]) -> dict:
    return {"change_id": c.id, "kind": c.kind, "target": c.target, "features": _features(c, all_features),
            "at": format_time(c.at), "by": c.by, "summary": c.summary, "source": c.source, "rollback": c.rollback}


def _traffic_state(evidence: list[dict]) -> dict | None:
    """How far a change reached traffic: the share of traffic on the new version at the end of the
    window (the lowest over the features it reached), the hourly ramp, and whether it is partial."""
    if not evidence:
        return None
    shares = [e.get("share_new") for e in evidence if e.get("share_new") is not None]
    share = min(shares) if shares else None
    partial = any(e.get("partial") for e in evidence)
    ramp = []
    for e in evidence:
        for t, s in e.get("ramp") or []:
            ramp.append([format_time(t) if isinstance(t, int) else t, _r(s, 3)])
    if share is None:
        state = "seen"
    elif partial or share < 0.95:
        state = "canary" if share > 0 else "rolled back"
    else:
        state = "complete"
    return {"state": state, "share_new": _r(share, 3), "partial": partial,
            "features": sorted({e.get("feature") for e in evidence if e.get("feature")}),
            "ramp": ramp[-12:]}


def _changes_sections(cfg, changes, problems: list[str]) -> tuple[dict, dict, dict]:
    feats = sorted(cfg.features)
    prompts, models, others = [], [], []
    for c in changes:
        base = _change_base(c, feats)
        if c.kind == "prompt":
            d = diff_summary(c.diff)
            base.update({"paths": list(c.paths), "diff": {k: d[k] for k in ("files", "added", "removed")},
                         "diff_excerpt": d["excerpt"],
                         "traffic": _traffic_state(c.details.get("seen_in_traffic") or [])})
            prompts.append(base)
        elif c.kind == "model" and not (c.target == c.details.get("file") and not c.provider_side):
            ev = c.details.get("seen_in_traffic") or c.details.get("traffic") or []
            if isinstance(ev, dict):
                ev = [ev]
            traffic = _traffic_state(ev)
            if c.provider_side and traffic is None:
                traffic = {"state": "complete", "share_new": None, "partial": False, "features": list(c.features),
                           "ramp": []}
            base.update({"migration": "provider-side" if c.provider_side else "pin",
                         "from": c.from_value, "to": c.to_value, "traffic": traffic,
                         "in_flight": traffic is None or traffic["state"] != "complete"})
            models.append(base)
        else:
            base.update({"from": c.from_value, "to": c.to_value})
            others.append(base)
    note = "some change sources could not be read (see the notes)" if problems else None
    p_status = "ok"
    p_note = note
    if cfg.prompt_repo is None:
        p_status, p_note = "not_configured", ("not configured: no prompt_repo in the config; only recorded prompt "
                                              "changes and prompt versions seen in traffic are listed")
    m_status, m_note = "ok", note
    if cfg.pins is None:
        m_status, m_note = "not_configured", ("not configured: no pins file in the config; only provider-side "
                                              "changes seen in the events' model_id are listed")
    return (_section(p_status, p_note, prompts), _section(m_status, m_note, models),
            _section("ok", note, others))


# --- borderline ---------------------------------------------------------------------------------

def _near_changes(changes, feature: str, onset: int, bucket_ms: int) -> list[dict]:
    """Changes that can reach the feature from 24 hours before the onset bucket to its end, nearest
    to the onset first (the detector's onset is only as precise as its buckets)."""
    near = [c for c in changes if c.affects(feature) and onset - 24 * HOUR_MS <= c.at < onset + bucket_ms]
    near.sort(key=lambda c: (abs(onset - c.at), c.id, c.target))
    out, seen = [], set()
    for c in near:
        if c.id in seen:
            continue
        seen.add(c.id)
        out.append({"change_id": c.id, "kind": c.kind, "target": c.target, "at": format_time(c.at)})
        if len(out) >= 3:
            break
    return out


def _borderline_drops(cfg, store, at_ms: int, since_ms: int, st: DigestSettings, changes, covered: dict) -> tuple[list, list]:
    from oncall_ai.analysis.cube import Cube
    from oncall_ai.analysis.detect import DetectParams, detect_regression
    from oncall_ai.triage import metric_direction

    items, notes = [], []
    groups: dict[tuple[str, str], list] = {}
    for s in store.series():
        groups.setdefault((s.feature, s.metric), []).append(s)
    start = since_ms - st.baseline_ms
    slice_keys = list(cfg.slices) if cfg.slices else None
    params = DetectParams(alpha=st.borderline_alpha)
    # One store call for every series: the store scans the window's rollups once, not once per pair.
    all_aggs = store.aggregate([s.id for ss in groups.values() for s in ss], start, at_ms, bucket_ms=st.bucket_ms)
    by_series: dict[int, dict] = {}
    for key, agg in all_aggs.items():
        by_series.setdefault(key[0], {})[key] = agg
    for (feature, metric), series in sorted(groups.items()):
        label, until = covered.get((feature, metric), (None, None))
        if label is not None and until is None:  # an open incident or a paging SLO is on it
            notes.append(f"{feature}/{metric}: covered by {label}, not analysed here")
            continue
        aggs = {k: a for s in series for k, a in by_series.get(s.id, {}).items()}
        cube = Cube.from_aggregates(series, aggs, start=start, end=at_ms, bucket_ms=st.bucket_ms,
                                    slice_keys=slice_keys)
        higher, _ = metric_direction(cfg, metric)
        det = detect_regression(cube, window_start=since_ms, at=at_ms, higher_is_better=higher, params=params)
        if det.verdict not in ("regression", "recovered") or det.onset is None:
            continue
        if label is not None and det.onset <= until:  # the drop a resolved incident was about
            notes.append(f"{feature}/{metric}: the drop since {format_time(det.onset)} is covered by {label}")
            continue
        scope = {} if det.signal == "mix" else dict(det.scope)
        cells = cube.cells_where(scope) if scope else None
        tau = det.onset_bucket if det.onset_bucket is not None else cube.boundary(det.onset)
        before, after = cube.moments(0, tau, cells), cube.moments(tau, cube.n_buckets, cells)
        p = det.p_value
        items.append({
            "type": "drop", "feature": feature, "metric": metric, "slice": scope,
            "signal": "traffic mix" if det.signal == "mix" else "quality",
            "strength": "recovered" if det.verdict == "recovered" else (
                "significant" if p is not None and p < TRIAGE_ALPHA else "possible"),
            "onset": format_time(det.onset),
            "recovered_at": format_time(det.recovered_at) if det.recovered_at is not None else None,
            "baseline": _r(before.mean), "current": _r(after.mean),
            "delta": _r(after.mean - before.mean) if before.n and after.n else None,
            "events_after": int(after.n), "p_value": float(f"{p:.3g}") if p is not None else None,
            "higher_is_better": higher, "changes_near_onset": _near_changes(changes, feature, det.onset, st.bucket_ms),
            "next": f"oncall-ai triage --feature {feature} --metric {metric} --since "
                    f"{-(-(at_ms - det.onset) // HOUR_MS) + 1}h",
        })
    return items, notes


def _near_slo_slices(cfg, store, statuses, at_ms: int, since_ms: int,
                     st: DigestSettings) -> tuple[list[dict], list[str]]:
    """Slices whose SLI burns an SLO's budget near or beyond its rate (the 95% lower bound of the
    burn at least `near_slo_burn`), over the SLO's window or the digest's window when that is
    shorter (a 30-day SLO is judged on the handoff's week). An SLO that burns that fast as a whole
    is listed once, not slice by slice. Counted over whole hours (rollups only: one store call per
    window length and metric)."""
    from oncall_ai.analysis.slo import Counts
    from oncall_ai.analysis.stats import wilson_lower
    from oncall_ai.slos import slo_series

    out, notes = [], []
    status = {s.name: s for s in statuses}
    end = at_ms - at_ms % HOUR_MS
    by_pair: dict[tuple[str, str], list] = {}
    series_of: dict[str, list] = {}
    for slo in cfg.slos:
        if (slo.feature, slo.metric) not in by_pair:
            by_pair[(slo.feature, slo.metric)] = store.series(slo.feature, slo.metric)
        series_of[slo.name] = slo_series(by_pair[(slo.feature, slo.metric)], slo)
    window = {slo.name: min(slo.window_ms, at_ms - since_ms) for slo in cfg.slos}
    counts: dict[tuple[int, str], dict] = {}
    for w, metric in sorted({(window[slo.name], slo.metric) for slo in cfg.slos}):
        ids = {s.id for slo in cfg.slos if (window[slo.name], slo.metric) == (w, metric) for s in series_of[slo.name]}
        start = -(-(at_ms - w) // HOUR_MS) * HOUR_MS
        aggs = store.aggregate(ids, start, end, good_rule=cfg.metric(metric).good) if ids and start < end else {}
        counts[(w, metric)] = {sid: Counts(a.n, a.good or 0) for (sid, _b), a in aggs.items()}

    for slo in sorted(cfg.slos, key=lambda s: s.name):
        per_series = counts.get((window[slo.name], slo.metric)) or {}
        budget = 1.0 - slo.objective
        fixed = {k for k, _ in slo.where}
        whole = Counts()
        cells: dict[tuple[str, str], Counts] = {}
        for s in series_of[slo.name]:
            c = per_series.get(s.id)
            if c is None or not c.n:
                continue
            whole = whole + c
            for k in (cfg.slices or [k for k, _ in s.slice]):
                v = s.get(k)
                if v is not None and k not in fixed:
                    cells[(k, v)] = cells.get((k, v), Counts()) + c

        def item(slice_: dict, c: Counts, slo=slo, budget=budget) -> dict | None:
            if c.n < st.min_slice_events:
                return None
            lower = wilson_lower(c.bad, c.n) / budget
            if lower < st.near_slo_burn:
                return None
            return {"type": "near_slo", "slo": slo.name, "feature": slo.feature, "metric": slo.metric,
                    "slice": slice_, "sli": _r(c.good / c.n), "objective": slo.objective,
                    "window": format_duration(window[slo.name]), "slo_window": format_duration(slo.window_ms),
                    "burn": _r((c.bad / c.n) / budget, 3),
                    "burn_lower": _r(lower, 3), "events": c.n,
                    "state": "beyond budget" if lower >= 1 else "near budget",
                    "slo_state": status[slo.name].state if slo.name in status else None}

        overall = item({}, whole)
        if overall is not None:
            out.append(overall)
            notes.append(f"SLO {slo.name} burns its budget as a whole; its slices are not listed one by one")
            continue
        out += [x for x in (item({k: v}, c) for (k, v), c in sorted(cells.items())) if x is not None]
    return out, notes


# --- judge --------------------------------------------------------------------------------------

def _judge_section(cfg, store, at_ms: int, since_ms: int, changes) -> dict:
    from oncall_ai.judge_runs import RUN_KIND, calibration_verdicts

    judge_changes = [{"change_id": c.id, "target": c.target, "at": format_time(c.at), "by": c.by,
                      "summary": c.summary, "features": list(c.features)}
                     for c in changes if c.kind == "judge"]
    runs = [d for d in store.get_docs(RUN_KIND, since=since_ms, until=at_ms + 1)]
    try:
        verdicts = calibration_verdicts(cfg, store, at_ms=at_ms, strict=False)
    except OncallError as e:
        return _section("error", f"calibration verdicts: {e.message}", [], drift=[], changes=judge_changes)
    if not runs and not verdicts and cfg.calibration is None:
        return _section("not_configured", "not configured: no calibration set and no calibration runs "
                        "(`oncall-ai judge calibrate`)", [], drift=[], changes=judge_changes)
    stats = {}
    for v in verdicts:
        for rs in v.runs:
            stats[(v.metric, rs.run_id)] = rs
    items = []
    for d in runs:
        for m in sorted(d.body.get("metrics") or [m for (m, r) in stats if r == d.id] or [None]):
            rs = stats.get((m, d.id))
            items.append({"run_id": d.id, "at": format_time(d.ts), "metric": m, "judge_id": d.body.get("judge_id"),
                          "items": rs.n if rs else d.body.get("items"),
                          "null_rate": _r(rs.null_rate) if rs else None, "bias": _r(rs.bias) if rs else None,
                          "state": rs.state if rs else None, "judge_changed": bool(rs.judge_changed) if rs else False})
    items.sort(key=lambda x: (x["at"], x["run_id"], x["metric"] or ""))
    drift = [{"metric": v.metric, "drifted": v.drifted, "since_run": v.since_run, "baseline_run": v.baseline_run,
              "shift": _r(v.shift), "direction": v.direction, "runs": len(v.runs),
              "evidence": list(v.words[:2])} for v in sorted(verdicts, key=lambda v: v.metric)]
    note = None if runs else "no calibration run in the window"
    return _section("ok", note, items, drift=drift, changes=judge_changes)


# --- SLOs ---------------------------------------------------------------------------------------

def _slo_section(cfg, store, at_ms: int, since_ms: int) -> tuple[dict, list]:
    from oncall_ai.slos import evaluate_all

    if not cfg.slos:
        return _section("not_configured", "not configured: no `slos:` in the config"), []
    statuses = evaluate_all(store, cfg, at_ms)
    alerts: dict[str, int] = {}
    for d in store.get_docs("action", since=since_ms, until=at_ms + 1):
        b = d.body
        if b.get("kind") == "notify" and b.get("action") == "trigger" and b.get("ok"):
            alerts[b.get("slo")] = alerts.get(b.get("slo"), 0) + 1
    items = [{"slo": st.name, "feature": st.feature, "metric": st.metric, "state": st.state,
              "sli": _r(st.sli), "objective": st.objective, "window": format_duration(st.period_ms),
              "budget_left": _r(st.budget_left), "events": st.n, "alerts_sent": alerts.get(st.name, 0),
              "reason": st.reasons[0] if st.reasons else None} for st in sorted(statuses, key=lambda s: s.name)]
    return _section("ok", None, items), statuses


# --- incidents and rollbacks --------------------------------------------------------------------

def _incident_section(store, at_ms: int, since_ms: int) -> dict:
    from oncall_ai.incidents import exported_cases
    from oncall_ai.timeutil import parse_time_ms

    items = []
    for b in store.get_docs("incident", until=at_ms + 1):
        body = b.body
        resolved = body.get("resolved_at")
        resolved_ms = parse_time_ms(resolved) if resolved else None
        if resolved_ms is not None and resolved_ms <= at_ms:
            if resolved_ms < since_ms:
                continue
            state = "resolved"
        else:
            state = body.get("state") if resolved_ms is None else "acknowledged" if body.get("acked_at") else "open"
        cases = len(exported_cases(store, body["id"]))
        pending = []
        if cases:
            pending.append(f"add the {cases} exported eval case(s) to the {body['feature']} eval suite")
        else:
            pending.append(f"export the failing requests as eval cases: oncall-ai incident export-cases {body['id']}")
        if state == "resolved":
            pending.append(f"finish the postmortem: oncall-ai incident postmortem {body['id']}")
        cause = (body.get("cause") or {}).get("id")
        suspect = (body.get("suspect") or {}).get("change_id")
        items.append({"incident": body["id"], "title": body.get("title"), "state": state,
                      "severity": body.get("severity"), "feature": body.get("feature"), "metric": body.get("metric"),
                      "slice": body.get("scope") or {}, "onset": body.get("onset"), "opened_at": body.get("opened_at"),
                      "resolved_at": resolved if state == "resolved" else None,
                      "resolution": body.get("resolution") if state == "resolved" else None,
                      "change_id": cause or suspect, "cause_confirmed": cause is not None,
                      "eval_cases_exported": cases, "pending": pending})
    items.sort(key=lambda x: (x["state"] == "resolved", x["opened_at"] or "", x["incident"]))
    return _section("ok", None if items else "no open incidents and none resolved in the window", items)


def _rollback_section(store, at_ms: int, since_ms: int) -> dict:
    from oncall_ai.incidents import ROLLBACK_ACTIONS

    items = []
    for d in store.get_docs("action", since=since_ms, until=at_ms + 1):
        b = d.body
        if b.get("kind") not in ROLLBACK_ACTIONS:
            continue
        undoes = list(b.get("undoes") or [])
        items.append({"action": d.id, "at": format_time(d.ts), "kind": b.get("kind"), "target": b.get("target"),
                      "commit": b.get("after"), "change_id": undoes[0] if undoes else None, "undoes": undoes,
                      "to": b.get("to"), "repo": b.get("repo"), "branch": b.get("branch"),
                      "pushed": bool((b.get("pushed") or {}).get("ok")), "incident": b.get("incident"),
                      "by": b.get("by")})
    items.sort(key=lambda x: (x["at"], x["action"]))
    return _section("ok", None if items else "no rollbacks in the window", items)


# --- the whole ----------------------------------------------------------------------------------

def build_digest(cfg, store, *, at_ms: int, since_ms: int, settings: DigestSettings | None = None,
                 changes_fn=None) -> dict:
    st = settings or DigestSettings.from_config(cfg)
    doc: dict = {"schema": SCHEMA, "title": "oncall-ai handoff" + (f": {st.team}" if st.team else ""),
                 "since": format_time(since_ms), "at": format_time(at_ms),
                 "window": format_duration(at_ms - since_ms), "notes": []}

    # Changes: every source, once, for the change sections, borderline and judge.
    if changes_fn is None:
        from oncall_ai.sources.changes import collect_changes as changes_fn  # noqa: N813
    changes, problems = [], []
    try:
        cs = changes_fn(cfg, store, since_ms, at_ms, with_diffs=True)
        changes, problems = list(cs.changes), list(cs.problems)
    except OncallError as e:
        problems = [f"changes could not be read: {e.message}"]
    except Exception as e:  # a broken source must not take the handoff down
        problems = [f"changes could not be read ({type(e).__name__}: {e})"]
    in_window = [c for c in changes if since_ms <= c.at < at_ms]
    doc["prompt_changes"], doc["model_migrations"], doc["other_changes"] = _changes_sections(cfg, in_window, problems)

    # SLOs first: a paging SLO keeps its feature and metric out of the borderline list.
    try:
        doc["slos"], statuses = _slo_section(cfg, store, at_ms, since_ms)
    except OncallError as e:
        doc["slos"], statuses = _section("error", f"SLOs could not be evaluated: {e.message}"), []
    doc["incidents"] = _incident_section(store, at_ms, since_ms)
    # (feature, metric) -> (who is on it, until when): open incidents and paging SLOs for good,
    # a resolved incident for drops that started before it was resolved.
    covered: dict[tuple[str, str], tuple[str, int | None]] = {}
    from oncall_ai.timeutil import parse_time_ms

    for it in doc["incidents"]["items"]:
        key, label = (it["feature"], it["metric"]), f"incident {it['incident']} ({it['state']})"
        until = parse_time_ms(it["resolved_at"]) if it.get("resolved_at") else None
        if key not in covered or until is None:
            covered[key] = (label, until)
    for s in statuses:
        if s.state == "page":
            covered[(s.feature, s.metric)] = (f"SLO {s.name} (paging)", None)
    try:
        drops, notes = _borderline_drops(cfg, store, at_ms, since_ms, st, changes, covered)
        near, near_notes = _near_slo_slices(cfg, store, statuses, at_ms, since_ms, st)
        notes += near_notes
        items = sorted(drops, key=lambda x: (x["feature"], x["metric"], sorted(x["slice"].items())))
        items += near
        doc["borderline"] = _section("ok", "; ".join(notes) or None, items)
    except OncallError as e:
        doc["borderline"] = _section("error", f"borderline slices could not be computed: {e.message}")
    try:
        doc["judge"] = _judge_section(cfg, store, at_ms, since_ms, in_window)
    except OncallError as e:
        doc["judge"] = _section("error", f"judge: {e.message}", drift=[], changes=[])
    doc["rollbacks"] = _rollback_section(store, at_ms, since_ms)
    doc["notes"] = problems
    return {k: doc[k] for k in ("schema", "title", "since", "at", "window", *SECTIONS, "notes")}
