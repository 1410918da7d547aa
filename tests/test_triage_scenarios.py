"""Triage on demo sandboxes with known ground truth: one sandbox per scenario kind (the full suite
with many seeds is bench/triage_scenarios.py). Checks the top hypothesis (kind and change id, or
target), the onset, and no false alarm on the noise-only sandbox."""

from __future__ import annotations

import json
import re

import pytest

from oncall_ai.timeutil import parse_time_ms

NOW_MS = 1_795_000_000_000 - 1_795_000_000_000 % 300_000
SEED = 2  # a tuning seed (the bench reports on seeds >= 1000)
KINDS = ["prompt_change", "prompt_change_slice", "model_change", "provider_model_change", "index_change",
         "index_change_recorded", "judge_drift", "input_shift"]


def _sandbox(root, scenario):
    from oncall_ai.demo import build_sandbox, ingest_sandbox

    info = build_sandbox(root / scenario, scenario, seed=SEED, now_ms=NOW_MS, ingest=False)
    # The demo on main writes a 6h SLO window that the SLO validation rejects; triage does not care.
    info.config_path.write_text(re.sub(r"window: 6h\}", "window: 24h}", info.config_path.read_text()))
    ingest_sandbox(info)
    return info


def _same(a, b):
    return bool(a and b) and (a == b or (min(len(a), len(b)) >= 7 and (a.startswith(b) or b.startswith(a))))


@pytest.mark.parametrize("scenario", KINDS)
def test_top_hypothesis_names_the_planted_change(tmp_path_factory, run_cli, scenario):
    info = _sandbox(tmp_path_factory.mktemp("sb"), scenario)
    truth = info.ground_truth
    r = run_cli("--config", info.config_path, "triage", "--feature", truth["feature"], "--metric",
                truth["metric"], "--at", truth["now"], "--json")
    assert r.exit_code == 0, r.stderr
    f = json.loads(r.stdout)["findings"][0]
    assert f["regression"]["detected"], f["regression"]["reason"]
    top = f["hypotheses"][0]
    assert top["kind"] == truth["kind"]
    if truth["change_id"]:
        assert _same(top["change"]["id"], truth["change_id"])
    else:
        assert top["target"] == truth["target"]
    onset_err = abs(parse_time_ms(f["regression"]["onset"]) - parse_time_ms(truth["onset"]))
    assert onset_err <= 90 * 60_000


def test_noise_only_sandbox_raises_no_alarm(tmp_path_factory, run_cli):
    info = _sandbox(tmp_path_factory.mktemp("sb"), "none")
    r = run_cli("--config", info.config_path, "triage", "--at", info.ground_truth["now"], "--json",
                "--fail-on-regression")
    assert r.exit_code == 0, r.stdout
    doc = json.loads(r.stdout)
    assert len(doc["findings"]) >= 6  # every feature and metric examined
    assert not any(f["regression"]["detected"] for f in doc["findings"])
