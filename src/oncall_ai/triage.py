"""Triage: fetch what the analysis needs (aggregates, changes, judge evidence) and run the pure
analysis (oncall_ai.analysis) for each (feature, metric).

Flow per (feature, metric):
1. hourly aggregates per series over [since - baseline, at) (hourly rollups: cheap);
2. detection on the hourly cube (analysis.detect);
3. if a regression: first slice localisation on hourly windows, then the onset refined on
   5-minute buckets around the hourly onset, inside the affected slices (raw events, a few hours);
4. decomposition and localisation again on the refined windows;
5. the other metrics of the feature (do user signals move with the judge?), judge evidence
   (the judge helper's module, when present), changes in the window and before the onset;
6. attribution.

Every optional source degrades to a note: no changes module or source configured, a repo that
cannot be read, no judge module or calibration data, no version tags, too little data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from oncall_ai.analysis.attribute import (
    AttributionInput,
    AttributionParams,
    CrossMetric,
    attribute,
    diff_slices,
    reaching_kind,
    seen_in_traffic,
)
from oncall_ai.analysis.cube import Cube
from oncall_ai.analysis.decompose import kitagawa
from oncall_ai.analysis.detect import (
    Anchor,
    Companion,
    DetectParams,
    compare_windows,
    detect_regression,
    hour_adjusted_mix_z,
    rate_residuals,
    refine_onset,
)
from oncall_ai.analysis.finding import Finding, chart_points
from oncall_ai.analysis.localize import LocalizeParams, localize
from oncall_ai.analysis.stats import welch
from oncall_ai.errors import OncallError
from oncall_ai.timeutil import format_duration, format_time, parse_duration_ms

HOUR = 3_600_000
MINUTE = 60_000
LOWER_IS_BETTER_WORDS = ("thumbs_down", "thumbsdown", "retry", "retries", "error", "fail", "latency",
                         "toxicity", "hallucination", "refusal", "complaint", "escalation")


@dataclass
class TriageSettings:
    """Defaults, overridable in the config's `triage:` section."""

    baseline_ms: int = 4 * 24 * HOUR  # history before --since used as the baseline (hourly rollups)
    coarse_ms: int = HOUR
    fine_ms: int = 5 * MINUTE
    fine_before_ms: int = 2 * HOUR
    fine_after_ms: int = 1 * HOUR
    candidates_before_onset_ms: int = 24 * HOUR
    detect: DetectParams = field(default_factory=DetectParams)
    localize: LocalizeParams = field(default_factory=LocalizeParams)
    attribute: AttributionParams = field(default_factory=AttributionParams)

    @classmethod
    def from_config(cls, cfg) -> TriageSettings:
        s = cls()
        sec = cfg.section("triage") if cfg is not None else {}
        if not sec:
            return s
        from oncall_ai.errors import ConfigError

        def dur(key: str, default: int) -> int:
            if key not in sec:
                return default
            try:
                return parse_duration_ms(str(sec[key]))
            except ValueError as e:
                raise ConfigError(f"{cfg.describe()}: triage.{key}: {e}") from None

        def level(key: str, zero_ok: bool, must: str) -> None:
            """A probability in (0, 0.5), or [0, 0.5) when 0 turns the feature off (a boolean is not one)."""
            if key in sec:
                a = sec[key]
                ok = (isinstance(a, int | float) and not isinstance(a, bool)
                      and (0 <= a if zero_ok else 0 < a) and a < 0.5)
                if not ok:
                    raise ConfigError(f"{cfg.describe()}: triage.{key}: must be a number in {must}")
                s.detect = dataclasses.replace(s.detect, **{key: float(a)})

        s.baseline_ms = dur("baseline", s.baseline_ms)
        s.fine_ms = dur("fine_bucket", s.fine_ms)
        s.candidates_before_onset_ms = dur("candidates_before_onset", s.candidates_before_onset_ms)
        level("alpha", False, "(0, 0.5), e.g. 0.001")
        level("suspect_alpha", True, "[0, 0.5), e.g. 0.1 (0: no suspected verdict)")
        return s


@dataclass
class TriageResult:
    at: int
    since: int
    findings: list[Finding]
    notes: list[str] = field(default_factory=list)

    def regression_found(self) -> bool:
        return any(f.detection.detected for f in self.findings)


def metric_direction(cfg, metric: str) -> tuple[bool, str | None]:
    """(higher_is_better, note). Unconfigured metrics named like a bad thing count as lower-better."""
    if cfg is not None and metric in cfg.metrics:
        return cfg.metrics[metric].higher_is_better, None
    low = metric.lower()
    if any(w in low for w in LOWER_IS_BETTER_WORDS):
        return False, f"metric {metric!r} is not in the config; assumed lower is better from its name"
    return True, f"metric {metric!r} is not in the config; assumed higher is better"


def run_triage(cfg, store, *, at: int, since: int, feature: str | None = None, metric: str | None = None,
               settings: TriageSettings | None = None, since_text: str = "24h",
               changes_fn: Callable | None = None, judge_fn: Callable | None = None) -> TriageResult:
    st = settings or TriageSettings.from_config(cfg)
    # The analysis holds hourly arrays from `since - baseline` to `at`: a window reaching far before
    # the first stored event (`--since 99999d`) would only add empty hours, gigabytes of them.
    first, _ = store.time_bounds()
    clamp_note = None
    if first is not None and since < first - st.coarse_ms and first // st.coarse_ms * st.coarse_ms < at:
        since = first // st.coarse_ms * st.coarse_ms
        clamp_note = f"the window starts at the first stored event's hour, {format_time(since)}"
    result = TriageResult(at, since, [])
    if clamp_note:
        result.notes.append(clamp_note)
    # The asked feature's series now; every other feature's only when a regression needs the
    # cross-feature check (a big store has thousands of series per feature).
    groups = _SeriesGroups(store, feature)
    wanted = sorted(k for k in groups if (metric is None or k[1] == metric) and (feature is None or k[0] == feature))
    if feature is not None and metric is not None and (feature, metric) not in groups:
        wanted = [(feature, metric)]
    if not wanted:
        what = " and ".join(x for x in (f"feature {feature!r}" if feature else "",
                                        f"metric {metric!r}" if metric else "") if x)
        result.notes.append(f"no events for {what or 'any feature'} in the store")
        return result

    changes, change_notes = _load_changes(cfg, store, since - st.candidates_before_onset_ms, at, feature,
                                          changes_fn)
    result.notes.extend(change_notes)
    hist_start = since - st.baseline_ms
    cube_cache: dict[tuple[str, str], Cube] = {}
    slice_keys = list(cfg.slices) if cfg is not None and cfg.slices else None

    prefetched: dict[tuple[str, str], dict] = {}
    prefetched_keys: set[tuple[str, str]] = set()
    if len(wanted) > 1:
        # A scan of many pairs: one aggregate query over all their series (one pass over the
        # hourly rollups) instead of one index seek per series and hour for every pair.
        sid_key = {x.id: k for k in wanted for x in groups.get(k, [])}
        if sid_key:
            prefetched_keys.update(wanted)
            for (sid, b), agg in store.aggregate(list(sid_key), hist_start, at, bucket_ms=st.coarse_ms).items():
                prefetched.setdefault(sid_key[sid], {})[(sid, b)] = agg

    companion_cache: dict[tuple[str, str], Companion] = {}

    def companion(f: str, m: str) -> Companion | None:
        """The pair (f, m) as a companion: which changes reach it is known from the change records
        alone; its cube is read only if an anchor needs it (one per run, shared by every pair)."""
        key = (f, m)
        if key not in companion_cache:
            src = _source(cfg, groups.get(key, []), m)
            higher, _ = metric_direction(cfg, m)
            labels = frozenset(ch.id for ch in changes if since <= ch.at < at
                               and reaching_kind(ch, f, m, src) not in (None, "input_shift"))
            companion_cache[key] = Companion(f, m, higher, labels, load=lambda f=f, m=m: coarse(f, m))
        return companion_cache[key]

    def coarse(f: str, m: str) -> Cube:
        key = (f, m)
        if key not in cube_cache:
            series = groups.get(key, [])
            if key in prefetched_keys:
                aggs = prefetched.pop(key, {})
            else:
                aggs = store.aggregate([s.id for s in series], hist_start, at, bucket_ms=st.coarse_ms) if series else {}
            cube_cache[key] = Cube.from_aggregates(series, aggs, start=hist_start, end=at,
                                                   bucket_ms=st.coarse_ms, slice_keys=slice_keys)
        return cube_cache[key]

    if len(wanted) > 1:
        # Alpha is the false-alarm rate of the whole run: a scan of many pairs splits it.
        st = dataclasses.replace(st, detect=dataclasses.replace(st.detect, family=len(wanted)))
    for f, m in wanted:
        try:
            finding = _triage_one(cfg, store, st, f, m, groups.get((f, m), []), coarse, changes, at, since,
                                  since_text, judge_fn, groups, slice_keys, companion)
        except OncallError:
            raise
        result.findings.append(finding)
    result.findings.sort(key=Finding.severity)
    return result


class _SeriesGroups(dict):
    """(feature, metric) -> [Series], loading the other features lazily on first full access."""

    def __init__(self, store, feature: str | None):
        super().__init__()
        self._store = store
        self._complete = feature is None
        for s in store.series(feature, None) if feature is not None else store.series():
            self.setdefault((s.feature, s.metric), []).append(s)

    def complete(self) -> _SeriesGroups:
        if not self._complete:
            self._complete = True
            have = {x.id for ss in self.values() for x in ss}
            for s in self._store.series():
                if s.id not in have:
                    self.setdefault((s.feature, s.metric), []).append(s)
        return self


def _load_changes(cfg, store, start: int, end: int, feature: str | None,
                  changes_fn: Callable | None) -> tuple[list, list[str]]:
    notes: list[str] = []
    if changes_fn is None:
        try:
            from oncall_ai.sources.changes import collect_changes as changes_fn  # noqa: N813
        except ImportError:
            return [], ["changes: the changes module is not installed; hypotheses cover input shift and judge only"]
    if cfg is None:
        notes.append("changes: no configuration, so no prompt repo, pins or recorded changes to read")
    try:
        known = cfg is not None and (not cfg.features or feature in cfg.features)
        cs = changes_fn(cfg, store, start, end, feature=feature if known else None)
    except OncallError as e:
        return [], [f"changes: {e.message}"]
    except Exception as e:  # a broken source must not take triage down at 3am
        return [], [f"changes: could not be read ({type(e).__name__}: {e})"]
    changes = list(getattr(cs, "changes", cs) or [])
    for p in getattr(cs, "problems", ()) or ():
        notes.append(f"changes: {p}")
    return changes, notes


def _triage_one(cfg, store, st: TriageSettings, feature: str, metric: str, series: list, coarse_fn,
                changes: list, at: int, since: int, since_text: str, judge_fn, groups, slice_keys,
                companion_fn=None) -> Finding:
    higher, note = metric_direction(cfg, metric)
    sign = 1 if higher else -1
    source = _source(cfg, series, metric)
    cube = coarse_fn(feature, metric)
    anchors = change_anchors(changes, feature, metric, source, cube, since, at)
    # The other metrics the same changes reach, tested at the same change times: a change that
    # makes answers worse moves the judge's score and the users' thumbs together, and a shared
    # cause (an index, a judge) moves every feature it reaches.
    companions = _companions(cfg, feature, metric, source, anchors, changes, groups, companion_fn)
    det = detect_regression(cube, window_start=since, at=at, higher_is_better=higher, params=st.detect,
                            anchors=anchors, companions=companions)
    finding = Finding(feature, metric, source, higher, det)
    if note:
        finding.notes.append(note)
    iw0 = cube.boundary(since)
    finding.chart = chart_points(cube, max(0, iw0 - (cube.n_buckets - iw0) // 3), cube.n_buckets)
    finding.changes_in_window = sorted((c for c in changes if c.affects(feature) and
                                        cube.time_of(0) <= c.at < at), key=lambda c: c.at)
    ref = det.reference
    if not det.has_drop or ref is None:
        if ref is not None and det.baseline_window and det.current_window:
            pre = (cube.boundary(det.baseline_window[0]), cube.boundary(det.baseline_window[1]))
            post = (cube.boundary(det.current_window[0]), cube.n_buckets)
            finding.decomposition = kitagawa(cube, pre, post, sigma2=ref.sigma2, phi=ref.phi,
                                             phi_mix=ref.phi_mix, sign=sign)
        return finding

    # First pass on hourly windows: where is it?
    tb = det.onset_bucket
    dec = kitagawa(cube, (0, tb), (tb, cube.n_buckets), sigma2=ref.sigma2, phi=ref.phi, phi_mix=ref.phi_mix, sign=sign)
    loc = localize(cube, (0, tb), (tb, cube.n_buckets), sign=sign, sigma2=ref.sigma2, phi=ref.phi,
                   decomposition=dec, params=st.localize)
    scope = loc.scope or (det.scope if det.signal == "rate" else {})

    # Refine the onset on fine buckets inside the affected slices.
    # Fine buckets over the whole window (and a little before the onset): attribution times every
    # candidate change on them, not only those near the onset (one query, ~30 ms a day of a pair
    # on a 10M-event store).
    fine = None
    coarse_onset = det.onset
    lo = max(cube.time_of(0), coarse_onset - st.fine_before_ms)
    hi = min(at, coarse_onset + st.fine_after_ms)
    f_lo = max(cube.time_of(0), min(lo, since) // st.fine_ms * st.fine_ms)
    if at > f_lo:
        aggs = store.aggregate([s.id for s in series], f_lo, at, bucket_ms=st.fine_ms)
        fine = Cube.from_aggregates(series, aggs, start=f_lo, end=at, bucket_ms=st.fine_ms, slice_keys=slice_keys)
    if hi > lo and fine is not None and det.signal == "rate" and det.anchor is None:
        cells = cube.cells_where(scope) if scope else None
        y, w = rate_residuals(cube, ref, cells)
        wb = sum(w[tb:])
        level = sum(w[b] * y[b] for b in range(tb, cube.n_buckets)) / wb if wb > 0 else 0.0
        if -sign * level > 0:
            refined = refine_onset(fine, ref.mu_by_cell(cube), ref.sigma2, ref.phi, sign=sign, scope=scope,
                                   level=level, lo_ms=lo, hi_ms=hi, grand=ref.grand)
            if refined is not None:
                det.onset, det.onset_range = refined

    # Second pass on windows split at the refined onset (the bucket holding it is left out).
    pre = (0, max(1, cube.bucket_of(det.onset)))
    post = (min(cube.n_buckets - 1, cube.boundary(det.onset)), cube.n_buckets)
    det.baseline, det.current = cube.moments(*pre), cube.moments(*post)
    det.baseline_window = (cube.time_of(pre[0]), cube.time_of(pre[1]))
    det.current_window = (cube.time_of(post[0]), at)
    det.test = welch(det.baseline, det.current, var_floor=ref.sigma2, inflation=ref.phi)
    dec = kitagawa(cube, pre, post, sigma2=ref.sigma2, phi=ref.phi, phi_mix=ref.phi_mix, sign=sign)
    loc = localize(cube, pre, post, sign=sign, sigma2=ref.sigma2, phi=ref.phi, decomposition=dec,
                   params=st.localize)
    finding.decomposition, finding.localization = dec, loc

    scope = loc.scope or {}
    cross = _cross_metrics(feature, metric, source, groups, coarse_fn, cube, pre, post, cfg, scope)
    others = _other_features(feature, metric, source, groups.complete(), coarse_fn, cube, pre, post, cfg, scope)
    judge_ev = None
    if source == "judge":
        judge_ev, jnote = _judge_evidence(cfg, store, feature, metric, since, at, det.onset, judge_fn)
        if jnote:
            finding.notes.append(jnote)
        elif judge_ev is not None and not getattr(judge_ev, "calibrated", True):
            finding.notes.append(
                f"judge: no calibration runs for {metric}, so the judge could not be checked against human "
                f"labels (judge drift rests on judge-only movement and judge_id switches); run "
                f"`oncall-ai judge calibrate --metric {metric}`")
    pin_key = None
    if cfg is not None and feature in cfg.features:
        pin_key = cfg.features[feature].model
    inp = AttributionInput(feature, metric, source, higher, cube, det, loc, dec, changes, at, fine=fine,
                           judge=judge_ev, cross=cross, pin_key=pin_key, since=since_text,
                           other_features=others, mix_z_hour=hour_adjusted_mix_z(cube, ref, pre, post))
    finding.hypotheses = attribute(inp, st.attribute)
    _onset_from_top(finding, fine)
    if det.verdict == "suspected":
        _mark_unconfirmed(finding)
    if not any(any(v is not None for v in r.versions[:3]) for r in cube.rows):
        finding.notes.append("events carry no version tags (model_id, prompt_version, index_version): "
                             "no side-by-side version comparison, timing and footprint only")
    if not changes:
        finding.notes.append("no changes found in the window from any source")
    return finding


MAX_COMPANIONS = 6


def _companions(cfg, feature: str, metric: str, source: str, anchors: list, changes: list, groups,
                companion_fn) -> list[Companion]:
    """The other metrics the changes at the anchors reach, to test the same steps on: the
    feature's own other metrics (user signals, checks), and other features' metrics for a change
    whose footprint names them (an index, a judge, a recorded change with its features; a change
    that merely defaults to every feature is not evidence that it reaches them). Same metric
    first, then the same source; at most MAX_COMPANIONS, so the combined test is not diluted by
    a dozen metrics the change does not move (and a big store does not read them all)."""
    if not anchors or companion_fn is None:
        return []
    labels = {a.label for a in anchors}
    named = {ch.id: set(ch.features) for ch in changes if ch.id in labels and ch.features}
    others = set().union(*named.values()) - {feature} if named else set()
    pairs = sorted(groups.complete() if others else groups)
    ranked = []
    for f2, m2 in pairs:
        if (f2, m2) == (feature, metric) or (f2 != feature and f2 not in others):
            continue
        c = companion_fn(f2, m2)
        if c is None:
            continue
        allowed = c.labels & labels
        if f2 != feature:
            allowed = frozenset(x for x in allowed if f2 in named.get(x, ()))
            c = dataclasses.replace(c, labels=allowed)
        if not allowed:
            continue
        src = _source(cfg, groups.get((f2, m2), []), m2)
        ranked.append(((f2 != feature, m2 != metric, src != source, f2, m2), c))
    return [c for _, c in sorted(ranked, key=lambda x: x[0])[:MAX_COMPANIONS]]


def change_anchors(changes: list, feature: str, metric: str, source: str, cube: Cube, since: int,
                   at: int) -> list[Anchor]:
    """Known change times in the window that can reach this metric, each with the slices its
    diff names (a prompt edit about German answers: language=de), for the step tests at change
    times. Fixed from the change records alone, before the metric's data is looked at."""
    out = []
    values = cube.slice_values()
    for ch in changes:
        if not since <= ch.at < at:
            continue
        kind = reaching_kind(ch, feature, metric, source)
        if kind is None or kind == "input_shift":
            continue
        start = seen_in_traffic(ch, feature) or ch.at
        hits = diff_slices(ch, values)
        for scope in ([((k, v),) for k, v in hits] or [()]):
            out.append(Anchor(start, scope, ch.id))
    return out


def _mark_unconfirmed(finding: Finding) -> None:
    """A suspected drop's hypotheses are suspects, not findings: the top one says so first, and
    what would confirm it (the report heads them "Suspects (NOT CONFIRMED)"). The rollback command
    stays, as the exact one should it be confirmed; scripts act on `regression.detected`, which is
    false here (runbooks/bin/triage-on-page.sh and `incident open --from-triage` do)."""
    det = finding.detection
    more = f" (about {det.needed_more:,} more events after the onset)" if det.needed_more else ""
    if finding.hypotheses:
        finding.hypotheses[0].evidence.insert(
            0, f"NOT CONFIRMED: the drop itself is not beyond noise yet, p={det.p_value:.2g} after "
               f"correction; re-run triage later{more} before acting on it")


def _source(cfg, series: list, metric: str) -> str:
    """judge | check | user of a pair: what most of its series say, else the config's metric."""
    return _majority([s.source for s in series]) or (cfg.metric(metric).source if cfg is not None else "judge")


def _majority(values: list[str]) -> str | None:
    if not values:
        return None
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return max(counts, key=lambda k: (counts[k], k))


def _onset_from_top(finding: Finding, fine: Cube | None) -> None:
    """"Since when" in terms of the cause: when the top hypothesis' change reached traffic, if its
    exposure explains the drop as well as the best free onset (canary ramps start small, so the
    data alone puts the onset at the full rollout; statistics.md section 2.2)."""
    det = finding.detection
    if not finding.hypotheses or det.onset is None:
        return
    top = finding.hypotheses[0]
    start = top.exposure_start
    if top.change is None or start is None or top.components.get("timing", -99) < -2.0:
        return
    lo = (det.onset_range[0] if det.onset_range else det.onset) - 3 * HOUR
    if lo <= start <= det.onset + 15 * MINUTE:
        det.onset = start
        if det.onset_range is not None:  # the range says where the onset may be: it includes it
            det.onset_range = (min(det.onset_range[0], start), max(det.onset_range[1], start))


def _other_features(feature: str, metric: str, source: str, groups, coarse_fn, cube: Cube, pre, post, cfg,
                    scope: dict) -> dict[str, float]:
    """Did the same metric (or another of the same source) drop in the other features at the same
    time, in the same slices? z in the bad direction per feature. Shared causes (an index, a judge,
    a provider alias) hit every feature they reach."""
    out: dict[str, float] = {}
    t_pre = (cube.time_of(pre[0]), cube.time_of(pre[1]))
    t_post = (cube.time_of(post[0]), cube.time_of(post[1]))
    feats = sorted({f for f, _ in groups if f != feature})
    for g in feats:
        m = metric if (g, metric) in groups else next(
            (mm for (ff, mm), ss in sorted(groups.items()) if ff == g and _majority([s.source for s in ss]) == source),
            None)
        if m is None:
            continue
        other = coarse_fn(g, m)
        higher, _ = metric_direction(cfg, m)
        res = compare_windows(other, pre=(other.boundary(t_pre[0]), other.boundary(t_pre[1])),
                              post=(other.boundary(t_post[0]), other.boundary(t_post[1])),
                              sign=1 if higher else -1, scope=scope or None)
        if res is not None:
            out[g] = res[0]
    return out


def _cross_metrics(feature: str, metric: str, source: str, groups, coarse_fn, cube: Cube, pre, post,
                   cfg, scope: dict | None = None) -> list[CrossMetric]:
    if source != "judge":
        return []
    out = []
    t_pre = (cube.time_of(pre[0]), cube.time_of(pre[1]))
    t_post = (cube.time_of(post[0]), cube.time_of(post[1]))
    for (f, m), series in sorted(groups.items()):
        if f != feature or m == metric:
            continue
        src = _majority([s.source for s in series])
        if src not in ("user", "check"):
            continue
        other = coarse_fn(f, m)
        pre_o = (other.boundary(t_pre[0]), other.boundary(t_pre[1]))
        post_o = (other.boundary(t_post[0]), other.boundary(t_post[1]))
        higher, _ = metric_direction(cfg, m)
        res = compare_windows(other, pre=pre_o, post=post_o, sign=1 if higher else -1, scope=scope or None)
        if res is None:
            continue
        z, delta, n = res
        out.append(CrossMetric(m, src, z, delta, n))
    return out


def _judge_evidence(cfg, store, feature: str, metric: str, since: int, at: int, onset: int,
                    judge_fn: Callable | None):
    if judge_fn is None:
        try:
            from oncall_ai.analysis.judge_health import judge_evidence as judge_fn  # noqa: N813
        except ImportError:
            return None, None
    try:
        return judge_fn(cfg, store, feature, metric, since, at, onset), None
    except OncallError as e:
        return None, f"judge evidence: {e.message}"
    except Exception as e:  # no calibration data, a broken run record: degrade, never crash
        return None, f"judge evidence unavailable ({type(e).__name__}: {e})"


def describe_window(since: int, at: int) -> str:
    return format_duration(at - since)
