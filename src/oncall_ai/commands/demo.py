"""`oncall-ai demo [DIR]`: build a sandbox with a planted incident, ready for `oncall-ai triage`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from oncall_ai.commands import get_context

DEFAULT_DIR = "oncall-ai-demo"


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    ctx: typer.Context,
    dir: Annotated[str, typer.Argument(metavar="DIR", help=f"Folder for the sandbox (default: ./{DEFAULT_DIR}).")] = DEFAULT_DIR,
    scenario: Annotated[str, typer.Option("--scenario", "-s", metavar="KIND",
                                          help="The incident to plant (see --list-scenarios).")] = "prompt_change",
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Random seed: same seed, same sandbox.")] = 1,
    at: Annotated[str | None, typer.Option("--at", metavar="TIME", help="The sandbox's now: its events end here "
                                           "(RFC 3339 or epoch seconds; default: now, rounded down to 5 minutes).")] = None,
    run: Annotated[bool, typer.Option("--run", help="Then run `oncall-ai triage` in the sandbox.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Build in a non-empty DIR; a previous sandbox's files "
                                                        "there are replaced, other files are left alone.")] = False,
    list_scenarios: Annotated[bool, typer.Option("--list-scenarios", help="List the scenarios and exit.")] = False,
    no_ingest: Annotated[bool, typer.Option("--no-ingest", help="Only write the files; ingest them yourself.")] = False,
    days: Annotated[int, typer.Option("--days", metavar="N", help="Days of history.", min=2, max=90)] = 7,
    scale: Annotated[float, typer.Option("--scale", metavar="X", help="Multiply traffic volume (0.2 for a quick "
                                                                      "sandbox, 10 for a bench).", min=0.01, max=100.0)] = 1.0,
    store: Annotated[str | None, typer.Option("--store", metavar="URL",
                                              help="Put the sandbox's data in this store (an empty one: a SQLite path or "
                                                   "clickhouse://host:8123/db) instead of DIR/oncall-ai.db; the sandbox "
                                                   "config points there.")] = None,
) -> int:
    """Build a demo sandbox: a prompt repo and a platform repo (pins, indexes, judges) with a week
    of dated commits, a week of eval events for three features, recorded changes, a judge
    calibration set and runs, and an oncall-ai.yaml; then ingest it into the sandbox's store.

    Each scenario plants one incident (or none) and writes the answer to ground_truth.json.
    Without --at, the sandbox ends now, so `oncall-ai triage` in it finds the incident.
    With --store (or `oncall-ai --store URL demo`, or $ONCALL_AI_STORE) the data goes to that store,
    which must be empty: e.g. a new ClickHouse database."""
    from oncall_ai.demo import SCENARIOS
    from oncall_ai.errors import UsageError

    if list_scenarios:
        width = max(len(k) for k in SCENARIOS)
        for name, text in SCENARIOS.items():
            print(f"{name.ljust(width)}  {text}")
        return 0
    if scenario not in SCENARIOS:
        raise UsageError(f"--scenario: unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")
    from oncall_ai.demo import build_sandbox
    from oncall_ai.demo.generator import SANDBOX_ENTRIES, existing_entries, is_sandbox
    from oncall_ai.report.console import progress_enabled
    from oncall_ai.timeutil import resolve_at

    target = Path(dir)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{dir}: exists and is not a folder")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise UsageError(f"{dir}: the folder is not empty",
                             hint="choose another DIR, or add --force to replace the demo sandbox there "
                                  f"(only its own {', '.join(SANDBOX_ENTRIES[:8])}, ... are removed)")
        clash = existing_entries(target)
        if clash and not is_sandbox(target):
            raise UsageError(f"{dir}: holds {', '.join(clash)} but is not a demo sandbox; --force replaces "
                             "only a previous sandbox", hint="choose an empty folder")
    store = store or get_context(ctx).store_url or os.environ.get("ONCALL_AI_STORE") or None
    shown_store = None
    if store is not None:
        store, shown_store = _external_store(store, target, check_empty=not no_ingest)
    at_given = at is not None
    now = resolve_at(at)
    if not at_given:
        now = now // 300_000 * 300_000  # a round time, like a scheduled export

    quiet = not progress_enabled()

    def status(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    fresh = not target.exists() or not any(target.iterdir())
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{dir}: cannot create the folder ({e.strerror})", hint="choose a folder you can write to") from None
    status(f"building the {scenario} sandbox in {dir} (seed {seed}) ...")
    try:
        info = build_sandbox(target, scenario, seed, now, ingest=not no_ingest, days=days, scale=scale,
                             overwrite=force, progress=None if quiet else _progress(status), store=store)
    except BaseException:
        if fresh:  # leave no half-built sandbox behind (it would need --force next time)
            from oncall_ai.demo.generator import clear_sandbox

            clear_sandbox(target)
        raise
    _print_summary(info, dir, at_given, no_ingest, shown_store)
    if run:
        return _run_triage(info, at_given)
    return 0


def _external_store(store: str, target: Path, *, check_empty: bool) -> tuple[str | None, str]:
    """The store a demo was asked to fill: (what the sandbox config says, how to name it). None
    for the sandbox's own file. Refuses a store that already holds data (the sandbox's answer key
    would be wrong, and a real store must not receive demo events) and credentials in a URL (the
    config file would hold them)."""
    import re

    from oncall_ai.config import _resolve_store
    from oncall_ai.errors import UsageError

    resolved = _resolve_store(store, Path.cwd())  # a relative path means from here, not from DIR
    if "://" not in resolved:
        if Path(resolved).resolve() == (target / "oncall-ai.db").resolve():
            return None, "oncall-ai.db"
    elif re.match(r"^[a-z]+://[^/@]*:[^/@]*@", resolved):
        raise UsageError("--store: the URL holds a password, which would be written into the sandbox config",
                         hint="give the user and password in $CLICKHOUSE_USER and $CLICKHOUSE_PASSWORD instead")
    if not check_empty:
        return resolved, resolved
    from oncall_ai.store import open_store

    with open_store(resolved) as st:
        shown = st.url
        n = st.count_events()
        docs = sum(len(st.get_docs(kind)) for kind in ("change", "judge_run"))
    if n or docs:
        what = f"{n:,} events" if n else f"{docs:,} recorded changes and judge runs"
        raise UsageError(f"--store: {shown} already holds {what}; the demo needs an empty store",
                         hint="give a new SQLite path, or an empty ClickHouse database (CREATE DATABASE oncall_demo)")
    return resolved, shown


def _progress(status):
    last = {"n": 0}

    def progress(name: str, n: int) -> None:
        if n - last["n"] >= 50_000:
            last["n"] = n
            status(f"  ingesting {Path(name).name}: {n:,} records")

    return progress


def _print_summary(info, dir: str, at_given: bool, no_ingest: bool, shown_store: str | None = None) -> None:
    from oncall_ai.timeutil import format_time

    gt = info.ground_truth
    secs = info.seconds
    at_opt = f" --at {format_time(info.now_ms)}" if at_given else ""
    ingested = "files only (not ingested)" if no_ingest else f"ingested into {shown_store or info.store_path.name}"
    n_runs = len({line for line in _run_ids(info.calibration_runs)})
    lines = [
        f"Built a demo sandbox in {dir}: scenario {info.scenario}, seed {info.seed}, "
        f"data up to {format_time(info.now_ms)}",
        "  oncall-ai.yaml      config: 3 features, 4 metrics, 3 SLOs",
        f"  prompts/            git repo, {info.n_prompt_commits} commits (prompts and judge rubrics)",
        f"  platform/           git repo, {info.n_platform_commits} commits (models.yaml, indexes.yaml, judges.yaml)",
        f"  events/             {info.n_events:,} eval events over {info.days} days in {len(info.event_files)} files, {ingested}",
        f"  changes.jsonl       {info.n_recorded_changes} recorded change(s)",
        f"  calibration/        {info.n_calibration_items} human-labelled items, {n_runs} calibration runs",
        "  ground_truth.json   what was planted (spoiler: read it after triage)",
        f"  took {secs.get('total', 0) + secs.get('ingest', 0):.1f}s",
        "",
        "Next:",
        f"  cd {dir}",
    ]
    if no_ingest:
        lines.append("  oncall-ai ingest events/*.jsonl.gz")
    lines += [
        f"  oncall-ai triage{at_opt}",
        f"  oncall-ai scores --feature summarizer --metric helpfulness --since 24h --by language{at_opt}",
        f"  oncall-ai changes list --since 24h{at_opt}",
        f"  oncall-ai judge drift{at_opt}",
    ]
    if gt.get("kind") is None and info.scenario == "none":
        lines.append("  (scenario none: nothing was planted; triage should find no regression)")
    print("\n".join(lines))


def _run_ids(path: Path):
    import orjson

    for line in path.read_bytes().splitlines():
        if line.strip():
            yield orjson.loads(line)["run_id"]


def _run_triage(info, at_given: bool) -> int:
    import importlib.util

    import click

    if importlib.util.find_spec("oncall_ai.commands.triage") is None:
        print("note: `oncall-ai triage` is not part of this build yet; skipped --run", file=sys.stderr)
        return 0
    from oncall_ai.cli import app
    from oncall_ai.timeutil import format_time

    args = ["--config", str(info.config_path), "triage"]
    if at_given:
        args += ["--at", format_time(info.now_ms)]
    print(f"\n$ oncall-ai triage{' --at ' + format_time(info.now_ms) if at_given else ''}", flush=True)
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="oncall-ai", standalone_mode=False)
    except click.exceptions.Exit as e:
        return e.exit_code
    return rv if isinstance(rv, int) else 0
