"""Smaller pieces of the change timeline: globs, key-level YAML diffs, footprints, traffic switch
detection edge cases, colour, stdin import."""

from __future__ import annotations

import json

import pytest

from changes_helpers import GitRepo, add_events, traffic, write_config
from oncall_ai.sources.git_prompts import glob_match
from oncall_ai.sources.platform_files import key_changes, parse_yaml_text
from oncall_ai.timeutil import parse_time_ms

AT = "2026-11-27T03:00:00Z"
HOUR = 3_600_000


@pytest.mark.parametrize("pattern,path,expected", [
    ("prompts/summarizer/**", "prompts/summarizer/system.md", True),
    ("prompts/summarizer/**", "prompts/summarizer/examples/a/b.md", True),
    ("prompts/summarizer/**", "prompts/summarizer-v2/system.md", False),
    ("prompts/*.md", "prompts/a.md", True),
    ("prompts/*.md", "prompts/x/a.md", False),
    ("prompts/**/*.md", "prompts/a.md", True),
    ("prompts/**/*.md", "prompts/x/y/a.md", True),
    ("prompts/**/*.md", "prompts/x/a.txt", False),
    ("**/system.md", "system.md", True),
    ("**/system.md", "a/b/system.md", True),
    ("prompts/summarizer", "prompts/summarizer/system.md", True),  # a folder: everything under it
    ("prompts/summarizer/", "prompts/summarizer/system.md", True),
    ("./prompts/s?.md", "prompts/s1.md", True),
    ("prompts/s?.md", "prompts/s12.md", False),
    ("prompts/[ab].md", "prompts/b.md", True),
    ("prompts/[!ab].md", "prompts/b.md", False),
    ("prompts/with space/*.md", "prompts/with space/x.md", True),
    ("prompts/a+b(1).md", "prompts/a+b(1).md", True),
])
def test_prompt_globs(pattern, path, expected):
    assert glob_match(pattern, path) is expected


def test_key_changes_flatten_nested_values_and_keep_file_order():
    old, _ = parse_yaml_text("a: 1\nkb:\n  version: 2026-11-20\n  emb: {model: e3, dim: 1024}\nold: x\n", "f")
    new, _ = parse_yaml_text("kb:\n  version: 2026-11-26\n  emb: {model: e4, dim: 1024}\na: 1\nnew: [1, 2]\n", "f")
    assert key_changes(old, new) == [
        ("kb", ["kb.version: 2026-11-20 -> 2026-11-26", "kb.emb.model: e3 -> e4"]),
        ("new", ["new: (none) -> [1, 2]"]),
        ("old", ["old: x -> (none)"]),
    ]
    assert key_changes(new, new) == []


def test_yaml_errors_name_the_line():
    data, err = parse_yaml_text("a: 1\nb: [1, 2\nc: 3\n", "models.yaml at commit abc")
    assert data is None and err.startswith("models.yaml at commit abc: line ") and "invalid YAML" in err
    data, err = parse_yaml_text("- a\n- b\n", "models.yaml")
    assert data is None and "not a mapping" in err
    assert parse_yaml_text("# only comments\n", "f") == ({}, None)


def test_unmapped_pin_has_no_footprint_and_unconfigured_features_mean_every_feature(run_cli, tmp_path):
    platform = GitRepo(tmp_path / "platform")
    platform.commit({"models.yaml": "summarizer: m1\nembeddings: e1\n"}, "init", "2026-11-20T00:00:00Z")
    sha = platform.commit({"models.yaml": "summarizer: m2\nembeddings: e2\n"}, "both", "2026-11-26T10:00:00Z")
    cfg = write_config(tmp_path, {"pins": {"repo": "platform", "file": "models.yaml"},
                                  "features": {"summarizer": {}, "support": {"model": "support-pin"}}})
    r = run_cli("--config", cfg, "changes", "list", "--at", AT, "--json")
    got = {c["target"]: c for c in json.loads(r.stdout)["changes"]}
    assert got["summarizer"]["features"] == ["summarizer"] and got["summarizer"]["id"] == sha
    assert got["embeddings"]["footprint"] == "none" and got["embeddings"]["features"] == []
    assert "no configured feature uses pin embeddings" in got["embeddings"]["summary"]
    r = run_cli("--config", cfg, "changes", "list", "--at", AT, "--json", "--feature", "support")
    assert json.loads(r.stdout)["changes"] == []

    bare = write_config(tmp_path, {"pins": {"repo": "platform", "file": "models.yaml"}})
    r = run_cli("--config", bare, "changes", "list", "--at", AT, "--json")
    assert {c["footprint"] for c in json.loads(r.stdout)["changes"]} == {"all"}


def test_deleted_pins_file_and_renamed_prompt(run_cli, tmp_path):
    platform = GitRepo(tmp_path / "platform")
    platform.commit({"models.yaml": "f: m1\n", "README.md": "x\n"}, "init", "2026-11-20T00:00:00Z")
    gone = platform.commit({"models.yaml": None}, "drop pins", "2026-11-26T10:00:00Z")
    readme = platform.commit({"README.md": "y\n"}, "readme", "2026-11-26T11:00:00Z")
    prompts = GitRepo(tmp_path / "prompts")
    prompts.commit({"p/f/a.md": "hello there, a long enough prompt to be detected as renamed\n"}, "init",
                   "2026-11-20T00:00:00Z")
    prompts.git("mv", "p/f/a.md", "p/f/b.md")
    moved = prompts.commit({}, "rename", "2026-11-26T12:00:00Z")
    cfg = write_config(tmp_path, {"prompt_repo": "prompts", "pins": {"repo": "platform", "file": "models.yaml"},
                                  "features": {"f": {"prompts": ["p/f/**"]}}})
    r = run_cli("--config", cfg, "changes", "list", "--at", AT, "--json", "--diff")
    doc = json.loads(r.stdout)
    rows = {(c["id"], c["kind"]): c for c in doc["changes"]}
    assert rows[(gone, "model")]["summary"].startswith("f: m1 -> (none)")
    assert rows[(readme, "config")]["footprint"] == "none"  # a README next to models.yaml
    assert rows[(moved, "prompt")]["target"] == "p/f/b.md"
    assert "rename from p/f/a.md" in rows[(moved, "prompt")]["diff"]


def test_empty_prompt_repo_is_reported(run_cli, tmp_path):
    GitRepo(tmp_path / "prompts")
    cfg = write_config(tmp_path, {"prompt_repo": "prompts", "features": {"f": {"prompts": ["p/**"]}}})
    r = run_cli("--config", cfg, "changes", "list", "--at", AT)
    assert r.exit_code == 1 and "no commits yet" in r.stderr and "Traceback" not in r.stderr


def test_glob_that_matches_nothing_is_noted(run_cli, tmp_path):
    prompts = GitRepo(tmp_path / "prompts")
    prompts.commit({"p/a.md": "1\n"}, "init", "2026-11-26T10:00:00Z")
    cfg = write_config(tmp_path, {"prompt_repo": "prompts", "features": {"f": {"prompts": ["prompt/**"]}}})
    r = run_cli("--config", cfg, "changes", "list", "--at", AT)
    assert "features.f.prompts: 'prompt/**' matches no file" in r.stderr


def test_diff_is_coloured_on_a_terminal(run_cli, tmp_path, monkeypatch):
    prompts = GitRepo(tmp_path / "prompts")
    prompts.commit({"p/a.md": "old line\n"}, "init", "2026-11-20T10:00:00Z")
    prompts.commit({"p/a.md": "new line\n"}, "edit", "2026-11-26T10:00:00Z")
    cfg = write_config(tmp_path, {"prompt_repo": "prompts", "features": {"f": {"prompts": ["p/**"]}}})
    import oncall_ai.report.changes as rc

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setattr(rc, "color_enabled", lambda stream=None: True)
    r = run_cli("--config", cfg, "changes", "list", "--at", AT, "--diff")
    assert "\x1b[32m+new line" in r.stdout and "\x1b[31m-old line" in r.stdout


def test_import_from_stdin(run_cli, tmp_path):
    cfg = write_config(tmp_path, {"store": "oncall-ai.db"})
    line = json.dumps({"id": "c1", "ts": "2026-11-26T10:00:00Z", "kind": "other", "target": "t", "features": "f"})
    r = run_cli("--config", cfg, "changes", "import", "-", input=line + "\n")
    assert r.exit_code == 0, r.stderr
    r = run_cli("--config", cfg, "changes", "list", "--at", AT, "--json")
    assert [(c["id"], c["features"]) for c in json.loads(r.stdout)["changes"]] == [("c1", ["f"])]


def _collect(cfg_path, start, end):
    from oncall_ai.config import load_config
    from oncall_ai.sources.changes import collect_changes
    from oncall_ai.store import open_store

    cfg = load_config(cfg_path)
    store = open_store(cfg.store, config=cfg)
    try:
        return collect_changes(cfg, store, start, end)
    finally:
        store.close()


def test_a_switch_before_the_window_is_not_listed_and_a_rollback_is(tmp_path):
    cfg = write_config(tmp_path, {"store": "oncall-ai.db", "features": {"f": {}}})
    at = parse_time_ms(AT)
    before, back = at - 30 * HOUR, at - 5 * HOUR  # moved to m2 before the window, back to m1 in it
    add_events(cfg, traffic("f", at - 48 * HOUR, at, every_ms=30_000,
                            version_at=lambda t, i: "m2" if before <= t < back else "m1"))
    cs = _collect(cfg, at - 24 * HOUR, at)
    [c] = cs.changes
    assert (c.from_value, c.to_value, c.provider_side) == ("m2", "m1", True)
    assert abs(c.at - back) <= c.details["traffic"]["resolution_ms"]


def test_untagged_and_single_version_traffic_is_quiet(tmp_path):
    cfg = write_config(tmp_path, {"store": "oncall-ai.db", "features": {"f": {}}})
    at = parse_time_ms(AT)
    add_events(cfg, traffic("f", at - 30 * HOUR, at, every_ms=60_000, version_at=lambda t, i: None if i % 3 else "m1"))
    assert _collect(cfg, at - 24 * HOUR, at).changes == []


def test_collect_changes_without_config_or_store():
    from oncall_ai.sources.changes import collect_changes

    cs = collect_changes(None, None, 0, 1)
    assert cs.changes == [] and cs.exit_code == 0 and cs.notes


def test_empty_commits_are_listed_with_no_footprint(run_cli, tmp_path):
    platform = GitRepo(tmp_path / "platform")
    platform.commit({"indexes.yaml": "kb: {version: 3}\n"}, "init", "2026-11-20T00:00:00Z")
    rebuild = platform.commit({"indexes.yaml": "kb: {version: 3}\n"}, "kb: rebuild 3 (same version)",
                              "2026-11-26T10:00:00Z")
    prompts = GitRepo(tmp_path / "prompts")
    prompts.commit({"p/a.md": "1\n"}, "init", "2026-11-20T00:00:00Z")
    empty = prompts.commit({}, "trigger a deploy", "2026-11-26T11:00:00Z")
    cfg = write_config(tmp_path, {"prompt_repo": "prompts", "indexes": {"repo": "platform", "file": "indexes.yaml"},
                                  "features": {"f": {"prompts": ["p/**"], "indexes": ["kb"]}}})
    r = run_cli("--config", cfg, "changes", "list", "--at", AT, "--json")
    rows = [(c["id"], c["kind"], c["footprint"]) for c in json.loads(r.stdout)["changes"]]
    assert rows == [(rebuild, "config", "none"), (empty, "prompt", "none")]
