"""Rollback as a first-class deploy: plan -> show -> apply -> record.

`plan_prompt_rollback` / `plan_pin_rollback` check that the repository is safe to touch, work out
exactly which commit(s) are undone and build the rollback commit's tree in a quarantine (see
actions/gitrepo.py), so the plan can show the exact diff that will be committed while the
repository stays byte-for-byte untouched. `apply_plan` makes the commit and moves the branch (or
creates the review branch), restoring everything if any step fails; `push_plan` pushes without
force; `record_action` writes a doc of kind `action` to the store.

How a prompt change is undone, and why this way: we take the reverse patch of the commit
restricted to the prompt paths in scope (`git diff-tree -p --binary COMMIT PARENT -- paths`) and
apply it with `git apply --cached --3way` to a temporary index holding HEAD. `--3way` lets later
edits elsewhere in the same file survive (a real three-way merge, like `git revert`), while a
later edit to the same lines is a conflict that we refuse, naming the later commit. Unlike
`git revert --no-commit` followed by restoring non-prompt paths, this never writes to the real
index or working tree until the result is known to be clean, so a refusal cannot leave anything
behind. `--to REV` instead copies the paths' entries from REV's tree into the temporary index
(files added after REV are removed).

Nothing here ever runs a recorded change's own `rollback` text: triage and `changes show` print it
for a person to read; executing free text from the store would be a remote-code-execution hole.
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from oncall_ai.actions.gitrepo import CommitInfo, GitFailed, GitRepo, Quarantine, advance
from oncall_ai.errors import ConfigError, DataError, UsageError

SCHEMA = "oncall-ai/rollback/v1"
ACTION_PROMPT = "rollback-prompt"
ACTION_PIN = "rollback-pin"
TRAILER_OF = "Rollback-Of"
TRAILER_BY = "Rolled-Back-By"
TRAILER_INCIDENT = "Incident"
ROLLED_BACK_BY = "oncall-ai"
MAX_SHOWN = 20
_HEX = re.compile(r"^[0-9a-fA-F]{4,64}$")


@dataclass
class RollbackPlan:
    action: str  # rollback-prompt | rollback-pin
    target: str  # as the user gave it
    target_kind: str  # commit | path | feature | pin | index
    repo: GitRepo = field(repr=False)
    quarantine: Quarantine | None = field(repr=False)
    base_branch: str  # the branch HEAD is on (short name)
    head: str  # HEAD at plan time
    branch: str  # the branch the commit goes on (base_branch, or --branch NAME)
    creates_branch: bool
    undoes: list[CommitInfo] = field(default_factory=list)
    to: str | None = None  # --to: the resolved commit (prompts) or the value (pins)
    paths: list[str] = field(default_factory=list)  # repo paths rolled back
    left_alone: list[str] = field(default_factory=list)  # paths the undone commit changed, not rolled back
    changes: list[tuple[str, str]] = field(default_factory=list)  # (A|M|D, path) of the commit to make
    notes: list[str] = field(default_factory=list)
    message: str = ""
    diff: str = ""
    tree: str | None = None
    push_remote: str | None = None
    incident: str | None = None
    pin: dict | None = None
    nothing_to_do: str | None = None

    @property
    def push_branch(self) -> str | None:
        return self.branch if self.push_remote else None

    def as_dict(self) -> dict:
        return {
            "action": self.action,
            "target": self.target,
            "target_kind": self.target_kind,
            "repo": str(self.repo.top),
            "branch": self.branch,
            "base_branch": self.base_branch,
            "creates_branch": self.creates_branch,
            "head": self.head,
            "undoes": [c.as_dict() for c in self.undoes],
            "to": self.to,
            "paths": self.paths,
            "left_alone": self.left_alone,
            "changes": [{"status": s, "path": p} for s, p in self.changes],
            "notes": self.notes,
            "message": self.message,
            "diff": self.diff,
            "push": {"remote": self.push_remote, "branch": self.branch} if self.push_remote else None,
            "incident": self.incident,
            "pin": _jsonable_pin(self.pin),
            "nothing_to_do": self.nothing_to_do,
        }

    def close(self) -> None:
        if self.quarantine is not None:
            self.quarantine.close()


@dataclass
class RollbackResult:
    applied: bool = False
    commit: str | None = None
    pushed: dict | None = None
    recorded: str | None = None
    record_error: str | None = None

    def envelope(self, plan: RollbackPlan) -> dict:
        return {"schema": SCHEMA, "plan": plan.as_dict(), "applied": self.applied, "commit": self.commit,
                "pushed": self.pushed, "recorded": self.recorded, "record_error": self.record_error}


# --- scope: which files are prompts ------------------------------------------------------------

def glob_regex(pattern: str) -> re.Pattern:
    """A git-style path glob (what `:(glob)` pathspecs mean): `*` and `?` stay inside one folder,
    `**/` matches any number of folders, a trailing `/**` everything below."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == n:
            out.append("/.*")
            i += 3
        elif pattern.startswith("**", i):
            out.append("[^/]*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            j = pattern.find("]", i + 2)
            if j == -1:
                out.append(re.escape("["))
                i += 1
            else:
                body = pattern[i + 1:j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


class PathScope:
    """Which repository paths a rollback may touch. Patterns are relative to the configured folder
    (`prompt_repo`), which may be a sub-folder (`prefix`) of the git repository."""

    def __init__(self, patterns: list[str], prefix: str, *, literal: list[str] = (), everything: bool = False):
        self.prefix = prefix
        self.patterns = list(patterns)
        self._regexes = [glob_regex(p.strip("/") if p.endswith("/") else p) for p in patterns]
        self.literal = [x.strip("/") for x in literal]
        self.everything = everything

    def __call__(self, path: str) -> bool:
        if not path.startswith(self.prefix):
            return False
        rel = path[len(self.prefix):]
        if self.everything:
            return True
        for lit in self.literal:
            if rel == lit or rel.startswith(lit + "/"):
                return True
        # a pattern naming a folder matches everything inside it, as git pathspecs do
        candidates = [rel]
        parts = rel.split("/")
        candidates += ["/".join(parts[:k]) for k in range(len(parts) - 1, 0, -1)]
        return any(rx.fullmatch(c) for rx in self._regexes for c in candidates)

    def pathspecs(self) -> list[str]:
        if self.everything:
            return [f":(top,literal){self.prefix}" if self.prefix else ":(top)."]
        specs = [f":(top,glob){self.prefix}{p}" for p in self.patterns]
        specs += [f":(top,literal){self.prefix}{lit}" for lit in self.literal]
        return specs


class _Intersection:
    """Paths in both scopes (same interface as PathScope); git pathspecs, used to find commits,
    come from the narrower one, `b`."""

    def __init__(self, a: PathScope, b: PathScope):
        self.a, self.b = a, b

    def __call__(self, path: str) -> bool:
        return self.a(path) and self.b(path)

    def pathspecs(self) -> list[str]:
        return self.b.pathspecs()


def prompt_scope(cfg, prefix: str) -> PathScope:
    """Prompt files: every feature's `prompts` globs and every judge's rubric (`judges` file,
    `prompt:` keys). With neither configured, every file under `prompt_repo` counts."""
    globs = [g for f in cfg.features.values() for g in f.prompts]
    literal = _judge_prompt_paths(cfg)
    return PathScope(globs, prefix, literal=literal, everything=not globs and not literal)


def _judge_prompt_paths(cfg) -> list[str]:
    rf = getattr(cfg, "judges", None)
    if rf is None:
        return []
    try:
        import yaml

        data = yaml.safe_load((Path(rf.repo) / rf.file).read_text(encoding="utf-8"))
    except Exception:  # best effort: a broken judges file is reported by the judge commands
        return []
    if not isinstance(data, dict):
        return []
    return sorted({str(v["prompt"]) for v in data.values() if isinstance(v, dict) and isinstance(v.get("prompt"), str)})


# --- safety checks ---------------------------------------------------------------------------

def open_repo(path: Path | None, *, what: str, config_key: str, cfg, interactive: bool) -> GitRepo:
    if path is None:
        raise ConfigError(f"{cfg.describe()}: {config_key} is not set, so there is no repository to roll back in",
                          hint=f"add `{config_key}: PATH` to the config")
    return GitRepo(Path(path), what=what, interactive=interactive)


def preflight(repo: GitRepo) -> tuple[str, str]:
    """Refuse (DataError, exit 1) unless the repository is safe to commit to. Returns the short
    branch name and HEAD. Reads only: runs nothing that writes to .git."""
    op = repo.in_progress_operation()
    if op:
        raise DataError(f"{repo.top}: {op}; nothing was changed")
    ref = repo.head_branch()
    if ref is None:
        raise DataError(f"{repo.top}: HEAD is detached (not on a branch), so a rollback commit would be lost; nothing was changed",
                        hint="check out the branch you deploy from (e.g. `git switch main`), then run this again")
    head = repo.head()
    if head is None:
        raise DataError(f"{repo.top}: branch {ref.removeprefix('refs/heads/')} has no commits yet; nothing to roll back")
    dirty = repo.dirty_paths()
    if dirty:
        shown = ", ".join(dirty[:10]) + (f" and {len(dirty) - 10} more" if len(dirty) > 10 else "")
        raise DataError(f"{repo.top}: the working tree has uncommitted changes ({shown}); nothing was changed",
                        hint="commit them, or set them aside with `git stash`, then run this again "
                             "(a rollback must not mix with unreviewed edits)")
    return ref.removeprefix("refs/heads/"), head


def _check_branch_and_remote(repo: GitRepo, branch: str | None, push: str | None) -> None:
    if branch is not None:
        if not repo.check_ref_format(branch):
            raise UsageError(f"--branch {branch!r} is not a valid branch name")
        if repo.ref_exists(f"refs/heads/{branch}"):
            raise DataError(f"{repo.top}: branch {branch!r} already exists; nothing was changed",
                            hint="choose a new name with --branch (it is created for this rollback only)")
    if push is not None:
        if not push or push.startswith("-"):
            raise UsageError(f"--push {push!r}: give a remote name, e.g. --push origin")
        remotes = repo.remotes()
        if push not in remotes:
            raise DataError(f"{repo.top}: no git remote named {push!r} "
                            f"({'remotes: ' + ', '.join(remotes) if remotes else 'no remotes configured'}); nothing was changed",
                            hint="name one of the remotes with --push REMOTE, or add it with `git remote add`")


def _check_text_option(name: str, value: str | None) -> None:
    if value is None:
        return
    if not value.strip() or any(ord(ch) < 32 and ch != "\t" for ch in value) or "\x7f" in value:
        raise UsageError(f"{name} must be one line of text (it becomes a commit trailer)")


def resolve_commit(repo: GitRepo, text: str, *, what: str = "commit") -> str:
    """A full sha for a full or abbreviated commit sha; refuses unknown and ambiguous ones."""
    if not _HEX.match(text):
        raise DataError(f"{text!r} is not a commit sha (4 to 40 hex digits)")
    found = repo.commit_candidates(text)
    if not found:
        raise DataError(f"{repo.top}: no commit {text} in this repository",
                        hint="check the sha (`git log --oneline`); fetch first if it was made elsewhere")
    if len(found) > 1:
        lines = []
        for sha in sorted(found):
            c = repo.commit_info(sha)
            lines.append(f"  {sha[:12]}  {c.subject}")
        raise DataError(f"{repo.top}: {what} {text} is ambiguous; it could be:\n" + "\n".join(lines),
                        hint="give more digits of the sha")
    return found[0]


def resolve_rev(repo: GitRepo, text: str, *, option: str = "--to") -> str:
    """A sha (full or abbreviated), branch, tag or `HEAD~2` -> the full commit sha."""
    if text.startswith("-") or not text.strip():
        raise UsageError(f"{option} {text!r} is not a revision")
    if _HEX.match(text):
        found = repo.commit_candidates(text)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            return resolve_commit(repo, text, what="revision")
    p = repo.run("rev-parse", "--verify", "--quiet", "--end-of-options", f"{text}^{{commit}}", check=False)
    if p.returncode != 0:
        raise DataError(f"{repo.top}: {option} {text}: no such commit, branch or tag")
    return p.stdout.strip()


def repo_path(repo: GitRepo, base: Path, user_path: str) -> str:
    """A user's path (relative to the configured folder, or absolute) as a path relative to the
    repository top. Refuses `..` escapes, paths inside .git and symlinks leading out."""
    top = os.path.realpath(repo.top)
    raw = Path(user_path)
    if raw.is_absolute():
        cand = os.path.normpath(raw)
        rel = os.path.relpath(cand, top)
        if rel == ".." or rel.startswith("../"):
            parent_real = os.path.realpath(os.path.dirname(cand))
            rel = os.path.relpath(os.path.join(parent_real, os.path.basename(cand)), top)
    else:
        cand = os.path.normpath(os.path.join(os.path.realpath(base), raw))
        rel = os.path.relpath(cand, top)
    rel = rel.replace(os.sep, "/")
    if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
        raise DataError(f"{user_path}: outside the repository {repo.top}; nothing was changed",
                        hint="give a path inside the repository (relative to it, without `..` climbing out)")
    if rel == ".":
        raise DataError(f"{user_path}: is the whole repository; name a prompt file or folder, or a feature")
    parts = rel.split("/")
    if ".git" in parts:
        raise DataError(f"{user_path}: inside .git; name a prompt file")
    cur = top
    for i, part in enumerate(parts):
        cur = os.path.join(cur, part)
        if os.path.islink(cur):
            real = os.path.realpath(cur)
            inside = real == top or real.startswith(top + os.sep)
            if i < len(parts) - 1:
                raise DataError(f"{user_path}: goes through the symlink {'/'.join(parts[:i + 1])} -> {os.readlink(cur)}; "
                                "nothing was changed", hint="name the file by its real path inside the repository")
            if not inside:
                raise DataError(f"{user_path}: is a symlink resolving outside the repository ({real}); nothing was changed")
    return rel


# --- planning: prompts ---------------------------------------------------------------------

def plan_prompt_rollback(cfg, target: str, *, to: str | None = None, branch: str | None = None,
                         push: str | None = None, incident: str | None = None, message: str | None = None,
                         interactive: bool = False) -> RollbackPlan:
    _check_text_option("--incident", incident)
    repo = open_repo(cfg.prompt_repo, what="prompt repo", config_key="prompt_repo", cfg=cfg, interactive=interactive)
    base_branch, head = preflight(repo)
    _check_branch_and_remote(repo, branch, push)
    prompts = prompt_scope(cfg, repo.prefix)
    plan = RollbackPlan(action=ACTION_PROMPT, target=target, target_kind="", repo=repo, quarantine=None,
                        base_branch=base_branch, head=head, branch=branch or base_branch,
                        creates_branch=branch is not None, push_remote=push, incident=incident)
    try:
        _plan_prompt(plan, cfg, prompts, target, to, message)
    except BaseException:
        plan.close()
        raise
    return plan


def _plan_prompt(plan: RollbackPlan, cfg, prompts: PathScope, target: str, to: str | None, message: str | None):
    repo = plan.repo
    commit_sha: str | None = None
    scope: PathScope | _Intersection
    if target in cfg.features:
        feat = cfg.features[target]
        if not feat.prompts:
            raise ConfigError(f"{cfg.describe()}: features.{target}.prompts is empty, so feature {target!r} has no prompt files")
        plan.target_kind = "feature"
        scope = _Intersection(prompts, PathScope(list(feat.prompts), repo.prefix))
        what = f"feature {target} ({', '.join(feat.prompts)})"
    elif _HEX.match(target) and repo.commit_candidates(target):
        commit_sha = resolve_commit(repo, target)
        plan.target_kind = "commit"
        scope = prompts
        what = f"commit {commit_sha[:10]}"
    else:
        if _HEX.match(target) and not _path_known(repo, cfg, target):
            resolve_commit(repo, target)  # raises: no such commit
        rel = repo_path(repo, Path(cfg.prompt_repo), target)
        plan.target_kind = "path"
        tracked_now = any(p == rel or p.startswith(rel + "/") for p in repo.ls_tree("HEAD"))
        if not tracked_now and not repo.out("log", "-1", "--format=%H", "HEAD", "--", f":(top,literal){rel}"):
            raise DataError(f"{target}: not a feature, a commit sha, or a path git knows in {repo.top}",
                            hint=f"features: {', '.join(cfg.features) or '(none configured)'}; "
                                 "a path is relative to prompt_repo")
        literal = PathScope([], "", literal=[rel])
        scope = _Intersection(prompts, literal)
        if not any(scope(p) for p in _paths_ever(repo, rel)):
            raise DataError(f"{target}: not a prompt file (it matches no features.*.prompts glob); nothing was changed",
                            hint="rollback-prompt only touches prompt files; use git for anything else")
        what = rel

    if to is not None:
        _plan_restore_to(plan, scope, to, what, commit_sha)
    else:
        if commit_sha is None:
            found = repo.out("log", "-1", "--no-merges", "--format=%H", "HEAD", "--", *scope.pathspecs())
            if not found:
                raise DataError(f"{what}: no commit on {plan.base_branch} touches it; nothing to roll back")
            commit_sha = found
            info = repo.commit_info(commit_sha)
            if _is_oncall_rollback(info):
                raise DataError(
                    f"the most recent commit touching {what} is {commit_sha[:10]} \"{info.subject}\", itself a rollback "
                    "by oncall-ai; refusing to guess whether you want to undo it; nothing was changed",
                    hint=f"to undo that rollback, name it: `oncall-ai rollback-prompt {commit_sha}`; "
                         "to go further back, use --to REV")
            plan.notes.append(f"{commit_sha[:10]} is the most recent commit that touched {what}")
        _plan_undo(plan, scope, commit_sha)

    if plan.nothing_to_do is None:
        _describe_tree(plan)
    plan.message = _message(plan, message)


def _describe_tree(plan: RollbackPlan) -> None:
    """Fill in the changes and the exact diff the commit will have, and refuse when untracked files
    are in the way (git would refuse to overwrite them half way through)."""
    repo, env = plan.repo, plan.quarantine.env(index=False)
    plan.changes = repo.changed_paths(plan.head, plan.tree, env=env)
    plan.diff = repo.run("diff-tree", "-p", "--no-renames", "--no-ext-diff", "--no-textconv", plan.head, plan.tree,
                         env=env).stdout
    _check_untracked(plan)


def _check_untracked(plan: RollbackPlan) -> None:
    if plan.creates_branch:
        return  # the working tree is not touched
    clash = plan.repo.untracked_in([p for _s, p in plan.changes])
    if clash:
        raise DataError(f"{plan.repo.top}: untracked files are in the way of the rollback: {', '.join(clash[:10])}; "
                        "nothing was changed", hint="move or delete them (or commit them), then run this again")


def _path_known(repo: GitRepo, cfg, target: str) -> bool:
    return (Path(cfg.prompt_repo) / target).exists() or bool(
        repo.out("log", "-1", "--format=%H", "HEAD", "--", f":(top,literal){repo.prefix}{target}"))


def _paths_ever(repo: GitRepo, rel: str) -> list[str]:
    """Files at or under `rel` now or in history (for checking a path target is a prompt)."""
    now = [p for p in repo.ls_tree("HEAD") if p == rel or p.startswith(rel + "/")]
    if now:
        return now
    out = repo.run("log", "--format=", "--name-only", "-z", "HEAD", "--", f":(top,literal){rel}").stdout
    return sorted({p.strip("\n") for p in out.split("\x00") if p.strip("\n")})


def _is_oncall_rollback(info: CommitInfo) -> bool:
    return any(line.strip() == f"{TRAILER_BY}: {ROLLED_BACK_BY}" for line in info.body.splitlines())


def _plan_undo(plan: RollbackPlan, scope, sha: str) -> None:
    repo = plan.repo
    info = repo.commit_info(sha)
    plan.undoes = [info]
    parent = info.parents[0] if info.parents else repo.empty_tree()
    if len(info.parents) > 1:
        plan.notes.append(f"{sha[:10]} is a merge: undoing what it brought in relative to its first parent {parent[:10]}")
    if not info.parents:
        plan.notes.append(f"{sha[:10]} is the first commit of the repository: undoing it deletes the files it added")
    changed = repo.changed_paths(parent, sha)
    plan.paths = [p for _s, p in changed if scope(p)]
    plan.left_alone = [p for _s, p in changed if not scope(p)]
    if not plan.paths:
        touched = ", ".join(p for _s, p in changed[:10]) or "no files"
        raise DataError(
            f"commit {sha[:10]} \"{info.subject}\" touches no prompt files in scope (it changed: {touched}); "
            "nothing to roll back and nothing was changed",
            hint="a pin or index change is rolled back with `oncall-ai rollback-pin`")
    if not _is_ancestor(repo, sha, plan.head):
        raise DataError(f"commit {sha[:10]} is not in the history of {plan.base_branch}; nothing to undo there",
                        hint="check out the branch that has it, or use --to REV to restore content from it")
    patch = repo.run("diff-tree", "-p", "--binary", "--full-index", "--no-renames", "--no-ext-diff", "--no-textconv",
                     sha, parent, "--", *[f":(top,literal){p}" for p in plan.paths], text=False).stdout
    q = plan.quarantine = Quarantine(repo)
    env = q.env()
    repo.run("read-tree", plan.head, env=env)
    applied = repo.run("apply", "--cached", "--3way", "--whitespace=nowarn", input=patch, env=env,
                       check=False, text=False)
    if applied.returncode != 0:
        err = applied.stderr.decode("utf-8", "replace")
        _refuse_conflict(plan, sha, info, patch, err)
    plan.tree = repo.out("write-tree", env=env)
    if plan.tree == repo.tree_of(plan.head):
        done = repo.out("log", "-1", "--format=%H %s", "--fixed-strings", f"--grep={TRAILER_OF}: {sha}",
                        f"{sha}..{plan.head}")
        done_sha, _, done_subject = done.partition(" ")
        why = f" (already rolled back by {done_sha[:10]}: {done_subject})" if done else ""
        plan.nothing_to_do = (f"the prompt files in {plan.base_branch} already look as they did before {sha[:10]}{why}; "
                              "nothing to do")


def _is_ancestor(repo: GitRepo, a: str, b: str) -> bool:
    return repo.ok("merge-base", "--is-ancestor", a, b)


def _refuse_conflict(plan: RollbackPlan, sha: str, info: CommitInfo, patch: bytes, err: str) -> None:
    """The reverse patch does not merge cleanly: find the later commit that changed the same lines."""
    repo, q = plan.repo, plan.quarantine
    env = q.env()
    unmerged = repo.run("ls-files", "-u", "-z", env=env).stdout
    conflicted = sorted({rec.split("\t", 1)[1] for rec in unmerged.split("\x00") if "\t" in rec})
    if not conflicted:
        conflicted = [p for p in plan.paths if p in err] or list(plan.paths)
    later = repo.out("rev-list", "--reverse", f"{sha}..{plan.head}", "--",
                     *[f":(top,literal){p}" for p in conflicted]).split()
    culprit = None
    probe_env = {**q.env(), "GIT_INDEX_FILE": str(q.root / "probe-index")}
    for c in later[:100]:
        repo.run("read-tree", c, env=probe_env)
        if repo.run("apply", "--cached", "--3way", "--whitespace=nowarn", input=patch, env=probe_env,
                    check=False, text=False).returncode != 0:
            culprit = c
            break
    if culprit:
        ci = repo.commit_info(culprit)
        who = (f"later commit {culprit[:10]} \"{ci.subject}\" ({ci.author}, "
               f"{_fmt_time(ci.at_ms)}) changed the same lines")
    elif later:
        who = "later commits changed the same lines: " + ", ".join(c[:10] for c in later[:5])
    else:
        who = err.strip().splitlines()[-1] if err.strip() else "git apply failed"
    raise DataError(
        f"undoing {sha[:10]} \"{info.subject}\" conflicts with later edits to {', '.join(conflicted)}: {who}. "
        "Nothing was changed",
        hint=(f"restore a known-good version instead: `oncall-ai rollback-prompt {conflicted[0]} --to {sha}^ --dry-run`, "
              f"or undo {culprit[:10]} first" if culprit else
              f"restore a known-good version instead with --to {sha}^, or resolve it by hand with `git revert {sha}`"))


def _plan_restore_to(plan: RollbackPlan, scope, to: str, what: str, commit_sha: str | None) -> None:
    repo = plan.repo
    rev = resolve_rev(repo, to)
    plan.to = rev
    head_files = repo.ls_tree(plan.head)
    rev_files = repo.ls_tree(rev)
    if commit_sha is not None:  # a commit target with --to: the prompt files that commit touched
        info = repo.commit_info(commit_sha)
        parent = info.parents[0] if info.parents else repo.empty_tree()
        touched = {p for _s, p in repo.changed_paths(parent, commit_sha)}
        in_scope = {p for p in touched if scope(p)}
        if not in_scope:
            raise DataError(f"commit {commit_sha[:10]} touches no prompt files; nothing to restore and nothing was changed")
        candidates = in_scope
    else:
        candidates = {p for p in set(head_files) | set(rev_files) if scope(p)}
    plan.paths = sorted(p for p in candidates if head_files.get(p) != rev_files.get(p))
    in_rev = [p for p in candidates if p in rev_files]
    if not in_rev and not any(p in head_files for p in candidates):
        raise DataError(f"{what}: no such files in {plan.base_branch} or in {to}; nothing was changed")
    plan.notes.append(f"restoring {what} to their content at {rev[:10]}"
                      + ("" if in_rev else " (where they did not exist: they will be deleted)"))
    plan.quarantine = Quarantine(repo)
    if not plan.paths:
        plan.nothing_to_do = f"{what} in {plan.base_branch} already match {rev[:10]}; nothing to do"
        return
    plan.undoes = [repo.commit_info(c) for c in repo.out(
        "rev-list", f"{rev}..{plan.head}", "--", *[f":(top,literal){p}" for p in plan.paths]).split()]
    env = plan.quarantine.env()
    repo.run("read-tree", plan.head, env=env)
    lines = []
    for p in plan.paths:
        if p in rev_files:
            mode, oid = rev_files[p]
            lines.append(f"{mode} {oid}\t{p}")
        else:
            lines.append(f"0 {'0' * len(plan.head)}\t{p}")
    repo.run("update-index", "-z", "--index-info", input="\x00".join(lines) + "\x00", env=env)
    plan.tree = repo.out("write-tree", env=env)


# --- planning: pins and index versions -------------------------------------------------------

def plan_pin_rollback(cfg, key: str, *, file: str = "pins", to_value: str | None = None, change: str | None = None,
                      branch: str | None = None, push: str | None = None, incident: str | None = None,
                      message: str | None = None, interactive: bool = False) -> RollbackPlan:
    from oncall_ai.actions import yaml_edit

    if (to_value is None) == (change is None):
        raise UsageError("give exactly one of --to VALUE (the value to set) or --change SHA (undo that commit's change)")
    if file not in ("pins", "indexes"):
        raise UsageError(f"--file {file!r}: use pins or indexes")
    _check_text_option("--incident", incident)
    rf = getattr(cfg, file)
    if rf is None:
        raise ConfigError(f"{cfg.describe()}: `{file}: {{repo: PATH, file: FILE}}` is not set, so there is no {file} file to edit")
    repo = open_repo(Path(rf.repo), what=f"{file} repo", config_key=f"{file}.repo", cfg=cfg, interactive=interactive)
    base_branch, head = preflight(repo)
    _check_branch_and_remote(repo, branch, push)
    rel = repo_path(repo, Path(rf.repo), rf.file)
    head_files = repo.ls_tree(head)
    if rel not in head_files:
        raise DataError(f"{rf.file}: not committed in {repo.top} (HEAD has no {rel}); nothing was changed")
    mode, _oid = head_files[rel]
    if mode not in ("100644", "100755"):
        raise DataError(f"{rel}: is not a regular file in git (mode {mode}); edit it by hand")
    path = (key, "version") if file == "indexes" else (key,)
    dotted = ".".join(path)
    kind = "index" if file == "indexes" else "pin"
    plan = RollbackPlan(action=ACTION_PIN, target=key, target_kind=kind, repo=repo, quarantine=None,
                        base_branch=base_branch, head=head, branch=branch or base_branch,
                        creates_branch=branch is not None, push_remote=push, incident=incident)
    try:
        raw = repo.read_blobs([f"{head}:{rel}"])[0] or b""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{rel}: not UTF-8 text; edit it by hand") from None
        where = f"{rel}"
        data = yaml_edit.load(text, where)
        try:
            current = yaml_edit.get_path(data, path)
        except KeyError:
            keys = ", ".join(map(str, data)) if isinstance(data, dict) else "none"
            raise DataError(f"{rel}: no {kind} {dotted!r} (keys: {keys}); nothing was changed") from None

        setter = None
        if change is not None:
            sha = resolve_rev(repo, change, option="--change")
            if not _is_ancestor(repo, sha, head):
                raise DataError(f"commit {sha[:10]} is not in the history of {base_branch}; nothing to undo there")
            info = repo.commit_info(sha)
            before_spec = f"{info.parents[0]}:{rel}" if info.parents else None
            before_raw, after_raw = repo.read_blobs([before_spec or f"{sha}:{rel}", f"{sha}:{rel}"])
            if before_spec is None:
                before_raw = None
            before_val = _value_in(before_raw, path, f"{rel} at {sha[:10]}^", yaml_edit)
            after_val = _value_in(after_raw, path, f"{rel} at {sha[:10]}", yaml_edit)
            if before_val is _MISSING:
                raise DataError(f"{dotted} did not exist in {rel} before {sha[:10]}, so there is no earlier value to go back to",
                                hint="set a value explicitly with --to VALUE")
            if yaml_edit._same(before_val, after_val):
                raise DataError(f"commit {sha[:10]} \"{info.subject}\" did not change {dotted} in {rel} "
                                f"(it was {yaml_edit.scalar_text(before_val)} before and after); nothing was changed")
            if not yaml_edit._same(after_val, current):
                setter = _last_change(repo, rel, path, head, yaml_edit)
                later = f" by {setter.sha[:10]} \"{setter.subject}\"" if setter else ""
                raise DataError(
                    f"{dotted} was changed again after {sha[:10]}{later} "
                    f"({yaml_edit.scalar_text(after_val)} -> {yaml_edit.scalar_text(current)}); "
                    "undoing the older change would also undo that one. Nothing was changed",
                    hint=f"to set it anyway: --to {yaml_edit.scalar_text(before_val)}")
            new_value = before_val
            plan.undoes = [info]
        else:
            new_value = yaml_edit.coerce_cli_value(to_value, current)
            setter = _last_change(repo, rel, path, head, yaml_edit)
            if setter is not None:
                plan.undoes = [setter]
                plan.notes.append(f"{setter.sha[:10]} is the commit that set {dotted} to {yaml_edit.scalar_text(current)}")
        if isinstance(new_value, (dict, list)) or new_value is None:
            raise DataError(f"{rel}: {dotted} would become {new_value!r}, not a single value; edit it by hand")
        plan.to = yaml_edit.scalar_text(new_value)
        plan.paths = [rel]
        plan.pin = {"file": rel, "key": key, "field": dotted, "kind": kind,
                    "from": current, "to": new_value}
        plan.quarantine = Quarantine(repo)
        if yaml_edit._same(current, new_value):
            plan.nothing_to_do = f"{dotted} in {rel} is already {plan.to}; nothing to do"
            plan.message = _message(plan, message)
            return plan
        edit = yaml_edit.replace_scalar(text, path, new_value, where=where)
        plan.pin["line"] = edit.line
        env = plan.quarantine.env()
        blob = repo.run("hash-object", "-w", "--no-filters", "--stdin", input=edit.new_text.encode("utf-8"),
                        env=env, text=False).stdout.decode().strip()
        repo.run("read-tree", head, env=env)
        repo.run("update-index", "--cacheinfo", f"{mode},{blob},{rel}", env=env)
        plan.tree = repo.out("write-tree", env=env)
        _describe_tree(plan)
        plan.message = _message(plan, message)
    except BaseException:
        plan.close()
        raise
    return plan


_MISSING = object()


def _value_in(raw: bytes | None, path, where: str, yaml_edit):
    if raw is None:
        return _MISSING
    try:
        data = yaml_edit.load(raw.decode("utf-8"), where)
        return yaml_edit.get_path(data, path)
    except (KeyError, UnicodeDecodeError, DataError):
        return _MISSING


def _last_change(repo: GitRepo, rel: str, path, head: str, yaml_edit, limit: int = 200) -> CommitInfo | None:
    """The most recent commit that changed the value at `path` in file `rel` (walks the file's history)."""
    shas = repo.out("log", f"-{limit}", "--format=%H %P", head, "--", f":(top,literal){rel}").splitlines()
    for line in shas:
        sha, *parents = line.split()
        specs = [f"{sha}:{rel}"] + ([f"{parents[0]}:{rel}"] if parents else [])
        blobs = repo.read_blobs(specs)
        now = _value_in(blobs[0], path, rel, yaml_edit)
        before = _value_in(blobs[1], path, rel, yaml_edit) if parents else _MISSING
        if now is _MISSING:
            continue
        if before is _MISSING or not yaml_edit._same(now, before):
            return repo.commit_info(sha)
    return None


# --- the commit message --------------------------------------------------------------------

def _subject(plan: RollbackPlan) -> str:
    if plan.pin is not None:
        what = f"index {plan.target} version" if plan.target_kind == "index" else f"pin {plan.target}"
        return f"Roll back {what} to {plan.to}"
    if plan.to is not None:
        return f"Roll back {plan.target} to {plan.to[:10]}"
    subject = plan.undoes[0].subject if plan.undoes else plan.target
    m = re.fullmatch(r'Roll back "(.*)"', subject)
    if m:
        return f'Reapply "{m.group(1)}"'
    m = re.fullmatch(r'Reapply "(.*)"', subject)
    if m:
        return f'Roll back "{m.group(1)}"'
    return f'Roll back "{subject}"'


def _message(plan: RollbackPlan, extra: str | None) -> str:
    lines = [_subject(plan), ""]
    if plan.pin is not None:
        lines.append(f"Sets {plan.pin['field']} in {plan.pin['file']} from {_scalar(plan.pin['from'])} "
                     f"back to {_scalar(plan.pin['to'])}.")
        if plan.undoes:
            c = plan.undoes[0]
            lines.append(f"Undoes the change made by {c.sha} (\"{c.subject}\", {c.author}).")
    elif plan.to is not None:
        lines.append(f"Restores {plan.target} to its content at {plan.to}:")
        lines += [f"  {p}" for p in plan.paths]
    elif plan.undoes:
        c = plan.undoes[0]
        lines.append(f"Undoes the prompt changes made by {c.sha}")
        lines.append(f"(\"{c.subject}\", {c.author}, {_fmt_time(c.at_ms)}) to:")
        lines += [f"  {p}" for p in plan.paths]
        if plan.left_alone:
            lines.append("Left as they are (outside the rollback's scope): " + ", ".join(plan.left_alone[:MAX_SHOWN])
                         + (" ..." if len(plan.left_alone) > MAX_SHOWN else ""))
    if extra and extra.strip():
        lines += ["", extra.strip()]
    trailers = [f"{TRAILER_OF}: {c.sha}" for c in plan.undoes]
    if plan.to is not None and plan.pin is None:
        trailers.append(f"Rollback-To: {plan.to}")
    if plan.incident:
        trailers.append(f"{TRAILER_INCIDENT}: {plan.incident.strip()}")
    trailers.append(f"{TRAILER_BY}: {ROLLED_BACK_BY}")
    return "\n".join(lines + [""] + trailers) + "\n"


def _scalar(v) -> str:
    from oncall_ai.actions.yaml_edit import scalar_text

    return scalar_text(v)


def _fmt_time(ms: int) -> str:
    from oncall_ai.timeutil import format_time

    return format_time(ms) or "?"


# --- applying, pushing, recording ----------------------------------------------------------

def apply_plan(plan: RollbackPlan, *, now_ms: int, _fail_after_worktree=None) -> RollbackResult:
    """Make the rollback commit and move the branch to it (or create --branch). Re-checks that the
    repository did not change since the plan (someone committing during the confirmation)."""
    if plan.nothing_to_do or plan.tree is None or plan.quarantine is None:
        return RollbackResult(applied=False)
    repo, q = plan.repo, plan.quarantine
    branch, head = preflight(repo)
    if head != plan.head or branch != plan.base_branch:
        raise DataError(f"{repo.top}: {plan.base_branch} moved while the plan was shown (now at {head[:10]}); nothing was changed",
                        hint="run the command again to see a fresh plan")
    if plan.creates_branch and repo.ref_exists(f"refs/heads/{plan.branch}"):
        raise DataError(f"{repo.top}: branch {plan.branch!r} was created meanwhile; nothing was changed")
    _check_untracked(plan)
    repo.ident()
    # commit-tree, not `git commit`: no hooks run and nothing is staged in the real index (see the
    # module docstring of gitrepo). Server-side checks still apply when the branch is pushed.
    commit = repo.out("commit-tree", plan.tree, "-p", plan.head, "-F", "-", input=plan.message,
                      env=q.env(index=False))
    try:
        advance(repo, q, ref=f"refs/heads/{plan.branch}", old=plan.head if not plan.creates_branch else None,
                new=commit, update_worktree=not plan.creates_branch,
                reflog=f"oncall-ai {plan.action} {plan.target}", fail_after_worktree=_fail_after_worktree)
    except GitFailed as e:
        raise DataError(f"{repo.top}: the rollback could not be applied ({e.stderr.strip() or e}); "
                        "the repository was restored to where it was", hint="run `git status` there to see why") from None
    return RollbackResult(applied=True, commit=commit)


def push_plan(plan: RollbackPlan, result: RollbackResult) -> dict | None:
    """Push the branch to the remote: an explicit `branch:branch` refspec, never `--force` or `+`,
    so a remote that moved on rejects the push instead of losing commits."""
    if not plan.push_remote or not result.applied:
        return None
    ref = f"refs/heads/{plan.branch}"
    refspec = f"{ref}:{ref}"
    p = plan.repo.run("push", "--porcelain", plan.push_remote, refspec, check=False, timeout=600)
    info = {"remote": plan.push_remote, "branch": plan.branch, "ok": p.returncode == 0}
    if p.returncode != 0:
        reasons = [line.split("\t")[-1] for line in p.stdout.splitlines() if line.startswith("!")]
        err = "; ".join(reasons) or (p.stderr.strip().splitlines() or ["git push failed"])[-1]
        info["error"] = err
    result.pushed = info
    return info


def record_action(store, plan: RollbackPlan, result: RollbackResult, *, now_ms: int) -> str:
    """Write the action to the store (doc kind `action`); returns the doc id."""
    from oncall_ai.store.base import Doc
    from oncall_ai.timeutil import format_time

    by = None
    try:
        by = plan.repo.ident()
    except ConfigError:
        pass
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = None
    body = {
        "kind": plan.action,
        "target": plan.target,
        "target_kind": plan.target_kind,
        "repo": str(plan.repo.top),
        "branch": plan.branch,
        "created_branch": plan.creates_branch,
        "before": plan.head,
        "after": result.commit,
        "undoes": [c.sha for c in plan.undoes],
        "to": plan.to,
        "paths": plan.paths,
        "pin": _jsonable_pin(plan.pin),
        "pushed": result.pushed,
        "incident": plan.incident,
        "by": by,
        "user": user,
        "at": format_time(now_ms),
        "subject": plan.message.splitlines()[0] if plan.message else "",
    }
    doc_id = f"{plan.action}:{result.commit}"
    store.put_docs("action", [Doc("action", doc_id, now_ms, body)])
    return doc_id


def _jsonable_pin(pin: dict | None) -> dict | None:
    if pin is None:
        return None
    return {k: (v if isinstance(v, str | int | float | bool) or v is None else str(v)) for k, v in pin.items()}
