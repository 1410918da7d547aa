"""`oncall-ai judge ...`: calibrate the LLM judge against human labels and watch it for drift.

  judge import-run FILE      store calibration run results (CONTRACT section 4), idempotent
  judge calibrate            run the configured judge over the calibration set through its HTTP API
  judge drift                per run agreement with the humans, drift verdict per metric, judge health on traffic
  judge runs                 list stored calibration runs
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from oncall_ai.commands import AtOpt, JsonOpt, MetricOpt, SinceOpt, check_names, get_context

judge_app = typer.Typer(
    name="judge", help="Calibrate the LLM judge against human labels and tell judge drift from product drift.",
    no_args_is_help=True, rich_markup_mode=None)


def register(app: typer.Typer) -> None:
    app.add_typer(judge_app, name="judge")


def _print_json(obj) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


@judge_app.command("import-run")
def import_run(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(metavar="FILE", help="JSON Lines: {run_id, ts, judge_id, item_id, score}.")],
    json_out: JsonOpt = False,
):
    """Store calibration run results. Every line is checked first (file:line for each problem);
    any invalid line stores nothing. Importing the same file again changes nothing."""
    from oncall_ai.judge_runs import import_run_file

    c = get_context(ctx)
    cfg = c.config()
    result = import_run_file(cfg, c.store(), file)
    if json_out:
        _print_json({"schema": "oncall-ai/judge-import/v1", "file": result.file, "lines": result.lines,
                     "new": result.new, "already_stored": result.already,
                     "runs": [{"run_id": k, **v} for k, v in result.runs.items()]})
        return
    for run_id, body in result.runs.items():
        print(f"run {run_id}: judge {body.get('judge_id')}, metric {', '.join(body.get('metrics') or [])}, "
              f"{body.get('items')} items ({body.get('scored')} scored, {body.get('null')} null)")
    print(f"{result.file}: {result.new} new item score(s), {result.already} already stored")


@judge_app.command("calibrate")
def calibrate(
    ctx: typer.Context,
    metric: MetricOpt = None,
    judge_rev: Annotated[str | None, typer.Option("--judge-rev", metavar="REV",
                                                  help="Read the rubric at this prompt-repo revision (default HEAD): "
                                                       "score an old and a new judge side by side.")] = None,
    judges_rev: Annotated[str | None, typer.Option("--judges-rev", metavar="REV",
                                                   help="Read judges.yaml at this platform-repo revision (default HEAD).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", metavar="N", help="Only the first N items of each metric.")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", metavar="ID",
                                               help="Name the run (default: <metric>-<date>-<judge hash>, stable for "
                                                    "the day, so re-running resumes).")] = None,
    json_out: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
):
    """Run the configured judge (model and rubric from judges.yaml) over the calibration set through
    its HTTP API (config judge_api). Refusals and failures become score null with a reason; re-running
    with the same run id resumes."""
    from oncall_ai.judge_calibrate import plan_calibration, run_calibration
    from oncall_ai.report.console import progress_enabled, warn
    from oncall_ai.sources.judge_api import JudgeAPIConfig, api_key_from_env
    from oncall_ai.timeutil import now_ms

    c = get_context(ctx)
    cfg = c.config()
    api = JudgeAPIConfig.from_section(cfg.section("judge_api"))
    key = api_key_from_env(api)
    store = c.store()
    plans = plan_calibration(cfg, store, metric=metric, judge_rev=judge_rev, judges_rev=judges_rev,
                             limit=limit, run_id=run_id, now_ms=now_ms(), api=api)
    for p in plans:
        left = len(p.requests)
        resume = f", resuming: {p.done_before} already scored" if p.done_before else ""
        print(f"run {p.run_id}: judge {p.judge_id}, {left} item(s) to score{resume}", file=sys.stderr)

    bar = None
    tasks: dict[str, object] = {}
    on_progress = None
    if progress_enabled(quiet) and any(p.requests for p in plans):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        from oncall_ai.report.console import stderr_console

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("null {task.fields[null]} retries {task.fields[retries]}"),
                       TimeRemainingColumn(), console=stderr_console(), transient=False)
        for p in plans:
            tasks[p.run_id] = bar.add_task(p.metric, total=len(p.requests), null=0, retries=0)

        def on_progress(plan, prog):
            bar.update(tasks[plan.run_id], completed=prog.done, null=prog.null, retries=prog.retries)

    try:
        if bar is not None:
            bar.start()
        results = run_calibration(cfg, store, plans, api=api, key=key, judge_rev=judge_rev, on_progress=on_progress)
    finally:
        if bar is not None:
            bar.stop()
    out = []
    for r in results:
        s = r.summary or {}
        if r.null_now:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(r.null_reasons.items()))
            warn(f"run {r.plan.run_id}: {r.null_now} item(s) without a score ({reasons}); they count as null")
        out.append({"run_id": r.plan.run_id, "metric": r.plan.metric, "judge_id": r.plan.judge_id,
                    "model": r.plan.model, "rubric": r.plan.rubric.path, "rubric_commit": r.plan.rubric.commit,
                    "status": r.status, "scored_now": r.scored_now, "null_now": r.null_now,
                    "skipped": r.plan.done_before, "items": s.get("items", 0), "scored": s.get("scored", 0),
                    "null": s.get("null", 0), "null_reasons": s.get("null_reasons", {}),
                    "retries": s.get("retries", 0)})
    if json_out:
        _print_json({"schema": "oncall-ai/judge-calibrate/v1", "runs": out})
        return
    for o in out:
        print(f"run {o['run_id']} ({o['metric']}, judge {o['judge_id']}): {o['items']} items, {o['scored']} scored, "
              f"{o['null']} null, {o['retries']} retries; this time {o['scored_now']} scored, {o['null_now']} null, "
              f"{o['skipped']} skipped as already scored")
    if out:
        print("next: oncall-ai judge drift" + (f" --metric {metric}" if metric else ""))


@judge_app.command("drift")
def drift(
    ctx: typer.Context,
    metric: MetricOpt = None,
    json_out: JsonOpt = False,
    fail_on_drift: Annotated[bool, typer.Option("--fail-on-drift", help="Exit 1 when any metric's judge drifted (for cron).")] = False,
    at: AtOpt = None,
    since: SinceOpt = None,
    baseline: Annotated[str | None, typer.Option("--baseline", metavar="RUN",
                                                 help="Compare with this run (default: the metric's first run).")] = None,
    min_shift: Annotated[float | None, typer.Option("--min-shift", metavar="X",
                                                    help="Smallest mean shift that counts as drift "
                                                         "(default 5% of the score range: 0.2 on 1-5).")] = None,
    traffic: Annotated[bool, typer.Option("--traffic/--no-traffic",
                                          help="Also show judge health on traffic (per judge_id, judge_id changes).")] = True,
):
    """For every calibration run: n, null rate, bias vs the humans with CI, exact and within-one
    agreement, weighted kappa, Spearman, false-bad/false-good at the good threshold, and the paired
    shift vs the baseline and previous run. A verdict per metric: drifted or not, since which run."""
    from oncall_ai.errors import UsageError
    from oncall_ai.judge_runs import RUN_KIND, calibration_verdicts
    from oncall_ai.timeutil import resolve_at, resolve_since

    if min_shift is not None and min_shift <= 0:
        raise UsageError("--min-shift must be positive")
    c = get_context(ctx)
    cfg = c.config()
    store = c.store()
    if metric is not None and not any(metric in (d.body.get("metrics") or []) for d in store.get_docs(RUN_KIND)):
        check_names(cfg, store, metric=metric)
    at_ms = resolve_at(at)
    start_ms = resolve_since(since, at_ms, default="7d")
    verdicts = calibration_verdicts(cfg, store, metric=metric, at_ms=None if at is None else at_ms,
                                    baseline_run=baseline, min_shift=min_shift)
    health = {}
    if traffic:
        health = _traffic_health(cfg, store, verdicts, metric, start_ms, at_ms)
    findings = []
    for v in verdicts:
        d = v.to_dict()
        d["traffic"] = [e.to_dict() for e in health.get(v.metric, [])]
        findings.append(d)
    for m, evs in health.items():  # judge-scored metrics seen in traffic without calibration runs
        if m not in {v.metric for v in verdicts}:
            findings.append({"metric": m, "drifted": False, "since_run": None, "runs": [],
                             "evidence": [f"no calibration runs for {m}"],
                             "traffic": [e.to_dict() for e in evs]})
    if not findings and not json_out:
        from oncall_ai.report.console import warn

        warn("no calibration runs and no judge-scored traffic: run `oncall-ai judge calibrate` "
             "or `oncall-ai judge import-run FILE`")
    if json_out:
        from oncall_ai.timeutil import format_time

        _print_json({"schema": "oncall-ai/judge-drift/v1", "at": format_time(at_ms),
                     "since": format_time(start_ms), "findings": findings})
    else:
        from oncall_ai.report.judge import render_drift

        render_drift(findings)
    if fail_on_drift and any(f["drifted"] for f in findings):
        raise typer.Exit(1)


def _traffic_health(cfg, store, verdicts, metric, start_ms, at_ms) -> dict:
    from oncall_ai.analysis.judge_health import judge_evidence

    by_metric = {v.metric: v for v in verdicts}
    out: dict[str, list] = {}
    series = store.series(metric=metric)
    pairs = sorted({(s.feature, s.metric) for s in series if s.source == "judge"})
    for feature, m in pairs:
        v = by_metric.get(m)
        ev = judge_evidence(cfg, store, feature, m, start_ms, at_ms, None,
                            verdict=v if v is not None and v.runs else None, histograms=True)
        out.setdefault(m, []).append(ev)
    return out


@judge_app.command("runs")
def runs(ctx: typer.Context, metric: MetricOpt = None, json_out: JsonOpt = False):
    """List stored calibration runs (newest last)."""
    from oncall_ai.judge_runs import RUN_KIND
    from oncall_ai.timeutil import format_time

    c = get_context(ctx)
    docs = [d for d in c.store(create=False).get_docs(RUN_KIND) if metric is None or metric in (d.body.get("metrics") or [])]
    rows = [{"run_id": d.id, "ts": format_time(d.ts), "judge_id": d.body.get("judge_id"),
             "metrics": d.body.get("metrics"), "status": d.body.get("status", "complete"),
             "source": d.body.get("source"), "items": d.body.get("items"), "scored": d.body.get("scored"),
             "null": d.body.get("null"), "retries": d.body.get("retries")} for d in docs]
    if json_out:
        _print_json({"schema": "oncall-ai/judge-runs/v1", "runs": rows})
        return
    from tabulate import tabulate

    if not rows:
        print("no calibration runs stored", file=sys.stderr)
        return
    print(tabulate([[r["run_id"], r["ts"], r["judge_id"], ",".join(r["metrics"] or []), r["status"], r["items"],
                     r["scored"], r["null"], r["retries"]] for r in rows],
                   headers=["run", "at", "judge", "metric", "status", "items", "scored", "null", "retries"]))
