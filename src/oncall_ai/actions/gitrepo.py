"""A small, careful git layer for actions that change a repository (rollbacks).

Why plumbing and not `git revert` / `git commit`: every step before the final one must leave the
repository byte-for-byte as it was, so that a refusal (a conflict, a declined confirmation, a
failed check) changes nothing at all. So:

- Read-only commands run with GIT_OPTIONAL_LOCKS=0, which stops `git status` from rewriting
  .git/index with refreshed stat data.
- The new commit is built in a *quarantine*: a temporary index file (GIT_INDEX_FILE) and a
  temporary object directory (GIT_OBJECT_DIRECTORY, with the real one as an alternate), the way
  git's own receive-pack quarantines incoming objects. Merges, trees and the commit object are
  written there; the repository never sees them unless the action is applied.
- Applying is two steps, each atomic in git: `read-tree -m -u OLD NEW` moves the index and the
  working tree (it verifies every path before writing any), then `update-ref REF NEW OLD` moves
  the branch only if it still points at OLD (compare-and-swap). If anything fails after the first
  step, `restore()` puts back the ref, the index file bytes, the changed working-tree files and
  removes the objects that were copied in.

git itself is run as a subprocess (not GitPython) because this code needs exact control of the
environment, stdin and exit codes of plumbing commands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from oncall_ai.errors import ConfigError, DataError

# Variables that would point git at some other repository, index or object store than ours.
_SCRUBBED_ENV = (
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_COMMON_DIR", "GIT_PREFIX",
    "GIT_QUARANTINE_PATH",
)
ZERO_OID_CHARS = "0"


class GitFailed(Exception):
    """A git command failed (internal; callers turn it into an OncallError with advice)."""

    def __init__(self, args: list[str], returncode: int, stderr: str, stdout: str = ""):
        super().__init__(f"git {' '.join(args)} failed ({returncode}): {stderr.strip()}")
        self.args_ = args
        self.returncode = returncode
        self.stderr = stderr
        self.stdout = stdout


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    subject: str
    author: str
    at_ms: int
    parents: tuple[str, ...]
    body: str = ""

    @property
    def short(self) -> str:
        return self.sha[:10]

    def as_dict(self) -> dict:
        from oncall_ai.timeutil import format_time

        return {"sha": self.sha, "subject": self.subject, "author": self.author,
                "at": format_time(self.at_ms), "parents": list(self.parents)}


def _git_binary() -> str:
    found = shutil.which("git")
    if not found:
        raise ConfigError("git is not installed or not on PATH; rollbacks need the git command line")
    return found


class GitRepo:
    """One working tree of a git repository, addressed by its top-level folder."""

    def __init__(self, path: Path, *, what: str = "repository", interactive: bool = False):
        self.git = _git_binary()
        self.interactive = interactive
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{what} {path}: no such folder")
        if not path.is_dir():
            raise ConfigError(f"{what} {path}: is a file, not a git repository folder")
        probe = self._run(["rev-parse", "--is-bare-repository", "--is-inside-work-tree"], cwd=path, check=False)
        if probe.returncode != 0:
            raise ConfigError(f"{what} {path}: not a git repository ({probe.stderr.strip() or 'git rev-parse failed'})",
                              hint="check the path in the config, or run `git init` there")
        if probe.stdout.split()[:2] != ["false", "true"]:
            raise ConfigError(f"{what} {path}: a bare repository (or a .git folder) has no working tree to roll back in",
                              hint="point the config at a clone with a working tree")
        lines = self._run(["rev-parse", "--show-toplevel", "--show-prefix"], cwd=path).stdout.splitlines()
        self.top = Path(lines[0])
        self.prefix = lines[1] if len(lines) > 1 else ""  # the configured folder inside the repo, "" or "sub/"
        self.what = what
        paths = self.out("rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir",
                         "--git-path", "objects", "--git-path", "index").splitlines()
        self.git_dir, self.common_dir, self.objects_dir, self.index_path = (Path(p) for p in paths)

    # --- running git ---------------------------------------------------------------------
    def env(self, extra: dict | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env["GIT_OPTIONAL_LOCKS"] = "0"
        env["LC_ALL"] = "C"
        env["LANGUAGE"] = "C"
        env.pop("GIT_EXTERNAL_DIFF", None)
        if not self.interactive:
            env["GIT_TERMINAL_PROMPT"] = "0"  # a script must never hang on a credentials prompt
        if extra:
            env.update(extra)
        return env

    def _run(self, args: list[str], *, cwd: Path | None = None, input: bytes | str | None = None,
             env: dict | None = None, check: bool = True, text: bool = True, timeout: float | None = None):
        cmd = [self.git, "-c", "gc.auto=0", "-c", "maintenance.auto=false", "-c", "core.quotePath=false",
               "-c", "color.ui=false", *args]
        if isinstance(input, str) and not text:
            input = input.encode()
        elif isinstance(input, bytes) and text:
            input = input.decode("utf-8", "surrogateescape")
        try:
            proc = subprocess.run(cmd, cwd=cwd or self.top, input=input, capture_output=True, text=text,
                                  env=self.env(env), timeout=timeout,
                                  **({"encoding": "utf-8", "errors": "surrogateescape"} if text else {}))
        except subprocess.TimeoutExpired:
            raise GitFailed(args, -1, f"timed out after {timeout:g}s") from None
        if check and proc.returncode != 0:
            err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode("utf-8", "replace")
            out = proc.stdout if isinstance(proc.stdout, str) else proc.stdout.decode("utf-8", "replace")
            raise GitFailed(args, proc.returncode, err, out)
        return proc

    def run(self, *args: str, input=None, env: dict | None = None, check: bool = True, text: bool = True,
            timeout: float | None = None):
        return self._run(list(args), input=input, env=env, check=check, text=text, timeout=timeout)

    def out(self, *args: str, env: dict | None = None, input=None) -> str:
        return self.run(*args, env=env, input=input).stdout.rstrip("\n")

    def ok(self, *args: str, env: dict | None = None) -> bool:
        return self.run(*args, env=env, check=False).returncode == 0

    # --- reading --------------------------------------------------------------------------
    def head_branch(self) -> str | None:
        """refs/heads/NAME that HEAD points at, or None when HEAD is detached."""
        p = self.run("symbolic-ref", "-q", "HEAD", check=False)
        return p.stdout.strip() if p.returncode == 0 else None

    def head(self) -> str | None:
        p = self.run("rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False)
        return p.stdout.strip() if p.returncode == 0 else None

    def empty_tree(self) -> str:
        return self.out("hash-object", "-t", "tree", "--stdin", input="")

    def tree_of(self, rev: str, env: dict | None = None) -> str:
        return self.out("rev-parse", "--verify", f"{rev}^{{tree}}", env=env)

    def commit_info(self, sha: str) -> CommitInfo:
        out = self.out("show", "-s", "--no-show-signature", "--format=%H%x00%P%x00%an <%ae>%x00%at%x00%s%x00%b", sha)
        h, parents, author, at, subject, body = (out.split("\x00") + [""] * 6)[:6]
        return CommitInfo(h, subject, author, int(at) * 1000 if at.isdigit() else 0,
                          tuple(parents.split()), body.strip())

    def commit_candidates(self, prefix: str) -> list[str]:
        """Every commit whose sha starts with `prefix` (hex, >= 4 chars)."""
        p = self.run("rev-parse", f"--disambiguate={prefix.lower()}", check=False)
        objs = [x for x in p.stdout.split() if x]
        if not objs:
            return []
        batch = self.run("cat-file", "--batch-check=%(objectname) %(objecttype)", input="\n".join(objs) + "\n")
        return [line.split()[0] for line in batch.stdout.splitlines() if line.endswith(" commit")]

    def ls_tree(self, rev: str, env: dict | None = None) -> dict[str, tuple[str, str]]:
        """path -> (mode, oid) of every file (blob, symlink, submodule) in `rev`'s tree."""
        out = self.run("ls-tree", "-r", "-z", "--full-tree", rev, env=env).stdout
        files = {}
        for rec in out.split("\x00"):
            if not rec:
                continue
            meta, path = rec.split("\t", 1)
            mode, _type, oid = meta.split()
            files[path] = (mode, oid)
        return files

    def changed_paths(self, old: str, new: str, env: dict | None = None) -> list[tuple[str, str]]:
        """(status letter, path) of files that differ between two trees/commits (no renames)."""
        out = self.run("diff-tree", "-r", "-z", "--no-renames", "--name-status", old, new, env=env).stdout
        parts = [p for p in out.split("\x00")]
        result = []
        i = 0
        while i + 1 < len(parts):
            status, path = parts[i], parts[i + 1]
            if not status:
                break
            result.append((status[0], path))
            i += 2
        return result

    def read_blobs(self, specs: list[str]) -> list[bytes | None]:
        """Contents of `rev:path` specs (None for a missing one), through one cat-file process."""
        if not specs:
            return []
        p = self.run("cat-file", "--batch", input=("\n".join(specs) + "\n").encode(), text=False)
        data = p.stdout
        pos = 0
        result: list[bytes | None] = []
        for _ in specs:
            nl = data.index(b"\n", pos)
            header = data[pos:nl].decode("utf-8", "replace")
            pos = nl + 1
            fields = header.split()
            if len(fields) == 3 and fields[1] in ("blob", "tree", "commit", "tag"):
                size = int(fields[2])
                body = data[pos:pos + size]
                pos += size + 1
                result.append(body if fields[1] == "blob" else None)
            else:  # "<spec> missing" / "ambiguous"
                result.append(None)
        return result

    def remotes(self) -> list[str]:
        return self.out("remote").split()

    def ident(self) -> str:
        """`Name <email>` of the committer git will use, or a ConfigError saying how to set it."""
        p = self.run("var", "GIT_COMMITTER_IDENT", check=False)
        if p.returncode != 0 or "<" not in p.stdout:
            raise ConfigError(f"{self.top}: git does not know who you are, so it cannot make the rollback commit",
                              hint='run `git config --global user.name "Your Name"` and '
                                   '`git config --global user.email you@example.com`, then run this again')
        text = p.stdout.strip()
        return text[: text.index(">") + 1]

    # --- safety ---------------------------------------------------------------------------
    def in_progress_operation(self) -> str | None:
        """The git operation left half-done in this working tree, if any."""
        checks = (
            ("MERGE_HEAD", "a merge", "`git merge --continue` or `git merge --abort`"),
            ("CHERRY_PICK_HEAD", "a cherry-pick", "`git cherry-pick --continue` or `git cherry-pick --abort`"),
            ("REVERT_HEAD", "a revert", "`git revert --continue` or `git revert --abort`"),
            ("rebase-merge", "a rebase", "`git rebase --continue` or `git rebase --abort`"),
            ("rebase-apply", "a rebase or `git am`", "`git rebase --abort` (or `git am --abort`)"),
            ("BISECT_LOG", "a bisect", "`git bisect reset`"),
            ("sequencer", "a cherry-pick or revert sequence", "`git cherry-pick --abort` or `git revert --abort`"),
        )
        for name, what, fix in checks:
            if (self.git_dir / name).exists():
                return f"{what} is in progress; finish or abort it first ({fix})"
        if self.index_path.with_name(self.index_path.name + ".lock").exists():
            return (f"{self.index_path}.lock exists: another git command is running here (or crashed); "
                    "wait for it, or delete the lock file if no git process is running")
        return None

    def dirty_paths(self) -> list[str]:
        """Tracked files with staged or unstaged changes (untracked files are not counted)."""
        out = self.run("status", "--porcelain=v1", "-z", "--untracked-files=no", "--ignore-submodules=none").stdout
        return _porcelain_paths(out)

    def untracked_in(self, paths: list[str]) -> list[str]:
        if not paths:
            return []
        out = self.run("status", "--porcelain=v1", "-z", "--untracked-files=all", "--",
                       *[f":(top,literal){p}" for p in paths]).stdout
        recs = [r for r in out.split("\x00") if r]
        return [r[3:] for r in recs if r.startswith("?? ")]

    def check_ref_format(self, branch: str) -> bool:
        return self.ok("check-ref-format", "--branch", branch) and not branch.startswith("-")

    def ref_exists(self, ref: str) -> bool:
        return self.ok("rev-parse", "--verify", "--quiet", ref)


def _porcelain_paths(out: str) -> list[str]:
    recs = out.split("\x00")
    paths = []
    i = 0
    while i < len(recs):
        rec = recs[i]
        i += 1
        if not rec:
            continue
        status, path = rec[:2], rec[3:]
        paths.append(path)
        if status[0] in "RC":  # a rename/copy record is followed by its source path
            i += 1
    return paths


def _quote_alternate(path: str) -> str:
    # GIT_ALTERNATE_OBJECT_DIRECTORIES is ':'-separated; a path with ':' must be C-quoted.
    if ":" in path or path.startswith('"'):
        return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return path


class Quarantine:
    """A temporary index and object directory in which a commit is prepared without touching the
    repository. `migrate()` copies its objects into the repository; `discard()` forgets them."""

    def __init__(self, repo: GitRepo):
        self.repo = repo
        self._tmp = tempfile.TemporaryDirectory(prefix="oncall-ai-rollback-")
        self.root = Path(self._tmp.name)
        self.objects = self.root / "objects"
        self.objects.mkdir()
        self.index = self.root / "index"
        self.copied: list[Path] = []
        self.created_dirs: list[Path] = []

    def env(self, *, index: bool = True) -> dict:
        env = {
            "GIT_OBJECT_DIRECTORY": str(self.objects),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": _quote_alternate(str(self.repo.objects_dir)),
        }
        if index:
            env["GIT_INDEX_FILE"] = str(self.index)
        return env

    def migrate(self) -> None:
        """Copy the quarantined loose objects into the repository (objects already there are
        skipped). Objects are content-addressed, so a copy can never change an existing one."""
        for fan in sorted(self.objects.iterdir()):
            if not fan.is_dir() or len(fan.name) != 2:
                continue  # info/, pack/ (never written: nothing here packs)
            for obj in sorted(fan.iterdir()):
                dest_dir = self.repo.objects_dir / fan.name
                dest = dest_dir / obj.name
                if dest.exists():
                    continue
                if not dest_dir.exists():
                    dest_dir.mkdir()
                    self.created_dirs.append(dest_dir)
                tmp = dest_dir / f"tmp_oncall_ai_{obj.name}"
                shutil.copyfile(obj, tmp)
                os.chmod(tmp, 0o444)
                os.replace(tmp, dest)
                self.copied.append(dest)

    def unmigrate(self) -> None:
        """Remove the objects `migrate()` copied (used when an apply is undone)."""
        for p in reversed(self.copied):
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        for d in reversed(self.created_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        self.copied.clear()
        self.created_dirs.clear()

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@dataclass
class ApplyState:
    """What `advance()` changed, so that `restore()` can put it back."""

    ref: str
    old: str
    new: str
    update_worktree: bool
    index_bytes: bytes | None = None
    index_existed: bool = True
    moved_worktree: bool = False
    moved_ref: bool = False
    changed: list[tuple[str, str]] = field(default_factory=list)
    missing_dirs: set[str] = field(default_factory=set)


def advance(repo: GitRepo, q: Quarantine, *, ref: str, old: str, new: str, update_worktree: bool,
            reflog: str, fail_after_worktree=None) -> ApplyState:
    """Move `ref` from commit `old` to its child `new` (creating it when `old` is None), and
    the index and working tree with it when `update_worktree`. All-or-nothing: on any failure the
    repository is restored and the exception re-raised. `fail_after_worktree` is a test seam."""
    state = ApplyState(ref=ref, old=old or "", new=new, update_worktree=update_worktree)
    try:
        q.migrate()
        if update_worktree:
            state.changed = repo.changed_paths(old, new)
            for _status, path in state.changed:
                parent = Path(path).parent
                while str(parent) not in ("", "."):
                    if not (repo.top / parent).is_dir():
                        state.missing_dirs.add(str(parent))
                    parent = parent.parent
            state.index_existed = repo.index_path.exists()
            state.index_bytes = repo.index_path.read_bytes() if state.index_existed else None
            state.moved_worktree = True
            # A copied or restored checkout has stale stat data in its index, and read-tree would
            # call its clean files "not uptodate": refresh first (content is already checked clean).
            repo.ok("update-index", "-q", "--refresh")
            repo.run("read-tree", "-m", "-u", old, new)
            if fail_after_worktree:
                fail_after_worktree()
        zero = "0" * len(new)
        state.moved_ref = True
        repo.run("update-ref", "-m", reflog, ref, new, old or zero)
    except BaseException:
        restore(repo, q, state)
        raise
    return state


def restore(repo: GitRepo, q: Quarantine, state: ApplyState) -> None:
    """Undo what `advance()` did: ref, index bytes, working-tree files, copied objects. Best effort
    at every step (each one is tried even when an earlier one fails); problems go to stderr."""
    problems = []
    if state.moved_ref:
        current = repo.run("rev-parse", "--verify", "--quiet", state.ref, check=False).stdout.strip()
        if current == state.new:
            try:
                if state.old:
                    repo.run("update-ref", "-m", "oncall-ai: undo an interrupted rollback", state.ref, state.old, state.new)
                else:
                    repo.run("update-ref", "-d", state.ref, state.new)
            except GitFailed as e:
                problems.append(str(e))
    if state.moved_worktree:
        try:
            if state.index_bytes is not None:
                tmp = repo.index_path.with_name("index.oncall-ai-restore")
                tmp.write_bytes(state.index_bytes)
                os.replace(tmp, repo.index_path)
            elif not state.index_existed and repo.index_path.exists():
                repo.index_path.unlink()
        except OSError as e:
            problems.append(f"restoring {repo.index_path}: {e}")
        old_files = repo.ls_tree(state.old) if state.old else {}
        to_checkout = [p for _s, p in state.changed if p in old_files]
        for _s, p in state.changed:
            if p not in old_files:
                full = repo.top / p
                try:
                    if full.is_symlink() or full.is_file():
                        full.unlink()
                except OSError as e:
                    problems.append(f"removing {full}: {e}")
        for d in sorted(state.missing_dirs, key=lambda s: -s.count("/")):
            try:
                (repo.top / d).rmdir()
            except OSError:
                pass
        if to_checkout:
            try:
                repo.run("checkout-index", "-f", "-z", "--stdin", input="\x00".join(to_checkout) + "\x00")
            except GitFailed as e:
                problems.append(str(e))
    q.unmigrate()
    for p in problems:
        print(f"warning: while restoring {repo.top}: {p}", file=sys.stderr)
    if problems:
        raise DataError(f"{repo.top}: a rollback failed half way and the repository could not be fully restored",
                        hint="run `git status` there and compare with `git log -1`; nothing was pushed")
