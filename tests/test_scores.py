"""`scores` numbers equal an independent computation over the raw events."""

import json
import math
import random
from collections import defaultdict
from statistics import mean

import pytest

from oncall_ai.analysis.stats import t_quantile, wilson_interval

T_END = 1_795_000_000  # epoch seconds, not hour-aligned on purpose
DAY = 86400


@pytest.fixture
def sandbox(tmp_path):
    rnd = random.Random(5)
    cfg = tmp_path / "oncall-ai.yaml"
    cfg.write_text("store: s.db\nmetrics:\n  helpfulness: {good: '>= 4', scale: [1, 5]}\n"
                   "  thumbs_down: {source: user, good: '== 0'}\n")
    events = []
    for i in range(6000):
        ts = T_END - rnd.uniform(0, 3 * DAY)
        lang = rnd.choice(["en", "de", "fr"])
        persona = rnd.choice(["dev", "pm"])
        metric = "helpfulness" if i % 3 else "thumbs_down"
        if metric == "helpfulness":
            v = rnd.choice([2, 3, 4, 4, 5, 5])
            if lang == "de" and ts > T_END - 6 * 3600:
                v = max(1, v - 1)
        else:
            v = rnd.random() < 0.1
        events.append({"id": f"e{i}", "ts": round(ts, 3), "feature": "summarizer", "metric": metric,
                       "value": v, "slice": {"language": lang, "persona": persona},
                       "model_id": rnd.choice(["m-1", "m-2"])})
    f = tmp_path / "ev.jsonl"
    f.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    return cfg, f, events


def independent(events, metric, start, end, keys, good):
    groups = defaultdict(list)
    for e in events:
        if e["metric"] != metric or not (start <= e["ts"] * 1000 < end):
            continue
        k = tuple(e["slice"].get(key) if key in e["slice"] else e.get(key) for key in keys)
        groups[k].append(float(e["value"]))
    out = {}
    for k, vals in groups.items():
        n = len(vals)
        m = mean(vals)
        if all(v in (0.0, 1.0) for v in vals):
            ci = wilson_interval(sum(vals), n)
        else:
            sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (n - 1))
            h = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
            ci = (m - h, m + h)
        out[k] = (n, m, sum(1 for v in vals if good(v)) / n, ci)
    return out


@pytest.mark.parametrize("since, by", [("24h", ["language", "persona"]), ("5h17m", ["language"]),
                                       ("3d", ["model_id"]), ("90m", [])])
def test_scores_match_independent_computation(run_cli, sandbox, since, by):
    cfg, f, events = sandbox
    assert run_cli("--config", cfg, "ingest", f).exit_code == 0
    at = "2026-11-18T11:06:40.250Z"  # not hour-aligned: edges come from raw events
    args = ["--config", cfg, "scores", "--feature", "summarizer", "--metric", "helpfulness", "--since", since,
            "--at", at, "--json"]
    if by:
        args += ["--by", ",".join(by)]
    r = run_cli(*args)
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["schema"] == "oncall-ai/scores/v1"
    from oncall_ai.timeutil import parse_duration_ms, parse_time_ms

    end = parse_time_ms(at)
    start = end - parse_duration_ms(since)
    want = independent(events, "helpfulness", start, end, by, lambda v: v >= 4)
    got = {tuple(row["slice"].get(k) for k in by): row for row in out["rows"]}
    assert set(got) == set(want)
    for k, (n, m, good, ci) in want.items():
        row = got[k]
        assert row["count"] == n
        assert row["mean"] == pytest.approx(m, rel=1e-9)
        assert row["good_share"] == pytest.approx(good, rel=1e-9)
        assert row["ci"] == pytest.approx(list(ci), rel=1e-6)
        assert row["bucket"] is None


def test_buckets_where_and_binary_metric(run_cli, sandbox):
    cfg, f, events = sandbox
    run_cli("--config", cfg, "ingest", f)
    at = "2026-11-18T11:06:40Z"
    r = run_cli("--config", cfg, "scores", "-f", "summarizer", "-m", "thumbs_down", "--since", "12h", "--at", at,
                "--where", "language=de,fr", "--bucket", "1h", "--json")
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    end = 1_795_000_000_000
    start = end - 12 * 3_600_000
    total = 0
    for row in rows:
        from oncall_ai.timeutil import parse_time_ms

        b = parse_time_ms(row["bucket"])
        assert b % 3_600_000 == 0
        sel = [e for e in events if e["metric"] == "thumbs_down" and e["slice"]["language"] in ("de", "fr")
               and max(b, start) <= e["ts"] * 1000 < min(b + 3_600_000, end)]
        assert row["count"] == len(sel)
        assert row["mean"] == pytest.approx(sum(e["value"] for e in sel) / len(sel))
        assert row["good_share"] == pytest.approx(sum(1 for e in sel if not e["value"]) / len(sel))
        total += len(sel)
    assert total == sum(1 for e in events if e["metric"] == "thumbs_down" and e["slice"]["language"] in ("de", "fr")
                        and start <= e["ts"] * 1000 < end)
    r5 = run_cli("--config", cfg, "scores", "-f", "summarizer", "-m", "thumbs_down", "--since", "12h", "--at", at,
                 "--where", "language=de,fr", "--bucket", "5m", "--json")
    assert sum(x["count"] for x in json.loads(r5.stdout)["rows"]) == total


def test_table_csv_and_compare(run_cli, sandbox):
    cfg, f, _ = sandbox
    run_cli("--config", cfg, "ingest", f)
    at = "2026-11-18T11:06:40Z"
    r = run_cli("--config", cfg, "scores", "-f", "summarizer", "-m", "helpfulness", "--since", "6h", "--at", at,
                "--by", "language", "--compare", "2d")
    assert r.exit_code == 0, r.stderr
    de = next(line for line in r.stdout.splitlines() if line.strip().startswith("de"))
    assert "-" in de.split()[-2] or "-" in de  # de dropped against the baseline
    r = run_cli("--config", cfg, "scores", "-f", "summarizer", "-m", "helpfulness", "--since", "6h", "--at", at,
                "--by", "language", "--compare", "2d", "--json")
    rows = {x["slice"]["language"]: x for x in json.loads(r.stdout)["rows"]}
    assert rows["de"]["delta"] < -0.3 < rows["en"]["delta"]
    r = run_cli("--config", cfg, "scores", "-f", "summarizer", "-m", "helpfulness", "--at", at, "--by", "language", "--csv")
    lines = r.stdout.splitlines()
    assert lines[0] == "feature,metric,slice.language,bucket,count,mean,good_share,ci_low,ci_high"
    assert len(lines) == 4


def test_usage_errors(run_cli, sandbox):
    cfg, f, _ = sandbox
    run_cli("--config", cfg, "ingest", f)
    for args, msg in ((["--bucket", "7m"], "--bucket"), (["--since", "whenever"], "--since"),
                      (["--where", "language"], "key=value"), (["--at", "tomorrow"], "--at"),
                      (["--json", "--csv"], "choose one")):
        r = run_cli("--config", cfg, "scores", *args)
        assert r.exit_code == 2, (args, r.stderr)
        assert msg in r.stderr and "Traceback" not in r.stderr
    r = run_cli("--config", cfg, "scores", "--feature", "nope")
    assert r.exit_code == 2 and "unknown feature 'nope'" in r.stderr and "summarizer" in r.stderr


def test_trend_of_every_metric_matches_its_hourly_means(sandbox):
    """Each row's trend is its own hourly means (rows of the first metric once lost theirs)."""
    from oncall_ai.config import load_config
    from oncall_ai.ingest import ingest_files
    from oncall_ai.scores import query_scores
    from oncall_ai.store import open_store

    cfg_path, f, events = sandbox
    cfg = load_config(cfg_path)
    with open_store(cfg.store, config=cfg) as store:
        ingest_files([str(f)], store, cfg)
        end = T_END * 1000 - T_END * 1000 % 3_600_000
        start = end - 24 * 3_600_000
        rows = query_scores(store, cfg, start=start, end=end, trend_points=24)
    assert {r.metric for r in rows} == {"helpfulness", "thumbs_down"}
    for r in rows:
        assert len(r.trend) == 24
        for i, got in enumerate(r.trend):
            lo = start + i * 3_600_000
            vals = [float(e["value"]) for e in events
                    if e["metric"] == r.metric and lo <= e["ts"] * 1000 < lo + 3_600_000]
            assert (got is None) == (not vals)
            if vals:
                assert got == pytest.approx(mean(vals))


@pytest.mark.parametrize("columns", ["80", "100"])
def test_table_fits_the_terminal_one_line_per_row(run_cli, sandbox, monkeypatch, columns):
    """The trend gets the width the other columns leave (latest points), instead of wrapping."""
    cfg, f, _ = sandbox
    run_cli("--config", cfg, "ingest", f)
    monkeypatch.setenv("COLUMNS", columns)
    at = str(T_END)
    r = run_cli("--config", cfg, "scores", "-m", "helpfulness", "--by", "language,persona", "--at", at,
                "--since", "3d")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.rstrip("\n").splitlines()
    assert all(len(line) <= int(columns) for line in lines)
    rows = [line for line in lines if line.split()[:1] in (["de"], ["en"], ["fr"])]
    assert len(rows) == 6  # one line each: nothing wrapped
    assert "…" not in r.stdout
    trends = [line.split()[-1] for line in rows]
    assert all(len(t) >= 5 and set(t) <= set("▁▂▃▄▅▆▇█ ") for t in trends)
