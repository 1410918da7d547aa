"""Shared helpers for the rollback tests: real git repos in tmp_path and a byte-for-byte snapshot."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import yaml


def git(repo: Path, *args: str, input: str | None = None, check: bool = True) -> str:
    p = subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {p.stderr}")
    return p.stdout.strip()


def write(repo: Path, rel: str, text: str) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def commit(repo: Path, message: str, files: dict[str, str | None]) -> str:
    """Write (or delete, for None) files and commit them; returns the full sha."""
    for rel, text in files.items():
        if text is None:
            git(repo, "rm", "-q", rel)
        else:
            write(repo, rel, text)
            git(repo, "add", rel)
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


SYSTEM_V1 = "You are a summarizer.\nBe accurate.\nKeep it short.\n\nLine five.\nLine six.\nLine seven.\nLine eight.\nCite sources.\n"
PINS = """# Model pins: one key per feature.
# Bump with care: see the runbook.
summarizer: gpt-4o-2024-08-06   # tone is good on this one
classifier: 'claude-3-haiku-20240307'
"embedder": "text-embedding-3-small"
"""
INDEXES = """# retrieval indexes
kb-docs:
  version: v41   # rebuilt nightly
  shards: 4
faq: {version: 7, owner: support}
"""


class Sandbox:
    """A prompt repo (with a bare remote), a platform repo, a config and a store (a SQLite file in
    the sandbox unless `store` names another, e.g. a ClickHouse URL)."""

    def __init__(self, root: Path, store: str | None = None):
        self.root = root
        self.prompts = root / "prompts"
        self.platform = root / "platform"
        self.remote = root / "remote.git"
        self.store = store or root / "oncall-ai.db"
        self.config = root / "oncall-ai.yaml"
        for repo in (self.prompts, self.platform):
            repo.mkdir(parents=True)
            git(repo, "init", "-q", "-b", "main")
        self.base = commit(self.prompts, "initial prompts", {
            "prompts/summarizer/system.md": SYSTEM_V1,
            "prompts/summarizer/examples.md": "example one\n",
            "prompts/classifier/system.md": "Classify.\n",
            "README.md": "prompt repo\n",
            "src/app.py": "print('hi')\n",
        })
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(self.remote)], check=True)
        git(self.prompts, "remote", "add", "origin", str(self.remote))
        git(self.prompts, "push", "-q", "origin", "main")
        self.pins_base = commit(self.platform, "pins and indexes", {"models.yaml": PINS, "indexes.yaml": INDEXES})
        self.config.write_text(yaml.safe_dump({
            "store": str(self.store),
            "prompt_repo": "prompts",
            "features": {
                "summarizer": {"prompts": ["prompts/summarizer/**"], "model": "summarizer", "indexes": ["kb-docs"]},
                "classifier": {"prompts": ["prompts/classifier/*.md"], "model": "classifier"},
            },
            "pins": {"repo": "platform", "file": "models.yaml"},
            "indexes": {"repo": "platform", "file": "indexes.yaml"},
        }))

    def cli(self, run_cli, *args, input=None):
        return run_cli("--config", self.config, *args, input=input)

    def actions(self):
        """The rollback actions recorded in the store."""
        from oncall_ai.store import open_store

        with open_store(str(self.store)) as store:
            return store.get_docs("action")


def sandbox_fixture(tmp_path, request) -> Sandbox:
    """The `sb` fixture of the rollback tests: tests that also take `store_kind` run on both stores
    (tests/conftest.py), the others on a SQLite file."""
    store = request.getfixturevalue("store_url") if "store_kind" in request.fixturenames else None
    return Sandbox(tmp_path / "sb", store=store)


def snapshot(repo: Path) -> dict[str, tuple]:
    """Every file and folder under `repo`, .git included: type, mode and content hash. Two equal
    snapshots mean the repository (HEAD, refs, index, objects, working tree) is byte-for-byte the same."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(repo):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = str(full.relative_to(repo))
            if full.is_symlink():
                snap[rel] = ("link", os.readlink(full))
            elif full.is_dir():
                snap[rel] = ("dir",)
            else:
                snap[rel] = ("file", full.stat().st_mode & 0o777, hashlib.sha256(full.read_bytes()).hexdigest())
    return snap


def assert_same(before: dict, after: dict) -> None:
    if before != after:
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
        raise AssertionError(f"repository changed: added {added[:10]}, removed {removed[:10]}, changed {changed[:10]}")
