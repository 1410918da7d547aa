"""Triage speed and memory on a big store: whole-process `oncall-ai triage` timings.

Builds the store once (bench/gen_events.py piped into `oncall-ai ingest`: 8 features, 4 metrics,
4 slice keys, versions), then times, as whole processes:
- `triage --feature F --metric M --json` (target <= 1 s on 10M events),
- `triage --json`, a full scan of every feature and metric (target <= 3 s),
and reports the peak resident memory of those processes (target <= 300 MB).

Baselines timed in the same run (the machines are shared and noisy: read the ratios):
- `oncall-ai --version`: interpreter and CLI start-up, the floor of any command;
- a raw read of what triage needs: one process that sums the hourly rollups over the baseline
  and the window (4 + 1 days) per series and bucket with plain sqlite3, for the one pair and for
  every pair (the full scan's).

With --with-changes it also times a copy of the store holding recorded changes in the window (a
prompt edit of the benched feature, an index rebuild and a config change reaching every feature,
a judge change of helpfulness): each is a step test at a known time on every metric it reaches,
which the store without changes never pays for. Both stores are timed in the same run.

    python bench/triage_bench.py                      # 10M events in bench/out/triage-10m.db
    python bench/triage_bench.py --events 1000000 --store bench/out/triage-1m.db
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from slo_bench import END, build, env  # noqa: E402  (same folder: the 10M store is built the same way)

CONFIG = """\
store: {store}
metrics:
  helpfulness:  {{source: judge, good: ">= 4", scale: [1, 5]}}
  faithfulness: {{source: judge, good: ">= 4", scale: [1, 5]}}
  schema_valid: {{source: check, good: "== 1"}}
  thumbs_down:  {{source: user, good: "== 0"}}
slices: [persona, language, shape, tier]
"""


def timed(args: list[str], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "oncall_ai", *args], capture_output=True, text=True, env=env())
        times.append(time.perf_counter() - t0)
        if p.returncode != 0:
            sys.exit(f"{' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
    return times


RAW_READ = """\
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
rows = db.execute(
    "SELECT r.series_id, r.bucket, sum(r.n), sum(r.sum), sum(r.sumsq) FROM rollup_1h r JOIN series s ON s.id = r.series_id"
    " WHERE s.feature LIKE ? AND s.metric LIKE ? AND r.bucket >= ? AND r.bucket < ? GROUP BY r.series_id, r.bucket",
    (sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))).fetchall()
print(len(rows))
"""


def timed_raw(store: Path, feature: str, metric: str, repeat: int) -> list[float]:
    """The baseline read: the pair's hourly rollups over 5 days, in a fresh process each time."""
    lo = (END - 5 * 24 * 3600) * 1000
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", RAW_READ, str(store), feature, metric, str(lo), str(END * 1000)],
                           capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if p.returncode != 0 or not p.stdout.strip().isdigit() or int(p.stdout) == 0:
            sys.exit(f"baseline read failed or read nothing: {p.stdout[-500:]} {p.stderr[-2000:]}")
    return times


def _with_changes(store: Path, feature: str) -> tuple[Path, Path]:
    """A copy of the store with four recorded changes in the 24 h window (made once)."""
    import shutil

    copy = store.with_name(store.stem + "-changes.db")
    config = copy.with_suffix(".yaml")
    config.write_text(CONFIG.format(store=copy.name))
    if not copy.exists():
        shutil.copyfile(store, copy)
        h = 3600
        for args in (["--kind", "prompt", "--target", f"prompts/{feature}/system.md", "--features", feature,
                      "--at", str(END - 6 * h), "--summary", "bench: a prompt edit"],
                     ["--kind", "index", "--target", "kb-docs", "--to", "v2", "--at", str(END - 10 * h),
                      "--summary", "bench: index rebuild (every feature)"],
                     ["--kind", "judge", "--target", "helpfulness", "--at", str(END - 3 * h),
                      "--summary", "bench: judge model change"],
                     ["--kind", "config", "--target", "rate-limit", "--at", str(END - 1 * h),
                      "--summary", "bench: config change (every feature)"]):
            timed(["--config", str(config), "changes", "record", *args], 1)
    return copy, config


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--store", default=str(ROOT / "bench" / "out" / "triage-10m.db"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--feature", default="summarizer")
    ap.add_argument("--metric", default="helpfulness")
    ap.add_argument("--with-changes", action="store_true", help="also time a copy with recorded changes")
    a = ap.parse_args(argv)
    store = Path(a.store)
    store.parent.mkdir(parents=True, exist_ok=True)
    config = store.with_suffix(".yaml")
    config.write_text(CONFIG.format(store=store.name))
    if not store.exists():
        build(store, config, a.events)
    at = str(END)
    stores = [(store, config)]
    if a.with_changes:
        stores.append(_with_changes(store, a.feature))
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start; {a.repeat} runs each")
    start_up = statistics.median(timed(["--version"], a.repeat))
    raw = statistics.median(timed_raw(store, a.feature, a.metric, a.repeat))
    raw_all = statistics.median(timed_raw(store, "%", "%", max(1, a.repeat // 2)))
    print(f"baseline: oncall-ai --version: median {start_up:.2f} s")
    print(f"baseline: raw sqlite3 read of the pair's hourly rollups (5 days): median {raw:.2f} s; "
          f"of every pair's: {raw_all:.2f} s")
    for st, cfg in stores:
        base = ["--config", str(cfg), "triage", "--at", at, "--json"]
        one = timed([*base, "--feature", a.feature, "--metric", a.metric], a.repeat)
        full = timed(base, max(1, a.repeat // 2))
        m1, mf = statistics.median(one), statistics.median(full)
        print(f"store {st} ({st.stat().st_size / 1e6:.0f} MB)")
        print(f"triage --feature {a.feature} --metric {a.metric}: median {m1:.2f} s "
              f"(min {min(one):.2f}, max {max(one):.2f}; target <= 1 s); {m1 / start_up:.1f}x start-up, "
              f"{m1 / raw:.1f}x the raw read")
        print(f"triage full scan: median {mf:.2f} s (min {min(full):.2f}; target <= 3 s); "
              f"{mf / start_up:.1f}x start-up, {mf / raw_all:.1f}x the raw read of every pair")
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak memory of a triage process: {peak_mb:.0f} MB (target <= 300 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
