"""Recorded changes: `changes record`, `changes import FILE` (CONTRACT.md section 3), and how they
appear in `changes list` and `changes show`."""

from __future__ import annotations

import json

from changes_helpers import write_config

AT = "2026-11-27T03:00:00Z"


def _cfg(tmp_path):
    return write_config(tmp_path, {"store": "oncall-ai.db",
                                   "features": {"summarizer": {}, "support": {}, "search": {}}})


def _list(run_cli, cfg, *args):
    r = run_cli("--config", cfg, "changes", "list", "--at", AT, "--json", *args)
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)["changes"]


def test_record_then_list(run_cli, tmp_path):
    cfg = _cfg(tmp_path)
    r = run_cli("--config", cfg, "changes", "record", "--kind", "index", "--target", "kb-docs",
                "--from", "2026-11-20", "--to", "2026-11-26", "--at", "2026-11-26T04:30:00Z",
                "--by", "nightly-pipeline", "--summary", "kb-docs rebuilt with new chunking",
                "--rollback", "pipeline run kb-docs --version 2026-11-20", "--features", "summarizer,search",
                "--id", "kb-rebuild-1126")
    assert r.exit_code == 0, r.stderr
    assert "kb-rebuild-1126" in r.stdout
    [c] = _list(run_cli, cfg)
    assert c == {**c, "id": "kb-rebuild-1126", "kind": "index", "target": "kb-docs",
                 "features": ["summarizer", "search"], "at": "2026-11-26T04:30:00Z", "by": "nightly-pipeline",
                 "summary": "kb-docs rebuilt with new chunking", "source": "recorded",
                 "rollback": "pipeline run kb-docs --version 2026-11-20", "from": "2026-11-20", "to": "2026-11-26"}
    # recording the same id again changes nothing
    r = run_cli("--config", cfg, "changes", "record", "--kind", "index", "--target", "other",
                "--at", "2026-11-26T05:00:00Z", "--id", "kb-rebuild-1126")
    assert r.exit_code == 0 and "already recorded" in r.stdout
    assert [c["target"] for c in _list(run_cli, cfg)] == ["kb-docs"]


def test_record_without_id_gets_a_stable_id_and_every_feature(run_cli, tmp_path):
    cfg = _cfg(tmp_path)
    args = ("--config", cfg, "changes", "record", "--kind", "traffic", "--target", "campaign-black-friday",
            "--at", "2026-11-26T08:00:00Z", "--summary", "marketing campaign: 3x traffic from DE")
    first = run_cli(*args)
    second = run_cli(*args)
    assert first.exit_code == 0 and second.exit_code == 0
    [c] = _list(run_cli, cfg)
    assert c["id"].startswith("rec-") and c["id"] in first.stdout and c["id"] in second.stdout
    assert c["features"] == ["search", "summarizer", "support"] and c["all_features"] is True
    assert c["rollback"] is None
    # --feature keeps a change that affects every feature
    assert len(_list(run_cli, cfg, "--feature", "support")) == 1


def test_record_rejects_bad_kind_and_time(run_cli, tmp_path):
    cfg = _cfg(tmp_path)
    r = run_cli("--config", cfg, "changes", "record", "--kind", "deploy", "--target", "x")
    assert r.exit_code == 2 and "--kind" in r.stderr and "deploy" in r.stderr
    r = run_cli("--config", cfg, "changes", "record", "--kind", "config", "--target", "x", "--at", "yesterday")
    assert r.exit_code == 2 and "--at" in r.stderr and "yesterday" in r.stderr
    assert _list(run_cli, cfg) == []


def test_import_stores_valid_records_and_names_bad_lines(run_cli, tmp_path):
    cfg = _cfg(tmp_path)
    lines = [
        {"id": "chg-1", "ts": "2026-11-26T04:00:00Z", "kind": "config", "target": "feature-flags",
         "features": ["support"], "summary": "flag long-answers on", "rollback": "flags set long-answers off"},
        {"id": "chg-2", "ts": "2026-11-26T05:00:00+01:00", "kind": "deploy", "target": "api"},
        {"id": "chg-3", "ts": "26/11/2026", "kind": "model", "target": "support"},
        {"id": "chg-4", "ts": 1795676400, "kind": "model", "target": "support", "from": "a", "to": "b",
         "ticket": "OPS-7"},
        {"ts": "2026-11-26T04:00:00Z", "kind": "other", "target": "x"},
    ]
    path = tmp_path / "changes.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n{not json\n")
    r = run_cli("--config", cfg, "changes", "import", path)
    assert r.exit_code == 1
    assert f"{path}:2: kind: 'deploy' is not one of" in r.stderr
    assert f"{path}:3: ts:" in r.stderr and "26/11/2026" in r.stderr
    assert f"{path}:5: missing required key: id" in r.stderr
    assert f"{path}:7: not JSON" in r.stderr
    assert "2 change(s) recorded" in r.stderr and "4 rejected" in r.stderr
    got = {c["id"]: c for c in _list(run_cli, cfg)}
    assert sorted(got) == ["chg-1", "chg-4"]
    assert got["chg-1"]["features"] == ["support"] and got["chg-1"]["rollback"] == "flags set long-answers off"
    assert got["chg-4"]["at"] == "2026-11-26T07:00:00Z" and got["chg-4"]["summary"] == "support: a -> b"
    assert got["chg-4"]["details"]["extra"] == {"ticket": "OPS-7"}
    # importing again: nothing new, duplicates ignored
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(lines[0]) + "\n" + json.dumps(lines[3]) + "\n")
    r = run_cli("--config", cfg, "changes", "import", good)
    assert r.exit_code == 0 and "0 change(s) recorded, 2 already there" in r.stderr
    assert len(_list(run_cli, cfg)) == 2


def test_import_json_and_unknown_features(run_cli, tmp_path):
    """--json: one object on stdout for scripts; a change naming a feature the config does not
    declare is stored, with a warning naming the line (it could never be blamed otherwise)."""
    cfg = _cfg(tmp_path)
    path = tmp_path / "changes.jsonl"
    path.write_text(json.dumps({"id": "c1", "ts": "2026-11-26T04:00:00Z", "kind": "config", "target": "flags",
                                "features": ["summariser", "support"]}) + "\n"
                    + json.dumps({"id": "c2", "ts": "2026-11-26T05:00:00Z", "kind": "index", "target": "kb"}) + "\n"
                    + "{not json\n")
    r = run_cli("--config", cfg, "changes", "import", path, "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert out["schema"] == "oncall-ai/changes-import/v1"
    assert (out["read"], out["stored"], out["duplicates"]) == (3, 2, 0)
    assert out["rejected"] == [f"{path}:3: not JSON: Expecting property name enclosed in double quotes (column 2)"]
    assert len(out["warnings"]) == 1 and out["warnings"][0].startswith(f"{path}:1: change 'c1' names feature(s) 'summariser'")
    assert f"warning: {path}:1:" in r.stderr
    assert sorted(c["id"] for c in _list(run_cli, cfg)) == ["c1", "c2"]


def test_import_missing_file_is_a_usage_error(run_cli, tmp_path):
    cfg = _cfg(tmp_path)
    r = run_cli("--config", cfg, "changes", "import", tmp_path / "nope.jsonl")
    assert r.exit_code == 2 and "nope.jsonl" in r.stderr


def test_show_recorded_change_by_id_and_prefix(run_cli, tmp_path):
    cfg = _cfg(tmp_path)
    for i in (1, 2):
        run_cli("--config", cfg, "changes", "record", "--kind", "config", "--target", f"flag-{i}",
                "--at", f"2026-11-2{i}T04:00:00Z", "--id", f"flags-{i}", "--rollback", f"flags undo {i}")
    r = run_cli("--config", cfg, "changes", "show", "flags-2")
    assert r.exit_code == 0 and "flag-2" in r.stdout and "flags undo 2" in r.stdout
    r = run_cli("--config", cfg, "changes", "show", "flags-", )
    assert r.exit_code == 2 and "ambiguous" in r.stderr and "flags-1" in r.stderr and "flags-2" in r.stderr
    r = run_cli("--config", cfg, "changes", "show", "flags-1", "--json")
    doc = json.loads(r.stdout)
    assert doc["schema"] == "oncall-ai/change/v1" and doc["changes"][0]["id"] == "flags-1"


def test_recorded_changes_before_the_window_are_not_listed(run_cli, tmp_path):
    cfg = _cfg(tmp_path)
    run_cli("--config", cfg, "changes", "record", "--kind", "other", "--target", "old", "--at", "2026-11-25T00:00:00Z")
    run_cli("--config", cfg, "changes", "record", "--kind", "other", "--target", "new", "--at", "2026-11-26T03:00:00Z")
    run_cli("--config", cfg, "changes", "record", "--kind", "other", "--target", "future", "--at", AT)
    assert [c["target"] for c in _list(run_cli, cfg)] == ["new"]
