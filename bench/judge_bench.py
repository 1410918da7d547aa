"""Bench: `judge calibrate` over 500 items at concurrency 8 against a local judge answering in 200 ms.

    python bench/judge_bench.py [--items 500] [--concurrency 8] [--latency 0.2] [--style openai|anthropic]

Prints the elapsed time, the ideal (items x latency / concurrency) and their ratio. Target:
500 items in <= 20 s (ideal 12.5 s). The whole path runs: plan (calibration set, judges.yaml,
rubric from git), the HTTP client, and the batched writes to a SQLite store.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--style", choices=("openai", "anthropic"), default="openai")
    args = ap.parse_args()

    import subprocess

    from judge_project import build_project, items_for  # tests/judge_project.py
    from oncall_ai.config import load_config
    from oncall_ai.judge_calibrate import plan_calibration, run_calibration
    from oncall_ai.store import open_store

    os.environ["JUDGE_BENCH_KEY"] = "bench-key"
    # The fake judge runs in its own process (tests/judge_server.py), as a real API would.
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "judge_server.py"), "--delay", str(args.latency),
                               "--key", "bench-key"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(server.stdout.readline())
    with tempfile.TemporaryDirectory() as tmp:
        base = f"http://127.0.0.1:{port}" + ("/v1" if args.style == "openai" else "")
        api = {"base_url": base, "style": args.style, "api_key_env": "JUDGE_BENCH_KEY",
               "concurrency": args.concurrency, "timeout": 30, "max_retries": 2}
        cfg_path = build_project(Path(tmp) / "p", api=api, items=items_for(args.items))
        cfg = load_config(cfg_path)
        store = open_store(cfg.store)
        t0 = time.perf_counter()
        plans = plan_calibration(cfg, store, now_ms=int(time.time() * 1000))
        results = run_calibration(cfg, store, plans)
        elapsed = time.perf_counter() - t0
        summary = results[0].summary
        store.close()
    server.stdin.close()
    server.wait(timeout=10)
    ideal = args.items * args.latency / args.concurrency
    print(f"judge calibrate: {args.items} items, concurrency {args.concurrency}, server latency "
          f"{args.latency * 1000:.0f} ms, style {args.style}")
    print(f"  scored {summary['scored']}, null {summary['null']}, retries {summary['retries']}")
    print(f"  elapsed {elapsed:.2f} s, ideal {ideal:.2f} s, ratio {elapsed / ideal:.2f} (target: <= 20 s)")


if __name__ == "__main__":
    main()
