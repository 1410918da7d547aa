"""Write a dated git history in one go with `git fast-import`.

One process per repository instead of two per commit keeps a sandbox quick to build, and the
result is an ordinary repository: branch `main` checked out, clean working tree, every commit
with its own author, committer and date (with the author's UTC offset), so `git log`, `git blame`
and `git revert` behave as in a real prompt repo. Commit ids depend only on content, people and
dates, so the same plan gives the same shas.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from oncall_ai.errors import ConfigError


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    tz_minutes: int = 0  # UTC offset of the person's clock, for realistic dates

    def ident(self, at_ms: int) -> str:
        sign = "+" if self.tz_minutes >= 0 else "-"
        off = abs(self.tz_minutes)
        return f"{self.name} <{self.email}> {at_ms // 1000} {sign}{off // 60:02d}{off % 60:02d}"


@dataclass
class CommitSpec:
    at_ms: int
    author: Person
    message: str
    files: dict[str, str]  # path -> full new content (only the files this commit changes)
    committer: Person | None = None
    sha: str | None = None  # filled in by write_repo


def _git_env() -> dict[str, str]:
    env = dict(os.environ)
    # A user's global hooks, templates or signing config must not change the sandbox.
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
                "LC_ALL": "C"})
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"):
        env.pop(var, None)
    return env


def _run(args: list[str], cwd: Path, stdin: bytes | None = None) -> bytes:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, env=_git_env())
    except FileNotFoundError:
        raise ConfigError("git is not installed or not on PATH; the demo sandbox needs it for its repos") from None
    if proc.returncode != 0:
        raise ConfigError(f"git {args[0]} failed in {cwd}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def write_repo(path: Path, commits: list[CommitSpec], *, branch: str = "main") -> list[str]:
    """Create a repository at `path` holding `commits` (in order) on `branch`, check it out, and
    return the full commit shas (also stored on each CommitSpec)."""
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    _run(["init", "-q", "-b", branch], path)
    out = bytearray()
    for i, c in enumerate(commits, 1):
        committer = c.committer or c.author
        msg = c.message.encode() + (b"" if c.message.endswith("\n") else b"\n")
        out += f"commit refs/heads/{branch}\nmark :{i}\n".encode()
        out += f"author {c.author.ident(c.at_ms)}\ncommitter {committer.ident(c.at_ms)}\n".encode()
        out += f"data {len(msg)}\n".encode() + msg
        if i > 1:
            out += f"from :{i - 1}\n".encode()
        for fpath in sorted(c.files):
            data = c.files[fpath].encode()
            out += f"M 100644 inline {fpath}\ndata {len(data)}\n".encode() + data + b"\n"
        out += b"\n"
    marks = path / ".git" / "demo-marks"
    _run(["fast-import", "--quiet", "--done", f"--export-marks={marks}"], path, bytes(out) + b"done\n")
    shas: dict[int, str] = {}
    for line in marks.read_text().splitlines():
        mark, sha = line.split()
        shas[int(mark[1:])] = sha
    marks.unlink()
    _run(["reset", "-q", "--hard", branch], path)
    result = [shas[i] for i in range(1, len(commits) + 1)]
    for c, sha in zip(commits, result, strict=True):
        c.sha = sha
    return result
