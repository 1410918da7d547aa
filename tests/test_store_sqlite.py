"""SQLite store files that are not ours, broken, or in the wrong place: exit 2, no traceback."""

import sqlite3

import pytest


def _old_layout(path):
    c = sqlite3.connect(path)
    c.executescript(
        "CREATE TABLE _sqlite_migrations (migration_set TEXT, name TEXT, applied_at TEXT);"
        "INSERT INTO _sqlite_migrations VALUES ('oncall_ai','m001_create_events','x'),('oncall_ai','m002_create_docs','x');"
        "CREATE TABLE series(id); CREATE TABLE events(a); CREATE TABLE docs(a);")
    c.close()


@pytest.mark.parametrize("make, message", [
    (_old_layout, "pre-release"),
    (lambda p: p.write_bytes(b"this is not a database" * 100), "not a usable SQLite database"),
    (lambda p: p.mkdir(), "is a folder"),
])
def test_unusable_store_files(run_cli, tmp_path, make, message):
    p = tmp_path / "s.db"
    make(p)
    r = run_cli("--store", p, "scores")
    assert r.exit_code == 2, r.stderr
    assert message in r.stderr and str(p) in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("command", [("scores",), ("triage",), ("ingest", "-")])
def test_store_in_a_missing_folder(run_cli, tmp_path, command):
    r = run_cli("--store", tmp_path / "nope" / "s.db", *command, input="")
    assert r.exit_code == 2 and f"folder {tmp_path / 'nope'} does not exist" in r.stderr


def _store_with_events(tmp_path):
    from oncall_ai.config import parse_config
    from oncall_ai.store import open_store

    cfg = parse_config({"store": str(tmp_path / "s.db")}, path=None)
    return cfg, open_store(cfg.store, config=cfg)


def _ev(i):
    return {"id": f"e{i}", "ts": 1_795_000_000 + i, "feature": "f", "metric": "m", "value": 1}


def test_a_read_only_store_is_a_store_error_not_a_traceback(tmp_path):
    """chmod 444 (or a read-only mount): every write names the store and says nothing was written."""
    from oncall_ai.errors import StoreError
    from oncall_ai.ingest import ingest_records
    from oncall_ai.store.base import Doc

    cfg, store = _store_with_events(tmp_path)
    ingest_records([_ev(1)], config=cfg, store=store)
    store.conn.execute("PRAGMA query_only = 1")  # what SQLite reports for a read-only file, as root too
    with pytest.raises(StoreError, match="read-only") as e:
        ingest_records([_ev(2)], config=cfg, store=store)
    assert str(tmp_path / "s.db") in e.value.message and e.value.exit_code == 2
    with pytest.raises(StoreError, match="read-only"):
        store.put_docs("change", [Doc("change", "c1", 1, {"id": "c1"})])
    store.conn.execute("PRAGMA query_only = 0")
    assert store.count_events() == 1
    store.close()


def test_a_store_locked_by_another_writer_is_a_store_error(tmp_path):
    from oncall_ai.errors import StoreError
    from oncall_ai.ingest import ingest_records

    cfg, store = _store_with_events(tmp_path)
    other = sqlite3.connect(cfg.store, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    store.conn.execute("PRAGMA busy_timeout = 50")
    try:
        with pytest.raises(StoreError, match="another process"):
            ingest_records([_ev(1)], config=cfg, store=store)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert ingest_records([_ev(1)], config=cfg, store=store).stored == 1
    store.close()


def test_an_older_store_is_migrated_on_open(tmp_path, monkeypatch):
    """A store made by the first release (m001-m002: no daily rollups, rollups keyed by hour and
    series) is migrated on open: m003 backfills daily cells, m004 re-keys both rollup tables by
    stream. Windows read from the migrated rollups give the same numbers as the raw events, and
    new events land in the same cells."""
    import sqlite3

    from oncall_ai.config import GoodRule
    from oncall_ai.ingest import Validator
    from oncall_ai.store import sqlite as sq

    rule = GoodRule(">=", 4.0)
    v = Validator(None)
    t0 = 1_795_000_000
    rows = [v.row({"id": f"e{i}", "ts": t0 - i * 137, "feature": "fg"[i % 3 == 0], "metric": "m",
                   "value": (i % 5) + 1, "slice": {"k": "ab"[i % 2]}}) for i in range(12_000)]
    path = str(tmp_path / "s.db")
    # The first release's store, written the way it wrote it (events, zone map, hourly cells).
    monkeypatch.setattr(sq, "MIGRATIONS", sq.MIGRATIONS[:2])
    sq.SQLiteStore(path).close()
    monkeypatch.undo()
    c = sqlite3.connect(path, isolation_level=None)
    sids = {}
    for _, key, *_ in rows:
        if key not in sids:
            sids[key] = c.execute("INSERT INTO series(feature, metric, source, slice) VALUES (?,?,?,?)",
                                  (key[0], key[1], key[2], f'[["k", "{key[3][0][1]}"]]')).lastrowid
    c.executemany("INSERT INTO events(rowid, series_id, ts, h, value) VALUES (?,?,?,?,?)",
                  [(i + 1, sids[r[1]], r[2], r[0], r[3]) for i, r in enumerate(rows)])
    c.execute("INSERT INTO event_ranges SELECT ts - ts % 3600000, min(rowid), max(rowid) FROM events GROUP BY 1")
    c.execute("INSERT INTO rollup_1h SELECT ts - ts % 3600000, series_id, count(*), sum(value), sum(value * value), "
              "sum(value >= 4) FROM events GROUP BY 1, 2")
    c.execute("INSERT INTO rollup_rules VALUES ('m', '>= 4.0')")
    c.close()
    with sq.SQLiteStore(path) as st:
        assert st.schema_version() == len(sq.MIGRATIONS)
        ids = [s.id for s in st.series()]
        start, end = (t0 - 12_000 * 137) * 1000 + 12345, t0 * 1000 - 999
        for bucket in (None, 3_600_000, 86_400_000):
            got = st.aggregate(ids, start, end, good_rule=rule, bucket_ms=bucket)
            n = sum(a.n for a in got.values())
            good = sum(a.good for a in got.values())
            want = [r for r in rows if start <= r[2] < end]
            assert n == len(want) and good == sum(1 for r in want if r[3] >= 4)
        assert st.conn.execute("SELECT sum(n) FROM rollup_1d").fetchone()[0] == len(rows)
        assert st.conn.execute("SELECT count(DISTINCT stream) FROM rollup_1h").fetchone()[0] == 2
        # New events after the migration add to the migrated cells.
        more = [v.row({"id": f"new{i}", "ts": t0 - i * 137, "feature": "f", "metric": "m", "value": 5,
                       "slice": {"k": "a"}}) for i in range(100)]
        assert st.write_events(more, {"m": rule}) == 100
        got = st.aggregate([s.id for s in st.series()], 0, (t0 + 1) * 1000, good_rule=rule)
        assert sum(a.n for a in got.values()) == len(rows) + 100
