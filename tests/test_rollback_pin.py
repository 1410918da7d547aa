"""`oncall-ai rollback-pin` on a real platform repo, and the minimal YAML edit under it."""

from __future__ import annotations

import json

import pytest
import yaml

from oncall_ai.actions.yaml_edit import coerce_cli_value, replace_scalar
from oncall_ai.errors import DataError
from rollback_helpers import INDEXES, PINS, assert_same, commit, git, sandbox_fixture, snapshot


@pytest.fixture
def sb(tmp_path, request):
    return sandbox_fixture(tmp_path, request)


@pytest.fixture
def bump(sb):
    """A commit that bumps the summarizer pin (the bad change)."""
    return commit(sb.platform, "bump summarizer to 2024-11-20",
                  {"models.yaml": PINS.replace("gpt-4o-2024-08-06", "gpt-4o-2024-11-20")})


def actions(sb):
    return sb.actions()


def test_change_sha_restores_previous_value_keeping_comments_and_layout(sb, bump, run_cli, store_kind):
    r = sb.cli(run_cli, "rollback-pin", "summarizer", "--change", bump[:8], "--yes", "--incident", "INC-9")
    assert r.exit_code == 0, r.stderr
    # byte-for-byte the file before the bump: comments, spacing, quoting and order all kept
    assert (sb.platform / "models.yaml").read_text() == PINS
    assert git(sb.platform, "diff", "--stat", "HEAD~1", "HEAD").startswith("models.yaml | 2")
    body = git(sb.platform, "log", "-1", "--format=%B")
    assert body.splitlines()[0] == "Roll back pin summarizer to gpt-4o-2024-08-06"
    parsed = git(sb.platform, "interpret-trailers", "--parse", input=body).splitlines()
    assert parsed == [f"Rollback-Of: {bump}", "Incident: INC-9", "Rolled-Back-By: oncall-ai"]
    assert git(sb.platform, "status", "--porcelain") == ""
    [doc] = actions(sb)
    assert doc.body["kind"] == "rollback-pin" and doc.body["undoes"] == [bump]
    assert doc.body["pin"]["from"] == "gpt-4o-2024-11-20" and doc.body["pin"]["to"] == "gpt-4o-2024-08-06"
    assert doc.body["before"] == bump and doc.body["after"] == git(sb.platform, "rev-parse", "HEAD")


def test_to_value_sets_the_pin_and_names_the_commit_that_set_it(sb, bump, run_cli):
    r = sb.cli(run_cli, "rollback-pin", "summarizer", "--to", "gpt-4o-2024-05-13", "--yes")
    assert r.exit_code == 0, r.stderr
    assert bump[:10] in r.stdout
    expected = PINS.replace("gpt-4o-2024-08-06", "gpt-4o-2024-05-13")
    assert (sb.platform / "models.yaml").read_text() == expected


def test_quoted_values_keep_their_quotes(sb, run_cli):
    assert sb.cli(run_cli, "rollback-pin", "classifier", "--to", "claude-3-5-haiku", "--yes").exit_code == 0
    assert sb.cli(run_cli, "rollback-pin", "embedder", "--to", "text-embedding-3-large", "--yes").exit_code == 0
    text = (sb.platform / "models.yaml").read_text()
    assert "classifier: 'claude-3-5-haiku'\n" in text
    assert '"embedder": "text-embedding-3-large"\n' in text
    assert text.startswith("# Model pins: one key per feature.\n# Bump with care: see the runbook.\n")


def test_index_version_block_and_flow_styles(sb, run_cli):
    bumped = commit(sb.platform, "rebuild kb-docs", {"indexes.yaml": INDEXES.replace("v41", "v42")})
    r = sb.cli(run_cli, "rollback-pin", "kb-docs", "--file", "indexes", "--change", bumped, "--yes")
    assert r.exit_code == 0, r.stderr
    assert (sb.platform / "indexes.yaml").read_text() == INDEXES
    r = sb.cli(run_cli, "rollback-pin", "faq", "--file", "indexes", "--to", "6", "--yes")
    assert r.exit_code == 0, r.stderr
    text = (sb.platform / "indexes.yaml").read_text()
    assert "faq: {version: 6, owner: support}\n" in text
    assert yaml.safe_load(text)["faq"]["version"] == 6  # stays a number


def test_dry_run_json_changes_nothing(sb, bump, run_cli, store_kind):
    snap = snapshot(sb.platform)
    r = sb.cli(run_cli, "rollback-pin", "summarizer", "--change", bump, "--dry-run", "--json")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["schema"] == "oncall-ai/rollback/v1" and out["applied"] is False
    assert out["plan"]["pin"]["field"] == "summarizer" and out["plan"]["pin"]["line"] == 3
    assert "-summarizer: gpt-4o-2024-11-20   # tone is good on this one" in out["plan"]["diff"]
    assert_same(snap, snapshot(sb.platform))
    assert actions(sb) == []


def test_later_change_to_the_same_key_is_refused(sb, bump, run_cli):
    later = commit(sb.platform, "bump again", {"models.yaml": PINS.replace("gpt-4o-2024-08-06", "gpt-4o-2025-01-01")})
    snap = snapshot(sb.platform)
    r = sb.cli(run_cli, "rollback-pin", "summarizer", "--change", bump, "--yes")
    assert r.exit_code == 1
    assert later[:10] in r.stderr and "--to gpt-4o-2024-08-06" in r.stderr
    assert_same(snap, snapshot(sb.platform))


def test_push_to_review_branch(sb, bump, run_cli, tmp_path, store_kind):
    import subprocess

    remote = tmp_path / "platform.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    git(sb.platform, "remote", "add", "origin", str(remote))
    git(sb.platform, "push", "-q", "origin", "main")
    r = sb.cli(run_cli, "rollback-pin", "summarizer", "--change", bump, "--branch", "pin-rollback", "--push", "--yes")
    assert r.exit_code == 0, r.stderr
    assert git(remote, "show", "pin-rollback:models.yaml") + "\n" == PINS
    assert git(remote, "rev-parse", "main") == bump
    assert (sb.platform / "models.yaml").read_text() != PINS  # checkout untouched
    [doc] = actions(sb)
    assert doc.body["pushed"] == {"remote": "origin", "branch": "pin-rollback", "ok": True}
    assert doc.body["created_branch"] is True and doc.body["after"] == git(remote, "rev-parse", "pin-rollback")


def _unknown_key(sb, bump):
    return ["nope", "--to", "x"], "no pin 'nope'"


def _change_without_key(sb, bump):
    sha = commit(sb.platform, "add ranker", {"models.yaml": PINS + "ranker: r-1\n"})
    return ["ranker", "--change", sha], "did not exist"


def _change_not_touching_key(sb, bump):
    return ["classifier", "--change", bump], "did not change classifier"


def _dirty(sb, bump):
    (sb.platform / "models.yaml").write_text(PINS + "# local edit\n")
    return ["summarizer", "--change", bump], "uncommitted changes"


def _unknown_change(sb, bump):
    return ["summarizer", "--change", "abcdef123456"], "no such commit"


REFUSALS = {
    "unknown key": _unknown_key,
    "key added by the change": _change_without_key,
    "change did not touch key": _change_not_touching_key,
    "dirty tree": _dirty,
    "unknown change": _unknown_change,
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_pin_refusals_change_nothing(sb, bump, run_cli, case):
    args, message = REFUSALS[case](sb, bump)
    snap = snapshot(sb.platform)
    r = sb.cli(run_cli, "rollback-pin", *args, "--yes")
    assert r.exit_code == 1, (r.stdout, r.stderr)
    assert message in r.stderr
    assert_same(snap, snapshot(sb.platform))


@pytest.mark.parametrize("args", [
    ["summarizer", "--yes"],  # neither --to nor --change
    ["summarizer", "--to", "a", "--change", "abcd", "--yes"],  # both
    ["summarizer", "--to", "a", "--file", "judges", "--yes"],
])
def test_pin_usage_errors_exit_2(sb, run_cli, args):
    snap = snapshot(sb.platform)
    r = sb.cli(run_cli, "rollback-pin", *args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert_same(snap, snapshot(sb.platform))


def test_same_value_is_nothing_to_do(sb, run_cli):
    snap = snapshot(sb.platform)
    r = sb.cli(run_cli, "rollback-pin", "summarizer", "--to", "gpt-4o-2024-08-06", "--yes")
    assert r.exit_code == 0 and "nothing to do" in r.stdout
    assert_same(snap, snapshot(sb.platform))


# --- the minimal YAML edit itself ---------------------------------------------------------------

@pytest.mark.parametrize("text, path, value, expected", [
    ("a: 1  # c\nb: x\n", ("b",), "y", "a: 1  # c\nb: y\n"),
    ("a: 'x'   # keep\n", ("a",), "it's", "a: 'it''s'   # keep\n"),
    ('a: "x"\n', ("a",), 'say "hi"', 'a: "say \\"hi\\""\n'),
    ("a: x\n", ("a",), "2024-08-06", 'a: "2024-08-06"\n'),  # plain would be a date: quoted
    ("a: x\n", ("a",), "true", 'a: "true"\n'),
    ("a: x\n", ("a",), "has # hash", "a: has # hash\n".replace("has # hash", '"has # hash"')),
    ("i:\n  version: 40\n  n: 2\n", ("i", "version"), 41, "i:\n  version: 41\n  n: 2\n"),
    ("i: {version: v1, n: 2}\n", ("i", "version"), "v,2", 'i: {version: "v,2", n: 2}\n'),
    ("a: x\r\nb: y\r\n", ("b",), "z", "a: x\r\nb: z\r\n"),  # CRLF kept
])
def test_replace_scalar(text, path, value, expected):
    edit = replace_scalar(text, path, value, where="f.yaml")
    assert edit.new_text == expected
    assert yaml.safe_load(edit.new_text) == {**yaml.safe_load(text), **yaml.safe_load(expected)}


@pytest.mark.parametrize("text, path, message", [
    ("a: &x v1\nb: *x\n", ("b",), "without changing anything else"),  # an alias: would change a too
    ("a: 1\na: 2\n", ("a",), "appears 2 times"),
    ("a: |\n  long\n  text\n", ("a",), "block scalar"),
    ("a: [1, 2]\n", ("a",), "not a single value"),
    ("a: x\n", ("b",), "no key 'b'"),
    ("- a\n", ("a",), "not a mapping"),
    ("a: [\n", ("a",), "invalid YAML"),
])
def test_replace_scalar_refuses_what_it_cannot_edit_safely(text, path, message):
    with pytest.raises(DataError) as e:
        replace_scalar(text, path, "new", where="f.yaml")
    assert message in str(e.value)


@pytest.mark.parametrize("text, current, expected", [
    ("41", 40, 41), ("v41", 40, "v41"), ("2024-08-06", "x", "2024-08-06"), ("1.5", 1.0, 1.5), ("2", 1.5, 2.0),
])
def test_cli_values_keep_the_keys_type(text, current, expected):
    value = coerce_cli_value(text, current)
    assert value == expected and type(value) is type(expected)
