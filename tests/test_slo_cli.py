"""`slo check` / `slo status` / `slo rules` / `export prometheus` end to end, on a real store
(SQLite and ClickHouse) filled through the ingest API with four event streams: a fast burn, a slow
burn, a short blip and a sparse judge metric whose sampling noise alone crosses the naive page
threshold. Both stores give the same answers."""

from __future__ import annotations

import json

import pytest
import yaml

from oncall_ai.timeutil import parse_time_ms

AT = "2026-11-27T03:00:00Z"
AT_MS = parse_time_ms(AT)
MIN = 60_000
H = 60 * MIN

SLOS = [
    {"name": "fast-schema", "feature": "fast", "metric": "schema_valid", "objective": 0.99, "window": "30d"},
    {"name": "slow-schema", "feature": "slow", "metric": "schema_valid", "objective": 0.99, "window": "30d"},
    {"name": "blip-schema", "feature": "blip", "metric": "schema_valid", "objective": 0.99, "window": "30d"},
    {"name": "judged-help", "feature": "judged", "metric": "helpfulness", "objective": 0.99, "window": "30d"},
]


def base_config(store, **extra):
    cfg = {
        "store": str(store),
        "features": {f: {} for f in ("fast", "slow", "blip", "judged")},
        "metrics": {"schema_valid": {"source": "check", "good": "== 1"},
                    "helpfulness": {"source": "judge", "good": ">= 4", "scale": [1, 5]}},
        "slices": ["language"],
        "slos": [dict(s) for s in SLOS],
    }
    cfg.update(extra)
    return cfg


def stream(feature, metric, start_ms, end_ms, step_ms, is_bad, **kw):
    """One event every step_ms in [start, end); is_bad(i, ts) decides each value."""
    out = []
    i = 0
    ts = start_ms
    while ts < end_ms:
        bad = is_bad(i, ts)
        if metric == "helpfulness":
            value = 2 if bad else 5
        else:
            value = 0 if bad else 1
        out.append({"id": f"{feature}-{i}", "ts": ts / 1000, "feature": feature, "metric": metric, "value": value,
                    "slice": {"language": "de" if i % 3 else "en"}, **kw})
        i += 1
        ts += step_ms
    return out


def build_events():
    start = AT_MS - 3 * 24 * H
    ev = []
    # fast: 0.2% bad, then 40% bad for the last 90 minutes
    ev += stream("fast", "schema_valid", start, AT_MS, 30_000,
                 lambda i, ts: (i % 5 < 2) if ts >= AT_MS - 90 * MIN else (i % 500 == 0))
    # slow: 0.1% bad, then 4% bad for the last 30 hours (ticket pace, far from page pace)
    ev += stream("slow", "schema_valid", start, AT_MS, 30_000,
                 lambda i, ts: (i % 25 == 0) if ts >= AT_MS - 30 * H else (i % 1000 == 0))
    # blip: 0.1% bad, and everything bad for 4 minutes ending 10 minutes ago
    ev += stream("blip", "schema_valid", start, AT_MS, 30_000,
                 lambda i, ts: AT_MS - 14 * MIN <= ts < AT_MS - 10 * MIN or i % 1000 == 0)
    # judged: 1% of ~3,000 responses/h judged (~30/h), 0.5% bad ... (every 200th)
    judged = stream("judged", "helpfulness", start, AT_MS - H, 120_000, lambda i, ts: i % 200 == 0,
                    sample_rate=0.01)
    # ... and a noisy last hour: 25 judged, 5 of them bad (20%, over the 14.4% page threshold),
    # 1 of the last 2 in the final 5 minutes bad
    last = AT_MS - H
    for j in range(25):
        ts = last + j * 140_000 + 1000
        bad = j in (3, 9, 14, 19, 24)
        judged.append({"id": f"judged-last-{j}", "ts": ts / 1000, "feature": "judged", "metric": "helpfulness",
                       "value": 2 if bad else 5, "sample_rate": 0.01, "slice": {"language": "de"}})
    judged.append({"id": "judged-last-x", "ts": (AT_MS - 60_000) / 1000, "feature": "judged",
                   "metric": "helpfulness", "value": 5, "sample_rate": 0.01})
    ev += judged
    return ev


def _fill(url):
    from oncall_ai.config import parse_config
    from oncall_ai.ingest import ingest_records
    from oncall_ai.store import open_store

    cfg = parse_config(base_config(url), path=None)
    store = open_store(url, config=cfg)
    try:
        result = ingest_records(build_events(), config=cfg, store=store)
        assert result.rejected == 0
    finally:
        store.close()
    return url


@pytest.fixture(scope="module")
def store_db(tmp_path_factory):
    """One real SQLite store for the module (ingest is the slow part); test_slo_notify copies its files."""
    from pathlib import Path

    return Path(_fill(str(tmp_path_factory.mktemp("slo-store") / "oncall-ai.db")))


@pytest.fixture(scope="module")
def built(make_store_url):
    """built(kind) -> the URL of a store of that kind holding the four streams (built once)."""
    cache = {}

    def build(kind):
        if kind not in cache:
            cache[kind] = _fill(make_store_url(kind))
        return cache[kind]

    return build


@pytest.fixture
def slo_store(built, store_kind):
    return built(store_kind)


@pytest.fixture
def config_file(tmp_path, slo_store):
    def write(**extra):
        path = tmp_path / "oncall-ai.yaml"
        path.write_text(yaml.safe_dump(base_config(slo_store, **extra)))
        return path
    return write


@pytest.mark.parametrize("name,code,word", [
    ("fast-schema", 2, "PAGE"), ("slow-schema", 1, "TICKET"), ("blip-schema", 0, "OK"), ("judged-help", 0, "OK")])
def test_check_exit_codes_per_stream(run_cli, config_file, name, code, word):
    r = run_cli("--config", config_file(), "slo", "check", "--at", AT, "--slo", name)
    assert r.exit_code == code, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{word} {name}:")


def test_check_all_lines_and_worst_exit(run_cli, config_file):
    r = run_cli("--config", config_file(), "slo", "check", "--at", AT)
    assert r.exit_code == 2
    assert [ln.split()[0] for ln in r.stdout.splitlines()] == ["PAGE", "TICKET", "OK", "OK"]
    assert "page-fast" in r.stdout.splitlines()[0]


def test_check_json(run_cli, config_file):
    r = run_cli("--config", config_file(), "slo", "check", "--at", AT, "--json")
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["schema"] == "oncall-ai/slo-check/v1" and doc["state"] == "page" and doc["exit_code"] == 2
    by = {s["name"]: s for s in doc["slos"]}
    assert by["fast-schema"]["firing"][:1] == ["page-fast"]
    assert by["slow-schema"]["firing"] == ["ticket-fast", "ticket-slow"]
    assert by["blip-schema"]["firing"] == [] and by["judged-help"]["state"] == "ok"
    assert by["fast-schema"]["burn"]["1h"] > 14.4


def test_naive_evaluation_of_the_sampled_stream_would_page(run_cli, config_file):
    """The same judged events treated as unsampled (point estimates) page: the gate is what keeps
    the noise quiet."""
    slos = [dict(s) for s in SLOS if s["name"] == "judged-help"]
    slos[0]["sampled"] = False
    r = run_cli("--config", config_file(slos=slos), "slo", "check", "--at", AT)
    assert r.exit_code == 2, r.stdout


def test_status_explains_why(run_cli, config_file):
    r = run_cli("--config", config_file(), "slo", "status", "--at", AT)
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    blocks = {b.split()[1]: b for b in out.split("\n\n") if b.strip() and not b.startswith("SLO status")}
    assert "page-fast" in blocks["fast-schema"] and "FIRING" in blocks["fast-schema"]
    assert "ticket-fast" in blocks["slow-schema"] and "FIRING" in blocks["slow-schema"]
    assert "short blip" in blocks["blip-schema"]
    judged = blocks["judged-help"]
    assert "sampling noise" in judged and "sample rate 0.01" in judged
    assert "would page in about" in judged or "would not page" in judged
    assert "SLI per" in blocks["fast-schema"]


def test_status_text_fits_an_80_column_terminal(run_cli, config_file):
    """On a terminal, long lines wrap (burn windows never split inside); the words stay the same."""
    from oncall_ai.config import load_config
    from oncall_ai.report.slo import status_text
    from oncall_ai.slos import evaluate_all
    from oncall_ai.store import open_store
    from oncall_ai.timeutil import parse_time_ms

    cfg = load_config(config_file())
    at = parse_time_ms(AT)
    with open_store(cfg.store) as store:
        statuses = evaluate_all(store, cfg, at, details=True)
    wide = status_text(statuses, cfg, at)
    narrow = status_text(statuses, cfg, at, width=80)
    assert max(len(line) for line in wide.splitlines()) > 80  # there is something to wrap
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert narrow.split() == wide.split()
    burn = next(line for line in narrow.splitlines() if line.startswith("  burn:"))
    assert not burn.rstrip().endswith(("m", "h", "d"))  # "1h 0.83x" is never cut after the window


def test_status_json(run_cli, config_file):
    r = run_cli("--config", config_file(), "slo", "status", "--at", AT, "--json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["schema"] == "oncall-ai/slo-status/v1" and doc["at"] == AT
    by = {s["name"]: s for s in doc["slos"]}
    assert [by[n]["state"] for n in ("fast-schema", "slow-schema", "blip-schema", "judged-help")] == \
        ["page", "ticket", "ok", "ok"]
    judged = by["judged-help"]
    assert judged["sampled"] and judged["min_events"] == 20
    fast_pair = judged["pairs"][0]
    assert fast_pair["long_burn"] > 14.4 and fast_pair["long_bad_lower"] < fast_pair["bad_ratio_threshold"]
    assert not fast_pair["firing"]
    sampling = judged["sampling"]
    assert sampling["sample_rate"] == 0.01 and 2000 < sampling["responses_per_hour"] < 4000
    assert sampling["sample_rate_to_page_within"]["seconds"] == 3600
    assert by["fast-schema"]["sampling"] is None
    assert len(by["fast-schema"]["sparkline"]["sli"]) in (24, 25)
    assert by["fast-schema"]["budget_left"] < 1
    for s in doc["slos"]:
        assert {"sli", "budget_left", "windows", "pairs", "reasons", "state", "window"} <= set(s)


def test_replay_before_the_incident_is_quiet(run_cli, config_file):
    r = run_cli("--config", config_file(), "slo", "check", "--at", "2026-11-26T00:00:00Z", "--slo", "fast-schema")
    assert r.exit_code == 0, r.stdout


def test_no_data_is_unknown(run_cli, config_file):
    r = run_cli("--config", config_file(), "slo", "check", "--at", "2026-11-01T00:00:00Z")
    assert r.exit_code == 3
    assert all(ln.startswith("UNKNOWN") for ln in r.stdout.splitlines())


BAD_CONFIGS = [
    ({"objective": 1.5}, "slos[0].objective"),
    ({"objective": 0}, "slos[0].objective"),
    ({"metric": "nope"}, "slos[0].metric"),
    ({"feature": "nope"}, "slos[0].feature"),
    ({"window": "4h"}, "slos[0].window"),
    ({"window": "soon"}, "slos[0].window"),
    ({"severity": "wake-everyone"}, "slos[0].severity"),
    ({"notify": ["email"]}, "slos[0].notify[0]"),
]


@pytest.mark.parametrize("change,key", BAD_CONFIGS)
def test_bad_config_exit_3_from_check_and_2_elsewhere(run_cli, config_file, change, key):
    slos = [dict(SLOS[0], **change)]
    path = config_file(slos=slos)
    r = run_cli("--config", path, "slo", "check", "--at", AT)
    assert r.exit_code == 3
    assert key in r.stderr and "Traceback" not in r.stderr
    assert r.stdout.startswith("UNKNOWN")
    for args in (("slo", "status", "--at", AT), ("slo", "rules")):
        r2 = run_cli("--config", path, *args)
        assert r2.exit_code == 2 and key in r2.stderr


def test_metric_without_good_rule_is_a_config_error(run_cli, config_file):
    path = config_file(metrics={"schema_valid": {"source": "check"}})
    r = run_cli("--config", path, "slo", "check", "--json")
    assert r.exit_code == 3 and "slos[0].metric" in r.stderr and "good" in r.stderr
    assert json.loads(r.stdout)["state"] == "unknown"


def test_missing_config_is_unknown_for_check(run_cli):
    r = run_cli("slo", "check")
    assert r.exit_code == 3 and "no configuration found" in r.stderr


def test_rules_to_file(run_cli, config_file, tmp_path):
    out = tmp_path / "rules.yml"
    r = run_cli("--config", config_file(), "slo", "rules", "--out", out)
    assert r.exit_code == 0 and r.stdout == ""
    groups = yaml.safe_load(out.read_text())["groups"]
    assert {g["name"] for g in groups} >= {f"oncall-ai-slo-alerts-{s['name']}" for s in SLOS}


def test_export_prometheus(run_cli, config_file, tmp_path):
    out = tmp_path / "oncall_ai.prom"
    r = run_cli("--config", config_file(), "export", "prometheus", "--at", AT, "--out", out)
    assert r.exit_code == 0, r.stderr
    text = out.read_text()
    assert text.endswith("\n")
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    fast_total = sum(v for k, v in samples.items()
                     if k.startswith('oncall_ai_eval_events_total{feature="fast",metric="schema_valid"'))
    assert fast_total == 3 * 24 * 120  # one event every 30 s for 3 days
    assert 'oncall_ai_eval_good_total{feature="fast",metric="schema_valid",slice_language="de"}' in samples
    assert text.index("# TYPE oncall_ai_eval_events_total counter") < text.index("oncall_ai_eval_events_total{")
    # replaying an earlier time counts fewer events: counters grow with time
    r2 = run_cli("--config", config_file(), "export", "prometheus", "--at", "2026-11-26T03:00:00Z")
    earlier = sum(float(ln.rsplit(" ", 1)[1]) for ln in r2.stdout.splitlines()
                  if ln.startswith('oncall_ai_eval_events_total{feature="fast"'))
    assert 0 < earlier < fast_total


def test_promtool_accepts_the_exported_counters(config_file, run_cli, tmp_path):
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if not promtool:
        import os

        if os.environ.get("CI") == "true":
            pytest.fail("promtool missing in CI")
        pytest.skip("promtool not installed (bash .ci/setup-promtool.sh)")
    r = run_cli("--config", config_file(), "export", "prometheus", "--at", AT)
    p = subprocess.run([promtool, "check", "metrics"], input=r.stdout, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


def test_missing_store_is_unknown_and_not_created(run_cli, tmp_path, store_kind):
    if store_kind == "sqlite":
        db, word = tmp_path / "nope.db", "no such file"
    else:
        from clickhouse_helpers import server_url

        db, word = f"clickhouse://{server_url().split('://', 1)[1]}/no_such_database", "CREATE DATABASE"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base_config(db)))
    r = run_cli("--config", path, "slo", "check")
    assert r.exit_code == 3 and word in r.stderr and "Traceback" not in r.stderr
    assert r.stdout.startswith("UNKNOWN")
    if store_kind == "sqlite":
        assert not db.exists()
    r = run_cli("--config", path, "slo", "status")
    assert r.exit_code == 2 and word in r.stderr


@pytest.mark.parametrize("at", [AT, "2026-11-27T02:59:59.999Z", "2026-11-26T17:00:00Z", "2026-11-24T03:00:00Z",
                                "2026-11-26T23:31:07.250Z"])
def test_window_counts_match_one_store_query_per_window(slo_store, at):
    """The split of windows into heads, hourly cells, rings and a tail gives the same counts as
    asking the store for each window on its own."""
    from oncall_ai.analysis.slo import windows_needed
    from oncall_ai.config import parse_config
    from oncall_ai.slos import slo_series, window_counts
    from oncall_ai.store import open_store

    extra = [{"name": "judged-24h", "feature": "judged", "metric": "helpfulness", "objective": 0.9, "window": "24h"},
             {"name": "fast-de-7d", "feature": "fast", "metric": "schema_valid", "objective": 0.9, "window": "7d",
              "where": {"language": "de"}}]
    cfg = parse_config(base_config(slo_store, slos=SLOS + extra), path=None)
    at_ms = parse_time_ms(at)
    with open_store(slo_store, create=False) as store:
        everything = store.series()
        by_slo = {s.name: slo_series(everything, s) for s in cfg.slos}
        got = window_counts(store, cfg, list(cfg.slos), by_slo, at_ms)
        for slo in cfg.slos:
            ids = [s.id for s in by_slo[slo.name]]
            for w in windows_needed(slo.window_ms):
                aggs = store.aggregate(ids, at_ms - w, at_ms, good_rule=cfg.metric(slo.metric).good)
                n = sum(a.n for a in aggs.values())
                good = sum(a.good for a in aggs.values())
                assert (got[slo.name][w].n, got[slo.name][w].good) == (n, good), (slo.name, w)


@pytest.mark.parametrize("at", [AT, "2026-11-26T23:31:07.250Z", "2026-11-25T12:00:00Z"])
def test_same_answers_on_both_stores(run_cli, built, tmp_path, at):
    """The same events in SQLite and in ClickHouse: `slo check --json`, `slo status --json` (burn
    rates, bounds, budgets, sparklines, sampling) and the Prometheus counters are equal."""
    from both_stores import assert_same

    out = {}
    for kind in ("sqlite", "clickhouse"):
        path = tmp_path / f"{kind}.yaml"
        path.write_text(yaml.safe_dump(base_config(built(kind))))
        check = run_cli("--config", path, "slo", "check", "--at", at, "--json")
        status = run_cli("--config", path, "slo", "status", "--at", at, "--json")
        prom = run_cli("--config", path, "export", "prometheus", "--at", at)
        assert status.exit_code == prom.exit_code == 0, status.stderr + prom.stderr
        out[kind] = (check.exit_code, json.loads(check.stdout), json.loads(status.stdout), prom.stdout)
    assert out["sqlite"][0] == out["clickhouse"][0]
    assert_same(out["sqlite"][1], out["clickhouse"][1], what="slo check")
    assert_same(out["sqlite"][2], out["clickhouse"][2], what="slo status")
    assert out["sqlite"][3] == out["clickhouse"][3]


def test_check_budget_adds_the_period_and_never_changes_states(run_cli, config_file):
    plain = json.loads(run_cli("--config", config_file(), "slo", "check", "--at", AT, "--json").stdout)
    full = run_cli("--config", config_file(), "slo", "check", "--at", AT, "--json", "--budget")
    full_doc = json.loads(full.stdout)
    assert full.exit_code == plain["exit_code"] == 2
    assert [s["state"] for s in plain["slos"]] == [s["state"] for s in full_doc["slos"]]
    assert all(s["sli"] is None and s["budget_left"] is None for s in plain["slos"])
    by = {s["name"]: s for s in full_doc["slos"]}
    assert 0.98 < by["fast-schema"]["sli"] < 0.99 and by["fast-schema"]["budget_left"] < 0
    text = run_cli("--config", config_file(), "slo", "check", "--at", AT, "--budget").stdout
    assert "SLI 98.97% over 30d" in text


def test_out_through_a_symlink_or_into_a_fifo_keeps_them(run_cli, config_file, tmp_path):
    """--out replaces a file atomically, but never the link or the special file it is given:
    `-o /dev/stdout` as root once turned /dev/stdout into a plain file."""
    import os
    import threading

    real = tmp_path / "real.yml"
    real.write_text("old\n")
    link = tmp_path / "link.yml"
    link.symlink_to(real)
    r = run_cli("--config", config_file(), "slo", "rules", "--out", link)
    assert r.exit_code == 0, r.stderr
    assert link.is_symlink() and "groups" in yaml.safe_load(real.read_text())

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    r = run_cli("--config", config_file(), "slo", "rules", "--out", fifo)
    reader.join(timeout=30)
    assert r.exit_code == 0, r.stderr
    assert fifo.is_fifo() and "groups" in yaml.safe_load(got[0])

    r = run_cli("--config", config_file(), "export", "prometheus", "--at", AT, "--out", "/proc/oncall-ai.prom")
    assert r.exit_code == 2 and "--out" in r.stderr and "Traceback" not in r.stderr
