"""Finding one change by id for `oncall-ai changes show ID`: a commit sha or a unique prefix of
one (in the prompt repo or the pins/indexes/judges repos), a recorded change id (or a unique
prefix), or a traffic id (`traffic:<features>:<field>:<new value>:<switch ms>`)."""

from __future__ import annotations

from pathlib import Path

from oncall_ai.errors import DataError, OncallError, UsageError
from oncall_ai.sources.changes import HOUR_MS, ChangeSet, collect_changes


def _repos(cfg) -> list[tuple[str, Path]]:
    out: list[tuple[str, Path]] = []
    seen = set()
    for what, path in (("prompt_repo", cfg.prompt_repo),
                       *((f"{w}.repo", getattr(cfg, w).repo if getattr(cfg, w) else None)
                         for w in ("pins", "indexes", "judges"))):
        if path is None:
            continue
        key = str(Path(path).resolve())
        if key not in seen:
            seen.add(key)
            out.append((what, Path(path)))
    return out


def find_change(cfg, store, change_id: str) -> ChangeSet:
    """The changes with this id (a commit that moved several pins has several). Raises UsageError
    (exit 2) when a prefix is ambiguous, DataError (exit 1) when nothing matches."""
    from oncall_ai.sources.gitutil import git_text, open_repo, resolve_commits
    from oncall_ai.sources.recorded import DOC_KIND, doc_to_change

    if not change_id:
        raise UsageError("give a change id (a commit sha or prefix, a recorded id, or a traffic id)")
    candidates: dict[str, tuple[str, object]] = {}  # id -> (where, payload)
    problems = ChangeSet()

    if change_id.startswith("traffic:") and store is not None:
        cs = _find_traffic(cfg, store, change_id)
        if cs is not None:
            return cs

    if store is not None:
        try:
            docs = store.get_docs(DOC_KIND)
        except OncallError as e:
            problems.problem(f"store: recorded changes not searched: {e.message}", e.exit_code)
            docs = []
        exact = [d for d in docs if d.id == change_id]
        for d in exact or [d for d in docs if d.id.startswith(change_id)]:
            candidates[d.id] = ("recorded", d)

    repos = {}
    for what, path in _repos(cfg):
        try:
            repo = open_repo(path, what)
        except OncallError as e:
            problems.problem(e.message, e.exit_code)
            continue
        repos[what] = repo
        for sha in resolve_commits(repo, change_id):
            candidates.setdefault(sha, (what, repo))

    if not candidates:
        where = ", ".join(str(p) for _, p in _repos(cfg)) or "no repo configured"
        if problems.problems:
            problems.problem(f"no change with id {change_id!r} found (git repos: {where})", 1)
            return problems
        raise DataError(f"no change with id {change_id!r}: not a commit in {where}, "
                        f"nor a recorded change",
                        hint="`oncall-ai changes list --since 7d` shows recent ids")
    if len(candidates) > 1:
        listing = "\n".join(f"  {cid}  ({where})" for cid, (where, _) in sorted(candidates.items()))
        raise UsageError(f"id {change_id!r} is ambiguous; it matches:\n{listing}",
                         hint="give more characters of the id")

    cid, (where, payload) = next(iter(candidates.items()))
    if where == "recorded":
        cs = ChangeSet(changes=[doc_to_change(payload)])
    else:
        repo = payload
        t = int(git_text(repo, "log", "-1", "--format=%ct", cid).strip() or 0) * 1000
        cs = collect_changes(cfg, store, t, t + 1000, only_sha=cid, traffic=False)
        cs.changes = [c for c in cs.changes if c.id == cid]
        if not cs.changes:
            on_line = git_text(repo, "rev-list", "--first-parent", f"--since={t // 1000 - 1}",
                               "HEAD").split()
            reason = ("it is not on HEAD's first-parent history (a commit of a merged branch: "
                      "look at the merge commit)" if cid not in on_line else
                      "it touches no prompt, rubric, pins, indexes or judges file")
            cs.problem(f"commit {cid} ({where} {repo.working_tree_dir}) is not a change oncall-ai tracks: {reason}", 1)
    for p, code in zip(problems.problems, problems.problem_codes, strict=False):
        cs.problem(p, code)
    return cs


def _find_traffic(cfg, store, change_id: str) -> ChangeSet | None:
    parts = change_id.rsplit(":", 1)
    try:
        at = int(parts[1])
    except (IndexError, ValueError):
        return None
    # The same hours around the switch as `changes list` saw (the refinement reads them all).
    cs = collect_changes(cfg, store, at - HOUR_MS, at + 3 * HOUR_MS, with_diffs=True)
    hits = cs.by_id(change_id)
    if not hits:
        prefix = parts[0] + ":"
        near = [c for c in cs.changes if c.id.startswith(prefix)]
        hits = sorted(near, key=lambda c: abs(c.at - at))[:1]
    if not hits:
        return None
    cs.changes = hits
    return cs
