"""Judge calibration runs in and out of the store (CONTRACT.md section 4).

- The calibration set: JSON Lines `{"id", "metric", "input", "output", "human_score"}` at config
  `calibration`, read and validated whole (file:line for every problem).
- Runs: JSON Lines `{"run_id", "ts", "judge_id", "item_id", "score"}` (`score: null` when the judge
  refused or failed), from `judge import-run FILE` or produced by `judge calibrate`.
- Stored as docs: kind `judge_run_item`, id `<run_id>:<item_id>`, body {run_id, item_id, metric,
  judge_id, score, reason, detail, attempts, history, human_score, source}; kind `judge_run`, id
  `<run_id>`, a summary {run_id, metrics, judge_id, status, counts, ...}. Items are the truth (the
  summary is recomputed from them), so an interrupted write never leaves a run that lies.

Python API (triage and scripts): `calibration_verdicts(cfg, store, metric=None, at_ms=None)`.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from oncall_ai.errors import ConfigError, DataError, UsageError
from oncall_ai.store.base import Doc
from oncall_ai.timeutil import parse_time_ms

RUN_KIND = "judge_run"
ITEM_KIND = "judge_run_item"
ERRORS_SHOWN = 10


@dataclass(frozen=True)
class CalibrationItem:
    id: str
    metric: str
    input: str | None
    output: str | None
    human_score: float
    line: int


def _is_num(x) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _raise_lines(path, errors: list[str], what: str, consequence: str) -> None:
    shown = "\n".join(f"  {e}" for e in errors[:ERRORS_SHOWN])
    more = f"\n  ... and {len(errors) - ERRORS_SHOWN} more" if len(errors) > ERRORS_SHOWN else ""
    raise DataError(f"{path}: {len(errors)} invalid {what}{'s' if len(errors) != 1 else ''}; {consequence}\n{shown}{more}")


def _open_rb(path, error_cls):
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller's with-block closes it
    except OSError as e:
        raise error_cls(f"{path}: cannot read ({e.strerror})") from None


def _json_objects(f, path, errors: list[str]):
    """(line number, "path:line", object) for every non-blank line of a JSON Lines file; a line that
    is not a JSON object yields None as its object after its error is recorded."""
    for lineno, raw in enumerate(f, 1):
        if not raw.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            errors.append(f"{where}: not valid JSON ({e})")
            yield lineno, where, None
            continue
        if not isinstance(obj, dict):
            errors.append(f"{where}: not a JSON object")
            yield lineno, where, None
            continue
        yield lineno, where, obj


def load_calibration_set(cfg, *, path: Path | None = None) -> dict[str, CalibrationItem]:
    """Every item of the calibration set, by id. ConfigError when not configured or missing,
    DataError (listing file:line) when any line is invalid: a half-valid set is not used."""
    path = path or cfg.calibration
    if path is None:
        raise ConfigError(f"{cfg.describe()}: calibration: missing; judge calibration needs the human-labelled set",
                          hint="add calibration: calibration/set.jsonl (lines {id, metric, input, output, human_score})")
    if not Path(path).is_file():
        raise ConfigError(f"calibration: {path} not found")
    scales = {name: m.scale for name, m in cfg.metrics.items()}
    items: dict[str, CalibrationItem] = {}
    errors: list[str] = []
    with _open_rb(path, ConfigError) as f:
        for lineno, where, obj in _json_objects(f, path, errors):
            if obj is None:
                continue
            iid, metric, hs = obj.get("id"), obj.get("metric"), obj.get("human_score")
            if isinstance(iid, int) and not isinstance(iid, bool):
                iid = str(iid)
            if not isinstance(iid, str) or not iid:
                errors.append(f"{where}: 'id' missing or not a string")
                continue
            if ":" in iid:
                errors.append(f"{where}: 'id' {iid!r} contains ':' (reserved: stored ids are run_id:item_id)")
                continue
            if not isinstance(metric, str) or not metric:
                errors.append(f"{where}: 'metric' missing or not a string (item {iid!r})")
                continue
            if "human_score" not in obj or hs is None:
                errors.append(f"{where}: item {iid!r} has no human_score (every calibration item needs a human label)")
                continue
            if not _is_num(hs):
                errors.append(f"{where}: item {iid!r}: human_score {hs!r} is not a number")
                continue
            scale = scales.get(metric)
            if scale is not None and not scale[0] <= hs <= scale[1]:
                errors.append(f"{where}: item {iid!r}: human_score {hs:g} outside the scale of {metric} "
                              f"({scale[0]:g}..{scale[1]:g})")
                continue
            for k in ("input", "output"):
                if obj.get(k) is not None and not isinstance(obj[k], str):
                    errors.append(f"{where}: item {iid!r}: {k!r} must be a string")
                    break
            else:
                if iid in items:
                    errors.append(f"{where}: duplicate id {iid!r} (first at line {items[iid].line})")
                    continue
                items[iid] = CalibrationItem(iid, metric, obj.get("input"), obj.get("output"), float(hs), lineno)
    if errors:
        _raise_lines(path, errors, "calibration item", "fix them; nothing was stored")
    if not items:
        raise DataError(f"{path}: the calibration set is empty")
    return items


# --- import-run -------------------------------------------------------------------------------

@dataclass
class ImportResult:
    file: str
    lines: int = 0
    new: int = 0
    already: int = 0
    runs: dict[str, dict] = field(default_factory=dict)  # run_id -> {judge_id, metrics, items}


def import_run_file(cfg, store, path: str, *, items: dict[str, CalibrationItem] | None = None) -> ImportResult:
    """Validate the whole file, then store it; any invalid line stores nothing (DataError, exit 1).
    Idempotent by (run_id, item_id): lines already stored with the same score are skipped; a line
    contradicting a stored score is an error (runs are immutable: import under a new run_id)."""
    items = items if items is not None else load_calibration_set(cfg)
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: file not found")
    if p.is_dir():
        raise UsageError(f"{path}: is a folder, not a JSON Lines file")
    scales = {name: m.scale for name, m in cfg.metrics.items()}
    errors: list[str] = []
    rows: dict[str, dict] = {}  # doc id -> body
    row_line: dict[str, int] = {}
    run_judge: dict[str, tuple[str | None, int]] = {}
    result = ImportResult(file=str(path))
    with _open_rb(p, UsageError) as f:
        for lineno, where, obj in _json_objects(f, path, errors):
            result.lines += 1
            if obj is None:
                continue
            problem = None
            run_id, item_id, judge_id = obj.get("run_id"), obj.get("item_id"), obj.get("judge_id")
            if isinstance(item_id, int) and not isinstance(item_id, bool):
                item_id = str(item_id)
            if not isinstance(run_id, str) or not run_id.strip():
                problem = "'run_id' missing or not a string"
            elif not isinstance(item_id, str) or not item_id:
                problem = "'item_id' missing or not a string"
            elif judge_id is not None and not isinstance(judge_id, str):
                problem = "'judge_id' must be a string"
            elif "score" not in obj:
                problem = "'score' missing (use null when the judge refused or failed)"
            elif obj["score"] is not None and not _is_num(obj["score"]):
                problem = f"'score' {obj['score']!r} is not a number or null"
            elif item_id not in items:
                problem = f"item_id {item_id!r} is not in the calibration set ({cfg.calibration})"
            if problem is None:
                try:
                    ts = parse_time_ms(obj.get("ts"))
                except ValueError as e:
                    problem = f"'ts': {e}" if obj.get("ts") is not None else "'ts' missing"
            if problem is None:
                item = items[item_id]
                score = obj["score"]
                scale = scales.get(item.metric)
                if score is not None and scale is not None and not scale[0] <= score <= scale[1]:
                    problem = f"score {score:g} outside the scale of {item.metric} ({scale[0]:g}..{scale[1]:g})"
            if problem is None and run_id in run_judge and run_judge[run_id][0] != judge_id:
                problem = (f"run {run_id!r} has judge_id {run_judge[run_id][0]!r} at line {run_judge[run_id][1]} "
                           f"but {judge_id!r} here (one run is one judge)")
            if problem is None:
                doc_id = f"{run_id}:{item_id}"
                if doc_id in rows and rows[doc_id]["score"] != score:
                    problem = f"run {run_id!r} item {item_id!r} appears twice with different scores (line {row_line[doc_id]})"
            if problem is not None:
                errors.append(f"{where}: {problem}")
                continue
            run_judge.setdefault(run_id, (judge_id, lineno))
            reason = obj.get("reason") if isinstance(obj.get("reason"), str) else None
            if score is None and reason is None:
                reason = "unknown"
            attempts = obj.get("attempts") if isinstance(obj.get("attempts"), int) else 1
            rows[doc_id] = {"run_id": run_id, "item_id": item_id, "metric": item.metric, "judge_id": judge_id,
                            "score": None if score is None else float(score), "reason": reason,
                            "attempts": attempts, "human_score": item.human_score, "source": "import", "ts": ts}
            row_line[doc_id] = lineno
    # Contradictions with what is stored already.
    existing = {d.id: d for d in store.get_docs(ITEM_KIND, ids=list(rows))} if rows else {}
    stored_runs = {d.id: d for d in store.get_docs(RUN_KIND, ids=list(run_judge))} if run_judge else {}
    for doc_id, body in rows.items():
        old = existing.get(doc_id)
        if old is not None and old.body.get("score") != body["score"]:
            errors.append(f"{path}:{row_line[doc_id]}: run {body['run_id']!r} item {body['item_id']!r} is already "
                          f"stored with score {old.body.get('score')!r}, this line says {body['score']!r} "
                          "(runs are immutable: import it under a new run_id)")
    for run_id, (jid, lineno) in run_judge.items():
        old = stored_runs.get(run_id)
        if old is not None and old.body.get("judge_id") != jid:
            errors.append(f"{path}:{lineno}: run {run_id!r} is already stored with judge_id "
                          f"{old.body.get('judge_id')!r}, this file says {jid!r}")
    if errors:
        _raise_lines(path, errors, "line", "nothing was stored; fix them and run the import again")
    if not rows:
        raise DataError(f"{path}: no run results in the file")
    new_docs = [Doc(ITEM_KIND, doc_id, body.pop("ts"), body) for doc_id, body in rows.items() if doc_id not in existing]
    result.already = len(rows) - len(new_docs)
    result.new = store.put_docs(ITEM_KIND, new_docs) if new_docs else 0
    by_run: dict[str, list[Doc]] = defaultdict(list)
    for d in run_items(store):  # one scan for every run in the file
        if d.body.get("run_id") in run_judge:
            by_run[d.body["run_id"]].append(d)
    for run_id in run_judge:
        result.runs[run_id] = refresh_run_summary(store, run_id, source="import", docs=by_run[run_id])
    return result


def run_items(store, run_id: str | None = None) -> list[Doc]:
    docs = store.get_docs(ITEM_KIND)
    return [d for d in docs if run_id is None or d.body.get("run_id") == run_id]


def refresh_run_summary(store, run_id: str, *, source: str, extra: dict | None = None,
                        ts: int | None = None, docs: list[Doc] | None = None) -> dict:
    """Recompute the `judge_run` doc of a run from its stored items (and `extra` metadata)."""
    docs = run_items(store, run_id) if docs is None else docs
    old = store.get_doc(RUN_KIND, run_id)
    body = dict(old.body) if old else {"run_id": run_id, "source": source}
    body.update(extra or {})
    judge_ids = Counter(d.body.get("judge_id") for d in docs)
    reasons = Counter(d.body.get("reason") or "unknown" for d in docs if d.body.get("score") is None)
    body.update({
        "metrics": sorted({d.body.get("metric") for d in docs if d.body.get("metric")}),
        "judge_id": body.get("judge_id") or (judge_ids.most_common(1)[0][0] if judge_ids else None),
        "items": len(docs),
        "scored": sum(1 for d in docs if d.body.get("score") is not None),
        "null": sum(reasons.values()),
        "null_reasons": dict(sorted(reasons.items())),
        "retries": sum(max(0, int(d.body.get("attempts") or 1) - 1) for d in docs),
    })
    run_ts = ts if ts is not None else (old.ts if old else min((d.ts for d in docs), default=0))
    store.put_docs(RUN_KIND, [Doc(RUN_KIND, run_id, run_ts, body)], replace=True)
    return body


# --- calibrate: writing outcomes as they come -------------------------------------------------

class RunWriter:
    """Buffers judge outcomes and writes them in small batches, so an interrupted run keeps what it
    scored and a re-run with the same run id resumes. The run summary doc is written with the first
    batch and refreshed at the end; nothing at all is written before the first outcome."""

    def __init__(self, store, *, run_id: str, metric: str, judge_id: str, meta: dict,
                 items: dict[str, CalibrationItem], started_ms: int,
                 clock_ms: Callable[[], int] | None = None, flush_every: int = 25, flush_seconds: float = 2.0):
        self.store = store
        self.run_id, self.metric, self.judge_id = run_id, metric, judge_id
        self.meta = meta
        self.items = items
        self.started_ms = started_ms
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._buffer: list[Doc] = []
        self._last_flush = time.monotonic()
        self.flush_every, self.flush_seconds = flush_every, flush_seconds
        self.written = 0

    def add(self, outcome) -> None:
        item = self.items[outcome.item_id]
        body = {"run_id": self.run_id, "item_id": outcome.item_id, "metric": self.metric,
                "judge_id": self.judge_id, "human_score": item.human_score, "source": "calibrate",
                **outcome.to_body()}
        self._buffer.append(Doc(ITEM_KIND, f"{self.run_id}:{outcome.item_id}", self._clock_ms(), body))
        if len(self._buffer) >= self.flush_every or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        if self.written == 0 and self.store.get_doc(RUN_KIND, self.run_id) is None:
            self.store.put_docs(RUN_KIND, [Doc(RUN_KIND, self.run_id, self.started_ms,
                                               {"run_id": self.run_id, "source": "calibrate", "status": "running",
                                                "judge_id": self.judge_id, **self.meta})])
        # replace: a resumed run re-scores items that failed for transient reasons.
        self.store.put_docs(ITEM_KIND, self._buffer, replace=True)
        self.written += len(self._buffer)
        self._buffer = []

    def finish(self, status: str) -> dict | None:
        self.flush()
        if self.store.get_doc(RUN_KIND, self.run_id) is None:
            return None  # nothing was ever written
        return refresh_run_summary(self.store, self.run_id, source="calibrate",
                                   extra={**self.meta, "status": status, "judge_id": self.judge_id,
                                          "finished": self._clock_ms()})


# --- reading runs back for drift --------------------------------------------------------------

def calibration_items_or_empty(cfg, *, strict: bool = True) -> dict[str, CalibrationItem]:
    """The calibration set; {} when not configured or missing. A broken set raises (DataError)
    when strict, else is ignored (triage must not fail on it: the stored labels are used)."""
    if cfg.calibration is None or not Path(cfg.calibration).is_file():
        return {}
    try:
        return load_calibration_set(cfg)
    except (ConfigError, DataError):
        if strict:
            raise
        return {}


def _item_metric(body: dict, cal: dict[str, CalibrationItem]) -> str | None:
    """Docs written by import-run/calibrate carry the metric; plain CONTRACT records (written by
    other tools) get it from the calibration set."""
    m = body.get("metric")
    if m:
        return m
    it = cal.get(str(body.get("item_id")))
    return it.metric if it is not None else None


def human_labels(cal: dict[str, CalibrationItem], item_docs: list[Doc] | None = None) -> dict[str, dict[str, float]]:
    """metric -> item id -> human score: the calibration set as it is now (labels get corrected),
    else the label stored with the run item when the run was made."""
    labels: dict[str, dict[str, float]] = defaultdict(dict)
    for d in item_docs or []:
        hs = d.body.get("human_score")
        m = _item_metric(d.body, cal)
        if _is_num(hs) and m:
            labels[m][str(d.body["item_id"])] = float(hs)
    for it in cal.values():
        labels[it.metric][it.id] = it.human_score
    return dict(labels)


def load_runs(store, *, metric: str | None = None, at_ms: int | None = None,
              cal: dict[str, CalibrationItem] | None = None) -> tuple[dict, list[Doc]]:
    """(metric -> [RunScores ...] in time order, the item docs used). Items whose metric is
    unknown (no metric in the doc and not in the calibration set) are left out."""
    from oncall_ai.analysis.agreement import RunScores

    cal = cal or {}
    until = None if at_ms is None else at_ms + 1
    item_docs = []
    for d in store.get_docs(ITEM_KIND, until=until):
        if not isinstance(d.body, dict) or d.body.get("run_id") is None or d.body.get("item_id") is None:
            continue
        m = _item_metric(d.body, cal)
        if m is None or (metric is not None and m != metric):
            continue
        item_docs.append((m, d))
    run_docs = {d.id: d for d in store.get_docs(RUN_KIND)}
    grouped: dict[tuple[str, str], list[Doc]] = defaultdict(list)
    for m, d in item_docs:
        grouped[(m, str(d.body["run_id"]))].append(d)
    out: dict[str, list] = defaultdict(list)
    for (m, run_id), docs in grouped.items():
        rd = run_docs.get(run_id)
        ts = rd.ts if rd is not None else min(d.ts for d in docs)
        if at_ms is not None and ts > at_ms:
            continue
        judge_ids = Counter(d.body.get("judge_id") for d in docs)
        jid = (rd.body.get("judge_id") if rd is not None else None) or judge_ids.most_common(1)[0][0]
        out[m].append(RunScores(
            run_id=run_id, ts=ts, judge_id=jid,
            scores={str(d.body["item_id"]): _score(d.body.get("score")) for d in docs},
            reasons={str(d.body["item_id"]): d.body.get("reason") or "unknown" for d in docs
                     if _score(d.body.get("score")) is None},
            attempts={str(d.body["item_id"]): int(d.body.get("attempts") or 1) for d in docs}))
    for runs in out.values():
        runs.sort(key=lambda r: (r.ts, r.run_id))
    return dict(out), [d for _, d in item_docs]


def _score(x) -> float | None:
    return float(x) if _is_num(x) else None


def calibration_verdicts(cfg, store, *, metric: str | None = None, at_ms: int | None = None,
                         baseline_run: str | None = None, min_shift: float | None = None,
                         strict: bool = True) -> list:
    """A DriftVerdict per metric with calibration runs (or for `metric`, even without runs)."""
    from oncall_ai.analysis.agreement import drift_verdict

    cal = calibration_items_or_empty(cfg, strict=strict)
    runs, docs = load_runs(store, metric=metric, at_ms=at_ms, cal=cal)
    labels = human_labels(cal, docs)
    metrics = sorted(runs) if metric is None else [metric]
    verdicts = []
    for m in metrics:
        mc = cfg.metric(m)
        if baseline_run is not None and baseline_run not in {r.run_id for r in runs.get(m, [])}:
            raise UsageError(f"--baseline: run {baseline_run!r} has no items for metric {m!r}",
                             hint="`oncall-ai judge drift --json` lists the runs of each metric")
        verdicts.append(drift_verdict(
            m, runs.get(m, []), labels.get(m, {}), mc.good, higher_is_better=mc.higher_is_better,
            min_shift=min_shift, baseline_run=baseline_run, scale=mc.scale))
    return verdicts
