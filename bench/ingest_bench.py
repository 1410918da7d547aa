#!/usr/bin/env python3
"""Ingest and `scores --by` benchmark (issue 2), with baselines measured in the same run.

Prints figures and ratios; asserts nothing. Default: 10,000,000 events (8 features, 4 metrics,
4 slice keys, versions) over 60 days.

    python bench/ingest_bench.py                 # full run (a few minutes)
    python bench/ingest_bench.py --events 2000000

Figures:
- ingest rate of the real CLI on a 1M-line file vs `sqlite-utils insert DB events FILE --nl` on the
  same file (ratio), and the rate on all N events;
- peak RSS of the ingest process (and its parse workers) and of the query process;
- store bytes per event (no input/output text in these events);
- whole-process `oncall-ai scores --feature F --metric M --since 24h --by language,persona` (median of 5);
- the query part alone vs the same aggregation as plain SQL over a raw events table indexed on
  (feature, metric, ts) in the same SQLite build (median of 5, ratio);
- `oncall-ai --version` start-up time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
END = 1_795_000_000


def timed_rss(cmd, env=None) -> tuple[float, float, subprocess.CompletedProcess]:
    """Seconds and peak RSS (MiB, the largest of the process tree) via GNU time if present."""
    gnu_time = shutil.which("time") or "/usr/bin/time"
    if os.path.exists(gnu_time):
        fmt_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-rss-{os.getpid()}"
        full = [gnu_time, "-f", "%M", "-o", str(fmt_file), *cmd]
        t = time.perf_counter()
        r = subprocess.run(full, capture_output=True, text=True, env=env)
        el = time.perf_counter() - t
        try:
            rss = int(fmt_file.read_text().strip().splitlines()[-1]) / 1024
        except (OSError, ValueError, IndexError):
            rss = float("nan")
        return el, rss, r
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return time.perf_counter() - t, float("nan"), r


def write_config(d: Path, store: str) -> Path:
    cfg = d / "oncall-ai.yaml"
    cfg.write_text(
        f"store: {store}\n"
        "metrics:\n"
        "  helpfulness: {source: judge, good: '>= 4', scale: [1, 5]}\n"
        "  faithfulness: {source: judge, good: '>= 4', scale: [1, 5]}\n"
        "  schema_valid: {source: check, good: '== 1'}\n"
        "  thumbs_down: {source: user, good: '== 0'}\n"
        "slices: [persona, language, shape, tier]\n")
    return cfg


def load_raw_baseline(db: Path, events_file: Path) -> float:
    """A plain raw events table indexed on (feature, metric, ts): the baseline for the query."""
    import orjson

    t = time.perf_counter()
    c = sqlite3.connect(db, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=OFF")
    c.execute("CREATE TABLE events (id TEXT, ts INTEGER, feature TEXT, metric TEXT, value REAL, slice TEXT, "
              "model_id TEXT, prompt_version TEXT, index_version TEXT)")
    batch = []
    with open(events_file, "rb") as f:
        for line in f:
            o = orjson.loads(line)
            from datetime import datetime

            ts = int(datetime.fromisoformat(o["ts"]).timestamp() * 1000)
            batch.append((o["id"], ts, o["feature"], o["metric"], float(o["value"]), orjson.dumps(o["slice"]).decode(),
                          o.get("model_id"), o.get("prompt_version"), o.get("index_version")))
            if len(batch) >= 100_000:
                c.execute("BEGIN")
                c.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", batch)
                c.execute("COMMIT")
                batch.clear()
    if batch:
        c.execute("BEGIN")
        c.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", batch)
        c.execute("COMMIT")
    c.execute("CREATE INDEX events_fmt ON events (feature, metric, ts)")
    c.close()
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--days", type=float, default=60)
    ap.add_argument("--workdir", default=str(HERE / "out" / "ingest"))
    ap.add_argument("--keep", action="store_true", help="reuse generated files and stores if present")
    ap.add_argument("--repeat", type=int, default=3, help="1M-line ingest runs of each (medians)")
    ap.add_argument("--only-1m", action="store_true", help="only the 1M-line ingest comparison")
    a = ap.parse_args(argv)
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    env = dict(os.environ, NO_COLOR="1")
    oncall = [py, "-m", "oncall_ai"]
    events = work / f"events-{a.events}.jsonl"
    one_m = work / "events-1m.jsonl"
    print(f"# oncall-ai ingest/query bench: {a.events:,} events over {a.days:g} days, cores={os.cpu_count()}")
    if not (a.keep and events.exists()):
        t = time.perf_counter()
        subprocess.run([py, str(HERE / "gen_events.py"), "--events", str(a.events), "--days", str(a.days),
                        "--end", str(END), "--out", str(events)], check=True)
        print(f"generate:              {time.perf_counter() - t:8.1f} s  ({events.stat().st_size / 1e9:.2f} GB)")
    if not (a.keep and one_m.exists()):
        with open(events, "rb") as src, open(one_m, "wb") as dst:
            for i, line in enumerate(src):
                if i >= 1_000_000:
                    break
                dst.write(line)
    n_1m = sum(1 for _ in open(one_m, "rb"))

    # 1. ingest rate on 1M lines: ours vs sqlite-utils insert --nl, same file, same run; the two
    # alternate --repeat times (the machine is shared: medians, and the load average, say how noisy)
    d1 = work / "r1m"
    sqlite_utils = shutil.which("sqlite-utils")
    ours_t, su_t, rss_1m = [], [], 0.0
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for _ in range(a.repeat):
        shutil.rmtree(d1, ignore_errors=True)
        d1.mkdir()
        cfg1 = write_config(d1, "s.db")
        el, rss, r = timed_rss([*oncall, "--config", str(cfg1), "ingest", "-q", str(one_m)], env=env)
        assert r.returncode == 0, r.stderr
        ours_t.append(el)
        rss_1m = max(rss_1m, rss)
        el, _, r2 = timed_rss([sqlite_utils, "insert", str(d1 / "baseline.db"), "events", str(one_m), "--nl"], env=env)
        assert r2.returncode == 0, r2.stderr
        su_t.append(el)
    print(f"load average after:  {os.getloadavg()[0]:.2f}")
    el_ours_1m, el_su = statistics.median(ours_t), statistics.median(su_t)
    ours_rate, su_rate = n_1m / el_ours_1m, n_1m / el_su
    print(f"ingest 1M (oncall-ai):   {el_ours_1m:8.2f} s  {ours_rate:10,.0f} events/s  peak {rss_1m:6.0f} MiB"
          f"  (runs: {', '.join(f'{x:.2f}' for x in ours_t)} s)")
    print(f"ingest 1M (sqlite-utils insert --nl): {el_su:8.2f} s  {su_rate:10,.0f} events/s"
          f"  (runs: {', '.join(f'{x:.2f}' for x in su_t)} s)")
    print(f"  ratio oncall-ai / sqlite-utils:     {ours_rate / su_rate:8.2f}x   (target >= 4x, and >= 150,000/s)")

    if a.only_1m:
        return 0
    # 2. full ingest of N events
    dn = work / "full"
    store = dn / "s.db"
    cfgn = write_config(dn, "s.db") if dn.exists() else None
    if not (a.keep and store.exists()):
        shutil.rmtree(dn, ignore_errors=True)
        dn.mkdir()
        cfgn = write_config(dn, "s.db")
        el_n, rss_n, r = timed_rss([*oncall, "--config", str(cfgn), "ingest", "-q", str(events)], env=env)
        assert r.returncode == 0, r.stderr
        print(f"ingest {a.events:,}:  {el_n:8.1f} s  {a.events / el_n:10,.0f} events/s  peak {rss_n:6.0f} MiB (target <= 300)")
    size = sum(p.stat().st_size for p in dn.glob("s.db*"))
    print(f"store size:            {size / 1e6:8.1f} MB  {size / a.events:6.1f} bytes/event (target <= 100)")

    # 3. scores --by: whole process, and the query part vs plain SQL on a raw indexed table
    at = "2026-11-18T11:06:40Z"
    q = [*oncall, "--config", str(cfgn), "scores", "--feature", "summarizer", "--metric", "helpfulness",
         "--since", "24h", "--at", at, "--by", "language,persona", "--json"]
    whole, rss_q = [], 0.0
    for _ in range(5):
        el, rss, r = timed_rss(q, env=env)
        assert r.returncode == 0, r.stderr
        whole.append(el)
        rss_q = max(rss_q, rss)
    ver = []
    for _ in range(5):
        el, _, _ = timed_rss([*oncall, "--version"], env=env)
        ver.append(el)
    print(f"scores --by (process): {statistics.median(whole):8.3f} s median of 5, peak {rss_q:.0f} MiB (target <= 0.5 s)")
    print(f"--version (process):   {statistics.median(ver):8.3f} s median of 5 (target <= 0.3 s)")

    sys.path.insert(0, str(HERE.parent / "src"))
    from oncall_ai.config import load_config
    from oncall_ai.scores import query_scores
    from oncall_ai.store import open_store
    from oncall_ai.timeutil import parse_time_ms

    cfg = load_config(cfgn)
    end = parse_time_ms(at)
    start = end - 24 * 3_600_000
    ours = []
    with open_store(cfg.store) as st:
        for _ in range(5):
            t = time.perf_counter()
            rows = query_scores(st, cfg, start=start, end=end, feature="summarizer", metric="helpfulness",
                                by=["language", "persona"])
            ours.append(time.perf_counter() - t)
    raw_db = work / f"raw-{a.events}.db"
    if not (a.keep and raw_db.exists()):
        if raw_db.exists():
            raw_db.unlink()
        el = load_raw_baseline(raw_db, events)
        print(f"baseline raw table load + index: {el:8.1f} s")
    c = sqlite3.connect(raw_db)
    sql = ("SELECT json_extract(slice, '$.language'), json_extract(slice, '$.persona'), count(*), avg(value), "
           "sum(value >= 4) FROM events WHERE feature = ? AND metric = ? AND ts >= ? AND ts < ? GROUP BY 1, 2")
    base = []
    for _ in range(5):
        t = time.perf_counter()
        raw_rows = c.execute(sql, ("summarizer", "helpfulness", start, end)).fetchall()
        base.append(time.perf_counter() - t)
    assert sum(r[2] for r in raw_rows) == sum(r.agg.n for r in rows), "baseline and oncall-ai disagree on counts"
    mo, mb = statistics.median(ours), statistics.median(base)
    print(f"query part (oncall-ai rollups): {mo * 1000:8.1f} ms; plain SQL over raw indexed table: {mb * 1000:8.1f} ms;"
          f" ratio {mb / mo:6.1f}x (target >= 5x); rows {len(rows)}, events {sum(r.agg.n for r in rows):,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
