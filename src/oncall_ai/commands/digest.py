"""`oncall-ai digest`: the weekly handoff, for the terminal, the wiki (Markdown), bots (JSON) and
Slack."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from oncall_ai.commands import AtOpt, JsonOpt, SinceOpt, get_context

FORMATS = ("text", "markdown", "json")


def register(app: typer.Typer) -> None:
    app.command("digest")(digest)


def digest(
    ctx: typer.Context,
    since: SinceOpt = None,
    at: AtOpt = None,
    fmt: Annotated[str, typer.Option("--format", metavar="text|markdown|json",
                                     help="text for the terminal, markdown for the wiki (the same data gives the "
                                          "same bytes), json for bots (oncall-ai/digest/v1).")] = "text",
    json_out: JsonOpt = False,
    post: Annotated[str | None, typer.Option("--post", metavar="slack",
                                             help="Also post a summary to the Slack incoming webhook of the config's "
                                                  "`notify:` section (the URL is read from its env var, never printed).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="With --post: show what would be posted, send nothing.")] = False,
    out: Annotated[str | None, typer.Option("--out", "-o", metavar="FILE", help="Write the digest to FILE instead of stdout.")] = None,
) -> int:
    """The handoff for the next on-call (default: the last 7 days): prompt diffs that landed, model
    migrations in flight, borderline eval slices, judge calibration and drift, SLO budgets, open
    incidents and their pending eval cases, rollbacks. Each entry from a change carries its change id.

    Sections whose source is not configured say so. Exit 0; 1 when posting failed; 2 usage/config."""
    from oncall_ai.digest import build_digest
    from oncall_ai.errors import UsageError
    from oncall_ai.timeutil import resolve_at, resolve_since

    if json_out:
        fmt = "json"
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if post is not None and post != "slack":
        raise UsageError(f"--post {post!r}: only slack is supported")
    if dry_run and post is None:
        raise UsageError("--dry-run goes with --post slack")
    c = get_context(ctx)
    cfg = c.config()
    at_ms = resolve_at(at)
    since_ms = resolve_since(since, at_ms, default="7d")
    if since_ms >= at_ms:
        raise UsageError("--since must be before --at")
    settings = None
    if post:
        from oncall_ai.actions.notify import load_settings

        settings = load_settings(cfg)  # a misconfigured notify section fails before any work
        if not settings.targets["slack"].configured and not dry_run:
            from oncall_ai.errors import ConfigError

            raise ConfigError(f"--post slack: Slack is not configured: set {settings.targets['slack'].secret_from} "
                              "to the incoming webhook URL (or name another variable in notify.slack_webhook_env)")
    doc = build_digest(cfg, c.store(), at_ms=at_ms, since_ms=since_ms)
    from oncall_ai.report.console import warn

    for note in doc["notes"]:  # a broken source degrades its sections; say so where people look
        warn(note)
    rendered = _render(doc, fmt)
    if out:
        from pathlib import Path

        from oncall_ai.errors import DataError

        try:
            Path(out).write_text(rendered, encoding="utf-8")
        except OSError as e:
            raise DataError(f"cannot write {out}: {e.strerror or e}") from None
        print(f"digest written to {out}", file=sys.stderr)
    else:
        sys.stdout.write(rendered)
    if post:
        return _post(c, cfg, doc, settings, at_ms=at_ms, dry_run=dry_run)
    return 0


def _render(doc: dict, fmt: str) -> str:
    if fmt == "json":
        import orjson

        return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
    from oncall_ai.report.digest import markdown, text

    return markdown(doc) if fmt == "markdown" else text(doc)


def _post(c, cfg, doc: dict, settings, *, at_ms: int, dry_run: bool) -> int:
    """Plan (stderr), then send, then record the action. The webhook URL is never printed."""
    import hashlib
    import json

    from oncall_ai.actions.notify import post_json
    from oncall_ai.digest import DigestSettings
    from oncall_ai.report.digest import slack_payload
    from oncall_ai.store.base import Doc
    from oncall_ai.timeutil import format_time, now_ms

    target = settings.targets["slack"]
    payload = slack_payload(doc, DigestSettings.from_config(cfg).max_items)
    size = sum(len(b["text"]["text"]) for b in payload["blocks"])
    err = sys.stderr
    print(f"post plan: the digest summary ({len(payload['blocks'])} block(s), {size} characters) to Slack via "
          f"{target.secret_from}" + (" [dry run: nothing is sent]" if dry_run else ""), file=err)
    if dry_run:
        print(json.dumps(payload, indent=2, ensure_ascii=False), file=err)
        return 0
    import httpx

    with httpx.Client(headers={"User-Agent": "oncall-ai"}, follow_redirects=False) as client:
        res = post_json(client, target.url, payload, what=f"slack ({target.secret_from})", settings=settings)
    sent_at = now_ms()
    digest_id = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    try:
        c.store().put_docs("action", [Doc("action", f"digest-post:{doc['at']}:{digest_id}:{sent_at}", sent_at, {
            "kind": "digest-post", "target": "slack", "via": target.secret_from, "ok": res.ok, "status": res.status,
            "attempts": res.attempts, "error": res.error, "at": format_time(sent_at), "since": doc["since"],
            "until": doc["at"], "payload": payload})])
    except Exception as e:  # noqa: BLE001 - the post happened (or not); a failed record must not hide that
        print(f"warning: recording the post in the store failed: {e}", file=err)
    if not res.ok:
        print(f"error: posting the digest failed: {res.error}", file=err)
        return 1
    print(f"posted to Slack ({target.secret_from}) in {res.attempts} attempt(s)", file=err)
    return 0
