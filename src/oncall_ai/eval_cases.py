"""The flywheel: the worst-scoring requests of a regression become eval cases.

`export_cases(cfg, store, incident, out_dir, limit=N)` takes the incident's feature and metric,
inside its scope (the affected slices) and window ([onset, end of impact)), takes the `limit`
lowest-scoring requests (highest first for a lower-is-better metric) with their text, skips those
exported before (docs of kind `export_case`, id `<feature>/<metric>/<request>`, across
incidents), and writes the rest as one batch:

    <out>/<incident>-<batch:03d>.jsonl        one eval fixture per request (input, output, score,
                                              slice, versions, request id, time, incident)
    <out>/<incident>-<batch:03d>.tests.yaml   the same cases as a promptfoo `tests` file

Deterministic: the same store gives the same cases in the same order and the same bytes. When the
events carry no text, the request ids are exported (to be joined with your request logs) and the
result says so. Running the same export again adds nothing; a larger --limit adds the next-worst requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from oncall_ai.errors import DataError, UsageError
from oncall_ai.store.base import Doc
from oncall_ai.timeutil import format_time, parse_time_ms

KIND = "export_case"
DEFAULT_LIMIT = 50
CASE_SCHEMA = "oncall-ai/eval-case/v1"


@dataclass
class ExportResult:
    incident: str
    batch: int | None
    cases: list[dict] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    already_exported: int = 0
    candidates: int = 0
    with_text: bool = True
    window: tuple[int, int] | None = None
    scope: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def case_key(feature: str, metric: str, ev) -> str:
    req = ev.request_id or f"event-{ev.id_hash & 0xFFFFFFFFFFFFFFFF:016x}"
    return f"{feature}/{metric}/{req}"


def export_cases(cfg, store, incident: dict, out_dir: Path, *, limit: int = DEFAULT_LIMIT, at_ms: int,
                 now_ms: int) -> ExportResult:
    from oncall_ai.incidents import end_of_impact, scope_series

    if limit < 1:
        raise UsageError("--limit must be at least 1")
    onset_text = incident.get("onset")
    if not onset_text:
        raise DataError(f"incident {incident['id']} has no onset (triage saw no regression when it was opened), "
                        "so there is no window to export from")
    feature, metric = incident["feature"], incident["metric"]
    onset = parse_time_ms(onset_text)
    end, _why = end_of_impact(store, incident, at_ms)
    series = scope_series(store, incident)
    res = ExportResult(incident["id"], None, window=(onset, end), scope=dict(incident.get("scope") or {}))
    if not series or end <= onset:
        res.notes.append(f"no events of {feature}/{metric} in the incident's scope and window")
        return res

    higher = cfg.metric(metric).higher_is_better if cfg is not None else True
    done_docs = store.get_docs(KIND)
    done = {d.id for d in done_docs}
    ids = [s.id for s in series]
    if higher:
        # Lowest first straight from the store. One request can hold several events of the
        # metric (re-judged), so read until `limit` distinct requests are in hand.
        fetch = limit
        while True:
            events = store.events(ids, onset, end, order="value", with_text=True, limit=fetch)
            worst = _worst(feature, metric, events, limit)
            if len(worst) >= limit or len(events) < fetch:
                break
            fetch *= 2
    else:
        events = store.events(ids, onset, end, order="ts", with_text=True)
        events.sort(key=lambda e: (-e.value, e.ts, e.id_hash))
        worst = _worst(feature, metric, events, limit)
    # The N worst requests of the window are the export; the ones exported before are skipped,
    # so running the same export again adds nothing (raise --limit for more).
    chosen = [e for e in worst if case_key(feature, metric, e) not in done]
    res.already_exported = len(worst) - len(chosen)
    res.candidates = len(worst)
    if not chosen:
        res.notes.append(f"nothing new to export: the {len(worst)} lowest-scoring request(s) of this window were "
                         "exported before (raise --limit for more)"
                         if worst else f"no events of {feature}/{metric} in the incident's scope and window")
        return res

    batches = {int(d.body.get("batch") or 0) for d in done_docs if d.body.get("incident") == incident["id"]}
    batch = max(batches, default=0) + 1
    res.batch = batch
    res.with_text = any(e.input is not None or e.output is not None for e in chosen)
    base = f"{incident['id']}-{batch:03d}"
    cases = [_case(incident, e, higher) for e in chosen]
    res.cases = cases
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        jsonl = out_dir / f"{base}.jsonl"
        yml = out_dir / f"{base}.tests.yaml"
        for p in (jsonl, yml):
            if p.exists():
                raise DataError(f"{p} already exists; nothing was exported",
                                hint="move it away, or export into another folder with --out DIR")
        _write_atomic(jsonl, _jsonl(cases))
        _write_atomic(yml, _promptfoo(incident, cases, cfg, res.with_text))
    except OSError as e:
        raise DataError(f"cannot write eval cases to {out_dir}: {e.strerror or e}") from None
    res.files = [str(jsonl), str(yml)]
    store.put_docs(KIND, [Doc(KIND, case_key(feature, metric, e), now_ms, {
        "incident": incident["id"], "batch": batch, "request_id": e.request_id, "feature": feature,
        "metric": metric, "score": e.value, "ts": format_time(e.ts), "file": str(jsonl)}) for e in chosen])
    if not res.with_text:
        res.notes.append("the events carry no input/output text: exported request ids only; join them with "
                         "your request logs to fill in the inputs")
    return res


def _worst(feature: str, metric: str, events, limit: int) -> list:
    """The first `limit` distinct requests of events already in worst-first order."""
    out, seen = [], set()
    for e in events:
        key = case_key(feature, metric, e)
        if key in seen:
            continue
        seen.add(key)
        out.append(e)
        if len(out) >= limit:
            break
    return out


def _case(incident: dict, e, higher: bool) -> dict:
    s = e.series
    return {
        "schema": CASE_SCHEMA,
        "id": case_key(s.feature, s.metric, e),
        "incident": incident["id"],
        "request_id": e.request_id,
        "feature": s.feature,
        "metric": s.metric,
        "score": e.value,
        "higher_is_better": higher,
        "slice": dict(s.slice),
        "versions": {"model_id": s.model_id, "prompt_version": s.prompt_version,
                     "index_version": s.index_version, "judge_id": s.judge_id},
        "ts": format_time(e.ts),
        "input": e.input,
        "output": e.output,
    }


def _jsonl(cases: list[dict]) -> bytes:
    import orjson

    return b"".join(orjson.dumps(c) + b"\n" for c in cases)


def _promptfoo(incident: dict, cases: list[dict], cfg, with_text: bool) -> bytes:
    """promptfoo `tests` file: vars.input is the request; the assertion asks the judge's question
    again with the bar the metric's good rule sets; the bad output is kept as metadata."""
    import yaml

    metric = incident["metric"]
    good = cfg.metric(metric).good if cfg is not None else None
    bar = f"would score {good} on {metric}" if good is not None else f"is good on {metric}"
    tests = []
    for c in cases:
        where = ", ".join(f"{k}={v}" for k, v in sorted(c["slice"].items()))
        t: dict = {"description": f"{incident['id']} {c['request_id'] or c['id']} ({metric} {c['score']:g}"
                                  + (f", {where}" if where else "") + ")",
                   "vars": {"input": c["input"]} if c["input"] is not None else {"request_id": c["request_id"]},
                   "assert": [{"type": "llm-rubric",
                               "value": f"The response {bar} for this {c['feature']} request. In production "
                                        f"({c['ts']}) it scored {c['score']:g} during incident {incident['id']}."}],
                   "metadata": {"incident": incident["id"], "request_id": c["request_id"], "feature": c["feature"],
                                "metric": metric, "score": c["score"], "slice": c["slice"],
                                "versions": {k: v for k, v in c["versions"].items() if v is not None},
                                "bad_output": c["output"]}}
        tests.append(t)
    head = (f"# promptfoo tests: the lowest-scoring requests of incident {incident['id']} "
            f"({incident['feature']}/{metric}). Written by `oncall-ai incident export-cases`.\n"
            "# Use with `tests: file://<this file>` in promptfooconfig.yaml.\n")
    if not with_text:
        head += ("# The events carried no text: vars.request_id names each request; fetch its input from your "
                 "request logs.\n")
    body = yaml.safe_dump(tests, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
    return (head + body).encode("utf-8")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
