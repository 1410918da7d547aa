"""A demo sandbox for module-scoped tests (digest, incidents, runbooks): built once per test session
with the demo generator and ingested, then copied per module (a copy is a fraction of a build).

The scenario is `prompt_change_slice`, seed 3, at a fixed time T0: a prompt commit lowers
summarizer/helpfulness in language=de about 19 hours before T0 (ground_truth.json says which
commit). Everything after T0 (incidents, the rollback) happens at times the tests choose, with the
clock of the commands pinned (`pinned_clock`), so every run of the suite sees the same data.

`sandbox_copy(..., store=URL)` puts the copy's data in another store (a fresh ClickHouse database
from conftest's `make_store_url`): the same files ingested the way the demo ingests them, and the
copy's config pointing there.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from oncall_ai.timeutil import format_time, parse_time_ms

SCENARIO = "prompt_change_slice"
SEED = 3
SCALE = 0.3
T0 = parse_time_ms("2026-11-27T03:00:00Z")
MIN = 60_000
HOUR = 3_600_000

_PRISTINE: dict[str, Path] = {}


def at(offset_ms: int = 0) -> str:
    return format_time(T0 + offset_ms)


def isolation_env(home: Path) -> dict[str, str]:
    """The environment conftest's autouse fixture sets, for module-scoped fixtures (which run before it)."""
    return {"HOME": str(home), "ONCALL_AI_HOME": str(home / ".oncall-ai"), "NO_COLOR": "1",
            "GIT_AUTHOR_NAME": "Test Author", "GIT_AUTHOR_EMAIL": "author@example.com",
            "GIT_COMMITTER_NAME": "Test Committer", "GIT_COMMITTER_EMAIL": "committer@example.com",
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


@contextlib.contextmanager
def isolated(home: Path):
    home.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in isolation_env(home).items():
            mp.setenv(k, v)
        for var in ("ONCALL_AI_CONFIG", "ONCALL_AI_STORE", "COLUMNS", "ONCALL_AI_USER"):
            mp.delenv(var, raising=False)
        yield mp


def pristine(tmp_path_factory) -> Path:
    """The session's built and ingested sandbox (never modified: copy it with `sandbox_copy`)."""
    if SCENARIO not in _PRISTINE:
        from oncall_ai.demo import build_sandbox

        root = tmp_path_factory.mktemp("pristine-sandbox")
        with isolated(root / "home"):
            build_sandbox(root / "sb", SCENARIO, seed=SEED, now_ms=T0, scale=SCALE)
        _PRISTINE[SCENARIO] = root / "sb"
    return _PRISTINE[SCENARIO]


def sandbox_copy(tmp_path_factory, name: str, store: str | None = None) -> Path:
    src = pristine(tmp_path_factory)
    dst = tmp_path_factory.mktemp(name) / "sb"
    shutil.copytree(src, dst, symlinks=True)
    for repo in ("prompts", "platform"):
        # A copied working tree has new file stats: refresh the index so git sees it clean.
        subprocess.run(["git", "-C", str(dst / repo), "update-index", "-q", "--refresh"], check=False)
    if store is not None:
        from types import SimpleNamespace

        from oncall_ai.demo import ingest_sandbox

        for f in dst.glob("oncall-ai.db*"):
            f.unlink()
        config = dst / "oncall-ai.yaml"
        text = config.read_text()
        assert "\nstore: oncall-ai.db\n" in text
        config.write_text(text.replace("\nstore: oncall-ai.db\n", f"\nstore: {json.dumps(store)}\n"))
        with isolated(dst.parent / "home"):
            ingest_sandbox(SimpleNamespace(dir=dst, config_path=config, store=store,
                                           event_files=sorted((dst / "events").glob("*.jsonl.gz")),
                                           changes_path=dst / "changes.jsonl",
                                           calibration_runs=dst / "calibration" / "runs.jsonl"))
    return dst


def store_of(sb: Path) -> str:
    """The store the sandbox's config names (its SQLite file, or a ClickHouse URL)."""
    from oncall_ai.config import load_config

    return load_config(sb / "oncall-ai.yaml").store


def ground_truth(sb: Path) -> dict:
    return json.loads((sb / "ground_truth.json").read_text())


@contextlib.contextmanager
def pinned_clock(mp: pytest.MonkeyPatch, when_ms: int):
    """Commands that read the clock (rollbacks) see `when_ms`; git commits are dated then too."""
    import oncall_ai.timeutil as tu

    date = f"@{when_ms // 1000} +0000"
    with mp.context() as m:
        m.setattr(tu, "now_ms", lambda: when_ms)
        m.setenv("GIT_AUTHOR_DATE", date)
        m.setenv("GIT_COMMITTER_DATE", date)
        yield


def cli(sb: Path, *args, input=None):
    """Run the CLI in-process against the sandbox's config; (exit code, stdout, stderr)."""
    from typer.testing import CliRunner

    from oncall_ai.cli import app

    r = CliRunner().invoke(app, ["--config", str(sb / "oncall-ai.yaml"), *[str(a) for a in args]], input=input,
                           catch_exceptions=False)
    return r


def cli_json(sb: Path, *args) -> dict:
    r = cli(sb, *args)
    assert r.exit_code in (0, 1), f"{args}: exit {r.exit_code}: {r.stderr}"
    return json.loads(r.stdout)


def raw_events(sb: Path) -> list[dict]:
    """The generated events straight from the sandbox's files (an independent view of the store)."""
    out = []
    for f in sorted((sb / "events").glob("*.jsonl.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            out += [json.loads(line) for line in fh if line.strip()]
    for e in out:
        e["ts_ms"] = parse_time_ms(e["ts"])
    return out


def commit_file(repo: Path, rel: str, text: str, message: str, when_ms: int) -> str:
    (repo / rel).write_text(text)
    date = f"@{when_ms // 1000} +0000"
    env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    subprocess.run(["git", "-C", str(repo), "add", rel], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", message], check=True, env=env)
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def flow_fixtures(build):
    """The `flows` and `flow` fixtures of a module whose scenario `build(tmp_path_factory, stack,
    store_url)` runs once per store kind (store_url None: SQLite):

        flows, flow = flow_fixtures(_flow)

    `flow` is the run for the test's `store_kind`; `flows(kind)` gives any kind's."""

    @pytest.fixture(scope="module")
    def flows(tmp_path_factory, make_store_url):
        made: dict = {}
        with contextlib.ExitStack() as stack:

            def get(kind):
                if kind not in made:
                    made[kind] = build(tmp_path_factory, stack, None if kind == "sqlite" else make_store_url(kind))
                return made[kind]

            yield get

    @pytest.fixture
    def flow(flows, store_kind):
        return flows(store_kind)

    return flows, flow
