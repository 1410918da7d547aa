"""`slo rules` output: structure, and promtool (check rules + unit tests: fast burn pages, slow burn
tickets, no burn stays quiet, the Wilson gate computes what slo check computes)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from oncall_ai.analysis.slo import DAY_MS, burn_pairs
from oncall_ai.analysis.stats import wilson_lower
from oncall_ai.config import parse_config
from oncall_ai.prometheus import ALERT_NAME, rule_groups, rules_yaml

CONFIG = {
    "features": {"fast": {}, "slow": {}, "quiet": {}, "judged": {}, "capped": {}},
    "slices": ["language"],
    "metrics": {"schema_valid": {"source": "check", "good": "== 1"},
                "helpfulness": {"source": "judge", "good": ">= 4"}},
    "slos": [
        {"name": "fast-schema", "feature": "fast", "metric": "schema_valid", "objective": 0.99, "window": "30d"},
        {"name": "slow-schema", "feature": "slow", "metric": "schema_valid", "objective": 0.99, "window": "24h"},
        {"name": "quiet-schema", "feature": "quiet", "metric": "schema_valid", "objective": 0.99, "window": "24h"},
        {"name": "judged-help", "feature": "judged", "metric": "helpfulness", "objective": 0.99, "window": "30d"},
        {"name": "capped-de", "feature": "capped", "metric": "schema_valid", "objective": 0.99, "window": "7d",
         "severity": "ticket", "where": {"language": "de"}},
    ],
}


@pytest.fixture
def cfg():
    return parse_config(CONFIG, path=None)


def promtool_path() -> str:
    path = shutil.which("promtool")
    if not path:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing in CI: .ci/setup-promtool.sh should have installed Debian's prometheus package")
        pytest.skip("promtool not installed (bash .ci/setup-promtool.sh installs Debian's prometheus package)")
    return path


def alerts_of(groups, slo_name):
    return [r for g in groups if g["name"] == f"oncall-ai-slo-alerts-{slo_name}" for r in g["rules"]]


def test_groups_per_slo_and_thresholds_follow_the_burn_pairs(cfg):
    groups = rule_groups(cfg)
    names = [g["name"] for g in groups]
    for slo in cfg.slos:
        assert f"oncall-ai-slo-sli-{slo.name}" in names and f"oncall-ai-slo-meta-{slo.name}" in names
    page, ticket = alerts_of(groups, "fast-schema")
    assert page["labels"]["oncall_ai_severity"] == "page" and page["labels"]["severity"] == "critical"
    for p in burn_pairs(30 * DAY_MS):
        rule = page if p.severity == "page" else ticket
        assert f"> ({p.burn:g} * 0.01)" in rule["expr"]
    assert "ratio_rate1h" in page["expr"] and "wilson_lower" not in page["expr"]
    # sampled (judge) SLOs gate long windows on the Wilson lower bound and min_events 20
    jpage = alerts_of(groups, "judged-help")[0]
    assert "wilson_lower1h" in jpage["expr"] and ">= 20" in jpage["expr"]
    # severity: ticket -> no page alert; every pair folds into the ticket alert
    capped = alerts_of(groups, "capped-de")
    assert [r["labels"]["oncall_ai_severity"] for r in capped] == ["ticket"]
    assert capped[0]["expr"].count("and\n") == 8
    sli = next(g for g in groups if g["name"] == "oncall-ai-slo-sli-capped-de")
    assert 'slice_language="de"' in sli["rules"][0]["expr"]


def test_rules_yaml_is_yaml_with_a_header(cfg):
    text = rules_yaml(cfg, source="oncall-ai.yaml")
    assert text.startswith("# Prometheus recording and alerting rules")
    assert yaml.safe_load(text)["groups"] == rule_groups(cfg)


def test_promtool_check_rules(cfg, tmp_path):
    promtool = promtool_path()
    rules = tmp_path / "rules.yml"
    rules.write_text(rules_yaml(cfg))
    r = subprocess.run([promtool, "check", "rules", "--lint-fatal", str(rules)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr


def expected_alert(groups, slo, severity, feature, metric):
    rule = next(r for r in alerts_of(groups, slo) if r["labels"]["oncall_ai_severity"] == severity)
    return {"exp_labels": {**rule["labels"], "feature": feature, "metric": metric},
            "exp_annotations": rule["annotations"]}


def series(feature, metric, kind, values, **slice_labels):
    name = "oncall_ai_eval_events_total" if kind == "events" else "oncall_ai_eval_good_total"
    labels = {"feature": feature, "metric": metric, **{f"slice_{k}": v for k, v in slice_labels.items()}}
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


def test_promtool_unit_tests(cfg, tmp_path):
    promtool = promtool_path()
    groups = rule_groups(cfg)
    (tmp_path / "rules.yml").write_text(rules_yaml(cfg))
    n = 120  # judged events in the judged SLO's 1h window at 75m (2 a minute)
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "fast burn pages (and tickets), sampled burn pages on its lower bound",
                "interval": "1m",
                "input_series": [
                    # 100 events a minute; from minute 60 only 20 of them good (80% bad)
                    series("fast", "schema_valid", "events", "0+100x120"),
                    series("fast", "schema_valid", "good", "0+100x60 6020+20x59"),
                    # judged: 2 a minute, 40% bad from the start (lower bound far above 14.4%)
                    series("judged", "helpfulness", "events", "0+2x120"),
                    series("judged", "helpfulness", "good", "0+1.2x120"),
                ],
                "alert_rule_test": [
                    {"eval_time": "63m", "alertname": ALERT_NAME, "exp_alerts": [
                        # 3 bad minutes: fast's 1h ratio 4% is under 14.4%, but its 1d/2h ratio is over 3%
                        expected_alert(groups, "fast-schema", "ticket", "fast", "schema_valid"),
                        expected_alert(groups, "judged-help", "page", "judged", "helpfulness"),
                        expected_alert(groups, "judged-help", "ticket", "judged", "helpfulness"),
                    ]},
                    {"eval_time": "75m", "alertname": ALERT_NAME, "exp_alerts": [
                        expected_alert(groups, "fast-schema", "page", "fast", "schema_valid"),
                        expected_alert(groups, "fast-schema", "ticket", "fast", "schema_valid"),
                        expected_alert(groups, "judged-help", "page", "judged", "helpfulness"),
                        expected_alert(groups, "judged-help", "ticket", "judged", "helpfulness"),
                    ]},
                ],
                "promql_expr_test": [
                    {"expr": 'oncall_ai_slo:sli_events:increase1h{oncall_ai_slo="judged-help"}', "eval_time": "75m",
                     "exp_samples": [{"labels": 'oncall_ai_slo:sli_events:increase1h{oncall_ai_slo="judged-help",feature="judged",metric="helpfulness"}',
                                      "value": n}]},
                    {"expr": 'round(oncall_ai_slo:sli_error:wilson_lower1h{oncall_ai_slo="judged-help"} * 1e6)',
                     "eval_time": "75m",
                     "exp_samples": [{"labels": '{oncall_ai_slo="judged-help",feature="judged",metric="helpfulness"}',
                                      "value": round(wilson_lower(0.4 * n, n) * 1e6)}]},
                ],
            },
            {
                "name": "slow burn tickets without paging; no burn stays quiet",
                "interval": "1m",
                "input_series": [
                    # slow: 4% bad for 5 hours (24h SLO: ticket 3x over 4h and 20m; pages need 14.4x / 6x)
                    series("slow", "schema_valid", "events", "0+100x300"),
                    series("slow", "schema_valid", "good", "0+96x300"),
                    # quiet: 0.5% bad, below even the 1x ticket
                    series("quiet", "schema_valid", "events", "0+200x300"),
                    series("quiet", "schema_valid", "good", "0+199x300"),
                    # capped (severity ticket, only language=de counts): 50% bad in de, en is clean
                    series("capped", "schema_valid", "events", "0+10x300", language="de"),
                    series("capped", "schema_valid", "good", "0+5x300", language="de"),
                    series("capped", "schema_valid", "events", "0+1000x300", language="en"),
                    series("capped", "schema_valid", "good", "0+1000x300", language="en"),
                ],
                "alert_rule_test": [
                    {"eval_time": "2h", "alertname": ALERT_NAME, "exp_alerts": [
                        # 4% over the 2h seen so far of the 8h window already burns 4x > 1x
                        expected_alert(groups, "slow-schema", "ticket", "slow", "schema_valid"),
                        expected_alert(groups, "capped-de", "ticket", "capped", "schema_valid"),
                    ]},
                    {"eval_time": "5h", "alertname": ALERT_NAME, "exp_alerts": [
                        expected_alert(groups, "slow-schema", "ticket", "slow", "schema_valid"),
                        expected_alert(groups, "capped-de", "ticket", "capped", "schema_valid"),
                    ]},
                ],
            },
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    r = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout + r.stderr


def test_promtool_unit_test_fails_on_a_wrong_expectation(cfg, tmp_path):
    """The harness can fail: expecting silence from a fast burn is reported by promtool."""
    promtool = promtool_path()
    (tmp_path / "rules.yml").write_text(rules_yaml(cfg))
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [series("fast", "schema_valid", "events", "0+100x120"),
                         series("fast", "schema_valid", "good", "0+100x60 6020+20x59")],
        "alert_rule_test": [{"eval_time": "75m", "alertname": ALERT_NAME, "exp_alerts": []}]}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(tests))
    r = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 1 and "FAILED" in r.stdout + r.stderr
