"""`scores` numbers equal an independent computation over the raw events, on SQLite and on
ClickHouse; and both stores print the same numbers for the same events."""

import json
import math
import random
from collections import defaultdict
from statistics import mean

import pytest

from both_stores import assert_same
from oncall_ai.analysis.stats import t_quantile, wilson_interval

T_END = 1_795_000_000  # epoch seconds, not hour-aligned on purpose
DAY = 86400
CONFIG = ("store: {store}\nmetrics:\n  helpfulness: {{good: '>= 4', scale: [1, 5]}}\n"
          "  thumbs_down: {{source: user, good: '== 0'}}\n")


def _events():
    rnd = random.Random(5)
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
    return events


@pytest.fixture(scope="module")
def built(tmp_path_factory, make_store_url):
    """built(kind) -> (config path, events file, events): the events ingested (through the CLI)
    into a fresh store of that kind, once per module."""
    from typer.testing import CliRunner

    from oncall_ai.cli import app

    events = _events()
    folder = tmp_path_factory.mktemp("scores")
    f = folder / "ev.jsonl"
    f.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    cache = {}

    def build(kind):
        if kind not in cache:
            cfg = tmp_path_factory.mktemp(f"scores-{kind}") / "oncall-ai.yaml"
            cfg.write_text(CONFIG.format(store=json.dumps(make_store_url(kind))))
            r = CliRunner().invoke(app, ["--config", str(cfg), "ingest", str(f)], catch_exceptions=False)
            assert r.exit_code == 0, r.stderr
            cache[kind] = (cfg, f, events)
        return cache[kind]

    return build


@pytest.fixture
def sandbox(built, store_kind):
    return built(store_kind)


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
    r = run_cli("--config", cfg, "ingest", f)  # the same file again: nothing new, nothing counted twice
    assert r.exit_code == 0 and "0 stored, 6,000 already there" in r.stderr, r.stderr
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


SAME_ON_BOTH = [
    ["-m", "helpfulness", "--since", "3d", "--by", "language,persona", "--compare", "1d"],
    ["-m", "helpfulness", "--since", "26h13m", "--by", "model_id,source", "--bucket", "1h"],
    ["-m", "helpfulness", "--since", "7h", "--bucket", "5m", "--where", "language=de"],
    ["-m", "helpfulness", "--since", "2d", "--bucket", "1d", "--by", "persona"],
    ["-m", "thumbs_down", "--since", "2d", "--by", "language", "--compare", "2d"],
    ["-m", "thumbs_down", "--since", "30m", "--where", "persona=pm,model_id=m-2"],
]


@pytest.mark.parametrize("at", ["2026-11-18T11:06:40.250Z", "2026-11-17T00:00:00Z"])
def test_same_numbers_on_both_stores(run_cli, built, at):
    """The same events in SQLite and in ClickHouse: every `scores --json` row equal, field by field
    (aligned and unaligned windows, buckets from 5 minutes to a day, baselines)."""
    (cfg_s, _, _), (cfg_c, _, _) = built("sqlite"), built("clickhouse")
    for args in SAME_ON_BOTH:
        full = ["scores", "-f", "summarizer", "--at", at, "--json", *args]
        a, b = run_cli("--config", cfg_s, *full), run_cli("--config", cfg_c, *full)
        assert a.exit_code == b.exit_code == 0, (a.stderr, b.stderr)
        assert json.loads(a.stdout)["rows"], args
        assert_same(a.stdout, b.stdout, what=" ".join(args))
