"""Triage on demo sandboxes with known ground truth: one sandbox per scenario kind (the full suite
with many seeds is bench/triage_scenarios.py). Checks the top hypothesis (kind and change id, or
target), the onset, and no false alarm on the noise-only sandbox. Every scenario runs on SQLite;
a few (a slice, recorded changes, a judge change, noise) also on ClickHouse, from the same files,
where every finding must equal SQLite's."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from oncall_ai.timeutil import parse_time_ms

NOW_MS = 1_795_000_000_000 - 1_795_000_000_000 % 300_000
SEED = 2  # a tuning seed (the bench reports on seeds >= 1000)
KINDS = ["prompt_change", "prompt_change_slice", "model_change", "provider_model_change", "index_change",
         "index_change_recorded", "judge_drift", "input_shift"]


# ClickHouse round trips cost: these cover slice localisation, recorded changes (docs), a judge
# change with calibration runs (docs) and a full scan without an incident.
ON_CLICKHOUSE = ["prompt_change_slice", "index_change_recorded", "judge_drift", "none"]


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory, make_store_url):
    """sandboxes(scenario, kind) -> SandboxInfo: each scenario generated once, its files ingested
    into a SQLite and (when asked) a ClickHouse store, each config beside the other."""
    from oncall_ai.demo import build_sandbox, ingest_sandbox

    made: dict = {}

    def get(scenario, kind="sqlite"):
        if scenario not in made:
            info = build_sandbox(tmp_path_factory.mktemp("sb") / scenario, scenario, seed=SEED, now_ms=NOW_MS,
                                 ingest=False)
            # The demo on main writes a 6h SLO window that the SLO validation rejects; triage does not care.
            info.config_path.write_text(re.sub(r"window: 6h\}", "window: 24h}", info.config_path.read_text()))
            made[scenario] = {"files": info}
        entry = made[scenario]
        if kind not in entry:
            info = entry["files"]
            if kind != "sqlite":
                url = make_store_url(kind)
                path = info.config_path.with_name(f"oncall-ai-{kind}.yaml")
                path.write_text(info.config_path.read_text().replace("store: oncall-ai.db", f"store: {url}"))
                info = dataclasses.replace(info, config_path=path, store=url, store_path=None)
            ingest_sandbox(info)
            entry[kind] = info
        return entry[kind]

    return get


def _same(a, b):
    return bool(a and b) and (a == b or (min(len(a), len(b)) >= 7 and (a.startswith(b) or b.startswith(a))))


@pytest.fixture(scope="module")
def triaged(sandboxes):
    """(scenario, store kind) -> (ground truth, first finding of `triage --json`), once per module."""
    from typer.testing import CliRunner

    from oncall_ai.cli import app

    cache: dict = {}

    def get(scenario, kind="sqlite"):
        if (scenario, kind) not in cache:
            info = sandboxes(scenario, kind)
            truth = info.ground_truth
            r = CliRunner().invoke(app, ["--config", str(info.config_path), "triage", "--feature", truth["feature"],
                                         "--metric", truth["metric"], "--at", truth["now"], "--json"],
                                        catch_exceptions=False)
            assert r.exit_code == 0, r.output
            cache[(scenario, kind)] = (truth, json.loads(r.stdout)["findings"][0])
        return cache[(scenario, kind)]

    return get


def _rank(truth, finding):
    """1-based rank of the planted change among the hypotheses (None: not among them)."""
    for i, h in enumerate(finding["hypotheses"], 1):
        if h["kind"] != truth["kind"]:
            continue
        if truth["change_id"] and _same((h.get("change") or {}).get("id"), truth["change_id"]):
            return i
        if not truth["change_id"] and h["target"] == truth["target"]:
            return i
    return None


@pytest.mark.parametrize("scenario,kind", [(k, "sqlite") for k in KINDS]
                         + [(k, "clickhouse") for k in KINDS if k in ON_CLICKHOUSE])
def test_planted_change_is_detected_and_in_the_top_three(triaged, scenario, kind):
    truth, f = triaged(scenario, kind)
    assert f["regression"]["detected"], f["regression"]["reason"]
    rank = _rank(truth, f)
    assert rank is not None and rank <= 3, [(h["kind"], h["target"]) for h in f["hypotheses"][:3]]
    onset_err = abs(parse_time_ms(f["regression"]["onset"]) - parse_time_ms(truth["onset"]))
    assert onset_err <= 90 * 60_000 or rank > 1  # a late onset estimate may cost the top spot, not more


def test_planted_change_ranks_first_in_most_kinds(triaged):
    # Attribution is statistical (about 93 % top-1 on the bench's tuning seeds 1-80): a sandbox
    # may tie with a harmless change that landed during a canary ramp or a few minutes from the
    # onset. With 93 % per sandbox, 7 of 8 holds only 87 % of the time (any change to the scoring
    # reshuffles near-ties); 6 of 8 holds 98 % of the time and still fails when ranking breaks.
    firsts = {k: _rank(*triaged(k)) == 1 for k in KINDS}
    assert sum(firsts.values()) >= len(KINDS) - 2, firsts


@pytest.mark.parametrize("kind", ["sqlite", "clickhouse"])
def test_noise_only_sandbox_raises_no_alarm(sandboxes, run_cli, kind):
    info = sandboxes("none", kind)
    r = run_cli("--config", info.config_path, "triage", "--at", info.ground_truth["now"], "--json",
                "--fail-on-regression")
    assert r.exit_code == 0, r.stdout
    doc = json.loads(r.stdout)
    assert len(doc["findings"]) >= 6  # every feature and metric examined
    assert not any(f["regression"]["detected"] for f in doc["findings"])


@pytest.mark.parametrize("scenario", ON_CLICKHOUSE)
def test_same_findings_on_both_stores(sandboxes, run_cli, scenario):
    """Every finding of a full scan, field by field: regression, onset, slices, decomposition,
    hypotheses with their scores and evidence."""
    from both_stores import assert_same

    docs = []
    for kind in ("sqlite", "clickhouse"):
        info = sandboxes(scenario, kind)
        r = run_cli("--config", info.config_path, "triage", "--at", info.ground_truth["now"], "--json")
        assert r.exit_code == 0, r.stderr
        docs.append(json.loads(r.stdout))
    assert len(docs[0]["findings"]) >= 6
    assert_same(*docs, what=scenario)
