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


@pytest.fixture(scope="module")
def triaged(tmp_path_factory):
    """kind -> (ground truth, first finding of `triage --json`), each sandbox built once per module."""
    from typer.testing import CliRunner

    from oncall_ai.cli import app

    cache: dict = {}

    def get(kind):
        if kind not in cache:
            info = _sandbox(tmp_path_factory.mktemp("sb"), kind)
            truth = info.ground_truth
            r = CliRunner().invoke(app, ["--config", str(info.config_path), "triage", "--feature", truth["feature"],
                                         "--metric", truth["metric"], "--at", truth["now"], "--json"],
                                        catch_exceptions=False)
            assert r.exit_code == 0, r.output
            cache[kind] = (truth, json.loads(r.stdout)["findings"][0])
        return cache[kind]

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


@pytest.mark.parametrize("scenario", KINDS)
def test_planted_change_is_detected_and_in_the_top_three(triaged, scenario):
    truth, f = triaged(scenario)
    assert f["regression"]["detected"], f["regression"]["reason"]
    rank = _rank(truth, f)
    assert rank is not None and rank <= 3, [(h["kind"], h["target"]) for h in f["hypotheses"][:3]]
    onset_err = abs(parse_time_ms(f["regression"]["onset"]) - parse_time_ms(truth["onset"]))
    assert onset_err <= 90 * 60_000 or rank > 1  # a late onset estimate may cost the top spot, not more


def test_planted_change_ranks_first_in_most_kinds(triaged):
    # Attribution is statistical (about 9 in 10 top-1 on the bench's fresh seeds): one sandbox
    # per kind may tie with a harmless change that landed near the onset, but not several.
    firsts = {k: _rank(*triaged(k)) == 1 for k in KINDS}
    assert sum(firsts.values()) >= len(KINDS) - 1, firsts


def test_noise_only_sandbox_raises_no_alarm(tmp_path_factory, run_cli):
    info = _sandbox(tmp_path_factory.mktemp("sb"), "none")
    r = run_cli("--config", info.config_path, "triage", "--at", info.ground_truth["now"], "--json",
                "--fail-on-regression")
    assert r.exit_code == 0, r.stdout
    doc = json.loads(r.stdout)
    assert len(doc["findings"]) >= 6  # every feature and metric examined
    assert not any(f["regression"]["detected"] for f in doc["findings"])
