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
