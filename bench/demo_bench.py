#!/usr/bin/env python3
"""How long a demo sandbox takes to build, per scenario and scale (prints figures; not a test).

    python bench/demo_bench.py                      # every scenario at scale 1, seed 1, with ingest
    python bench/demo_bench.py --scale 0.3 --seeds 1,2,3 --no-ingest

Figures: events written, seconds for planning + git, events, other files, ingest, and the whole
build; CPU seconds beside wall seconds (a shared machine inflates wall time).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from oncall_ai.demo import SCENARIOS, build_sandbox  # noqa: E402

NOW = 1_790_000_000_000 - 1_790_000_000_000 % 300_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--no-ingest", action="store_true")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="oncall-ai-demo-bench-"))
    print(f"scale {args.scale}, {args.days} days, ingest {'off' if args.no_ingest else 'on'}")
    print(f"{'scenario':22} {'seed':>4} {'events':>9} {'git':>6} {'events':>7} {'files':>6} {'ingest':>7} "
          f"{'wall':>6} {'cpu':>6} {'ev/s(gen)':>10}")
    totals = []
    try:
        for scenario in args.scenarios.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                d = root / f"{scenario}-{seed}"
                w0, c0 = time.perf_counter(), time.process_time()
                info = build_sandbox(d, scenario, seed, NOW, ingest=not args.no_ingest, days=args.days,
                                     scale=args.scale)
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
                s = info.seconds
                totals.append((wall, cpu, info.n_events))
                print(f"{scenario:22} {seed:>4} {info.n_events:>9,} {s['plan'] + s['git']:>6.2f} {s['events']:>7.2f} "
                      f"{s['files']:>6.2f} {s.get('ingest', 0):>7.2f} {wall:>6.2f} {cpu:>6.2f} "
                      f"{info.n_events / s['events']:>10,.0f}")
                shutil.rmtree(d)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    walls = sorted(t[0] for t in totals)
    cpus = sorted(t[1] for t in totals)
    print(f"median build: {walls[len(walls) // 2]:.2f}s wall, {cpus[len(cpus) // 2]:.2f}s cpu over {len(totals)} sandboxes "
          f"(subprocess git time counts as wall, not cpu)")


if __name__ == "__main__":
    main()
