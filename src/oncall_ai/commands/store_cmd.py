"""`oncall-ai store info|copy|rebuild-rollups`: look after the score store."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from oncall_ai.commands import JsonOpt, get_context

store_app = typer.Typer(help="Look after the score store: describe it, copy it to another backend, rebuild rollups.",
                        no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")


def _resolve(url: str) -> str:
    from pathlib import Path

    from oncall_ai.config import _resolve_store

    return _resolve_store(url, Path.cwd())


def _good_rules(cfg) -> dict:
    return {name: m.good for name, m in cfg.metrics.items()}


@store_app.command("info")
def info(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Argument(metavar="[URL]", help="A store URL or SQLite path (default: the config's store).")] = None,
    json_out: JsonOpt = False,
) -> int:
    """Backend, schema version, event and series counts, time range and documents of a store."""
    from oncall_ai.store import open_store
    from oncall_ai.store.tools import store_info
    from oncall_ai.timeutil import format_time

    c = get_context(ctx)
    cfg = c.config(required=False)
    store = open_store(_resolve(url), config=cfg, create=False) if url else c.store(create=False)
    try:
        data = store_info(store)
    finally:
        store.close()
    if json_out:
        import orjson

        out = {"schema": "oncall-ai/store-info/v1", **data,
               "first_event": format_time(data["first_event"]), "last_event": format_time(data["last_event"])}
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
        return 0
    lines = [
        ("store", data["url"]),
        ("backend", data["backend"] + (f" (server {data['server_version']})" if data.get("server_version") else "")),
        ("schema version", str(data["schema_version"])),
        ("events", f"{data['events']:,}"),
        ("series", f"{data['series']:,}"),
        ("features", ", ".join(data["features"]) or "-"),
        ("metrics", ", ".join(data["metrics"]) or "-"),
        ("time range", f"{format_time(data['first_event'])} .. {format_time(data['last_event'])}"
         if data["first_event"] is not None else "-"),
        ("documents", ", ".join(f"{k} {n:,}" for k, n in sorted(data["docs"].items())) or "-"),
    ]
    if data.get("bytes_on_disk") is not None:
        lines.append(("on disk", f"{data['bytes_on_disk'] / 1e6:,.1f} MB"))
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}")
    return 0


@store_app.command("copy")
def copy(
    ctx: typer.Context,
    src_url: Annotated[str, typer.Argument(metavar="SRC_URL", help="Store to read (SQLite path or clickhouse://host:8123/db).")],
    dst_url: Annotated[str, typer.Argument(metavar="DST_URL", help="Store to write (created or migrated as needed).")],
    restart: Annotated[bool, typer.Option("--restart", help="Ignore the saved progress and go through every event again "
                                                            "(still stores only what is missing).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary on stderr.")] = False,
    json_out: JsonOpt = False,
) -> int:
    """Copy every event and document from one store to another (e.g. SQLite to ClickHouse).

    Events go in time-ordered chunks; the destination remembers how far the copy got, so running
    the same command again after an interruption resumes there. Events are stored once by id."""
    from oncall_ai.errors import UsageError
    from oncall_ai.report.console import progress_enabled
    from oncall_ai.store import open_store
    from oncall_ai.store.tools import copy_store

    c = get_context(ctx)
    cfg = c.config(required=False)
    src_resolved, dst_resolved = _resolve(src_url), _resolve(dst_url)
    if src_resolved == dst_resolved:
        raise UsageError("SRC_URL and DST_URL are the same store")
    src = open_store(src_resolved, config=cfg, create=False)
    try:
        dst = open_store(dst_resolved, config=cfg, create=True)
    except BaseException:
        src.close()
        raise
    bar = None
    progress = None
    if progress_enabled(quiet):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from oncall_ai.report.console import stderr_console

        bar = Progress(TextColumn("copying"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} events"),
                       TimeElapsedColumn(), console=stderr_console(), transient=True)
        bar.start()
        task = bar.add_task("copy", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)
    try:
        result = copy_store(src, dst, _good_rules(cfg), restart=restart, progress=progress)
    finally:
        if bar is not None:
            bar.stop()
        src.close()
        dst.close()
    if json_out:
        import orjson

        sys.stdout.write(orjson.dumps({
            "schema": "oncall-ai/store-copy/v1", "source": src.url, "destination": dst.url,
            "events_read": result.events_read, "events_new": result.events_new, "docs": result.docs,
            "resumed_from": result.resumed_from}).decode() + "\n")
    elif not quiet:
        from oncall_ai.timeutil import format_time

        resumed = f" (resumed at {format_time(result.resumed_from)})" if result.resumed_from is not None else ""
        docs = sum(result.docs.values())
        print(f"{result.events_read:,} events read, {result.events_new:,} new, {docs:,} documents"
              f"{resumed}: {src.url} -> {dst.url}", file=sys.stderr)
    return 0


@store_app.command("rebuild-rollups")
def rebuild_rollups(ctx: typer.Context) -> int:
    """Recount the hourly rollups with the config's current `good` rules (after changing a rule,
    so queries read rollups again instead of raw events). Stop ingests while it runs."""
    c = get_context(ctx)
    cfg = c.config(required=False)
    store = c.store(create=False)
    cells = store.rebuild_rollups(_good_rules(cfg))
    print(f"rebuilt {cells:,} hourly cells in {store.url}", file=sys.stderr)
    return 0
