"""`oncall-ai triage` end to end on a real store (SQLite and ClickHouse): JSON contract (CONTRACT.md
section 5), exit codes, degraded sources, the report for people (snapshot at 80 columns, NO_COLOR),
and the same findings on both stores."""

from __future__ import annotations

import json
import math
import os
import random
import re
from pathlib import Path

import pytest

from oncall_ai.timeutil import format_time, parse_time_ms

HOUR = 3600
END = 1_790_010_000  # epoch seconds, the "now" of the fixture
ONSET = END - 10 * HOUR - 17 * 60
SNAPSHOTS = Path(__file__).parent / "snapshots"

HYPOTHESIS_KINDS = {"prompt_change", "model_change", "provider_model_change", "index_change", "judge_drift",
                    "input_shift", "recorded_change"}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _events(seed: int, *, drop: float, days: float = 5, per_hour: float = 60, versions: bool = True):
    rng = random.Random(seed)
    t = END - days * 86400
    i = 0
    bad = "b" * 40
    old = "a" * 40
    while True:
        hour = (int(t) // HOUR) % 24
        t += rng.expovariate(per_hour * (1 + 0.5 * math.sin(2 * math.pi * hour / 24)) / HOUR)
        if t >= END:
            break
        lang = rng.choices(["en", "de", "ja"], [0.6, 0.25, 0.15])[0]
        persona = rng.choice(["casual", "legal", "dev"])
        mu = 4.2 + {"ja": -0.5}.get(lang, 0) + {"legal": -0.2}.get(persona, 0)
        after = t >= ONSET
        if after and lang == "de":
            mu -= drop
        i += 1
        common = {"ts": round(t, 3), "feature": "summarizer", "slice": {"language": lang, "persona": persona}}
        if versions:
            common["prompt_version"] = bad if after else old
        yield {**common, "metric": "helpfulness", "id": f"h{i}", "judge_id": "j1",
               "value": min(5, max(1, round(rng.gauss(mu, 0.9))))}
        yield {**common, "metric": "thumbs_down", "id": f"u{i}", "source": "user",
               "value": int(rng.random() < 0.05 + (0.04 if after and lang == "de" else 0))}


CONFIG = """\
store: {store}
metrics:
  helpfulness: {source: judge, good: ">= 4", scale: [1, 5]}
  thumbs_down: {source: user, good: "== 0"}
slices: [persona, language]
features:
  summarizer: {prompts: ["summarizer/**"]}
"""


def _sandbox(tmp_path: Path, store: str, *, drop: float, recorded: list[dict] | None = None, **kw) -> Path:
    from oncall_ai.config import load_config
    from oncall_ai.ingest import ingest_records

    d = tmp_path / "sb"
    d.mkdir()
    (d / "oncall-ai.yaml").write_text(CONFIG.replace("{store}", json.dumps(store)))
    cfg = load_config(d / "oncall-ai.yaml")
    res = ingest_records(_events(7, drop=drop, **kw), config=cfg)
    assert res.rejected == 0
    if recorded:
        from oncall_ai.store import open_store
        from oncall_ai.store.base import Doc

        with open_store(cfg.store, config=cfg) as store:
            store.put_docs("change", [Doc("change", r["id"], parse_time_ms(r["ts"]), r) for r in recorded])
    return d / "oncall-ai.yaml"


@pytest.fixture(scope="module")
def built(tmp_path_factory, make_store_url):
    """built(name, kind) -> config path of the `incident` or `quiet` sandbox in a store of that kind
    (each built once per module)."""
    cache = {}

    def build(name, kind):
        if (name, kind) not in cache:
            cache[(name, kind)] = _sandbox(tmp_path_factory.mktemp(f"{name}-{kind}"), make_store_url(kind),
                                           drop={"incident": 0.9, "quiet": 0.0}[name])
        return cache[(name, kind)]

    return build


@pytest.fixture
def incident(built, store_kind):
    return built("incident", store_kind)


@pytest.fixture
def quiet(built, store_kind):
    return built("quiet", store_kind)


def validate_triage_json(doc: dict, *, feature: str | None = None, metric: str | None = None) -> None:
    """CONTRACT.md section 5, key by key (extra keys are allowed: the contract only grows)."""
    assert doc["schema"] == "oncall-ai/triage/v1"
    assert RFC3339.match(doc["at"]) and RFC3339.match(doc["since"])
    assert isinstance(doc["findings"], list)
    if feature and metric:
        assert len(doc["findings"]) == 1
    for f in doc["findings"]:
        assert isinstance(f["feature"], str) and isinstance(f["metric"], str)
        reg = f["regression"]
        assert isinstance(reg["detected"], bool)
        for k in ("baseline", "current", "delta", "p_value"):
            assert k in reg and (reg[k] is None or isinstance(reg[k], int | float))
        assert "onset" in reg
        if reg["detected"]:
            assert RFC3339.match(reg["onset"])
            assert 0 <= reg["p_value"] <= 1
        assert isinstance(f["slices"], list)
        for s in f["slices"]:
            assert isinstance(s["slice"], dict) and all(isinstance(v, str) for v in s["slice"].values())
            for k in ("baseline", "current", "delta", "share_of_drop"):
                assert s[k] is None or isinstance(s[k], int | float)
            assert isinstance(s["n"], int)
        dec = f["decomposition"]
        assert dec is None or (isinstance(dec["rate"], int | float) and isinstance(dec["mix"], int | float))
        assert isinstance(f["hypotheses"], list)
        ranks = [h["rank"] for h in f["hypotheses"]]
        assert ranks == list(range(1, len(ranks) + 1))
        for h in f["hypotheses"]:
            assert h["kind"] in HYPOTHESIS_KINDS
            assert isinstance(h["target"], str) and h["target"]
            assert 0 <= h["score"] <= 1
            assert isinstance(h["evidence"], list) and all(isinstance(e, str) and e for e in h["evidence"])
            assert h["rollback"] is None or isinstance(h["rollback"], str)
            assert h["runbook"] == f"runbooks/{h['kind']}.md"
            ch = h["change"]
            if ch is not None:
                assert isinstance(ch["id"], str) and RFC3339.match(ch["at"])
                assert "by" in ch and "summary" in ch
        scores = [h["score"] for h in f["hypotheses"]]
        assert scores == sorted(scores, reverse=True)


def _triage(run_cli, config: Path, *args):
    return run_cli("--config", config, "triage", "--at", str(END), *args)


def test_json_matches_contract_and_finds_the_slice(run_cli, incident):
    r = _triage(run_cli, incident, "--feature", "summarizer", "--metric", "helpfulness", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    validate_triage_json(doc, feature="summarizer", metric="helpfulness")
    f = doc["findings"][0]
    assert f["regression"]["detected"] is True
    assert f["regression"]["delta"] < 0
    assert abs(parse_time_ms(f["regression"]["onset"]) - ONSET * 1000) <= 30 * 60_000
    assert f["slices"][0]["slice"] == {"language": "de"}
    assert f["slices"][0]["share_of_drop"] > 0.5
    assert doc["at"] == format_time(END * 1000)


def test_full_scan_lists_every_pair_worst_first(run_cli, incident):
    r = _triage(run_cli, incident, "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    validate_triage_json(doc)
    pairs = [(f["feature"], f["metric"]) for f in doc["findings"]]
    assert sorted(pairs) == [("summarizer", "helpfulness"), ("summarizer", "thumbs_down")]
    detected = [f["regression"]["detected"] for f in doc["findings"]]
    assert detected == sorted(detected, reverse=True)  # regressions first


def test_quiet_store_is_not_a_regression_and_exits_0_even_with_fail_flag(run_cli, quiet):
    r = _triage(run_cli, quiet, "--feature", "summarizer", "--metric", "helpfulness", "--json",
                "--fail-on-regression")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    validate_triage_json(doc, feature="summarizer", metric="helpfulness")
    assert doc["findings"][0]["regression"]["detected"] is False
    assert doc["findings"][0]["hypotheses"] == []
    # nothing found: where to go next if it paged anyway
    assert doc["findings"][0]["runbook"] == "runbooks/false_page.md"
    assert any("runbooks/false_page.md" in n for n in doc["notes"])
    assert (Path(__file__).parents[1] / "runbooks" / "false_page.md").exists()
    text = _triage(run_cli, quiet, "--feature", "summarizer", "--metric", "helpfulness").stdout
    assert text.startswith("NO REGRESSION") and "If this paged: runbooks/false_page.md" in text


def test_a_detected_regression_does_not_point_to_the_false_page_runbook(run_cli, incident):
    doc = json.loads(_triage(run_cli, incident, "--feature", "summarizer", "--metric", "helpfulness",
                             "--json").stdout)
    assert doc["findings"][0]["regression"]["detected"] is True
    assert doc["findings"][0]["runbook"] is None
    assert not any("false_page" in n for n in doc["notes"])


def test_fail_on_regression_exits_1(run_cli, incident):
    r = _triage(run_cli, incident, "--feature", "summarizer", "--metric", "helpfulness", "--fail-on-regression")
    assert r.exit_code == 1
    assert r.stdout.startswith("REGRESSION")
    r = _triage(run_cli, incident, "--feature", "summarizer", "--metric", "helpfulness")
    assert r.exit_code == 0


def test_unknown_metric_is_a_usage_error(run_cli, incident):
    """A typo must not look like a quiet metric (a cron job with --fail-on-regression would never fire)."""
    r = _triage(run_cli, incident, "--feature", "summarizer", "--metric", "helpfulnes", "--json",
                "--fail-on-regression")
    assert r.exit_code == 2 and r.stdout == ""
    assert "unknown metric 'helpfulnes'" in r.stderr and "'helpfulness'" in r.stderr


def test_configured_pair_without_events_gives_exactly_one_finding_saying_too_little_data(run_cli, incident):
    cfg = incident.parent / "with-extra-metric.yaml"
    cfg.write_text(incident.read_text().replace("metrics:\n", "metrics:\n  brevity: {source: judge, good: \">= 4\"}\n"))
    r = _triage(run_cli, cfg, "--feature", "summarizer", "--metric", "brevity", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    validate_triage_json(doc, feature="summarizer", metric="brevity")
    reg = doc["findings"][0]["regression"]
    assert reg["detected"] is False and reg["verdict"] == "insufficient_data"
    assert reg["needed_n"] > 0


def test_too_little_data_says_how_much_is_needed(run_cli, tmp_path, store_url):
    cfg = _sandbox(tmp_path, store_url, drop=0.9, per_hour=0.5)
    r = _triage(run_cli, cfg, "--feature", "summarizer", "--metric", "helpfulness")
    assert r.exit_code == 0
    assert r.stdout.startswith("TOO LITTLE DATA")
    assert "needed" in r.stdout


def test_recorded_change_and_no_version_tags_degrade_cleanly(run_cli, tmp_path, store_url):
    onset = format_time(ONSET * 1000)
    recorded = [{"id": "cfg-1", "ts": onset, "kind": "config", "target": "gateway/summarizer/timeout",
                 "features": ["summarizer"], "by": "dana", "summary": "timeout 30s -> 45s",
                 "rollback": "kubectl set env deploy/gw TIMEOUT=30s"}]
    cfg = _sandbox(tmp_path, store_url, drop=0.9, versions=False, recorded=recorded)
    r = _triage(run_cli, cfg, "--feature", "summarizer", "--metric", "helpfulness", "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    validate_triage_json(doc, feature="summarizer", metric="helpfulness")
    f = doc["findings"][0]
    assert any("version tags" in n for n in f["notes"])
    rec = [h for h in f["hypotheses"] if h["kind"] == "recorded_change"]
    if rec:  # present when the changes module is installed
        assert rec[0]["rollback"] == "kubectl set env deploy/gw TIMEOUT=30s"
        assert rec[0]["change"]["id"] == "cfg-1"


def test_unreachable_repos_and_missing_calibration_degrade_to_notes(run_cli, tmp_path, store_url):
    """The prompt repo, the platform repo and the calibration set are all configured and all
    missing: triage still gives its verdict and slices (exit 0), and says what it could not read."""
    cfg = _sandbox(tmp_path, store_url, drop=0.9)
    cfg.write_text(cfg.read_text() + "prompt_repo: /nonexistent/prompts\n"
                   "pins: {repo: /nonexistent/platform, file: models.yaml}\n"
                   "judges: {repo: /nonexistent/platform, file: judges.yaml}\n"
                   "calibration: /nonexistent/calibration.jsonl\n")
    r = _triage(run_cli, cfg, "--feature", "summarizer", "--metric", "helpfulness", "--json")
    assert r.exit_code == 0, r.stderr
    assert "Traceback" not in r.stderr
    doc = json.loads(r.stdout)
    validate_triage_json(doc, feature="summarizer", metric="helpfulness")
    f = doc["findings"][0]
    assert f["regression"]["detected"] is True
    assert any(s["slice"] == {"language": "de"} for s in f["slices"])
    said = " ".join(doc.get("notes", []) + f["notes"])
    assert "/nonexistent/prompts" in said and "/nonexistent/platform" in said
    assert "no calibration runs for helpfulness" in said
    # The people's report says it too, and still names the slice.
    r = _triage(run_cli, cfg, "--feature", "summarizer", "--metric", "helpfulness")
    assert r.exit_code == 0 and "language=de" in r.stdout and "/nonexistent/prompts" in r.stdout + r.stderr


@pytest.mark.parametrize("args,word", [(["--at", "yesterday"], "--at"),
                                       (["--at", str(END), "--since", "soon"], "--since")])
def test_bad_time_options_are_usage_errors(incident, capsys, args, word):
    from oncall_ai.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--config", str(incident), "triage", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert word in err and "Traceback" not in err


def test_report_snapshot_at_80_columns(run_cli, incident, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("NO_COLOR", "1")
    r = _triage(run_cli, incident, "--feature", "summarizer", "--metric", "helpfulness")
    assert r.exit_code == 0
    out = r.stdout
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "\x1b[" not in out  # NO_COLOR: no escape codes
    path = SNAPSHOTS / "triage_report_80.txt"
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(out)
    assert out == path.read_text()


def test_commands_in_the_report_stay_pasteable_at_80_columns(run_cli, incident, monkeypatch):
    """A command too long for the line is continued with ` \\`, never hard-wrapped mid-command, and
    wrapped evidence keeps its indent."""
    monkeypatch.setenv("COLUMNS", "80")
    r = _triage(run_cli, incident, "--feature", "summarizer", "--metric", "helpfulness")
    lines = r.stdout.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("Confirm: "))
    pasted = ""
    while True:
        part = lines[i].removeprefix("Confirm: ").strip()
        pasted += part.removesuffix("\\").rstrip() + " "
        if not part.endswith("\\"):
            break
        i += 1
    assert pasted.strip() == "oncall-ai scores --feature summarizer --metric helpfulness --by prompt_version --since 24h"
    body = lines[lines.index("Hypotheses (most likely first; score = share of belief):") + 1:]
    assert all(line.startswith(("   ", "1.", "2.", "3.", "4.", "5.")) or not line.strip()
               for line in body[:body.index("")])


@pytest.mark.parametrize("args", [
    ["--json"],
    ["--feature", "summarizer", "--metric", "helpfulness", "--json"],
    ["--feature", "summarizer", "--metric", "thumbs_down", "--since", "2d", "--json"],
    ["--feature", "summarizer", "--metric", "helpfulness"],
])
def test_same_findings_on_both_stores(run_cli, built, monkeypatch, args):
    """The same events in SQLite and in ClickHouse: the same regression, slices, decomposition and
    ranked hypotheses, field by field (and the same report, character by character)."""
    from both_stores import assert_same

    monkeypatch.setenv("COLUMNS", "100")
    a = _triage(run_cli, built("incident", "sqlite"), *args)
    b = _triage(run_cli, built("incident", "clickhouse"), *args)
    assert a.exit_code == b.exit_code == 0, (a.stderr, b.stderr)
    if "--json" in args:
        found = json.loads(a.stdout)["findings"]
        assert any(f["regression"]["detected"] and f["hypotheses"] for f in found) or "thumbs_down" in args
        assert_same(a.stdout, b.stdout, what=" ".join(args))
    else:
        assert a.stdout.startswith("REGRESSION")
        assert a.stdout == b.stdout


@pytest.mark.parametrize("columns", ["80", "70"])
def test_full_scan_summary_keeps_verdict_and_onset_whole_when_narrow(run_cli, incident, monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", columns)
    r = _triage(run_cli, incident)
    assert r.exit_code == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith("summarizer/helpfulness"))
    assert len(row) <= int(columns)
    assert re.search(r" REGRESSION .* \d\d \d\d:\d\d ", row), row
