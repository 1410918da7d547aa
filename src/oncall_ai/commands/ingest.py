"""`oncall-ai ingest FILE...`"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from oncall_ai.commands import get_context


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)


def ingest(
    ctx: typer.Context,
    files: Annotated[list[str], typer.Argument(metavar="FILE...", help="JSON Lines (.jsonl, .jsonl.gz), CSV (.csv), or - for stdin.")],
    rejects: Annotated[str | None, typer.Option("--rejects", metavar="PATH",
                                                help="Write every rejected record (file, line, reason, raw text) to this JSON Lines file.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar and no summary on stderr.")] = False,
    max_line_bytes: Annotated[int, typer.Option("--max-line-bytes", metavar="N", help="Reject lines longer than this.")] = 1 << 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> int:
    """Store eval events: one JSON object a line with ts, feature, metric, value (required) and id,
    source, request_id, slice, model_id, prompt_version, index_version, judge_id, sample_rate, input,
    output. Every valid record is stored; every invalid one is named with file:line and reason. Exit 0 when none was rejected, 1 when any was, 2 for a missing
    file or bad config. Re-running is safe: records already stored (same id) are skipped."""
    from oncall_ai.ingest import REJECTS_SHOWN, ingest_files
    from oncall_ai.report.console import progress_enabled

    if max_line_bytes < 1:
        from oncall_ai.errors import UsageError

        raise UsageError(f"--max-line-bytes {max_line_bytes}: must be at least 1")
    c = get_context(ctx)
    cfg = c.config(required=False)
    store = c.store()
    show_progress = progress_enabled(quiet)
    bar = None
    if show_progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from oncall_ai.report.console import stderr_console

        bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} records"),
                       TimeElapsedColumn(), console=stderr_console(), transient=True)
        bar.start()
        tasks: dict[str, int] = {}

        def progress(name: str, n: int) -> None:
            if name not in tasks:
                size = os.path.getsize(name) if name != "<stdin>" and os.path.exists(name) else None
                tasks[name] = bar.add_task(os.path.basename(name), total=None if size else None)
            bar.update(tasks[name], completed=n)
    else:
        progress = None
    try:
        result = ingest_files(files, store, cfg, rejects_path=rejects, max_line_bytes=max_line_bytes, progress=progress)
    finally:
        if bar is not None:
            bar.stop()
    for r in result.rejects:
        where = f"{r.file}:{r.line}" if r.line > 0 else r.file
        print(f"{where}: {r.reason}", file=sys.stderr)
    if result.rejected > REJECTS_SHOWN:
        more = result.rejected - REJECTS_SHOWN
        tail = f"; all of them are in {rejects}" if rejects else "; use --rejects PATH to keep them all"
        print(f"... and {more:,} more rejected record(s){tail}", file=sys.stderr)
    if json_out:
        import orjson

        sys.stdout.write(orjson.dumps({
            "schema": "oncall-ai/ingest/v1", "files": result.files, "read": result.read, "stored": result.stored,
            "duplicates": result.duplicates, "rejected": result.rejected,
            "rejects": [{"file": r.file, "line": r.line, "reason": r.reason} for r in result.rejects],
        }).decode() + "\n")
    elif not quiet:
        print(f"{result.stored:,} stored, {result.duplicates:,} already there, {result.rejected:,} rejected "
              f"({len(result.files)} file(s)) -> {store.url}", file=sys.stderr)
    return 1 if result.rejected else 0
