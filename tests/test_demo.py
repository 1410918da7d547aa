"""The demo sandbox generator: determinism, ground truth consistent with the data (computed here,
independently, from the event files and the repos), repos, calibration, the CLI, and ingest."""

from __future__ import annotations

import gzip
import json
import subprocess
from collections import defaultdict
from fnmatch import fnmatch
from pathlib import Path

import orjson
import pytest

from oncall_ai.demo import SCENARIO_KINDS, SCENARIOS, build_sandbox, generate_sandbox
from oncall_ai.demo.generator import plan_preview
from oncall_ai.demo.model import FEATURES, JUDGE_METRIC
from oncall_ai.timeutil import format_time, parse_time_ms

NOW = parse_time_ms("2026-03-12T09:00:00Z")
HOUR = 3_600_000
INCIDENT_SCENARIOS = [s for s in SCENARIOS if s != "none"]


# --- helpers ------------------------------------------------------------------------------------

def read_events(d: Path) -> list[dict]:
    out = []
    for p in sorted((d / "events").glob("*.jsonl.gz")):
        with gzip.open(p) as fh:
            out.extend(orjson.loads(line) for line in fh)
    return out


def ts_of(e: dict) -> int:
    return parse_time_ms(e["ts"])


def in_slices(e: dict, slices: list[dict]) -> bool:
    return not slices or any(all(e["slice"].get(k) == v for k, v in s.items()) for s in slices)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs)


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory):
    """Every scenario for one seed at 30% volume, and `none` for the same seed (the counterfactual:
    the generator draws ordinary traffic from the seed alone, so a scenario and `none` share every
    request up to where the scenario changes it)."""
    root = tmp_path_factory.mktemp("sandboxes")
    cache: dict[tuple[str, int], tuple] = {}

    def get(scenario: str, seed: int = 11):
        key = (scenario, seed)
        if key not in cache:
            info = generate_sandbox(root / f"{scenario}-{seed}", scenario=scenario, seed=seed, now_ms=NOW, scale=0.3)
            cache[key] = (info, read_events(info.dir))
        return cache[key]

    return get


# --- scenarios and determinism ---------------------------------------------------------------------

def test_scenario_list_covers_every_kind_triage_must_handle():
    assert set(SCENARIOS) == {"prompt_change", "prompt_change_slice", "model_change", "provider_model_change",
                              "index_change", "index_change_recorded", "judge_drift", "input_shift", "none"}
    assert set(SCENARIO_KINDS) == set(SCENARIOS)
    assert {k for k in SCENARIO_KINDS.values() if k} == {
        "prompt_change", "model_change", "provider_model_change", "index_change", "judge_drift", "input_shift"}


def test_same_inputs_give_identical_files_and_commits(tmp_path):
    a = generate_sandbox(tmp_path / "a", scenario="model_change", seed=5, now_ms=NOW, scale=0.2)
    b = generate_sandbox(tmp_path / "b", scenario="model_change", seed=5, now_ms=NOW, scale=0.2)
    files = sorted(p.relative_to(a.dir) for p in a.dir.rglob("*") if p.is_file() and ".git" not in p.parts)
    assert files == sorted(p.relative_to(b.dir) for p in b.dir.rglob("*") if p.is_file() and ".git" not in p.parts)
    assert any(str(f).startswith("events/") for f in files)
    for f in files:
        assert (a.dir / f).read_bytes() == (b.dir / f).read_bytes(), f
    for repo in ("prompts", "platform"):
        assert git(a.dir / repo, "log", "--format=%H %an %ad") == git(b.dir / repo, "log", "--format=%H %an %ad")
    c = generate_sandbox(tmp_path / "c", scenario="model_change", seed=6, now_ms=NOW, scale=0.2)
    assert (c.dir / "events").iterdir() and read_events(c.dir) != read_events(a.dir)


def test_refuses_to_overwrite_a_sandbox_unless_asked(tmp_path):
    from oncall_ai.errors import UsageError

    generate_sandbox(tmp_path / "s", scenario="none", seed=1, now_ms=NOW, scale=0.1)
    (tmp_path / "s" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="already holds a sandbox"):
        generate_sandbox(tmp_path / "s", scenario="none", seed=2, now_ms=NOW, scale=0.1)
    info = generate_sandbox(tmp_path / "s", scenario="none", seed=2, now_ms=NOW, scale=0.1, overwrite=True)
    assert info.ground_truth["seed"] == 2
    assert (tmp_path / "s" / "notes.txt").read_text() == "mine"  # only the sandbox's own files are replaced


@pytest.mark.parametrize("bad", [{"scenario": "nope"}, {"days": 1}, {"scale": 0}])
def test_bad_arguments_are_usage_errors(tmp_path, bad):
    from oncall_ai.errors import UsageError

    with pytest.raises(UsageError):
        generate_sandbox(tmp_path / "s", now_ms=NOW, **{"scenario": "none", **bad})


# --- the events ----------------------------------------------------------------------------------

def test_events_follow_the_contract_and_the_traffic_model(sandboxes):
    info, events = sandboxes("none")
    assert len(events) == info.n_events > 50_000
    start = NOW - 7 * 24 * HOUR
    per_feature_metric = defaultdict(int)
    requests = defaultdict(set)
    for e in events[:: max(1, len(events) // 20_000)]:
        assert {"ts", "id", "feature", "metric", "value", "source", "request_id", "slice"} <= set(e)
        assert start <= ts_of(e) < NOW
        assert set(e["slice"]) == {"persona", "language", "shape"}
        per_feature_metric[(e["feature"], e["metric"])] += 1
        if e["source"] == "judge":
            assert e["sample_rate"] == 0.1 and e["judge_id"] and e["input"] and e["output"]
            assert e["value"] in (1, 2, 3, 4, 5)
        elif e["metric"] == "schema_valid":
            assert e["source"] == "check" and isinstance(e["value"], bool)
        else:
            assert (e["metric"], e["source"], e["value"] in (0, 1)) == ("thumbs_down", "user", True)
    assert set(per_feature_metric) == {("summarizer", "helpfulness"), ("summarizer", "schema_valid"),
                                       ("summarizer", "thumbs_down"), ("support", "helpfulness"),
                                       ("support", "thumbs_down"), ("search", "relevance"), ("search", "thumbs_down")}
    for e in events:
        requests[e["request_id"]].add(e["metric"])
    assert sum(len(m) >= 2 for m in requests.values()) > len(requests) / 10  # request_id joins a request's metrics
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids)
    assert [ts_of(e) for e in events[:5000]] == sorted(ts_of(e) for e in events[:5000])

    # Every request of summarizer carries the check; judges see ~10% of requests, users rate ~25%.
    summ = [e for e in events if e["feature"] == "summarizer"]
    checks = sum(e["metric"] == "schema_valid" for e in summ)
    judged = sum(e["metric"] == "helpfulness" for e in summ)
    rated = sum(e["metric"] == "thumbs_down" for e in summ)
    assert 0.08 < judged / checks < 0.12 and 0.22 < rated / checks < 0.28

    # Diurnal volume: the busiest hour of day has well over twice the quietest one.
    by_hour = defaultdict(int)
    for e in summ:
        if e["metric"] == "schema_valid":
            by_hour[(ts_of(e) // HOUR) % 24] += 1
    assert max(by_hour.values()) > 2 * min(by_hour.values())
    # Per-slice quality differences: ja and long documents are weaker than en and chat.
    judge = [e for e in events if e["source"] == "judge"]
    lang = {v: mean(e["value"] for e in judge if e["slice"]["language"] == v) for v in ("en", "ja")}
    shape = {v: mean(e["value"] for e in judge if e["slice"]["shape"] == v) for v in ("chat", "long_doc")}
    assert lang["ja"] < lang["en"] - 0.2 and shape["long_doc"] < shape["chat"] - 0.2


def test_versions_follow_the_repos(sandboxes):
    info, events = sandboxes("prompt_change")
    gt = info.ground_truth
    f, onset = gt["feature"], parse_time_ms(gt["onset"])
    chars = gt["tagging"]["prompt_version_chars"]
    tagged = [e for e in events if e["feature"] == f and "prompt_version" in e]
    if gt["tagging"]["profile"] == "none":
        assert not tagged
        return
    before = {e["prompt_version"] for e in tagged if ts_of(e) < onset}
    after = {e["prompt_version"] for e in tagged if ts_of(e) >= onset}
    assert gt["change_id"][:chars] in after and gt["change_id"][:chars] not in before
    shas = set(git(info.prompt_repo, "log", "--format=%H").split())
    assert {v for v in before | after} <= {s[:chars] for s in shas}


def test_some_seeds_leave_events_untagged(tmp_path):
    seed = next(s for s in range(1, 200) if plan_preview("prompt_change", s, NOW)["tagging"]["profile"] == "partial")
    info = generate_sandbox(tmp_path / "s", scenario="prompt_change", seed=seed, now_ms=NOW, scale=0.3)
    (feature, share), = info.ground_truth["tagging"]["untagged"].items()
    events = [e for e in read_events(info.dir) if e["feature"] == feature]
    untagged = sum("prompt_version" not in e for e in events) / len(events)
    assert abs(untagged - share) < 0.05
    others = [e for e in read_events(info.dir) if e["feature"] != feature]
    assert all("prompt_version" in e for e in others)


# --- ground truth against the data ------------------------------------------------------------------

@pytest.mark.parametrize("scenario", SCENARIOS)
def test_ground_truth_is_complete_and_points_at_real_changes(sandboxes, scenario):
    info, _ = sandboxes(scenario)
    gt = info.ground_truth
    assert gt == json.loads((info.dir / "ground_truth.json").read_text())
    for key in ("scenario", "seed", "now", "kind", "feature", "metric", "affected_features", "onset", "change_id",
                "target", "slices", "effect", "harmless_changes"):
        assert key in gt
    assert (gt["scenario"], gt["seed"], gt["now"], gt["kind"]) == (scenario, 11, format_time(NOW), SCENARIO_KINDS[scenario])
    prompt_shas = git(info.prompt_repo, "log", "--format=%H").split()
    platform_shas = git(info.platform_repo, "log", "--format=%H").split()
    recorded = {r["id"]: r for r in read_jsonl(info.changes_path)}
    every_change = set(prompt_shas) | set(platform_shas) | set(recorded)
    assert set(gt["harmless_changes"]) | ({gt["change_id"]} - {None}) == every_change
    assert gt["change_id"] not in gt["harmless_changes"]
    assert any(r["kind"] in ("config", "other", "traffic") for r in recorded.values())  # an unrelated recorded change
    if gt["kind"] is None:
        assert gt["feature"] is gt["onset"] is gt["change_id"] is gt["target"] is gt["effect"] is None
        return
    onset = parse_time_ms(gt["onset"])
    assert NOW - 21 * HOUR <= onset <= NOW - 2 * HOUR
    assert gt["metric"] == JUDGE_METRIC[gt["feature"]] and gt["feature"] in gt["affected_features"]
    assert gt["effect"] < -0.09
    kind, target, cid = gt["kind"], gt["target"], gt["change_id"]
    if kind == "prompt_change":
        assert cid in prompt_shas and target in git(info.prompt_repo, "show", "--name-only", "--format=", cid).split()
        assert fnmatch(target, f"{gt['feature']}/**")
    elif kind == "model_change":
        assert cid in platform_shas
        diff = git(info.platform_repo, "show", "--format=", cid)
        assert f"-{target}: " in diff and f"+{target}: {gt['model']['to']}" in diff
    elif kind == "provider_model_change":
        assert cid is None and target == gt["model"]["to"]
        models = (info.platform_repo / "models.yaml").read_text()
        assert f"{gt['alias_pin']['pin']}: {gt['alias_pin']['alias']}" in models  # a floating alias, never changed
        log = git(info.platform_repo, "log", "--format=%H", "-L", f"/^{gt['alias_pin']['pin']}:/,+1:models.yaml")
        assert len([x for x in log.split() if len(x) == 40]) == 1  # only the initial commit touched that line
    elif kind == "index_change":
        assert target == "kb-docs" and gt["slices"] == [{"shape": "qa"}]
        assert set(gt["affected_features"]) == {"support", "search"}
        if scenario == "index_change":
            assert cid in platform_shas and "kb-docs" in git(info.platform_repo, "show", "--format=%s", cid)
        else:
            assert recorded[cid]["kind"] == "index" and recorded[cid]["target"] == "kb-docs"
            assert recorded[cid]["rollback"] and parse_time_ms(recorded[cid]["ts"]) == onset
            assert "version" in git(info.platform_repo, "log", "-p", "indexes.yaml")  # no planted bump in git
            assert recorded[cid]["to"] not in (info.platform_repo / "indexes.yaml").read_text()
    elif kind == "judge_drift":
        assert cid in prompt_shas + platform_shas and target in ("helpfulness", "relevance")
        assert set(gt["affected_features"]) == {f for f in FEATURES if JUDGE_METRIC[f] == target}
    elif kind == "input_shift":
        assert cid is None and target == "=".join(*[s.items() for s in gt["slices"]][0])


PAIRED_SCENARIOS = [s for s in INCIDENT_SCENARIOS if s != "input_shift"]


@pytest.fixture(scope="module")
def paired(sandboxes):
    """Pair every event with the same request in the `none` sandbox of the same seed (the generator
    draws ordinary traffic from the seed alone). Returns, per scenario, the number of events that
    changed outside the incident's footprint and the value changes inside it, per (feature, metric),
    once all traffic is on the new version."""
    cache = {}

    def get(scenario):
        if scenario in cache:
            return cache[scenario]
        info, events = sandboxes(scenario)
        _, base_events = sandboxes("none")
        gt = info.ground_truth
        base = {e["id"]: e for e in base_events}
        onset = parse_time_ms(gt["onset"])
        full = parse_time_ms(gt["ramp"][-1]["at"]) if gt["ramp"] else onset  # after a canary ramp
        judge_metric = gt["target"] if gt["kind"] == "judge_drift" else None
        deltas = defaultdict(list)
        outside_changed = 0
        for e in events:
            b = base[e["id"]]
            assert (b["ts"], b["slice"], b["metric"]) == (e["ts"], e["slice"], e["metric"])
            d = float(e["value"]) - float(b["value"])
            t = ts_of(e)
            inside = (e["feature"] in gt["affected_features"] and t >= onset and in_slices(e, gt["slices"])
                      and (judge_metric is None or e["metric"] == judge_metric))
            if not inside:
                outside_changed += d != 0
            elif t >= full:
                deltas[(e["feature"], e["metric"])].append(d)
        cache[scenario] = (gt, outside_changed, deltas)
        return cache[scenario]

    return get


@pytest.mark.parametrize("scenario", PAIRED_SCENARIOS)
def test_planted_effect_matches_ground_truth_request_by_request(paired, scenario):
    """Outside the incident's footprint (other features, other slices, before the onset, user
    signals and checks for a judge change) every value is identical to the `none` sandbox; inside
    it, the mean change is the ground truth's effect for each metric."""
    gt, outside_changed, deltas = paired(scenario)
    assert outside_changed == 0
    for a in gt["affected"]:
        for metric, expected in a["effects"].items():
            got = deltas[(a["feature"], metric)]
            if expected == 0:
                assert not any(got), (a["feature"], metric)
                continue
            n = len(got)
            assert n >= 8, (a["feature"], metric, n)
            sd = max((sum(x * x for x in got) / n - mean(got) ** 2) ** 0.5, 0.3)  # floor: few events
            assert abs(mean(got) - expected) < 4 * sd / n ** 0.5 + 0.04, (a["feature"], metric, mean(got), expected, n)


def test_planted_effect_sizes_are_exact_over_all_scenarios(paired):
    """One scenario has too few judged events to pin an effect down; pooled over every scenario the
    observed change of the judge metric must match the ground truth's effect (a generator whose
    effects are 20% off what ground_truth.json says fails here; the expectation formulas
    themselves are checked more tightly below)."""
    num = var = 0.0
    rel = []
    for scenario in PAIRED_SCENARIOS:
        gt, _, deltas = paired(scenario)
        for a in gt["affected"]:
            metric = JUDGE_METRIC[a["feature"]]
            got, expected = deltas[(a["feature"], metric)], a["effects"][metric]
            n = len(got)
            v = sum((x - expected) ** 2 for x in got) / n
            num += n * (mean(got) - expected)
            var += n * v
            rel.append(sum(got) / (n * expected))
    z = num / var ** 0.5
    assert abs(z) < 3, (z, rel)


@pytest.mark.parametrize("mu", [2.6, 3.4, 3.9, 4.3, 4.8])
def test_expected_values_in_the_ground_truth_match_the_scoring_model(mu):
    """expected_score / expected_good / expected_thumbs (used for `effect` in ground_truth.json)
    against a simulation of a judge scoring requests of quality h ~ N(mu, H_SD) with noise."""
    import math
    import random

    from oncall_ai.demo import model as g

    rng = random.Random(7)
    n = 100_000
    scores, thumbs = [], 0
    for _ in range(n):
        h = rng.gauss(mu, g.H_SD)
        scores.append(min(5, max(1, round(h + rng.gauss(0, g.JUDGE_SD) + 1e-9))))
        thumbs += rng.random() < 1 / (1 + math.exp(-(g.THUMBS_INTERCEPT["support"] - g.THUMBS_SLOPE * (h - 4))))
    assert abs(mean(scores) - g.expected_score(mu)) < 0.01
    assert abs(mean(s >= 4 for s in scores) - g.expected_good(mu)) < 0.006
    assert abs(thumbs / n - g.expected_thumbs("support", mu)) < 0.005


def test_input_shift_moves_the_mix_not_the_slices(sandboxes):
    info, events = sandboxes("input_shift")
    gt = info.ground_truth
    f, metric = gt["feature"], gt["metric"]
    (key, value), = gt["slices"][0].items()
    onset = parse_time_ms(gt["onset"])
    shift_end = onset + HOUR  # the shift ramps up within the hour
    # Compare the same hours of day: the window after the onset against the day before it.
    after = [e for e in events if e["feature"] == f and e["metric"] == metric and ts_of(e) >= shift_end]
    lo, hi = shift_end - 24 * HOUR, NOW - 24 * HOUR
    before = [e for e in events if e["feature"] == f and e["metric"] == metric and lo <= ts_of(e) < hi]
    share = lambda evs: mean(e["slice"][key] == value for e in evs)  # noqa: E731
    assert share(before) < gt["mix"]["share_before"] * 1.8
    assert share(after) > 2 * share(before) and abs(share(after) - gt["mix"]["share_after"]) < 0.12
    # Quality within the slice and outside it did not move (beyond noise) ...
    for inside in (True, False):
        xs = [e["value"] for e in after if (e["slice"][key] == value) == inside]
        ys = [e["value"] for e in before if (e["slice"][key] == value) == inside]
        se = (0.9 ** 2 / len(xs) + 0.9 ** 2 / len(ys)) ** 0.5
        assert abs(mean(xs) - mean(ys)) < 4 * se + 0.05
    # ... while the feature's mean dropped by about the planted mix effect.
    se = (0.9 ** 2 / len(after) + 0.9 ** 2 / len(before)) ** 0.5
    assert abs((mean(e["value"] for e in after) - mean(e["value"] for e in before)) - gt["effect"]) < 4 * se + 0.05
    # Other features are untouched: identical to the `none` sandbox of the same seed.
    _, base_events = sandboxes("none")
    others = sorted((e["id"], e["value"]) for e in events if e["feature"] != f)
    assert others == sorted((e["id"], e["value"]) for e in base_events if e["feature"] != f)


def test_model_change_with_a_canary_ramp_tags_the_served_model(tmp_path):
    seed = next(s for s in range(1, 200)
                if (p := plan_preview("model_change", s, NOW))["ramp"] and p["tagging"]["profile"] == "full")
    info = generate_sandbox(tmp_path / "s", scenario="model_change", seed=seed, now_ms=NOW, scale=0.3)
    gt = info.ground_truth
    ramp = [(parse_time_ms(r["at"]), r["share"]) for r in gt["ramp"]]
    events = [e for e in read_events(info.dir) if e["feature"] == gt["feature"]]
    for (t0, share), t1 in zip(ramp, [t for t, _ in ramp[1:]] + [NOW], strict=True):
        window = [e for e in events if t0 <= ts_of(e) < t1]
        got = mean(e["model_id"] == gt["model"]["to"] for e in window)
        assert abs(got - share) < 4 * (share * (1 - share) / len(window)) ** 0.5 + 0.01, (share, got, len(window))
    assert not any(e["model_id"] == gt["model"]["to"] for e in events if ts_of(e) < ramp[0][0])


# --- repos, config, calibration --------------------------------------------------------------------

@pytest.mark.parametrize("scenario", ["prompt_change", "judge_drift", "none"])
def test_repos_are_clean_dated_and_have_harmless_commits_around_the_onset(sandboxes, scenario):
    info, _ = sandboxes(scenario)
    gt = info.ground_truth
    for repo in (info.prompt_repo, info.platform_repo):
        assert git(repo, "status", "--porcelain") == ""
        assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
        dates = [int(x) * 1000 for x in git(repo, "log", "--reverse", "--format=%ct").split()]
        assert dates == sorted(dates) and dates[-1] < NOW and len(dates) >= 4
        assert len(set(git(repo, "log", "--format=%an").splitlines())) >= 2
    assert len(set(git(info.prompt_repo, "log", "--format=%an").splitlines())) >= 3
    assert {"summarizer/system.md", "summarizer/user.md", "support/system.md", "search/rerank.md",
            "judges/helpfulness.md", "judges/relevance.md"} <= set(git(info.prompt_repo, "ls-files").split())
    judges = (info.platform_repo / "judges.yaml").read_text()
    assert "prompt: judges/helpfulness.md" in judges and "prompt: judges/relevance.md" in judges
    if gt["kind"] is None:
        return
    onset = parse_time_ms(gt["onset"])
    if gt["change_id"] in git(info.prompt_repo, "log", "--format=%H").split():
        repo = info.prompt_repo
    else:
        repo = info.platform_repo
    committed = int(git(repo, "show", "-s", "--format=%ct", gt["change_id"])) * 1000
    assert onset - 15 * 60_000 <= committed <= onset  # live a few minutes after the commit
    # Harmless commits in the same feature's prompts, before and after the onset.
    times = [int(t) * 1000 for t in git(info.prompt_repo, "log", "--format=%ct", "--", f"{gt['feature']}/").split()]
    harmless = [t for t, sha in zip(times, git(info.prompt_repo, "log", "--format=%H", "--", f"{gt['feature']}/").split(),
                                     strict=True) if sha != gt["change_id"]]
    assert any(onset - 30 * HOUR < t < onset for t in harmless) and any(t > onset for t in harmless)


def test_config_is_valid_and_points_at_the_sandbox(sandboxes):
    from oncall_ai.config import load_config

    info, _ = sandboxes("none")
    cfg = load_config(info.config_path)
    assert Path(cfg.store) == info.store_path
    assert cfg.prompt_repo == info.prompt_repo and cfg.calibration == info.calibration_set
    assert set(cfg.features) == set(FEATURES) and cfg.features["support"].indexes == ("kb-docs",)
    assert cfg.pins.repo == info.platform_repo and (cfg.pins.repo / cfg.pins.file).exists()
    assert cfg.metrics["helpfulness"].scale == (1.0, 5.0) and cfg.metrics["thumbs_down"].source == "user"
    assert cfg.slices == ("persona", "language", "shape") and 2 <= len(cfg.slos) <= 3
    files = git(info.prompt_repo, "ls-files").split()
    for f in cfg.features.values():
        owned = [p for p in files if any(fnmatch(p, g) for g in f.prompts)]
        assert len(owned) >= 2
    # The ordinary week meets each SLO objective (with room to spare).
    _, events = sandboxes("none")
    for slo in cfg.slos:
        rule = cfg.metrics[slo.metric].good
        vals = [float(e["value"]) for e in events if e["feature"] == slo.feature and e["metric"] == slo.metric]
        good = mean(rule.is_good(v) for v in vals)
        assert good > slo.objective and (1 - good) < 0.9 * (1 - slo.objective)


@pytest.mark.parametrize("scenario", ["judge_drift", "prompt_change"])
def test_calibration_runs_show_bias_only_after_a_judge_change(sandboxes, scenario):
    info, _ = sandboxes(scenario)
    items = {r["id"]: r for r in read_jsonl(info.calibration_set)}
    for metric in ("helpfulness", "relevance"):
        n = sum(r["metric"] == metric for r in items.values())
        assert 80 <= n <= 150
    assert all({"id", "metric", "input", "output", "human_score"} <= set(r) for r in items.values())
    runs = defaultdict(list)
    meta = {}
    for r in read_jsonl(info.calibration_runs):
        assert set(r) == {"run_id", "ts", "judge_id", "item_id", "score"} and r["item_id"] in items
        meta[r["run_id"]] = (parse_time_ms(r["ts"]), r["judge_id"], items[r["item_id"]]["metric"])
        if r["score"] is not None:
            runs[r["run_id"]].append(r["score"] - items[r["item_id"]]["human_score"])
    assert len(meta) >= 2 * 6  # daily runs for both judged metrics
    gt = info.ground_truth
    drifted = gt["target"] if gt["kind"] == "judge_drift" else None
    for metric in ("helpfulness", "relevance"):
        series = sorted((meta[k][0], mean(v)) for k, v in runs.items() if meta[k][2] == metric)
        before = [b for t, b in series if drifted != metric or t < parse_time_ms(gt["onset"])]
        after = [b for t, b in series if drifted == metric and t >= parse_time_ms(gt["onset"])]
        assert all(abs(b) < 0.15 for b in before)
        if drifted == metric:
            assert after and all(b < mean(before) - 0.12 for b in after)


# --- generate + ingest, and the CLI --------------------------------------------------------------

def test_build_sandbox_ingests_events_changes_and_calibration_runs(tmp_path):
    from oncall_ai.config import load_config
    from oncall_ai.store import open_store

    info = build_sandbox(tmp_path / "s", "index_change_recorded", seed=2, now_ms=NOW, scale=0.2)
    assert info.ingested["events"] == info.n_events and info.ingested["duplicates"] == 0
    cfg = load_config(info.config_path)
    with open_store(cfg.store, config=cfg) as store:
        assert store.count_events() == info.n_events
        changes = {d.id: d.body for d in store.get_docs("change")}
        assert changes == {r["id"]: r for r in read_jsonl(info.changes_path)}
        assert info.ground_truth["change_id"] in changes
        runs = store.get_docs("judge_run")
        assert len(runs) == len({r["run_id"] for r in read_jsonl(info.calibration_runs)})
        assert len(store.get_docs("judge_run_item")) == info.n_calibration_scores


def _slice_seed(scenario="prompt_change_slice", slices=({"language": "de"},), hours_before=8):
    """A seed planting a drop in `slices` at least `hours_before` before NOW (enough judged events)."""
    return next(s for s in range(1, 300) if (p := plan_preview(scenario, s, NOW))["slices"] == list(slices)
                and p["onset_ms"] <= NOW - hours_before * HOUR)


def test_cli_demo_builds_a_sandbox_where_scores_show_the_planted_drop(tmp_path, run_cli):
    seed = _slice_seed()
    d = tmp_path / "sb"
    r = run_cli("demo", d, "--scenario", "prompt_change_slice", "--seed", seed, "--at", format_time(NOW), "--scale", "0.5")
    assert r.exit_code == 0, r.stderr
    assert f"cd {d}" in r.stdout and "oncall-ai triage --at" in r.stdout
    gt = json.loads((d / "ground_truth.json").read_text())
    assert gt["slices"] == [{"language": "de"}]
    r = run_cli("--config", d / "oncall-ai.yaml", "scores", "--feature", gt["feature"], "--metric", gt["metric"],
                "--at", format_time(NOW), "--since", gt["onset"], "--compare", "3d", "--by", "language", "--json")
    assert r.exit_code == 0, r.stderr
    rows = {row["slice"]["language"]: row for row in json.loads(r.stdout)["rows"]}
    se = {k: (row["ci"][1] - row["ci"][0]) / 3.92 for k, row in rows.items()}
    assert min(rows, key=lambda k: rows[k]["delta"]) == "de"
    assert abs(rows["de"]["delta"] - gt["effect"]) < 4 * se["de"] + 0.1
    assert all(abs(rows[k]["delta"]) < 4 * se[k] + 0.1 for k in rows if k != "de")


def test_cli_refuses_a_non_empty_folder_without_force(tmp_path, run_cli):
    d = tmp_path / "sb"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    args = ("demo", d, "--scenario", "none", "--at", format_time(NOW), "--scale", "0.1")
    r = run_cli(*args)
    assert r.exit_code == 2 and "not empty" in r.stderr and r.stdout == ""
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]
    r = run_cli(*args, "--force", "--no-ingest")
    assert r.exit_code == 0, r.stderr
    assert (d / "oncall-ai.yaml").exists() and (d / "notes.txt").read_text() == "mine"
    assert "oncall-ai ingest events/*.jsonl.gz" in r.stdout and not (d / "oncall-ai.db").exists()
    # --force replaces a previous sandbox ...
    r = run_cli(*args[:3], "prompt_change", *args[4:], "--force")
    assert r.exit_code == 0, r.stderr
    assert json.loads((d / "ground_truth.json").read_text())["scenario"] == "prompt_change"
    assert (d / "notes.txt").read_text() == "mine" and (d / "oncall-ai.db").exists()


def test_cli_force_never_deletes_a_folder_that_is_not_a_sandbox(tmp_path, run_cli):
    d = tmp_path / "project"
    (d / "prompts").mkdir(parents=True)
    (d / "prompts" / "system.md").write_text("my prompt")
    (d / "README.md").write_text("my project")
    r = run_cli("demo", d, "--scenario", "none", "--at", format_time(NOW), "--scale", "0.1", "--force")
    assert r.exit_code == 2 and "not a demo sandbox" in r.stderr
    assert (d / "README.md").read_text() == "my project" and (d / "prompts" / "system.md").exists()
    assert sorted(p.name for p in d.iterdir()) == ["README.md", "prompts"]


def test_cli_lists_scenarios_and_rejects_unknown_ones(tmp_path, run_cli):
    r = run_cli("demo", "--list-scenarios")
    assert r.exit_code == 0 and [line.split()[0] for line in r.stdout.splitlines()] == list(SCENARIOS)
    r = run_cli("demo", tmp_path / "x", "--scenario", "bogus")
    assert r.exit_code == 2 and "bogus" in r.stderr and not (tmp_path / "x").exists()
    (tmp_path / "file").write_text("")
    r = run_cli("demo", tmp_path / "file")
    assert r.exit_code == 2 and "not a folder" in r.stderr


def test_cli_run_without_triage_notes_the_skip(tmp_path, run_cli):
    import importlib.util

    r = run_cli("demo", tmp_path / "sb", "--scenario", "none", "--at", format_time(NOW), "--scale", "0.1", "--run")
    assert r.exit_code == 0, r.stderr
    if importlib.util.find_spec("oncall_ai.commands.triage") is None:
        assert "skipped --run" in r.stderr
    else:
        assert "$ oncall-ai triage" in r.stdout


def test_cli_folder_that_cannot_be_created_is_a_usage_error(tmp_path, run_cli):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    r = run_cli("demo", blocker / "sandbox")
    assert r.exit_code == 2 and "cannot create the folder" in r.stderr and "Traceback" not in r.stderr
    assert blocker.read_text() == "not a folder\n"


def test_build_sandbox_ingests_into_the_sandbox_store_whatever_the_working_folder(tmp_path, monkeypatch):
    """The sandbox config's `store: oncall-ai.db` is relative to the sandbox, not to where the
    build runs (an override resolved from the working folder once filled ./oncall-ai.db instead)."""
    from oncall_ai.demo import build_sandbox

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("ONCALL_AI_STORE", str(tmp_path / "not-this.db"))
    info = build_sandbox(tmp_path / "sb", "none", seed=4, now_ms=NOW, days=2, scale=0.05)
    assert info.ingested["events"] > 0 and info.ingested["changes"] > 0
    assert (tmp_path / "sb" / "oncall-ai.db").is_file()
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "not-this.db").exists()
