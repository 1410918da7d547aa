"""How long does a rollback take on a big prompt repo? Prints figures; not a test.

    python bench/rollback_bench.py [--files 5000] [--commits 3000]

Builds a repo with git fast-import (FILES prompt files, COMMITS commits each editing one file),
then times `rollback-prompt SHA --dry-run` and `--yes` for a commit deep in history whose file was
edited again later (a real three-way merge), and `rollback-prompt FEATURE --to REV --dry-run`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def fast_import(repo: Path, files: int, commits: int) -> None:
    lines = []
    t = 1_700_000_000
    lines.append("commit refs/heads/main\nmark :1\n"
                 f"committer Bench <b@x> {t} +0000\ndata 7\ninitial\n")
    for i in range(files):
        body = "".join(f"line {k} of prompt {i}\n" for k in range(40))
        lines.append(f"M 100644 inline prompts/f{i % 50}/p{i}.md\ndata {len(body.encode())}\n{body}")
    for c in range(commits):
        i = (c * 7919) % max(1, files // 10)  # each edited file is edited again later
        k = c % 40
        body = "".join((f"line {j} of prompt {i} edited {c}\n" if j == k else f"line {j} of prompt {i}\n")
                       for j in range(40))
        msg = f"edit {c}"
        lines.append(f"commit refs/heads/main\nmark :{c + 2}\ncommitter Bench <b@x> {t + c + 1} +0000\n"
                     f"data {len(msg)}\n{msg}\nfrom :{c + 1}\n"
                     f"M 100644 inline prompts/f{i % 50}/p{i}.md\ndata {len(body.encode())}\n{body}")
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input="".join(lines).encode(), check=True)
    subprocess.run(["git", "-C", str(repo), "reset", "-q", "--hard", "main"], check=True)


def timed(args, env, cwd) -> float:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "oncall_ai", *args], env=env, cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--commits", type=int, default=3000)
    a = ap.parse_args()
    src = Path(__file__).resolve().parents[1] / "src"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        repo = root / "prompts"
        repo.mkdir()
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        t0 = time.perf_counter()
        fast_import(repo, a.files, a.commits)
        build = time.perf_counter() - t0
        (root / "oncall-ai.yaml").write_text(
            f"store: {root / 's.db'}\nprompt_repo: prompts\nfeatures:\n  f1: {{prompts: ['prompts/f1/**']}}\n  all: {{prompts: ['prompts/**']}}\n")
        env = {**os.environ, "PYTHONPATH": str(src), "GIT_AUTHOR_NAME": "B", "GIT_AUTHOR_EMAIL": "b@x",
               "GIT_COMMITTER_NAME": "B", "GIT_COMMITTER_EMAIL": "b@x", "ONCALL_AI_CONFIG": str(root / "oncall-ai.yaml")}
        log = subprocess.run(["git", "-C", str(repo), "log", "--format=%H", "--reverse"], capture_output=True,
                             text=True, check=True).stdout.split()
        target = log[len(log) // 10]  # a commit far back in history
        base = log[len(log) // 2]
        figures = {
            "dry-run (undo an old commit)": timed(["rollback-prompt", target, "--dry-run"], env, root),
            "apply --yes (same commit)": timed(["rollback-prompt", target, "--yes"], env, root),
            "feature --to REV --dry-run": timed(["rollback-prompt", "f1", "--to", base, "--dry-run"], env, root),
            "python -m oncall_ai --version": timed(["--version"], env, root),
        }
        print(f"repo: {a.files} prompt files, {a.commits + 1} commits (built in {build:.1f}s)")
        for name, dt in figures.items():
            print(f"  {name:<34} {dt * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
