"""CONTRACT.md, promise by promise, end to end through the CLI.

Users' pipelines and runbook scripts depend on these formats, options, JSON keys and exit codes:
a change that breaks one of them must fail here. Most checks run on one small demo sandbox
(prompt_change, 3 days, half volume) built once for the module and only read; checks that write
(ingest, recorded changes, calibration runs) use a fresh store next to it (`--store`).
Extra keys and options are fine (the contract only grows); renamed or missing ones are not.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import pytest

from oncall_ai.timeutil import format_time, parse_time_ms

AT = "2026-11-27T03:00:00Z"
AT_MS = parse_time_ms(AT)
H_MS = 3_600_000
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
SHA = re.compile(r"^[0-9a-f]{40}$")
HYPOTHESIS_KINDS = {"prompt_change", "model_change", "provider_model_change", "index_change", "judge_drift",
                    "input_shift", "recorded_change"}
CHANGE_KINDS = {"prompt", "model", "index", "judge", "traffic", "config", "other"}


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    """The demo sandbox: read-only for the tests below."""
    from oncall_ai.demo import build_sandbox

    info = build_sandbox(tmp_path_factory.mktemp("contract") / "sb", "prompt_change", seed=3, now_ms=AT_MS,
                         days=3, scale=0.5)
    return info


@pytest.fixture
def cli(run_cli, sb):
    """Run a command against the sandbox's config."""
    def _run(*args, **kw):
        return run_cli("--config", sb.config_path, *args, **kw)
    return _run


@pytest.fixture
def fresh(run_cli, sb, tmp_path):
    """Run a command with the sandbox's config (repos, metrics, calibration set) on an empty store."""
    store = tmp_path / "fresh.db"

    def _run(*args, **kw):
        return run_cli("--config", sb.config_path, "--store", store, *args, **kw)
    return _run


def one_json(r, schema: str) -> dict:
    """`--json`: exactly one JSON object on stdout, with its schema name and version."""
    assert "Traceback" not in r.stderr
    doc = json.loads(r.stdout)  # raises if stdout holds anything but one JSON value
    assert isinstance(doc, dict)
    assert doc["schema"] == schema
    return doc


def no_traceback(r):
    assert "Traceback" not in r.stdout + r.stderr


# --- the windowed commands: --at on each, the JSON envelopes of section 6 ---------------------

WINDOWED = [
    (("scores",), "oncall-ai/scores/v1"),
    (("changes", "list"), "oncall-ai/changes/v1"),
    (("triage",), "oncall-ai/triage/v1"),
    (("judge", "drift"), "oncall-ai/judge-drift/v1"),
    (("slo", "status"), "oncall-ai/slo-status/v1"),
    (("slo", "check"), "oncall-ai/slo-check/v1"),
    (("digest",), "oncall-ai/digest/v1"),
]


def _has_command(words) -> bool:
    import typer

    from oncall_ai.cli import app

    group = typer.main.get_command(app)
    cmd = group
    for w in words:
        sub = getattr(cmd, "commands", {}).get(w)
        if sub is None:
            return False
        cmd = sub
    return True


@pytest.mark.parametrize("words, schema", WINDOWED, ids=[" ".join(w) for w, _ in WINDOWED])
def test_every_windowed_command_takes_at_and_prints_one_json_object(cli, words, schema):
    if not _has_command(words):
        pytest.skip(f"`{' '.join(words)}` is not built on this branch yet")
    r = cli(*words, "--at", AT, "--json")
    assert r.exit_code in ((0, 1, 2) if words == ("slo", "check") else (0,)), r.stderr
    doc = one_json(r, schema)
    if "at" in doc:
        assert doc["at"] == AT


@pytest.mark.parametrize("words", [w for w, _ in WINDOWED] + [("export", "prometheus")],
                         ids=[" ".join(w) for w, _ in WINDOWED] + ["export prometheus"])
@pytest.mark.parametrize("bad", ["yesterday", "2026-11-27T03:00:00", "1795000000000"])
def test_a_bad_at_is_a_usage_error(cli, words, bad):
    if not _has_command(words):
        pytest.skip(f"`{' '.join(words)}` is not built on this branch yet")
    r = cli(*words, "--at", bad)
    no_traceback(r)
    assert r.exit_code == (3 if words == ("slo", "check") else 2)
    assert "--at" in r.stderr


def test_at_replays_the_same_answer(cli):
    """Evaluating 'as if it were that time' must not depend on the clock."""
    a = cli("scores", "--at", AT, "--since", "6h", "--by", "language", "--json")
    b = cli("scores", "--at", str(AT_MS // 1000), "--since", "6h", "--by", "language", "--json")
    assert a.exit_code == b.exit_code == 0
    assert a.stdout == b.stdout
    t1 = cli("triage", "--at", AT, "--json")
    t2 = cli("triage", "--at", AT, "--json")
    assert t1.stdout == t2.stdout


@pytest.mark.parametrize("since, expect", [("6h", AT_MS - 6 * H_MS), ("90m", AT_MS - 90 * 60_000),
                                           ("1d", AT_MS - 24 * H_MS), ("2026-11-26T15:00:00Z", AT_MS - 12 * H_MS)])
def test_since_takes_durations_and_times(cli, since, expect):
    doc = one_json(cli("scores", "--at", AT, "--since", since, "--json"), "oncall-ai/scores/v1")
    assert parse_time_ms(doc["since"]) == expect
    assert doc["until"] == AT


# --- section 6: scores ----------------------------------------------------------------------------

def test_scores_json_rows(cli, sb):
    feature, metric = sb.ground_truth["feature"], sb.ground_truth["metric"]
    doc = one_json(cli("scores", "-f", feature, "-m", metric, "--at", AT, "--json"), "oncall-ai/scores/v1")
    assert len(doc["rows"]) == 1
    row = doc["rows"][0]
    assert row["slice"] == {} and row["bucket"] is None
    assert isinstance(row["count"], int) and row["count"] > 0
    assert isinstance(row["mean"], float)
    assert row["good_share"] is None or 0 <= row["good_share"] <= 1
    low, high = row["ci"]
    assert low <= row["mean"] <= high

    doc = one_json(cli("scores", "-f", feature, "-m", metric, "--at", AT, "--by", "language,persona",
                       "--bucket", "1h", "--json"), "oncall-ai/scores/v1")
    assert doc["rows"]
    for row in doc["rows"]:
        assert set(row["slice"]) <= {"language", "persona"} and row["slice"]
        assert RFC3339.match(row["bucket"])
        for key in ("count", "mean", "good_share", "ci"):
            assert key in row
    # the rows add up to the whole
    total = one_json(cli("scores", "-f", feature, "-m", metric, "--at", AT, "--json"), "oncall-ai/scores/v1")
    assert sum(r["count"] for r in doc["rows"]) == total["rows"][0]["count"]


# --- section 3 and 6: changes -------------------------------------------------------------------

def test_changes_list_json_has_every_source_and_key(cli, sb):
    doc = one_json(cli("changes", "list", "--at", AT, "--since", "3d", "--json"), "oncall-ai/changes/v1")
    changes = doc["changes"]
    assert changes
    for ch in changes:
        for key in ("id", "kind", "target", "features", "at", "by", "summary", "source", "rollback"):
            assert key in ch, key
        assert ch["kind"] in CHANGE_KINDS
        assert isinstance(ch["features"], list)
        assert RFC3339.match(ch["at"])
        assert parse_time_ms(ch["at"]) <= AT_MS
    ids = {ch["id"] for ch in changes}
    assert sb.ground_truth["change_id"] in ids  # a git change: its full sha
    recorded = [json.loads(line) for line in sb.changes_path.read_text().splitlines() if line.strip()]
    in_window = [r for r in recorded if AT_MS - 72 * H_MS <= parse_time_ms(r["ts"]) <= AT_MS]
    assert in_window and {r["id"] for r in in_window} <= ids  # a recorded change: its id
    git_changes = [ch for ch in changes if ch["kind"] == "prompt" and ch["source"] != "recorded"]
    assert git_changes and all(SHA.match(ch["id"]) for ch in git_changes)


def test_changes_list_window_follows_at(cli, sb):
    onset = parse_time_ms(sb.ground_truth["onset"])
    before = one_json(cli("changes", "list", "--at", format_time(onset - 2 * H_MS), "--since", "3d", "--json"),
                      "oncall-ai/changes/v1")
    assert sb.ground_truth["change_id"] not in {c["id"] for c in before["changes"]}


def test_recorded_changes_import_and_record(fresh, tmp_path):
    path = tmp_path / "changes.jsonl"
    good = {"id": "idx-rebuild-1", "ts": "2026-11-26T20:00:00Z", "kind": "index", "target": "kb-docs",
            "features": ["search"], "from": "v41", "to": "v42", "by": "index-bot", "summary": "nightly rebuild",
            "rollback": "indexctl pin kb-docs v41"}
    everyone = {"id": "cfg-1", "ts": "2026-11-26T21:00:00Z", "kind": "config", "target": "gateway/timeout"}
    path.write_text("\n".join([
        json.dumps(good),
        json.dumps({"id": "bad-kind", "ts": "2026-11-26T20:00:00Z", "kind": "weather", "target": "x"}),
        json.dumps({"ts": "2026-11-26T20:00:00Z", "kind": "index", "target": "x"}),  # no id
        json.dumps({"id": "no-target", "ts": "2026-11-26T20:00:00Z", "kind": "index"}),
        json.dumps({"id": "bad-ts", "ts": "last night", "kind": "index", "target": "x"}),
        json.dumps(everyone),
    ]) + "\n")
    r = fresh("changes", "import", path)
    no_traceback(r)
    assert r.exit_code == 1  # rejected records are a problem it reports
    for line in (2, 3, 4, 5):
        assert f"{path.name}:{line}" in r.stderr
    r = fresh("changes", "import", path)  # duplicates by id are ignored
    assert r.exit_code == 1

    r = fresh("changes", "record", "--kind", "model", "--target", "summarizer", "--from", "m-1", "--to", "m-2",
              "--at", "2026-11-26T22:00:00Z", "--by", "me", "--summary", "pin bump", "--rollback", "undo it",
              "--features", "summarizer", "--id", "rec-1")
    assert r.exit_code == 0, r.stderr
    r = fresh("changes", "record", "--kind", "model", "--target", "summarizer", "--at", "2026-11-26T22:00:00Z",
              "--id", "rec-1")
    assert r.exit_code == 0
    r = fresh("changes", "record", "--kind", "weather", "--target", "x")
    assert r.exit_code == 2 and "--kind" in r.stderr

    doc = one_json(fresh("changes", "list", "--at", AT, "--since", "1d", "-k", "index,config,model", "--json"),
                   "oncall-ai/changes/v1")
    recorded = [c for c in doc["changes"] if c["source"] == "recorded"]
    by_id = {c["id"]: c for c in recorded}
    assert sorted(by_id) == ["cfg-1", "idx-rebuild-1", "rec-1"]  # stored once each
    idx = by_id["idx-rebuild-1"]
    assert (idx["kind"], idx["target"], idx["features"], idx["by"], idx["summary"], idx["rollback"]) == (
        "index", "kb-docs", ["search"], "index-bot", "nightly rebuild", "indexctl pin kb-docs v41")
    assert idx["at"] == "2026-11-26T20:00:00Z"
    assert by_id["rec-1"]["features"] == ["summarizer"]
    # `features` absent means every feature
    for feature in ("summarizer", "support", "search"):
        doc = one_json(fresh("changes", "list", "--at", AT, "--since", "1d", "-k", "config", "-f", feature,
                             "--json"), "oncall-ai/changes/v1")
        assert "cfg-1" in {c["id"] for c in doc["changes"]}


# --- section 4: judge calibration ------------------------------------------------------------------

def test_judge_runs_import_is_idempotent_and_drift_json(fresh, sb, tmp_path):
    items = [json.loads(line) for line in sb.calibration_set.read_text().splitlines() if line.strip()]
    for item in items[:3]:  # the set's format
        for key in ("id", "metric", "input", "output", "human_score"):
            assert key in item
    metric = items[0]["metric"]
    mine = [i for i in items if i["metric"] == metric][:40]
    run = tmp_path / "run.jsonl"
    rows = []
    for n, ts in ((1, "2026-11-25T02:00:00Z"), (2, "2026-11-26T02:00:00Z")):
        for k, item in enumerate(mine):
            score = None if k == 0 else item["human_score"]  # null: the judge refused or failed
            rows.append({"run_id": f"qa-run-{n}", "ts": ts, "judge_id": "qa-judge", "item_id": item["id"],
                         "score": score})
    run.write_text("".join(json.dumps(r) + "\n" for r in rows))
    first = one_json(fresh("judge", "import-run", run, "--json"), "oncall-ai/judge-import/v1")
    again = one_json(fresh("judge", "import-run", run, "--json"), "oncall-ai/judge-import/v1")
    assert first["new"] == len(rows) and again["new"] == 0

    doc = one_json(fresh("judge", "drift", "--metric", metric, "--at", AT, "--json"), "oncall-ai/judge-drift/v1")
    (finding,) = doc["findings"]
    assert finding["metric"] == metric
    assert finding["drifted"] is False and finding["since_run"] is None
    assert [r["run_id"] for r in finding["runs"]] == ["qa-run-1", "qa-run-2"]
    # --at: a run after that time is not seen yet
    doc = one_json(fresh("judge", "drift", "--metric", metric, "--at", "2026-11-25T12:00:00Z", "--json"),
                   "oncall-ai/judge-drift/v1")
    assert [r["run_id"] for r in doc["findings"][0]["runs"]] == ["qa-run-1"]

    bad = tmp_path / "bad-run.jsonl"
    bad.write_text(json.dumps({"run_id": "qa-run-3", "ts": "2026-11-26T03:00:00Z", "judge_id": "qa-judge",
                               "item_id": "no-such-item", "score": 3}) + "\n")
    r = fresh("judge", "import-run", bad)
    no_traceback(r)
    assert r.exit_code == 1 and "bad-run.jsonl:1" in r.stderr
    runs = one_json(fresh("judge", "runs", "--json"), "oncall-ai/judge-runs/v1")
    assert "qa-run-3" not in json.dumps(runs)  # nothing stored half-way


# --- section 5: triage ------------------------------------------------------------------------------

def validate_triage(doc: dict) -> None:
    assert doc["schema"] == "oncall-ai/triage/v1"
    assert RFC3339.match(doc["at"]) and RFC3339.match(doc["since"])
    for f in doc["findings"]:
        assert isinstance(f["feature"], str) and isinstance(f["metric"], str)
        reg = f["regression"]
        assert isinstance(reg["detected"], bool)
        for key in ("onset", "baseline", "current", "delta", "p_value"):
            assert key in reg
        if reg["detected"]:
            assert RFC3339.match(reg["onset"])
        for s in f["slices"]:
            assert isinstance(s["slice"], dict)
            for key in ("baseline", "current", "delta", "n", "share_of_drop"):
                assert key in s
        assert f["decomposition"] is None or {"rate", "mix"} <= set(f["decomposition"])
        assert [h["rank"] for h in f["hypotheses"]] == list(range(1, len(f["hypotheses"]) + 1))
        for h in f["hypotheses"]:
            assert h["kind"] in HYPOTHESIS_KINDS
            assert isinstance(h["target"], str) and h["target"]
            assert isinstance(h["score"], int | float)
            assert isinstance(h["evidence"], list)
            assert "rollback" in h
            ch = h["change"]
            if ch is not None:
                for key in ("id", "at", "by", "summary"):
                    assert key in ch
                assert RFC3339.match(ch["at"])


def test_triage_json_on_the_planted_incident(cli, sb):
    truth = sb.ground_truth
    r = cli("triage", "-f", truth["feature"], "-m", truth["metric"], "--at", AT, "--json")
    assert r.exit_code == 0, r.stderr
    doc = one_json(r, "oncall-ai/triage/v1")
    validate_triage(doc)
    assert doc["at"] == AT and doc["since"] == format_time(AT_MS - 24 * H_MS)
    (f,) = doc["findings"]  # --feature and --metric: exactly one
    assert (f["feature"], f["metric"]) == (truth["feature"], truth["metric"])
    assert f["regression"]["detected"] is True
    assert f["hypotheses"]
    ids = [h["change"]["id"] for h in f["hypotheses"] if h["change"]]
    git_ids = [h["change"]["id"] for h in f["hypotheses"] if h["kind"] == "prompt_change" and h["change"]]
    assert git_ids and all(SHA.match(i) for i in git_ids)  # a change found in git: its full sha
    assert truth["change_id"] in ids


def test_triage_full_scan_worst_first(cli):
    doc = one_json(cli("triage", "--at", AT, "--json"), "oncall-ai/triage/v1")
    validate_triage(doc)
    pairs = [(f["feature"], f["metric"]) for f in doc["findings"]]
    assert len(pairs) == len(set(pairs)) and len(pairs) > 1  # one entry per (feature, metric)
    detected = [f["regression"]["detected"] for f in doc["findings"]]
    assert detected == sorted(detected, reverse=True)


def test_triage_since_and_feature_filter(cli, sb):
    feature = sb.ground_truth["feature"]
    doc = one_json(cli("triage", "-f", feature, "--since", "12h", "--at", AT, "--json"), "oncall-ai/triage/v1")
    assert doc["since"] == format_time(AT_MS - 12 * H_MS)
    assert doc["findings"] and {f["feature"] for f in doc["findings"]} == {feature}


def test_triage_exit_codes(cli, sb):
    truth = sb.ground_truth
    pair = ("-f", truth["feature"], "-m", truth["metric"], "--at", AT)
    assert cli("triage", *pair).exit_code == 0  # exit 0 whenever it ran...
    assert cli("triage", *pair, "--fail-on-regression").exit_code == 1  # ...unless asked
    quiet = ("-f", truth["feature"], "-m", truth["metric"], "--at", format_time(parse_time_ms(truth["onset"]) - 6 * H_MS))
    r = cli("triage", *quiet, "--fail-on-regression", "--json")
    assert r.exit_code == 0
    assert one_json(r, "oncall-ai/triage/v1")["findings"][0]["regression"]["detected"] is False


# --- section 1: ingest ------------------------------------------------------------------------------

def _event(i, **kw):
    e = {"ts": AT_MS / 1000 - 600 - i, "feature": "summarizer", "metric": "helpfulness", "value": 4}
    e.update(kw)
    return e


def _fresh_scores(fresh, *args):
    return one_json(fresh("scores", "--at", AT, "--since", "1h", *args, "--json"), "oncall-ai/scores/v1")["rows"]


def test_ingest_formats_and_idempotency(fresh, tmp_path, monkeypatch):
    jl = tmp_path / "a.jsonl"
    jl.write_text("".join(json.dumps(_event(i, id=f"a{i}", value=3 + i % 3,
                                            slice={"persona": "dev", "language": "de"})) + "\n" for i in range(10)))
    gz = tmp_path / "b.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write("".join(json.dumps(_event(i, id=f"b{i}", ts=format_time(AT_MS - 900_000 - i * 1000))) + "\n"
                         for i in range(5)))
    csv = tmp_path / "c.csv"
    csv.write_text("ts,feature,metric,value,slice.persona,id\n"
                   + "".join(f"{format_time(AT_MS - 1_200_000)},summarizer,helpfulness,5,pro,c{i}\n" for i in range(4)))
    r = fresh("ingest", jl, gz, csv, "--json")
    assert r.exit_code == 0, r.stderr
    doc = one_json(r, "oncall-ai/ingest/v1")
    assert doc["stored"] == 19 and doc["rejected"] == 0
    # stdin
    r = fresh("ingest", "-", input=json.dumps(_event(0, id="s0", metric="schema_valid", value=True)) + "\n")
    assert r.exit_code == 0, r.stderr
    # the same ids again change nothing
    r = fresh("ingest", jl, gz, csv, "--json")
    assert r.exit_code == 0
    assert one_json(r, "oncall-ai/ingest/v1")["stored"] == 0

    rows = {tuple(sorted(row["slice"].items())): row for row in _fresh_scores(fresh, "-m", "helpfulness", "--by", "persona")}
    assert rows[(("persona", "dev"),)]["count"] == 10
    assert rows[(("persona", "pro"),)]["count"] == 4
    assert sum(r["count"] for r in rows.values()) == 19
    (check,) = _fresh_scores(fresh, "-m", "schema_valid")
    assert check["count"] == 1 and check["mean"] == 1.0  # true is 1


def test_ingest_without_id_hashes_the_record(fresh, tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_text(json.dumps(_event(1)) + "\n" + json.dumps(_event(2)) + "\n")
    b = tmp_path / "b.jsonl"
    b.write_text(json.dumps(_event(1)) + "\n")  # the same record, another file
    assert fresh("ingest", a).exit_code == 0
    r = fresh("ingest", b, "--json")
    assert r.exit_code == 0
    assert one_json(r, "oncall-ai/ingest/v1")["stored"] == 0
    assert _fresh_scores(fresh)[0]["count"] == 2


def test_ingest_source_defaults_to_the_metric_config(fresh, tmp_path):
    f = tmp_path / "u.jsonl"
    f.write_text(json.dumps(_event(1, metric="thumbs_down", value=False)) + "\n"
                 + json.dumps(_event(2, metric="helpfulness", value=4)) + "\n")
    assert fresh("ingest", f).exit_code == 0
    (user,) = _fresh_scores(fresh, "-m", "thumbs_down", "--where", "source=user")
    assert user["count"] == 1
    (judge,) = _fresh_scores(fresh, "-m", "helpfulness", "--where", "source=judge")
    assert judge["count"] == 1


def test_ingest_rejects_bad_records_and_keeps_the_good(fresh, tmp_path):
    lines = [
        json.dumps(_event(1, id="ok-1")),
        '{"ts": "2026-11-27T02:00:00Z", "feature": "summarizer", "metric": "helpfulness", "value": NaN}',
        json.dumps(_event(2, ts="2026-11-27T02:00:00")),  # no offset
        json.dumps({k: v for k, v in _event(3).items() if k != "value"}),
        json.dumps(_event(4, value="four")),
        json.dumps(_event(5, source="robot")),
        json.dumps(_event(6, sample_rate=1.5)),
        json.dumps(_event(7, value=9)),  # outside the 1..5 scale the config declares
        "{not json",
        *[json.dumps(_event(9, feature="")) for _ in range(10)],  # enough for "... and N more"
        json.dumps(_event(8, id="ok-2")),
    ]
    f = tmp_path / "mixed.jsonl"
    f.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.jsonl"
    r = fresh("ingest", f, "--rejects", rejects)
    no_traceback(r)
    assert r.exit_code == 1
    assert "mixed.jsonl:2:" in r.stderr and "mixed.jsonl:3:" in r.stderr
    assert "mixed.jsonl:19:" not in r.stderr and "8 more" in r.stderr  # the first few, then a count
    kept = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [k["line"] for k in kept] == list(range(2, 20))
    assert all(k["reason"] for k in kept)
    assert _fresh_scores(fresh)[0]["count"] == 2  # every valid record stored

    r = fresh("ingest", tmp_path / "missing.jsonl")
    no_traceback(r)
    assert r.exit_code == 2 and "missing.jsonl" in r.stderr


# --- section 2: configuration -----------------------------------------------------------------------

def _store_of(run_cli, *args, env=None):
    r = run_cli(*args, "config", "check", "--json", env=env)
    assert r.exit_code in (0, 1), r.stderr  # 1: a configured repo is missing, which is fine here
    return json.loads(r.stdout)["store"]


def test_config_discovery_order(run_cli, tmp_path, monkeypatch):
    for name in ("explicit", "env", "cwd"):
        d = tmp_path / name
        d.mkdir()
        (d / "oncall-ai.yaml").write_text(f"store: data/{name}.db\nprompt_repo: prompts\n")
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.delenv("ONCALL_AI_CONFIG", raising=False)
    assert _store_of(run_cli) == str(tmp_path / "cwd" / "data" / "cwd.db")
    monkeypatch.setenv("ONCALL_AI_CONFIG", str(tmp_path / "env" / "oncall-ai.yaml"))
    assert _store_of(run_cli) == str(tmp_path / "env" / "data" / "env.db")
    assert _store_of(run_cli, "--config", tmp_path / "explicit" / "oncall-ai.yaml") == str(
        tmp_path / "explicit" / "data" / "explicit.db")
    # relative paths resolve against the config file's folder, wherever the command runs
    monkeypatch.chdir(tmp_path)
    r = run_cli("--config", "explicit/oncall-ai.yaml", "config", "check", "--json")
    doc = json.loads(r.stdout)
    assert doc["prompt_repo"] == str(tmp_path / "explicit" / "prompts")


def test_config_example_is_valid(run_cli):
    example = Path(__file__).resolve().parents[1] / "config.example.yaml"
    r = run_cli("--config", example, "config", "check", "--json")
    assert r.exit_code in (0, 1), r.stderr  # 1: its repos do not exist here
    doc = one_json(r, "oncall-ai/config/v1")
    for key in ("store", "prompt_repo", "features", "pins", "indexes", "judges", "metrics", "slices", "slos",
                "calibration"):
        assert key in doc, key


@pytest.mark.parametrize("text, where", [
    ("metrics:\n  helpfulness: {good: 'four or more'}\n", "metrics.helpfulness.good"),
    ("slos:\n  - {name: s, feature: f, metric: m, objective: 99, window: 24h}\n", "slos[0].objective"),
    ("feature: {}\n", "feature"),
    ("store: [x]\n", "store"),
    ("metrics: {a: 1\n", "oncall-ai.yaml:"),
])
def test_config_errors_name_file_and_key_and_exit_2(run_cli, tmp_path, text, where):
    p = tmp_path / "oncall-ai.yaml"
    p.write_text(text)
    for cmd in (("scores",), ("triage",), ("changes", "list"), ("config", "check")):
        r = run_cli("--config", p, *cmd)
        no_traceback(r)
        assert r.exit_code == 2, (cmd, r.stderr)
        assert "oncall-ai.yaml" in r.stderr and where in r.stderr, (cmd, r.stderr)
    r = run_cli("--config", p, "slo", "check")
    assert r.exit_code == 3  # unknown, for monitoring


def test_missing_config_is_exit_2(run_cli, tmp_path):
    r = run_cli("--config", tmp_path / "nope.yaml", "scores")
    no_traceback(r)
    assert r.exit_code == 2 and "nope.yaml" in r.stderr
    r = run_cli("triage", env={"ONCALL_AI_CONFIG": str(tmp_path / "gone.yaml")})
    assert r.exit_code == 2 and "gone.yaml" in r.stderr


# --- slo check: 0 ok, 1 ticket, 2 page, 3 unknown --------------------------------------------------

@pytest.fixture
def slo_store(run_cli, tmp_path):
    """Three checks on every request (one a minute for two days): steady, a slow burn over the last
    8 hours (5% bad, 5x the budget), and a fast burn (every request bad for the last 90 minutes)."""
    events = []
    start = AT_MS - 48 * H_MS
    for feature in ("steady", "slow", "fast"):
        for i in range(48 * 60):
            ts = start + i * 60_000
            recent = AT_MS - ts
            bad = (feature == "slow" and recent <= 8 * H_MS and i % 20 == 0) or (
                feature == "fast" and recent <= 90 * 60_000)
            events.append({"id": f"{feature}-{i}", "ts": ts / 1000, "feature": feature, "metric": "schema_valid",
                           "value": 0 if bad else 1})
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    slos = "".join(f"  - {{name: {f}, feature: {f}, metric: schema_valid, objective: 0.99, window: 24h}}\n"
                   for f in ("steady", "slow", "fast"))
    cfg = tmp_path / "oncall-ai.yaml"
    cfg.write_text("store: slo.db\nfeatures: {steady: {}, slow: {}, fast: {}}\n"
                   "metrics:\n  schema_valid: {source: check, good: '== 1'}\nslos:\n" + slos)
    r = run_cli("--config", cfg, "ingest", tmp_path / "events.jsonl")
    assert r.exit_code == 0, r.stderr
    return cfg


@pytest.mark.parametrize("slo, code", [("steady", 0), ("slow", 1), ("fast", 2)])
def test_slo_check_exit_codes(run_cli, slo_store, slo, code):
    r = run_cli("--config", slo_store, "slo", "check", "--at", AT, "--slo", slo)
    assert r.exit_code == code, r.stdout + r.stderr
    doc = one_json(run_cli("--config", slo_store, "slo", "check", "--at", AT, "--slo", slo, "--json"),
                   "oncall-ai/slo-check/v1")
    assert doc["exit_code"] == code


def test_slo_check_unknown_is_3(run_cli, slo_store, tmp_path):
    r = run_cli("--config", slo_store, "slo", "check", "--at", AT, "--slo", "no-such-slo")
    assert r.exit_code == 3
    r = run_cli("--config", slo_store, "slo", "check", "--at", "soon")
    assert r.exit_code == 3
    shutil.copy(slo_store, tmp_path / "broken.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text(broken.read_text().replace("objective: 0.99", "objective: 1.5"))
    r = run_cli("--config", broken, "slo", "check", "--at", AT)
    no_traceback(r)
    assert r.exit_code == 3 and "slos[0].objective" in r.stderr


# --- exit 2 for usage errors, everywhere --------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("scores", "--since", "whenever"),
    ("scores", "--bucket", "7m"),
    ("scores", "--where", "language"),
    ("triage", "--since", "soon"),
    ("changes", "list", "--since", "a while"),
    ("changes", "list", "--kind", "weather"),
    ("judge", "drift", "--since", "ages"),
    ("scores", "--no-such-option"),
    ("no-such-command",),
])
def test_usage_errors_exit_2(cli, args):
    r = cli(*args)
    no_traceback(r)
    assert r.exit_code == 2, r.stdout + r.stderr
    assert r.stderr.strip()


# --- every --json output: one object with a schema name and version -------------------------------

def _json_commands() -> set[str]:
    """Every command path that has a --json option."""
    import typer

    from oncall_ai.cli import app

    found = set()

    def walk(cmd, path):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, (*path, name))
        elif any("--json" in getattr(p, "opts", ()) for p in cmd.params):
            found.add(" ".join(path))

    walk(typer.main.get_command(app), ())
    return found


# Commands whose --json is checked elsewhere in this module or needs a service (HTTP API, a
# second store, an incident): named here so a new --json command has to be added somewhere.
JSON_CHECKED_ELSEWHERE = {"ingest", "judge import-run", "judge calibrate", "import langfuse", "store copy",
                          "incident open", "incident ack", "incident resolve", "incident list", "incident show",
                          "incident export-cases", "incident postmortem"}


def _json_runs(sb):
    truth = sb.ground_truth
    return {
        "scores": ("scores", "--at", AT),
        "triage": ("triage", "-f", truth["feature"], "-m", truth["metric"], "--at", AT),
        "changes list": ("changes", "list", "--at", AT),
        "changes show": ("changes", "show", truth["change_id"][:12]),
        "changes import": ("changes", "import", str(sb.changes_path)),  # all there already: stores nothing
        "judge drift": ("judge", "drift", "--at", AT),
        "judge runs": ("judge", "runs"),
        "slo status": ("slo", "status", "--at", AT),
        "slo check": ("slo", "check", "--at", AT),
        "store info": ("store", "info"),
        "config check": ("config", "check"),
        "digest": ("digest", "--at", AT),
        "rollback-prompt": ("rollback-prompt", truth["change_id"], "--dry-run"),
        "rollback-pin": ("rollback-pin", "summarizer", "--to", "vendor-x/model-1", "--dry-run"),
    }


def test_every_json_command_is_checked(sb):
    missing = _json_commands() - set(_json_runs(sb)) - JSON_CHECKED_ELSEWHERE
    assert not missing, f"add these --json commands to test_contract.py: {sorted(missing)}"


@pytest.mark.parametrize("name", ["scores", "triage", "changes list", "changes show", "changes import",
                                  "judge drift", "judge runs",
                                  "slo status", "slo check", "store info", "config check", "digest",
                                  "rollback-prompt", "rollback-pin"])
def test_json_output_is_one_object_with_a_schema(cli, sb, name):
    args = _json_runs(sb)[name]
    if not _has_command(args[:1] if " " not in name else args[:2]):
        pytest.skip(f"`{name}` is not built on this branch yet")
    r = cli(*args, "--json")
    assert r.exit_code in ((0, 1, 2) if name == "slo check" else (0,)), r.stderr
    assert "Traceback" not in r.stderr
    doc = json.loads(r.stdout)
    assert isinstance(doc, dict) and re.match(r"^oncall-ai/[a-z][a-z-]*/v\d+$", doc["schema"]), doc.get("schema")
