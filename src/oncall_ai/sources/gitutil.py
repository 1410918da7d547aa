"""Small helpers for reading git repos (read-only) with gitpython, shared by the prompt repo and
the platform files (pins, indexes, judges).

Speed rule: every question is one `git` process over the window (or one persistent
`cat-file --batch` process for blob contents), never a walk of the whole history in Python and
never a process per commit. Output is parsed from NUL/control-character separated formats so that
paths and messages may contain anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oncall_ai.errors import ConfigError, DataError
from oncall_ai.timeutil import format_time

# Options that make `git log`/`git show` output independent of the user's git config
# (colour, external diff drivers, signatures, prefixes) so that it can be parsed.
PLAIN_LOG = ("--no-color", "--no-ext-diff", "--no-show-signature")
PATCH_PREFIXES = ("--src-prefix=a/", "--dst-prefix=b/")


@dataclass(frozen=True)
class FileChange:
    """One path in a commit's name-status: status A/M/D/T/R/C; old_path for renames and copies."""

    status: str
    path: str
    old_path: str | None = None

    @property
    def all_paths(self) -> tuple[str, ...]:
        return (self.path,) if not self.old_path else (self.path, self.old_path)


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    parents: tuple[str, ...]
    author: str
    author_email: str
    authored_at: int  # epoch ms
    at: int  # committer time, epoch ms: when the commit landed on the branch
    message: str
    files: tuple[FileChange, ...] = ()

    @property
    def subject(self) -> str:
        return self.message.strip().splitlines()[0] if self.message.strip() else ""

    @property
    def by(self) -> str:
        if self.author and self.author_email:
            return f"{self.author} <{self.author_email}>"
        return self.author or self.author_email or ""


def open_repo(path: Path | None, what: str):
    """Open a git repo read-only; ConfigError (exit 2) naming the config key when it is missing
    or not a git repo. `what` names it for messages, e.g. "prompt_repo" or "pins.repo"."""
    import git

    if path is None:
        raise ConfigError(f"{what}: not configured")
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{what}: {p} does not exist",
                          hint=f"fix `{what}` in the config, or clone the repo there")
    if not p.is_dir():
        raise ConfigError(f"{what}: {p} is a file, not a git repo folder")
    try:
        # No search of parent folders: a plain folder inside some other checkout must not be read
        # as that checkout.
        repo = git.Repo(p, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise ConfigError(f"{what}: {p} is not a git repo (no .git)",
                          hint=f"point `{what}` at the top folder of a git clone") from None
    return repo


def git_text(repo, *args: str) -> str:
    """Run one git command and return its stdout as text (undecodable bytes replaced). A repo
    without commits is a DataError naming it."""
    import git

    try:
        out = repo.git.execute(["git", "-c", "core.quotePath=false", *args],
                               stdout_as_string=False, strip_newline_in_stdout=False)
    except git.GitCommandError as e:
        err = str(e.stderr or "")
        if "does not have any commits" in err or "bad default revision 'HEAD'" in err or (
                "ambiguous argument 'HEAD'" in err):
            where = repo.working_tree_dir or repo.git_dir
            raise DataError(f"{where}: the git repo has no commits yet") from None
        raise
    return out.decode("utf-8", errors="replace")


def window_args(start_ms: int, end_ms: int) -> list[str]:
    """--since/--until covering [start, end) at git's one-second resolution (inclusive at both
    ends); the caller filters exactly on committer time."""
    since = start_ms // 1000
    until = -(-end_ms // 1000)
    return [f"--since={since}", f"--until={until}"]


LOG_FORMAT = "%x1e%H%x1f%P%x1f%an%x1f%ae%x1f%at%x1f%ct%x1f%B%x1f"


def log_commits(repo, start_ms: int, end_ms: int, *, paths: list[str] | None = None,
                name_status: bool = True, ref: str = "HEAD") -> list[CommitInfo]:
    """Commits on `ref`'s first-parent line whose committer time is in [start, end), newest first.

    One `git log` process. --since stops the walk at the first older commit, so the cost is
    proportional to the window, not to the history. First-parent: what landed on the branch; a
    merge is one change, diffed against the branch it landed on (`--diff-merges=first-parent`).
    """
    args = ["log", *PLAIN_LOG, "--first-parent", "--diff-merges=first-parent", "-M", "-z",
            f"--format={LOG_FORMAT}", *window_args(start_ms, end_ms)]
    if name_status:
        args.append("--name-status")
    args.append(ref)
    if paths is not None:
        args += ["--", *(f":(literal){p}" for p in paths)]
    return [c for c in parse_log(git_text(repo, *args)) if start_ms <= c.at < end_ms]


def parse_log(text: str) -> list[CommitInfo]:
    commits = []
    for chunk in text.split("\x1e"):
        if not chunk.strip("\x00\n"):
            continue
        head = chunk.split("\x1f", 6)
        if len(head) < 7:
            continue
        sha, parents, author, email, a_at, c_at, rest = head
        message, _, tail = rest.rpartition("\x1f")
        files = _parse_name_status(tail)
        commits.append(CommitInfo(
            sha=sha.strip(), parents=tuple(parents.split()), author=author, author_email=email,
            authored_at=int(a_at) * 1000, at=int(c_at) * 1000, message=message.strip("\n"),
            files=tuple(files)))
    return commits


def _parse_name_status(tail: str) -> list[FileChange]:
    parts = tail.lstrip("\x00\n").split("\x00")
    files = []
    i = 0
    while i < len(parts):
        status = parts[i].strip("\n")
        if not status:
            i += 1
            continue
        code = status[0]
        if code in "RC" and i + 2 < len(parts):
            files.append(FileChange(code, parts[i + 2], parts[i + 1]))
            i += 3
        elif i + 1 < len(parts):
            files.append(FileChange(code, parts[i + 1]))
            i += 2
        else:
            break
    return files


def show_patches(repo, shas: list[str], paths: list[str] | None) -> dict[str, str]:
    """Unified diffs of `paths` (None: every path) in each commit against its first parent, from
    one `git show`."""
    if not shas or paths == []:
        return {}
    args = ["show", *PLAIN_LOG, *PATCH_PREFIXES, "--diff-merges=first-parent", "-M", "--patch",
            "--format=%x1e%H", *shas]
    if paths is not None:
        args += ["--", *(f":(literal){p}" for p in paths)]
    out: dict[str, str] = {}
    for chunk in git_text(repo, *args).split("\x1e"):
        if not chunk.strip():
            continue
        sha, _, patch = chunk.partition("\n")
        out[sha.strip()] = patch.strip("\n") + "\n" if patch.strip() else ""
    return out


def split_patch(patch: str) -> list[tuple[str, str]]:
    """Split a multi-file patch into (header line, text) per file."""
    pieces: list[tuple[str, str]] = []
    current: list[str] = []
    for line in patch.splitlines(keepends=True):
        if line.startswith("diff --git ") and current:
            pieces.append((current[0], "".join(current)))
            current = []
        current.append(line)
    if current:
        pieces.append((current[0], "".join(current)))
    return pieces


def patch_for_paths(patch: str, paths: set[str]) -> str:
    """The parts of a multi-file patch that touch any of `paths`."""
    keep = []
    for header, text in split_patch(patch):
        h = header.rstrip("\n")
        if any(h.endswith(f" b/{p}") or f" a/{p} b/" in h for p in paths):
            keep.append(text)
    return "".join(keep)


MAX_DIFF_CHARS = 200_000


def cap_diff(text: str) -> str:
    """Keep diffs printable: a generated 20 MB file should not flood a terminal at 3am."""
    if len(text) <= MAX_DIFF_CHARS:
        return text
    cut = text.rfind("\n", 0, MAX_DIFF_CHARS) + 1 or MAX_DIFF_CHARS
    return text[:cut] + f"... diff truncated ({len(text) - cut} more characters; see `git show`)\n"


def shallow_problem(repo, start_ms: int, what: str) -> str | None:
    """A shallow clone whose history is cut after the window start misses changes: say where."""
    common = Path(getattr(repo, "common_dir", None) or repo.git_dir)
    shallow = common / "shallow"
    if not shallow.exists():
        return None
    shas = [s.strip() for s in shallow.read_text(errors="replace").split() if s.strip()]
    if not shas:
        return None
    try:
        out = git_text(repo, "log", "--no-walk=unsorted", "--format=%ct", *shas)
    except Exception:  # a boundary commit that cannot be read: still a cut history
        return (f"{what}: {repo.working_tree_dir or repo.git_dir} is a shallow clone; its history is cut "
                f"and changes before the cut are missing (run `git fetch --unshallow` there)")
    times = [int(t) * 1000 for t in out.split() if t.strip().isdigit()]
    if not times:
        return None
    cut = max(times)
    if cut <= start_ms:
        return None
    where = repo.working_tree_dir or repo.git_dir
    return (f"{what}: {where} is a shallow clone: its history is cut at {format_time(cut)}, after the "
            f"window start {format_time(start_ms)}; changes before the cut are missing "
            f"(run `git -C {where} fetch --unshallow`, or `git -C {where} fetch "
            f"--shallow-since={format_time(start_ms)}`)")


def resolve_commits(repo, prefix: str) -> list[str]:
    """Full shas of the commits whose id starts with `prefix` (hex, >= 4 chars)."""
    import git

    p = prefix.lower()
    if len(p) < 4 or any(c not in "0123456789abcdef" for c in p):
        return []
    if len(p) == 40:
        try:
            return [repo.git.rev_parse("--verify", "--quiet", f"{p}^{{commit}}").strip()]
        except git.GitCommandError:
            return []
    try:
        objs = repo.git.rev_parse(f"--disambiguate={p}").split()
    except git.GitCommandError:
        return []
    if not objs:
        return []
    # One `git cat-file --batch-check` process types every candidate object.
    import subprocess

    proc = subprocess.run(["git", f"--git-dir={repo.git_dir}", "cat-file", "--batch-check"],
                          input="\n".join(objs) + "\n", capture_output=True, text=True)
    commits = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] == "commit":
            commits.append(parts[0])
    return commits
