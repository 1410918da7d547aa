"""Every test gets its own home, store and git identity; nothing touches the network or the
user's real files."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("ONCALL_AI_HOME", str(home / ".oncall-ai"))
    for var in ("ONCALL_AI_CONFIG", "ONCALL_AI_STORE", "COLUMNS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Committer")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "committer@example.com")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield


@pytest.fixture
def run_cli():
    """Run the CLI in-process: returns a result with .exit_code, .stdout, .stderr (separate)."""
    from typer.testing import CliRunner

    from oncall_ai.cli import app

    def _run(*args, input=None, env=None):
        runner = CliRunner()
        return runner.invoke(app, [str(a) for a in args], input=input, env=env, catch_exceptions=False)

    return _run


# --- stores: every command test can run on SQLite and on ClickHouse ---------------------------

STORE_BACKENDS = ("sqlite", "clickhouse")


@pytest.fixture(params=STORE_BACKENDS)
def store_url(request, tmp_path, monkeypatch):
    """A fresh, empty store URL: a SQLite file, or a new database on the ClickHouse server named by
    $ONCALL_AI_TEST_CLICKHOUSE (skipped when unset outside CI; a failure when CI=true).
    Use it as `store:` in a test config or with `--store`."""
    for var in ("CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    if request.param == "sqlite":
        yield str(tmp_path / "store.db")
        return
    from clickhouse_helpers import FreshDatabase, server_url

    if server_url() is None:
        pytest.skip("no ClickHouse server: set ONCALL_AI_TEST_CLICKHOUSE=http://127.0.0.1:PORT (see .ci/setup-clickhouse.sh)")
    db = FreshDatabase()
    try:
        yield db.url
    finally:
        db.drop()
