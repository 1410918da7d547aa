"""`oncall-ai changes list|show|record|import`: what changed, from every source, as one timeline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from oncall_ai.commands import AtOpt, JsonOpt, SinceOpt, UntilOpt, get_context

changes_app = typer.Typer(
    name="changes",
    help="What changed: prompt commits, model pins, index versions, judge configs, recorded "
         "changes and versions seen in traffic, as one timeline.",
    no_args_is_help=True,
)

REJECTS_SHOWN = 10

KindOpt = Annotated[list[str] | None, typer.Option(
    "--kind", "-k", metavar="K",
    help="Only these kinds (repeat or comma-separate): prompt, model, index, judge, traffic, config, other.")]
FeatureListOpt = Annotated[str | None, typer.Option("--feature", "-f", metavar="F",
                                                    help="Only changes that can affect this feature.")]


def register(app: typer.Typer) -> None:
    app.add_typer(changes_app, name="changes")


def _kinds(values: list[str] | None) -> set[str] | None:
    from oncall_ai.errors import UsageError
    from oncall_ai.model import CHANGE_KINDS

    if not values:
        return None
    kinds = {k.strip() for v in values for k in v.split(",") if k.strip()}
    bad = sorted(kinds - set(CHANGE_KINDS))
    if bad:
        raise UsageError(f"--kind: {', '.join(bad)} is not a kind; use {', '.join(CHANGE_KINDS)}")
    return kinds or None


def open_store_for_reading(ctx):
    """The store if there is one; (None, note) when the configured SQLite file does not exist yet;
    (None, problem) as an OncallError when it exists but cannot be opened."""
    from oncall_ai.errors import OncallError

    cfg = ctx.config()
    url = cfg.store
    if "://" not in url and not Path(url).exists():
        return None, f"no store at {url} yet: recorded changes and traffic versions not read", None
    try:
        return ctx.store(create=False), None, None
    except OncallError as e:
        return None, None, e


def _collect(ctx, *, start, end, feature, kinds, with_diffs, **kw):
    from oncall_ai.sources.changes import collect_changes

    cfg = ctx.config()
    store, note, err = open_store_for_reading(ctx)
    cs = collect_changes(cfg, store, start, end, feature=feature, kinds=kinds, with_diffs=with_diffs, **kw)
    if note:
        cs.notes.append(note)
    if err is not None:
        cs.problem(f"store {cfg.store}: {err.message} (recorded changes and traffic versions not read)",
                   err.exit_code)
    return cfg, cs


@changes_app.command("list")
def list_cmd(
    ctx: typer.Context,
    since: SinceOpt = None,
    until: UntilOpt = None,
    at: AtOpt = None,
    feature: FeatureListOpt = None,
    kind: KindOpt = None,
    json_out: JsonOpt = False,
    diff: Annotated[bool, typer.Option("--diff", help="Show each change's diff (coloured on a terminal).")] = False,
):
    """List every change in the window (default: the last 24h) from every source, oldest first.

    Exit 0 when every source was read, 1 when a source had a data problem (a file that does not
    parse, a shallow clone), 2 when one is misconfigured; the other sources are still listed."""
    from oncall_ai.errors import UsageError
    from oncall_ai.report.changes import changes_json, print_problems, print_timeline
    from oncall_ai.timeutil import resolve_at, resolve_since, resolve_until

    c = get_context(ctx)
    at_ms = resolve_at(at)
    start = resolve_since(since, at_ms)
    end = resolve_until(until, at_ms)
    if start >= end:
        raise UsageError("--since must be before --until")
    kinds = _kinds(kind)
    # Diffs cost one `git show` per repo: read them only when they are shown.
    cfg, cs = _collect(c, start=start, end=end, feature=feature, kinds=kinds, with_diffs=diff)
    if json_out:
        sys.stdout.write(json.dumps(changes_json(cs, cfg, at_ms=at_ms, with_diff=diff), ensure_ascii=False) + "\n")
    else:
        print_timeline(cs, cfg, at_ms=at_ms, with_diff=diff, feature=feature, kinds=kinds)
    print_problems(cs)
    raise typer.Exit(cs.exit_code)


@changes_app.command("show")
def show_cmd(
    ctx: typer.Context,
    change_id: Annotated[str, typer.Argument(metavar="ID", help="A commit sha (or a unique prefix), a recorded id, or a traffic id.")],
    json_out: JsonOpt = False,
):
    """Show one change in full, with its diff. A commit that changed several pins shows each."""
    from oncall_ai.report.changes import changes_json, print_change, print_problems
    from oncall_ai.sources.show import find_change

    c = get_context(ctx)
    cfg = c.config()
    store, _note, err = open_store_for_reading(c)
    cs = find_change(cfg, store, change_id.strip())
    if err is not None and not cs.changes:
        cs.problem(f"store {cfg.store}: {err.message} (recorded changes not searched)", err.exit_code)
    if json_out:
        from oncall_ai.timeutil import now_ms

        doc = changes_json(cs, cfg, at_ms=now_ms(), with_diff=True, schema="oncall-ai/change/v1")
        for k in ("at", "since", "until"):
            doc.pop(k, None)
        sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
    else:
        print_change(cs.changes, cfg)
    print_problems(cs)
    raise typer.Exit(cs.exit_code)


@changes_app.command("record")
def record_cmd(
    ctx: typer.Context,
    kind: Annotated[str, typer.Option("--kind", metavar="K", help="prompt, model, index, judge, traffic, config or other.")],
    target: Annotated[str, typer.Option("--target", metavar="T", help="What changed: a prompt path, pin key, index, metric, ...")],
    from_value: Annotated[str | None, typer.Option("--from", metavar="OLD", help="The value before.")] = None,
    to_value: Annotated[str | None, typer.Option("--to", metavar="NEW", help="The value after.")] = None,
    at: Annotated[str | None, typer.Option("--at", metavar="TIME", help="When it changed (RFC 3339 or epoch seconds; default: now).")] = None,
    by: Annotated[str | None, typer.Option("--by", metavar="WHO", help="Who changed it.")] = None,
    summary: Annotated[str | None, typer.Option("--summary", metavar="TEXT", help="One line on what and why.")] = None,
    rollback: Annotated[str | None, typer.Option("--rollback", metavar="CMD", help="How to undo it (shown, never run).")] = None,
    features: Annotated[list[str] | None, typer.Option("--features", metavar="F,...", help="Features it can affect (repeat or comma-separate; default: every feature).")] = None,
    change_id: Annotated[str | None, typer.Option("--id", metavar="ID", help="Its id (default: a stable id derived from the fields).")] = None,
):
    """Record a change that lives outside git (an index rebuilt by a pipeline, a traffic campaign).
    Recording the same id again changes nothing."""
    from oncall_ai.errors import UsageError
    from oncall_ai.sources.recorded import InvalidRecord, generated_id, normalize_record, record_change
    from oncall_ai.timeutil import format_time, now_ms

    rec: dict = {"id": change_id or "pending", "ts": at if at is not None else format_time(now_ms()),
                 "kind": kind, "target": target}
    feats = [f.strip() for v in (features or []) for f in v.split(",") if f.strip()]
    if feats:
        rec["features"] = feats
    for k, v in (("from", from_value), ("to", to_value), ("by", by), ("summary", summary), ("rollback", rollback)):
        if v is not None:
            rec[k] = v
    try:
        body = normalize_record(rec)
    except InvalidRecord as e:
        msg = str(e)
        key = msg.split(":", 1)[0]
        opt = {"ts": "--at", "id": "--id"}.get(key, f"--{key}" if key in rec else "")
        raise UsageError(f"{opt}: {msg}" if opt and not msg.startswith(opt) else msg) from None
    if change_id is None:
        body["id"] = generated_id(body)
    store = get_context(ctx).store(create=True)
    stored, new = record_change(store, body)
    if new:
        typer.echo(f"recorded change {body['id']}: {body['kind']} {body['target']} at {body['ts']}")
    else:
        typer.echo(f"change {body['id']} was already recorded (at {stored.get('ts')}); nothing changed")


@changes_app.command("import")
def import_cmd(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE", help="JSON Lines of recorded changes ({id, ts, kind, target, features, from, to, by, summary, rollback}); - reads stdin.")],
    json_out: JsonOpt = False,
):
    """Import recorded changes from JSON Lines. Every valid record is stored (ids already stored are
    skipped); each rejected one is named with file:line and the reason, and the exit status is 1.
    A record naming a feature the config does not declare is stored with a warning."""
    from oncall_ai.sources.recorded import import_records

    c = get_context(ctx)
    store = c.store(create=True)
    cfg = c.config(required=False)
    result = import_records(store, file, known_features=cfg.features if cfg is not None else ())
    shown = result.rejected[:REJECTS_SHOWN]
    for msg in shown:
        print(msg, file=sys.stderr)
    if len(result.rejected) > len(shown):
        print(f"... and {len(result.rejected) - len(shown)} more rejected record(s)", file=sys.stderr)
    for msg in result.warnings[:REJECTS_SHOWN]:
        print(f"warning: {msg}", file=sys.stderr)
    if len(result.warnings) > REJECTS_SHOWN:
        print(f"... and {len(result.warnings) - REJECTS_SHOWN} more warning(s)", file=sys.stderr)
    print(f"{result.stored} change(s) recorded, {result.duplicates} already there, "
          f"{len(result.rejected)} rejected ({result.read} record(s) in {file}) -> {store.url}", file=sys.stderr)
    if json_out:
        sys.stdout.write(json.dumps({
            "schema": "oncall-ai/changes-import/v1", "file": file, "store": store.url, "read": result.read,
            "stored": result.stored, "duplicates": result.duplicates, "rejected": result.rejected,
            "warnings": result.warnings}, ensure_ascii=False) + "\n")
    return 1 if result.rejected else 0
