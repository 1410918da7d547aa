"""The prompt repo: commits in a window that touch each feature's prompt globs.

Config (CONTRACT.md section 2): `prompt_repo` (a git repo), `features.<f>.prompts` (globs relative
to the repo, `**` spans folders). Judge rubric files (the `prompt:` paths in judges.yaml) are judge
changes, not prompt changes.

Every commit on HEAD's first-parent line whose committer time is in [start, end) is reported, also
when it touches no feature's globs: harmless commits are candidates too, not noise to hide (those
have `details["owned"]` False and no footprint, `details["footprint"] == "none"`: they affect no
configured feature). A merge is one change, diffed against the branch it landed on.

Cost: one `git log --since/--until --name-status` process for the window plus one `git show` for
the diffs of the commits found, whatever the size of the history.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from oncall_ai.model import Change
from oncall_ai.sources.gitutil import (
    CommitInfo,
    cap_diff,
    log_commits,
    patch_for_paths,
    show_patches,
)

_GLOB_CHARS = set("*?[")


@lru_cache(maxsize=512)
def glob_regex(pattern: str) -> re.Pattern:
    """A repo-relative glob as a regex over posix paths. `*` and `?` stay within one folder,
    `**` spans folders (`a/**/b` also matches `a/b`), `[...]` is a class (`[!x]` negates). A
    pattern without wildcards names a file or a folder (everything under it)."""
    pat = normalize_path(pattern)
    if not any(c in _GLOB_CHARS for c in pat):
        base = pat.rstrip("/")
        return re.compile(re.escape(base) + r"(?:/.*)?") if base else re.compile(r".*")
    if pat.endswith("/"):
        pat += "**"
    out = []
    i = 0
    n = len(pat)
    while i < n:
        c = pat[i]
        if c == "*":
            if pat.startswith("**", i):
                i += 2
                if i < n and pat[i] == "/":
                    out.append(r"(?:.*/)?")
                    i += 1
                else:
                    out.append(r".*")
                continue
            out.append(r"[^/]*")
        elif c == "?":
            out.append(r"[^/]")
        elif c == "[":
            j = pat.find("]", i + 2 if pat.startswith(("[!", "[^"), i) else i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pat[i + 1:j]
                neg = body[:1] in ("!", "^")
                if neg:
                    body = body[1:]
                body = body.replace("\\", "\\\\")
                out.append(f"[{'^' if neg else ''}{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def normalize_path(path: str) -> str:
    p = str(path).strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p.lstrip("/") if not p.startswith("**") else p


def glob_match(pattern: str, path: str) -> bool:
    return glob_regex(pattern).fullmatch(path) is not None


class PromptOwners:
    """Which features own a path in the prompt repo, by their `prompts` globs."""

    def __init__(self, features: dict):
        self._globs = [(name, tuple(f.prompts)) for name, f in features.items()]

    def features_for(self, path: str) -> set[str]:
        return {name for name, globs in self._globs if any(glob_match(g, path) for g in globs)}


@dataclass
class PromptSourceResult:
    changes: list[Change] = field(default_factory=list)
    commits: list[CommitInfo] = field(default_factory=list)


def prompt_changes(repo, repo_path: Path, features: dict, start_ms: int, end_ms: int, *,
                   rubrics: dict[str, set[str]] | None = None,
                   judge_features: Callable[[str], tuple[str, ...]] | None = None,
                   exclude_paths: Iterable[str] = (),
                   with_diffs: bool = True,
                   only_sha: str | None = None) -> PromptSourceResult:
    """Prompt (and judge rubric) changes from the commits in [start, end), oldest first.

    rubrics: rubric path (repo-relative) -> the metrics judged with it (from judges.yaml).
    judge_features: metric -> the features it scores (() when unknown: every feature).
    exclude_paths: files read by another source when prompt repo and platform repo are the same
    repo (models.yaml, ...), so that they are not reported twice.
    """
    rubrics = {normalize_path(p): set(m) for p, m in (rubrics or {}).items()}
    excluded = {normalize_path(p) for p in exclude_paths}
    owners = PromptOwners(features)
    commits = log_commits(repo, start_ms, end_ms)
    if only_sha:
        commits = [c for c in commits if c.sha == only_sha]
    commits.reverse()  # oldest first

    planned: list[tuple[CommitInfo, str, list[str]]] = []  # (commit, kind, paths)
    wanted_paths: set[str] = set()
    for c in commits:
        paths: list[str] = []
        for f in c.files:
            for p in f.all_paths:
                if p not in excluded and p not in paths:
                    paths.append(p)
        if not paths:
            if not c.files:  # an empty commit: listed (it is an event), affecting nothing
                planned.append((c, "empty", []))
            continue  # else it only touched files another source reports
        judge_paths = [p for p in paths if p in rubrics]
        prompt_paths = [p for p in paths if p not in rubrics]
        if prompt_paths:
            planned.append((c, "prompt", prompt_paths))
        if judge_paths:
            planned.append((c, "judge", judge_paths))
        wanted_paths.update(paths)

    patches: dict[str, str] = {}
    if with_diffs and planned:
        shas = list(dict.fromkeys(c.sha for c, _, _ in planned))
        # A pathspec per path keeps diffs small; a huge commit (mass rename) goes without.
        patches = show_patches(repo, shas, sorted(wanted_paths) if len(wanted_paths) <= 1000 else None)

    source = f"git:{repo_path}"
    result = PromptSourceResult(commits=commits)
    for c, kind, paths in planned:
        if kind == "empty":
            result.changes.append(Change(
                id=c.sha, kind="prompt", target=c.subject or "(empty commit)", features=(), at=c.at,
                by=c.by, summary=f"{c.subject} (empty commit: no file changed)", source=source,
                rollback=None, details={"subject": c.subject, "message": c.message, "empty": True,
                                        "authored_at": c.authored_at, "footprint": "none"}))
            continue
        diff = None
        if with_diffs:
            diff = cap_diff(patch_for_paths(patches.get(c.sha, ""), set(paths))) or None
        statuses = {p: f.status for f in c.files for p in f.all_paths}
        files = [[statuses.get(p, "M"), p] for p in paths]
        rollback = f"oncall-ai rollback-prompt {c.sha} --yes"
        details = {"subject": c.subject, "message": c.message, "files": files,
                   "authored_at": c.authored_at, "parents": list(c.parents),
                   "merge": len(c.parents) > 1}
        if kind == "prompt":
            feats: set[str] = set()
            owned_paths = []
            for p in paths:
                fs = owners.features_for(p)
                feats |= fs
                if fs:
                    owned_paths.append(p)
            details["owned"] = bool(feats)
            if not feats:
                details["unowned_paths"] = list(paths)
                if features:  # with features configured, a file none of them owns affects none
                    details["footprint"] = "none"
            target = (owned_paths or paths)[0]
            summary = c.subject
            if len(paths) > 1:
                summary += f" ({len(paths)} files)"
            if not feats and features:
                summary += " [touches no feature's prompt globs]"
            result.changes.append(Change(
                id=c.sha, kind="prompt", target=target, features=tuple(sorted(feats)), at=c.at,
                by=c.by, summary=summary, source=source, rollback=rollback, diff=diff,
                paths=tuple(paths), details=details))
        else:
            metrics = sorted({m for p in paths for m in rubrics.get(p, ())})
            feats = set()
            all_features = False
            for m in metrics:
                fs = judge_features(m) if judge_features else ()
                if not fs:
                    all_features = True
                feats |= set(fs)
            details["metrics"] = metrics
            details["rubric_paths"] = list(paths)
            summary = f"judge rubric for {', '.join(metrics)}: {c.subject}"
            result.changes.append(Change(
                id=c.sha, kind="judge", target=metrics[0] if metrics else paths[0],
                features=() if all_features else tuple(sorted(feats)), at=c.at, by=c.by,
                summary=summary, source=source, rollback=rollback, diff=diff, paths=tuple(paths),
                details=details))
    return result
