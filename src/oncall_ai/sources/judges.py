"""The judge definitions: judges.yaml in the platform repo (config `judges: {repo, file}`), a YAML
map `metric -> {model: ..., prompt: path in prompt_repo}` (optional `id`: the judge_id the judge
writes into events), and the rubric text in the prompt repo, read at HEAD or at a given revision
with gitpython. A folder that is not a git repo is read from disk (HEAD only).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from oncall_ai.errors import ConfigError


@dataclass(frozen=True)
class JudgeSpec:
    metric: str
    model: str
    prompt: str  # path in the prompt repo
    judge_id: str | None = None  # as configured (`id:`), else derived in Rubric.judge_id
    source: str = ""  # where it was read, for messages


@dataclass(frozen=True)
class Rubric:
    path: str
    text: str
    commit: str | None  # last commit that touched the rubric at the revision read; None off git
    blob: str  # content hash (git blob sha, or sha1 of the text off git)

    def judge_id(self, spec: JudgeSpec, model: str) -> str:
        if spec.judge_id:
            return spec.judge_id
        rev = (self.commit or self.blob)[:7]
        return f"{model}:{self.path}@{rev}"


def _repo(path: Path):
    import git

    try:
        return git.Repo(path, search_parent_directories=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return None


def _read_at(path: Path, file: str, rev: str | None, what: str) -> tuple[str, str | None, str]:
    """(text, commit that last touched it at rev, blob sha) of `file` in the repo at `path`."""
    import git

    if not path.exists():
        raise ConfigError(f"{what}: repo folder {path} does not exist")
    repo = _repo(path)
    if repo is None:
        if rev is not None:
            raise ConfigError(f"{what}: {path} is not a git repo, so revision {rev!r} cannot be read")
        f = path / file
        if not f.is_file():
            raise ConfigError(f"{what}: {f} not found")
        text = f.read_text(encoding="utf-8")
        return text, None, hashlib.sha1(text.encode()).hexdigest()
    try:
        commit = repo.commit(rev or "HEAD")
    except (git.BadName, ValueError, git.GitCommandError):
        raise ConfigError(f"{what}: no revision {rev or 'HEAD'!r} in {path}",
                          hint="give a commit sha, tag or branch of that repo") from None
    try:
        blob = commit.tree / file
    except KeyError:
        raise ConfigError(f"{what}: {file} does not exist in {path} at {rev or 'HEAD'} ({commit.hexsha[:12]})") from None
    text = blob.data_stream.read().decode("utf-8", errors="replace")
    last = next(iter(repo.iter_commits(commit, paths=file, max_count=1)), None)
    return text, (last.hexsha if last else commit.hexsha), blob.hexsha


def load_judges(cfg, rev: str | None = None) -> dict[str, JudgeSpec]:
    """metric -> JudgeSpec from judges.yaml (ConfigError naming the file and key on any problem)."""
    import yaml

    if cfg.judges is None:
        raise ConfigError(f"{cfg.describe()}: judges: missing; calibration needs judges.yaml",
                          hint="add judges: {repo: PATH, file: judges.yaml} to the config")
    where = f"{cfg.judges.repo / cfg.judges.file}" + (f"@{rev}" if rev else "")
    text, _, _ = _read_at(cfg.judges.repo, cfg.judges.file, rev, "judges")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: invalid YAML: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a map of metric -> {{model: ..., prompt: ...}}")
    specs = {}
    for metric, entry in data.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: {metric}: must be a mapping {{model: ..., prompt: ...}}")
        model, prompt = entry.get("model"), entry.get("prompt")
        if not isinstance(model, str) or not model:
            raise ConfigError(f"{where}: {metric}.model: missing or not a string")
        if not isinstance(prompt, str) or not prompt:
            raise ConfigError(f"{where}: {metric}.prompt: missing or not a path string")
        jid = entry.get("id", entry.get("judge_id"))
        specs[str(metric)] = JudgeSpec(str(metric), model, prompt, str(jid) if jid else None, where)
    return specs


def judge_for(cfg, metric: str, rev: str | None = None) -> JudgeSpec:
    specs = load_judges(cfg, rev)
    if metric not in specs:
        known = ", ".join(sorted(specs)) or "none"
        raise ConfigError(f"{cfg.judges.repo / cfg.judges.file}: no judge for metric {metric!r} (judges defined: {known})",
                          hint=f"add `{metric}: {{model: ..., prompt: path/in/prompt_repo}}` to judges.yaml")
    return specs[metric]


def read_rubric(cfg, path: str, rev: str | None = None) -> Rubric:
    """The rubric text at HEAD (or `rev`) of the prompt repo."""
    if cfg.prompt_repo is None:
        raise ConfigError(f"{cfg.describe()}: prompt_repo: missing; the judge rubric lives there")
    text, commit, blob = _read_at(cfg.prompt_repo, path, rev, "prompt_repo")
    if not text.strip():
        raise ConfigError(f"prompt_repo: rubric {path} is empty" + (f" at {rev}" if rev else ""))
    return Rubric(path, text, commit, blob)
