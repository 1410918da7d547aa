"""`oncall-ai slo status|check|rules` and `oncall-ai export prometheus`.

`slo check` follows the monitoring-plugin convention instead of the usual exit codes: 0 ok,
1 ticket, 2 page, 3 unknown (no data, or a configuration/store problem, which it maps itself).
`export` is registered here because Prometheus counters are the SLO feature's export; other
`export` subcommands can join the same group.
"""

from __future__ import annotations

import shutil
import sys
from typing import Annotated

import typer

from oncall_ai.commands import AtOpt, JsonOpt, get_context

slo_app = typer.Typer(help="Quality SLOs: burn rates, multi-window alerts, Prometheus rules.",
                      no_args_is_help=True, rich_markup_mode=None)
export_app = typer.Typer(help="Export the store's data to other tools.", no_args_is_help=True,
                         rich_markup_mode=None)

NameOpt = Annotated[list[str] | None, typer.Option("--slo", "-s", metavar="NAME",
                                                   help="Only this SLO (repeatable).")]
OutOpt = Annotated[str | None, typer.Option("--out", "-o", metavar="FILE",
                                            help="Write to FILE (replaced atomically) instead of stdout.")]


def register(app: typer.Typer) -> None:
    app.add_typer(slo_app, name="slo")
    app.add_typer(export_app, name="export")


def _load(ctx, names):
    from oncall_ai.errors import ConfigError, UsageError

    c = get_context(ctx)
    cfg = c.config()
    if not cfg.slos:
        raise ConfigError(f"{cfg.describe()}: slos: no SLOs configured",
                          hint="add e.g. {name: summarizer-helpfulness, feature: summarizer, metric: helpfulness, "
                               "objective: 0.99, window: 30d} under `slos:`")
    if names:
        known = {s.name for s in cfg.slos}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UsageError(f"--slo: unknown SLO {', '.join(map(repr, unknown))} (configured: {', '.join(sorted(known))})")
    return c, cfg


@slo_app.command("status")
def status(ctx: typer.Context, at: AtOpt = None, json_out: JsonOpt = False, names: NameOpt = None) -> int:
    """Per SLO: SLI over its window, error budget left, burn rate per window, state (ok, ticket,
    page, no_data) and why, an SLI sparkline, and for sampled metrics how fast a real drop would
    page at the current sampling rate."""
    from oncall_ai.report.slo import status_json, status_text
    from oncall_ai.slos import evaluate_all
    from oncall_ai.timeutil import resolve_at

    c, cfg = _load(ctx, names)
    at_ms = resolve_at(at)
    statuses = evaluate_all(c.store(create=False), cfg, at_ms, names=names, details=True)
    if json_out:
        _print_json(status_json(statuses, cfg, at_ms))
    else:
        # Wrapped to a terminal's width (readable in 80 columns); piped output keeps one line per item.
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        sys.stdout.write(status_text(statuses, cfg, at_ms, width=max(60, width) if width else None))
    return 0


@slo_app.command("check")
def check(ctx: typer.Context, at: AtOpt = None, json_out: JsonOpt = False, names: NameOpt = None,
          notify: Annotated[bool, typer.Option("--notify", help="Send changes to Slack / PagerDuty (config `notify:`).")] = False,
          budget: Annotated[bool, typer.Option("--budget", help="Also count each SLO's whole period for the SLI and budget left (slower on big stores).")] = False,
          ) -> int:
    """One line per SLO, for cron and CI. Exit 0 ok, 1 ticket, 2 page, 3 unknown (no data, or a
    broken config or store). With --notify, triggers and resolves alerts where the state changed.

    The state needs only the alert windows (up to 3 days for a 30-day SLO), so by default only those
    are counted; --budget (and every notification) adds the SLI and budget over the whole period."""
    from oncall_ai.errors import OncallError
    from oncall_ai.report.console import print_error, warn
    from oncall_ai.report.slo import check_json, check_lines

    try:
        from oncall_ai.analysis.slo import check_exit_code
        from oncall_ai.slos import evaluate_all
        from oncall_ai.timeutil import resolve_at

        c, cfg = _load(ctx, names)
        at_ms = resolve_at(at)
        store = c.store(create=False)
        statuses = evaluate_all(store, cfg, at_ms, names=names, period=budget)
        sends, notes = [], []
        if notify:
            from oncall_ai.actions.notify import notify as send
            from oncall_ai.actions.notify import worth_sending

            if not budget:  # messages carry the SLI and budget: count the period for those SLOs
                again = worth_sending(store, statuses)
                if again:
                    fuller = {st.name: st for st in evaluate_all(store, cfg, at_ms, names=again)}
                    statuses = [fuller.get(st.name, st) for st in statuses]
            sends, notes = send(store, cfg, statuses, at_ms)
    except OncallError as e:
        print_error(e)
        if json_out:
            _print_json({"schema": "oncall-ai/slo-check/v1", "state": "unknown", "exit_code": 3,
                         "error": e.message, "slos": []})
        else:
            print(f"UNKNOWN - {e.message.splitlines()[0]}")
        return 3
    for note in notes:
        warn(note)
    for s in sends:
        print(s.line(), file=sys.stderr)
    code = check_exit_code([s.state for s in statuses])
    if json_out:
        _print_json(check_json(statuses, at_ms, code, sends))
    else:
        sys.stdout.write(check_lines(statuses))
    return code


@slo_app.command("rules")
def rules(ctx: typer.Context, out: OutOpt = None) -> int:
    """Prometheus recording and alerting rules for every SLO (multi-window multi-burn-rate, in the
    style of Sloth) over the counters of `oncall-ai export prometheus`. Check them with
    `promtool check rules FILE`."""
    from oncall_ai.prometheus import rules_yaml

    _c, cfg = _load(ctx, None)
    _write(out, rules_yaml(cfg, source=str(cfg.path) if cfg.path else None))
    return 0


@export_app.command("prometheus")
def export_prometheus(ctx: typer.Context, out: OutOpt = None, at: AtOpt = None) -> int:
    """Good/total event counters per feature, metric and slice in the Prometheus text format, for
    the node-exporter textfile collector (write into its folder with --out) or a pushgateway."""
    from oncall_ai.prometheus import counter_rows, exposition
    from oncall_ai.timeutil import resolve_at

    c = get_context(ctx)
    cfg = c.config(required=False)
    at_ms = resolve_at(at)
    _write(out, exposition(counter_rows(c.store(create=False), cfg, at_ms), at_ms))
    return 0


def _print_json(obj) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def _write(out: str | None, text: str) -> None:
    if not out or out == "-":
        sys.stdout.write(text)
        return
    import os
    import tempfile
    from pathlib import Path

    from oncall_ai.errors import UsageError

    path = Path(out)
    if path.is_symlink():
        path = path.resolve()  # replace the file the link points at, keep the link
    if not path.parent.exists():
        raise UsageError(f"--out: folder {path.parent} does not exist")
    if path.is_dir():
        raise UsageError(f"--out: {path} is a folder")
    try:
        if path.exists() and not path.is_file():
            # /dev/stdout, a FIFO, a device: write into it; renaming over it would replace the
            # device node itself (as root, /dev/stdout or /dev/null would become a plain file).
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            return
        # Same folder + rename: readers (the textfile collector, Prometheus) never see half a file.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot write ({e.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise UsageError(f"--out {out}: cannot write ({e.strerror})") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
