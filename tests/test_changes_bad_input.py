"""Bad input for `oncall-ai changes`: a clear message naming what and where, exit 2 for
configuration errors and 1 for data problems, and every other source still reported."""

from __future__ import annotations

import json

from changes_helpers import GitRepo, write_config

AT = "2026-11-27T03:00:00Z"


def _platform(tmp_path, files_by_commit):
    repo = GitRepo(tmp_path / "platform")
    shas = [repo.commit(files, msg, at) for files, msg, at in files_by_commit]
    return repo, shas


def _prompts(tmp_path):
    repo = GitRepo(tmp_path / "prompts")
    repo.commit({"p/a.md": "1\n"}, "init", "2026-11-20T00:00:00Z")
    sha = repo.commit({"p/a.md": "2\n"}, "prompt change", "2026-11-26T12:00:00Z")
    return repo, sha


def _run(run_cli, cfg, *args):
    r = run_cli("--config", cfg, "changes", "list", "--at", AT, "--json", *args)
    assert "Traceback" not in r.stderr
    return r, json.loads(r.stdout)


def test_missing_prompt_repo_is_a_config_error_and_pins_are_still_listed(run_cli, tmp_path):
    _, (_, pin) = _platform(tmp_path, [({"models.yaml": "f: m1\n"}, "init", "2026-11-20T00:00:00Z"),
                                       ({"models.yaml": "f: m2\n"}, "pin", "2026-11-26T10:00:00Z")])
    cfg = write_config(tmp_path, {"prompt_repo": "no-such-folder", "pins": {"repo": "platform", "file": "models.yaml"},
                                  "features": {"f": {"prompts": ["p/**"]}}})
    r, doc = _run(run_cli, cfg)
    assert r.exit_code == 2
    assert "prompt_repo" in r.stderr and "no-such-folder" in r.stderr and "does not exist" in r.stderr
    assert [(c["id"], c["target"]) for c in doc["changes"]] == [(pin, "f")]
    assert any("no-such-folder" in p for p in doc["problems"])
    # the text timeline too
    t = run_cli("--config", cfg, "changes", "list", "--at", AT)
    assert t.exit_code == 2 and "f: m1 -> m2" in t.stdout and "no-such-folder" in t.stderr


def test_a_folder_that_is_not_git_is_a_config_error(run_cli, tmp_path):
    (tmp_path / "platform").mkdir()
    (tmp_path / "platform" / "models.yaml").write_text("f: m1\n")
    _, sha = _prompts(tmp_path)
    cfg = write_config(tmp_path, {"prompt_repo": "prompts", "pins": {"repo": "platform", "file": "models.yaml"},
                                  "features": {"f": {"prompts": ["p/**"]}}})
    r, doc = _run(run_cli, cfg)
    assert r.exit_code == 2
    assert "pins.repo" in r.stderr and "not a git repo" in r.stderr and str(tmp_path / "platform") in r.stderr
    assert [c["id"] for c in doc["changes"]] == [sha]


def test_a_pins_file_missing_from_its_repo_is_a_config_error(run_cli, tmp_path):
    _platform(tmp_path, [({"other.yaml": "x: 1\n"}, "init", "2026-11-20T00:00:00Z")])
    cfg = write_config(tmp_path, {"pins": {"repo": "platform", "file": "models.yaml"}})
    r, _ = _run(run_cli, cfg)
    assert r.exit_code == 2 and "models.yaml" in r.stderr and "pins.file" in r.stderr


def test_pins_yaml_invalid_at_one_commit_is_reported_not_fatal(run_cli, tmp_path):
    _, (_, good, bad, fixed) = _platform(tmp_path, [
        ({"models.yaml": "# pins\nf: m1\ng: m1\n"}, "init", "2026-11-20T00:00:00Z"),
        ({"models.yaml": "# pins\nf: m2   # moved\ng: m1\n"}, "f to m2", "2026-11-26T08:00:00Z"),
        ({"models.yaml": "# pins\nf: m2\ng: [m1\n"}, "oops", "2026-11-26T09:00:00Z"),
        ({"models.yaml": "# pins\nf: m2\ng: m3\n"}, "g to m3, fix the file", "2026-11-26T10:00:00Z"),
    ])
    _, prompt_sha = _prompts(tmp_path)
    cfg = write_config(tmp_path, {"prompt_repo": "prompts", "pins": {"repo": "platform", "file": "models.yaml"},
                                  "features": {"f": {"prompts": ["p/**"]}, "g": {}}})
    r, doc = _run(run_cli, cfg)
    assert r.exit_code == 1
    assert "models.yaml" in r.stderr and bad[:12] in r.stderr and "line" in r.stderr and "invalid YAML" in r.stderr
    rows = [(c["id"], c["target"], c["from"], c["to"]) for c in doc["changes"]]
    assert rows == [
        (good, "f", "m1", "m2"),
        (bad, "models.yaml", None, None),
        (fixed, "g", "m1", "m3"),  # compared with the last version that parsed
        (prompt_sha, "p/a.md", None, None),
    ]
    assert "no longer parses" in doc["changes"][1]["summary"]


def test_pins_file_that_is_not_a_mapping(run_cli, tmp_path):
    _platform(tmp_path, [({"models.yaml": "f: m1\n"}, "init", "2026-11-20T00:00:00Z"),
                         ({"models.yaml": "- f\n- m2\n"}, "list", "2026-11-26T10:00:00Z")])
    cfg = write_config(tmp_path, {"pins": {"repo": "platform", "file": "models.yaml"}})
    r, doc = _run(run_cli, cfg)
    assert r.exit_code == 1 and "not a mapping" in r.stderr
    assert len(doc["changes"]) == 1


def _shallow_clone(tmp_path):
    origin = GitRepo(tmp_path / "origin")
    origin.commit({"p/a.md": "0\n"}, "old", "2026-11-20T00:00:00Z")
    origin.commit({"p/a.md": "1\n"}, "in the window, before the cut", "2026-11-26T06:00:00Z")
    cut = origin.commit({"p/a.md": "2\n"}, "the cut", "2026-11-26T12:00:00Z")
    last = origin.commit({"p/a.md": "3\n"}, "after the cut", "2026-11-26T18:00:00Z")
    GitRepo(tmp_path, init=False).git("clone", "-q", "--depth", "2", f"file://{origin.path}", "prompts")
    return cut, last


def test_shallow_clone_missing_the_window_start(run_cli, tmp_path):
    cut, last = _shallow_clone(tmp_path)
    _, (_, pin) = _platform(tmp_path, [({"models.yaml": "f: m1\n"}, "init", "2026-11-20T00:00:00Z"),
                                       ({"models.yaml": "f: m2\n"}, "pin", "2026-11-26T10:00:00Z")])
    cfg = write_config(tmp_path, {"prompt_repo": "prompts", "pins": {"repo": "platform", "file": "models.yaml"},
                                  "features": {"f": {"prompts": ["p/**"]}}})
    r, doc = _run(run_cli, cfg)
    assert r.exit_code == 1
    assert "shallow clone" in r.stderr and "cut at 2026-11-26T12:00:00Z" in r.stderr
    assert "fetch --unshallow" in r.stderr
    ids = [c["id"] for c in doc["changes"]]
    assert pin in ids and last in ids  # what the clone has, and the other sources, are still listed
    # a window that starts after the cut is complete: no problem
    r = run_cli("--config", cfg, "changes", "list", "--at", AT, "--since", "2026-11-26T13:00:00Z", "--json")
    assert r.exit_code == 0, r.stderr
    assert [c["id"] for c in json.loads(r.stdout)["changes"]] == [last]


def test_unknown_config_key_is_exit_2(run_cli, tmp_path):
    cfg = write_config(tmp_path, {"prompt_rep": "prompts"})
    r = run_cli("--config", cfg, "changes", "list")
    assert r.exit_code == 2 and "prompt_rep" in r.stderr and "Traceback" not in r.stderr


def test_until_before_since_is_a_usage_error(run_cli, tmp_path):
    cfg = write_config(tmp_path, {})
    r = run_cli("--config", cfg, "changes", "list", "--since", "2026-11-27T00:00:00Z", "--until", "2026-11-26T00:00:00Z")
    assert r.exit_code == 2 and "--since" in r.stderr
    r = run_cli("--config", cfg, "changes", "list", "--since", "yesterday")
    assert r.exit_code == 2 and "yesterday" in r.stderr
