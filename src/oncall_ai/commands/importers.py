"""`oncall-ai import langfuse`: bring scores from an observability platform into the store."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from oncall_ai.commands import JsonOpt, get_context

import_app = typer.Typer(help="Import scores from an LLM observability platform (Langfuse).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(import_app, name="import")


@import_app.command("langfuse")
def langfuse(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option("--since", metavar="DURATION|TIME",
                                              help="Import scores from this time on (default: where the last import "
                                                   "stopped, or 24h back on the first run).")] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="DURATION|TIME",
                                              help="Up to this time (default: now minus langfuse.lag, 10m: Langfuse's "
                                                   "read API can lag that much behind).")] = None,
    project: Annotated[str | None, typer.Option("--project", "-p", metavar="NAME",
                                                help="Only this project of langfuse.projects (default: every project).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary on stderr.")] = False,
    json_out: JsonOpt = False,
) -> int:
    """Import Langfuse scores as eval events: score name -> metric, EVAL/ANNOTATION/API -> judge/user/check,
    trace name and metadata -> feature, slices and versions (all configurable in `langfuse:`).

    Incremental: each project's high-water mark is stored, and an interrupted import resumes at the
    page it stopped at. Idempotent: the score id is the event id. Exit 1 when scores were rejected."""
    from oncall_ai.report.console import progress_enabled, warn
    from oncall_ai.sources.langfuse import Client, load_settings, run_import
    from oncall_ai.timeutil import format_time, now_ms, resolve_since, resolve_until

    c = get_context(ctx)
    cfg = c.config(required=False)
    settings = load_settings(cfg, project)
    at = now_ms()
    end = resolve_until(until, at) if until else at - settings.lag_ms
    start = resolve_since(since, at) if since else None
    default_start = resolve_since(None, at)  # 24h back
    if start is not None and start >= end:
        from oncall_ai.errors import UsageError

        raise UsageError("the window is empty: --since must be before --until")
    store = c.store()
    show = progress_enabled(quiet)
    status = None
    if show:
        from oncall_ai.report.console import stderr_console

        status = stderr_console().status("importing from Langfuse")
        status.start()
    results = []
    try:
        for proj in settings.projects:
            def on_wait(message: str) -> None:
                if not quiet:
                    warn(message)

            client = Client(proj, timeout=settings.timeout, max_retries=settings.max_retries, on_wait=on_wait)

            def progress(r, _name=proj.name) -> None:
                if status is not None:
                    status.update(f"Langfuse {_name}: {r.pages:,} pages, {r.scores:,} scores, {r.stored:,} new")

            try:
                results.append(run_import(store, cfg, settings, proj, start_ms=start, end_ms=end,
                                          default_start_ms=default_start, client=client, progress=progress))
            finally:
                client.close()
    finally:
        if status is not None:
            status.stop()
    rejected = sum(r.rejected for r in results)
    if json_out:
        import orjson

        sys.stdout.write(orjson.dumps({
            "schema": "oncall-ai/import-langfuse/v1",
            "projects": [{
                "project": r.project, "api": r.api, "pages": r.pages, "scores": r.scores, "stored": r.stored,
                "duplicates": r.duplicates, "skipped": r.skipped, "rejected": r.rejected, "rejects": r.rejects,
                "resumed": r.resumed, "high_water": format_time(r.high_water),
                "windows": [[format_time(a), format_time(b)] for a, b in r.windows]} for r in results],
        }).decode() + "\n")
    for r in results:
        for line in r.rejects:
            print(f"langfuse:{r.project}: {line}", file=sys.stderr)
        if quiet or json_out:
            continue
        skipped = sum(r.skipped.values())
        why = f" ({'; '.join(f'{n} {k}' for k, n in sorted(r.skipped.items()))})" if skipped else ""
        mark = f"; next import starts at {format_time(r.high_water)}" if r.high_water is not None else ""
        print(f"Langfuse {r.project}: {r.scores:,} scores read ({r.api or '-'} API), {r.stored:,} stored, "
              f"{r.duplicates:,} already there, {skipped:,} skipped{why}, {r.rejected:,} rejected{mark}",
              file=sys.stderr)
    return 1 if rejected else 0
