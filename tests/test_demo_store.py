"""`oncall-ai demo --store URL`: the sandbox's data in another store (a ClickHouse database), and
the commands of the demo's "Next:" list giving the same answers there as on the sandbox's own
SQLite file."""

from __future__ import annotations

import json

import pytest

from both_stores import assert_same, strip

AT = "2026-11-18T11:05:00Z"  # the default scenario and seed, at a fixed time


@pytest.fixture(scope="module")
def two_demos(tmp_path_factory, make_store_url):
    """The default demo (prompt_change, seed 1) built twice through the CLI: once into its own
    SQLite file, once into a fresh ClickHouse database."""
    from typer.testing import CliRunner

    from oncall_ai.cli import app

    url = make_store_url("clickhouse")
    root = tmp_path_factory.mktemp("demos")
    out = {}
    for kind, extra in (("sqlite", []), ("clickhouse", ["--store", url])):
        d = root / kind
        r = CliRunner().invoke(app, ["demo", str(d), "--at", AT, *extra], catch_exceptions=False)
        assert r.exit_code == 0, r.stderr
        out[kind] = (d, r.stdout)
    return out, url


def _in(run_cli, sandbox, monkeypatch, *args):
    monkeypatch.chdir(sandbox)  # as the demo says: cd DIR, then run the command
    r = run_cli(*args)
    assert r.exit_code in (0, 1), r.stderr
    return r


def test_demo_into_clickhouse_points_its_config_there(two_demos):
    (demos, url) = two_demos
    d, stdout = demos["clickhouse"]
    from oncall_ai.config import load_config

    assert load_config(d / "oncall-ai.yaml").store == url
    assert f"ingested into {url}" in stdout
    assert not (d / "oncall-ai.db").exists()
    assert "ingested into oncall-ai.db" in demos["sqlite"][1]


def test_triage_gives_the_same_top_hypothesis_and_findings(two_demos, run_cli, monkeypatch):
    demos, url = two_demos
    truth = json.loads((demos["sqlite"][0] / "ground_truth.json").read_text())
    got = {}
    for kind, (d, _) in demos.items():
        r = _in(run_cli, d, monkeypatch, "triage", "--at", AT, "--json")
        got[kind] = strip(json.loads(r.stdout), d)
    top = {k: next(f for f in doc["findings"] if f["regression"]["detected"])["hypotheses"][0]
           for k, doc in got.items()}
    assert top["sqlite"]["kind"] == truth["kind"] == "prompt_change"
    assert top["clickhouse"]["change"]["id"] == top["sqlite"]["change"]["id"]
    assert truth["change_id"].startswith(top["sqlite"]["change"]["id"][:12])
    assert_same(got["sqlite"], got["clickhouse"], what="triage --json")


@pytest.mark.parametrize("args", [
    ["scores", "--feature", "summarizer", "--metric", "helpfulness", "--since", "24h", "--by", "language", "--json"],
    ["scores", "--feature", "search", "--metric", "thumbs_down", "--since", "7d", "--bucket", "1d", "--json"],
    ["changes", "list", "--since", "24h", "--json"],
    ["judge", "drift", "--json"],
    ["slo", "status", "--json"],
    ["slo", "check", "--json"],
    ["export", "prometheus"],
])
def test_the_next_commands_answer_the_same(two_demos, run_cli, monkeypatch, args):
    demos, url = two_demos
    got = {}
    for kind, (d, _) in demos.items():
        r = _in(run_cli, d, monkeypatch, *args, "--at", AT)
        out = r.stdout.replace(str(d / "oncall-ai.db"), "<X>").replace(str(d), "<X>").replace(url, "<X>")
        got[kind] = (r.exit_code, out)
    assert got["sqlite"][0] == got["clickhouse"][0]
    if "--json" in args:
        assert_same(got["sqlite"][1], got["clickhouse"][1], what=" ".join(args))
    else:
        assert got["sqlite"][1] == got["clickhouse"][1]


def test_a_store_that_holds_data_is_refused(two_demos, run_cli, tmp_path):
    _, url = two_demos
    r = run_cli("demo", tmp_path / "again", "--store", url)
    assert r.exit_code == 2 and "already holds" in r.stderr and url in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "again").exists()


def test_a_password_in_the_url_and_a_missing_database_are_usage_errors(run_cli, tmp_path):
    from conftest import require_clickhouse

    require_clickhouse()
    from clickhouse_helpers import server_url

    host = server_url().split("://", 1)[1]
    r = run_cli("demo", tmp_path / "a", "--store", f"clickhouse://me:s3cret@{host}/x")
    assert r.exit_code == 2 and "password" in r.stderr and "s3cret" not in r.stderr
    r = run_cli("demo", tmp_path / "b", "--store", f"clickhouse://{host}/no_such_db_here")
    assert r.exit_code == 2 and "CREATE DATABASE no_such_db_here" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_sqlite_store_elsewhere_and_the_global_option(run_cli, tmp_path):
    db = tmp_path / "elsewhere.db"
    r = run_cli("--store", db, "demo", tmp_path / "sb", "--at", AT, "--scale", "0.05", "--days", "2")
    assert r.exit_code == 0, r.stderr
    from oncall_ai.config import load_config
    from oncall_ai.store import open_store

    assert load_config(tmp_path / "sb" / "oncall-ai.yaml").store == str(db)
    assert not (tmp_path / "sb" / "oncall-ai.db").exists()
    with open_store(str(db)) as st:
        assert st.count_events() > 0


def test_oncall_ai_store_in_the_environment_is_where_the_demo_goes(run_cli, tmp_path, monkeypatch):
    """The demo writes its data where its config says, and the config says where the data went:
    with $ONCALL_AI_STORE set, both are that store (never the env store for data and
    oncall-ai.db in the config)."""
    db = tmp_path / "env.db"
    monkeypatch.setenv("ONCALL_AI_STORE", str(db))
    r = run_cli("demo", tmp_path / "sb", "--at", AT, "--scale", "0.05", "--days", "2")
    assert r.exit_code == 0, r.stderr
    monkeypatch.delenv("ONCALL_AI_STORE")
    from oncall_ai.config import load_config

    assert load_config(tmp_path / "sb" / "oncall-ai.yaml").store == str(db)
    r = run_cli("demo", tmp_path / "sb2", "--store", db)
    assert r.exit_code == 2 and "already holds" in r.stderr
