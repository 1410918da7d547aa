"""Pins, indexes and judges files: YAML maps kept in a git repo (CONTRACT.md section 2).

    pins:    {repo: platform, file: models.yaml}    # pin key -> model id
    indexes: {repo: platform, file: indexes.yaml}   # index -> {version: ..., other attributes}
    judges:  {repo: platform, file: judges.yaml}    # metric -> {model: ..., prompt: path in prompt_repo}

For every commit in [start, end) that touches the file (first-parent line of HEAD), the file is
compared key by key with its previous version (the first one with the version before the window
as the base): one Change per top-level key that moved, e.g.
"support: vendor-a/sonnet-latest -> vendor-a/sonnet-2026-11-15" or
"kb-docs.version: 2026-11-20 -> 2026-11-26; kb-docs.embedding_model: embed-3-large -> embed-4-small".
A commit that changes only comments or formatting is reported too, as one Change naming the file.
A version that does not parse is reported (a problem and a Change), never fatal; the next version
that parses is compared with the last one that did.

Cost: one `git log -- FILE` process for the window, file contents through gitpython's persistent
`git cat-file --batch` process, and one `git show` for the diffs.
"""

from __future__ import annotations

import datetime as _dt
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from oncall_ai.model import Change
from oncall_ai.sources.gitutil import CommitInfo, cap_diff, log_commits, patch_for_paths, show_patches
from oncall_ai.timeutil import format_time

# config key -> Change.kind
FILE_KINDS = {"pins": "model", "indexes": "index", "judges": "judge"}
# The attribute that is "the version" of an entry when the entry is a mapping.
_VALUE_KEYS = {"pins": ("model", "id", "model_id"), "indexes": ("version",), "judges": ("model", "id")}
NONE = "(none)"


@dataclass
class ParsedVersion:
    sha: str | None
    data: dict | None  # None: the file does not exist at this version
    error: str | None = None


@dataclass
class PlatformResult:
    changes: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Every version that parsed (base, window, head), for callers that need the file's content
    # (e.g. judges.yaml `prompt:` paths to tell judge rubrics from prompts).
    versions: list[dict] = field(default_factory=list)


def parse_yaml_text(text: str, where: str) -> tuple[dict | None, str | None]:
    """(data, None) or (None, error message naming where and the line)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        line = f" line {mark.line + 1}" if mark else ""
        ctx, ctx_mark = getattr(e, "context", None), getattr(e, "context_mark", None)
        if ctx and ctx_mark is not None:
            problem += f" ({ctx} started on line {ctx_mark.line + 1})"
        return None, f"{where}:{line}: invalid YAML: {problem}"
    if data is None:
        return {}, None
    if not isinstance(data, dict):
        return None, (f"{where}: the top level is a {type(data).__name__}, not a mapping of "
                      f"key -> value")
    return data, None


def read_version(repo, rev: str, file: str, where: str) -> ParsedVersion:
    """The file at `rev` (a commit sha or ref), parsed."""
    try:
        _sha, typename, _size, raw = repo.git.get_object_data(f"{rev}:{file}")
    except ValueError:  # not in that commit
        return ParsedVersion(rev, None)
    if typename != b"blob" and typename != "blob":
        return ParsedVersion(rev, None, f"{where}: is a folder, not a YAML file")
    text = raw.decode("utf-8", errors="replace")
    data, error = parse_yaml_text(text, where)
    return ParsedVersion(rev, data, error)


def render(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def flatten(value, prefix: str) -> dict[str, str]:
    """{'kb-docs': {'version': 3, 'embedding': {'model': 'x'}}} -> {'kb-docs.version': '3', ...}"""
    if isinstance(value, dict):
        if not value:
            return {prefix: "{}"}
        out: dict[str, str] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}"))
        return out
    return {prefix: render(value)}


def key_changes(old: dict, new: dict) -> list[tuple[str, list[str]]]:
    """[(top-level key, ["key.path: a -> b", ...])] for every top-level key whose value moved,
    in the order of the new file (removed keys last)."""
    out = []
    keys = list(new) + [k for k in old if k not in new]
    for k in keys:
        if k in old and k in new and old[k] == new[k]:
            continue
        a = flatten(old[k], str(k)) if k in old else {}
        b = flatten(new[k], str(k)) if k in new else {}
        if k not in old:
            a = {p: NONE for p in b}
        if k not in new:
            b = {p: NONE for p in a}
        lines = []
        for p in list(b) + [p for p in a if p not in b]:
            va, vb = a.get(p, NONE), b.get(p, NONE)
            if va != vb:
                lines.append(f"{p}: {va} -> {vb}")
        if lines:
            out.append((str(k), lines))
    return out


def entry_value(which: str, value) -> str | None:
    """The one value that names an entry's version: the model id of a pin, an index's version."""
    if value is None:
        return None
    if isinstance(value, dict):
        for k in _VALUE_KEYS[which]:
            if k in value and not isinstance(value[k], dict | list):
                return render(value[k])
        return None
    if isinstance(value, list):
        return render(value)
    return render(value)


def rollback_command(which: str, key: str, sha: str) -> str | None:
    if which == "pins":
        return f"oncall-ai rollback-pin {shlex.quote(key)} --change {sha} --yes"
    if which == "indexes":
        return f"oncall-ai rollback-pin {shlex.quote(key)} --file indexes --change {sha} --yes"
    return None  # judges: no rollback verb for judge configs (yet)


@dataclass
class RepoWindow:
    """The commits of a window that touch any of a repo's platform files, read once for all of them
    (one `git log`, one `git show`) when pins, indexes and judges share a repo."""

    commits: list[CommitInfo]  # newest first; files limited to the platform files
    patches: dict[str, str] | None  # sha -> patch of the platform files (None: diffs not read)


def scope_paths(files: list[str]) -> list[str] | None:
    """The folders the platform files live in (None: the whole repo, for files at its top): commits
    touching anything there are listed too, so a repo's harmless commits (a README) show up without
    flooding the timeline with a whole infra monorepo."""
    folders = set()
    for f in files:
        parent = f.replace("\\", "/").rsplit("/", 1)[0] if "/" in f else ""
        if not parent:
            return None
        folders.add(parent)
    return sorted(folders)


def read_repo_window(repo, files: list[str], start_ms: int, end_ms: int, *, with_diffs: bool = True,
                     only_sha: str | None = None) -> RepoWindow:
    commits = log_commits(repo, start_ms, end_ms, paths=scope_paths(files), name_status=True)
    if only_sha:
        commits = [c for c in commits if c.sha == only_sha]
    patches = show_patches(repo, [c.sha for c in commits], scope_paths(files)) if with_diffs else None
    return RepoWindow(commits, patches)


def other_changes(repo_path: Path, window: RepoWindow, files: list[str]) -> list[Change]:
    """Commits in the platform files' folders that touch none of them (a README, an unrelated
    config): listed as kind "config" with no footprint, so that every commit shows up."""
    out = []
    platform = set(files)
    for c in reversed(window.commits):
        paths = [p for f in c.files for p in f.all_paths]
        if platform & set(paths):
            continue
        if not paths:  # an empty commit (a pipeline recording a rebuild that changed nothing)
            out.append(Change(
                id=c.sha, kind="config", target=c.subject or "(empty commit)", features=(), at=c.at, by=c.by,
                summary=f"{c.subject} (empty commit: no file changed)", source=f"git:{repo_path}",
                rollback=None, details={"subject": c.subject, "message": c.message, "empty": True,
                                        "authored_at": c.authored_at, "footprint": "none"}))
            continue
        diff = cap_diff(patch_for_paths(window.patches.get(c.sha, ""), set(paths))) or None \
            if window.patches is not None else None
        out.append(Change(
            id=c.sha, kind="config", target=paths[0], features=(), at=c.at, by=c.by,
            summary=f"{c.subject} (no pins, indexes or judges file)", source=f"git:{repo_path}",
            rollback=None, diff=diff, paths=tuple(paths),
            details={"subject": c.subject, "message": c.message, "authored_at": c.authored_at,
                     "footprint": "none", "files": [[f.status, f.path] for f in c.files]}))
    return out


def platform_changes(repo, repo_path: Path, which: str, file: str, start_ms: int, end_ms: int, *,
                     footprint: Callable[[str], tuple[tuple[str, ...], bool]],
                     with_diffs: bool = True, only_sha: str | None = None,
                     read_head: bool = False, window: RepoWindow | None = None,
                     report_from_ms: int | None = None) -> PlatformResult:
    """Key-level changes of one platform file in [start, end).

    which: "pins", "indexes" or "judges". footprint(key) -> (features, mapped): the features that
    use the key, and whether any configured feature does (unmapped keys get `()`: every feature).
    window: the repo's commits already read by read_repo_window (else they are read here).
    report_from_ms: commits before it are read (as changes, e.g. to explain a traffic switch) but
    their parse problems are not reported.
    """
    kind = FILE_KINDS[which]
    result = PlatformResult()
    label = f"{which} file {repo_path}/{file}"
    if window is None:
        window = read_repo_window(repo, [file], start_ms, end_ms, with_diffs=with_diffs, only_sha=only_sha)
    commits = [c for c in window.commits if any(file in f.all_paths for f in c.files)]
    commits.reverse()  # oldest first

    if read_head:
        head = read_version(repo, "HEAD", file, f"{repo_path}/{file} (HEAD)")
        if head.data:
            result.versions.append(head.data)
    if not commits:
        return result

    first = commits[0]
    if first.parents:
        base = read_version(repo, first.parents[0], file, f"{repo_path}/{file}")
        if base.error:
            result.problems.append(
                f"{label}: the version before the window ({first.parents[0][:12]}) does not parse: "
                f"{base.error}; the first change in the window is compared with an empty file")
        last_good: dict = base.data or {}
    else:
        last_good = {}
    if last_good:
        result.versions.append(last_good)

    patches = {sha: patch_for_paths(p, {file}) for sha, p in (window.patches or {}).items()}
    source = f"git:{repo_path}"
    for c in commits:
        where = f"{which} file {repo_path}/{file} at commit {c.sha[:12]}"
        v = read_version(repo, c.sha, file, where)
        diff = (cap_diff(patches.get(c.sha, "")) or None) if window.patches is not None else None
        details = {"subject": c.subject, "message": c.message, "file": file, "which": which,
                   "authored_at": c.authored_at}
        if v.error and (report_from_ms is None or c.at >= report_from_ms):
            result.problems.append(
                f"{v.error} (committed {format_time(c.at)} by {c.by}); that version is skipped and "
                f"the next one is compared with the last version that parsed")
        if v.error:
            result.changes.append(Change(
                id=c.sha, kind=kind, target=file, features=(), at=c.at, by=c.by,
                summary=f"{file} no longer parses: {v.error.split(': ', 1)[-1]}", source=source,
                rollback=None, diff=diff, paths=(file,), details={**details, "parse_error": v.error}))
            continue
        new = v.data if v.data is not None else {}
        if v.data is None:
            details["deleted"] = True
        result.versions.append(new)
        moved = key_changes(last_good, new)
        if not moved:
            what = "deleted (it was empty)" if v.data is None else "comments or formatting only; no key changed"
            result.changes.append(Change(
                id=c.sha, kind=kind, target=file, features=(), at=c.at, by=c.by,
                summary=f"{file}: {what} ({c.subject})" if c.subject else f"{file}: {what}",
                source=source, rollback=None, diff=diff, paths=(file,),
                details={**details, "keys": [], "footprint": "none"}))
        for key, lines in moved:
            feats, mapped = footprint(key)
            summary = "; ".join(lines)
            if not mapped:
                summary += f" [no configured feature uses {'pin' if which == 'pins' else 'index' if which == 'indexes' else 'metric'} {key}]"
            old_entry = last_good.get(key) if isinstance(last_good, dict) else None
            new_entry = new.get(key)
            result.changes.append(Change(
                id=c.sha, kind=kind, target=key, features=tuple(feats), at=c.at, by=c.by,
                summary=summary, source=source, rollback=rollback_command(which, key, c.sha),
                from_value=entry_value(which, old_entry) if key in last_good else None,
                to_value=entry_value(which, new_entry) if key in new else None,
                diff=diff, paths=(file,),
                details={**details, "keys": lines, "mapped": mapped,
                         **({} if mapped or feats else {"footprint": "none"})}))
        last_good = new
    return result
