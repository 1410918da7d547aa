#!/usr/bin/env python3
"""ClickHouse store benchmark: ingest rate, and whole-process `scores --by` / `triage` times.

Acceptance figures (issue 9): 100 million events in ClickHouse; store ingest >= 300,000 events/s;
whole-process `triage --feature F --metric M` <= 2 s and `scores --by` <= 1 s; the same questions
on SQLite at 10 million events reported beside them.

    # a ClickHouse server (e.g. the one .ci/setup-clickhouse.sh starts; see its env.sh)
    python bench/clickhouse_bench.py --url clickhouse://127.0.0.1:8123/bench --events 100000000 \\
        --sqlite-events 10000000

The database is created when missing and must be empty unless --reuse (then ingest is skipped when
it already holds --events events); --drop-after drops it at the end (100M events take ~2 GB).
Events are generated in time order over --days, 8 features x 4 metrics x 72 slices x 3 version
eras (~7k series), with a regression in the last 6 hours (summarizer/helpfulness, language=de,
after a new prompt version). Ingest is measured at the store with ready batches: by default
`Store.write_columns` with EventColumns (what `oncall-ai ingest` hands the store), with --api rows
`Store.write_events` with EventRow tuples (importers, store copy); both carry the same events. The
end-to-end `oncall-ai ingest FILE` rate is measured separately on a JSON Lines sample (--file-events).
Query times are whole processes (`python -m oncall_ai ...`), best and median of --repeat runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from oncall_ai.config import GoodRule  # noqa: E402

HOUR = 3_600_000
END_MS = 1_795_000_000_000 - 1_795_000_000_000 % HOUR
FEATURES = ["summarizer", "support", "search", "translate", "classify", "extract", "chat", "codegen"]
METRICS = [("helpfulness", "judge"), ("schema_valid", "check"), ("thumbs_down", "user"), ("faithfulness", "judge")]
RULES = {"helpfulness": GoodRule(">=", 4), "schema_valid": GoodRule("==", 1), "thumbs_down": GoodRule("==", 0),
         "faithfulness": GoodRule(">=", 4)}
PERSONAS, LANGUAGES, SHAPES = ["dev", "pm", "support", "exec"], ["en", "de", "fr", "es", "ja", "pt"], ["qa", "summary", "chat"]
CONFIG = """store: {store}
metrics:
  helpfulness:  {{source: judge, good: ">= 4"}}
  schema_valid: {{source: check, good: "== 1"}}
  thumbs_down:  {{source: user, good: "== 0"}}
  faithfulness: {{source: judge, good: ">= 4"}}
slices: [persona, language, shape]
"""


def series_keys(era: int, regressed: bool = False):
    keys = []
    for f in FEATURES:
        for m, src in METRICS:
            for p in PERSONAS:
                for lang in LANGUAGES:
                    for sh in SHAPES:
                        prompt = f"p{era}" + ("-new" if regressed and f == "summarizer" else "")
                        keys.append((f, m, src, (("language", lang), ("persona", p), ("shape", sh)),
                                     f"vendor/model-{era}", prompt, f"idx-{era}", f"judge-v{era}" if src == "judge" else None))
    return keys


VALUES = {"judge": [1.0, 2.0, 3.0, 3.0, 4.0, 4.0, 4.0, 5.0, 5.0, 5.0], "check": [0.0] + [1.0] * 19,
          "user": [0.0] * 19 + [1.0]}


def batches(n: int, batch: int, days: float, seed: int = 7, api: str = "columns"):
    """Time-ordered batches: EventColumns (api="columns", what `oncall-ai ingest` hands the store)
    or lists of rows (id_hash, key, ts, value, request_id, sample_rate, input, output) for
    write_events. Both carry the same events for the same seed."""
    from oncall_ai.store.base import EventColumns

    rnd = random.Random(seed)
    start = END_MS - int(days * 86_400_000)
    step = (END_MS - start) / n
    eras = [series_keys(e) for e in range(3)]
    regressed = series_keys(2, regressed=True)
    reg_from = END_MS - 6 * HOUR
    bad = [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 5.0, 5.0]
    # Where the key pool changes (a new version era, the regression): a batch is cut there, so
    # the data are the same whatever --batch is.
    bounds = [start + (END_MS - start) * e // 3 for e in (1, 2)] + [reg_from]
    done = 0
    while done < n:
        k = min(batch, n - done)
        ts0 = start + done * step
        tss = [int(ts0 + i * step) for i in range(k)]
        cuts = sorted({0, k} | {c for b in bounds if 0 < (c := -int(-(b - ts0) // step)) < k})
        keys, kidx, vals = [], [], []
        for a, b in zip(cuts, cuts[1:], strict=False):
            t = tss[a]
            late = t >= reg_from
            pool = regressed if late else eras[min(2, int((t - start) * 3 // (END_MS - start)))]
            part = rnd.choices(range(len(pool)), k=b - a)
            for ki in part:
                key = pool[ki]
                v = VALUES[key[2]]
                if late and key[0] == "summarizer" and key[1] == "helpfulness" and key[3][0][1] == "de":
                    v = bad
                vals.append(v[rnd.randrange(10)])
            offset = len(keys)
            keys += pool
            kidx += [ki + offset for ki in part] if offset else part
        ids = [rnd.getrandbits(64) - (1 << 63) for _ in range(k)]
        none = [None] * k
        if api == "rows":
            yield [(h, keys[ki], ts, v, None, None, None, None) for h, ki, ts, v in zip(ids, kidx, tss, vals, strict=True)]
        else:
            yield EventColumns(keys=keys, kidx=kidx, h=ids, ts=tss, value=vals, request_id=none, sample_rate=list(none))
        done += k


def ensure_clickhouse_db(url: str) -> None:
    import httpx

    from oncall_ai.store.clickhouse import parse_url

    base, _, db, user, password = parse_url(url)
    auth = (user or os.environ.get("CLICKHOUSE_USER") or "default", password or os.environ.get("CLICKHOUSE_PASSWORD") or "")
    r = httpx.post(base + "/", content=f"CREATE DATABASE IF NOT EXISTS {db}".encode(), auth=auth, timeout=60)
    r.raise_for_status()


def drop_clickhouse_db(url: str) -> None:
    import httpx

    from oncall_ai.store.clickhouse import parse_url

    base, _, db, user, password = parse_url(url)
    auth = (user or os.environ.get("CLICKHOUSE_USER") or "default", password or os.environ.get("CLICKHOUSE_PASSWORD") or "")
    httpx.post(base + "/", content=f"DROP DATABASE IF EXISTS {db}".encode(), auth=auth, timeout=600).raise_for_status()


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a local process (the ClickHouse server), from /proc."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def ingest(url: str, n: int, batch: int, days: float, reuse: bool, server_pid: int | None = None,
           api: str = "columns") -> dict:
    from oncall_ai.store import open_store

    if url.startswith(("clickhouse", "http")):
        ensure_clickhouse_db(url)
    with open_store(url) as store:
        have = store.count_events()
        if have and reuse and have >= n:
            return {"events": have, "skipped": True}
        if have:
            raise SystemExit(f"{url} already holds {have:,} events: use an empty database, or --reuse")
        t_all = time.perf_counter()
        t_store = cpu_client = 0.0
        cpu_server0 = cpu_seconds(server_pid)
        stored = 0
        write = store.write_events if api == "rows" else store.write_columns
        for part in batches(n, batch, days, api=api):
            t = time.perf_counter()
            c = time.process_time()
            stored += write(part, RULES)
            t_store += time.perf_counter() - t
            cpu_client += time.process_time() - c
            if sys.stderr.isatty():
                print(f"\r  {stored:,}/{n:,} events, {stored / t_store:,.0f}/s at the store", end="", file=sys.stderr)
        wall = time.perf_counter() - t_all
        if sys.stderr.isatty():
            print(file=sys.stderr)
        cpu_server1 = cpu_seconds(server_pid)
        out = {"events": stored, "api": api, "batch": batch, "store_seconds": round(t_store, 2), "store_rate": round(stored / t_store),
               "wall_seconds": round(wall, 2), "wall_rate_with_generation": round(stored / wall),
               "client_cpu_seconds": round(cpu_client, 2), "load_average": os.getloadavg()}
        if cpu_server0 is not None and cpu_server1 is not None:
            # Background merges keep running after the last insert; this counts until it returned.
            out["server_cpu_seconds"] = round(cpu_server1 - cpu_server0, 2)
            out["cpu_seconds_per_million"] = round((cpu_client + cpu_server1 - cpu_server0) / stored * 1e6, 2)
        return out


def file_ingest(url: str, n: int, workdir: Path) -> dict | None:
    """End-to-end `oncall-ai ingest FILE` (JSON Lines parsing and validation included) into a
    separate database/file, on a sample of n events from bench/gen_events.py."""
    if n <= 0:
        return None
    path = workdir / "sample.jsonl"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_events.py"), "--events", str(n), "--out", str(path)],
                   check=True)
    if url.startswith(("clickhouse", "http")):
        url = url.rsplit("/", 1)[0] + "/bench_file_ingest"
        ensure_clickhouse_db(url)
    else:
        url = str(workdir / "file_ingest.db")
    cfg = workdir / "file.yaml"
    cfg.write_text(CONFIG.format(store=url))
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "oncall_ai", "--config", str(cfg), "ingest", "-q", str(path)],
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True)
    dt = time.perf_counter() - t
    return {"events": n, "seconds": round(dt, 2), "rate": round(n / dt), "exit": r.returncode,
            "store": url}


def timed(cmd: list[str], repeat: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "NO_COLOR": "1"}
    import resource

    times, cpus, code, err = [], [], None, ""
    for i in range(repeat + 1):  # the first run warms the OS and server caches; not counted
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        dt = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        code, err = r.returncode, r.stderr
        if i:
            times.append(dt)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    # cpu: the CLI process's own CPU time (user + system); wall minus cpu is waiting for the
    # store server and, on a busy machine, for a CPU.
    return {"best": round(min(times), 3), "median": round(statistics.median(times), 3),
            "cpu_median": round(statistics.median(cpus), 3), "load_average": os.getloadavg()[0], "exit": code,
            "stderr": err.strip().splitlines()[-1] if err.strip() and code not in (0, 1) else ""}


def questions(url: str, workdir: Path, repeat: int) -> dict:
    cfg = workdir / f"q-{abs(hash(url))}.yaml"
    cfg.write_text(CONFIG.format(store=url))
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(END_MS / 1000))
    base = [sys.executable, "-m", "oncall_ai", "--config", str(cfg)]
    out = {"scores --by": timed(base + ["scores", "--feature", "summarizer", "--metric", "helpfulness",
                                        "--by", "language", "--since", "24h", "--at", at], repeat)}
    help_text = subprocess.run(base + ["--help"], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT / "src")}).stdout
    if " triage " in help_text or "\n  triage" in help_text or "triage" in help_text.split():
        out["triage"] = timed(base + ["triage", "--feature", "summarizer", "--metric", "helpfulness",
                                      "--at", at], repeat)
    else:
        out["triage"] = {"note": "triage is not in this build"}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default=None, help="clickhouse://HOST:PORT/DATABASE (default: $ONCALL_AI_TEST_CLICKHOUSE + /oncall_bench)")
    ap.add_argument("--events", type=int, default=100_000_000)
    ap.add_argument("--batch", type=int, default=500_000)
    ap.add_argument("--days", type=float, default=30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reuse", action="store_true", help="reuse a database that already holds the events")
    ap.add_argument("--sqlite-events", type=int, default=0, help="also run the questions on SQLite with this many events")
    ap.add_argument("--sqlite-path", default=None, help="SQLite file (default: a new one in a temporary folder)")
    ap.add_argument("--sqlite-reuse", action="store_true",
                    help="reuse --sqlite-path when it already holds --sqlite-events events (built by this script)")
    ap.add_argument("--api", choices=("columns", "rows"), default="columns",
                    help="write_columns with EventColumns (ingest's path; default) or write_events with rows")
    ap.add_argument("--drop-after", action="store_true", help="drop the ClickHouse database at the end")
    ap.add_argument("--file-events", type=int, default=0, help="also time `oncall-ai ingest FILE` on this many events")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--server-pid", type=int, default=None,
                    help="pid of a local clickhouse-server, to report its CPU time (the number in $CI_TMP/clickhouse/launcher.pid)")
    a = ap.parse_args(argv)
    url = a.url
    if url is None:
        base = os.environ.get("ONCALL_AI_TEST_CLICKHOUSE")
        if not base:
            ap.error("give --url clickhouse://HOST:PORT/DB (or set ONCALL_AI_TEST_CLICKHOUSE)")
        url = "clickhouse://" + base.split("://", 1)[1].rstrip("/") + "/oncall_bench"
    work = Path(tempfile.mkdtemp(prefix="oncall-bench-"))
    results: dict = {"machine": {"cpus": os.cpu_count()}, "clickhouse": {"url": url}}
    from oncall_ai.store import open_store

    print(f"ClickHouse {url}: ingesting {a.events:,} events ...", file=sys.stderr)
    results["clickhouse"]["ingest"] = ingest(url, a.events, a.batch, a.days, a.reuse, a.server_pid, a.api)
    with open_store(url) as s:
        results["clickhouse"]["server_version"] = ".".join(map(str, s.server_version))
        results["clickhouse"]["series"] = len(s.series())
    results["clickhouse"]["questions"] = questions(url, work, a.repeat)
    results["clickhouse"]["file_ingest"] = file_ingest(url, a.file_events, work)
    if a.sqlite_events:
        path = a.sqlite_path or str(work / "bench.db")
        print(f"SQLite {path}: ingesting {a.sqlite_events:,} events ...", file=sys.stderr)
        results["sqlite"] = {"path": path, "ingest": ingest(path, a.sqlite_events, a.batch, a.days, a.sqlite_reuse,
                                                            api=a.api)}
        results["sqlite"]["questions"] = questions(path, work, a.repeat)
    if a.drop_after:
        drop_clickhouse_db(url)
        drop_clickhouse_db(url.rsplit("/", 1)[0] + "/bench_file_ingest")
    report(results)
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)  # configs, samples, and the SQLite store unless --sqlite-path
    return 0


def report(r: dict) -> None:
    print(json.dumps(r, indent=2))
    ch = r["clickhouse"]
    lines = [f"ClickHouse {ch.get('server_version')}: {ch['ingest']['events']:,} events, {ch.get('series'):,} series"]
    ing = ch["ingest"]
    if not ing.get("skipped"):
        lines.append(f"  ingest at the store ({ing['api']}, batches of {ing['batch']:,}): {ing['store_rate']:,} events/s (target >= 300,000); "
                     f"with row generation: {ing['wall_rate_with_generation']:,}/s; load average "
                     f"{', '.join(f'{x:.1f}' for x in ing['load_average'])}")
        if "cpu_seconds_per_million" in ing:
            lines.append(f"  CPU per million events: {ing['cpu_seconds_per_million']} s (client {ing['client_cpu_seconds']} s, "
                         f"server {ing['server_cpu_seconds']} s in all)")
    if ch.get("file_ingest"):
        fi = ch["file_ingest"]
        lines.append(f"  `oncall-ai ingest FILE` end to end: {fi['rate']:,} events/s on {fi['events']:,} events")
    for name, target in (("scores --by", 1.0), ("triage", 2.0)):
        q = ch["questions"].get(name, {})
        if "best" in q:
            lines.append(f"  {name}: best {q['best']} s, median {q['median']} s (target <= {target} s), "
                         f"process CPU {q['cpu_median']} s, load {q['load_average']:.1f}, exit {q['exit']}"
                         + (f" [{q['stderr']}]" if q.get("stderr") else ""))
        else:
            lines.append(f"  {name}: {q.get('note', 'n/a')}")
    if "sqlite" in r:
        sq = r["sqlite"]
        lines.append(f"SQLite: {sq['ingest']['events']:,} events")
        if not sq["ingest"].get("skipped"):
            lines.append(f"  ingest at the store: {sq['ingest']['store_rate']:,} events/s")
        for name in ("scores --by", "triage"):
            q = sq["questions"].get(name, {})
            lines.append(f"  {name}: " + (f"best {q['best']} s, median {q['median']} s, process CPU {q['cpu_median']} s, "
                                          f"load {q['load_average']:.1f}, exit {q['exit']}" if "best" in q
                                          else q.get("note", "n/a")))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
