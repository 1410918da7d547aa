"""Planning a sandbox: the commit history of both repos, recorded changes, traffic shifts, and the
planted incident. Pure: no files are written here (generator.py renders the plan)."""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from oncall_ai.demo import SCENARIO_KINDS, content
from oncall_ai.demo.gitrepo import Person
from oncall_ai.demo.model import (
    CHECK_METRIC,
    DAY,
    FEATURES,
    HOUR,
    INDEX_USERS,
    JUDGE_BASE_BIAS,
    JUDGE_METRIC,
    MIN,
    PIN_KEY,
    cells_matching,
    expected_score,
    mean_quality,
    typical_mix,
)
from oncall_ai.timeutil import format_time

PEOPLE = {
    "priya": Person("Priya Raman", "priya.raman@acme.example", 330),
    "jonas": Person("Jonas Weber", "jonas.weber@acme.example", 60),
    "mei": Person("Mei Chen", "mei.chen@acme.example", -480),
    "lucia": Person("Lucía Torres", "lucia.torres@acme.example", 60),
    "kenji": Person("Kenji Sato", "kenji.sato@acme.example", 540),
    "sam": Person("Sam Okafor", "sam.okafor@acme.example", 0),
    "dana": Person("Dana Kim", "dana.kim@acme.example", -300),
}
INDEX_BOT = Person("index-bot", "index-bot@acme.example", 0)
OWNERS = {
    "summarizer": ("priya", "jonas"), "support": ("mei", "lucia"), "search": ("kenji", "sam"),
    "judges": ("dana", "sam"), "platform": ("sam", "dana", "jonas"), "repo": ("sam", "priya", "dana"),
}



@dataclass
class PlannedCommit:
    repo: str  # "prompts" | "platform"
    at_ms: int
    author: Person
    edits: list[content.Edit]
    message: str
    role: str = "harmless"  # "initial" | "harmless" | "incident"
    delay_ms: int = 5 * MIN  # deploy delay: live at at_ms + delay_ms
    sha: str | None = None
    touched: tuple[str, ...] = ()
    slots: dict[str, str] = field(default_factory=dict)

    @property
    def live_ms(self) -> int:
        return self.at_ms + self.delay_ms


class Timeline:
    """A value that changes at given times: [(t, value), ...]; value before the first is `initial`."""

    def __init__(self, initial, changes: list[tuple[int, object]] | None = None):
        pts = sorted(changes or [], key=lambda x: x[0])
        self.times = [t for t, _ in pts]
        self.values = [initial] + [v for _, v in pts]

    def at(self, t: int):
        return self.values[bisect.bisect_right(self.times, t)]

    def steady(self, t0: int, t1: int) -> bool:
        """No change in (t0, t1)."""
        i = bisect.bisect_right(self.times, t0)
        return i >= len(self.times) or self.times[i] >= t1


@dataclass
class Incident:
    kind: str | None
    onset_ms: int
    features: tuple[str, ...] = ()
    cells: dict[str, set[int]] = field(default_factory=dict)  # feature -> affected cells
    quality_delta: float = 0.0  # on latent quality h in affected cells
    check_mult: float = 1.0  # schema_valid failure rate multiplier in affected cells
    judge_metric: str | None = None
    judge_bias: float = 0.0  # judge drift: added to judge scores of that metric after onset
    ramp: list[tuple[int, float]] | None = None  # [(t, share on new)] steps
    model_from: str | None = None
    model_to: str | None = None


@dataclass
class MixShift:
    feature: str
    key: str
    value: str
    mult: float
    start: int
    end: int | None  # None: until now
    ramp_ms: int = 30 * MIN

    def factor(self, t: int) -> float:
        if t < self.start or (self.end is not None and t >= self.end):
            return 1.0
        frac = min(1.0, (t - self.start) / self.ramp_ms) if self.ramp_ms else 1.0
        return 1.0 + (self.mult - 1.0) * frac


def utc_date(ms: int, fmt: str = "%Y-%m-%d") -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime(fmt)


class Planner:
    def __init__(self, scenario: str, seed: int, now_ms: int, days: int):
        self.scenario = scenario
        self.seed = seed
        self.now = now_ms
        self.days = days
        self.start = now_ms - days * DAY
        self.rng = random.Random(f"oncall-ai-demo:plan:{scenario}:{seed}")
        self.commits: list[PlannedCommit] = []
        self.recorded: list[dict] = []
        self.mix_shifts: list[MixShift] = []
        self.truth: dict = {}
        self.incident = Incident(None, 0)
        self.incident_commit: PlannedCommit | None = None
        self.incident_record: dict | None = None
        self.kb_recorded: list[tuple[int, str]] = []  # (live ms, version) from recorded rebuilds
        self.alias_timeline: list[tuple[int, str]] = []
        self.prompt_specs = content.prompt_files()
        self._harmless_left = {s.path: list(s.harmless) for s in self.prompt_specs}

    # -- helpers --------------------------------------------------------------------------
    def person(self, group: str) -> Person:
        return PEOPLE[self.rng.choice(OWNERS[group])]

    def uniform_ms(self, lo: int, hi: int) -> int:
        return int(self.rng.uniform(lo, hi)) // 1000 * 1000

    def working_hours_time(self, person: Person, lo: int, hi: int) -> int:
        """A time in [lo, hi) during the person's working day (09:00-18:30 local), if there is one."""
        for _ in range(20):
            t = self.uniform_ms(lo, hi)
            local_h = ((t + person.tz_minutes * MIN) % DAY) / HOUR
            weekday = datetime.fromtimestamp((t + person.tz_minutes * MIN) / 1000, tz=UTC).weekday()
            if 9.0 <= local_h <= 18.5 and weekday < 5:
                return t
        return self.uniform_ms(lo, hi)

    def take_harmless(self, paths: tuple[str, ...]) -> content.Edit | None:
        options = [p for p in paths if self._harmless_left.get(p)]
        if not options:
            return None
        path = self.rng.choice(options)
        return self._harmless_left[path].pop(0)

    def add_prompt_commit(self, at: int, edit: content.Edit, person: Person, role: str = "harmless") -> PlannedCommit:
        c = PlannedCommit("prompts", at, person, [edit], edit.message, role, self.uniform_ms(2 * MIN, 8 * MIN))
        self.commits.append(c)
        return c

    def add_platform_commit(self, at: int, edits: list[content.Edit], message: str, person: Person,
                            role: str = "harmless") -> PlannedCommit:
        c = PlannedCommit("platform", at, person, edits, message, role, self.uniform_ms(4 * MIN, 12 * MIN))
        self.commits.append(c)
        return c

    def feature_group(self, feature: str) -> tuple[str, ...]:
        return content.FEATURE_PROMPT_FILES[feature]

    # -- the plan ---------------------------------------------------------------------------
    def plan(self) -> None:
        rng = self.rng
        now = self.now
        kind = SCENARIO_KINDS[self.scenario]
        # Model ids and versions are dated relative to now, so a sandbox looks current whenever built.
        self.models = {
            "large_old": f"vendor-a/atlas-large-{utc_date(now - 196 * DAY)}",
            "large_new": f"vendor-a/atlas-large-{utc_date(now - 9 * DAY)}",
            "nimbus_old": f"vendor-b/nimbus-{utc_date(now - 233 * DAY)}",
            "nimbus_new": f"vendor-b/nimbus-{utc_date(now - 12 * DAY)}",
            "small_old": f"vendor-a/atlas-small-{utc_date(now - 270 * DAY)}",
            "small_new": f"vendor-a/atlas-small-{utc_date(now - 40 * DAY)}",
        }
        m = self.models
        self.alias_feature = rng.choice(FEATURES)
        served_initial = {"summarizer": m["large_old"], "support": m["nimbus_old"], "search": m["small_old"]}
        alias_of = {"summarizer": "vendor-a/atlas-large-latest", "support": "vendor-b/nimbus-latest",
                    "search": "vendor-a/atlas-small-latest"}
        self.served_initial = served_initial
        self.alias_name = alias_of[self.alias_feature]
        initial_pins = {}
        for f in FEATURES:
            key = f"pin_{PIN_KEY[f]}"
            if f == self.alias_feature:
                initial_pins[key] = self.alias_name
                initial_pins[f"pin_comment_{PIN_KEY[f]}"] = "  # TODO(INFRA-812): pin a dated snapshot"
            else:
                initial_pins[key] = served_initial[f]
        self.judge_models = {"helpfulness": m["nimbus_old"], "relevance": m["large_old"]}
        self.kb_initial = utc_date(self.start - 2 * DAY, "%Y%m%d") + ".1"
        legal_initial = utc_date(self.start - 20 * DAY, "%Y%m%d") + ".1"
        self.platform_specs = content.platform_files({
            **initial_pins, "kb_version": self.kb_initial, "legal_version": legal_initial,
            "judge_helpfulness_model": self.judge_models["helpfulness"],
            "judge_relevance_model": self.judge_models["relevance"],
            "kb_version_comment": ("  # rebuilt by the index pipeline; builds are recorded as changes"
                                   if self.scenario == "index_change_recorded" else ""),
        })
        self._platform_harmless = {s.path: list(s.harmless) for s in self.platform_specs}

        # Initial commits, before the event window.
        self.commits.append(PlannedCommit("prompts", self.start - 10 * DAY + 37 * MIN, PEOPLE["priya"], [],
                                    "Import prompts from the monorepo", "initial", 0))
        self.commits.append(PlannedCommit("platform", self.start - 12 * DAY + 4 * HOUR, PEOPLE["sam"], [],
                                    "Platform config: model pins, indexes, judges", "initial", 0))

        # The anchor: the incident onset (or, for `none`, a moment the harmless commits cluster around).
        commit_at = self.uniform_ms(now - 20 * HOUR, now - int(2.5 * HOUR))
        self.anchor = commit_at
        self.tagging = self._tagging()

        primary = self._plan_incident(kind, commit_at)
        self._plan_background(primary)
        self._plan_recorded_unrelated(primary)
        self.primary = primary

    def _tagging(self) -> dict:
        r = self.rng.random()
        abbrev = self.rng.choice((40, 40, 12, 7))
        if r < 0.55:
            return {"profile": "full", "abbrev": abbrev, "untagged": {}}
        if r < 0.85:
            f = self.rng.choice(FEATURES)
            share = round(self.rng.uniform(0.25, 0.6), 2)
            return {"profile": "partial", "abbrev": abbrev, "untagged": {f: share},
                    "fields": ["model_id", "prompt_version", "index_version"]}
        return {"profile": "none", "abbrev": abbrev, "untagged": dict.fromkeys(FEATURES, 1.0),
                "fields": ["model_id", "prompt_version", "index_version"]}

    def _plan_incident(self, kind: str | None, commit_at: int) -> str | None:
        rng = self.rng
        inc = self.incident
        sc = self.scenario
        if kind is None:
            self.truth = {"kind": None, "feature": None, "metric": None, "affected_features": [],
                          "onset": None, "change_id": None, "target": None, "slices": [], "effect": None}
            inc.onset_ms = commit_at
            return rng.choice(FEATURES)

        if sc in ("prompt_change", "prompt_change_slice"):
            f = rng.choice(FEATURES)
            if sc == "prompt_change":
                variant, slices = "global", []
                delta = rng.uniform(0.2, 0.6)
            else:
                variant = rng.choices(["language=de", "language=ja", "language=fr", "persona=enterprise",
                                       "shape=long_doc"], weights=[0.35, 0.15, 0.15, 0.15, 0.2])[0]
                k, v = variant.split("=")
                slices = [{k: v}]
                delta = rng.uniform(0.45, 1.0)
            path, slot, new, message = content.PROMPT_INCIDENTS[f][variant]
            c = self.add_prompt_commit(commit_at, content.Edit(path, slot, new, message), self.person(f), "incident")
            inc.kind, inc.onset_ms, inc.features = kind, c.live_ms, (f,)
            inc.cells = {f: cells_matching(slices)}
            inc.quality_delta = -delta
            if CHECK_METRIC.get(f) and rng.random() < 0.4:
                inc.check_mult = rng.uniform(2.0, 4.0)
            self.incident_commit = c
            self.truth = {"feature": f, "target": path, "slices": slices}
            return f

        if sc == "model_change":
            f = rng.choice([x for x in FEATURES if x != self.alias_feature])
            pin = PIN_KEY[f]
            old = self.served_initial[f]
            new = {"summarizer": self.models["large_new"], "support": self.models["nimbus_new"],
                   "search": self.models["small_new"]}[f]
            short = new.split("/")[1]
            c = self.add_platform_commit(
                commit_at, [content.Edit("models.yaml", f"pin_{pin}", new, "")],
                f"models: move {pin} to {short} (cheaper, same evals offline)", self.person("platform"), "incident")
            inc.kind, inc.onset_ms, inc.features = kind, c.live_ms, (f,)
            inc.cells = {f: cells_matching([])}
            inc.quality_delta = -rng.uniform(0.2, 0.6)
            if CHECK_METRIC.get(f) and rng.random() < 0.5:
                inc.check_mult = rng.uniform(1.5, 3.0)
            inc.model_from, inc.model_to = old, new
            if rng.random() < 0.5:  # canary: 5% -> 25% -> 50% -> 100% over one to two hours
                inc.ramp = self._ramp(c.live_ms, (0.05, 0.25, 0.5, 1.0), rng.uniform(60, 120))
            self.incident_commit = c
            self.truth = {"feature": f, "target": pin, "slices": []}
            return f

        if sc == "provider_model_change":
            f = self.alias_feature
            old = self.served_initial[f]
            new = {"summarizer": self.models["large_new"], "support": self.models["nimbus_new"],
                   "search": self.models["small_new"]}[f]
            onset = commit_at + self.uniform_ms(0, 10 * MIN)
            inc.kind, inc.onset_ms, inc.features = kind, onset, (f,)
            inc.cells = {f: cells_matching([])}
            inc.quality_delta = -rng.uniform(0.2, 0.6)
            if CHECK_METRIC.get(f) and rng.random() < 0.5:
                inc.check_mult = rng.uniform(1.5, 3.0)
            inc.model_from, inc.model_to = old, new
            if rng.random() < 0.5:  # providers roll out gradually too
                inc.ramp = self._ramp(onset, (0.1, 0.3, 0.6, 1.0), rng.uniform(30, 90))
            self.alias_timeline = [(onset, new)]
            self.truth = {"feature": f, "target": new, "slices": []}
            return f

        if sc in ("index_change", "index_change_recorded"):
            users = INDEX_USERS["kb-docs"]
            new_version = utc_date(commit_at, "%Y%m%d") + ".2"
            delta = rng.uniform(0.3, 0.8)
            chunk = rng.choice(["1024", "2048"])
            if sc == "index_change":
                c = self.add_platform_commit(
                    commit_at,
                    [content.Edit("indexes.yaml", "kb_version", new_version, ""),
                     content.Edit("indexes.yaml", "kb_chunk", chunk, "")],
                    f"kb-docs: rebuild with {chunk}-token chunks ({new_version})", self.person("platform"),
                    "incident")
                onset = c.live_ms
                self.incident_commit = c
            else:
                onset = commit_at
                self.incident_record = {
                    "id": f"idx-kb-docs-{new_version}", "ts": format_time(onset), "kind": "index", "target": "kb-docs",
                    "features": list(users), "from": None, "to": new_version, "by": "index-pipeline",
                    "summary": f"kb-docs rebuilt with the new chunker ({chunk} tokens per chunk)",
                    "rollback": None}
                self.kb_recorded.append((onset, new_version))
            inc.kind, inc.onset_ms, inc.features = kind, onset, users
            inc.cells = {f: cells_matching([{"shape": "qa"}]) for f in users}
            inc.quality_delta = -delta
            f = rng.choice(users)
            self.truth = {"feature": f, "target": "kb-docs", "slices": [{"shape": "qa"}]}
            self.index_new_version = new_version
            return f

        if sc == "judge_drift":
            metric = rng.choices(["helpfulness", "relevance"], weights=[0.7, 0.3])[0]
            users = tuple(f for f in FEATURES if JUDGE_METRIC[f] == metric)
            if rng.random() < 0.5:
                new_model = self.models["nimbus_new"] if metric == "helpfulness" else self.models["large_new"]
                c = self.add_platform_commit(
                    commit_at, [content.Edit("judges.yaml", f"judge_{metric}_model", new_model, "")],
                    f"judges: {metric} judge on {new_model.split('/')[1]} (half the cost)", self.person("judges"),
                    "incident")
            else:
                path, slot, new, message = content.JUDGE_RUBRIC_INCIDENTS[metric]
                c = self.add_prompt_commit(commit_at, content.Edit(path, slot, new, message), self.person("judges"),
                                           "incident")
            inc.kind, inc.onset_ms, inc.features = kind, c.live_ms, users
            inc.judge_metric = metric
            inc.judge_bias = -rng.uniform(0.3, 0.6)
            self.incident_commit = c
            f = users[0] if len(users) == 1 else rng.choice(users)
            self.truth = {"feature": f, "target": metric, "slices": []}
            return f

        if sc == "input_shift":
            f = rng.choice(FEATURES)
            key, value, lo, hi = rng.choice([("language", "ja", 5.0, 9.0), ("shape", "long_doc", 2.5, 4.5)])
            mult = rng.uniform(lo, hi)
            # Keep the mix effect visible: at least 0.1 on the 1-5 scale.
            while -self._mix_effect(f, key, value, mult) < 0.1 and mult < 30:
                mult *= 1.25
            onset = commit_at
            self.mix_shifts.append(MixShift(f, key, value, mult, onset, None, self.uniform_ms(20 * MIN, 50 * MIN)))
            inc.kind, inc.onset_ms, inc.features = kind, onset, (f,)
            self.input_shift = (f, key, value, mult)
            self.truth = {"feature": f, "target": f"{key}={value}", "slices": [{key: value}]}
            return f
        raise AssertionError(sc)

    def _ramp(self, start: int, shares: tuple[float, ...], minutes: float) -> list[tuple[int, float]]:
        step = int(minutes * MIN / (len(shares) - 1)) // 1000 * 1000
        return [(start + i * step, s) for i, s in enumerate(shares)]

    def _mix_effect(self, feature: str, key: str, value: str, mult: float) -> float:
        mu = mean_quality(feature)
        before = sum(w * expected_score(m + JUDGE_BASE_BIAS) for w, m in zip(typical_mix(feature), mu, strict=True))
        after = sum(w * expected_score(m + JUDGE_BASE_BIAS)
                    for w, m in zip(typical_mix(feature, {(key, value): mult}), mu, strict=True))
        return after - before

    def _plan_background(self, primary: str) -> None:
        rng = self.rng
        now, start, anchor = self.now, self.start, self.anchor
        onset = self.incident.onset_ms
        # Harmless commits in the primary feature: before the onset (one close to it) and after it.
        before = [self.uniform_ms(anchor - 8 * HOUR, anchor - 35 * MIN)]
        if rng.random() < 0.6:
            before.append(self.uniform_ms(anchor - 30 * HOUR, anchor - 8 * HOUR))
        after_lo = max(anchor, onset) + 10 * MIN
        after = [self.uniform_ms(after_lo, now - 10 * MIN)] if after_lo < now - 12 * MIN else []
        for t in before + after:
            edit = self.take_harmless(self.feature_group(primary))
            if edit is not None:
                self.add_prompt_commit(t, edit, self.person(primary))
        # Another feature's prompt changes near the anchor, and a week of ordinary history.
        others = [f for f in FEATURES if f != primary]
        if rng.random() < 0.6:
            f = rng.choice(others)
            edit = self.take_harmless(self.feature_group(f))
            if edit:
                self.add_prompt_commit(self.uniform_ms(anchor - 3 * HOUR, min(now - 5 * MIN, anchor + 3 * HOUR)),
                                       edit, self.person(f))
        for f in FEATURES:
            for _ in range(rng.choice((1, 1, 2))):
                edit = self.take_harmless(self.feature_group(f))
                if edit:
                    p = self.person(f)
                    self.add_prompt_commit(self.working_hours_time(p, start + HOUR, now - 30 * HOUR), edit, p)
        for path in ("README.md", "CODEOWNERS"):
            if rng.random() < 0.7:
                edit = self.take_harmless((path,))
                if edit:
                    p = self.person("repo")
                    self.add_prompt_commit(self.working_hours_time(p, start + HOUR, now - HOUR), edit, p)
        # Judge rubric comment (changes the judge id, not the judge's behaviour) on some seeds.
        if rng.random() < 0.35 and self.scenario != "judge_drift":
            metric = rng.choice(["helpfulness", "relevance"])
            edit = self.take_harmless((f"judges/{metric}.md",))
            if edit:
                p = self.person("judges")
                self.add_prompt_commit(self.uniform_ms(now - 2 * DAY, now - 3 * HOUR), edit, p)

        # Platform: comments, README, harmless pin bumps, index rebuilds.
        for path in ("README.md", "models.yaml", "indexes.yaml", "judges.yaml"):
            if rng.random() < 0.5 and self._platform_harmless[path]:
                e = self._platform_harmless[path].pop(0)
                p = self.person("platform")
                self.add_platform_commit(self.working_hours_time(p, start + HOUR, now - HOUR), [e], e.message, p)
        # A pin bump of the embeddings model (no feature uses it directly).
        if rng.random() < 0.5:
            p = self.person("platform")
            self.add_platform_commit(
                self.working_hours_time(p, start + HOUR, now - 2 * DAY),
                [content.Edit("models.yaml", "pin_embeddings", "vendor-c/embed-3-large-v2", "")],
                "models: embeddings to embed-3-large-v2 (index pipeline only)", p)
        # A harmless pin bump of a feature that is not the incident's (a real model change with no effect).
        if rng.random() < 0.5 and self.scenario != "model_change":
            f = rng.choice([x for x in FEATURES if x not in (self.alias_feature, primary)] or [None])
            if f is not None:
                pin = PIN_KEY[f]
                new = {"summarizer": self.models["large_new"], "support": self.models["nimbus_new"],
                       "search": self.models["small_new"]}[f]
                p = self.person("platform")
                self.add_platform_commit(self.working_hours_time(p, start + 6 * HOUR, now - 2 * DAY),
                                         [content.Edit("models.yaml", f"pin_{pin}", new, "")],
                                         f"models: move {pin} to {new.split('/')[1]}", p)
        # Legal archive rebuilds (unused index).
        for _ in range(rng.choice((1, 2))):
            t = self.uniform_ms(start + HOUR, now - HOUR)
            v = utc_date(t, "%Y%m%d") + f".{rng.randint(1, 3)}"
            self.add_platform_commit(t, [content.Edit("indexes.yaml", "legal_version", v, "")],
                                     f"legal-archive: rebuild {v}", INDEX_BOT)
        # kb-docs nightly rebuilds on some nights: by index-bot in git, or by the pipeline as recorded changes.
        nights = sorted(rng.sample(range(1, self.days), k=min(3, self.days - 1)))
        prev = self.kb_initial
        for d in nights:
            day0 = (now - d * DAY) // DAY * DAY
            t = day0 + HOUR + self.uniform_ms(15 * MIN, 50 * MIN)
            if not start + HOUR <= t < now - HOUR or abs(t - self.incident.onset_ms) < 2 * HOUR:
                continue
            if self.scenario in ("index_change", "index_change_recorded") and t > self.incident.onset_ms:
                continue  # keep the planted rebuild the last one: later nightly builds would hide its version
            v = utc_date(t, "%Y%m%d") + ".1"
            if self.scenario == "index_change_recorded":
                self.recorded.append({
                    "id": f"idx-kb-docs-{v}", "ts": format_time(t), "kind": "index", "target": "kb-docs",
                    "features": list(INDEX_USERS["kb-docs"]), "from": prev, "to": v, "by": "index-pipeline",
                    "summary": "kb-docs nightly rebuild", "rollback": f"index-ctl activate kb-docs {prev}"})
                self.kb_recorded.append((t, v))
            else:
                self.add_platform_commit(t, [content.Edit("indexes.yaml", "kb_version", v, "")],
                                         f"kb-docs: nightly rebuild {v}", INDEX_BOT)
            prev = v
        if self.incident_record is not None:
            self.incident_record["from"] = prev
            self.incident_record["rollback"] = f"index-ctl activate kb-docs {prev}"
            self.recorded.append(self.incident_record)

    def _plan_recorded_unrelated(self, primary: str) -> None:
        rng = self.rng
        now, anchor = self.now, self.anchor
        near = rng.random() < 0.7
        lo, hi = (anchor - 5 * HOUR, anchor - 45 * MIN) if rng.random() < 0.6 else (anchor + 45 * MIN, anchor + 5 * HOUR)
        t_near = self.uniform_ms(lo, min(hi, now - 5 * MIN)) if near and lo < now - 10 * MIN else \
            self.uniform_ms(self.start + HOUR, now - HOUR)
        f_near = primary if rng.random() < 0.5 else rng.choice(FEATURES)
        options = [
            lambda t, f: {"id": f"cfg-{utc_date(t, '%Y%m%d-%H%M')}-timeout", "ts": format_time(t), "kind": "config",
                          "target": f"gateway/{f}/upstream_timeout", "features": [f], "from": "30s", "to": "45s",
                          "by": "dana.kim", "summary": f"Raise the gateway's upstream timeout for {f} from 30s to 45s "
                                                       "(provider latency spikes)",
                          "rollback": f"kubectl -n ai-gateway set env deploy/gateway UPSTREAM_TIMEOUT_{f.upper()}=30s"},
            lambda t, f: {"id": f"cfg-{utc_date(t, '%Y%m%d-%H%M')}-ratelimit", "ts": format_time(t), "kind": "config",
                          "target": f"gateway/{f}/rate_limit", "features": [f], "from": "50 rps", "to": "80 rps",
                          "by": "sam.okafor", "summary": f"Raise the per-tenant rate limit of {f} for enterprise tenants",
                          "rollback": f"flagctl set {f}.enterprise_rps 50"},
            lambda t, f: {"id": f"ops-{utc_date(t, '%Y%m%d-%H%M')}-keys", "ts": format_time(t), "kind": "other",
                          "target": "secrets/vendor-a", "by": "sre-bot",
                          "summary": "Rotate vendor-a API keys (quarterly)", "rollback": None},
        ]
        self.recorded.append(rng.choice(options)(t_near, f_near))
        # A newsletter campaign: a real but small traffic change (more free-tier users for a few hours).
        # Planned from the seed alone, like the traffic itself, so that every scenario of a seed shares
        # the same ordinary traffic (tests compare a scenario with `none` request by request).
        bg = random.Random(f"oncall-ai-demo:campaign:{self.seed}")
        campaign = bg.random() < 0.5
        f = bg.choice(FEATURES)
        t = self.start + DAY + int(bg.random() * (now - 4 * HOUR - self.start - DAY)) // 1000 * 1000
        hours = bg.randint(4, 8)
        if campaign and not (self.scenario == "input_shift" and f == self.input_shift[0]):
            self.mix_shifts.append(MixShift(f, "persona", "free", 1.5, t, t + hours * HOUR, 20 * MIN))
            self.recorded.append({
                "id": f"campaign-{utc_date(t, '%Y%m%d')}-newsletter", "ts": format_time(t), "kind": "traffic",
                "target": "campaign/newsletter", "features": [f], "from": None, "to": None, "by": "lucia.torres",
                "summary": f"Newsletter to free-tier users featuring {f} ({hours}h of extra traffic expected)",
                "rollback": None})
        self.recorded.sort(key=lambda r: (r["ts"], r["id"]))
