#!/usr/bin/env python3
"""Benchmark: `oncall-ai changes list --since 24h` as a whole process on a big prompt repo.

Builds (with `git fast-import`, in seconds) a prompt repo with 20,000 commits over 2,000 files
spread over ~14 months (about 48 commits in the last 24 hours), a platform repo with pins, indexes
and judges files, and a SQLite store with two days of events for 20 features, then times:

    baseline  python -c pass                               (interpreter start)
    baseline  python -m oncall_ai --version                 (CLI import)
    baseline  git log --since=24h --name-only               (the git work itself)
    measured  python -m oncall_ai changes list --since 24h  (text)
    measured  python -m oncall_ai changes list --since 24h --json --diff

Target: changes list <= 1 s. Figures are printed; nothing is asserted.

    python bench/changes_bench.py [--commits 20000] [--files 2000] [--runs 5] [--keep DIR]
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
SRC = ROOT / "src"
FEATURES = 20


def fast_import_repo(path: Path, commits: int, files: int, now: int, spacing_s: int) -> None:
    """One fast-import stream: a root commit with every file, then one file changed per commit."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    rng = random.Random(7)
    names = [f"prompts/feature{i % FEATURES:02d}/part{i // FEATURES:03d}.md" for i in range(files)]
    start = now - (commits - 1) * spacing_s

    def data(text: str) -> bytes:
        raw = text.encode()
        return b"data %d\n" % len(raw) + raw + b"\n"

    proc = subprocess.Popen(["git", "fast-import", "--quiet"], cwd=path, stdin=subprocess.PIPE)
    w = proc.stdin
    authors = ["Alice <alice@example.com>", "Bob <bob@example.com>", "Carol <carol@example.com>"]
    for n in range(commits):
        ts = start + n * spacing_s
        who = authors[n % len(authors)]
        w.write(b"commit refs/heads/main\n")
        w.write(f"author {who} {ts} +0000\ncommitter {who} {ts} +0000\n".encode())
        if n == 0:
            w.write(data("initial prompts"))
            for name in names:
                w.write(f"M 100644 inline {name}\n".encode())
                w.write(data(f"# {name}\nYou are a helpful assistant.\n" + "Line of instructions.\n" * 20))
        else:
            name = names[rng.randrange(files)]
            w.write(data(f"tweak {name} (#{n})"))
            w.write(f"M 100644 inline {name}\n".encode())
            w.write(data(f"# {name}\nYou are a helpful assistant, version {n}.\n" + "Line of instructions.\n" * 20))
        w.write(b"\n")
    w.close()
    if proc.wait() != 0:
        raise SystemExit("git fast-import failed")
    subprocess.run(["git", "checkout", "-q", "-f", "main"], cwd=path, check=True)


def platform_repo(path: Path, now: int) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)

    def commit(files: dict[str, str], msg: str, ts: int) -> None:
        for name, text in files.items():
            (path / name).write_text(text)
        subprocess.run(["git", "add", "-A"], cwd=path, check=True)
        env = {**os.environ, "GIT_AUTHOR_DATE": f"@{ts} +0000", "GIT_COMMITTER_DATE": f"@{ts} +0000",
               "GIT_AUTHOR_NAME": "Ops", "GIT_AUTHOR_EMAIL": "ops@example.com",
               "GIT_COMMITTER_NAME": "Ops", "GIT_COMMITTER_EMAIL": "ops@example.com"}
        subprocess.run(["git", "commit", "-q", "-m", msg], cwd=path, check=True, env=env)

    pins = "".join(f"feature{i:02d}: vendor-a/model-{i % 3}   # pinned\n" for i in range(FEATURES))
    indexes = "".join(f"kb-{i}:\n  version: v1\n  embedding_model: embed-3\n" for i in range(5))
    judges = "helpfulness:\n  model: vendor-b/judge-1\n  prompt: judges/helpfulness.md\n"
    commit({"models.yaml": pins, "indexes.yaml": indexes, "judges.yaml": judges}, "init", now - 30 * 86400)
    commit({"models.yaml": pins.replace("feature03: vendor-a/model-0", "feature03: vendor-a/model-9")},
           "pin feature03", now - 5 * 3600)
    commit({"indexes.yaml": indexes.replace("kb-1:\n  version: v1", "kb-1:\n  version: v2")},
           "kb-1 rebuilt", now - 3 * 3600)


def write_config(folder: Path) -> Path:
    lines = ["store: oncall-ai.db", "prompt_repo: prompts", "features:"]
    for i in range(FEATURES):
        lines += [f"  feature{i:02d}:", f"    prompts: [\"prompts/feature{i:02d}/**\"]",
                  f"    model: feature{i:02d}", f"    indexes: [kb-{i % 5}]"]
    lines += ["pins: {repo: platform, file: models.yaml}", "indexes: {repo: platform, file: indexes.yaml}",
              "judges: {repo: platform, file: judges.yaml}",
              "metrics:", "  helpfulness: {source: judge, good: \">= 4\"}"]
    path = folder / "oncall-ai.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def fill_store(cfg_path: Path, now: int, per_hour: int) -> int:
    sys.path.insert(0, str(SRC))
    from oncall_ai.config import load_config
    from oncall_ai.ingest import ingest_records
    from oncall_ai.store import open_store

    cfg = load_config(cfg_path)
    store = open_store(cfg.store, config=cfg)
    step = 3600 // per_hour
    switch = now - 7 * 3600  # a provider-side move on feature05

    def records():
        for i in range(FEATURES):
            for t in range(now - 48 * 3600, now, step):
                model = f"model-{i % 3}"
                if i == 5 and t >= switch:
                    model = "model-0-2026-11"
                yield {"ts": t, "feature": f"feature{i:02d}", "metric": "helpfulness", "value": 4,
                       "model_id": model, "id": f"e{i}-{t}"}

    try:
        return ingest_records(records(), config=cfg, store=store).stored
    finally:
        store.close()


def timed(cmd: list[str], cwd: Path, runs: int, env: dict):
    """(median wall s, best wall s, median CPU s, last result). CPU is user+sys of the process and
    its children (git): on a busy shared machine it is the steadier figure."""
    import resource

    times, cpus = [], []
    last = None
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        last = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
    return statistics.median(times), min(times), statistics.median(cpus), last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commits", type=int, default=20_000)
    ap.add_argument("--files", type=int, default=2_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--events-per-hour", type=int, default=60, help="per feature, for the store (0: no store)")
    ap.add_argument("--keep", metavar="DIR", help="build in DIR and keep it (default: a temp dir, removed)")
    args = ap.parse_args()

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="oncall-ai-changes-bench."))
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(SRC), "NO_COLOR": "1", "GIT_CONFIG_NOSYSTEM": "1"}
    env.pop("ONCALL_AI_CONFIG", None)
    env.pop("ONCALL_AI_STORE", None)
    now = int(time.time())
    try:
        t0 = time.perf_counter()
        spacing = 1800 if args.commits >= 1000 else 600
        fast_import_repo(folder / "prompts", args.commits, args.files, now - 60, spacing)
        platform_repo(folder / "platform", now)
        cfg = write_config(folder)
        events = fill_store(cfg, now, args.events_per_hour) if args.events_per_hour else 0
        build_s = time.perf_counter() - t0
        n_commits = subprocess.run(["git", "rev-list", "--count", "HEAD"], cwd=folder / "prompts",
                                   capture_output=True, text=True, check=True).stdout.strip()
        n_files = subprocess.run(["git", "ls-files"], cwd=folder / "prompts", capture_output=True, text=True,
                                 check=True).stdout.count("\n")
        print(f"built in {build_s:.1f}s: prompt repo {n_commits} commits, {n_files} files; "
              f"{events} events in the store; {folder}")

        py = sys.executable
        rows = []
        for label, cmd, cwd in [
            ("python -c pass", [py, "-c", "pass"], folder),
            ("oncall-ai --version", [py, "-m", "oncall_ai", "--version"], folder),
            ("git log --since=24h --name-only", ["git", "log", "--since=24h", "--name-only", "--format=%H"],
             folder / "prompts"),
            ("changes list --since 24h", [py, "-m", "oncall_ai", "changes", "list", "--since", "24h"], folder),
            ("changes list --since 24h --json --diff",
             [py, "-m", "oncall_ai", "changes", "list", "--since", "24h", "--json", "--diff"], folder),
            ("changes list --since 7d --json", [py, "-m", "oncall_ai", "changes", "list", "--since", "7d", "--json"],
             folder),
        ]:
            med, best, cpu, proc = timed(cmd, cwd, args.runs, env)
            extra = ""
            if "--json" in cmd and proc.returncode in (0, 1):
                try:
                    doc = json.loads(proc.stdout)
                    kinds = {}
                    for c in doc["changes"]:
                        kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
                    extra = f"{len(doc['changes'])} changes {kinds}"
                except (ValueError, KeyError):
                    extra = "(no JSON)"
            rows.append((label, med, best, cpu, proc.returncode, extra))
            if proc.returncode not in (0, 1):
                print(proc.stderr, file=sys.stderr)
        load = os.getloadavg()[0]
        print(f"\n{args.runs} runs each; load average {load:.1f} on {os.cpu_count()} CPUs")
        print(f"{'command':<40} {'median':>7} {'best':>7} {'cpu':>7}  exit  notes")
        for label, med, best, cpu, rc, extra in rows:
            print(f"{label:<40} {med:>6.3f}s {best:>6.3f}s {cpu:>6.3f}s  {rc:>4}  {extra}")
        m = rows[3]
        print(f"\ntarget: changes list --since 24h <= 1.000 s -> median {m[1]:.3f} s, best {m[2]:.3f} s, "
              f"cpu {m[3]:.3f} s ({'OK' if m[1] <= 1.0 else 'OVER'}); above `oncall-ai --version`: "
              f"{m[1] - rows[1][1]:+.3f} s; git log alone: {rows[2][1]:.3f} s")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
