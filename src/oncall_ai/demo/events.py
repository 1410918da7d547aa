"""Generating the events: every feature's requests, bucket by bucket, streamed to daily
`events/YYYY-MM-DD.jsonl.gz` files (CONTRACT.md section 1)."""

from __future__ import annotations

import bisect
import gzip
import math
import random
from datetime import UTC, datetime
from pathlib import Path

import orjson

from oncall_ai.demo import content
from oncall_ai.demo.model import (
    BUCKET,
    CHECK_METRIC,
    DAY,
    DIURNAL_AMPLITUDE,
    DIURNAL_PEAK_HOUR,
    FEATURES,
    FEEDBACK_RATE,
    H_SD,
    HOUR,
    HOURLY_NOISE_SD,
    JUDGE_METRIC,
    JUDGE_SAMPLE_RATE,
    JUDGE_SD,
    LANG_AMPLITUDE,
    LANG_PEAK_HOUR,
    LANG_SHARE,
    LANGS,
    MIN,
    N_CELLS,
    PERSONA_SHARE_WEEKDAY,
    PERSONA_SHARE_WEEKEND,
    PERSONAS,
    RATE_PER_HOUR,
    SCHEMA_FAIL,
    SCHEMA_FAIL_SHAPE,
    SHAPE_SHARE,
    SHAPES,
    THUMBS_INTERCEPT,
    THUMBS_SLOPE,
    WEEKDAY_FACTOR,
    mean_quality,
)
from oncall_ai.demo.plan import Planner, utc_date


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam < 30:
        limit, k, p = math.exp(-lam), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    return max(0, int(rng.gauss(lam, math.sqrt(lam)) + 0.5))


class _TsFormatter:
    """RFC 3339 with milliseconds, fast: the minute prefix is cached."""

    def __init__(self):
        self._minute = -1
        self._prefix = ""

    def __call__(self, ms: int) -> str:
        minute = ms - ms % MIN
        if minute != self._minute:
            self._minute = minute
            self._prefix = datetime.fromtimestamp(minute / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:")
        rest = ms - minute
        return f"{self._prefix}{rest // 1000:02d}.{rest % 1000:03d}Z"


def _cum(weights) -> list[float]:
    total = sum(weights)
    acc, out = 0.0, []
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 1.0
    return out


class EventWriter:
    """Generates every feature's requests bucket by bucket and streams the events to daily files."""

    def __init__(self, planner: Planner, out_dir: Path, scale: float, versions: dict, judges: dict):
        self.p = planner
        self.out_dir = out_dir
        self.scale = scale
        self.versions = versions  # feature -> {"model_id": Timeline, "prompt_version": ..., "index_version": ...}
        self.judges = judges  # metric -> Timeline of (judge_id, bias)
        self.files: list[Path] = []
        self.n_events = 0
        self.n_requests = 0
        seed = planner.seed
        # Traffic randomness depends on the seed and the feature, not on the scenario: the same seed
        # gives the same ordinary traffic in every scenario up to where the scenario changes it.
        self.rng = {f: random.Random(f"oncall-ai-demo:traffic:{seed}:{f}") for f in FEATURES}
        self.ramp_rng = random.Random(f"oncall-ai-demo:ramp:{seed}")
        noise_rng = random.Random(f"oncall-ai-demo:hourly:{seed}")
        n_hours = (planner.now - planner.start) // HOUR + 2
        self.hour0 = planner.start // HOUR
        self.hourly = {f: [noise_rng.gauss(0.0, HOURLY_NOISE_SD) for _ in range(n_hours)] for f in FEATURES}
        self.mu = {f: mean_quality(f) for f in FEATURES}
        self.fail = {f: [SCHEMA_FAIL * SCHEMA_FAIL_SHAPE[c % len(SHAPES)] for c in range(N_CELLS)] for f in FEATURES}
        inc = planner.incident
        self.inc = inc
        self.inc_cells = {f: [c in inc.cells.get(f, ()) for c in range(N_CELLS)] for f in FEATURES}
        self.counter = dict.fromkeys(FEATURES, 0)
        self.prefix = {"summarizer": "sum", "support": "sup", "search": "srch"}
        self.untagged = planner.tagging["untagged"]
        self.keep_model_id = planner.scenario == "provider_model_change"
        self.fmt = _TsFormatter()

    def _ramp_share(self, t: int) -> float:
        share = 0.0
        for ts, s in self.inc.ramp:
            if t >= ts:
                share = s
        return share

    def run(self) -> None:
        p = self.p
        start, now = p.start, p.now
        b = start - start % BUCKET
        day = None
        fh = raw = None
        try:
            while b < now:
                b0, b1 = max(b, start), min(b + BUCKET, now)
                d = utc_date(b0)
                if d != day:
                    if fh is not None:
                        fh.close()
                        raw.close()
                    path = self.out_dir / f"{d}.jsonl.gz"
                    self.files.append(path)
                    raw = open(path, "wb")  # noqa: SIM115
                    # mtime=0 and no file name in the header: byte-identical output for the same inputs.
                    fh = gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=3, mtime=0)
                    day = d
                lines: list[tuple[int, bytes]] = []
                for f in FEATURES:
                    self._bucket(f, b0, b1, lines)
                lines.sort(key=lambda x: x[0])
                fh.write(b"".join(line for _, line in lines))
                self.n_events += len(lines)
                b += BUCKET
        finally:
            if fh is not None:
                fh.close()
                raw.close()

    def _bucket(self, f: str, b0: int, b1: int, lines: list) -> None:
        p = self.p
        rng = self.rng[f]
        rnd = rng.random
        gauss = rng.gauss
        inc = self.inc
        mid = (b0 + b1) // 2
        hour_of_day = (mid % DAY) / HOUR
        weekday = datetime.fromtimestamp(mid / 1000, tz=UTC).weekday()
        volume = (RATE_PER_HOUR[f] * self.scale * (b1 - b0) / HOUR
                  * (1.0 + DIURNAL_AMPLITUDE[f] * math.cos(2 * math.pi * (hour_of_day - DIURNAL_PEAK_HOUR[f]) / 24))
                  * WEEKDAY_FACTOR[weekday])
        lang_w = [LANG_SHARE[i] * (1.0 + LANG_AMPLITUDE * math.cos(2 * math.pi * (hour_of_day - LANG_PEAK_HOUR[i]) / 24))
                  for i in range(len(LANGS))]
        persona_w = list(PERSONA_SHARE_WEEKEND if weekday >= 5 else PERSONA_SHARE_WEEKDAY)
        shape_w = list(SHAPE_SHARE[f])
        for ms in p.mix_shifts:
            if ms.feature != f:
                continue
            k = ms.factor(mid)
            if k == 1.0:
                continue
            table, names = {"language": (lang_w, LANGS), "persona": (persona_w, PERSONAS), "shape": (shape_w, SHAPES)}[ms.key]
            i = names.index(ms.value)
            total = sum(table)
            volume *= (total - table[i] + table[i] * k) / total
            table[i] *= k
        lang_c, persona_c, shape_c = _cum(lang_w), _cum(persona_w), _cum(shape_w)

        has_check = f in CHECK_METRIC
        # Without a check on every request, only requests that are judged or rated produce events:
        # draw those directly (same distribution, a third of the work).
        p_emit = 1.0 if has_check else 1.0 - (1.0 - JUDGE_SAMPLE_RATE) * (1.0 - FEEDBACK_RATE)
        n = _poisson(rng, volume * p_emit)
        if n == 0:
            return
        self.n_requests += n
        p_judged_only = JUDGE_SAMPLE_RATE * (1 - FEEDBACK_RATE) / p_emit
        p_judged = JUDGE_SAMPLE_RATE / p_emit
        tss = sorted(b0 + int(rnd() * (b1 - b0)) for _ in range(n))

        vt = self.versions[f]
        steady = all(t.steady(b0, b1) for t in vt.values())
        base_versions = {k: t.at(b0) for k, t in vt.items()} if steady else None
        jmetric = JUDGE_METRIC[f]
        jt = self.judges[jmetric]
        j_steady = jt.steady(b0, b1)
        judge_id, judge_bias = jt.at(b0)
        mu_cells = self.mu[f]
        noise = self.hourly[f][b0 // HOUR - self.hour0]
        inc_cells = self.inc_cells[f]
        affected = f in inc.features and inc.kind not in ("judge_drift", "input_shift")
        qdelta = inc.quality_delta
        check_mult = inc.check_mult
        onset = inc.onset_ms
        ramp = inc.ramp if affected else None
        model_switch = affected and inc.model_to is not None
        fails = self.fail[f]
        td_a = THUMBS_INTERCEPT[f]
        untag_share = self.untagged.get(f, 0.0)
        untag_fields = ("prompt_version", "index_version") if self.keep_model_id else ("model_id", "prompt_version", "index_version")
        abbrev = p.tagging["abbrev"]
        fmt = self.fmt
        search_epoch = f == "search"  # the search team's exporter writes epoch seconds
        prefix = self.prefix[f]
        nl = lines.append
        dumps = orjson.dumps
        counter = self.counter[f]
        for ts in tss:
            counter += 1
            li = bisect.bisect_left(lang_c, rnd())
            pi = bisect.bisect_left(persona_c, rnd())
            si = bisect.bisect_left(shape_c, rnd())
            cell = (li * 3 + pi) * 3 + si
            u = rnd()
            if has_check:
                judged = u < JUDGE_SAMPLE_RATE
                rated = rnd() < FEEDBACK_RATE
            else:
                judged = u < p_judged
                rated = u >= p_judged_only
            rid = f"{prefix}-{rng.getrandbits(48):012x}"
            # Is this request on the new (incident) side?
            new = False
            if affected and ts >= onset:
                new = True if ramp is None else self.ramp_rng.random() < self._ramp_share(ts)
            sl = {"persona": PERSONAS[pi], "language": LANGS[li], "shape": SHAPES[si]}
            common = {"feature": f, "request_id": rid, "slice": sl}
            versions = base_versions if base_versions is not None else {k: t.at(ts) for k, t in vt.items()}
            if model_switch:
                versions = dict(versions)
                versions["model_id"] = inc.model_to if new else inc.model_from
            untagged = untag_share >= 1.0 or (untag_share > 0 and ((counter * 2654435761) & 0xFFFFFFFF) < untag_share * 4294967296.0)
            for k, v in versions.items():
                if v is None or (untagged and k in untag_fields):
                    continue
                common[k] = v[:abbrev] if k == "prompt_version" else v
            ts_value = round(ts / 1000, 3) if search_epoch else fmt(ts)
            if has_check:
                fp = fails[cell]
                if new and inc_cells[cell]:
                    fp *= check_mult
                ev = {"ts": ts_value, "id": f"{rid}:schema_valid", "metric": "schema_valid", "value": rnd() >= fp,
                      "source": "check", **common}
                nl((ts, dumps(ev) + b"\n"))
            if judged or rated:
                mu = mu_cells[cell] + noise
                if new and inc_cells[cell]:
                    mu += qdelta
                h = gauss(mu, H_SD)
                if judged:
                    if j_steady:
                        jid, jb = judge_id, judge_bias
                    else:
                        jid, jb = jt.at(ts)
                    x = h + jb + gauss(0.0, JUDGE_SD) + 0.5
                    score = 1 if x < 2.0 else 5 if x >= 5.0 else int(x)
                    ev = {"ts": ts_value, "id": f"{rid}:{jmetric}", "metric": jmetric, "value": score,
                          "source": "judge", **common, "judge_id": jid, "sample_rate": JUDGE_SAMPLE_RATE,
                          "input": content.INPUTS[f][LANGS[li]][counter % len(content.INPUTS[f][LANGS[li]])],
                          "output": content.output_text(f, score, counter, LANGS[li])}
                    nl((ts, dumps(ev) + b"\n"))
                if rated:
                    pd = 1.0 / (1.0 + math.exp(-(td_a - THUMBS_SLOPE * (h - 4.0))))
                    ev = {"ts": ts_value, "id": f"{rid}:thumbs_down", "metric": "thumbs_down",
                          "value": 1 if rnd() < pd else 0, "source": "user", **common}
                    nl((ts, dumps(ev) + b"\n"))
        self.counter[f] = counter
