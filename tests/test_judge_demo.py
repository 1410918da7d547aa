"""`judge drift` on the demo sandboxes: the judge_drift scenario is flagged from the first run after
the judge change and not before; every other scenario shows no drift. A few on ClickHouse too,
with the same answer as on SQLite."""

from __future__ import annotations

import json

import pytest

demo = pytest.importorskip("oncall_ai.demo")
if not hasattr(demo, "build_sandbox"):  # the generator is not merged yet
    pytest.skip("oncall_ai.demo.build_sandbox not available", allow_module_level=True)

NOW = 1_795_000_000_000 // 300_000 * 300_000
SCALE = 0.05  # calibration runs do not depend on the traffic volume


def _drift(run_cli, info):
    r = run_cli("--config", info.config_path, "judge", "drift", "--json", "--fail-on-drift")
    out = json.loads(r.stdout)
    return r.exit_code, {f["metric"]: f for f in out["findings"]}


def _store(kind, make_store_url):
    return None if kind == "sqlite" else make_store_url(kind)


@pytest.mark.parametrize("seed,kind", [(1, "sqlite"), (2, "sqlite"), (3, "sqlite"), (1, "clickhouse")])
def test_judge_drift_scenario_is_flagged_from_the_first_run_of_the_new_judge(tmp_path, run_cli, make_store_url,
                                                                             seed, kind):
    info = demo.build_sandbox(tmp_path / "sb", "judge_drift", seed=seed, now_ms=NOW, scale=SCALE,
                              store=_store(kind, make_store_url))
    truth = info.ground_truth["judge"]
    new_judge = truth["judge_ids"][-1]
    code, findings = _drift(run_cli, info)
    assert code == 1  # --fail-on-drift
    f = findings[truth["metric"]]
    runs = f["runs"]
    first_new = next(i for i, r in enumerate(runs) if r["judge_id"] == new_judge)
    assert first_new > 0
    assert f["drifted"] is True and f["since_run"] == runs[first_new]["run_id"]
    assert all(r["state"] in ("baseline", "ok") for r in runs[:first_new])
    assert all(r["state"] == "drifted" for r in runs[first_new:])
    assert f["shift"] < 0 and f["direction"] == "harsher"
    for metric, other in findings.items():
        if metric != truth["metric"]:
            assert other["drifted"] is False, metric


@pytest.mark.parametrize("scenario,kind", [(k, "sqlite") for k in sorted(set(demo.SCENARIOS) - {"judge_drift"})]
                         + [("model_change", "clickhouse")])
def test_other_scenarios_show_no_drift(tmp_path, run_cli, make_store_url, scenario, kind):
    info = demo.build_sandbox(tmp_path / "sb", scenario, seed=1, now_ms=NOW, scale=SCALE,
                              store=_store(kind, make_store_url))
    code, findings = _drift(run_cli, info)
    assert findings and code == 0
    for metric, f in findings.items():
        assert f["drifted"] is False, (metric, f["evidence"])
        assert len(f["runs"]) >= 5  # the verdict rests on real runs, not on an empty history


def test_same_drift_on_both_stores(tmp_path, run_cli, make_store_url):
    from both_stores import assert_same

    out = []
    for kind in ("sqlite", "clickhouse"):
        info = demo.build_sandbox(tmp_path / kind, "judge_drift", seed=1, now_ms=NOW, scale=SCALE,
                                  store=_store(kind, make_store_url))
        r = run_cli("--config", info.config_path, "judge", "drift", "--json", "--since", "7d", "--at", str(NOW // 1000))
        out.append(json.loads(r.stdout.replace(str(tmp_path / kind), "<X>")))
    assert any(f["drifted"] and f["traffic"] for f in out[0]["findings"])
    assert_same(*out)
