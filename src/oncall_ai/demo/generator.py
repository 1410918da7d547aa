"""The demo sandbox generator: a week of realistic eval-on-traffic data with one planted incident
and its ground truth. Pure generation: writes files, never touches a store (see `build_sandbox`
in `oncall_ai.demo` for generate + ingest).

Sandbox layout (everything relative to the sandbox folder):

    oncall-ai.yaml        the config (CONTRACT.md section 2); `store: oncall-ai.db` (or the store
                          URL given to generate_sandbox, e.g. clickhouse://host:8123/db)
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

Traffic (model.py has the numbers): three features, summarizer (judge metric helpfulness, check
schema_valid on every request, user thumbs_down), support (helpfulness, thumbs_down; retrieves from
index kb-docs) and search (relevance, thumbs_down; kb-docs). Volume follows a daily sinusoid and a
weekday effect; the language mix moves with the time of day and the persona mix on weekends;
quality differs per slice (language=ja and de, shape=long_doc, persona=free are weaker); judges
score 10% of requests (`sample_rate: 0.1`) and a quarter of users leave feedback. Events of one
request share `request_id`; judge events carry short `input`/`output` texts; versions follow the
repos with deploy delays of a few minutes; on some seeds part or all of the traffic is untagged.
The search team's exporter writes `ts` as epoch seconds, the others as RFC 3339.

Modules: plan.py decides what happens (commits, recorded changes, the incident), events.py writes
the events, gitrepo.py the repos, content.py holds the texts; this module renders a plan into a
sandbox and writes the ground truth.

Everything is a function of (scenario, seed, now_ms, days, scale): the same inputs give
byte-identical files and identical commit ids.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from oncall_ai.demo import SCENARIO_KINDS, SCENARIOS, content
from oncall_ai.demo.events import EventWriter
from oncall_ai.demo.gitrepo import CommitSpec, write_repo
from oncall_ai.demo.model import (  # noqa: F401 - re-exported for tests and callers
    CHECK_METRIC,
    DAY,
    FEATURE_INDEX,
    FEATURES,
    HOUR,
    JUDGE_BASE_BIAS,
    JUDGE_METRIC,
    LANGS,
    MIN,
    N_CELLS,
    PIN_KEY,
    SCHEMA_FAIL,
    SCHEMA_FAIL_SHAPE,
    cell_slices,
    expected_good,
    expected_score,
    expected_thumbs,
    mean_quality,
    typical_mix,
)
from oncall_ai.demo.plan import PlannedCommit, Planner, Timeline, utc_date
from oncall_ai.errors import UsageError
from oncall_ai.timeutil import format_time

DEFAULT_STORE = "oncall-ai.db"  # the sandbox's own SQLite file, relative to the sandbox

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
    store_path: Path | None  # the sandbox's own SQLite file; None when `store` names another store
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
    store: str = DEFAULT_STORE  # `store:` in the config: a path relative to the sandbox, or a URL


# ---------------------------------------------------------------------------------------------
# Rendering the repos
# ---------------------------------------------------------------------------------------------

def _render_repo(specs: list[content.FileSpec], commits: list[PlannedCommit]) -> list[CommitSpec]:
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
# Calibration set and runs
# ---------------------------------------------------------------------------------------------

def _calibration(planner: Planner, judge_changes: dict[str, list[tuple[int, str, float]]]) -> tuple[list[dict], list[dict]]:
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
                          "output": content.output_text(f, human, i, lang), "human_score": human,
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
            run_id = f"cal-{metric}-{utc_date(t, '%Y%m%dT%H%M')}"
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
                runs.append({"run_id": run_id, "ts": format_time(t), "judge_id": judge_id, "item_id": item["id"],
                             "score": score})
    runs.sort(key=lambda r: (r["ts"], r["run_id"], r["item_id"]))
    return items, runs


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------

def _slo_objective(bad_share: float, budget_use: float = 0.8) -> float:
    """An objective the ordinary traffic meets using about `budget_use` of its error budget."""
    return math.floor((1.0 - bad_share / budget_use) * 100) / 100


def _store_line(store: str) -> str:
    if store == DEFAULT_STORE:
        return f"store: {store}"
    return f"store: {orjson.dumps(store).decode()}"


def _config_text(scenario: str, seed: int, store: str = DEFAULT_STORE) -> str:
    mix = typical_mix("summarizer")
    mu = mean_quality("summarizer")
    good = sum(w * expected_good(m + JUDGE_BASE_BIAS) for w, m in zip(mix, mu, strict=True))
    schema_bad = sum(w * SCHEMA_FAIL * SCHEMA_FAIL_SHAPE[c % 3] for c, w in enumerate(mix))
    mix_s, mu_s = typical_mix("support"), mean_quality("support")
    thumbs = sum(w * expected_thumbs("support", m) for w, m in zip(mix_s, mu_s, strict=True))
    return f"""# oncall-ai demo sandbox: scenario {scenario}, seed {seed}. Built by `oncall-ai demo`.
# Every path is relative to this file. The answer key is ground_truth.json (spoiler).
{_store_line(store)}
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


def _readme_text(scenario: str, seed: int, now_ms: int, store: str = DEFAULT_STORE) -> str:
    return f"""# oncall-ai demo sandbox

Scenario `{scenario}` (seed {seed}), generated for {format_time(now_ms)}: {SCENARIOS[scenario]}.

    oncall-ai.yaml          configuration (store: {store})
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


def is_sandbox(dir: Path) -> bool:
    """Does `dir` hold a sandbox this generator wrote (its answer key or its config header)?"""
    truth, config = Path(dir) / "ground_truth.json", Path(dir) / "oncall-ai.yaml"
    try:
        if truth.is_file() and orjson.loads(truth.read_bytes()).get("scenario") in SCENARIOS:
            return True
        if config.is_file():
            with open(config, encoding="utf-8", errors="replace") as fh:
                return fh.readline().startswith("# oncall-ai demo sandbox")
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return False
    return False


def clear_sandbox(dir: Path) -> list[str]:
    """Remove a previous sandbox's entries from `dir` (only the names in SANDBOX_ENTRIES, and only
    when `dir` holds a sandbox: a user's own README.md or prompts/ is never touched)."""
    import shutil

    removed = existing_entries(dir)
    if removed and not is_sandbox(dir):
        raise UsageError(f"{dir} holds {', '.join(removed)} but is not a demo sandbox; nothing was removed",
                         hint="build the sandbox in an empty folder")
    for name in removed:
        p = Path(dir) / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
    return removed


def generate_sandbox(dir: Path, *, scenario: str = "prompt_change", seed: int = 1, now_ms: int,
                     days: int = 7, scale: float = 1.0, overwrite: bool = False,
                     store: str | None = None) -> SandboxInfo:
    """Write a sandbox for `scenario` into `dir` (created if missing). A previous sandbox there is
    an error unless `overwrite` (then its entries are removed first; other files are left alone).
    `store` is what the config's `store:` says (default: oncall-ai.db in the sandbox; a
    clickhouse:// URL puts the sandbox's events in ClickHouse). Deterministic in (scenario, seed,
    now_ms, days, scale)."""
    store = store or DEFAULT_STORE
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
    planner = Planner(scenario, seed, now_ms, days)
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
    versions: dict[str, dict[str, Timeline]] = {}
    for f in FEATURES:
        files = set(content.FEATURE_PROMPT_FILES[f])
        pv = [(c.live_ms, c.sha) for c in prompt_commits if c.role == "initial" or files & set(c.touched)]
        pin_slot = f"models.yaml:pin_{PIN_KEY[f]}"
        pin_changes = [(c.live_ms, c.slots[pin_slot]) for c in platform_commits if pin_slot in c.slots]
        if f == planner.alias_feature:
            model = Timeline(planner.served_initial[f], planner.alias_timeline)
        else:
            model = Timeline(planner.served_initial[f], pin_changes)
        tl = {"model_id": model, "prompt_version": Timeline(pv[0][1], pv[1:])}
        if FEATURE_INDEX[f]:
            kb = [(c.live_ms, c.slots["indexes.yaml:kb_version"]) for c in platform_commits
                  if "indexes.yaml:kb_version" in c.slots]
            tl["index_version"] = Timeline(planner.kb_initial, kb + planner.kb_recorded)
        versions[f] = tl
    judges: dict[str, Timeline] = {}
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
        judges[metric] = Timeline((changes[0][1], changes[0][2]), [(t, (j, b)) for t, j, b in changes[1:]])

    # -- events -------------------------------------------------------------------------------
    t = time.perf_counter()
    events_dir = dir / "events"
    events_dir.mkdir(exist_ok=True)
    for old in events_dir.glob("*.jsonl.gz"):
        old.unlink()
    writer = EventWriter(planner, events_dir, scale, versions, judges)
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
    (dir / "oncall-ai.yaml").write_text(_config_text(scenario, seed, store))
    (dir / "README.md").write_text(_readme_text(scenario, seed, now_ms, store))
    truth = _ground_truth(planner, repos, judge_changes)
    (dir / "ground_truth.json").write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2) + b"\n")
    timings["files"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    return SandboxInfo(
        dir=dir, scenario=scenario, seed=seed, now_ms=now_ms, days=days, scale=scale,
        config_path=dir / "oncall-ai.yaml", store_path=dir / DEFAULT_STORE if store == DEFAULT_STORE else None,
        store=store, event_files=writer.files,
        n_events=writer.n_events, n_requests=writer.n_requests, ground_truth=truth,
        prompt_repo=dir / "prompts", platform_repo=dir / "platform", changes_path=dir / "changes.jsonl",
        calibration_set=cal_dir / "set.jsonl", calibration_runs=cal_dir / "runs.jsonl",
        n_prompt_commits=len(prompt_commits), n_platform_commits=len(platform_commits),
        n_recorded_changes=len(planner.recorded), n_calibration_items=len(items),
        n_calibration_scores=len(runs), seconds=timings)


def _ground_truth(planner: Planner, repos: dict[str, list[PlannedCommit]], judge_changes: dict) -> dict:
    inc = planner.incident
    kind = SCENARIO_KINDS[planner.scenario]
    truth = {"scenario": planner.scenario, "seed": planner.seed, "now": format_time(planner.now)}
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
        "onset": format_time(inc.onset_ms) if kind is not None else None,
        "change_id": change_id,
        "target": base.get("target"),
        "slices": base.get("slices", []),
        "effect": round(primary["effects"][metric], 4) if primary else None,
        "harmless_changes": [],
    })
    changes = []
    for repo, commits in repos.items():
        for c in commits:
            changes.append({"id": c.sha, "source": f"git:{repo}", "at": format_time(c.at_ms), "live": format_time(c.live_ms),
                            "by": c.author.name, "summary": c.message, "paths": list(c.touched),
                            "role": c.role})
    for r in planner.recorded:
        changes.append({"id": r["id"], "source": "recorded", "at": r["ts"], "live": r["ts"], "by": r["by"],
                        "summary": r["summary"], "paths": [], "role": "incident" if r["id"] == change_id else "harmless"})
    changes.sort(key=lambda c: (c["at"], c["id"]))
    truth["harmless_changes"] = [c["id"] for c in changes if c["id"] != change_id]
    # Details beyond the brief's keys, for tests and for people reading the answer key.
    truth["affected"] = affected
    truth["ramp"] = [{"at": format_time(t), "share": s} for t, s in inc.ramp] if inc.ramp else None
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
    truth["window"] = {"start": format_time(planner.start), "end": format_time(planner.now)}
    truth["changes"] = changes
    return truth


def _slice_share(feature: str, key: str, value: str, mult: float) -> float:
    mix = typical_mix(feature, {(key, value): mult})
    return sum(w for c, w in enumerate(mix) if cell_slices(c)[key] == value)


def _expected_effects(planner: Planner, feature: str) -> dict:
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
    p = Planner(scenario, seed, int(now_ms), days)
    p.plan()
    inc = p.incident
    kind = SCENARIO_KINDS[scenario]
    return {"scenario": scenario, "seed": seed, "kind": kind, "feature": p.truth.get("feature"),
            "affected_features": list(inc.features), "target": p.truth.get("target"),
            "slices": p.truth.get("slices", []), "onset_ms": inc.onset_ms if kind else None,
            "ramp": bool(inc.ramp), "tagging": p.tagging, "alias_feature": p.alias_feature,
            "judge_change_via": (None if kind != "judge_drift" else p.incident_commit.repo)}
