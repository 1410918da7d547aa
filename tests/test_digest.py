"""`oncall-ai digest` on the demo sandbox after a triage, an incident, a rollback and a resolve:
every section against an independent source (the other commands, git, the raw event files),
stable Markdown, the JSON envelope, the Slack post, and sections that are not configured. The
flow runs on SQLite and on ClickHouse, and both digests are the same."""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from oncall_ai.timeutil import parse_time_ms
from sandbox_helpers import (
    HOUR,
    MIN,
    T0,
    at,
    cli,
    cli_json,
    commit_file,
    flow_fixtures,
    ground_truth,
    isolated,
    pinned_clock,
    raw_events,
    sandbox_copy,
    store_of,
)

TD = T0 + 2 * HOUR  # the handoff: two hours after the page
NEW_RERANK = "vendor-a/atlas-small-2026-11-20"


def _flow(tmp_path_factory, stack, store):
    """Open an incident from triage, ack, roll back, move a pin, resolve, open another; then the
    digest (Markdown and JSON) two hours after the page. `store`: None for the sandbox's SQLite."""
    sb = sandbox_copy(tmp_path_factory, "digest", store=store)
    mp = stack.enter_context(isolated(sb.parent / "home"))
    gt = ground_truth(sb)
    a = cli_json(sb, "incident", "open", "--from-triage", "--feature", gt["feature"], "--metric", gt["metric"],
                 "--at", at(), "--json")["incident"]
    assert cli(sb, "incident", "ack", a["id"], "--at", at(10 * MIN)).exit_code == 0
    with pinned_clock(mp, T0 + 20 * MIN):
        rb = cli(sb, "rollback-prompt", gt["change_id"], "--incident", a["id"], "--yes", "--json")
    assert rb.exit_code == 0, rb.stderr
    pins = (sb / "platform" / "models.yaml").read_text()
    old_rerank = next(line.split(":", 1)[1].split("#")[0].strip() for line in pins.splitlines()
                      if line.startswith("rerank:"))
    pin_sha = commit_file(sb / "platform", "models.yaml", pins.replace(old_rerank, NEW_RERANK),
                          "rerank: move to the November snapshot", T0 + 30 * MIN)
    r = cli(sb, "incident", "resolve", a["id"], "--resolution", "rollback", "--at", at(40 * MIN))
    assert r.exit_code == 0, r.stderr
    b = cli_json(sb, "incident", "open", "--feature", "support", "--metric", "helpfulness", "--at", at(50 * MIN),
                 "--title", "support answers feel worse (user reports)", "--json")["incident"]
    md = cli(sb, "digest", "--at", at(2 * HOUR), "--format", "markdown")
    doc = cli(sb, "digest", "--at", at(2 * HOUR), "--json")
    assert md.exit_code == 0 and doc.exit_code == 0, (md.stderr, doc.stderr)
    changes = cli_json(sb, "changes", "list", "--since", "7d", "--at", at(2 * HOUR), "--json")
    return SimpleNamespace(sb=sb, gt=gt, a=a, b=b, rollback=json.loads(rb.stdout), pin_sha=pin_sha,
                           old_rerank=old_rerank, md=md.stdout, doc=json.loads(doc.stdout), changes=changes, mp=mp,
                           store=store_of(sb))


flows, flow = flow_fixtures(_flow)  # the flow on SQLite or ClickHouse, once per module


def change_ids_in(obj) -> set[str]:
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "change_id" and v:
                out.add(v)
            elif k == "undoes":
                out.update(v)
            else:
                out |= change_ids_in(v)
    elif isinstance(obj, list):
        for v in obj:
            out |= change_ids_in(v)
    return out


# --- the JSON envelope ----------------------------------------------------------------------------

STR, OPT_STR, NUM, OPT_NUM, BOOL = str, (str, type(None)), (int, float), (int, float, type(None)), bool
SECTION = {"status": ("ok", "not_configured", "error"), "note": OPT_STR, "items": list}
ITEM_KEYS = {
    "prompt_changes": {"change_id": STR, "kind": STR, "target": STR, "features": list, "at": STR, "by": OPT_STR,
                       "summary": STR, "source": STR, "paths": list, "diff": dict, "diff_excerpt": list},
    "model_migrations": {"change_id": STR, "migration": ("pin", "provider-side"), "from": OPT_STR, "to": OPT_STR,
                         "features": list, "at": STR, "in_flight": BOOL},
    "other_changes": {"change_id": STR, "kind": STR, "target": STR, "at": STR},
    "judge": {"run_id": STR, "at": STR, "metric": OPT_STR, "judge_id": OPT_STR},
    "slos": {"slo": STR, "feature": STR, "metric": STR, "state": ("ok", "ticket", "page", "no_data"), "sli": OPT_NUM,
             "objective": NUM, "budget_left": OPT_NUM, "events": int, "alerts_sent": int},
    "incidents": {"incident": STR, "state": ("open", "acknowledged", "resolved"), "feature": STR, "metric": STR,
                  "change_id": OPT_STR, "cause_confirmed": BOOL, "eval_cases_exported": int, "pending": list},
    "rollbacks": {"action": STR, "at": STR, "kind": STR, "commit": OPT_STR, "undoes": list, "incident": OPT_STR},
}
BORDERLINE = {"drop": {"feature": STR, "metric": STR, "slice": dict, "onset": STR, "p_value": OPT_NUM,
                       "strength": ("significant", "possible", "recovered"), "changes_near_onset": list},
              "near_slo": {"slo": STR, "slice": dict, "sli": NUM, "objective": NUM, "burn": NUM, "burn_lower": NUM,
                           "events": int, "state": ("near budget", "beyond budget")}}


def check(value, spec, where: str) -> None:
    if isinstance(spec, tuple) and spec and all(isinstance(s, str) for s in spec):
        assert value in spec, f"{where}: {value!r} not one of {spec}"
    elif isinstance(spec, dict):
        assert isinstance(value, dict), f"{where}: not an object"
        for k, s in spec.items():
            assert k in value, f"{where}: missing {k}"
            check(value[k], s, f"{where}.{k}")
    else:
        assert isinstance(value, spec) and not (spec in (int, NUM, OPT_NUM) and isinstance(value, bool)), \
            f"{where}: {value!r} is not {spec}"


def test_json_envelope_is_valid(flow):
    doc = flow.doc
    assert doc["schema"] == "oncall-ai/digest/v1"
    assert parse_time_ms(doc["at"]) == TD and parse_time_ms(doc["since"]) == TD - 7 * 24 * HOUR
    assert list(doc) == ["schema", "title", "since", "at", "window", "prompt_changes", "model_migrations",
                         "borderline", "judge", "slos", "incidents", "rollbacks", "other_changes", "notes"]
    for name in ("prompt_changes", "model_migrations", "borderline", "judge", "slos", "incidents", "rollbacks",
                 "other_changes"):
        check(doc[name], SECTION, name)
        assert doc[name]["status"] == "ok", (name, doc[name]["note"])  # every source is configured
        for i, it in enumerate(doc[name]["items"]):
            spec = BORDERLINE[it["type"]] if name == "borderline" else ITEM_KEYS[name]
            check(it, spec, f"{name}[{i}]")
    check(doc["judge"], {"drift": list, "changes": list}, "judge")
    assert isinstance(doc["notes"], list)


# --- every section, against an independent source --------------------------------------------------

def test_every_change_is_shown_with_its_change_id(flow):
    listed = {c["id"] for c in flow.changes["changes"]}
    doc = flow.doc
    shown = ({it["change_id"] for s in ("prompt_changes", "model_migrations", "other_changes") for it in doc[s]["items"]}
             | {c["change_id"] for c in doc["judge"]["changes"]})
    assert shown == listed
    assert change_ids_in(doc) <= listed  # incidents, rollbacks, borderline: ids as `changes list` gives them


def test_prompt_diffs(flow):
    items = flow.doc["prompt_changes"]["items"]
    prompt_ids = {c["id"] for c in flow.changes["changes"] if c["kind"] == "prompt"}
    assert {it["change_id"] for it in items} == prompt_ids
    bad = next(it for it in items if it["change_id"] == flow.gt["change_id"])
    listed = next(c for c in flow.changes["changes"] if c["id"] == flow.gt["change_id"] and c["kind"] == "prompt")
    assert (bad["by"], bad["at"], bad["features"]) == (listed["by"], listed["at"], listed["features"])
    numstat = subprocess.run(["git", "-C", str(flow.sb / "prompts"), "show", "--numstat", "--format=",
                              flow.gt["change_id"], "--", *bad["paths"]], capture_output=True, text=True,
                             check=True).stdout.split()
    assert (bad["diff"]["added"], bad["diff"]["removed"]) == (int(numstat[0]), int(numstat[1]))
    assert bad["diff_excerpt"] and all(x[0] in "+-" for x in bad["diff_excerpt"])
    assert flow.rollback["commit"] in {it["change_id"] for it in items}  # the rollback commit landed too
    # Markdown: grouped per feature, each with its change id
    section = flow.md.split("## Prompt diffs that landed")[1].split("\n## ")[0]
    assert f"### {flow.gt['feature']}" in section and f"`{flow.gt['change_id']}`" in section


def test_model_migrations(flow):
    items = flow.doc["model_migrations"]["items"]
    pin = next(it for it in items if it["change_id"] == flow.pin_sha)
    assert (pin["migration"], pin["target"], pin["from"], pin["to"]) == ("pin", "rerank", flow.old_rerank, NEW_RERANK)
    assert pin["features"] == ["search"] and pin["in_flight"] is True and pin["traffic"] is None
    assert f"`{flow.pin_sha}`" in flow.md and "not seen in traffic [IN FLIGHT]" in flow.md


def test_borderline_slices(flow):
    doc = flow.doc
    items = doc["borderline"]["items"]
    # the incident's own drop is not repeated as borderline, and the digest says why
    assert not any(it["type"] == "drop" and (it["feature"], it["metric"]) == (flow.gt["feature"], flow.gt["metric"])
                   for it in items)
    assert (f"{flow.gt['feature']}/{flow.gt['metric']}: the drop since" in doc["borderline"]["note"]
            and f"is covered by incident {flow.a['id']} (resolved)" in doc["borderline"]["note"])
    assert f"support/helpfulness: covered by incident {flow.b['id']} (open)" in doc["borderline"]["note"]
    # slices near their SLO, recomputed from the raw event files over the same whole hours
    from oncall_ai.analysis.stats import wilson_lower
    from oncall_ai.config import load_config

    cfg = load_config(flow.sb / "oncall-ai.yaml")
    events = raw_events(flow.sb)
    expected = set()
    for slo in cfg.slos:
        w = min(slo.window_ms, 7 * 24 * HOUR)
        start, end = -(-(TD - w) // HOUR) * HOUR, TD - TD % HOUR
        rule = cfg.metric(slo.metric).good
        mine = [e for e in events if e["feature"] == slo.feature and e["metric"] == slo.metric
                and start <= e["ts_ms"] < end]
        budget = 1 - slo.objective

        def flagged(es, budget=budget, rule=rule):
            bad = sum(1 for e in es if not rule.is_good(float(e["value"])))
            return len(es) >= 30 and wilson_lower(bad, len(es)) / budget >= 0.75

        if flagged(mine):
            expected.add((slo.name, ()))
            continue
        for key in cfg.slices:
            for value in sorted({e["slice"][key] for e in mine}):
                if flagged([e for e in mine if e["slice"][key] == value]):
                    expected.add((slo.name, ((key, value),)))
    got = {(it["slo"], tuple(it["slice"].items())) for it in items if it["type"] == "near_slo"}
    assert got == expected
    assert expected, "the demo's weak slices should be near their SLO"
    for it in items:
        if it["type"] == "drop":
            assert it["next"].startswith(f"oncall-ai triage --feature {it['feature']} --metric {it['metric']}")


def test_judge_section(flow):
    sec = flow.doc["judge"]
    runs = cli_json(flow.sb, "judge", "runs", "--json")["runs"]
    in_window = {r["run_id"] for r in runs if TD - 7 * 24 * HOUR <= parse_time_ms(r["ts"]) <= TD}
    assert {it["run_id"] for it in sec["items"]} == in_window and in_window
    drift = cli_json(flow.sb, "judge", "drift", "--at", at(2 * HOUR), "--json", "--no-traffic")
    assert {d["metric"]: d["drifted"] for d in sec["drift"]} == {
        f["metric"]: f["drifted"] for f in drift["findings"] if f["runs"]}


def test_slo_budget_status(flow):
    check_doc = cli_json(flow.sb, "slo", "check", "--budget", "--at", at(2 * HOUR), "--json")
    want = {s["name"]: (s["state"], s["sli"], s["budget_left"]) for s in check_doc["slos"]}
    got = {s["slo"]: (s["state"], s["sli"], s["budget_left"]) for s in flow.doc["slos"]["items"]}
    assert got.keys() == want.keys()
    for name, (state, sli, left) in want.items():
        assert got[name][0] == state
        assert got[name][1] == pytest.approx(sli, abs=1e-4) if sli is not None else got[name][1] is None
        assert got[name][2] == pytest.approx(left, abs=1e-4) if left is not None else got[name][2] is None


def test_incidents_and_pending_eval_improvements(flow):
    items = {it["incident"]: it for it in flow.doc["incidents"]["items"]}
    a, b = items[flow.a["id"]], items[flow.b["id"]]
    assert a["state"] == "resolved" and a["resolution"] == "rollback"
    assert a["change_id"] == flow.gt["change_id"] and a["cause_confirmed"] is True
    assert a["eval_cases_exported"] == 0
    assert any(f"oncall-ai incident export-cases {flow.a['id']}" in p for p in a["pending"])
    assert b["state"] == "open" and b["change_id"] is None
    assert [it["incident"] for it in flow.doc["incidents"]["items"]] == [flow.b["id"], flow.a["id"]]  # open first
    assert "(1 open, 1 resolved)" in flow.md


def test_rollbacks_done(flow):
    items = flow.doc["rollbacks"]["items"]
    assert len(items) == 1
    rb = items[0]
    assert rb["commit"] == flow.rollback["commit"] and rb["undoes"] == [flow.gt["change_id"]]
    assert rb["incident"] == flow.a["id"] and rb["kind"] == "rollback-prompt"
    assert parse_time_ms(rb["at"]) == T0 + 20 * MIN
    assert f"`{flow.rollback['commit']}`" in flow.md


# --- formats -------------------------------------------------------------------------------------

def test_markdown_is_byte_identical_across_runs(flow):
    again = cli(flow.sb, "digest", "--at", at(2 * HOUR), "--format", "markdown")
    assert again.exit_code == 0
    assert again.stdout.encode() == flow.md.encode()
    out = flow.sb.parent / "digest.md"
    r = cli(flow.sb, "digest", "--at", at(2 * HOUR), "--format", "markdown", "--out", out)
    assert r.exit_code == 0 and r.stdout == "" and out.read_bytes() == flow.md.encode()
    for title in ("## Prompt diffs that landed", "## Model migrations in flight", "## Eval slices flagged borderline",
                  "## Judge calibration and drift", "## SLO budget status", "## Open silent-regression incidents",
                  "## Rollbacks done"):
        assert title in flow.md


def test_text_has_every_section(flow):
    r = cli(flow.sb, "digest", "--at", at(2 * HOUR))
    assert r.exit_code == 0
    for title in ("Prompt diffs that landed", "Model migrations in flight", "Eval slices flagged borderline",
                  "Judge calibration and drift", "SLO budget status", "Open silent-regression incidents",
                  "Rollbacks done"):
        assert f"\n{title}" in r.stdout
    assert flow.gt["change_id"] in r.stdout


# --- posting to Slack ----------------------------------------------------------------------------

class _Hook(BaseHTTPRequestHandler):
    received: list = []
    status = 200

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


@pytest.fixture
def slack():
    _Hook.received, _Hook.status = [], 200
    srv = HTTPServer(("127.0.0.1", 0), _Hook)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{srv.server_port}/services/T000/B000/s3cr3tw3bh00k", hook=_Hook)
    srv.shutdown()


def post_config(flow, **notify) -> Path:
    data = yaml.safe_load((flow.sb / "oncall-ai.yaml").read_text())
    data["notify"] = {"slack_webhook_env": "DIGEST_TEST_SLACK", **notify}
    path = flow.sb / "oncall-ai-post.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_post_to_slack(flow, slack, run_cli, monkeypatch):
    cfg = post_config(flow)
    monkeypatch.setenv("DIGEST_TEST_SLACK", slack.url)
    r = run_cli("--config", cfg, "digest", "--at", at(2 * HOUR), "--format", "markdown", "--post", "slack")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == flow.md  # the Markdown on stdout is unchanged
    assert "s3cr3tw3bh00k" not in r.stderr + r.stdout and "$DIGEST_TEST_SLACK" in r.stderr
    assert "post plan" in r.stderr and "posted to Slack" in r.stderr
    [(path, payload)] = slack.hook.received
    assert path.endswith("s3cr3tw3bh00k")
    text = "\n".join(b["text"]["text"] for b in payload["blocks"])
    assert all(len(b["text"]["text"]) <= 3000 for b in payload["blocks"])
    assert flow.gt["change_id"] in text and flow.a["id"] in text and flow.pin_sha in text
    from oncall_ai.store import open_store

    with open_store(flow.store) as st:
        posts = [d for d in st.get_docs("action") if d.body.get("kind") == "digest-post"]
    assert posts and posts[-1].body["ok"] is True and "s3cr3tw3bh00k" not in json.dumps(posts[-1].body)


def test_post_failure_exits_1_and_keeps_the_markdown(flow, slack, run_cli, monkeypatch):
    cfg = post_config(flow, retries=0)
    monkeypatch.setenv("DIGEST_TEST_SLACK", slack.url)
    slack.hook.status = 500
    r = run_cli("--config", cfg, "digest", "--at", at(2 * HOUR), "--format", "markdown", "--post", "slack")
    assert r.exit_code == 1
    assert r.stdout == flow.md and "posting the digest failed: slack" in r.stderr and "HTTP 500" in r.stderr
    assert "s3cr3tw3bh00k" not in r.stderr


def test_post_dry_run_and_unconfigured(flow, slack, run_cli, monkeypatch):
    monkeypatch.delenv("ONCALL_AI_SLACK_WEBHOOK_URL", raising=False)
    r = run_cli("--config", flow.sb / "oncall-ai.yaml", "digest", "--at", at(2 * HOUR), "--post", "slack")
    assert r.exit_code == 2 and "Slack is not configured" in r.stderr and "ONCALL_AI_SLACK_WEBHOOK_URL" in r.stderr
    r = run_cli("--config", flow.sb / "oncall-ai.yaml", "digest", "--at", at(2 * HOUR), "--post", "slack", "--dry-run")
    assert r.exit_code == 0 and "dry run: nothing is sent" in r.stderr and '"blocks"' in r.stderr
    assert slack.hook.received == []


@pytest.mark.parametrize("args,words", [
    (("--format", "xml"), "--format"), (("--post", "teams"), "--post"), (("--dry-run",), "--dry-run"),
    (("--since", "2h", "--at", "2026-01-01T00:00:00Z", "--until", "x"), "No such option"),
])
def test_bad_options_exit_2(flow, run_cli, args, words):
    r = run_cli("--config", flow.sb / "oncall-ai.yaml", "digest", *args)
    assert r.exit_code == 2 and words in (r.stderr + r.stdout) and "Traceback" not in r.stderr


# --- degrading where nothing is configured --------------------------------------------------------

def test_sections_not_configured(flow, tmp_path, run_cli):
    cfg = tmp_path / "bare.yaml"
    cfg.write_text(f"store: {json.dumps(flow.store)}\n")
    r = run_cli("--config", cfg, "digest", "--at", at(2 * HOUR), "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    for name in ("prompt_changes", "model_migrations", "slos"):
        assert doc[name]["status"] == "not_configured" and doc[name]["note"].startswith("not configured")
    assert doc["incidents"]["status"] == "ok" and len(doc["incidents"]["items"]) == 2
    # what the events still tell: versions seen switching in traffic, with their traffic ids
    for name in ("prompt_changes", "model_migrations"):
        assert all(it["source"] == "traffic" and it["change_id"].startswith("traffic:") for it in doc[name]["items"])
    r = run_cli("--config", cfg, "digest", "--at", at(2 * HOUR), "--format", "markdown")
    assert "not configured: no prompt_repo in the config" in r.stdout
    assert "- not configured: no `slos:` in the config" in r.stdout


def test_a_broken_source_degrades_and_is_named(flow, tmp_path, run_cli):
    data = yaml.safe_load((flow.sb / "oncall-ai.yaml").read_text())
    data.update(store=flow.store, prompt_repo=str(tmp_path / "no-such-repo"),
                pins={"repo": str(flow.sb / "platform"), "file": "models.yaml"},
                indexes={"repo": str(flow.sb / "platform"), "file": "indexes.yaml"},
                judges={"repo": str(flow.sb / "platform"), "file": "judges.yaml"},
                calibration=str(flow.sb / "calibration" / "set.jsonl"))
    cfg = tmp_path / "broken.yaml"
    cfg.write_text(yaml.safe_dump(data))
    r = run_cli("--config", cfg, "digest", "--at", at(2 * HOUR), "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert any("no-such-repo" in n for n in doc["notes"]) and "warning:" in r.stderr and "no-such-repo" in r.stderr
    assert doc["prompt_changes"]["note"] == "some change sources could not be read (see the notes)"
    assert flow.pin_sha in {it["change_id"] for it in doc["model_migrations"]["items"]}  # the other sources still read
    assert doc["slos"]["status"] == "ok" and doc["incidents"]["items"]


def test_digest_settings_are_checked(tmp_path, run_cli):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store: s.db\ndigest: {near_slo_burns: 0.5}\n")
    r = run_cli("--config", cfg, "digest")
    assert r.exit_code == 2 and "digest.near_slo_burns: unknown key" in r.stderr


# --- pure pieces ---------------------------------------------------------------------------------

def test_diff_summary():
    from oncall_ai.digest import diff_summary

    diff = ("diff --git a/p.md b/p.md\n--- a/p.md\n+++ b/p.md\n@@ -1,3 +1,3 @@\n keep\n-old line\n+new line\n"
            "+another\ndiff --git a/q.md b/q.md\n--- a/q.md\n+++ b/q.md\n@@ -1 +0,0 @@\n-gone\n")
    d = diff_summary(diff)
    assert (d["files"], d["added"], d["removed"]) == (2, 2, 2)
    assert d["excerpt"] == ["- old line", "+ new line", "+ another", "- gone"]
    assert diff_summary(None) == {"files": 0, "added": 0, "removed": 0, "excerpt": []}


@pytest.mark.parametrize("evidence,state,share", [
    ([{"feature": "f", "share_new": 0.3, "partial": True, "ramp": [[0, 0.1], [3_600_000, 0.3]]}], "canary", 0.3),
    ([{"feature": "f", "share_new": 1.0, "partial": False, "ramp": []}], "complete", 1.0),
    ([{"feature": "f", "share_new": 1.0}, {"feature": "g", "share_new": 0.5}], "canary", 0.5),
    ([{"feature": "f", "share_new": 0.0, "partial": True}], "rolled back", 0.0),
])
def test_traffic_state(evidence, state, share):
    from oncall_ai.digest import _traffic_state

    t = _traffic_state(evidence)
    assert t["state"] == state and t["share_new"] == share
    assert _traffic_state([]) is None


# --- one digest, two stores ----------------------------------------------------------------------

def test_same_digest_on_both_stores(flows):
    """The same sandbox and the same incident, rollback and resolve on SQLite and on ClickHouse:
    the digest JSON equal field by field, the Markdown byte for byte (but for the folders)."""
    from both_stores import assert_same, strip

    a, b = flows("sqlite"), flows("clickhouse")
    assert (a.a["id"], a.rollback["commit"], a.pin_sha) == (b.a["id"], b.rollback["commit"], b.pin_sha)
    assert_same(strip(a.doc, a.sb), strip(b.doc, b.sb), what="digest --json")
    assert a.md.replace(str(a.sb), "<X>") == b.md.replace(str(b.sb), "<X>")
