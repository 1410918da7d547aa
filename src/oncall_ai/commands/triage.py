"""`oncall-ai triage`: is it real, where is it, what changed, what do I roll back."""

from __future__ import annotations

from typing import Annotated

import typer

from oncall_ai.commands import AtOpt, FeatureOpt, JsonOpt, MetricOpt, SinceOpt, check_names, get_context


def register(app: typer.Typer) -> None:
    app.command("triage")(triage)


def triage(
    ctx: typer.Context,
    feature: FeatureOpt = None,
    metric: MetricOpt = None,
    since: SinceOpt = None,
    at: AtOpt = None,
    json_out: JsonOpt = False,
    fail_on_regression: Annotated[bool, typer.Option(
        "--fail-on-regression", help="Exit 1 when a regression is detected (for scripts and cron).")] = False,
) -> int:
    """Is the metric really worse, since when, in which slices, rate or mix, and which change did it.

    Without --feature/--metric every (feature, metric) in the store is examined, worst first.
    Exit 0 whenever it ran, whatever it found; --fail-on-regression exits 1 on a detected regression."""
    from oncall_ai.timeutil import resolve_at, resolve_since
    from oncall_ai.triage import run_triage

    c = get_context(ctx)
    cfg = c.config(required=False)
    store = c.store(create=False)
    check_names(cfg, store, feature=feature, metric=metric)
    at_ms = resolve_at(at)
    since_ms = resolve_since(since, at_ms)
    if since_ms >= at_ms:
        from oncall_ai.errors import UsageError

        raise UsageError("--since must be before --at")
    result = run_triage(cfg, store, at=at_ms, since=since_ms, feature=feature, metric=metric,
                        since_text=since or "24h")
    if json_out:
        import orjson

        from oncall_ai.analysis.finding import envelope

        doc = envelope(result.findings, at=result.at, since=result.since, notes=result.notes)
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        from oncall_ai.report.console import stdout_console
        from oncall_ai.report.triage import render_triage

        render_triage(result, stdout_console())
    code = 1 if fail_on_regression and result.regression_found() else 0
    raise typer.Exit(code)
