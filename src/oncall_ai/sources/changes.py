"""The change timeline: every change in a window from every source, with its footprint.

    collect_changes(cfg, store, start_ms, end_ms, feature=None, kinds=None) -> ChangeSet

Sources (all read-only): the prompt repo (prompt and judge-rubric commits), the pins, indexes and
judges files, recorded changes (store docs of kind `change`) and versions seen changing in traffic
(store series). Triage, digest and rollback use this API; `oncall-ai changes list` prints it.

Footprints: prompt globs -> features; pin key -> features whose `model` is that key (a feature
without `model` uses the pin named like itself); index -> features that list it in `indexes`;
judge metric -> features with events of that metric (every feature when unknown); recorded
`features`, or every feature. An empty footprint (`features == ()`) means every feature.

A source that is missing or broken never stops the others: it becomes a problem string, and
`ChangeSet.exit_code` says how bad (2: configuration, 1: data).

Traffic switches are linked to the change that explains them (a pin change, a prompt commit, an
index version, a judge change: `details["seen_in_traffic"]`) instead of being listed twice. A served
model_id that moves with no pin change is a provider-side change: kind "model",
provider_side=True, target the new model_id.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from oncall_ai.errors import OncallError, UsageError
from oncall_ai.model import CHANGE_KINDS, Change
from oncall_ai.timeutil import format_time

HOUR_MS = 3_600_000
# A pin (or index) change can take a while to reach traffic (deploys): a traffic switch up to this
# long after a matching pin change is explained by it; pins are read that far before the window.
LINK_LAG_MS = 6 * HOUR_MS
# Without a name match, only a change this close in time explains a switch.
LINK_CLOSE_MS = HOUR_MS
LINK_SLACK_MS = 30 * 60_000
KIND_ORDER = {k: i for i, k in enumerate(CHANGE_KINDS)}


@dataclass
class ChangeSet:
    changes: list[Change] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # informational (a source not configured, ...)
    exit_code: int = 0  # 0 clean, 1 a data problem, 2 a configuration problem
    start: int | None = None
    end: int | None = None
    problem_codes: list[int] = field(default_factory=list)  # exit code of each problem

    def problem(self, message: str, code: int = 1) -> None:
        if message in self.problems:
            return
        self.problems.append(message)
        self.problem_codes.append(code)
        self.exit_code = max(self.exit_code, code)

    def by_id(self, change_id: str) -> list[Change]:
        return [c for c in self.changes if c.id == change_id]


def pin_key(feature_cfg) -> str:
    """The pin key a feature is served by: `model`, else the feature's own name."""
    return feature_cfg.model or feature_cfg.name


class _Footprints:
    def __init__(self, cfg, store, cs: ChangeSet):
        self.cfg = cfg
        self.store = store
        self.cs = cs
        self._metric_features: dict[str, set[str]] | None = None

    def metric_features(self) -> dict[str, set[str]]:
        if self._metric_features is None:
            self._metric_features = defaultdict(set)
            if self.store is not None:
                try:
                    for s in self.store.series():
                        self._metric_features[s.metric].add(s.feature)
                except OncallError as e:
                    self.cs.problem(f"store: {e.message}", e.exit_code)
                except Exception as e:  # judge footprints fall back to every feature
                    self.cs.problem(f"store: series not read: {type(e).__name__}: {e}", 2)
        return self._metric_features

    def judge(self, metric: str) -> tuple[str, ...]:
        return tuple(sorted(self.metric_features().get(metric, ())))

    def for_file(self, which: str, key: str) -> tuple[tuple[str, ...], bool]:
        feats = self.cfg.features
        if not feats and which != "judges":  # no features configured: the footprint is unknown
            return (), True
        if which == "pins":
            found = sorted(n for n, f in feats.items() if pin_key(f) == key)
            return tuple(found), bool(found)
        if which == "indexes":
            found = sorted(n for n, f in feats.items() if key in f.indexes)
            return tuple(found), bool(found)
        found = self.judge(key)
        return found, bool(found) or key in self.cfg.metrics


def _open(repos: dict, path: Path, what: str, cs: ChangeSet):
    from oncall_ai.sources.gitutil import open_repo

    key = str(Path(path).resolve()) if path else what
    if key in repos:
        return repos[key]
    try:
        repo = open_repo(path, what)
    except OncallError as e:
        cs.problem(str(e.message) + (f" ({e.hint})" if e.hint else ""), e.exit_code)
        repo = None
    except Exception as e:  # a git failure we did not foresee: report it, keep the other sources
        cs.problem(f"{what}: cannot read git repo {path}: {e}", 2)
        repo = None
    repos[key] = repo
    return repo


def _same_repo(a: Path | None, b: Path | None) -> bool:
    if a is None or b is None:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def collect_changes(cfg, store, start_ms: int, end_ms: int, *, feature: str | None = None,
                    kinds=None, with_diffs: bool = True, only_sha: str | None = None,
                    traffic: bool = True) -> ChangeSet:
    """Every change in [start, end) from every configured source, oldest first.

    store may be None (no store yet): recorded changes and traffic are then not read.
    feature: keep changes whose footprint includes it (or is every feature).
    kinds: keep only these kinds (an iterable of CHANGE_KINDS).
    only_sha: only the changes of this commit (used by `changes show`).
    """
    if cfg is None:  # no configuration: nothing to read (triage can run on a bare store)
        cs = ChangeSet(start=start_ms, end=end_ms)
        cs.notes.append("no configuration: no prompt repo, pins, indexes or judges to read")
        return cs
    if feature is not None and cfg.features and feature not in cfg.features:
        raise UsageError(f"unknown feature {feature!r}; configured: {', '.join(sorted(cfg.features))}")
    kinds = set(kinds) if kinds else None
    if kinds:
        bad = kinds - set(CHANGE_KINDS)
        if bad:
            raise UsageError(f"unknown kind {', '.join(sorted(bad))}; use one of {', '.join(CHANGE_KINDS)}")

    cs = ChangeSet(start=start_ms, end=end_ms)
    fp = _Footprints(cfg, store, cs)
    repos: dict = {}
    found: list[Change] = []
    link_only: list[Change] = []  # changes before the window, used only to explain traffic

    # 1. pins, indexes, judges files (judges first: its `prompt:` paths are judge rubrics).
    rubrics: dict[str, set[str]] = defaultdict(set)
    platform_paths: dict[str, list[str]] = defaultdict(list)  # resolved repo -> files
    current: dict[str, dict] = {}
    by_repo: dict[str, list[str]] = defaultdict(list)  # one git log/show per repo for all its files
    for which in ("judges", "pins", "indexes"):
        rf = getattr(cfg, which)
        if rf is not None:
            by_repo[str(Path(rf.repo).resolve())].append(which)
    for whiches in by_repo.values():
        rf0 = getattr(cfg, whiches[0])
        repo = _open(repos, rf0.repo, f"{whiches[0]}.repo", cs)
        if repo is None:
            for which in whiches[1:]:  # the same repo under another key: name that key too
                rf = getattr(cfg, which)
                cs.problem(f"{which}.repo: {rf.repo} cannot be read (see {whiches[0]}.repo)", 2)
            continue
        window = _platform_window(cs, cfg, repo, whiches, start_ms, end_ms, with_diffs, only_sha)
        if window is None:
            continue
        for which in whiches:
            rf = getattr(cfg, which)
            platform_paths[str(Path(rf.repo).resolve())].append(rf.file)
            _platform(cs, repo, rf, which, start_ms, end_ms, fp, with_diffs, only_sha, found, link_only,
                      rubrics, current, window)
        if not _same_repo(rf0.repo, cfg.prompt_repo):  # the prompt repo lists its own commits
            from oncall_ai.sources.platform_files import other_changes

            for c in other_changes(rf0.repo, window, [getattr(cfg, w).file for w in whiches]):
                (found if c.at >= start_ms else link_only).append(c)

    # 2. the prompt repo
    if cfg.prompt_repo is not None:
        repo = _open(repos, cfg.prompt_repo, "prompt_repo", cs)
        if repo is not None:
            _prompts(cs, cfg, repo, start_ms, end_ms, fp, with_diffs, only_sha, found, rubrics,
                     platform_paths.get(str(Path(cfg.prompt_repo).resolve()), []))
    elif any(f.prompts for f in cfg.features.values()):
        cs.problem("prompt_repo: not configured, but features list prompt globs; prompt changes are "
                   "not read", 2)

    # 3. recorded changes and 4. traffic
    if store is not None and not only_sha:
        from oncall_ai.sources.recorded import recorded_changes

        try:
            recorded = recorded_changes(store, start_ms - LINK_LAG_MS, end_ms)
        except OncallError as e:
            cs.problem(f"store {getattr(store, 'url', '')}: recorded changes not read: {e.message}", e.exit_code)
            recorded = []
        except Exception as e:  # a store failure we did not foresee: keep the git sources
            cs.problem(f"store {getattr(store, 'url', '')}: recorded changes not read: {type(e).__name__}: {e}", 2)
            recorded = []
        found += [c for c in recorded if c.at >= start_ms]
        link_only += [c for c in recorded if c.at < start_ms]
        if traffic:
            found = _traffic(cs, cfg, store, start_ms, end_ms, found, link_only, current, repos,
                             features={feature} if feature is not None else None)

    if feature is not None:
        found = [c for c in found if c.affects(feature)]
    if kinds:
        found = [c for c in found if c.kind in kinds]
    found.sort(key=lambda c: (c.at, KIND_ORDER.get(c.kind, 99), c.id, c.target))
    cs.changes = found
    return cs


def _platform_window(cs, cfg, repo, whiches, start_ms, end_ms, with_diffs, only_sha):
    from oncall_ai.sources.gitutil import shallow_problem
    from oncall_ai.sources.platform_files import read_repo_window

    what = f"{whiches[0]}.repo"
    rf0 = getattr(cfg, whiches[0])
    try:
        shallow = shallow_problem(repo, start_ms, what)
        if shallow:
            cs.problem(shallow, 1)
        lag = 0 if only_sha else LINK_LAG_MS
        return read_repo_window(repo, [getattr(cfg, w).file for w in whiches], start_ms - lag, end_ms,
                                with_diffs=with_diffs, only_sha=only_sha)
    except OncallError as e:
        cs.problem(e.message, e.exit_code)
    except Exception as e:  # git failed in a way we did not foresee: keep the other sources
        cs.problem(f"{what}: cannot read git repo {rf0.repo}: {_git_error(e)}", 2)
    return None


def _git_error(e: Exception) -> str:
    stderr = getattr(e, "stderr", None)
    if stderr:
        return " ".join(str(stderr).split())[:300]
    return str(e)


def _platform(cs, repo, rf, which, start_ms, end_ms, fp, with_diffs, only_sha, found, link_only,
              rubrics, current, window):
    from oncall_ai.sources.platform_files import platform_changes, read_version

    try:
        lag = 0 if only_sha else LINK_LAG_MS
        res = platform_changes(repo, rf.repo, which, rf.file, start_ms - lag, end_ms,
                               footprint=lambda key: fp.for_file(which, key),
                               with_diffs=with_diffs, only_sha=only_sha, window=window,
                               report_from_ms=start_ms)
        head = read_version(repo, "HEAD", rf.file, f"{which} file {rf.repo}/{rf.file} (HEAD)")
    except OncallError as e:
        cs.problem(e.message, e.exit_code)
        return
    except Exception as e:  # git failed in a way we did not foresee: keep the other sources
        cs.problem(f"{which} file {rf.repo}/{rf.file}: cannot read: {_git_error(e)}", 1)
        return
    for p in res.problems:
        cs.problem(p, 1)
    if head.data is None and not head.error and not res.changes:
        cs.problem(f"{which}.file: {rf.file} is not in {rf.repo} (at HEAD)", 2)
    elif head.error and not any(head.error.split(" (HEAD)")[0] in p for p in res.problems):
        cs.problem(f"{head.error} (the current version, outside the window)", 1)
    versions = list(res.versions) + ([head.data] if head.data else [])
    current[which] = head.data or (res.versions[-1] if res.versions else {})
    if which == "judges":
        for data in versions:
            for metric, entry in (data or {}).items():
                prompts = entry.get("prompt") if isinstance(entry, dict) else None
                if isinstance(prompts, str):
                    prompts = [prompts]
                for p in prompts or ():
                    if isinstance(p, str) and p.strip():
                        from oncall_ai.sources.git_prompts import normalize_path

                        rubrics[normalize_path(p)].add(str(metric))
    for c in res.changes:
        (found if c.at >= start_ms else link_only).append(c)


def _prompts(cs, cfg, repo, start_ms, end_ms, fp, with_diffs, only_sha, found, rubrics, exclude):
    from oncall_ai.sources.git_prompts import glob_match, prompt_changes
    from oncall_ai.sources.gitutil import git_text, shallow_problem

    try:
        shallow = shallow_problem(repo, start_ms, "prompt_repo")
        if shallow:
            cs.problem(shallow, 1)
        res = prompt_changes(repo, cfg.prompt_repo, cfg.features, start_ms, end_ms, rubrics=rubrics,
                             judge_features=fp.judge, exclude_paths=exclude, with_diffs=with_diffs,
                             only_sha=only_sha)
        if not only_sha:
            files = git_text(repo, "ls-tree", "-r", "-z", "--name-only", "HEAD").split("\x00")
            for name, f in sorted(cfg.features.items()):
                for g in f.prompts:
                    if not any(glob_match(g, p) for p in files if p):
                        cs.notes.append(f"features.{name}.prompts: {g!r} matches no file in "
                                        f"{cfg.prompt_repo} at HEAD (a typo?)")
    except OncallError as e:
        cs.problem(e.message, e.exit_code)
        return
    except Exception as e:
        cs.problem(f"prompt_repo {cfg.prompt_repo}: cannot read: {e}", 1)
        return
    found += res.changes


# --- traffic -------------------------------------------------------------------------------------

def _norm_model(name: str | None) -> str:
    return (name or "").strip().lower().rsplit("/", 1)[-1]


def _names_match(a: str | None, b: str | None) -> bool:
    x, y = _norm_model(a), _norm_model(b)
    return bool(x and y) and (x == y or x in y or y in x)


def _pick(switch, candidates, names_match):
    """The change that explains a traffic switch: a name match within LINK_LAG before the switch
    (nearest first), else any candidate within LINK_CLOSE."""
    # The measured switch time can precede the real one (sparse traffic: a flip between the last
    # old and the first new event is placed mid-gap): allow the change to come a little after it.
    slack = max(2 * switch.resolution_ms, LINK_SLACK_MS)
    near = [c for c in candidates if switch.at - LINK_LAG_MS <= c.at <= switch.at + slack]
    named = [c for c in near if names_match(c)]
    if named:
        return min(named, key=lambda c: abs(switch.at - c.at))
    close = [c for c in near if abs(switch.at - c.at) <= LINK_CLOSE_MS]
    return min(close, key=lambda c: abs(switch.at - c.at)) if close else None


def _traffic(cs, cfg, store, start_ms, end_ms, found, link_only, current, repos, features=None):
    from oncall_ai.sources.traffic import detect_switches

    try:
        # Only the asked feature's series (triage --feature on a big store: seconds saved).
        switches = detect_switches(store, start_ms, end_ms, features=features)
    except OncallError as e:
        cs.problem(f"store: traffic versions not read: {e.message}", e.exit_code)
        return found
    except Exception as e:  # a store failure we did not foresee: keep the other sources
        cs.problem(f"store {getattr(store, 'url', '')}: traffic versions not read: {type(e).__name__}: {e}", 2)
        return found
    pool = found + link_only
    linked: dict[int, list[dict]] = defaultdict(list)  # index in pool -> evidence
    unexplained = []
    for sw in switches:
        target = _explaining_change(cfg, sw, pool)
        if target is None:
            unexplained.append(sw)
        else:
            linked[target].append(sw.evidence())
    if linked:
        pool = [dataclasses.replace(c, details={**c.details, "seen_in_traffic": linked[i]}) if i in linked else c
                for i, c in enumerate(pool)]
        found = pool[:len(found)]
    found += _unexplained_changes(cfg, unexplained, current, repos)
    return found


def _names_sha(version: str | None, sha: str) -> bool:
    """A version string that carries a commit's (abbreviated) sha: `rubric-dc7d39a`, `54d9c0c1`."""
    if not version or len(sha) != 40:
        return False
    import re

    return any(len(tok) >= 7 and sha.startswith(tok) for tok in re.split(r"[^0-9a-f]+", version.lower()))


def _explaining_change(cfg, sw, pool) -> int | None:
    def affects(c):
        if c.details.get("recorded"):
            return c.affects(sw.feature)
        return sw.feature in c.features

    idx = {id(c): i for i, c in enumerate(pool)}
    if sw.field == "model_id":
        cands = [c for c in pool if c.kind == "model" and not c.provider_side and affects(c)
                 and c.target != c.details.get("file")]
        hit = _pick(sw, cands, lambda c: _names_match(c.to_value, sw.new))
    elif sw.field == "prompt_version":
        v = sw.new.lower()
        by_sha = [c for c in pool if c.kind == "prompt" and len(v) >= 4
                  and (c.id.startswith(v) or (c.to_value or "").lower() == v or _names_sha(v, c.id))]
        if by_sha:
            return idx[id(by_sha[0])]
        cands = [c for c in pool if c.kind == "prompt" and c.details.get("recorded") and affects(c)]
        hit = _pick(sw, cands, lambda c: (c.to_value or "") == sw.new)
    elif sw.field == "index_version":
        indexes = set(cfg.features[sw.feature].indexes) if sw.feature in cfg.features else set()
        cands = [c for c in pool if c.kind == "index" and (c.target in indexes or affects(c))]
        hit = _pick(sw, cands, lambda c: (c.to_value or "") == sw.new)
    else:  # judge_id: a judge change for that metric (rubric commit, judges.yaml, recorded)
        cands = [c for c in pool if c.kind == "judge" and (c.target == sw.metric or c.details.get("recorded"))
                 and (c.affects(sw.feature) or c.target == sw.metric)]
        named = [c for c in cands if _names_sha(sw.new, c.id)]
        if named:
            return idx[id(named[0])]
        hit = _pick(sw, cands, lambda c: _names_match(c.to_value, sw.new) or c.target == sw.metric)
    return idx[id(hit)] if hit is not None else None


def _unexplained_changes(cfg, switches, current, repos) -> list[Change]:
    out: list[Change] = []
    # One provider move often hits several features on the same alias: merge them.
    merged: list[list] = []
    for sw in sorted(switches, key=lambda s: s.at):
        if sw.field == "model_id" and not sw.partial:
            for group in merged:
                g = group[0]
                if g.old == sw.old and g.new == sw.new and abs(sw.at - g.at) <= HOUR_MS:
                    group.append(sw)
                    break
            else:
                merged.append([sw])
        else:
            merged.append([sw])
    pins = current.get("pins") or {}
    for group in merged:
        sw = group[0]
        feats = tuple(sorted({s.feature for s in group}))
        when = format_time(sw.at)
        ev = [s.evidence() for s in group]
        share = _share_text(sw)
        fid = f"traffic:{'+'.join(feats)}:{sw.field}:{sw.new}:{sw.at}"
        details = {"traffic": ev[0] if len(ev) == 1 else ev, "field": sw.field, "partial": sw.partial}
        if sw.field == "model_id":
            keys = {f: pin_key(cfg.features[f]) for f in feats if f in cfg.features}
            pinned = ", ".join(f"{k} = {pins[k]}" for k in sorted(set(keys.values())) if k in pins
                               and not isinstance(pins[k], dict))
            if sw.partial:
                summary = (f"served model {sw.new} appeared for {', '.join(feats)} at {when} on {share} "
                           f"of traffic, with no pin change")
            else:
                summary = (f"provider-side model change: {', '.join(feats)} served by {sw.new} instead of "
                           f"{sw.old} from {when}, with no pin change")
            if pinned:
                summary += f" (pin {pinned}; a floating alias moved?)"
            details["hint"] = (f"pin the previous model id {sw.old} in the pins file to undo it"
                               if sw.old else "")
            out.append(Change(id=fid, kind="model", target=sw.new, features=feats, at=sw.at, by=None,
                              summary=summary, source="traffic", rollback=None, from_value=sw.old,
                              to_value=sw.new, provider_side=True, details=details))
            continue
        if sw.field == "prompt_version":
            kind, target = "prompt", "prompt_version"
            known = _describe_commit(cfg, repos, sw.new)
            what = f"served prompt_version {_short(sw.old)} -> {_short(sw.new)}"
            if known:
                what += f" ({known})"
                details["commit"] = known
            summary = what + f" at {when}, {share}"
        elif sw.field == "index_version":
            idx = cfg.features[sw.feature].indexes if sw.feature in cfg.features else ()
            kind, target = "index", idx[0] if len(idx) == 1 else "index_version"
            summary = f"served index_version {sw.old} -> {sw.new} at {when}, {share}; no index change recorded"
        else:
            kind, target = "judge", sw.metric or "judge_id"
            summary = (f"judge for {sw.metric} moved {sw.old} -> {sw.new} at {when}, {share}; "
                       f"no judge config change")
        if sw.partial:
            summary = "partial rollout: " + summary
        out.append(Change(id=fid, kind=kind, target=target, features=feats, at=sw.at, by=None,
                          summary=summary, source="traffic", rollback=None, from_value=sw.old,
                          to_value=sw.new, details=details))
    return out


def _short(v: str | None) -> str:
    if v is None:
        return "(none)"
    return v[:12] if len(v) == 40 and all(c in "0123456789abcdef" for c in v) else v


def _share_text(sw) -> str:
    if sw.partial:
        return f"{round(sw.share_new * 100)}% of traffic at the end"
    if sw.ramp and len(sw.ramp) > 1 and sw.ramp[0][1] < 0.5:
        shares = [s for _, s in sw.ramp]
        done = next((i for i, s in enumerate(shares) if s >= 0.99), len(shares) - 1)
        steps = " ".join(f"{round(s * 100)}%" for s in shares[:min(done + 1, 8)])
        return f"ramped {steps}{' ...' if done >= 8 else ''} (hourly share of new)"
    return f"{round(sw.share_new * 100)}% of traffic on the new version"


def _describe_commit(cfg, repos, version: str) -> str | None:
    """`abc1234 by X, 2026-11-20T10:00:00Z: subject` for a prompt_version found in the prompt repo."""
    if cfg.prompt_repo is None or not version or len(version) < 4:
        return None
    repo = repos.get(str(Path(cfg.prompt_repo).resolve()))
    if repo is None:
        return None
    try:
        from oncall_ai.sources.gitutil import LOG_FORMAT, git_text, parse_log

        commits = parse_log(git_text(repo, "log", "--no-walk", "--no-show-signature",
                                     f"--format={LOG_FORMAT}", version, "--"))
    except Exception:
        return None
    if not commits:
        return None
    c = commits[0]
    return f"commit {c.sha[:12]} by {c.author}, {format_time(c.at)}: {c.subject}"
