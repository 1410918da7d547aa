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
    for var in ("ONCALL_AI_CONFIG", "ONCALL_AI_STORE", "COLUMNS", "CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"):
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
#
# `store_kind` is module-scoped and parametrised, so a module's tests run once per backend, grouped
# by backend, and a module-level sandbox (events ingested once) is built once per backend:
#
#     @pytest.fixture(scope="module")
#     def sandbox(store_kind, make_store_url):
#         url = make_store_url(store_kind)      # a fresh store that lives until the module ends
#         ...ingest into url...
#
# `store_url` is a fresh store per test. Tests that compare the two backends call
# `make_store_url("sqlite")` and `make_store_url("clickhouse")` themselves (see tests/both_stores.py).

STORE_BACKENDS = ("sqlite", "clickhouse")


def require_clickhouse() -> None:
    """Skip unless $ONCALL_AI_TEST_CLICKHOUSE names a server (a failure under CI=true)."""
    from clickhouse_helpers import server_url

    if server_url() is None:
        pytest.skip("no ClickHouse server: set ONCALL_AI_TEST_CLICKHOUSE=http://127.0.0.1:PORT (see .ci/setup-clickhouse.sh)")


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def store_kind(request):
    """The backend under test: "sqlite" or "clickhouse"."""
    if request.param == "clickhouse":
        require_clickhouse()
    return request.param


@pytest.fixture(scope="module")
def make_store_url(tmp_path_factory):
    """make_store_url(kind) -> the URL of a fresh, empty store (a SQLite file, or a new database on
    the test ClickHouse server) that lives until the end of the module."""
    made = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            return str(tmp_path_factory.mktemp("store") / "oncall-ai.db")
        if kind != "clickhouse":
            raise ValueError(kind)
        require_clickhouse()
        from clickhouse_helpers import FreshDatabase

        db = FreshDatabase()
        made.append(db)
        return db.url

    yield make
    for db in made:
        db.drop()


@pytest.fixture
def store_url(store_kind, tmp_path):
    """A fresh, empty store URL for one test: a SQLite file, or a new database on the ClickHouse
    server named by $ONCALL_AI_TEST_CLICKHOUSE (skipped when unset outside CI; a failure when
    CI=true). Use it as `store:` in a test config or with `--store`."""
    if store_kind == "sqlite":
        yield str(tmp_path / "store.db")
        return
    from clickhouse_helpers import FreshDatabase

    db = FreshDatabase()
    try:
        yield db.url
    finally:
        db.drop()
