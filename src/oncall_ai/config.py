"""`oncall-ai.yaml` -> frozen dataclasses (CONTRACT.md section 2).

Discovery: --config PATH, else $ONCALL_AI_CONFIG, else ./oncall-ai.yaml. Relative paths resolve
against the config file's folder. Every error names the file and the key path
(`oncall-ai.yaml: slos[0].objective: ...`) and is a ConfigError (exit 2).
"""

from __future__ import annotations

import difflib
import math
import operator
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oncall_ai.errors import ConfigError
from oncall_ai.timeutil import parse_duration_ms

CONFIG_ENV = "ONCALL_AI_CONFIG"
DEFAULT_CONFIG_NAME = "oncall-ai.yaml"
SOURCES = ("judge", "check", "user")

# Sections owned by feature modules that validate them themselves (kept raw here).
EXTENSION_SECTIONS = ("judge_api", "notify", "langfuse", "clickhouse", "triage", "digest")

TOP_LEVEL_KEYS = (
    "store",
    "prompt_repo",
    "features",
    "pins",
    "indexes",
    "judges",
    "metrics",
    "slices",
    "slos",
    "calibration",
    *EXTENSION_SECTIONS,
)

_GOOD = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
_GOOD_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
             "!=": operator.ne}


@dataclass(frozen=True)
class GoodRule:
    """`good: ">= 4"`: which values of a metric count as good for SLIs and good_share."""

    op: str
    threshold: float

    @classmethod
    def parse(cls, text: Any, where: str) -> GoodRule:
        m = _GOOD.match(str(text))
        if not m:
            raise ConfigError(f"{where}: {text!r} is not a good-rule; write e.g. \">= 4\", \"== 1\", \"< 0.5\"")
        return cls(m.group(1), float(m.group(2)))

    @property
    def compare(self):
        """The comparison as a function of (value, threshold): operator.ge for ">=", ..."""
        return _GOOD_OPS[self.op]

    def is_good(self, v: float) -> bool:
        return _GOOD_OPS[self.op](v, self.threshold)

    @property
    def higher_is_better(self) -> bool:
        if self.op in (">=", ">"):
            return True
        if self.op in ("<=", "<"):
            return False
        # "== 1" (a check passes) vs "== 0" (no thumbs-down): good at zero means lower is better.
        return (self.threshold != 0) if self.op == "==" else (self.threshold == 0)

    def __str__(self) -> str:
        return f"{self.op} {self.threshold:g}"


@dataclass(frozen=True)
class MetricConfig:
    name: str
    source: str = "judge"
    good: GoodRule | None = None
    scale: tuple[float, float] | None = None  # values outside are rejected at ingest
    direction: str = "higher"  # "higher" or "lower" is better

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"


@dataclass(frozen=True)
class FeatureConfig:
    name: str
    prompts: tuple[str, ...] = ()
    model: str | None = None
    indexes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RepoFile:
    repo: Path
    file: str


@dataclass(frozen=True)
class SLOConfig:
    name: str
    feature: str
    metric: str
    objective: float
    window_ms: int
    where: tuple[tuple[str, str], ...] = ()
    min_events: int = 0
    severity: str = "page"
    # Extensions (issue 7): None = decide from the metric (source judge) and events (sample_rate < 1).
    sampled: bool | None = None
    # Where each state is sent by `slo check --notify`: (("page", ("pagerduty", "slack")), ...);
    # None = the `notify.routes` section, else the default routes.
    notify: tuple[tuple[str, tuple[str, ...]], ...] | None = None
    description: str = ""
    raw: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Config:
    path: Path | None
    base_dir: Path
    store: str
    prompt_repo: Path | None = None
    features: dict[str, FeatureConfig] = field(default_factory=dict)
    pins: RepoFile | None = None
    indexes: RepoFile | None = None
    judges: RepoFile | None = None
    metrics: dict[str, MetricConfig] = field(default_factory=dict)
    slices: tuple[str, ...] = ()
    slos: tuple[SLOConfig, ...] = ()
    calibration: Path | None = None
    raw: dict = field(default_factory=dict)

    def metric(self, name: str) -> MetricConfig:
        """The metric's config, or defaults (judge source, no good rule) for one not configured."""
        return self.metrics.get(name) or MetricConfig(name)

    def section(self, name: str) -> dict:
        value = self.raw.get(name) or {}
        return value if isinstance(value, dict) else {}

    def describe(self) -> str:
        """Where this config came from, for messages."""
        return str(self.path) if self.path else "(no config file)"


def config_where(cfg) -> str:
    """The prefix of a message about a key in a config's extension section: the file's path, or
    "config" when the settings came from elsewhere (defaults, a dict, the environment)."""
    path = getattr(cfg, "path", None)
    return str(path) if path else "config"


def find_config_path(explicit: str | os.PathLike | None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    candidate = Path.cwd() / DEFAULT_CONFIG_NAME
    return candidate if candidate.exists() else None


def load_config(explicit: str | os.PathLike | None = None, *, store_override: str | None = None,
                required: bool = True) -> Config:
    """Load and validate the configuration. Without a file and `required=False`, a default config
    whose store is $ONCALL_AI_STORE or ./oncall-ai.db."""
    path = find_config_path(explicit)
    if path is None:
        if required and not store_override and not os.environ.get("ONCALL_AI_STORE"):
            raise ConfigError(
                f"no configuration found: no --config, no ${CONFIG_ENV}, and no ./{DEFAULT_CONFIG_NAME}",
                hint="run `oncall-ai demo` for a sandbox with a config, or copy config.example.yaml",
            )
        store = store_override or os.environ.get("ONCALL_AI_STORE") or "oncall-ai.db"
        return Config(path=None, base_dir=Path.cwd(), store=_resolve_store(store, Path.cwd()))
    if not path.exists():
        raise ConfigError(f"{path}: configuration file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a configuration file")
    try:
        import yaml

        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the configuration ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys (store:, features:, ...)")
    return parse_config(data, path=path.resolve(), store_override=store_override)


def parse_config(data: dict, *, path: Path | None, store_override: str | None = None) -> Config:
    name = str(path) if path else "config"
    base = path.parent if path else Path.cwd()
    v = _Validator(name)
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            v.fail(str(key), "unknown key" + _did_you_mean(str(key), TOP_LEVEL_KEYS))

    # --store and $ONCALL_AI_STORE are typed where the command runs: relative to the working
    # folder. Only paths written in the file are relative to the file's folder.
    override = store_override or os.environ.get("ONCALL_AI_STORE")
    store = override or data.get("store") or "oncall-ai.db"
    if not isinstance(store, str):
        v.fail("store", "must be a path or URL string")
    store = _resolve_store(store, Path.cwd() if override else base)

    prompt_repo = v.path(data, "prompt_repo", base)

    metrics: dict[str, MetricConfig] = {}
    for mname, m in v.mapping(data, "metrics").items():
        where = f"metrics.{mname}"
        if m is None:
            m = {}
        if not isinstance(m, dict):
            v.fail(where, "must be a mapping like {source: judge, good: \">= 4\"}")
        for k in m:
            if k not in ("source", "good", "scale", "direction"):
                v.fail(f"{where}.{k}", "unknown key" + _did_you_mean(str(k), ("source", "good", "scale", "direction")))
        source = m.get("source", "judge")
        if source not in SOURCES:
            v.fail(f"{where}.source", f"{source!r} is not one of {', '.join(SOURCES)}")
        good = GoodRule.parse(m["good"], f"{name}: {where}.good") if "good" in m else None
        scale = None
        if "scale" in m:
            s = m["scale"]
            if (not isinstance(s, list) or len(s) != 2 or not all(_is_number(x) for x in s)
                    or not s[0] < s[1]):
                v.fail(f"{where}.scale", "must be [low, high] with low < high, e.g. [1, 5]")
            scale = (float(s[0]), float(s[1]))
        direction = m.get("direction")
        if direction is None:
            direction = "higher" if (good is None or good.higher_is_better) else "lower"
        elif direction not in ("higher", "lower"):
            v.fail(f"{where}.direction", "must be higher or lower (which way is better)")
        metrics[str(mname)] = MetricConfig(str(mname), source, good, scale, direction)

    features: dict[str, FeatureConfig] = {}
    for fname, f in v.mapping(data, "features").items():
        where = f"features.{fname}"
        if f is None:
            f = {}
        if not isinstance(f, dict):
            v.fail(where, "must be a mapping like {prompts: [...], model: ..., indexes: [...]}")
        for k in f:
            if k not in ("prompts", "model", "indexes"):
                v.fail(f"{where}.{k}", "unknown key" + _did_you_mean(str(k), ("prompts", "model", "indexes")))
        prompts = v.str_list(f, "prompts", where)
        model = f.get("model")
        if model is not None and not isinstance(model, str):
            v.fail(f"{where}.model", "must be a pin key (a string)")
        features[str(fname)] = FeatureConfig(str(fname), prompts, model, v.str_list(f, "indexes", where))

    repo_files = {}
    for key in ("pins", "indexes", "judges"):
        rf = data.get(key)
        if rf is None:
            repo_files[key] = None
            continue
        if not isinstance(rf, dict) or "repo" not in rf or "file" not in rf:
            v.fail(key, "must be {repo: PATH, file: FILE}")
        for k in rf:
            if k not in ("repo", "file"):
                v.fail(f"{key}.{k}", "unknown key")
        if not isinstance(rf["file"], str) or not isinstance(rf["repo"], str):
            v.fail(key, "repo and file must be strings")
        repo_files[key] = RepoFile(_resolve_path(rf["repo"], base), rf["file"])

    slices = v.str_list(data, "slices", "")

    slos = []
    raw_slos = data.get("slos") or []
    if not isinstance(raw_slos, list):
        v.fail("slos", "must be a list of SLOs")
    seen_names = set()
    for i, s in enumerate(raw_slos):
        where = f"slos[{i}]"
        if not isinstance(s, dict):
            v.fail(where, "must be a mapping {name, feature, metric, objective, window}")
        for k in ("name", "feature", "metric", "objective", "window"):
            if k not in s:
                v.fail(f"{where}.{k}", "is required")
        for k in s:
            if k not in SLO_KEYS:
                v.fail(f"{where}.{k}", "unknown key" + _did_you_mean(str(k), SLO_KEYS))
        if s["name"] in seen_names:
            v.fail(f"{where}.name", f"duplicate SLO name {s['name']!r}")
        seen_names.add(s["name"])
        obj = s["objective"]
        if not _is_number(obj) or not 0 < float(obj) < 1:
            v.fail(f"{where}.objective", f"{obj!r} must be a number strictly between 0 and 1 (0.99 for 99%)")
        try:
            window_ms = parse_duration_ms(s["window"])
        except ValueError as e:
            v.fail(f"{where}.window", str(e))
        from oncall_ai.analysis.slo import period_problem

        problem = period_problem(window_ms)
        if problem:
            v.fail(f"{where}.window", problem)
        if str(s["feature"]) not in features:
            v.fail(f"{where}.feature", f"unknown feature {s['feature']!r}: add it under `features:`"
                   + (f" (known: {', '.join(features)})" if features else ""))
        slo_metric = metrics.get(str(s["metric"]))
        if slo_metric is None:
            v.fail(f"{where}.metric", f"unknown metric {s['metric']!r}: add it under `metrics:` with a good rule"
                   + (f" (known: {', '.join(metrics)})" if metrics else ""))
        if slo_metric.good is None:
            v.fail(f"{where}.metric", f"metric {s['metric']!r} has no `good` rule (metrics.{s['metric']}.good), "
                   "so its events cannot be counted good or bad")
        where_filter = s.get("where") or {}
        if not isinstance(where_filter, dict):
            v.fail(f"{where}.where", "must be a mapping of slice key -> value")
        if slices:  # a misspelt key would match no event: the SLO would sit at UNKNOWN forever
            allowed = (*slices, "source", "model_id", "prompt_version", "index_version", "judge_id")
            for k in where_filter:
                if str(k) not in allowed:
                    v.fail(f"{where}.where.{k}", "is not a slice key declared under `slices:`"
                           + _did_you_mean(str(k), allowed))
        min_events = s.get("min_events", 0)
        if not isinstance(min_events, int) or isinstance(min_events, bool) or min_events < 0:
            v.fail(f"{where}.min_events", "must be a non-negative whole number")
        severity = s.get("severity", "page")
        if severity not in SLO_SEVERITIES:
            v.fail(f"{where}.severity", f"{severity!r} is not one of {', '.join(SLO_SEVERITIES)} "
                   "(the most a burn of this SLO may raise)")
        sampled = s.get("sampled")
        if sampled is not None and not isinstance(sampled, bool):
            v.fail(f"{where}.sampled", "must be true or false")
        slos.append(SLOConfig(
            name=str(s["name"]), feature=str(s["feature"]), metric=str(s["metric"]),
            objective=float(obj), window_ms=window_ms,
            where=tuple(sorted((str(k), str(val)) for k, val in where_filter.items())),
            min_events=min_events, severity=severity, sampled=sampled,
            notify=_notify_routes(v, s.get("notify"), f"{where}.notify") if "notify" in s else None,
            description=str(s.get("description") or ""), raw=dict(s)))

    calibration = v.path(data, "calibration", base)
    for key in EXTENSION_SECTIONS:
        if key in data and data[key] is not None and not isinstance(data[key], dict):
            v.fail(key, "must be a mapping")

    return Config(
        path=path, base_dir=base, store=store, prompt_repo=prompt_repo, features=features,
        pins=repo_files["pins"], indexes=repo_files["indexes"], judges=repo_files["judges"],
        metrics=metrics, slices=slices, slos=tuple(slos), calibration=calibration, raw=data)


SLO_KEYS = ("name", "feature", "metric", "objective", "window", "where", "min_events", "severity",
            "sampled", "notify", "description")
SLO_SEVERITIES = ("page", "ticket")
NOTIFY_TARGETS = ("slack", "pagerduty")


def _notify_routes(v: _Validator, value: Any, where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`notify: [slack]` (every state) or `notify: {page: [pagerduty, slack], ticket: [slack]}`."""
    if isinstance(value, str):
        value = [value]
    if value is None:
        value = []
    if isinstance(value, list):
        for i, t in enumerate(value):
            if t not in NOTIFY_TARGETS:
                v.fail(f"{where}[{i}]", f"{t!r} is not a target" + _did_you_mean(str(t), NOTIFY_TARGETS))
        value = {sev: value for sev in SLO_SEVERITIES}
    if not isinstance(value, dict):
        v.fail(where, "must be a list of targets (slack, pagerduty) or {page: [...], ticket: [...]}")
    routes = []
    for sev, targets in value.items():
        if sev not in SLO_SEVERITIES:
            v.fail(f"{where}.{sev}", "unknown state" + _did_you_mean(str(sev), SLO_SEVERITIES))
        if isinstance(targets, str):
            targets = [targets]
        if targets is None:
            targets = []
        if not isinstance(targets, list):
            v.fail(f"{where}.{sev}", "must be a list of targets (slack, pagerduty)")
        for i, t in enumerate(targets):
            if t not in NOTIFY_TARGETS:
                v.fail(f"{where}.{sev}[{i}]", f"{t!r} is not a target" + _did_you_mean(str(t), NOTIFY_TARGETS))
        routes.append((str(sev), tuple(targets)))
    return tuple(sorted(routes))


class _Validator:
    def __init__(self, name: str):
        self.name = name

    def fail(self, key: str, message: str):
        raise ConfigError(f"{self.name}: {key}: {message}" if key else f"{self.name}: {message}")

    def mapping(self, data: dict, key: str) -> dict:
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(key, "must be a mapping")
        return value

    def str_list(self, data: dict, key: str, where: str) -> tuple[str, ...]:
        full = f"{where}.{key}" if where else key
        value = data.get(key)
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            self.fail(full, "must be a list of strings")
        return tuple(value)

    def path(self, data: dict, key: str, base: Path) -> Path | None:
        value = data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(key, "must be a path string")
        return _resolve_path(value, base)


def _resolve_path(value: str, base: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base / p)


def _resolve_store(value: str, base: Path) -> str:
    """Paths and sqlite:/// URLs become absolute SQLite paths; clickhouse:// URLs pass through."""
    if value.startswith(("clickhouse://", "clickhouses://", "http://", "https://")):
        return value
    if value.startswith("sqlite:///"):
        value = value[len("sqlite:///"):]
        if value.startswith("/"):
            return value
    elif "://" in value:
        raise ConfigError(f"store: unsupported URL {value!r}; use a path, sqlite:///path or clickhouse://host:8123/db")
    return str(_resolve_path(value, base))


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _did_you_mean(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(options)})"
