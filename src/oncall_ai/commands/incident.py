"""`oncall-ai incident open|list|show|ack|resolve|postmortem|export-cases`: incident records for
silent regressions, their postmortem drafts, and their worst requests as eval cases."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from oncall_ai.commands import AtOpt, FeatureOpt, JsonOpt, MetricOpt, SinceOpt, get_context

incident_app = typer.Typer(
    name="incident", help="Incident records: open from triage, ack, resolve with the causing change, "
                          "postmortem draft, export the failing requests as eval cases.",
    no_args_is_help=True, rich_markup_mode=None)

IdArg = Annotated[str, typer.Argument(metavar="ID", help="The incident id (INC-YYYYMMDD-N).")]
NoteOpt = Annotated[str | None, typer.Option("--note", metavar="TEXT", help="A note for the record.")]
ByOpt = Annotated[str | None, typer.Option("--by", metavar="NAME",
                                           help="Who (default: $ONCALL_AI_USER, else the login name).")]


def register(app: typer.Typer) -> None:
    app.add_typer(incident_app, name="incident")


def _print_json(obj) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def _note(msg: str) -> None:
    print(msg, file=sys.stderr)


@incident_app.command("open")
def open_cmd(
    ctx: typer.Context,
    from_triage: Annotated[bool, typer.Option("--from-triage", help="Run triage and open an incident for the worst "
                                                                    "regression it finds (within --feature/--metric).")] = False,
    feature: FeatureOpt = None,
    metric: MetricOpt = None,
    title: Annotated[str | None, typer.Option("--title", metavar="TEXT", help="Title (default: what triage found).")] = None,
    severity: Annotated[str | None, typer.Option("--severity", metavar="sev1..sev4",
                                                 help="Severity (default sev2 for a detected regression, else sev3).")] = None,
    since: SinceOpt = None,
    at: AtOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Open another even when one is open for the same feature and metric.")] = False,
    by: ByOpt = None,
    json_out: JsonOpt = False,
) -> int:
    """Open an incident, keeping a snapshot of the triage finding (onset, slices, hypotheses).

    With --from-triage, the worst detected regression; exit 1 when triage finds none. Otherwise
    give --feature and --metric. When one is already open for that feature and metric, it is
    shown and nothing new is opened (exit 0)."""
    from oncall_ai.errors import UsageError
    from oncall_ai.incidents import open_incident
    from oncall_ai.timeutil import resolve_at, resolve_since

    c = get_context(ctx)
    cfg = c.config()
    at_ms = resolve_at(at)
    since_ms = resolve_since(since, at_ms)
    if since_ms >= at_ms:
        raise UsageError("--since must be before --at")
    res = open_incident(cfg, c.store(), at_ms=at_ms, since_ms=since_ms, feature=feature, metric=metric,
                        from_triage=from_triage, title=title, severity=severity, force=force, by=by,
                        since_text=since or "24h")
    b = res.incident
    for n in res.notes:
        _note(f"note: {n}")
    if json_out:
        _print_json({"schema": "oncall-ai/incident-open/v1", "created": res.created, "incident": b})
        return 0
    verb = "opened" if res.created else "already open"
    print(f"{verb}: {b['id']} [{b['severity']}] {b['title']}")
    s = b.get("suspect")
    if s and res.created:
        print(f"  suspect: {s.get('kind')} {s.get('target')} change {s.get('change_id') or '-'} (score {s.get('score')})")
        if s.get("rollback"):
            print(f"  rollback: {s['rollback'].replace(' --yes', '')} --incident {b['id']} --yes")
        if s.get("runbook"):
            print(f"  runbook: {s['runbook']}")
    print(f"next: oncall-ai incident ack {b['id']}; after the fix: oncall-ai incident resolve {b['id']} "
          "--cause CHANGE --resolution rollback")
    return 0


@incident_app.command("list")
def list_cmd(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option("--state", metavar="STATE",
                                              help="open, acknowledged, resolved, or active (open or acknowledged).")] = None,
    json_out: JsonOpt = False,
) -> int:
    """List incidents, oldest first."""
    from oncall_ai.errors import UsageError
    from oncall_ai.incidents import STATES, list_incidents
    from oncall_ai.report.incident import list_json, list_text

    if state is not None and state not in (*STATES, "active"):
        raise UsageError(f"--state {state!r}: use one of {', '.join((*STATES, 'active'))}")
    bodies = list_incidents(get_context(ctx).store(), state=state)
    if json_out:
        _print_json(list_json(bodies))
    else:
        sys.stdout.write(list_text(bodies))
    return 0


def _views(cfg, store, body, at_ms):
    from oncall_ai.incidents import detection, exported_cases, impact, timeline

    return (timeline(cfg, store, body, at_ms), impact(cfg, store, body, at_ms), detection(cfg, store, body, at_ms),
            len(exported_cases(store, body["id"])))


def _view_at(body: dict, at: str | None) -> int:
    """Views of an incident (impact, timeline) are taken at --at, else now."""
    from oncall_ai.timeutil import resolve_at

    return resolve_at(at)


@incident_app.command("show")
def show_cmd(ctx: typer.Context, incident_id: IdArg, at: AtOpt = None, json_out: JsonOpt = False) -> int:
    """One incident: state, suspect and cause, measured impact, detection time and the timeline
    (changes, onset, pages, state changes, rollbacks, exported eval cases)."""
    from oncall_ai.incidents import get_incident
    from oncall_ai.report.incident import show_json, show_text

    c = get_context(ctx)
    cfg, store = c.config(), c.store()
    body = get_incident(store, incident_id)
    tl, imp, det, cases = _views(cfg, store, body, _view_at(body, at))
    if json_out:
        _print_json(show_json(body, tl, imp, det, cases))
    else:
        sys.stdout.write(show_text(body, tl, imp, det, cases))
    return 0


@incident_app.command("ack")
def ack_cmd(ctx: typer.Context, incident_id: IdArg, note: NoteOpt = None, at: AtOpt = None, by: ByOpt = None,
            json_out: JsonOpt = False) -> int:
    """Acknowledge an open incident (someone is on it). Exit 1 when it is not open."""
    from oncall_ai.incidents import ack_incident
    from oncall_ai.timeutil import resolve_at

    body = ack_incident(get_context(ctx).store(), incident_id, at_ms=resolve_at(at), note=note, by=by)
    if json_out:
        _print_json({"schema": "oncall-ai/incident-ack/v1", "incident": body})
    else:
        print(f"acknowledged: {body['id']} at {body['acked_at']}")
    return 0


@incident_app.command("resolve")
def resolve_cmd(
    ctx: typer.Context,
    incident_id: IdArg,
    resolution: Annotated[str, typer.Option("--resolution", metavar="rollback|narrowed|accepted|false-alarm",
                                            help="How it ended: rolled back, narrowed (a fix for the slice), "
                                                 "accepted (a trade-off; open an eval ticket), or a false alarm.")],
    cause: Annotated[str | None, typer.Option("--cause", metavar="CHANGE",
                                              help="The id of the causing change as `changes list` gives it (a "
                                                   "commit sha or unique prefix, a recorded id). Default: the change "
                                                   "the incident's rollback undid.")] = None,
    note: NoteOpt = None,
    at: AtOpt = None,
    by: ByOpt = None,
    json_out: JsonOpt = False,
) -> int:
    """Resolve an incident with its causing change and how it was resolved. Exit 1 when already
    resolved, 2 for an unknown change id."""
    from oncall_ai.incidents import resolve_incident
    from oncall_ai.timeutil import resolve_at

    c = get_context(ctx)
    body, notes = resolve_incident(c.config(), c.store(), incident_id, at_ms=resolve_at(at), resolution=resolution,
                                   cause=cause, note=note, by=by)
    for n in notes:
        _note(f"note: {n}")
    if json_out:
        _print_json({"schema": "oncall-ai/incident-resolve/v1", "incident": body})
        return 0
    cause_txt = f", cause {body['cause']['id']}" if body.get("cause") else ""
    print(f"resolved: {body['id']} at {body['resolved_at']} ({body['resolution']}{cause_txt})")
    print(f"next: oncall-ai incident export-cases {body['id']}; oncall-ai incident postmortem {body['id']}")
    return 0


@incident_app.command("postmortem")
def postmortem_cmd(
    ctx: typer.Context,
    incident_id: IdArg,
    at: AtOpt = None,
    out: Annotated[str | None, typer.Option("--out", "-o", metavar="FILE", help="Write to FILE instead of stdout.")] = None,
) -> int:
    """Print a postmortem draft in Markdown: summary, impact measured from the scores, detection
    time, root cause and trigger, resolution, timeline, action items (prevent/mitigate/process)."""
    from oncall_ai.incidents import get_incident, linked_rollbacks
    from oncall_ai.report.incident import postmortem_markdown

    c = get_context(ctx)
    cfg, store = c.config(), c.store()
    body = get_incident(store, incident_id)
    at_ms = _view_at(body, at)
    tl, imp, det, cases = _views(cfg, store, body, at_ms)
    text = postmortem_markdown(body, tl, imp, det, cases, linked_rollbacks(store, body, until_ms=at_ms))
    if out:
        from pathlib import Path

        from oncall_ai.errors import DataError

        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as e:
            raise DataError(f"cannot write {out}: {e.strerror or e}") from None
        _note(f"postmortem draft written to {out}")
    else:
        sys.stdout.write(text)
    return 0


@incident_app.command("export-cases")
def export_cases_cmd(
    ctx: typer.Context,
    incident_id: IdArg,
    out: Annotated[str, typer.Option("--out", "-o", metavar="DIR", help="Folder for the files (created if missing).")] = "eval-cases",
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", help="At most N new cases.")] = 50,
    at: AtOpt = None,
    json_out: JsonOpt = False,
) -> int:
    """Export the lowest-scoring requests of the regression's window and slices as eval cases:
    JSON Lines fixtures (input, output, score, slice, versions, request id) and a promptfoo tests
    YAML. Never exports a request twice; without text in the events, request ids only."""
    from pathlib import Path

    from oncall_ai.eval_cases import export_cases
    from oncall_ai.incidents import get_incident
    from oncall_ai.timeutil import format_time, now_ms

    c = get_context(ctx)
    cfg, store = c.config(), c.store()
    body = get_incident(store, incident_id)
    at_ms = _view_at(body, at)
    res = export_cases(cfg, store, body, Path(out), limit=limit, at_ms=at_ms, now_ms=now_ms() if at is None else at_ms)
    if json_out:
        _print_json({"schema": "oncall-ai/export-cases/v1", "incident": res.incident, "batch": res.batch,
                     "files": res.files, "exported": len(res.cases), "already_exported": res.already_exported,
                     "with_text": res.with_text, "scope": res.scope,
                     "window": [format_time(t) for t in res.window] if res.window else None,
                     "cases": [{k: v for k, v in case.items() if k not in ("input", "output")} for case in res.cases],
                     "notes": res.notes})
    else:
        if res.cases:
            print(f"exported {len(res.cases)} case(s) of {body['feature']}/{body['metric']} (lowest scores first, "
                  f"batch {res.batch}):")
            for f in res.files:
                print(f"  {f}")
        for n in res.notes:
            _note(f"note: {n}")
        if res.already_exported and res.cases:
            _note(f"note: {res.already_exported} case(s) exported before were skipped")
    return 0
