"""`oncall-ai judge calibrate`: run the configured judge over the calibration set through its HTTP API.

Plan first (everything that can be wrong in the config or the data is found before the first
request, so nothing is stored half-way), then score with `JudgeClient`, writing outcomes in small
batches (resumable: a re-run with the same run id skips items already scored, and re-tries items
that failed for a transient reason: timeouts, connection errors, 429/5xx, broken bodies).

The default run id is stable for a day: `<metric>-<YYYYMMDD>-<8 hex of (model, rubric content,
judge id, API style)>`, so re-running the same command after an interruption resumes, and a
changed rubric or model starts a new run.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from oncall_ai.errors import ConfigError, UsageError
from oncall_ai.judge_runs import ITEM_KIND, RUN_KIND, CalibrationItem, RunWriter, load_calibration_set
from oncall_ai.sources.judge_api import (
    JudgeAPIConfig,
    JudgeClient,
    JudgeRequest,
    JudgeRunAborted,
    Secret,
    api_key_from_env,
    compose_prompt,
    is_transient,
)
from oncall_ai.sources.judges import Rubric, judge_for, read_rubric


@dataclass
class CalibrationPlan:
    metric: str
    run_id: str
    judge_id: str
    model: str
    rubric: Rubric
    requests: list[JudgeRequest]
    items: dict[str, CalibrationItem]
    selected: int  # items of the metric considered (after --limit)
    done_before: int  # already scored in this run (skipped)
    started_ms: int


@dataclass
class CalibrationResult:
    plan: CalibrationPlan
    status: str  # complete | interrupted | aborted
    summary: dict | None
    scored_now: int = 0
    null_now: int = 0
    null_reasons: dict[str, int] = field(default_factory=dict)


def default_run_id(metric: str, model: str, rubric: Rubric, judge_id: str, style: str, now_ms: int) -> str:
    day = datetime.fromtimestamp(now_ms / 1000, tz=UTC).strftime("%Y%m%d")
    h = hashlib.sha256(f"{model}\n{rubric.blob}\n{judge_id}\n{style}".encode()).hexdigest()[:8]
    return f"{metric}-{day}-{h}"


def plan_calibration(cfg, store, *, metric: str | None = None, judge_rev: str | None = None,
                     judges_rev: str | None = None, limit: int | None = None, run_id: str | None = None,
                     now_ms: int, api: JudgeAPIConfig | None = None) -> list[CalibrationPlan]:
    """Check everything and decide what to score. Raises before anything is stored."""
    if limit is not None and limit <= 0:
        raise UsageError("--limit must be a positive number of items")
    items = load_calibration_set(cfg)
    metrics_in_set = sorted({it.metric for it in items.values()})
    if metric is not None:
        if metric not in metrics_in_set:
            raise UsageError(f"no calibration items for metric {metric!r} in {cfg.calibration} "
                             f"(metrics there: {', '.join(metrics_in_set)})")
        metrics = [metric]
    else:
        metrics = metrics_in_set
    api = api or JudgeAPIConfig.from_section(cfg.section("judge_api"))
    plans = []
    for m in metrics:
        spec = judge_for(cfg, m, judges_rev)
        rubric = read_rubric(cfg, spec.prompt, judge_rev)
        model = api.model or spec.model
        judge_id = rubric.judge_id(spec, model)
        rid = run_id if run_id and len(metrics) == 1 else (f"{run_id}-{m}" if run_id else
                                                          default_run_id(m, model, rubric, judge_id, api.style, now_ms))
        existing_run = store.get_doc(RUN_KIND, rid)
        if existing_run is not None and existing_run.body.get("judge_id") not in (None, judge_id):
            raise UsageError(f"run {rid!r} already exists for judge {existing_run.body.get('judge_id')!r}, "
                             f"not {judge_id!r}",
                             hint="pick another --run-id (a run is one judge)")
        selected = [it for it in items.values() if it.metric == m]
        selected.sort(key=lambda it: it.line)
        if limit is not None:
            selected = selected[:limit]
        done = {d.body["item_id"] for d in store.get_docs(ITEM_KIND, ids=[f"{rid}:{it.id}" for it in selected])
                if d.body.get("score") is not None or not is_transient(d.body.get("reason"))}
        requests = []
        for it in selected:
            if it.id in done:
                continue
            system, user = compose_prompt(rubric.text, it.input, it.output)
            requests.append(JudgeRequest(it.id, model, system, user))
        plans.append(CalibrationPlan(
            metric=m, run_id=rid, judge_id=judge_id, model=model, rubric=rubric, requests=requests,
            items={it.id: it for it in selected}, selected=len(selected), done_before=len(done),
            started_ms=existing_run.ts if existing_run is not None else now_ms))
    return plans


def run_calibration(cfg, store, plans: list[CalibrationPlan], *, api: JudgeAPIConfig | None = None,
                    key: Secret | None = None, judge_rev: str | None = None,
                    on_progress: Callable[[CalibrationPlan, object], None] | None = None,
                    transport=None, clock_ms: Callable[[], int] | None = None) -> list[CalibrationResult]:
    """Score every plan in turn. Interruption (Ctrl-C) and a judge API that goes silent mid-run
    keep what was scored and re-raise (KeyboardInterrupt / JudgeRunAborted, exit 1)."""
    api = api or JudgeAPIConfig.from_section(cfg.section("judge_api"))
    if key is None and api.api_key_env:
        key = api_key_from_env(api)
    results = []
    for plan in plans:
        scale = cfg.metric(plan.metric).scale
        meta = {"metrics": [plan.metric], "model": plan.model, "style": api.style,
                "base_url": api.public_base_url, "rubric_path": plan.rubric.path,
                "rubric_commit": plan.rubric.commit, "rubric_blob": plan.rubric.blob,
                "judge_rev": judge_rev, "selected": plan.selected}
        writer = RunWriter(store, run_id=plan.run_id, metric=plan.metric, judge_id=plan.judge_id, meta=meta,
                           items=plan.items, started_ms=plan.started_ms, clock_ms=clock_ms)
        result = CalibrationResult(plan, "complete", None)
        reasons: dict[str, int] = {}

        def on_outcome(outcome, _writer=writer, _result=result, _reasons=reasons):
            _writer.add(outcome)
            if outcome.score is None:
                _result.null_now += 1
                _reasons[outcome.reason or "unknown"] = _reasons.get(outcome.reason or "unknown", 0) + 1
            else:
                _result.scored_now += 1

        client = JudgeClient(api, key, scale=scale, transport=transport)
        progress_cb = (lambda p, _plan=plan: on_progress(_plan, p)) if on_progress else None
        try:
            asyncio.run(client.run(plan.requests, on_outcome, progress_cb))
        except (JudgeRunAborted, KeyboardInterrupt) as e:
            result.summary = writer.finish("interrupted" if isinstance(e, KeyboardInterrupt) else "aborted")
            if isinstance(e, JudgeRunAborted):
                left = plan.selected - plan.done_before - result.scored_now - result.null_now
                e.message += (f"; stored {writer.written} item(s) of run {plan.run_id}, {left} left")
                e.hint = f"re-run `oncall-ai judge calibrate --metric {plan.metric} --run-id {plan.run_id}` to resume"
            raise
        except ConfigError:
            writer.finish("aborted")  # writes nothing when nothing was scored yet
            raise
        result.summary = writer.finish("complete")
        result.null_reasons = reasons
        results.append(result)
    return results
