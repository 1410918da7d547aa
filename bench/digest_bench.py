#!/usr/bin/env python3
"""`oncall-ai digest --since 7d` on a large store, timed as whole processes.

Builds the store once (bench/gen_events.py piped into `oncall-ai ingest`, with the 20 SLOs of
slo_bench.py), adds a few recorded changes, an incident and a rollback record, then runs, each
--repeat times, in fresh processes:

    baseline:  python -m oncall_ai --version                        (interpreter + CLI start-up)
    digest:    python -m oncall_ai --config C digest --since 7d --at END --format markdown
    json:      the same with --format json (for reference)
    slo check: python -m oncall_ai --config C slo check --at END   (for reference: part of the digest)

and prints the median and best wall time, and the CPU time (user + sys) of each: on a shared
machine the CPU time is the steadier figure. Target: digest <= 2 s on 10 million events.

    python bench/digest_bench.py                     # 10M events in bench/out/digest-10m.db (built once)
    python bench/digest_bench.py --events 1000000 --store bench/out/digest-1m.db
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import slo_bench  # noqa: E402  (same folder: the store layout and SLOs are shared with slo_bench)

END = slo_bench.END


def env() -> dict:
    return slo_bench.env()


def run(args: list[str], ok_codes=(0,)) -> tuple[float, float, str]:
    """(wall s, cpu s of the child, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "oncall_ai", *args], capture_output=True, text=True, env=env())
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode not in ok_codes:
        sys.exit(f"{' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, p.stdout


def seed_docs(config: Path) -> None:
    """What a week of on-call leaves in the store: recorded changes, an incident, a rollback."""
    end_s = END
    recs = [{"id": f"bench-change-{i}", "ts": end_s - (i + 1) * 86_400 // 2, "kind": k, "target": t,
             "features": [f], "by": "bench", "summary": f"bench {k} change {i}", "from": "a", "to": "b"}
            for i, (k, t, f) in enumerate([("config", "gateway/rate_limit", "support"),
                                           ("prompt", "prompts/summarizer/system.md", "summarizer"),
                                           ("model", "summarizer", "summarizer"), ("index", "kb-docs", "search")])]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("".join(json.dumps(r) + "\n" for r in recs))
        path = f.name
    try:
        run(["--config", str(config), "changes", "import", path], ok_codes=(0, 1))
    finally:
        os.unlink(path)
    sys.path.insert(0, str(ROOT / "src"))
    from oncall_ai.config import load_config
    from oncall_ai.store import open_store
    from oncall_ai.store.base import Doc
    from oncall_ai.timeutil import format_time

    cfg = load_config(config)
    with open_store(cfg.store, config=cfg) as store:
        at = END * 1000 - 2 * 86_400_000
        store.put_docs("incident", [Doc("incident", "INC-BENCH-1", at, {
            "id": "INC-BENCH-1", "title": "bench incident", "severity": "sev2", "state": "open",
            "feature": "summarizer", "metric": "helpfulness", "scope": {"language": "de"},
            "onset": format_time(at - 3_600_000), "opened_at": format_time(at), "transitions": [],
            "triage": {}, "suspect": {"change_id": "bench-change-1"}, "cause": None})], replace=True)
        store.put_docs("action", [Doc("action", "rollback-prompt:bench", at + 600_000, {
            "kind": "rollback-prompt", "target": "bench-change-1", "after": "0" * 40, "undoes": ["bench-change-1"],
            "branch": "main", "repo": "/bench/prompts", "incident": "INC-BENCH-1", "by": "bench"})], replace=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--store", default=str(ROOT / "bench" / "out" / "digest-10m.db"))
    ap.add_argument("--slos", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    store = Path(a.store).resolve()
    store.parent.mkdir(parents=True, exist_ok=True)
    config = store.with_suffix(".yaml")
    slo_bench.write_config(config, store, a.slos)
    if not store.exists():
        slo_bench.build(store, config, a.events)
    seed_docs(config)
    at = str(END)
    common = ["--config", str(config)]
    rows = {}
    rows["baseline: oncall-ai --version"] = [run(["--version"]) for _ in range(a.repeat)]
    rows["digest --since 7d (markdown)"] = [run([*common, "digest", "--since", "7d", "--at", at, "--format", "markdown"])
                                           for _ in range(a.repeat)]
    rows["digest --since 7d --format json"] = [run([*common, "digest", "--since", "7d", "--at", at, "--format", "json"])
                                              for _ in range(max(1, a.repeat // 2))]
    rows["slo check (reference)"] = [run([*common, "slo", "check", "--at", at], ok_codes=(0, 1, 2, 3))
                                     for _ in range(max(1, a.repeat // 2))]
    size = sum(p.stat().st_size for p in store.parent.glob(store.name + "*"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"store: {store} ({size / 1e9:.2f} GB), {a.slos} SLOs, {a.repeat} runs, {os.cpu_count()} cores, "
          f"load average {load:.1f}")
    base = statistics.median(w for w, _, _ in rows["baseline: oncall-ai --version"])
    for name, rs in rows.items():
        walls, cpus = [w for w, _, _ in rs], [c for _, c, _ in rs]
        print(f"{name:<36} wall median {statistics.median(walls):6.3f} s  best {min(walls):6.3f} s   "
              f"cpu median {statistics.median(cpus):6.3f} s   (n={len(rs)})")
    d = rows["digest --since 7d (markdown)"]
    med = statistics.median(w for w, _, _ in d)
    print(f"digest minus baseline: {med - base:.3f} s wall")
    print(f"target: digest <= 2.000 s -> {'met' if med <= 2.0 else 'NOT met'} (wall median); "
          f"cpu median {statistics.median(c for _, c, _ in d):.3f} s")
    print("digest output (first lines):")
    for ln in d[-1][2].splitlines()[:6]:
        print("  " + ln)
    return 0


if __name__ == "__main__":
    sys.exit(main())
