"""The demo sandbox generator: a week of realistic eval-on-traffic data with one planted incident
and its ground truth. Pure generation: writes files, never touches a store (see `build_sandbox`
in `oncall_ai.demo` for generate + ingest).

Sandbox layout (everything relative to the sandbox folder):

    oncall-ai.yaml        the config (CONTRACT.md section 2); `store: oncall-ai.db`
    README.md             what is here and what to run next
    prompts/              git repo, branch main, clean: the features' prompt files
                          (summarizer/system.md, summarizer/user.md, support/system.md,
                          support/user.md, search/rerank.md, search/query_rewrite.md), the judge
                          rubrics (judges/helpfulness.md, judges/relevance.md), README.md,
                          CODEOWNERS; a week of dated commits by several people
    platform/             git repo, branch main, clean: models.yaml (pin key -> model id),
                          indexes.yaml (index -> {version, embedding_model, chunk_tokens, ...}),
                          judges.yaml (metric -> {model, prompt: path in prompts/}), README.md
    events/YYYY-MM-DD.jsonl.gz
                          eval events (CONTRACT.md section 1), one file per UTC day, sorted by ts
    changes.jsonl         recorded changes (CONTRACT.md section 3)
    calibration/set.jsonl human-labelled items per judged metric (CONTRACT.md section 4)
    calibration/runs.jsonl
                          calibration runs of the judges over the set (daily, and after every
                          judge change)
    ground_truth.json     the answer key: what was planted, where, when, by which change

Traffic model. Three features: summarizer (judge metric helpfulness, check schema_valid on every
request, user thumbs_down), support (helpfulness, thumbs_down; retrieves from index kb-docs),
search (relevance, thumbs_down; retrieves from kb-docs). Volume follows a daily sinusoid per
feature and a weekday effect; the language mix moves with the time of day (ja at night UTC, de in
the European morning); persona mix moves on weekends. Each request has a latent quality
h ~ N(mu(cell) + hourly noise, 0.7) where mu depends on feature and slice (language=ja and de,
shape=long_doc, persona=free are weaker). Judges score 10% of requests (`sample_rate: 0.1`):
round(h + judge bias + N(0, 0.4)) clipped to 1..5; a quarter of users leave feedback
(thumbs_down = 1 with probability sigmoid(a - 1.1 (h - 4))); schema_valid fails at ~1.5% (more on
long documents). Events of one request share `request_id`; judge events carry short `input` and
`output` texts. Versions (`model_id`, `prompt_version`, `index_version`, `judge_id`) follow the git
history with deploy delays of a few minutes; on some seeds part or all of the traffic is untagged.

Everything is a function of (scenario, seed, now_ms, days, scale): the same inputs give
byte-identical files and identical commit ids.
"""

from __future__ import annotations

import bisect
import gzip
import math
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from oncall_ai.demo import SCENARIOS, content
from oncall_ai.demo.gitrepo import CommitSpec, Person, write_repo
from oncall_ai.errors import UsageError

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
BUCKET = 5 * MIN

# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------

# The hypothesis kind (CONTRACT.md section 5) each scenario plants; None: nothing to find.
SCENARIO_KINDS: dict[str, str | None] = {
    "prompt_change": "prompt_change",
    "prompt_change_slice": "prompt_change",
    "model_change": "model_change",
    "provider_model_change": "provider_model_change",
    "index_change": "index_change",
    "index_change_recorded": "index_change",
    "judge_drift": "judge_drift",
    "input_shift": "input_shift",
    "none": None,
}

# ---------------------------------------------------------------------------------------------
# The traffic and quality model (constants; see the module docstring)
# ---------------------------------------------------------------------------------------------

FEATURES = ("summarizer", "support", "search")
JUDGE_METRIC = {"summarizer": "helpfulness", "support": "helpfulness", "search": "relevance"}
CHECK_METRIC = {"summarizer": "schema_valid"}
PIN_KEY = {"summarizer": "summarizer", "support": "support", "search": "rerank"}
FEATURE_INDEX = {"summarizer": None, "support": "kb-docs", "search": "kb-docs"}
INDEX_USERS = {"kb-docs": ("support", "search")}

RATE_PER_HOUR = {"summarizer": 560.0, "support": 360.0, "search": 780.0}  # requests, daily mean
DIURNAL_AMPLITUDE = {"summarizer": 0.5, "support": 0.4, "search": 0.55}
DIURNAL_PEAK_HOUR = {"summarizer": 14.0, "support": 15.5, "search": 16.0}  # UTC
WEEKDAY_FACTOR = (1.05, 1.0, 1.0, 1.0, 0.95, 0.62, 0.55)  # Monday..Sunday

BASE_QUALITY = {"summarizer": 4.12, "support": 3.92, "search": 4.02}
THUMBS_INTERCEPT = {"summarizer": -2.35, "support": -2.0, "search": -2.5}  # logit at h = 4
THUMBS_SLOPE = 1.1
H_SD = 0.7  # request-to-request quality spread
JUDGE_SD = 0.4  # judge noise around the request's quality
JUDGE_BASE_BIAS = 0.08  # judges are slightly lenient vs humans
HOURLY_NOISE_SD = 0.035  # overdispersion: hour-to-hour quality wobble per feature
JUDGE_SAMPLE_RATE = 0.1
FEEDBACK_RATE = 0.25
SCHEMA_FAIL = 0.012

LANGS = ("en", "de", "fr", "es", "ja")
LANG_SHARE = (0.55, 0.15, 0.10, 0.12, 0.08)
LANG_PEAK_HOUR = (16.0, 10.0, 11.0, 15.0, 2.0)  # UTC
LANG_AMPLITUDE = 0.45
LANG_EFFECT = (0.0, -0.25, -0.12, -0.08, -0.45)

PERSONAS = ("free", "pro", "enterprise")
PERSONA_SHARE_WEEKDAY = (0.50, 0.35, 0.15)
PERSONA_SHARE_WEEKEND = (0.60, 0.33, 0.07)
PERSONA_EFFECT = (-0.06, 0.02, 0.08)

SHAPES = ("qa", "chat", "long_doc")
SHAPE_SHARE = {"summarizer": (0.20, 0.45, 0.35), "support": (0.55, 0.35, 0.10), "search": (0.60, 0.15, 0.25)}
SHAPE_EFFECT = (0.0, 0.08, -0.40)
SCHEMA_FAIL_SHAPE = (1.0, 0.8, 2.0)

SLICE_KEYS = ("persona", "language", "shape")
_SLICE_VALUES = {"language": LANGS, "persona": PERSONAS, "shape": SHAPES}
N_CELLS = len(LANGS) * len(PERSONAS) * len(SHAPES)

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


def cell_index(language: int, persona: int, shape: int) -> int:
    return (language * len(PERSONAS) + persona) * len(SHAPES) + shape


def cell_slices(cell: int) -> dict[str, str]:
    shape = cell % len(SHAPES)
    persona = (cell // len(SHAPES)) % len(PERSONAS)
    language = cell // (len(SHAPES) * len(PERSONAS))
    return {"persona": PERSONAS[persona], "language": LANGS[language], "shape": SHAPES[shape]}


def _cells_matching(slices: list[dict[str, str]]) -> set[int]:
    """Cells inside any of `slices` (each a {key: value} conjunction); every cell for []."""
    out = set()
    for c in range(N_CELLS):
        sl = cell_slices(c)
        if not slices or any(all(sl[k] == v for k, v in s.items()) for s in slices):
            out.add(c)
    return out


def mean_quality(feature: str) -> list[float]:
    """mu per cell (before hourly noise and incidents)."""
    out = []
    for li in range(len(LANGS)):
        for pi in range(len(PERSONAS)):
            for si in range(len(SHAPES)):
                out.append(BASE_QUALITY[feature] + LANG_EFFECT[li] + PERSONA_EFFECT[pi] + SHAPE_EFFECT[si])
    return out


def typical_mix(feature: str, overrides: dict[tuple[str, str], float] | None = None) -> list[float]:
    """The daily-average share of each cell (optionally with slice values' weight multiplied)."""
    persona = [(5 * a + 2 * b) / 7 for a, b in zip(PERSONA_SHARE_WEEKDAY, PERSONA_SHARE_WEEKEND, strict=True)]
    lang = list(LANG_SHARE)
    shape = list(SHAPE_SHARE[feature])
    for (key, value), mult in (overrides or {}).items():
        table = {"language": (lang, LANGS), "persona": (persona, PERSONAS), "shape": (shape, SHAPES)}[key]
        table[0][table[1].index(value)] *= mult
    lang, persona, shape = ([x / sum(t) for x in t] for t in (lang, persona, shape))
    return [lang[li] * persona[pi] * shape[si]
            for li in range(len(LANGS)) for pi in range(len(PERSONAS)) for si in range(len(SHAPES))]


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


SCORE_SD = math.sqrt(H_SD ** 2 + JUDGE_SD ** 2)


def expected_score(m: float) -> float:
    """E[clip(round(X), 1, 5)] for X ~ N(m, SCORE_SD): the expected judge score."""
    return 1.0 + sum(1.0 - _phi((k + 0.5 - m) / SCORE_SD) for k in range(1, 5))


def expected_good(m: float) -> float:
    """P(judge score >= 4)."""
    return 1.0 - _phi((3.5 - m) / SCORE_SD)


_GRID = [(-4.0 + 8.0 * i / 80) for i in range(81)]
_GRID_W = [math.exp(-z * z / 2) for z in _GRID]
_GRID_WSUM = sum(_GRID_W)


def expected_thumbs(feature: str, mu: float) -> float:
    """P(thumbs_down) for h ~ N(mu, H_SD)."""
    a = THUMBS_INTERCEPT[feature]
    return sum(w / (1.0 + math.exp(-(a - THUMBS_SLOPE * (mu + H_SD * z - 4.0))))
               for z, w in zip(_GRID, _GRID_W, strict=True)) / _GRID_WSUM


# ---------------------------------------------------------------------------------------------
# Result
# ---------------------------------------------------------------------------------------------

@dataclass
class SandboxInfo:
    """What generate_sandbox built (and build_sandbox ingested)."""

    dir: Path
    scenario: str
    seed: int
    now_ms: int
    days: int
    scale: float
    config_path: Path
    store_path: Path
    event_files: list[Path]
    n_events: int
    n_requests: int
    ground_truth: dict
    prompt_repo: Path
    platform_repo: Path
    changes_path: Path
    calibration_set: Path
    calibration_runs: Path
    n_prompt_commits: int = 0
    n_platform_commits: int = 0
    n_recorded_changes: int = 0
    n_calibration_items: int = 0
    n_calibration_scores: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    ingested: dict | None = None  # filled by build_sandbox: {"events": n, "changes": n, "judge_runs": n}


# ---------------------------------------------------------------------------------------------
# Planning: commits, recorded changes, the incident
# ---------------------------------------------------------------------------------------------

@dataclass
class _Commit:
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


class _Timeline:
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
class _Incident:
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
class _MixShift:
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


def _fmt(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if ms % 1000 == 0 else \
        dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _date(ms: int, fmt: str = "%Y-%m-%d") -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime(fmt)


class _Planner:
    def __init__(self, scenario: str, seed: int, now_ms: int, days: int):
        self.scenario = scenario
        self.seed = seed
        self.now = now_ms
        self.days = days
        self.start = now_ms - days * DAY
        self.rng = random.Random(f"oncall-ai-demo:plan:{scenario}:{seed}")
        self.commits: list[_Commit] = []
        self.recorded: list[dict] = []
        self.mix_shifts: list[_MixShift] = []
        self.truth: dict = {}
        self.incident = _Incident(None, 0)
        self.incident_commit: _Commit | None = None
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

    def add_prompt_commit(self, at: int, edit: content.Edit, person: Person, role: str = "harmless") -> _Commit:
        c = _Commit("prompts", at, person, [edit], edit.message, role, self.uniform_ms(2 * MIN, 8 * MIN))
        self.commits.append(c)
        return c

    def add_platform_commit(self, at: int, edits: list[content.Edit], message: str, person: Person,
                            role: str = "harmless") -> _Commit:
        c = _Commit("platform", at, person, edits, message, role, self.uniform_ms(4 * MIN, 12 * MIN))
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
            "large_old": f"vendor-a/atlas-large-{_date(now - 196 * DAY)}",
            "large_new": f"vendor-a/atlas-large-{_date(now - 9 * DAY)}",
            "nimbus_old": f"vendor-b/nimbus-{_date(now - 233 * DAY)}",
            "nimbus_new": f"vendor-b/nimbus-{_date(now - 12 * DAY)}",
            "small_old": f"vendor-a/atlas-small-{_date(now - 270 * DAY)}",
            "small_new": f"vendor-a/atlas-small-{_date(now - 40 * DAY)}",
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
        self.kb_initial = _date(self.start - 2 * DAY, "%Y%m%d") + ".1"
        legal_initial = _date(self.start - 20 * DAY, "%Y%m%d") + ".1"
        self.platform_specs = content.platform_files({
            **initial_pins, "kb_version": self.kb_initial, "legal_version": legal_initial,
            "judge_helpfulness_model": self.judge_models["helpfulness"],
            "judge_relevance_model": self.judge_models["relevance"],
            "kb_version_comment": ("  # rebuilt by the index pipeline; builds are recorded as changes"
                                   if self.scenario == "index_change_recorded" else ""),
        })
        self._platform_harmless = {s.path: list(s.harmless) for s in self.platform_specs}

        # Initial commits, before the event window.
        self.commits.append(_Commit("prompts", self.start - 10 * DAY + 37 * MIN, PEOPLE["priya"], [],
                                    "Import prompts from the monorepo", "initial", 0))
        self.commits.append(_Commit("platform", self.start - 12 * DAY + 4 * HOUR, PEOPLE["sam"], [],
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
            inc.cells = {f: _cells_matching(slices)}
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
            inc.cells = {f: _cells_matching([])}
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
            inc.cells = {f: _cells_matching([])}
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
            new_version = _date(commit_at, "%Y%m%d") + ".2"
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
                    "id": f"idx-kb-docs-{new_version}", "ts": _fmt(onset), "kind": "index", "target": "kb-docs",
                    "features": list(users), "from": None, "to": new_version, "by": "index-pipeline",
                    "summary": f"kb-docs rebuilt with the new chunker ({chunk} tokens per chunk)",
                    "rollback": None}
                self.kb_recorded.append((onset, new_version))
            inc.kind, inc.onset_ms, inc.features = kind, onset, users
            inc.cells = {f: _cells_matching([{"shape": "qa"}]) for f in users}
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
            self.mix_shifts.append(_MixShift(f, key, value, mult, onset, None, self.uniform_ms(20 * MIN, 50 * MIN)))
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
            v = _date(t, "%Y%m%d") + f".{rng.randint(1, 3)}"
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
            v = _date(t, "%Y%m%d") + ".1"
            if self.scenario == "index_change_recorded":
                self.recorded.append({
                    "id": f"idx-kb-docs-{v}", "ts": _fmt(t), "kind": "index", "target": "kb-docs",
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
            lambda t, f: {"id": f"cfg-{_date(t, '%Y%m%d-%H%M')}-timeout", "ts": _fmt(t), "kind": "config",
                          "target": f"gateway/{f}/upstream_timeout", "features": [f], "from": "30s", "to": "45s",
                          "by": "dana.kim", "summary": f"Raise the gateway's upstream timeout for {f} from 30s to 45s "
                                                       "(provider latency spikes)",
                          "rollback": f"kubectl -n ai-gateway set env deploy/gateway UPSTREAM_TIMEOUT_{f.upper()}=30s"},
            lambda t, f: {"id": f"cfg-{_date(t, '%Y%m%d-%H%M')}-ratelimit", "ts": _fmt(t), "kind": "config",
                          "target": f"gateway/{f}/rate_limit", "features": [f], "from": "50 rps", "to": "80 rps",
                          "by": "sam.okafor", "summary": f"Raise the per-tenant rate limit of {f} for enterprise tenants",
                          "rollback": f"flagctl set {f}.enterprise_rps 50"},
            lambda t, f: {"id": f"ops-{_date(t, '%Y%m%d-%H%M')}-keys", "ts": _fmt(t), "kind": "other",
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
            self.mix_shifts.append(_MixShift(f, "persona", "free", 1.5, t, t + hours * HOUR, 20 * MIN))
            self.recorded.append({
                "id": f"campaign-{_date(t, '%Y%m%d')}-newsletter", "ts": _fmt(t), "kind": "traffic",
                "target": "campaign/newsletter", "features": [f], "from": None, "to": None, "by": "lucia.torres",
                "summary": f"Newsletter to free-tier users featuring {f} ({hours}h of extra traffic expected)",
                "rollback": None})
        self.recorded.sort(key=lambda r: (r["ts"], r["id"]))


# ---------------------------------------------------------------------------------------------
# Rendering the repos
# ---------------------------------------------------------------------------------------------

def _render_repo(specs: list[content.FileSpec], commits: list[_Commit]) -> list[CommitSpec]:
    values = {s.path: dict(s.slots) for s in specs}
    by_path = {s.path: s for s in specs}
    out = []
    for c in commits:
        if c.role == "initial":
            files = {s.path: s.render(values[s.path]) for s in specs}
        else:
            changed = {}
            for e in c.edits:
                values[e.path][e.slot] = e.new
                changed[e.path] = True
            files = {p: by_path[p].render(values[p]) for p in changed}
        c.touched = tuple(sorted(files))
        c.slots = {f"{e.path}:{e.slot}": e.new for e in c.edits}
        out.append(CommitSpec(c.at_ms, c.author, c.message, files))
    return out


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------

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


class _EventWriter:
    """Generates every feature's requests bucket by bucket and streams the events to daily files."""

    def __init__(self, planner: _Planner, out_dir: Path, scale: float, versions: dict, judges: dict):
        self.p = planner
        self.out_dir = out_dir
        self.scale = scale
        self.versions = versions  # feature -> {"model_id": _Timeline, "prompt_version": ..., "index_version": ...}
        self.judges = judges  # metric -> _Timeline of (judge_id, bias)
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
                d = _date(b0)
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
                          "output": content.output_text(f, score, counter)}
                    nl((ts, dumps(ev) + b"\n"))
                if rated:
                    pd = 1.0 / (1.0 + math.exp(-(td_a - THUMBS_SLOPE * (h - 4.0))))
                    ev = {"ts": ts_value, "id": f"{rid}:thumbs_down", "metric": "thumbs_down",
                          "value": 1 if rnd() < pd else 0, "source": "user", **common}
                    nl((ts, dumps(ev) + b"\n"))
        self.counter[f] = counter


# ---------------------------------------------------------------------------------------------
# Calibration set and runs
# ---------------------------------------------------------------------------------------------

def _calibration(planner: _Planner, judge_changes: dict[str, list[tuple[int, str, float]]]) -> tuple[list[dict], list[dict]]:
    """Items per judged metric and the runs of the judges over them.

    judge_changes: metric -> [(live ms, judge_id, bias)] including the initial judge (live 0)."""
    rng = random.Random(f"oncall-ai-demo:calibration:{planner.scenario}:{planner.seed}")
    items, latent = [], {}
    for metric in ("helpfulness", "relevance"):
        feats = [f for f in FEATURES if JUDGE_METRIC[f] == metric]
        n = rng.randint(90, 130)
        for i in range(n):
            f = feats[i % len(feats)]
            lang = rng.choices(LANGS, weights=(0.4, 0.2, 0.15, 0.15, 0.1))[0]
            human = rng.choices((1, 2, 3, 4, 5), weights=(0.08, 0.14, 0.24, 0.32, 0.22))[0]
            item_id = f"{metric}-{i + 1:03d}"
            bank = content.INPUTS[f][lang]
            items.append({"id": item_id, "metric": metric, "input": bank[i % len(bank)],
                          "output": content.output_text(f, human, i), "human_score": human,
                          "feature": f, "slice": {"language": lang}})
            latent[item_id] = human + rng.gauss(0.0, 0.3)
    # Run schedule: daily at a fixed time, and half an hour after each judge change.
    runs = []
    run_minute = rng.randint(5, 55)
    day0 = planner.start - planner.start % DAY
    for metric, changes in judge_changes.items():
        times = [day0 + d * DAY + 2 * HOUR + run_minute * MIN for d in range(planner.days + 1)]
        times += [live + rng.randint(15, 45) * MIN for live, _, _ in changes if live > planner.start]
        times = sorted(t for t in set(times) if planner.start <= t < planner.now)
        for t in times:
            judge_id, bias = changes[0][1], changes[0][2]
            for live, jid, b in changes:
                if t >= live:
                    judge_id, bias = jid, b
            run_id = f"cal-{metric}-{_date(t, '%Y%m%dT%H%M')}"
            run_rng = random.Random(f"oncall-ai-demo:run:{planner.seed}:{run_id}")
            for item in items:
                if item["metric"] != metric:
                    continue
                # The judge's own view of an item is stable across runs of the same judge.
                offset = random.Random(f"oncall-ai-demo:item:{planner.seed}:{judge_id}:{item['id']}").gauss(0.0, 0.35)
                if run_rng.random() < 0.01:
                    score = None  # the judge refused or failed
                else:
                    x = latent[item["id"]] + bias + offset + run_rng.gauss(0.0, 0.2) + 0.5
                    score = 1 if x < 2.0 else 5 if x >= 5.0 else int(x)
                runs.append({"run_id": run_id, "ts": _fmt(t), "judge_id": judge_id, "item_id": item["id"],
                             "score": score})
    runs.sort(key=lambda r: (r["ts"], r["run_id"], r["item_id"]))
    return items, runs


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------

def _slo_objective(bad_share: float, budget_use: float = 0.6) -> float:
    """An objective the ordinary traffic meets using about `budget_use` of its error budget."""
    return math.floor((1.0 - bad_share / budget_use) * 100) / 100


def _config_text(scenario: str, seed: int) -> str:
    mix = typical_mix("summarizer")
    mu = mean_quality("summarizer")
    good = sum(w * expected_good(m + JUDGE_BASE_BIAS) for w, m in zip(mix, mu, strict=True))
    schema_bad = sum(w * SCHEMA_FAIL * SCHEMA_FAIL_SHAPE[c % 3] for c, w in enumerate(mix))
    mix_s, mu_s = typical_mix("support"), mean_quality("support")
    thumbs = sum(w * expected_thumbs("support", m) for w, m in zip(mix_s, mu_s, strict=True))
    return f"""# oncall-ai demo sandbox: scenario {scenario}, seed {seed}. Built by `oncall-ai demo`.
# Every path is relative to this file. The answer key is ground_truth.json (spoiler).
store: oncall-ai.db
prompt_repo: prompts              # git repo with the prompts and the judge rubrics
features:
  summarizer:
    prompts: ["summarizer/**"]    # globs of paths in prompt_repo
    model: summarizer             # key in the pins file
  support:
    prompts: ["support/**"]
    model: support
    indexes: [kb-docs]
  search:
    prompts: ["search/**"]
    model: rerank
    indexes: [kb-docs]
pins:    {{repo: platform, file: models.yaml}}
indexes: {{repo: platform, file: indexes.yaml}}
judges:  {{repo: platform, file: judges.yaml}}
metrics:
  helpfulness:  {{source: judge, good: ">= 4", scale: [1, 5]}}
  relevance:    {{source: judge, good: ">= 4", scale: [1, 5]}}
  schema_valid: {{source: check, good: "== 1"}}
  thumbs_down:  {{source: user, good: "== 0"}}
slices: [persona, language, shape]
slos:
  - {{name: summarizer-helpfulness, feature: summarizer, metric: helpfulness, objective: {_slo_objective(1 - good)}, window: 24h}}
  - {{name: summarizer-schema, feature: summarizer, metric: schema_valid, objective: {_slo_objective(schema_bad)}, window: 24h}}
  - {{name: support-thumbs, feature: support, metric: thumbs_down, objective: {_slo_objective(thumbs)}, window: 24h}}
calibration: calibration/set.jsonl
"""


def _readme_text(scenario: str, seed: int, now_ms: int) -> str:
    return f"""# oncall-ai demo sandbox

Scenario `{scenario}` (seed {seed}), generated for {_fmt(now_ms)}: {SCENARIOS[scenario]}.

    oncall-ai.yaml          configuration (store: oncall-ai.db)
    prompts/                git repo: prompt files per feature, judge rubrics under judges/
    platform/               git repo: models.yaml (pins), indexes.yaml, judges.yaml
    events/*.jsonl.gz       a week of eval events (judge scores, schema checks, thumbs-down)
    changes.jsonl           changes recorded outside git (config, traffic, index pipeline)
    calibration/set.jsonl   human-labelled items for the judges; runs.jsonl: calibration runs
    ground_truth.json       what was planted (read it after you have triaged)

Try:

    oncall-ai scores --feature summarizer --metric helpfulness --since 24h --by language
    oncall-ai changes list --since 24h
    oncall-ai triage
    oncall-ai judge drift
"""


# ---------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------

def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


# What a sandbox consists of, relative to its folder (what `clear_sandbox` removes, nothing else).
SANDBOX_ENTRIES = ("oncall-ai.yaml", "README.md", "prompts", "platform", "events", "calibration", "changes.jsonl",
                   "ground_truth.json", "oncall-ai.db", "oncall-ai.db-wal", "oncall-ai.db-shm", "oncall-ai.db-journal")


def existing_entries(dir: Path) -> list[str]:
    return [name for name in SANDBOX_ENTRIES if (Path(dir) / name).exists() or (Path(dir) / name).is_symlink()]


def clear_sandbox(dir: Path) -> list[str]:
    """Remove a previous sandbox's entries from `dir` (only the names in SANDBOX_ENTRIES)."""
    import shutil

    removed = existing_entries(dir)
    for name in removed:
        p = Path(dir) / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    return removed


def generate_sandbox(dir: Path, *, scenario: str = "prompt_change", seed: int = 1, now_ms: int,
                     days: int = 7, scale: float = 1.0, overwrite: bool = False) -> SandboxInfo:
    """Write a sandbox for `scenario` into `dir` (created if missing). A previous sandbox there is
    an error unless `overwrite` (then its entries are removed first; other files are left alone).
    Deterministic in (scenario, seed, now_ms, days, scale)."""
    if scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")
    if not isinstance(days, int) or days < 2:
        raise UsageError("days must be a whole number >= 2 (the incident sits in the last 20 hours)")
    if not scale > 0:
        raise UsageError("scale must be > 0")
    if existing_entries(dir):
        if not overwrite:
            raise UsageError(f"{dir} already holds a sandbox ({', '.join(existing_entries(dir))})",
                             hint="pick another folder, or overwrite it (`oncall-ai demo --force`)")
        clear_sandbox(dir)
    now_ms = int(now_ms)
    dir = Path(dir)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    planner = _Planner(scenario, seed, now_ms, days)
    planner.plan()
    timings["plan"] = time.perf_counter() - t0

    # -- repos ------------------------------------------------------------------------------
    t = time.perf_counter()
    dir.mkdir(parents=True, exist_ok=True)
    repos = {}
    for repo, specs in (("prompts", planner.prompt_specs), ("platform", planner.platform_specs)):
        commits = sorted((c for c in planner.commits if c.repo == repo), key=lambda c: (c.at_ms, c.role != "initial"))
        specs_out = _render_repo(specs, commits)
        write_repo(dir / repo, specs_out)
        for c, s in zip(commits, specs_out, strict=True):
            c.sha = s.sha
        repos[repo] = commits
    timings["git"] = time.perf_counter() - t

    # -- version timelines --------------------------------------------------------------------
    inc = planner.incident
    prompt_commits, platform_commits = repos["prompts"], repos["platform"]
    versions: dict[str, dict[str, _Timeline]] = {}
    for f in FEATURES:
        files = set(content.FEATURE_PROMPT_FILES[f])
        pv = [(c.live_ms, c.sha) for c in prompt_commits if c.role == "initial" or files & set(c.touched)]
        pin_slot = f"models.yaml:pin_{PIN_KEY[f]}"
        pin_changes = [(c.live_ms, c.slots[pin_slot]) for c in platform_commits if pin_slot in c.slots]
        if f == planner.alias_feature:
            model = _Timeline(planner.served_initial[f], planner.alias_timeline)
        else:
            model = _Timeline(planner.served_initial[f], pin_changes)
        tl = {"model_id": model, "prompt_version": _Timeline(pv[0][1], pv[1:])}
        if FEATURE_INDEX[f]:
            kb = [(c.live_ms, c.slots["indexes.yaml:kb_version"]) for c in platform_commits
                  if "indexes.yaml:kb_version" in c.slots]
            tl["index_version"] = _Timeline(planner.kb_initial, kb + planner.kb_recorded)
        versions[f] = tl
    judges: dict[str, _Timeline] = {}
    judge_changes: dict[str, list[tuple[int, str, float]]] = {}
    for metric in ("helpfulness", "relevance"):
        rubric = f"judges/{metric}.md"
        model_slot = f"judges.yaml:judge_{metric}_model"
        events = [(c.live_ms, "rubric", c.sha) for c in prompt_commits if c.role == "initial" or rubric in c.touched]
        events += [(c.live_ms, "model", c.slots[model_slot]) for c in platform_commits if model_slot in c.slots]
        events.sort(key=lambda e: e[0])
        model, rubric_sha, bias = planner.judge_models[metric], None, JUDGE_BASE_BIAS
        changes = []
        for live, what, value in events:
            if what == "rubric":
                rubric_sha = value
            else:
                model = value
            if inc.kind == "judge_drift" and inc.judge_metric == metric and live >= inc.onset_ms:
                bias = JUDGE_BASE_BIAS + inc.judge_bias
            jid = f"{metric}-judge/{model}/rubric-{rubric_sha[:7]}"
            if changes and changes[-1][1] == jid:
                continue
            changes.append((live if changes else 0, jid, bias))
        judge_changes[metric] = changes
        judges[metric] = _Timeline((changes[0][1], changes[0][2]), [(t, (j, b)) for t, j, b in changes[1:]])

    # -- events -------------------------------------------------------------------------------
    t = time.perf_counter()
    events_dir = dir / "events"
    events_dir.mkdir(exist_ok=True)
    for old in events_dir.glob("*.jsonl.gz"):
        old.unlink()
    writer = _EventWriter(planner, events_dir, scale, versions, judges)
    writer.run()
    timings["events"] = time.perf_counter() - t

    # -- calibration, recorded changes, config, ground truth ----------------------------------
    t = time.perf_counter()
    cal_dir = dir / "calibration"
    cal_dir.mkdir(exist_ok=True)
    items, runs = _calibration(planner, judge_changes)
    _write_jsonl(cal_dir / "set.jsonl", items)
    _write_jsonl(cal_dir / "runs.jsonl", runs)
    _write_jsonl(dir / "changes.jsonl", planner.recorded)
    (dir / "oncall-ai.yaml").write_text(_config_text(scenario, seed))
    (dir / "README.md").write_text(_readme_text(scenario, seed, now_ms))
    truth = _ground_truth(planner, repos, judge_changes)
    (dir / "ground_truth.json").write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2) + b"\n")
    timings["files"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    return SandboxInfo(
        dir=dir, scenario=scenario, seed=seed, now_ms=now_ms, days=days, scale=scale,
        config_path=dir / "oncall-ai.yaml", store_path=dir / "oncall-ai.db", event_files=writer.files,
        n_events=writer.n_events, n_requests=writer.n_requests, ground_truth=truth,
        prompt_repo=dir / "prompts", platform_repo=dir / "platform", changes_path=dir / "changes.jsonl",
        calibration_set=cal_dir / "set.jsonl", calibration_runs=cal_dir / "runs.jsonl",
        n_prompt_commits=len(prompt_commits), n_platform_commits=len(platform_commits),
        n_recorded_changes=len(planner.recorded), n_calibration_items=len(items),
        n_calibration_scores=len(runs), seconds=timings)


def _ground_truth(planner: _Planner, repos: dict[str, list[_Commit]], judge_changes: dict) -> dict:
    inc = planner.incident
    kind = SCENARIO_KINDS[planner.scenario]
    truth = {"scenario": planner.scenario, "seed": planner.seed, "now": _fmt(planner.now)}
    base = dict(planner.truth)
    change_id = None
    if planner.incident_commit is not None:
        change_id = planner.incident_commit.sha
    elif planner.incident_record is not None:
        change_id = planner.incident_record["id"]
    affected = []
    if kind is not None:
        for f in inc.features:
            affected.append({"feature": f, **_expected_effects(planner, f)})
    primary = next((a for a in affected if a["feature"] == base.get("feature")), None)
    metric = JUDGE_METRIC[base["feature"]] if kind is not None else None
    truth.update({
        "kind": kind,
        "feature": base.get("feature"),
        "metric": metric,
        "affected_features": list(inc.features),
        "onset": _fmt(inc.onset_ms) if kind is not None else None,
        "change_id": change_id,
        "target": base.get("target"),
        "slices": base.get("slices", []),
        "effect": round(primary["effects"][metric], 4) if primary else None,
        "harmless_changes": [],
    })
    changes = []
    for repo, commits in repos.items():
        for c in commits:
            changes.append({"id": c.sha, "source": f"git:{repo}", "at": _fmt(c.at_ms), "live": _fmt(c.live_ms),
                            "by": c.author.name, "summary": c.message, "paths": list(c.touched),
                            "role": c.role})
    for r in planner.recorded:
        changes.append({"id": r["id"], "source": "recorded", "at": r["ts"], "live": r["ts"], "by": r["by"],
                        "summary": r["summary"], "paths": [], "role": "incident" if r["id"] == change_id else "harmless"})
    changes.sort(key=lambda c: (c["at"], c["id"]))
    truth["harmless_changes"] = [c["id"] for c in changes if c["id"] != change_id]
    # Details beyond the brief's keys, for tests and for people reading the answer key.
    truth["affected"] = affected
    truth["ramp"] = [{"at": _fmt(t), "share": s} for t, s in inc.ramp] if inc.ramp else None
    truth["model"] = {"from": inc.model_from, "to": inc.model_to} if inc.model_to else None
    if inc.kind == "judge_drift":
        truth["judge"] = {"metric": inc.judge_metric, "bias": round(inc.judge_bias, 4),
                          "judge_ids": [j for _, j, _ in judge_changes[inc.judge_metric]]}
    if planner.scenario == "input_shift":
        f, key, value, mult = planner.input_shift
        truth["mix"] = {"feature": f, "slice": {key: value}, "multiplier": round(mult, 3),
                        "share_before": round(_slice_share(f, key, value, 1.0), 4),
                        "share_after": round(_slice_share(f, key, value, mult), 4)}
    truth["tagging"] = {"profile": planner.tagging["profile"], "prompt_version_chars": planner.tagging["abbrev"],
                        "untagged": planner.tagging["untagged"],
                        "fields": planner.tagging.get("fields", [])}
    truth["alias_pin"] = {"feature": planner.alias_feature, "pin": PIN_KEY[planner.alias_feature],
                          "alias": planner.alias_name}
    truth["window"] = {"start": _fmt(planner.start), "end": _fmt(planner.now)}
    truth["changes"] = changes
    return truth


def _slice_share(feature: str, key: str, value: str, mult: float) -> float:
    mix = typical_mix(feature, {(key, value): mult})
    return sum(w for c, w in enumerate(mix) if cell_slices(c)[key] == value)


def _expected_effects(planner: _Planner, feature: str) -> dict:
    """Expected change of each metric's mean in the affected population of `feature` (its
    affected slices; the whole feature for input_shift), from the generating model."""
    inc = planner.incident
    mu = mean_quality(feature)
    jm = JUDGE_METRIC[feature]
    effects: dict[str, float] = {}
    expected: dict[str, dict[str, float]] = {}

    def record(metric, before, after):
        effects[metric] = after - before
        expected[metric] = {"before": round(before, 4), "after": round(after, 4)}

    if inc.kind == "input_shift":
        _, key, value, mult = planner.input_shift
        w0, w1 = typical_mix(feature), typical_mix(feature, {(key, value): mult})
        record(jm, sum(w * expected_score(m + JUDGE_BASE_BIAS) for w, m in zip(w0, mu, strict=True)),
               sum(w * expected_score(m + JUDGE_BASE_BIAS) for w, m in zip(w1, mu, strict=True)))
        record("thumbs_down", sum(w * expected_thumbs(feature, m) for w, m in zip(w0, mu, strict=True)),
               sum(w * expected_thumbs(feature, m) for w, m in zip(w1, mu, strict=True)))
        if feature in CHECK_METRIC:
            fail = [SCHEMA_FAIL * SCHEMA_FAIL_SHAPE[c % 3] for c in range(N_CELLS)]
            record("schema_valid", 1 - sum(w * x for w, x in zip(w0, fail, strict=True)),
                   1 - sum(w * x for w, x in zip(w1, fail, strict=True)))
    else:
        cells = inc.cells.get(feature) or set(range(N_CELLS))
        mix = typical_mix(feature)
        total = sum(mix[c] for c in cells)
        w = {c: mix[c] / total for c in cells}
        if inc.kind == "judge_drift":
            b0, b1 = JUDGE_BASE_BIAS, JUDGE_BASE_BIAS + inc.judge_bias
            record(jm, sum(x * expected_score(mu[c] + b0) for c, x in w.items()),
                   sum(x * expected_score(mu[c] + b1) for c, x in w.items()))
            record("thumbs_down", *(2 * [sum(x * expected_thumbs(feature, mu[c]) for c, x in w.items())]))
        else:
            d = inc.quality_delta
            record(jm, sum(x * expected_score(mu[c] + JUDGE_BASE_BIAS) for c, x in w.items()),
                   sum(x * expected_score(mu[c] + d + JUDGE_BASE_BIAS) for c, x in w.items()))
            record("thumbs_down", sum(x * expected_thumbs(feature, mu[c]) for c, x in w.items()),
                   sum(x * expected_thumbs(feature, mu[c] + d) for c, x in w.items()))
        if feature in CHECK_METRIC:
            fail = {c: SCHEMA_FAIL * SCHEMA_FAIL_SHAPE[c % 3] for c in cells}
            mult = inc.check_mult if inc.kind != "judge_drift" else 1.0
            record("schema_valid", 1 - sum(x * fail[c] for c, x in w.items()),
                   1 - sum(x * min(1.0, fail[c] * mult) for c, x in w.items()))
    return {"metrics": sorted(effects), "slices": planner.truth.get("slices", []),
            "effects": {k: round(v, 4) for k, v in effects.items()}, "expected": expected,
            "latent_shift": round(inc.quality_delta, 4) if inc.kind not in ("judge_drift", "input_shift") else 0.0}


def plan_preview(scenario: str, seed: int, now_ms: int, days: int = 7) -> dict:
    """What a sandbox would plant, without writing anything (no commit ids): for picking seeds
    with a given property in test suites (a slice, a canary ramp, a tagging profile)."""
    if scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r}; choose one of: {', '.join(SCENARIOS)}")
    p = _Planner(scenario, seed, int(now_ms), days)
    p.plan()
    inc = p.incident
    kind = SCENARIO_KINDS[scenario]
    return {"scenario": scenario, "seed": seed, "kind": kind, "feature": p.truth.get("feature"),
            "affected_features": list(inc.features), "target": p.truth.get("target"),
            "slices": p.truth.get("slices", []), "onset_ms": inc.onset_ms if kind else None,
            "ramp": bool(inc.ramp), "tagging": p.tagging, "alias_feature": p.alias_feature,
            "judge_change_via": (None if kind != "judge_drift" else p.incident_commit.repo)}
