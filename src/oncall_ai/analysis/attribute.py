"""Which change most likely caused the drop? Ranked hypotheses with evidence in plain words.

Every change in the window (and the window before the onset) that can reach the feature and
metric is a candidate. Each is scored by summed log-evidence (statistics.md section 7):

- timing / exposure: the metric's residual series (where the drop sits) is fitted with a step
  of the observed size that follows the change's exposure curve: the share of traffic on the
  new version per bucket when events carry versions (canary ramps included), the ramp the
  change source reported, else a step at the change time. The evidence is the log-likelihood of
  that fit relative to the best free change point: 0 for a change that explains the onset as
  well as anything can, large and negative for one hours off. Being near is not enough: the
  loss grows with the events between the change and the real onset.
- footprint: does the drop sit where the change can reach (the cells that served its new
  version, retrieval traffic for an index, the slice a prompt path names)? Lift = share of the
  drop inside / share of traffic inside (2 ln lift), minus the drop it cannot explain outside.
  A cell is outside a version's footprint only when it should have shown the version at least
  5 times and never did: sparse slice combinations prove nothing either way.
- direct comparison: events tagged with the new vs the old version inside the same time buckets
  and slice cells (CMH-style stratified difference): the likelihood ratio of "new is worse by
  the observed drop" against "no difference".
- judge evidence (calibration drift, judge-only movement while user signals stay flat) for
  judge changes, and against product changes when only the judge moved.
- input shift: the mix effect of the decomposition against the rate effect.

Scores are the softmax of the log-evidence over the hypotheses plus an "unexplained" option
(a free change point with no known cause), so a lonely bad candidate does not get 0.99.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from oncall_ai.analysis.cube import VERSION_FIELDS, Cell, Cube, Row
from oncall_ai.analysis.decompose import Decomposition
from oncall_ai.analysis.detect import Detection, Reference, rate_residuals
from oncall_ai.analysis.localize import Localization
from oncall_ai.analysis.stats import Moments

KIND_FIELD = {"prompt": "prompt_version", "model": "model_id", "index": "index_version", "judge": "judge_id"}
HYPOTHESIS_KINDS = ("prompt_change", "model_change", "provider_model_change", "index_change",
                    "judge_drift", "input_shift", "recorded_change")

MIN_SHA = 7
LOSS_CAP = 40.0


@dataclass(frozen=True)
class CrossMetric:
    """Another metric of the same feature over the same windows (for judge-only movement)."""

    metric: str
    source: str  # judge | check | user
    z_bad: float  # > 0: got worse after the onset
    delta: float
    n: int


@dataclass(frozen=True)
class AttributionParams:
    pre_window_ms: int = 24 * 3_600_000  # candidates this long before the onset
    after_onset_grace_ms: int = 15 * 60_000
    unexplained_penalty: float = 2.0  # log-evidence cost of "a cause we do not know about"
    lift_cap: float = 4.0
    timing_weight: float = 1.0
    # Log prior odds of a change of unknown mechanism (a recorded config or ops change: timeouts,
    # keys, rate limits) against one that changes what the feature serves (prompt, model, index,
    # judge): such changes rarely move quality scores, and nothing in the events (version tags)
    # can confirm that they reached the feature. e^-2: about 1 in 7.
    unknown_mechanism_prior: float = -2.0
    # Log prior odds of a prompt edit that only touches comments/whitespace or fixes spelling.
    inert_diff_prior: float = -1.5


@dataclass
class Hypothesis:
    kind: str
    target: str
    change: object | None  # model.Change
    log_evidence: float
    evidence: list[str] = field(default_factory=list)
    rollback: str | None = None
    next_check: str | None = None
    score: float = 0.0
    rank: int = 0
    components: dict = field(default_factory=dict)
    exposure_start: int | None = None

    @property
    def runbook(self) -> str:
        return f"runbooks/{self.kind}.md"


@dataclass
class AttributionInput:
    feature: str
    metric: str
    metric_source: str  # judge | check | user
    higher_is_better: bool
    cube: Cube
    detection: Detection
    localization: Localization
    decomposition: Decomposition | None
    changes: Sequence  # model.Change
    at: int
    fine: Cube | None = None
    judge: object | None = None  # judge_health.JudgeEvidence or None
    cross: Sequence[CrossMetric] = ()
    pin_key: str | None = None  # the feature's model pin key, for provider-side rollbacks
    since: str = "24h"
    other_features: dict = field(default_factory=dict)  # feature -> z of the same drop there
    mix_z_hour: float | None = None  # mix effect z against the baseline mix of the same hours of day


# --- timeline of residuals: coarse buckets, fine buckets around the onset ---------------------------

@dataclass
class Segment:
    start: int
    end: int
    y: float
    w: float
    cube: Cube
    bucket: int


def _timeline(inp: AttributionInput, ref: Reference, scope_cells_coarse: list[int]) -> list[Segment]:
    cube, fine = inp.cube, inp.fine
    y, w = rate_residuals(cube, ref, scope_cells_coarse)
    f0 = f1 = None
    segs: list[Segment] = []
    fy = fw = None
    if fine is not None and fine.n_buckets:
        mu = ref.mu_by_cell(cube)
        m = [mu.get(c, ref.grand) for c in fine.cells]
        fcells = _cells_like(fine, cube, scope_cells_coarse)
        fy, fw = rate_residuals(fine, ref, fcells, mu=m)
        f0, f1 = fine.time_of(0), fine.time_of(fine.n_buckets)
    for b in range(cube.n_buckets):
        s, e = cube.time_of(b), cube.time_of(b + 1)
        if f0 is not None and s < f1 and e > f0:
            continue  # covered by fine buckets (coarse edges overlapping partly are dropped)
        if w[b] > 0:
            segs.append(Segment(s, e, y[b], w[b], cube, b))
    if fine is not None and fy is not None:
        # Keep fine buckets only inside coarse buckets we dropped, so nothing counts twice.
        dropped = [(cube.time_of(b), cube.time_of(b + 1)) for b in range(cube.n_buckets)
                   if f0 is not None and cube.time_of(b) < f1 and cube.time_of(b + 1) > f0]
        lo = min((d[0] for d in dropped), default=f0)
        hi = max((d[1] for d in dropped), default=f1)
        for b in range(fine.n_buckets):
            s, e = fine.time_of(b), fine.time_of(b + 1)
            if s >= lo and e <= hi and fw[b] > 0:
                segs.append(Segment(s, e, fy[b], fw[b], fine, b))
    segs.sort(key=lambda g: g.start)
    return segs


def _cells_like(other: Cube, cube: Cube, cells: list[int]) -> list[int]:
    wanted = {cube.cells[c] for c in cells}
    return [i for i, c in enumerate(other.cells) if c in wanted]


def _profile_gain(segs: list[Segment], x: list[float], sign: int, phi: float) -> float:
    """Log-likelihood of residual mean L*x_t against 0, with the drop L fitted to this exposure
    (profile likelihood): (sum w x y)^2 / (2 phi sum w x^2), 0 unless L is a drop."""
    sxy = sum(g.w * xt * g.y for g, xt in zip(segs, x, strict=True))
    sxx = sum(g.w * xt * xt for g, xt in zip(segs, x, strict=True))
    if sxx <= 0 or -sign * sxy <= 0:
        return 0.0
    return sxy * sxy / (2 * phi * sxx)


def _best_profile_step(segs: list[Segment], sign: int, phi: float, lo: int, hi: int) -> tuple[float, int | None]:
    """The best step (start among segment starts in [lo, hi], its own drop size): (gain, time)."""
    best = (0.0, None)
    aw = awy = 0.0
    for g in reversed(segs):
        aw += g.w
        awy += g.w * g.y
        if lo <= g.start <= hi and aw > 0 and -sign * awy > 0:
            gain = awy * awy / (2 * phi * aw)
            if gain > best[0]:
                best = (gain, g.start)
    return best


# --- candidate construction ---------------------------------------------------------------------

@dataclass
class Candidate:
    change: object
    kind: str  # hypothesis kind
    target: str
    field: str | None  # version field the change moves in events
    version: str | None
    cumulative: bool  # prompt commits: later versions include this change
    at: int
    exposure_start: int | None = None


def hypothesis_kind(change) -> str | None:
    """CONTRACT section 5 kind for a change record (None: not a cause of a quality change)."""
    kind = change.kind
    if kind == "prompt":
        return "prompt_change"
    if kind == "model":
        return "provider_model_change" if change.provider_side else "model_change"
    if kind == "index":
        return "index_change"
    if kind == "judge":
        return "judge_drift"
    if kind == "traffic":
        if change.source == "traffic":
            return {"prompt_version": "prompt_change", "model_id": "provider_model_change",
                    "index_version": "index_change", "judge_id": "judge_drift"}.get(change.target)
        return "input_shift"
    return "recorded_change"


def _target(change, kind: str) -> str:
    if kind == "provider_model_change":
        return change.to_value or change.target
    if kind == "prompt_change" and (change.kind == "traffic" or change.source == "traffic"):
        v = change.to_value or change.target  # no commit known: the served version is the target
        return v[:12] if len(v) == 40 else v
    return change.target or (change.paths[0] if change.paths else "")


def _same_version(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    if a == b:
        return True
    if len(a) >= MIN_SHA and len(b) >= MIN_SHA and all(c in "0123456789abcdef" for c in a + b):
        return a.startswith(b) or b.startswith(a)
    return False


def build_candidates(inp: AttributionInput, lo: int, hi: int) -> list[Candidate]:
    """Changes in [lo, hi) that can reach this feature and metric, deduplicated: a version switch
    seen in traffic merges into the git/recorded change that introduced that version."""
    out: list[Candidate] = []
    traffic: list = []
    for ch in inp.changes:
        if not (lo <= ch.at < hi):
            continue
        kind = reaching_kind(ch, inp.feature, inp.metric, inp.metric_source)
        if kind is None:
            continue
        if ch.kind == "traffic" and ch.source == "traffic" and kind != "provider_model_change":
            traffic.append((ch, kind))
            continue
        field_name = KIND_FIELD.get(ch.kind)
        version = None
        if ch.kind == "prompt":
            version = ch.to_value or ch.id
        elif field_name:
            version = ch.to_value
        if kind == "provider_model_change":
            field_name, version = "model_id", ch.to_value
        cand = Candidate(ch, kind, _target(ch, kind), field_name, version, ch.kind == "prompt", ch.at)
        cand.exposure_start = seen_in_traffic(ch, inp.feature)
        out.append(cand)
    for ch, kind in traffic:
        field_name = ch.target if ch.target in VERSION_FIELDS else None
        match = next((c for c in out if c.field == field_name and _same_version(c.version, ch.to_value)), None)
        if match is not None:
            match.exposure_start = ch.at if match.exposure_start is None else min(match.exposure_start, ch.at)
            if ch.details.get("ramp") and not match.change.details.get("ramp"):
                match.change.details.setdefault("ramp", ch.details["ramp"]) if isinstance(
                    match.change.details, dict) else None
            continue
        out.append(Candidate(ch, kind, _target(ch, kind), field_name, ch.to_value,
                             field_name == "prompt_version", ch.at))
    return out


def reaching_kind(ch, feature: str, metric: str, metric_source: str) -> str | None:
    """The hypothesis kind of a change that can move this feature's metric, else None."""
    if not ch.affects(feature):
        return None
    kind = hypothesis_kind(ch)
    if kind == "judge_drift":
        # A judge scores one metric; it cannot move user signals or deterministic checks.
        if metric_source != "judge":
            return None
        if ch.kind == "judge" and ch.target and ch.target != metric and ch.target not in ch.paths:
            if not _mentions(ch, metric):
                return None
    return kind


def seen_in_traffic(ch, feature: str) -> int | None:
    """When the change's new version first showed in this feature's traffic (the changes source
    records it), i.e. when it really started serving; None when not recorded."""
    seen = ch.details.get("seen_in_traffic") if isinstance(ch.details, dict) else None
    start = None
    for evd in seen or ():
        if isinstance(evd, dict) and evd.get("feature") == feature and isinstance(evd.get("at"), int):
            if start is None or evd["at"] < start:
                start = max(evd["at"], ch.at) if evd["at"] >= ch.at - 3_600_000 else evd["at"]
    return start


def _mentions(ch, metric: str) -> bool:
    text = " ".join([ch.target or "", ch.summary or "", " ".join(ch.paths)])
    return metric in text


# --- exposure ---------------------------------------------------------------------------------------

class _VersionIndex:
    """Per version field: tagged counts per (cube, bucket) in the scope cells, and per version."""

    def __init__(self, cubes: list[Cube], scope: dict[int, set[int]], mu: dict[int, list[float]] | None = None):
        self.cubes = cubes
        self.scope = scope  # id(cube) -> scope cell ids
        self.mu = mu or {}  # id(cube) -> baseline mean per cell (residuals for the direct comparison)
        self.tagged: dict[tuple[str, int, int], float] = {}
        self.by_value: dict[tuple[str, str], list[tuple[Cube, Row]]] = {}
        self.first_seen: dict[tuple[str, str], int] = {}
        self._strata: dict[str, dict] = {}
        # Fine buckets (when present) give the first-seen time to 5 minutes; a coarse bucket only
        # says "some time in this hour", so its start is used only when the fine cube lacks it.
        fine_first: dict[tuple[str, str], int] = {}
        coarse_first: dict[tuple[str, str], int] = {}
        for cube in cubes:
            cells = scope[id(cube)]
            for r in cube.rows:
                for fi, fname in enumerate(VERSION_FIELDS):
                    v = r.versions[fi]
                    if v is None:
                        continue
                    key = (fname, v)
                    t = cube.time_of(r.bucket)
                    if key not in self.first_seen or t < self.first_seen[key]:
                        self.first_seen[key] = t
                    first = fine_first if cube is not cubes[0] else coarse_first
                    if key not in first or t < first[key]:
                        first[key] = t
                    self.by_value.setdefault(key, []).append((cube, r))
                    if r.cell in cells:
                        k = (fname, id(cube), r.bucket)
                        self.tagged[k] = self.tagged.get(k, 0.0) + r.n
        if len(cubes) > 1:
            f0 = cubes[1].time_of(0)
            for key, t in fine_first.items():
                c = coarse_first.get(key)
                # Trust the fine time over the coarse bucket start when the fine window covers the
                # coarse bucket the version first showed in, or starts inside it and the version
                # is absent from the fine window's first bucket (so it started after f0). Seen at
                # the fine window's very start, it may have started anywhere in [c, f0].
                if c is None or c >= f0 or (c + cubes[0].bucket_ms > f0 and t > f0):
                    self.first_seen[key] = t
                else:
                    self.first_seen[key] = c

    def strata(self, fname: str) -> dict:
        """(hour, other versions) -> {version: Moments of residuals (value - the cell's baseline
        mean)} in the scope cells, computed once per field. Hour strata of residuals rather than (bucket, cell) strata
        of values: a canary hour holds a few events per cell, too few to pair old and new within
        a cell, while residuals already take each cell's level out."""
        if fname not in self._strata:
            fi = VERSION_FIELDS.index(fname)
            out: dict = {}
            hour = self.cubes[0].bucket_ms
            # Fine buckets replace the coarse buckets they overlap (the same events must not be
            # compared twice, which would halve the standard error).
            f0 = f1 = None
            if len(self.cubes) > 1 and self.cubes[1].n_buckets:
                f0, f1 = self.cubes[1].time_of(0), self.cubes[1].time_of(self.cubes[1].n_buckets)
            for ci, cube in enumerate(self.cubes):
                cells = self.scope[id(cube)]
                mu = self.mu.get(id(cube))
                for r in cube.rows:
                    v = r.versions[fi]
                    if v is None or r.cell not in cells:
                        continue
                    t0 = cube.time_of(r.bucket)
                    if ci == 0 and f0 is not None and t0 < f1 and cube.time_of(r.bucket + 1) > f0:
                        continue
                    # ... and within the same other versions: a prompt switch during a model canary
                    # must not take the credit for the model's drop (nor the model for the prompt's).
                    others = r.versions[:fi] + r.versions[fi + 1:]
                    key = (t0 - (t0 - self.cubes[0].start) % hour, others)
                    m = out.setdefault(key, {}).setdefault(v, Moments())
                    m.add(r.n, r.s - (r.n * mu[r.cell] if mu is not None else 0.0), 0.0)
            self._strata[fname] = out
        return self._strata[fname]

    def matching_values(self, fname: str, version: str, cumulative: bool) -> list[str]:
        direct = [v for (f, v) in self.first_seen if f == fname and _same_version(v, version)]
        if not cumulative or not direct:
            return direct
        t0 = min(self.first_seen[(fname, v)] for v in direct)
        return [v for (f, v), t in self.first_seen.items() if f == fname and t >= t0]

    def share(self, fname: str, values: list[str], cells_by_cube: dict[int, set[int]]) -> dict:
        """(id(cube), bucket) -> share of tagged events carrying one of `values`."""
        num: dict[tuple[int, int], float] = {}
        for v in values:
            for cube, r in self.by_value.get((fname, v), ()):
                if r.cell in cells_by_cube[id(cube)]:
                    k = (id(cube), r.bucket)
                    num[k] = num.get(k, 0.0) + r.n
        out = {}
        for (f, cid, b), tot in self.tagged.items():
            if f == fname and tot > 0:
                out[(cid, b)] = num.get((cid, b), 0.0) / tot
        return out


def _exposure(cand: Candidate, segs: list[Segment], vidx: _VersionIndex | None,
              scope_by_cube: dict[int, set[int]]) -> tuple[list[float], str, int]:
    """Exposure x_t per segment, how it was obtained, and the exposure start time."""
    start = cand.exposure_start if cand.exposure_start is not None else cand.at
    ramp = cand.change.details.get("ramp") if isinstance(getattr(cand.change, "details", None), dict) else None
    shares = None
    how = "step"
    if vidx is not None and cand.field and cand.version:
        values = vidx.matching_values(cand.field, cand.version, cand.cumulative)
        if values:
            shares = vidx.share(cand.field, values, scope_by_cube)
            first = min(vidx.first_seen[(cand.field, v)] for v in values)
            # A version cannot serve traffic before its commit: the coarse first-seen is a bucket start.
            start = max(first, cand.at) if first < cand.at < first + _bucket_of_time(vidx, first) else first
            how = "versions"
    x = []
    for g in segs:
        xt = None
        if shares is not None:
            xt = shares.get((id(g.cube), g.bucket))
        if xt is None and ramp:
            xt = _ramp_share(ramp, g.start, g.end)
        if xt is None:
            xt = _step_share(start, g.start, g.end)
        x.append(xt)
    if how == "step" and ramp:
        how = "ramp"
    return x, how, start


def _bucket_of_time(vidx: _VersionIndex, t: int) -> int:
    """Resolution of a first-seen time: the fine bucket if it falls in the fine window."""
    if len(vidx.cubes) > 1:
        f = vidx.cubes[1]
        if f.time_of(0) <= t < f.time_of(f.n_buckets):
            return f.bucket_ms
    return vidx.cubes[0].bucket_ms


def _step_share(at: int, s: int, e: int) -> float:
    if at <= s:
        return 1.0
    if at >= e:
        return 0.0
    return (e - at) / (e - s)


def _ramp_share(ramp: list, s: int, e: int) -> float | None:
    pts = sorted((int(t), float(v)) for t, v in ramp)
    if not pts:
        return None
    mid = (s + e) // 2
    if mid < pts[0][0]:
        return 0.0
    val = 0.0
    for t, v in pts:
        if t <= mid:
            val = v
    return val


# --- direct old-vs-new comparison -----------------------------------------------------------------

def _direct(cand: Candidate, vidx: _VersionIndex | None, cubes: list[Cube], scope_by_cube: dict[int, set[int]],
            ref: Reference, base_cube: Cube) -> tuple[float, float, float] | None:
    """CMH-style stratified difference new - old of residuals within hour strata of the scope.
    Returns (diff, se, events on the new side) or None without overlapping strata."""
    if vidx is None or not cand.field or not cand.version:
        return None
    values = set(vidx.matching_values(cand.field, cand.version, cand.cumulative))
    if not values:
        return None
    strata = vidx.strata(cand.field)
    num = den = var = 0.0
    n_new = 0.0
    for by_version in strata.values():
        if len(by_version) < 2:
            continue
        new, old = Moments(), Moments()
        for v, m in by_version.items():
            (new if v in values else old).merge(m)
        if new.n < 1 or old.n < 1:
            continue
        wh = new.n * old.n / (new.n + old.n)
        num += wh * (new.mean - old.mean)
        den += wh
        var += wh * wh * ref.sigma2 * ref.phi * (1 / new.n + 1 / old.n)
        n_new += new.n
    if den <= 0:
        return None
    return num / den, math.sqrt(var) / den, n_new


# --- footprint ----------------------------------------------------------------------------------------

# A cell is outside a version's footprint only when it should have shown the version this many
# times (at the rate the version shows in all traffic since it appeared) and never did: P = e^-5.
FOOTPRINT_MIN_EXPECTED = 5.0


def _untouched_cells(cube: Cube, fname: str, values: set[str], t0: int) -> set[int] | None:
    """Cells the version never reached though it had every chance to: no event carrying one of
    `values` since `t0`, where the version's share of all traffic since then predicts at least
    FOOTPRINT_MIN_EXPECTED. A sparse cell with no tagged event of it proves nothing (most of a
    small feature's rare slice combinations hold a few judged events an hour): it counts as
    reached. None: the version shows in no event of the cube."""
    fi = VERSION_FIELDS.index(fname)
    n_all = [0.0] * len(cube.cells)
    hits = [0.0] * len(cube.cells)
    for r in cube.rows:
        if cube.time_of(r.bucket + 1) <= t0:
            continue
        n_all[r.cell] += r.n
        if r.versions[fi] in values:
            hits[r.cell] += r.n
    total = sum(n_all)
    rate = sum(hits) / total if total > 0 else 0.0
    if rate <= 0:
        return None
    return {c for c in range(len(cube.cells)) if hits[c] == 0 and n_all[c] * rate >= FOOTPRINT_MIN_EXPECTED}


def _footprint(cand: Candidate, cube: Cube, vidx: _VersionIndex | None) -> tuple[set[int] | None, str]:
    """Cells of the coarse cube the change can reach, and how we know (None: the whole feature)."""
    if vidx is not None and cand.field and cand.version:
        values = vidx.matching_values(cand.field, cand.version, cand.cumulative)
        if values:
            t0 = min(vidx.first_seen[(cand.field, v)] for v in values)
            outside = _untouched_cells(cube, cand.field, set(values), t0)
            if outside is not None:  # (None: the version shows in no event of this cube)
                cells = set(range(len(cube.cells))) - outside if outside else None
                return cells, f"events tagged {cand.field}={_short(values[0])}"
    if cand.kind == "index_change":
        tagged = {r.cell for r in cube.rows if r.versions[2] is not None}
        if tagged and len(tagged) < len(cube.cells):
            return tagged, "traffic that retrieves (events carrying an index_version)"
        cells = _retrieval_cells(cube)
        if cells is not None:
            return cells, "retrieval slices"
    if cand.kind == "prompt_change":
        paths = " ".join(getattr(cand.change, "paths", ()) or ()).lower() + " " + (cand.target or "").lower()
        hits = []
        for key, vals in cube.slice_values().items():
            for v in vals:
                if len(v) >= 2 and _path_names(paths, v.lower()):
                    hits.append((key, v))
        if len(hits) == 1:
            key, v = hits[0]
            return set(cube.cells_where({key: v})), f"its path names {key}={v}"
    return None, "the whole feature"


# Language codes as prompts spell them: a diff that says "German" is about language=de.
LANGUAGE_NAMES = {
    "en": ("english",), "de": ("german", "deutsch"), "fr": ("french", "français", "francais"),
    "es": ("spanish", "español", "espanol"), "it": ("italian",), "pt": ("portuguese",), "nl": ("dutch",),
    "ja": ("japanese",), "zh": ("chinese", "mandarin"), "ko": ("korean",), "ru": ("russian",),
    "pl": ("polish",), "sv": ("swedish",), "da": ("danish",), "fi": ("finnish",), "no": ("norwegian",),
    "tr": ("turkish",), "ar": ("arabic",), "he": ("hebrew",), "hi": ("hindi",), "uk": ("ukrainian",),
    "cs": ("czech",), "el": ("greek",), "id": ("indonesian",), "th": ("thai",), "vi": ("vietnamese",),
}


def diff_slices(change, slice_values: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Slice values a change names in the lines its diff adds or removes (not context lines):
    `language=de` for "German", `persona=enterprise` for "Enterprise customers", `shape=long_doc`
    for "long documents" (every part of the value starts a word of the same line). A prompt
    change that names a slice is expected to hit that slice: its footprint."""
    diff = getattr(change, "diff", None)
    if not diff:
        return []
    lines = [ln[1:].lower() for ln in diff.splitlines()
             if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    if not lines:
        return []
    words = [set(re.findall(r"[^\W_]+", ln)) for ln in lines]
    hits = []
    for key, vals in slice_values.items():
        if len(vals) < 2:
            continue
        lang = "lang" in key.lower() or "locale" in key.lower()
        for v in vals:
            lv = v.lower()
            if lang and lv[:2] in LANGUAGE_NAMES and (len(lv) == 2 or lv[2:3] in "-_"):
                names = LANGUAGE_NAMES[lv[:2]]
                if any(n in ws for ws in words for n in names):
                    hits.append((key, v))
                continue
            parts = [x for x in re.split(r"[^\w]+|_", lv) if x]
            if not parts or all(len(x) < 3 for x in parts):
                continue  # "a", "b2": too short to recognise in prose
            # A part may start a longer word ("doc" in "documents") only inside a multi-part value
            # or when it is long itself: "pro" must not match "product".
            loose = len(parts) > 1

            def named(x: str, ws: set[str], loose: bool = loose) -> bool:
                return any(w == x or w == x + "s" or (w.startswith(x) and len(x) >= 3 and (loose or len(x) >= 5))
                           for w in ws)

            if any(all(named(x, ws) for x in parts) for ws in words):
                hits.append((key, v))
    return hits


def diff_inert(change) -> str | None:
    """How a prompt diff looks unable to change behaviour, or None: only HTML comments or
    whitespace changed, or only a spelling fix (a few words, each within two letters of the old
    one). Such edits rarely move quality: a mild prior, never a verdict (a one-word edit can)."""
    diff = getattr(change, "diff", None)
    if not diff:
        return None
    old = [ln[1:] for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    new = [ln[1:] for ln in diff.splitlines() if ln.startswith("+") and not ln.startswith("+++")]
    if not old and not new:
        return None

    def strip(lines: list[str]) -> list[str]:
        text = re.sub(r"<!--.*?-->", " ", "\n".join(lines), flags=re.S)
        return text.split()

    a, b = strip(old), strip(new)
    if a == b:
        return "its diff only changes comments or whitespace"
    if len(a) == len(b):
        pairs = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
        if 0 < len(pairs) <= 2 and all(_edit_distance(x.lower(), y.lower()) <= 2 and min(len(x), len(y)) >= 4
                                       for x, y in pairs):
            return "its diff only fixes spelling (" + ", ".join(f"{x} -> {y}" for x, y in pairs) + ")"
    return None


def _edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _path_names(paths: str, value: str) -> bool:
    return re.search(r"(^|[/_\-. ])" + re.escape(value) + r"($|[/_\-. ])", paths) is not None


def _retrieval_cells(cube: Cube) -> set[int] | None:
    truthy = {"1", "true", "yes", "y", "on", "rag", "retrieval"}
    for key in cube.slice_keys():
        lk = key.lower()
        if "retriev" in lk or "rag" in lk or lk in ("uses_index", "index"):
            cells = {i for i, c in enumerate(cube.cells) if dict(c).get(key, "").lower() in truthy}
            if cells:
                return cells
    return None


def _short(v: str) -> str:
    return v[:10] if len(v) > 12 and all(c in "0123456789abcdef" for c in v) else v


# --- scoring --------------------------------------------------------------------------------------------

def attribute(inp: AttributionInput, params: AttributionParams | None = None) -> list[Hypothesis]:
    p = params or AttributionParams()
    det = inp.detection
    if not det.has_drop or det.reference is None or det.onset is None:
        return []
    ref = det.reference
    sign = 1 if inp.higher_is_better else -1
    cube = inp.cube
    scope = inp.localization.scope or {}
    scope_cells = cube.cells_where(scope) if scope else list(range(len(cube.cells)))
    cubes = [cube] + ([inp.fine] if inp.fine is not None else [])
    scope_by_cube = {id(cube): set(scope_cells)}
    all_by_cube = {id(cube): set(range(len(cube.cells)))}
    if inp.fine is not None:
        scope_by_cube[id(inp.fine)] = set(_cells_like(inp.fine, cube, scope_cells))
        all_by_cube[id(inp.fine)] = set(range(len(inp.fine.cells)))
    segs = _timeline(inp, ref, scope_cells)
    onset = det.onset
    post = [g for g in segs if g.start >= onset]
    wsum = sum(g.w for g in post)
    level = sum(g.w * g.y for g in post) / wsum if wsum > 0 else 0.0
    if -sign * level <= 0:
        level = 0.0
    phi = ref.phi
    lo = min(g.start for g in segs) if segs else onset
    # Timing is a profile likelihood: every candidate's exposure gets its own best drop size, so
    # the onset estimate (and the drop measured after it) does not decide for the candidates.
    best_gain = _best_profile_step(segs, sign, phi, lo, inp.at)[0] if level else 0.0
    has_versions = any(any(v is not None for v in r.versions) for r in cube.rows)
    mu_by_cube = {id(cube): list(ref.mu)}
    if inp.fine is not None:
        mu_cell = ref.mu_by_cell(cube)
        mu_by_cube[id(inp.fine)] = [mu_cell.get(c, ref.grand) for c in inp.fine.cells]
    vidx = _VersionIndex(cubes, scope_by_cube, mu_by_cube) if has_versions else None

    cand_lo = min(onset - p.pre_window_ms, det.current_window[0] if det.current_window else onset)
    candidates = build_candidates(inp, cand_lo, inp.at)
    dec = inp.decomposition
    hyps: list[Hypothesis] = []
    judge_only, product_confirmed, cross_words = _cross(inp)
    # The decomposition compares the window's mix with the whole baseline's; a night-time window
    # has a night-time mix. Only a mix unusual for its hours of day counts as an input shift.
    mix_z = None if dec is None else -sign * dec.mix_z
    if mix_z is not None and inp.mix_z_hour is not None:
        mix_z = min(mix_z, -sign * inp.mix_z_hour)
    mostly_mix = dec is not None and dec.is_mostly_mix(sign) and mix_z is not None and mix_z > 3

    for cand in candidates:
        ev: list[str] = []
        comp: dict = {}
        ch = cand.change
        if cand.kind == "input_shift":
            continue  # recorded traffic changes join the input-shift hypothesis below
        x, how, start = _exposure(cand, segs, vidx, scope_by_cube)
        gain = _profile_gain(segs, x, sign, phi) if level else 0.0
        loss = min(LOSS_CAP, max(-LOSS_CAP, best_gain - gain)) if level else 0.0
        comp["timing"] = -p.timing_weight * loss
        dt = (start - onset) / 60_000
        when = _ago(dt)
        # "the step in the data": the onset the metric alone puts it at (the verdict's onset may
        # move to the top change's exposure start afterwards, see triage._onset_from_top).
        step = f"the step in the data ({_hhmm(onset)} UTC)"
        if how == "versions":
            ev.append(f"its version reached traffic {when} {step}, from version tags on events")
        elif how == "ramp":
            ev.append(f"its rollout ramp starts {when} {step}")
        else:
            ev.append(f"it landed {when} {step}")
        if start > (det.onset_range[1] if det.onset_range else onset) + p.after_onset_grace_ms and loss > 4:
            # Said, not scored twice: the likelihood loss already measures how late it is (onset
            # estimates at night rest on few events, so no hard cut-off).
            ev.append("it came after the drop appears to have started")
        elif loss <= 2:
            ev.append(f"the drop follows its exposure as well as the best-fitting onset "
                      f"(likelihood loss {loss:.1f})")
        else:
            ev.append(f"the drop fits its timing worse than the best onset (likelihood loss {loss:.1f}; "
                      f"every 2.3 is 10x less likely)")
        # Footprint.
        fp_cells, fp_how = _footprint(cand, cube, vidx)
        comp["footprint"] = 0.0
        if fp_cells is not None and dec is not None:
            share, traffic = _share_in(dec, fp_cells)
            if 0 < traffic < 0.99 and -sign * dec.total > 0:
                lift = max(share, 1e-3) / traffic
                term = max(-p.lift_cap * 2, min(p.lift_cap, 2 * math.log(lift)))
                comp["footprint"] = term
                ev.append(f"{share:.0%} of the drop sits in its footprint ({fp_how}), "
                          f"which carries {traffic:.0%} of traffic")
            z_out = _outside_drop(cube, fp_cells, det, ref, sign)
            if z_out > 2:
                comp["outside"] = -0.5 * (z_out - 2) ** 2
                ev.append(f"the metric also dropped outside its footprint (z={z_out:.1f}), which it cannot explain")
        elif fp_how:
            comp.setdefault("footprint", 0.0)
        if dec is not None and -sign * dec.total > 0:
            # A softer footprint: the slices its diff names. Positive evidence only (a prompt edit
            # that mentions German may still reach every language), and only beyond what the
            # footprint above already credited (version tags of a prompt reach every slice).
            named = []
            for k, v in diff_slices(ch, cube.slice_values()):
                share, traffic = _share_in(dec, set(cube.cells_where({k: v})))
                if 0 < traffic < 0.99:
                    named.append((max(share, 1e-3) / traffic, share, traffic, k, v))
            if named:
                lift, share, traffic, k, v = max(named)
                extra = min(p.lift_cap, 2 * math.log(lift)) - max(0.0, comp.get("footprint", 0.0))
                if lift > 1.5 and extra > 0:
                    comp["diff_names"] = extra
                    ev.append(f"its diff names {k}={v}, where {share:.0%} of the drop sits "
                              f"({traffic:.0%} of traffic)")
        # Direct comparison of versions.
        d = _direct(cand, vidx, cubes, scope_by_cube, ref, cube)
        if d is not None and level:
            diff, se, n_new = d
            # Only when the overlap can tell the drop from no difference (a canary, a slow rollout).
            if se > 0 and n_new >= 10:  # the likelihood ratio weighs itself by its standard error
                llr = (diff * diff - (diff - level) ** 2) / (2 * se * se)
                llr = max(-LOSS_CAP / 2, min(LOSS_CAP / 2, llr))
                comp["direct"] = llr
                ev.append(f"side by side in the same buckets and slices, its new version scores {diff:+.3g} "
                          f"vs the old (±{1.96 * se:.2g}, {int(n_new)} events)")
        # Judge and cross-metric evidence.
        if cand.kind == "judge_drift":
            comp.update(_judge_terms(inp, ev, judge_only, product_confirmed, cross_words))
        elif inp.metric_source == "judge" and judge_only:
            # weak: flat user signals may simply lack the power to move
            comp["judge_only"] = -1.0
            ev.append("only the judge's scores moved; " + cross_words)
        elif product_confirmed:
            comp["user_signals"] = 1.0
            ev.append(cross_words)
        _shared_terms(cand, inp, comp, ev)
        inert = diff_inert(ch) if getattr(ch, "kind", None) == "prompt" else None
        if inert:
            comp["prior"] = p.inert_diff_prior
            ev.append(f"{inert}, which rarely changes what the model does")
        if cand.kind == "recorded_change":
            comp["prior"] = p.unknown_mechanism_prior
            ev.append(f"a {getattr(ch, 'kind', 'recorded')} change: how it would move {inp.metric} is unknown "
                      f"(no version of it shows in the events)")
        if mostly_mix:
            comp["mix"] = -4.0
            ev.append("most of the drop is traffic mix, which a product change does not move")
        total = sum(comp.values())
        h = Hypothesis(cand.kind, cand.target, ch, total, ev, _rollback(cand, inp), _next_check(cand, inp),
                       components=comp, exposure_start=start)
        hyps.append(h)

    # Input shift: only when the mix moved the metric the bad way beyond noise.
    if (dec is not None and -sign * dec.total > 0 and dec.grew is not None and mix_z is not None and mix_z > 2
            and dec.mix_share() >= 0.2):
        comp = {}
        ev = []
        rate_z = -sign * dec.rate_z
        share = dec.mix_share()
        g = dec.grew
        comp["mix"] = 0.5 * max(0.0, mix_z) ** 2 - 0.5 * max(0.0, rate_z) ** 2
        if not mostly_mix:
            comp["not_mostly_mix"] = -6.0
        ev.append(f"traffic mix explains {share:.0%} of the change ({_fmt(dec.mix)} of {_fmt(dec.total)}); "
                  f"quality within slices moved {_fmt(dec.rate)}")
        ev.append(f"{g.target} grew from {g.share_before:.0%} to {g.share_after:.0%} of traffic and scores "
                  f"{g.mean:.3g} against {g.overall:.3g} overall")
        change = None
        for ch in inp.changes:
            if (ch.kind == "traffic" and ch.source != "traffic" and ch.affects(inp.feature)
                    and cand_lo <= ch.at < inp.at):
                if change is None or abs(ch.at - onset) < abs(change.at - onset):
                    change = ch
        if change is not None:
            ev.append(f"recorded traffic change {change.id} ({change.summary or change.target}) "
                      f"{_ago((change.at - onset) / 60_000)} the onset")
            comp["recorded"] = 1.0
        h = Hypothesis("input_shift", g.target, change, sum(comp.values()), ev,
                       getattr(change, "rollback", None) if change is not None else None,
                       f"oncall-ai scores --feature {inp.feature} --metric {inp.metric} --by {g.key} --since {inp.since}",
                       components=comp)
        hyps.append(h)

    # Judge drift with no judge change in the window (calibration or judge-only movement).
    # Flat user signals alone are weak (they may lack the power to move): it takes calibration drift
    # or a judge id switch seen in traffic to put the judge forward without a judge change.
    je = inp.judge
    judge_signal = je is not None and (getattr(je, "drifted", False) or getattr(je, "judge_id_changed", False))
    if inp.metric_source == "judge" and judge_signal and not any(h.kind == "judge_drift" for h in hyps):
        jterms = _judge_terms(inp, [], judge_only, product_confirmed, cross_words, require=True)
        if jterms:
            ev = []
            jterms = _judge_terms(inp, ev, judge_only, product_confirmed, cross_words)
            # Without a judge change in the window the prior is lower: it needs calibration drift or
            # a judge id switch to beat a well-timed product change.
            h = Hypothesis("judge_drift", inp.metric, None, sum(jterms.values()) - 4.0, ev, None,
                           f"oncall-ai judge drift --metric {inp.metric}", components=jterms)
            if any(v > 0 for v in jterms.values()):
                hyps.append(h)

    # Rank and turn log-evidence into scores against an "unexplained" option.
    unexplained = -p.unexplained_penalty
    zmax = max([h.log_evidence for h in hyps] + [unexplained])
    denom = math.exp(unexplained - zmax) + sum(math.exp(h.log_evidence - zmax) for h in hyps)
    for h in hyps:
        h.score = math.exp(h.log_evidence - zmax) / denom
    hyps.sort(key=lambda h: (-h.log_evidence, h.kind, h.target))
    for i, h in enumerate(hyps, 1):
        h.rank = i
    return hyps


def _shared_terms(cand: Candidate, inp: AttributionInput, comp: dict, ev: list[str]) -> None:
    """A change that reaches several features (an index, a judge, a provider alias) should show
    the same drop in the others; a drop that appears in features the change cannot reach speaks
    for a shared cause instead."""
    if not inp.other_features:
        return
    feats = getattr(cand.change, "features", ()) or ()
    reach = [g for g in inp.other_features if (not feats or g in feats)]
    if cand.kind == "judge_drift":
        reach = list(inp.other_features)  # every feature this judge scores (the loader picked the metric)
    if feats and len(feats) > 1 or cand.kind in ("judge_drift",) or not feats:
        moved = [g for g in reach if inp.other_features[g] > 3]
        flat = [g for g in reach if inp.other_features[g] < 1]
        if moved:
            # log-likelihood of the other features' drops, which this change explains and a change
            # confined to this feature does not
            comp["other_features"] = min(12.0, sum(0.5 * (inp.other_features[g] - 2) ** 2 for g in moved))
            ev.append(f"the same drop shows in {', '.join(moved)}, which this change also reaches")
        elif flat and (feats and len(feats) > 1):
            comp["other_features"] = -2.0
            ev.append(f"{', '.join(flat)} also depend{'s' if len(flat) == 1 else ''} on it and did not drop")


def _share_in(dec: Decomposition, cells: set[int]) -> tuple[float, float]:
    part = sum(c.rate + c.mix for c in dec.cells if c.cell in cells)
    traffic = sum(c.w_b for c in dec.cells if c.cell in cells)
    share = part / dec.total if dec.total else 0.0
    return max(0.0, min(1.0, share)), traffic


def _outside_drop(cube: Cube, cells: set[int], det: Detection, ref: Reference, sign: int) -> float:
    """z of the drop outside the footprint (residual, post vs pre), bad direction positive."""
    outside = [c for c in range(len(cube.cells)) if c not in cells]
    if not outside or det.onset_bucket is None:
        return 0.0
    y, w = rate_residuals(cube, ref, outside)
    tb = det.onset_bucket
    pre = Moments()
    postm = Moments()
    for b in range(cube.n_buckets):
        if w[b] <= 0:
            continue
        (pre if b < tb else postm).add(w[b], w[b] * y[b], 0.0)
    if pre.n <= 0 or postm.n <= 0:
        return 0.0
    diff = postm.mean - pre.mean
    se = math.sqrt(ref.phi * (1 / pre.n + 1 / postm.n))
    return -sign * diff / se


def _cross(inp: AttributionInput) -> tuple[bool, bool, str]:
    others = [c for c in inp.cross if c.source in ("user", "check")]
    if inp.metric_source != "judge" or not others:
        return False, False, ""
    moved = [c for c in others if c.z_bad > 3]
    flat = [c for c in others if abs(c.z_bad) < 2 and c.n >= 50]
    names = ", ".join(f"{c.metric} ({c.delta:+.3g}, z={c.z_bad:.1f})" for c in others[:3])
    if moved:
        return False, True, f"user signals and checks moved with it: {names}"
    if flat and len(flat) == len(others):
        return True, False, f"user signals and checks stayed flat: {names}"
    return False, False, ""


def _judge_terms(inp: AttributionInput, ev: list[str], judge_only: bool, product_confirmed: bool,
                 cross_words: str, require: bool = False) -> dict:
    comp: dict = {}
    je = inp.judge
    if je is not None:
        drifted = getattr(je, "drifted", None)
        words = getattr(je, "words", None)
        if isinstance(words, list | tuple):
            words = "; ".join(str(w) for w in words[:2])
        if drifted:
            comp["calibration"] = 6.0
            ev.append(words if isinstance(words, str) and words else "the judge drifted on the calibration set")
        elif drifted is False and getattr(je, "since_run", None) is None and getattr(je, "calibration_bias", None) is not None:
            comp["calibration"] = -3.0
            ev.append("the judge agrees with human labels as before on the calibration set")
        if getattr(je, "judge_id_changed", False):
            comp["judge_id"] = 1.0
            ev.append("the judge id serving this metric changed in traffic")
        if getattr(je, "judge_only_movement", False) and not judge_only:
            comp["judge_only"] = 3.0
            ev.append("only judge-scored metrics moved")
    if judge_only:
        comp["judge_only"] = 2.0
        ev.append("only the judge's scores moved; " + cross_words)
    elif product_confirmed:
        comp["user_signals"] = -6.0
        ev.append("not just the judge: " + cross_words)
    if require and not comp:
        return {}
    return comp


# --- commands -------------------------------------------------------------------------------------------

def _rollback(cand: Candidate, inp: AttributionInput) -> str | None:
    ch = cand.change
    own = getattr(ch, "rollback", None)
    if own:
        return own
    src = getattr(ch, "source", "") or ""
    if cand.kind == "prompt_change" and src.startswith("git"):
        return f"oncall-ai rollback-prompt {ch.id}"
    if cand.kind == "model_change":
        if ch.from_value:
            return f"oncall-ai rollback-pin {ch.target} --to {_q(ch.from_value)}"
        if src.startswith("git"):
            return f"oncall-ai rollback-pin {ch.target} --change {ch.id}"
    if cand.kind == "provider_model_change" and inp.pin_key and ch.from_value:
        return f"oncall-ai rollback-pin {inp.pin_key} --to {_q(ch.from_value)}"
    if cand.kind == "index_change" and src.startswith("git"):
        if ch.from_value:
            return f"oncall-ai rollback-pin {ch.target} --file indexes --to {_q(ch.from_value)}"
        return f"oncall-ai rollback-pin {ch.target} --file indexes --change {ch.id}"
    if cand.kind == "judge_drift" and src.startswith("git") and ch.paths and ch.kind == "judge":
        return None  # the judges file is not a pins file; see the runbook
    return None


def _q(v: str) -> str:
    import shlex

    return shlex.quote(v)


def _next_check(cand: Candidate, inp: AttributionInput) -> str:
    f, m, since = inp.feature, inp.metric, inp.since
    if cand.kind == "judge_drift":
        return f"oncall-ai judge drift --metric {m}"
    if cand.field:
        return f"oncall-ai scores --feature {f} --metric {m} --by {cand.field} --since {since}"
    return f"oncall-ai changes show {cand.change.id}"


def _hhmm(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M")


def _ago(minutes: float) -> str:
    m = abs(minutes)
    if m < 1:
        return "at"
    txt = f"{m:.0f} min" if m < 90 else f"{m / 60:.1f} h"
    return f"{txt} {'before' if minutes < 0 else 'after'}"


def _fmt(x: float) -> str:
    return f"{x:+.3g}" if x else "0"


def cell_label(cell: Cell) -> str:
    return ", ".join(f"{k}={v}" for k, v in cell) or "(all)"
