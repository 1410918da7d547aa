#!/usr/bin/env python3
"""`oncall-ai slo check` on a large store with 20 SLOs, timed as whole processes.

Builds the store once (bench/gen_events.py piped into `oncall-ai ingest`), then runs, each
--repeat times, in fresh processes:

    baseline:  python -m oncall_ai --version                    (interpreter + CLI start-up)
    check:     python -m oncall_ai --config C slo check --at END
    budget:    ... slo check --budget (also the whole 30-day periods; for reference, not a target)
    status:    python -m oncall_ai --config C slo status --at END   (for reference; not a target)

and prints the median and best wall time of each. Target: check <= 1 s on 10 million events.

    python bench/slo_bench.py                     # 10M events in bench/out/slo-10m.db (built once)
    python bench/slo_bench.py --events 1000000 --store bench/out/slo-1m.db
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
END = 1_795_000_000  # gen_events.py's default end (epoch seconds)

METRICS = {
    "helpfulness": {"source": "judge", "good": ">= 4", "scale": [1, 5]},
    "schema_valid": {"source": "check", "good": "== 1"},
    "thumbs_down": {"source": "user", "good": "== 0"},
    "faithfulness": {"source": "judge", "good": ">= 4", "scale": [1, 5]},
}
FEATURES = ["summarizer", "support", "search", "translate", "classify", "extract", "chat", "codegen"]
WINDOWS = ["30d", "28d", "7d", "24h"]


def slos(n: int) -> list[dict]:
    """n SLOs over the generated features and metrics, some on a slice, all four period lengths."""
    out = []
    metrics = list(METRICS)
    for i in range(n):
        f = FEATURES[i % len(FEATURES)]
        m = metrics[(i // len(FEATURES) + i) % len(metrics)]
        slo = {"name": f"{f}-{m}-{i}", "feature": f, "metric": m, "objective": 0.95 if m == "thumbs_down" else 0.9,
               "window": WINDOWS[i % len(WINDOWS)]}
        if i % 3 == 0:
            slo["where"] = {"language": ["en", "de", "fr"][i % 3 if i % 2 else 1]}
        out.append(slo)
    return out


def write_config(path: Path, store: Path, n_slos: int) -> None:
    import yaml

    cfg = {"store": str(store), "features": {f: {} for f in FEATURES}, "metrics": METRICS,
           "slices": ["persona", "language", "shape", "tier"], "slos": slos(n_slos)}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("ONCALL_AI_CONFIG", None)
    return e


def build(store: Path, config: Path, events: int) -> None:
    print(f"building {store} with {events:,} events (once) ...", file=sys.stderr)
    t0 = time.perf_counter()
    gen = subprocess.Popen([sys.executable, str(ROOT / "bench" / "gen_events.py"), "--events", str(events),
                            "--end", str(END)], stdout=subprocess.PIPE)
    ing = subprocess.run([sys.executable, "-m", "oncall_ai", "--config", str(config), "ingest", "--quiet", "-"],
                         stdin=gen.stdout, env=env())
    gen.stdout.close()
    gen.wait()
    if ing.returncode not in (0, 1) or gen.returncode != 0:
        sys.exit(f"building the store failed (gen {gen.returncode}, ingest {ing.returncode})")
    print(f"built in {time.perf_counter() - t0:.0f} s", file=sys.stderr)


def timed(args: list[str], repeat: int, ok_codes=(0, 1, 2, 3)) -> tuple[list[float], list[float], str]:
    """Wall and CPU (user + system) seconds of each whole process. On a shared machine the CPU time
    is the fair figure: wall time there also counts the time other processes held the cores."""
    import resource

    walls, cpus, out = [], [], ""
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "oncall_ai", *args], capture_output=True, text=True, env=env())
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if p.returncode not in ok_codes:
            sys.exit(f"{' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
        out = p.stdout
    return walls, cpus, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--store", default=str(ROOT / "bench" / "out" / "slo-10m.db"))
    ap.add_argument("--slos", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    store = Path(a.store)
    store.parent.mkdir(parents=True, exist_ok=True)
    config = store.with_suffix(".yaml")
    write_config(config, store, a.slos)
    if not store.exists():
        build(store, config, a.events)
    at = str(END)
    load = os.getloadavg()[0]
    base, base_cpu, _ = timed(["--version"], a.repeat, ok_codes=(0,))
    check, check_cpu, out = timed(["--config", str(config), "slo", "check", "--at", at], a.repeat)
    budget, budget_cpu, _ = timed(["--config", str(config), "slo", "check", "--budget", "--at", at],
                                  max(1, a.repeat // 2))
    status, status_cpu, _ = timed(["--config", str(config), "slo", "status", "--at", at], max(1, a.repeat // 2),
                                  ok_codes=(0,))

    def line(name, walls, cpus):
        return (f"{name:<34} wall median {statistics.median(walls):6.3f} s best {min(walls):6.3f} s | "
                f"cpu median {statistics.median(cpus):6.3f} s best {min(cpus):6.3f} s (n={len(walls)})")

    size = sum(p.stat().st_size for p in store.parent.glob(store.name + "*"))
    with __import__("sqlite3").connect(f"file:{store}?mode=ro", uri=True) as conn:
        n_events = conn.execute("SELECT coalesce(sum(n), 0) FROM rollup_1h").fetchone()[0]
        n_series = conn.execute("SELECT count(*) FROM series").fetchone()[0]
    print(f"store: {store} ({size / 1e9:.2f} GB, {n_events:,} events, {n_series:,} series), {a.slos} SLOs, "
          f"{a.repeat} runs each; {os.cpu_count()} cores, load average {load:.1f} at the start")
    print(line("baseline: oncall-ai --version", base, base_cpu))
    print(line(f"slo check ({a.slos} SLOs)", check, check_cpu))
    print(line("slo check --budget (reference)", budget, budget_cpu))
    print(line("slo status (reference)", status, status_cpu))
    cpu = statistics.median(check_cpu)
    print(f"target: slo check <= 1.000 s -> {'met' if statistics.median(check) <= 1.0 else 'NOT met'} on wall time; "
          f"{'met' if cpu <= 1.0 else 'NOT met'} on CPU time ({cpu:.3f} s, of which start-up "
          f"~{statistics.median(base_cpu):.3f} s)")
    print("check output (first lines):")
    for ln in out.splitlines()[:4]:
        print("  " + ln)
    return 0


if __name__ == "__main__":
    sys.exit(main())
