"""Builders for the change-timeline tests: real git repos with commits at chosen times, a config
file, and events in a real SQLite store."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

from oncall_ai.timeutil import format_time, parse_time_ms


def iso(ms: int) -> str:
    return format_time(ms)


class GitRepo:
    """A git repo in a folder; `commit()` writes files and commits at a given time."""

    def __init__(self, path: Path, *, init: bool = True):
        self.path = Path(path)
        if init:
            self.path.mkdir(parents=True, exist_ok=True)
            self.git("init", "-q", "-b", "main")

    def git(self, *args: str, env: dict | None = None) -> str:
        return subprocess.run(["git", *args], cwd=self.path, check=True, capture_output=True, text=True,
                              env={**os.environ, **(env or {})}).stdout

    def commit(self, files: dict[str, str | None], message: str, at, *,
               author: tuple[str, str] = ("Alice Example", "alice@example.com")) -> str:
        """files: path -> text (None deletes). at: epoch ms or RFC 3339. Returns the full sha."""
        ms = at if isinstance(at, int) else parse_time_ms(at)
        for name, text in files.items():
            p = self.path / name
            if text is None:
                self.git("rm", "-q", "--", name)
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(text)
            self.git("add", "--", name)
        date = f"@{ms // 1000} +0000"
        env = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date,
               "GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1]}
        self.git("commit", "-q", "--allow-empty", "-m", message, env=env)
        return self.git("rev-parse", "HEAD").strip()

    def merge(self, branch: str, message: str, at) -> str:
        ms = at if isinstance(at, int) else parse_time_ms(at)
        date = f"@{ms // 1000} +0000"
        self.git("merge", "-q", "--no-ff", branch, "-m", message,
                 env={"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date})
        return self.git("rev-parse", "HEAD").strip()


def write_config(folder: Path, data: dict) -> Path:
    path = folder / "oncall-ai.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def add_events(config_path: Path, records: list[dict]) -> None:
    from oncall_ai.config import load_config
    from oncall_ai.ingest import ingest_records
    from oncall_ai.store import open_store

    cfg = load_config(config_path)
    store = open_store(cfg.store, config=cfg)
    try:
        result = ingest_records(records, config=cfg, store=store)
        assert result.rejected == 0, result.rejects
    finally:
        store.close()


def traffic(feature: str, start_ms: int, end_ms: int, *, every_ms: int, version_at, metric: str = "helpfulness",
            field: str = "model_id", value: float = 4.0, extra: dict | None = None, prefix: str = "ev") -> list[dict]:
    """Evenly spaced events; version_at(ts_ms) -> the version (of `field`) served at that time."""
    out = []
    t = start_ms
    i = 0
    while t < end_ms:
        rec = {"id": f"{prefix}-{feature}-{metric}-{i}", "ts": t / 1000, "feature": feature, "metric": metric,
               "value": value, field: version_at(t, i)}
        if extra:
            rec.update(extra)
        out.append(rec)
        t += every_ms
        i += 1
    return out
