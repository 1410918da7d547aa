"""Incidents on the demo sandbox: open from triage, ack, roll back, resolve; the postmortem draft
measured from the scores; the failing requests exported as eval cases (once). On SQLite and on
ClickHouse, with the same incident, postmortem and cases on both."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from oncall_ai.timeutil import parse_time_ms
from sandbox_helpers import (
    MIN,
    T0,
    at,
    cli,
    cli_json,
    flow_fixtures,
    ground_truth,
    isolated,
    pinned_clock,
    raw_events,
    sandbox_copy,
    store_of,
)

ROOT = Path(__file__).resolve().parent.parent


def _flow(tmp_path_factory, stack, store):
    """Open from triage (twice), ack, roll back the suspect, resolve. `store`: None for SQLite."""
    sb = sandbox_copy(tmp_path_factory, "incident", store=store)
    mp = stack.enter_context(isolated(sb.parent / "home"))
    gt = ground_truth(sb)
    opened = cli_json(sb, "incident", "open", "--from-triage", "--feature", gt["feature"], "--metric", gt["metric"],
                      "--at", at(), "--json")
    iid = opened["incident"]["id"]
    again = cli_json(sb, "incident", "open", "--from-triage", "--feature", gt["feature"], "--metric",
                     gt["metric"], "--at", at(5 * MIN), "--json")
    ack = cli(sb, "incident", "ack", iid, "--at", at(10 * MIN), "--by", "alice")
    assert ack.exit_code == 0, ack.stderr
    with pinned_clock(mp, T0 + 20 * MIN):
        rb = cli(sb, "rollback-prompt", gt["change_id"], "--incident", iid, "--yes", "--json")
    assert rb.exit_code == 0, rb.stderr
    # no --cause: the change the incident's rollback undid
    res = cli(sb, "incident", "resolve", iid, "--resolution", "rollback", "--note", "rolled back the German bullets",
              "--at", at(40 * MIN), "--by", "bob")
    assert res.exit_code == 0, res.stderr
    shown = cli_json(sb, "incident", "show", iid, "--json", "--at", at(60 * MIN))
    postmortem = cli(sb, "incident", "postmortem", iid, "--at", at(60 * MIN)).stdout
    return SimpleNamespace(sb=sb, gt=gt, iid=iid, opened=opened, again=again, rollback=json.loads(rb.stdout),
                           resolve_stderr=res.stderr, mp=mp, store=store_of(sb), shown=shown, postmortem=postmortem)


flows, flow = flow_fixtures(_flow)  # the flow on SQLite or ClickHouse, once per module


def show(flow, when=None) -> dict:
    return cli_json(flow.sb, "incident", "show", flow.iid, "--json", "--at", when or at(60 * MIN))


def in_scope(e: dict, feature: str, metric: str, scope: dict) -> bool:
    return e["feature"] == feature and e["metric"] == metric and all(
        (e.get("slice") or {}).get(k) == v for k, v in scope.items())


def test_open_keeps_the_triage_finding(flow):
    inc = flow.opened["incident"]
    assert flow.opened["created"] is True
    assert inc["id"] == "INC-20261127-1" and inc["state"] == "open" and inc["severity"] == "sev2"
    assert (inc["feature"], inc["metric"]) == (flow.gt["feature"], flow.gt["metric"])
    for planted in flow.gt["slices"]:  # the planted slice is the incident's scope
        assert planted.items() <= inc["scope"].items()
    assert inc["suspect"]["change_id"] == flow.gt["change_id"]
    assert (ROOT / inc["suspect"]["runbook"]).is_file()
    # the snapshot is triage's finding, as `triage --json` gives it for the same window
    tri = cli_json(flow.sb, "triage", "--feature", inc["feature"], "--metric", inc["metric"], "--at", at(), "--json")
    assert inc["triage"]["finding"] == tri["findings"][0]
    assert inc["onset"] == tri["findings"][0]["regression"]["onset"]


def test_open_again_returns_the_open_incident(flow):
    assert flow.again["created"] is False
    assert flow.again["incident"]["id"] == flow.iid


def test_transitions_and_cause_from_the_rollback(flow):
    inc = show(flow)["incident"]
    assert [(t["from"], t["to"], t["at"]) for t in inc["transitions"]] == [
        (None, "open", at()), ("open", "acknowledged", at(10 * MIN)), ("acknowledged", "resolved", at(40 * MIN))]
    assert [t["by"] for t in inc["transitions"][1:]] == ["alice", "bob"]
    assert inc["state"] == "resolved" and inc["resolution"] == "rollback"
    assert inc["cause"]["id"] == flow.gt["change_id"]
    assert "the change the incident's rollback undid" in flow.resolve_stderr


def test_state_changes_on_a_resolved_incident_are_refused(flow):
    before = show(flow)["incident"]
    r = cli(flow.sb, "incident", "ack", flow.iid, "--at", at(50 * MIN))
    assert r.exit_code == 1 and "resolved, not open" in r.stderr and "Traceback" not in r.stderr
    r = cli(flow.sb, "incident", "resolve", flow.iid, "--resolution", "rollback", "--at", at(50 * MIN))
    assert r.exit_code == 1 and "already resolved" in r.stderr
    assert show(flow)["incident"] == before


def test_bad_arguments_exit_2(flow):
    sb = flow.sb
    for args, words in [
        (("incident", "open", "--at", at()), "--from-triage, or both --feature and --metric"),
        (("incident", "open", "--feature", "summarizer", "--metric", "helpfulness", "--severity", "urgent"), "--severity"),
        (("incident", "show", "INC-19990101-9"), "no incident"),
        (("incident", "resolve", flow.iid, "--resolution", "fixed"), "--resolution"),
    ]:
        r = cli(sb, *args)
        assert r.exit_code == 2, (args, r.stdout, r.stderr)
        assert words in r.stderr and "Traceback" not in r.stderr


def test_resolve_needs_a_known_change(flow):
    sb = flow.sb
    other = cli_json(sb, "incident", "open", "--feature", "support", "--metric", "helpfulness", "--at", at(2 * MIN),
                     "--title", "support answers feel worse", "--json")["incident"]
    assert other["state"] == "open" and other["onset"] is None and other["severity"] == "sev3"
    r = cli(sb, "incident", "resolve", other["id"], "--resolution", "narrowed", "--cause", "deadbeefdeadbeef",
            "--at", at(30 * MIN))
    assert r.exit_code == 2 and "no change with that id" in r.stderr
    assert show(flow, at(30 * MIN))["incident"]["state"] == "resolved"  # the first one is untouched
    r = cli(sb, "incident", "resolve", other["id"], "--resolution", "false-alarm", "--note", "user report, not reproducible",
            "--at", at(31 * MIN), "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["incident"]["cause"] is None
    # a unique prefix of a commit sha names the full change
    third = cli_json(sb, "incident", "open", "--feature", "search", "--metric", "relevance", "--at", at(3 * MIN),
                     "--json")["incident"]
    r = cli(sb, "incident", "resolve", third["id"], "--resolution", "accepted", "--cause", flow.gt["change_id"][:10],
            "--at", at(32 * MIN), "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["incident"]["cause"]["id"] == flow.gt["change_id"]


def test_postmortem_has_measured_impact_detection_cause_and_rollback(flow):
    inc = show(flow)["incident"]
    onset = parse_time_ms(inc["onset"])
    rolled_back = T0 + 20 * MIN  # the pinned clock of the rollback
    scope = inc["scope"]
    events = [e for e in raw_events(flow.sb) if in_scope(e, inc["feature"], inc["metric"], scope)]
    during = [e["value"] for e in events if onset <= e["ts_ms"] < rolled_back]
    before = [e["value"] for e in events if onset - 7 * 86_400_000 <= e["ts_ms"] < onset]
    assert during and before

    view = show(flow)
    imp = view["impact"]
    assert imp["events"] == len(during)
    assert imp["end_reason"] == "rollback" and parse_time_ms(imp["end"]) == rolled_back
    assert imp["mean_during"] == pytest.approx(sum(during) / len(during), abs=1e-4)
    assert imp["mean_before"] == pytest.approx(sum(before) / len(before), abs=1e-4)
    bad_during = sum(1 for v in during if v < 4) / len(during)
    assert imp["bad_share_during"] == pytest.approx(bad_during, abs=1e-4)
    assert view["detection"]["time_to_open_ms"] == T0 - onset
    assert view["detection"]["time_to_mitigate_ms"] == rolled_back - onset

    r = cli(flow.sb, "incident", "postmortem", flow.iid, "--at", at(60 * MIN))
    assert r.exit_code == 0, r.stderr
    md = r.stdout
    for heading in ("## Summary", "## Impact", "## Detection", "## Root cause and trigger", "## Resolution",
                    "## Timeline (UTC)", "## Action items"):
        assert heading in md
    assert f"| affected events (scored responses) | {len(during)} |" in md
    assert f"| mean drop | {sum(during) / len(during) - sum(before) / len(before):+.3g} |" in md
    hours, minutes = divmod((T0 - onset) // 60_000, 60)
    assert f"Detected by incident opened at {inc['opened_at']}, {hours}h{minutes:02d}m after the onset" in md
    assert f"`{flow.gt['change_id']}`" in md  # the causing change
    commit = flow.rollback["commit"]
    assert commit and f"`{commit}`" in md  # the rollback with its commit
    assert "| prevent | Eval cases added:" in md
    for kind in ("| prevent |", "| mitigate |", "| process |"):
        assert kind in md


def test_timeline_in_order_with_change_onset_states_and_rollback(flow):
    tl = show(flow)["timeline"]
    times = [parse_time_ms(e["at"]) for e in tl]
    assert times == sorted(times)
    whats = [e["what"] for e in tl]
    assert whats.index("change") < whats.index("onset") < whats.index("state") < whats.index("rollback")
    assert any(e["what"] == "change" and e.get("change_id") == flow.gt["change_id"] and "[cause]" in e["text"] for e in tl)
    rb = [e for e in tl if e["what"] == "rollback"]
    assert len(rb) == 1 and flow.rollback["commit"] in rb[0]["text"]
    assert [e["text"].split(" by ")[0] for e in tl if e["what"] == "state"] == [
        "incident open", "incident acknowledged", "incident resolved"]


def test_export_cases_lowest_scores_in_scope_and_window_once(flow, tmp_path):
    inc = show(flow)["incident"]
    onset, end = parse_time_ms(inc["onset"]), T0 + 20 * MIN
    expected = sorted((e for e in raw_events(flow.sb) if in_scope(e, inc["feature"], inc["metric"], inc["scope"])
                       and onset <= e["ts_ms"] < end), key=lambda e: (e["value"], e["ts_ms"]))
    assert len(expected) > 20
    out = tmp_path / "cases"

    r = cli(flow.sb, "incident", "export-cases", flow.iid, "--out", out, "--limit", 10, "--at", at(60 * MIN), "--json")
    assert r.exit_code == 0, r.stderr
    first = json.loads(r.stdout)
    assert first["exported"] == 10 and first["with_text"] is True and first["batch"] == 1
    lines = [json.loads(x) for x in Path(first["files"][0]).read_text().splitlines()]
    assert [c["request_id"] for c in lines] == [e["request_id"] for e in expected[:10]]
    for c, e in zip(lines, expected[:10], strict=True):
        assert c["score"] == e["value"] and c["input"] == e["input"] and c["output"] == e["output"]
        assert c["slice"] == e["slice"] and inc["scope"].items() <= c["slice"].items()
        assert onset <= parse_time_ms(c["ts"]) < end
        assert c["versions"]["prompt_version"] == e.get("prompt_version")
    tests = yaml.safe_load(Path(first["files"][1]).read_text())
    assert [t["metadata"]["request_id"] for t in tests] == [c["request_id"] for c in lines]
    assert all(t["vars"]["input"] == c["input"] and t["assert"][0]["type"] == "llm-rubric"
               for t, c in zip(tests, lines, strict=True))

    # the same export again adds nothing and writes nothing
    r = cli(flow.sb, "incident", "export-cases", flow.iid, "--out", out, "--limit", 10, "--at", at(60 * MIN), "--json")
    assert r.exit_code == 0, r.stderr
    again = json.loads(r.stdout)
    assert again["exported"] == 0 and again["already_exported"] == 10 and again["files"] == []
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(f).name for f in first["files"])

    # a larger limit adds only the next-worst requests
    r = cli(flow.sb, "incident", "export-cases", flow.iid, "--out", out, "--limit", 15, "--at", at(60 * MIN), "--json")
    more = json.loads(r.stdout)
    assert more["exported"] == 5 and more["already_exported"] == 10 and more["batch"] == 2
    lines2 = [json.loads(x) for x in Path(more["files"][0]).read_text().splitlines()]
    assert [c["request_id"] for c in lines2] == [e["request_id"] for e in expected[10:15]]
    assert show(flow)["eval_cases_exported"] == 15


def test_export_without_text_exports_request_ids(tmp_path, run_cli, store_url):
    """On every store backend: without text in the events, request ids; lowest scores first."""
    from oncall_ai.store import open_store
    from oncall_ai.store.base import Doc

    cfg = tmp_path / "oncall-ai.yaml"
    cfg.write_text(f"store: {store_url}\nmetrics:\n  helpfulness: {{source: judge, good: '>= 4'}}\n")
    events = tmp_path / "e.jsonl"
    recs = [{"ts": f"2026-11-26T10:{i:02d}:{i % 7:02d}Z", "feature": "f", "metric": "helpfulness", "value": 1 + i % 5,
             "request_id": f"r{i}", "slice": {"language": "de" if i % 2 else "en"}} for i in range(40)]
    events.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert run_cli("--config", cfg, "ingest", events).exit_code == 0
    body = {"id": "INC-20261126-1", "title": "t", "severity": "sev2", "state": "open", "feature": "f",
            "metric": "helpfulness", "scope": {"language": "de"}, "onset": "2026-11-26T10:10:00Z",
            "opened_at": "2026-11-26T11:00:00Z", "transitions": [], "triage": {}, "suspect": None, "cause": None}
    with open_store(store_url) as st:
        st.put_docs("incident", [Doc("incident", body["id"], parse_time_ms(body["opened_at"]), body)])
    r = run_cli("--config", cfg, "incident", "export-cases", body["id"], "--out", tmp_path / "out", "--limit", 3,
                "--at", "2026-11-26T11:00:00Z")
    assert r.exit_code == 0, r.stderr
    assert "no input/output text" in r.stderr
    cases = [json.loads(x) for x in (tmp_path / "out" / "INC-20261126-1-001.jsonl").read_text().splitlines()]
    want = sorted((x for x in recs if x["slice"]["language"] == "de" and x["ts"] >= "2026-11-26T10:10:00Z"),
                  key=lambda x: (x["value"], x["ts"]))[:3]
    assert [c["request_id"] for c in cases] == [w["request_id"] for w in want]
    assert all(c["input"] is None and c["output"] is None for c in cases)
    tests = yaml.safe_load((tmp_path / "out" / "INC-20261126-1-001.tests.yaml").read_text())
    assert [t["vars"] for t in tests] == [{"request_id": w["request_id"]} for w in want]


def test_list(flow):
    doc = cli_json(flow.sb, "incident", "list", "--json")
    assert doc["schema"] == "oncall-ai/incidents/v1"
    first = next(i for i in doc["incidents"] if i["id"] == flow.iid)
    assert first["cause"] == flow.gt["change_id"] and first["state"] == "resolved"
    r = cli(flow.sb, "incident", "list")
    assert r.exit_code == 0 and flow.iid in r.stdout


def test_detection_counts_from_the_first_page(flow):
    """A page sent by `slo check --notify` for an SLO of the feature and metric is the detection."""
    from oncall_ai.config import load_config
    from oncall_ai.store import open_store
    from oncall_ai.store.base import Doc

    inc = show(flow)["incident"]
    slo = next(s.name for s in load_config(flow.sb / "oncall-ai.yaml").slos
               if (s.feature, s.metric) == (inc["feature"], inc["metric"]))
    onset = parse_time_ms(inc["onset"])
    paged = onset + 2 * 3_600_000
    doc = Doc("action", f"notify:{slo}:pagerduty:{paged}:trigger", paged,
              {"kind": "notify", "slo": slo, "target": "pagerduty", "action": "trigger", "severity": "page", "ok": True})
    with open_store(flow.store) as st:
        st.put_docs("action", [doc])
    try:
        view = show(flow)
        det = view["detection"]
        assert det["detected_by"] == "page" and det["time_to_detect_ms"] == 2 * 3_600_000
        assert det["time_to_page"] == "2h00m" and det["time_to_open_ms"] == T0 - onset
        assert any(e["what"] == "page" and slo in e["text"] for e in view["timeline"])
        md = cli(flow.sb, "incident", "postmortem", flow.iid, "--at", at(60 * MIN)).stdout
        assert "Detected by page at" in md and "| first page | 2h00m |" in md
    finally:
        with open_store(flow.store) as st:
            st.delete_docs("action", [doc.id])


def test_same_incident_on_both_stores(flows):
    """The same sandbox and the same steps on SQLite and on ClickHouse: the incident (with its
    triage snapshot, impact and timeline) equal field by field, the postmortem byte for byte."""
    from both_stores import assert_same, strip

    a, b = flows("sqlite"), flows("clickhouse")
    assert a.shown["incident"]["suspect"]["change_id"] == a.gt["change_id"]
    for name in ("opened", "again", "rollback", "shown"):
        assert_same(strip(getattr(a, name), a.sb), strip(getattr(b, name), b.sb), what=name)
    assert a.postmortem.replace(str(a.sb), "<X>") == b.postmortem.replace(str(b.sb), "<X>")
