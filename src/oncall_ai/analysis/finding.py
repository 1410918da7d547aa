"""One triage finding per (feature, metric): the pure assembly of detection, localisation,
decomposition and attribution, and its JSON form (CONTRACT.md section 5)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from oncall_ai.analysis.attribute import Hypothesis
from oncall_ai.analysis.cube import Cube
from oncall_ai.analysis.decompose import Decomposition
from oncall_ai.analysis.detect import Detection
from oncall_ai.analysis.localize import Localization
from oncall_ai.timeutil import format_time

SCHEMA = "oncall-ai/triage/v1"
FALSE_PAGE_RUNBOOK = "runbooks/false_page.md"
FALSE_PAGE_NOTE = (f"no regression found: if this paged, {FALSE_PAGE_RUNBOOK} says what to check "
                   "before closing it")


@dataclass
class ChartPoint:
    start: int
    end: int
    mean: float | None
    n: int


@dataclass
class Finding:
    feature: str
    metric: str
    source: str
    higher_is_better: bool
    detection: Detection
    localization: Localization | None = None
    decomposition: Decomposition | None = None
    hypotheses: list[Hypothesis] = field(default_factory=list)
    chart: list[ChartPoint] = field(default_factory=list)
    changes_in_window: list = field(default_factory=list)  # model.Change, for the chart marks
    notes: list[str] = field(default_factory=list)  # what was missing or degraded

    # --- ordering: worst first ---------------------------------------------------------------
    def severity(self) -> tuple:
        det = self.detection
        sd = math.sqrt(det.reference.sigma2) if det.reference else 1.0
        drop = 0.0
        if det.delta is not None and sd > 0:
            drop = -(1 if self.higher_is_better else -1) * det.delta / sd
        rank = {"regression": 0, "recovered": 1, "suspected": 2, "insufficient_data": 3,
                "no_regression": 4}.get(det.verdict, 5)
        return (rank, -drop, self.feature, self.metric)

    # --- JSON ---------------------------------------------------------------------------------
    def to_json(self) -> dict:
        det = self.detection
        reg: dict = {
            "detected": det.detected,
            "onset": format_time(det.onset) if det.detected else None,
            "baseline": _r(det.baseline.mean),
            "current": _r(det.current.mean),
            "delta": _r(det.delta),
            "p_value": _p(det.p_value),
            # extensions
            "verdict": det.verdict,
            "reason": det.reason,
            "n_baseline": int(det.baseline.n),
            "n_current": int(det.current.n),
            "ci": [_r(x) for x in det.test.ci()] if det.test is not None else None,
            "onset_range": [format_time(t) for t in det.onset_range] if det.detected and det.onset_range else None,
            "baseline_window": [format_time(t) for t in det.baseline_window] if det.baseline_window else None,
            "current_window": [format_time(t) for t in det.current_window] if det.current_window else None,
            "signal": det.signal if det.detected else None,
            "needed_n": det.needed_n,
            "min_detectable_drop": _r(det.mde),
            "higher_is_better": self.higher_is_better,
        }
        if det.recovered_at is not None:
            reg["recovered_at"] = format_time(det.recovered_at)
        if det.verdict == "suspected":
            # Not a regression (detected is false, onset null): where the drop would start, and
            # how many more events after it would settle it. Its hypotheses are suspects.
            reg["suspected_onset"] = format_time(det.onset) if det.onset is not None else None
            reg["needed_more_events"] = det.needed_more
        if det.support:
            # The same step tested on the other metrics its change reaches (z in their bad direction).
            reg["also_tested"] = [{"feature": g, "metric": m, "z": _r(z, 2)} for g, m, z in det.support]
        slices = [s.to_json() for s in (self.localization.slices if self.localization else [])]
        dec = None
        if self.decomposition is not None:
            d = self.decomposition
            dec = {"rate": _r(d.rate), "mix": _r(d.mix), "total": _r(d.total),
                   "rate_ci": [_r(d.rate - 1.96 * d.rate_se), _r(d.rate + 1.96 * d.rate_se)],
                   "mix_ci": [_r(d.mix - 1.96 * d.mix_se), _r(d.mix + 1.96 * d.mix_se)],
                   "grew": ({"slice": {d.grew.key: d.grew.value}, "share_before": _r(d.grew.share_before, 3),
                             "share_after": _r(d.grew.share_after, 3)} if d.grew else None)}
        return {
            "feature": self.feature,
            "metric": self.metric,
            "source": self.source,
            "regression": reg,
            "slices": slices,
            "decomposition": dec,
            "hypotheses": [hypothesis_json(h) for h in self.hypotheses],
            "scope": dict(self.localization.scope) if self.localization else {},
            "notes": list(self.notes),
            # extension: where to go next when nothing was found (a page that fired anyway)
            "runbook": None if det.detected else FALSE_PAGE_RUNBOOK,
        }


def hypothesis_json(h: Hypothesis) -> dict:
    ch = h.change
    change = None
    if ch is not None:
        change = {"id": ch.id, "at": format_time(ch.at), "by": ch.by, "summary": ch.summary,
                  "kind": ch.kind, "source": ch.source}
    return {
        "rank": h.rank,
        "kind": h.kind,
        "target": h.target,
        "change": change,
        "score": round(h.score, 4),
        "evidence": list(h.evidence),
        "rollback": h.rollback,
        "runbook": h.runbook,
        "next_check": h.next_check,
        "log_evidence": round(h.log_evidence, 3),
        "exposure_start": format_time(h.exposure_start) if h.exposure_start is not None else None,
    }


def envelope(findings: list[Finding], *, at: int, since: int, notes: list[str] | None = None) -> dict:
    notes = list(notes or [])
    if findings and not any(f.detection.detected for f in findings):
        notes.append(FALSE_PAGE_NOTE)
    return {
        "schema": SCHEMA,
        "at": format_time(at),
        "since": format_time(since),
        "findings": [f.to_json() for f in sorted(findings, key=Finding.severity)],
        "notes": notes,
    }


def chart_points(cube: Cube, b0: int, b1: int) -> list[ChartPoint]:
    out = []
    n, s, _ = cube.totals()
    for b in range(max(0, b0), min(cube.n_buckets, b1)):
        out.append(ChartPoint(cube.time_of(b), cube.time_of(b + 1), s[b] / n[b] if n[b] else None, int(n[b])))
    return out


def _r(x: float | None, nd: int = 4) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(x, nd)


def _p(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(f"{x:.3g}")
