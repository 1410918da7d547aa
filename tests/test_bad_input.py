"""User mistakes across commands: each gives a clear message naming what is wrong, the right
non-zero exit code and no traceback, and never leaves a file behind or eats the machine."""

from __future__ import annotations

import json

import pytest

from oncall_ai.timeutil import format_time, parse_time_ms

AT = "2026-11-27T03:00:00Z"
AT_MS = parse_time_ms(AT)
H_MS = 3_600_000
FIRST_MS = AT_MS - 48 * H_MS

CONFIG = """\
store: oncall-ai.db
features: {summarizer: {}, support: {}}
metrics:
  helpfulness: {source: judge, good: ">= 4", scale: [1, 5]}
  thumbs_down: {source: user, good: "== 0"}
slices: [language]
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A config and a store with two days of events for two features."""
    from oncall_ai.config import load_config
    from oncall_ai.ingest import ingest_records

    d = tmp_path_factory.mktemp("project")
    (d / "oncall-ai.yaml").write_text(CONFIG)
    cfg = load_config(d / "oncall-ai.yaml")
    events = []
    for i in range(48 * 12):
        ts = FIRST_MS + i * 300_000
        for feature in ("summarizer", "support"):
            events.append({"id": f"{feature}-h{i}", "ts": ts / 1000, "feature": feature, "metric": "helpfulness",
                           "value": 3 + i % 3, "slice": {"language": "de" if i % 4 else "en"}})
            events.append({"id": f"{feature}-u{i}", "ts": ts / 1000, "feature": feature, "metric": "thumbs_down",
                           "value": i % 9 == 0, "slice": {"language": "de" if i % 4 else "en"}})
    result = ingest_records(events, config=cfg)
    assert result.rejected == 0
    return d / "oncall-ai.yaml"


def clean(r):
    assert "Traceback" not in r.stdout + r.stderr
    return r


def test_triage_window_far_before_the_data_starts_at_the_first_event(run_cli, project):
    """`--since 3000d` once built hourly arrays for every hour since 2018 (gigabytes at 99999d)."""
    r = clean(run_cli("--config", project, "triage", "--at", AT, "--since", "3000d", "--json"))
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["since"] == format_time(FIRST_MS)
    assert any("first stored event" in n for n in doc["notes"])
    r = clean(run_cli("--config", project, "triage", "--at", AT, "--since", "12h", "--json"))
    assert json.loads(r.stdout)["since"] == format_time(AT_MS - 12 * H_MS)


@pytest.mark.parametrize("args, option, name", [
    (("scores", "--feature", "sumarizer"), "--feature", "sumarizer"),
    (("scores", "--metric", "helpfulnes"), "--metric", "helpfulnes"),
    (("triage", "--feature", "nope"), "--feature", "nope"),
    (("triage", "--feature", "support", "--metric", "nope", "--fail-on-regression"), "--metric", "nope"),
    (("judge", "drift", "--metric", "nope"), "--metric", "nope"),
])
def test_unknown_feature_or_metric_is_a_usage_error(run_cli, project, args, option, name):
    r = clean(run_cli("--config", project, *args, "--at", AT))
    assert r.exit_code == 2, r.stdout + r.stderr
    assert f"{option}: unknown" in r.stderr and repr(name) in r.stderr
    assert r.stdout == ""


def test_configured_feature_without_events_is_not_an_error(run_cli, project, tmp_path):
    cfg = tmp_path / "oncall-ai.yaml"
    cfg.write_text(CONFIG.replace("support: {}", "support: {}, search: {}").replace(
        "store: oncall-ai.db", f"store: {project.parent / 'oncall-ai.db'}"))
    r = clean(run_cli("--config", cfg, "scores", "--feature", "search", "--at", AT, "--json"))
    assert r.exit_code == 0 and json.loads(r.stdout)["rows"] == []
    assert "no events for feature 'search'" in r.stderr


@pytest.mark.parametrize("args", [("scores",), ("triage",), ("judge", "runs"), ("store", "rebuild-rollups"),
                                  ("slo", "status"), ("export", "prometheus")])
def test_read_commands_in_the_wrong_folder_create_nothing(run_cli, tmp_path, monkeypatch, args):
    """No config and no store here: say so (exit 2), and leave no empty oncall-ai.db behind."""
    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    r = clean(run_cli(*args))
    assert r.exit_code == 2, r.stdout + r.stderr
    assert "oncall-ai.yaml" in r.stderr
    assert list(here.iterdir()) == []


def test_a_reader_that_stops_early_is_not_a_failure(project, tmp_path):
    """`oncall-ai triage | head -1` under `set -o pipefail`: triage ran, so exit 0 (rich exits 1)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for args in (("triage", "--since", "2d"), ("scores", "--by", "language", "--bucket", "5m", "--since", "2d")):
        p = subprocess.Popen([sys.executable, "-m", "oncall_ai", "--config", str(project), *args, "--at", AT],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
        assert p.stdout.readline()
        p.stdout.close()
        err = p.stderr.read().decode()
        assert p.wait() == 0, (args, err)
        assert "Traceback" not in err and "Exception ignored" not in err


@pytest.mark.parametrize("args, message", [
    (("scores", "--since", "0s"), "--since: duration must be positive"),
    (("triage", "--since", "0m"), "--since: duration must be positive"),
    (("scores", "--where", "language="), "--where 'language=': no value"),
    (("scores", "--where", "language=,"), "--where 'language=,': no value"),
])
def test_usage_messages_say_what_is_wrong(run_cli, project, args, message):
    r = clean(run_cli("--config", project, *args, "--at", AT))
    assert r.exit_code == 2
    assert message in r.stderr


@pytest.fixture
def unreadable(tmp_path):
    """A path that exists but cannot be opened, even by root (CI runs as root, so chmod 000 would
    not do): a UNIX socket file. open() fails with ENXIO, as it would with EACCES."""
    import socket

    path = tmp_path / "unreadable.jsonl"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    yield path
    sock.close()


@pytest.mark.parametrize("args", [("--config", "{u}", "scores"), ("ingest", "{u}"), ("changes", "import", "{u}"),
                                  ("judge", "import-run", "{u}")])
def test_a_file_that_cannot_be_read_is_named(run_cli, project, unreadable, args, tmp_path):
    cal = tmp_path / "set.jsonl"
    cal.write_text(json.dumps({"id": "i1", "metric": "helpfulness", "input": "q", "output": "a",
                               "human_score": 4}) + "\n")
    cfg = tmp_path / "with-calibration.yaml"
    cfg.write_text(CONFIG.replace("store: oncall-ai.db", f"store: {project.parent / 'oncall-ai.db'}")
                   + f"calibration: {cal}\n")
    args = [a.replace("{u}", str(unreadable)) for a in args]
    if args[0] != "--config":
        args = ["--config", str(cfg), *args]
    r = clean(run_cli(*args))
    assert r.exit_code == 2, r.stdout + r.stderr
    assert str(unreadable) in r.stderr and "cannot read" in r.stderr
