"""`oncall-ai store info|copy|rebuild-rollups` on both backends, and the ClickHouse store's
messages for bad URLs, credentials and schemas (exit 2, URL named, password never shown)."""

from __future__ import annotations

import os
import socket

import orjson
import pytest

from oncall_ai.config import GoodRule
from oncall_ai.store import open_store
from oncall_ai.store.base import HOUR_MS, Doc

T0 = 1_764_000_000_000


def rows(n, *, seed=0, feature="summarizer"):
    out = []
    for i in range(n):
        k = (feature, "helpfulness" if i % 3 else "schema_valid", "judge" if i % 3 else "check",
             (("language", "de" if i % 2 else "en"),), "m-1", None, None, None)
        out.append(((seed << 32) + i, k, T0 + i * 97_001, float(i % 5 + 1) if i % 3 else float(i % 2),
                    f"r{i}", None, f"input {i}" if i % 4 == 0 else None, None))
    return out


RULES = {"helpfulness": GoodRule(">=", 4), "schema_valid": GoodRule("==", 1)}


def fill(url, n=500):
    with open_store(url) as s:
        s.write_events(rows(n), RULES)
        s.put_docs("change", [Doc("change", f"c{i}", T0 + i, {"kind": "prompt", "i": i}) for i in range(5)])


def test_store_info_json(store_url, run_cli):
    fill(store_url)
    r = run_cli("--store", store_url, "store", "info", "--json")
    assert r.exit_code == 0, r.stderr
    data = orjson.loads(r.stdout)
    assert data["schema"] == "oncall-ai/store-info/v1"
    assert data["backend"] == ("sqlite" if "://" not in store_url else "clickhouse")
    assert data["events"] == 500
    assert data["series"] == 4
    assert data["features"] == ["summarizer"]
    assert data["metrics"] == ["helpfulness", "schema_valid"]
    assert data["docs"] == {"change": 5}
    assert data["schema_version"] >= 2
    assert data["first_event"] == "2025-11-24T16:00:00Z"

    text = run_cli("--store", store_url, "store", "info")
    assert text.exit_code == 0
    assert "events" in text.stdout and "500" in text.stdout


def _same_content(a_url, b_url):
    with open_store(a_url, create=False) as a, open_store(b_url, create=False) as b:
        assert a.count_events() == b.count_events()
        assert a.time_bounds() == b.time_bounds()
        key = lambda s: (s.feature, s.metric, s.source, s.slice, s.model_id)  # noqa: E731
        sa, sb = {key(s): s.id for s in a.series()}, {key(s): s.id for s in b.series()}
        assert set(sa) == set(sb)
        for k in sa:
            ea = [(e.ts, e.value, e.request_id, e.input) for e in a.events([sa[k]], 0, 2**62, with_text=True)]
            eb = [(e.ts, e.value, e.request_id, e.input) for e in b.events([sb[k]], 0, 2**62, with_text=True)]
            assert ea == eb
            ga = a.aggregate([sa[k]], 0, 2**62, bucket_ms=HOUR_MS, good_rule=RULES[k[1]])
            gb = b.aggregate([sb[k]], 0, 2**62, bucket_ms=HOUR_MS, good_rule=RULES[k[1]])
            assert {b_: (g.n, g.good) for (_, b_), g in ga.items()} == {b_: (g.n, g.good) for (_, b_), g in gb.items()}
        assert a.get_docs("change") == b.get_docs("change")


def test_store_copy_both_directions_is_resumable(store_url, tmp_path, run_cli):
    """SQLite -> store_url (interrupted, then resumed), then store_url -> a new SQLite file."""
    from oncall_ai.store.tools import copy_store

    src = str(tmp_path / "src.db")
    fill(src, 900)
    # First attempt dies after the second chunk.
    calls = []

    def die(done, total):
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with open_store(src) as s, open_store(store_url) as d, pytest.raises(KeyboardInterrupt):
        copy_store(s, d, RULES, chunk_events=150, progress=die)
    with open_store(store_url) as d:
        partial = d.count_events()
    assert 0 < partial < 900

    r = run_cli("--store", src, "store", "copy", src, store_url, "--json")
    assert r.exit_code == 0, r.stderr
    out = orjson.loads(r.stdout)
    assert out["resumed_from"] is not None
    assert out["events_read"] < 900  # did not start over
    assert out["events_new"] == 900 - partial
    assert out["docs"] == {"change": 5}
    _same_content(src, store_url)

    # Again: nothing left to do; --restart reads everything but stores nothing new.
    again = orjson.loads(run_cli("store", "copy", src, store_url, "--json").stdout)
    assert (again["events_read"], again["events_new"]) == (0, 0)
    full = orjson.loads(run_cli("store", "copy", src, store_url, "--restart", "--json").stdout)
    assert (full["events_read"], full["events_new"]) == (900, 0)

    back = str(tmp_path / "back.db")
    r = run_cli("store", "copy", store_url, back)
    assert r.exit_code == 0, r.stderr
    assert "900 events read, 900 new" in r.stderr
    _same_content(store_url, back)


def test_store_copy_refuses_same_store_and_missing_source(tmp_path, run_cli):
    db = str(tmp_path / "a.db")
    r = run_cli("store", "copy", db, db)
    assert r.exit_code == 2 and "same store" in r.stderr
    r = run_cli("store", "copy", str(tmp_path / "missing.db"), str(tmp_path / "b.db"))
    assert r.exit_code == 2 and "missing.db" in r.stderr and "Traceback" not in r.stderr


def test_rebuild_rollups_after_a_rule_change(store_url, tmp_path, run_cli):
    fill(store_url, 300)
    cfg = tmp_path / "oncall-ai.yaml"
    cfg.write_text(f"store: {store_url}\nmetrics:\n  helpfulness: {{good: '> 2'}}\n  schema_valid: {{good: '== 1'}}\n")
    r = run_cli("--config", cfg, "store", "rebuild-rollups")
    assert r.exit_code == 0, r.stderr
    assert "hourly cells" in r.stderr
    with open_store(store_url) as s:
        ids = [x.id for x in s.series(metric="helpfulness")]
        got = s.aggregate(ids, 0, 2**62, good_rule=GoodRule(">", 2))
        want = sum(1 for r_ in rows(300) if r_[1][1] == "helpfulness" and r_[3] > 2)
        assert sum(a.good for a in got.values()) == want
        assert sum(a.n for a in got.values()) == 200


# --- ClickHouse: bad URLs, credentials, schemas ------------------------------------------------------

def _assert_clean_failure(r, must_name, secret=None):
    assert r.exit_code == 2, (r.exit_code, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ")
    assert must_name in r.stderr
    if secret:
        assert secret not in r.stderr and secret not in r.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_clickhouse(run_cli):
    port = _free_port()
    r = run_cli("--store", f"clickhouse://oncall:pa55word@127.0.0.1:{port}/scores", "store", "info")
    _assert_clean_failure(r, f"clickhouse://oncall@127.0.0.1:{port}/scores", secret="pa55word")
    assert "cannot reach" in r.stderr


@pytest.fixture
def ch_server():
    from clickhouse_helpers import FreshDatabase, server_url

    if server_url() is None:
        pytest.skip("no ClickHouse server: set ONCALL_AI_TEST_CLICKHOUSE")
    db = FreshDatabase()
    yield db
    db.drop()


def test_clickhouse_credentials_from_configured_env_vars(ch_server, tmp_path, run_cli, monkeypatch):
    user = os.environ.get("ONCALL_AI_TEST_CLICKHOUSE_USER")
    password = os.environ.get("ONCALL_AI_TEST_CLICKHOUSE_PASSWORD")
    cfg = tmp_path / "oncall-ai.yaml"
    cfg.write_text(f"store: {ch_server.url}\nclickhouse: {{user_env: CH_U, password_env: CH_P}}\n")
    # wrong password: exit 2, the URL named, the password nowhere
    monkeypatch.setenv("CH_U", user or "default")
    monkeypatch.setenv("CH_P", "not-the-password-0x5eed")
    r = run_cli("--config", cfg, "store", "info")
    _assert_clean_failure(r, ch_server.url.split("://")[1], secret="not-the-password-0x5eed")
    assert "refused user" in r.stderr
    if not (user and password):
        pytest.skip("no password user on this server (ONCALL_AI_TEST_CLICKHOUSE_USER/_PASSWORD)")
    monkeypatch.setenv("CH_P", password)
    r = run_cli("--config", cfg, "store", "info", "--json")
    assert r.exit_code == 0, r.stderr
    assert password not in r.stdout + r.stderr
    # the password in the URL itself is accepted but never shown
    host_db = ch_server.url.split("://")[1]
    r = run_cli("--store", f"clickhouse://{user}:wrong-{password}@{host_db}", "store", "info")
    _assert_clean_failure(r, f"clickhouse://{user}@{host_db}", secret=f"wrong-{password}")


def test_clickhouse_missing_database(ch_server, run_cli):
    url = ch_server.url.rsplit("/", 1)[0] + "/no_such_db_here"
    r = run_cli("--store", url, "store", "info")
    _assert_clean_failure(r, url)
    assert "does not exist" in r.stderr and "CREATE DATABASE no_such_db_here" in r.stderr


def test_clickhouse_foreign_or_older_schema(ch_server, run_cli):
    from clickhouse_helpers import server_query

    server_query(f"CREATE TABLE {ch_server.name}.events (ts Int64, v Float64) ENGINE = MergeTree() ORDER BY ts")
    r = run_cli("--store", ch_server.url, "scores")
    _assert_clean_failure(r, ch_server.url)
    assert "older or foreign schema" in r.stderr


def test_clickhouse_newer_schema(ch_server, run_cli):
    from clickhouse_helpers import server_query

    with open_store(ch_server.url):
        pass
    server_query(f"INSERT INTO {ch_server.name}.oncall_ai_migrations (name, applied_at) VALUES ('m999_from_the_future', now())")
    r = run_cli("--store", ch_server.url, "store", "info")
    _assert_clean_failure(r, ch_server.url)
    assert "newer oncall-ai" in r.stderr


def test_clickhouse_partially_migrated_schema_is_completed(ch_server):
    """A store left with only the first migration (an older oncall-ai, or an interrupted open) is
    migrated forward when opened."""
    from clickhouse_helpers import server_query

    with open_store(ch_server.url):
        pass
    server_query(f"DROP TABLE {ch_server.name}.docs")
    server_query(f"ALTER TABLE {ch_server.name}.oncall_ai_migrations DELETE WHERE name = 'm002_create_docs'")
    import time

    for _ in range(50):  # mutations are asynchronous
        if "m002" not in server_query(f"SELECT name FROM {ch_server.name}.oncall_ai_migrations"):
            break
        time.sleep(0.1)
    with open_store(ch_server.url) as s:
        assert s.schema_version() == 2
        assert s.put_docs("change", [Doc("change", "a", 1, {})]) == 1


def test_clickhouse_write_errors_reach_the_caller(ch_server):
    """The dedup lookup runs on a second connection while the batch is encoded: its failure is
    raised to the writer as a StoreError, a failed encoding leaves no lookup running, and the store
    keeps working afterwards."""
    from clickhouse_helpers import server_query
    from oncall_ai.errors import StoreError

    with open_store(ch_server.url) as s:
        assert s.write_events(rows(50), RULES) == 50
        bad = [(r[0] + 1000, r[1], r[2], "not a number", *r[4:]) for r in rows(5)]
        with pytest.raises(TypeError):
            s.write_events(bad, RULES)
        assert s.write_events(rows(60), RULES) == 10
        server_query(f"RENAME TABLE {ch_server.name}.events TO {ch_server.name}.events_away")
        try:
            with pytest.raises(StoreError) as e:
                s.write_events(rows(70), RULES)
            assert ch_server.url in str(e.value)
        finally:
            server_query(f"RENAME TABLE {ch_server.name}.events_away TO {ch_server.name}.events")
        assert s.write_events(rows(70), RULES) == 10
        assert s.count_events() == 70
