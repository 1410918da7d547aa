"""`oncall-ai rollback-prompt` end to end on real git repos (and a bare remote) in tmp_path."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest
import yaml

from rollback_helpers import SYSTEM_V1, assert_same, commit, git, sandbox_fixture, snapshot, write

SYS = "prompts/summarizer/system.md"


@pytest.fixture
def sb(tmp_path, request):
    return sandbox_fixture(tmp_path, request)


@pytest.fixture
def bad(sb):
    """A bad prompt commit (that also touches a non-prompt file), then a later unrelated edit."""
    terse = SYSTEM_V1.replace("Be accurate.", "Be terse.")
    sha = commit(sb.prompts, "make summaries terser", {SYS: terse, "README.md": "readme v2\n"})
    commit(sb.prompts, "cite inline", {SYS: terse.replace("Cite sources.", "Cite sources inline.")})
    return sha


def actions(sb):
    return sb.actions()


def trailers(repo, rev="HEAD"):
    body = git(repo, "log", "-1", "--format=%B", rev)
    out = git(repo, "interpret-trailers", "--parse", input=body)
    return [tuple(line.split(": ", 1)) for line in out.splitlines()]


# --- undo ----------------------------------------------------------------------------------

def test_undo_bad_commit_keeps_later_edit_and_non_prompt_files(sb, bad, run_cli, store_kind):
    before_head = git(sb.prompts, "rev-parse", "HEAD")
    r = sb.cli(run_cli, "rollback-prompt", bad, "--yes", "--incident", "INC-42")  # the form triage prints
    assert r.exit_code == 0, r.stderr
    text = (sb.prompts / SYS).read_text()
    assert "Be accurate." in text and "Be terse." not in text  # the bad change is undone
    assert "Cite sources inline." in text  # the later unrelated edit stays
    assert (sb.prompts / "README.md").read_text() == "readme v2\n"  # not a prompt file: left alone
    assert git(sb.prompts, "status", "--porcelain") == ""
    # a new commit on top, history untouched
    assert git(sb.prompts, "rev-parse", "HEAD~1") == before_head
    new = git(sb.prompts, "rev-parse", "HEAD")
    assert git(sb.prompts, "diff", "--name-only", "HEAD~1", "HEAD") == SYS
    assert trailers(sb.prompts) == [("Rollback-Of", bad), ("Incident", "INC-42"), ("Rolled-Back-By", "oncall-ai")]
    assert new in r.stdout and "README.md" in r.stdout  # the plan named what it leaves alone
    # the store has the action
    docs = actions(sb)
    assert [d.id for d in docs] == [f"rollback-prompt:{new}"]
    body = docs[0].body
    assert body["kind"] == "rollback-prompt" and body["target"] == bad and body["incident"] == "INC-42"
    assert body["before"] == before_head and body["after"] == new and body["undoes"] == [bad]
    assert body["repo"] == str(sb.prompts.resolve()) and body["pushed"] is None
    assert body["by"] == "Test Committer <committer@example.com>" and body["at"].endswith("Z")


def test_abbreviated_sha_and_rerun_is_nothing_to_do(sb, bad, run_cli):
    assert sb.cli(run_cli, "rollback-prompt", bad[:8], "--yes").exit_code == 0
    head = git(sb.prompts, "rev-parse", "HEAD")
    snap = snapshot(sb.prompts)
    again = sb.cli(run_cli, "rollback-prompt", bad, "--yes")
    assert again.exit_code == 0
    assert "nothing to do" in again.stdout and head[:10] in again.stdout  # names the earlier rollback
    assert_same(snap, snapshot(sb.prompts))


def test_rollback_of_a_rollback_restores_the_change(sb, bad, run_cli, store_kind):
    terse_text = (sb.prompts / SYS).read_text()
    assert sb.cli(run_cli, "rollback-prompt", bad, "--yes").exit_code == 0
    rollback = git(sb.prompts, "rev-parse", "HEAD")
    assert (sb.prompts / SYS).read_text() != terse_text
    r = sb.cli(run_cli, "rollback-prompt", rollback, "--yes")
    assert r.exit_code == 0, r.stderr
    assert (sb.prompts / SYS).read_text() == terse_text
    assert git(sb.prompts, "log", "-1", "--format=%s") == 'Reapply "make summaries terser"'
    assert ("Rollback-Of", rollback) in trailers(sb.prompts)
    assert len(actions(sb)) == 2


def test_path_target_undoes_most_recent_commit_touching_it(sb, run_cli):
    commit(sb.prompts, "examples v2", {"prompts/summarizer/examples.md": "example two\n"})
    commit(sb.prompts, "classifier tweak", {"prompts/classifier/system.md": "Classify carefully.\n"})
    r = sb.cli(run_cli, "rollback-prompt", "prompts/summarizer/examples.md", "--yes")
    assert r.exit_code == 0, r.stderr
    assert "most recent commit that touched prompts/summarizer/examples.md" in r.stdout
    assert (sb.prompts / "prompts/summarizer/examples.md").read_text() == "example one\n"
    assert (sb.prompts / "prompts/classifier/system.md").read_text() == "Classify carefully.\n"


def test_feature_target_only_touches_that_features_prompts(sb, run_cli):
    both = commit(sb.prompts, "tweak both", {SYS: SYSTEM_V1 + "New rule.\n", "prompts/classifier/system.md": "Classify v2.\n"})
    r = sb.cli(run_cli, "rollback-prompt", "summarizer", "--yes")
    assert r.exit_code == 0, r.stderr
    assert both[:10] in r.stdout and "feature summarizer" in r.stdout
    assert (sb.prompts / SYS).read_text() == SYSTEM_V1
    assert (sb.prompts / "prompts/classifier/system.md").read_text() == "Classify v2.\n"  # other feature kept


def test_path_target_whose_last_commit_is_a_rollback_is_refused(sb, bad, run_cli):
    assert sb.cli(run_cli, "rollback-prompt", bad, "--yes").exit_code == 0
    snap = snapshot(sb.prompts)
    r = sb.cli(run_cli, "rollback-prompt", SYS, "--yes")
    assert r.exit_code == 1
    assert "itself a rollback" in r.stderr
    assert_same(snap, snapshot(sb.prompts))


def test_undo_recreates_a_deleted_prompt(sb, run_cli):
    gone = commit(sb.prompts, "drop examples", {"prompts/summarizer/examples.md": None})
    r = sb.cli(run_cli, "rollback-prompt", gone, "--yes")
    assert r.exit_code == 0, r.stderr
    assert (sb.prompts / "prompts/summarizer/examples.md").read_text() == "example one\n"


def test_undo_of_a_commit_that_added_files_deletes_them(sb, run_cli):
    added = commit(sb.prompts, "add style guide", {"prompts/summarizer/style/guide.md": "be nice\n"})
    r = sb.cli(run_cli, "rollback-prompt", added, "--yes")
    assert r.exit_code == 0, r.stderr
    assert not (sb.prompts / "prompts/summarizer/style").exists()


# --- --to -------------------------------------------------------------------------------------

def test_to_rev_restores_path_content(sb, bad, run_cli):
    r = sb.cli(run_cli, "rollback-prompt", SYS, "--to", sb.base[:9], "--yes")
    assert r.exit_code == 0, r.stderr
    assert (sb.prompts / SYS).read_text() == SYSTEM_V1  # both later edits are gone: content at REV
    assert (sb.prompts / "README.md").read_text() == "readme v2\n"
    t = trailers(sb.prompts)
    assert ("Rollback-To", sb.base) in t and ("Rollback-Of", bad) in t


def test_to_rev_for_feature_removes_files_added_after_rev(sb, run_cli):
    commit(sb.prompts, "add few-shot", {"prompts/summarizer/fewshot.md": "shots\n", SYS: "changed\n"})
    r = sb.cli(run_cli, "rollback-prompt", "summarizer", "--to", sb.base, "--dry-run")
    assert r.exit_code == 0 and "D prompts/summarizer/fewshot.md" in r.stdout
    assert sb.cli(run_cli, "rollback-prompt", "summarizer", "--to", sb.base, "--yes").exit_code == 0
    assert not (sb.prompts / "prompts/summarizer/fewshot.md").exists()
    assert (sb.prompts / SYS).read_text() == SYSTEM_V1


def test_to_rev_already_there_is_nothing_to_do(sb, run_cli):
    snap = snapshot(sb.prompts)
    r = sb.cli(run_cli, "rollback-prompt", SYS, "--to", "HEAD", "--yes")
    assert r.exit_code == 0 and "nothing to do" in r.stdout
    assert_same(snap, snapshot(sb.prompts))


# --- plan, dry run, confirmation, json ---------------------------------------------------------

def test_dry_run_changes_nothing_and_shows_the_diff(sb, bad, run_cli, store_kind):
    snap = snapshot(sb.prompts)
    r = sb.cli(run_cli, "rollback-prompt", bad, "--dry-run", "--push")
    assert r.exit_code == 0, r.stderr
    assert_same(snap, snapshot(sb.prompts))
    assert "-Be terse.\n+Be accurate." in r.stdout
    assert "push         yes: main -> origin" in r.stdout
    assert "Rollback-Of: " + bad in r.stdout
    assert actions(sb) == []


def test_without_terminal_and_without_yes_refuses(sb, bad, run_cli):
    snap = snapshot(sb.prompts)
    r = sb.cli(run_cli, "rollback-prompt", bad)
    assert r.exit_code == 1
    assert "--yes" in r.stderr and "Be accurate." in r.stdout  # the plan was shown first
    assert_same(snap, snapshot(sb.prompts))


@pytest.mark.parametrize("answer, applied", [("y\n", True), ("n\n", False)])
def test_terminal_confirmation(sb, bad, run_cli, monkeypatch, answer, applied):
    import oncall_ai.commands.rollback as cmd

    monkeypatch.setattr(cmd, "_can_ask", lambda: True)
    snap = snapshot(sb.prompts)
    r = sb.cli(run_cli, "rollback-prompt", bad, input=answer)
    assert "Apply this rollback" in r.stderr
    assert r.exit_code == (0 if applied else 1)
    if applied:
        assert "Be accurate." in (sb.prompts / SYS).read_text()
    else:
        assert_same(snap, snapshot(sb.prompts))


def test_json_plan_and_result(sb, bad, run_cli, store_kind):
    r = sb.cli(run_cli, "rollback-prompt", bad, "--dry-run", "--json")
    assert r.exit_code == 0
    out = json.loads(r.stdout)
    assert out["schema"] == "oncall-ai/rollback/v1"
    assert out["applied"] is False and out["commit"] is None and out["pushed"] is None
    plan = out["plan"]
    assert plan["undoes"][0]["sha"] == bad and plan["changes"] == [{"status": "M", "path": SYS}]
    assert plan["left_alone"] == ["README.md"] and plan["branch"] == "main" and "+Be accurate." in plan["diff"]

    r = sb.cli(run_cli, "rollback-prompt", bad, "--yes", "--json", "--push")
    assert r.exit_code == 0, r.stderr
    out = json.loads(r.stdout)
    head = git(sb.prompts, "rev-parse", "HEAD")
    assert out["applied"] is True and out["commit"] == head
    assert out["pushed"] == {"remote": "origin", "branch": "main", "ok": True}
    assert out["recorded"] == f"rollback-prompt:{head}"


def test_help_explains_safety(run_cli):
    r = run_cli("rollback-prompt", "--help")
    assert r.exit_code == 0
    text = " ".join(r.stdout.split())
    for phrase in ("--dry-run", "--yes", "uncommitted changes", "detached HEAD", "never forced", "conflict"):
        assert phrase in text


# --- push ---------------------------------------------------------------------------------------

def test_push_to_a_new_review_branch_leaves_checkout_alone(sb, bad, run_cli, store_kind):
    git(sb.prompts, "push", "-q", "origin", "main")
    remote_main = git(sb.remote, "rev-parse", "main")
    local_main = git(sb.prompts, "rev-parse", "main")
    work_before = (sb.prompts / SYS).read_text()
    r = sb.cli(run_cli, "rollback-prompt", bad, "--branch", "rollback/inc-42", "--push", "--yes")
    assert r.exit_code == 0, r.stderr
    pushed = git(sb.remote, "rev-parse", "rollback/inc-42")
    assert pushed == git(sb.prompts, "rev-parse", "rollback/inc-42")
    assert git(sb.remote, "rev-parse", f"{pushed}~1") == local_main
    assert git(sb.remote, "rev-parse", "main") == remote_main  # only the named branch was pushed
    assert git(sb.prompts, "rev-parse", "main") == local_main  # checkout and current branch untouched
    assert git(sb.prompts, "symbolic-ref", "HEAD") == "refs/heads/main"
    assert (sb.prompts / SYS).read_text() == work_before
    assert actions(sb)[0].body["pushed"] == {"remote": "origin", "branch": "rollback/inc-42", "ok": True}


def test_push_is_never_forced_and_a_rejected_push_keeps_the_local_commit(sb, bad, run_cli, tmp_path, store_kind):
    git(sb.prompts, "push", "-q", "origin", "main")
    # someone else pushes to main meanwhile
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(sb.remote), str(other)], check=True)
    theirs = commit(other, "someone else's change", {"notes.txt": "hi\n"})
    git(other, "push", "-q", "origin", "main")
    r = sb.cli(run_cli, "rollback-prompt", bad, "--push", "origin", "--yes")
    assert r.exit_code == 1
    assert git(sb.remote, "rev-parse", "main") == theirs  # nothing overwritten on the remote
    local = git(sb.prompts, "rev-parse", "main")
    assert trailers(sb.prompts)[0] == ("Rollback-Of", bad)  # the rollback commit stays locally
    assert "rejected" in r.stderr and "Never force-push" in r.stderr and "git pull --no-rebase origin main" in r.stderr
    body = actions(sb)[0].body
    assert body["after"] == local and body["pushed"]["ok"] is False


def test_push_option_parsing():
    from oncall_ai.commands.rollback import _expand_push

    assert _expand_push(["abc", "--push"]) == ["abc", "--push=origin"]
    assert _expand_push(["abc", "--push", "--yes"]) == ["abc", "--push=origin", "--yes"]
    assert _expand_push(["abc", "--push", "upstream"]) == ["abc", "--push", "upstream"]
    assert _expand_push(["--push", "abc", "--yes"]) == ["abc", "--push=origin", "--yes"]
    assert _expand_push(["--push", "up", "abc"]) == ["--push", "up", "abc"]
    assert _expand_push(["--to", "v1", "--push", "k"]) == ["--to", "v1", "k", "--push=origin"]


# --- refusals: exit 1 and the repository byte-for-byte unchanged ---------------------------------

def _conflicting_side_branch(repo):
    git(repo, "checkout", "-q", "-b", "side")
    commit(repo, "side readme", {"README.md": "side\n"})
    git(repo, "checkout", "-q", "main")
    commit(repo, "main readme", {"README.md": "main\n"})


def _merge_in_progress(sb, bad):
    _conflicting_side_branch(sb.prompts)
    git(sb.prompts, "merge", "side", check=False)
    return bad


def _rebase_in_progress(sb, bad):
    _conflicting_side_branch(sb.prompts)
    git(sb.prompts, "rebase", "side", check=False)
    return bad


def _cherry_pick_in_progress(sb, bad):
    _conflicting_side_branch(sb.prompts)
    git(sb.prompts, "cherry-pick", "side", check=False)
    return bad


def _revert_in_progress(sb, bad):
    commit(sb.prompts, "readme again", {"README.md": "readme v3\n"})
    git(sb.prompts, "revert", "--no-edit", bad, check=False)
    return bad


def _dirty(sb, bad):
    write(sb.prompts, "README.md", "uncommitted\n")
    return bad


def _staged(sb, bad):
    write(sb.prompts, "prompts/classifier/new.md", "staged\n")
    git(sb.prompts, "add", "prompts/classifier/new.md")
    return bad


def _detached(sb, bad):
    git(sb.prompts, "checkout", "-q", "--detach", "HEAD")
    return bad


def _unknown_sha(sb, bad):
    return "deadbeef1234"


def _no_prompt_files(sb, bad):
    return commit(sb.prompts, "code only", {"src/app.py": "print('bye')\n", "README.md": "r3\n"})


def _outside_dotdot(sb, bad):
    (sb.root / "outside.md").write_text("secret\n")
    return "../outside.md"


def _outside_absolute(sb, bad):
    (sb.root / "outside.md").write_text("secret\n")
    return str(sb.root / "outside.md")


def _symlinked_folder(sb, bad):
    (sb.root / "elsewhere").mkdir()
    (sb.root / "elsewhere" / "x.md").write_text("x\n")
    os.symlink(sb.root / "elsewhere", sb.prompts / "prompts" / "summarizer" / "link")
    return "prompts/summarizer/link/x.md"


def _symlink_out(sb, bad):
    (sb.root / "target.md").write_text("x\n")
    os.symlink(sb.root / "target.md", sb.prompts / "prompts" / "summarizer" / "evil.md")
    return "prompts/summarizer/evil.md"


def _not_a_prompt(sb, bad):
    return "src/app.py"


def _untracked_in_the_way(sb, bad):
    gone = commit(sb.prompts, "drop examples", {"prompts/summarizer/examples.md": None})
    write(sb.prompts, "prompts/summarizer/examples.md", "my local notes\n")
    return gone


def _not_in_history(sb, bad):
    git(sb.prompts, "checkout", "-q", "-b", "experiment")
    sha = commit(sb.prompts, "experiment", {SYS: "experimental\n"})
    git(sb.prompts, "checkout", "-q", "main")
    return sha


REFUSALS = {
    "merge in progress": (_merge_in_progress, [], "merge is in progress"),
    "rebase in progress": (_rebase_in_progress, [], "rebase"),
    "cherry-pick in progress": (_cherry_pick_in_progress, [], "cherry-pick is in progress"),
    "revert in progress": (_revert_in_progress, [], "revert is in progress"),
    "dirty tree": (_dirty, [], "uncommitted changes (README.md)"),
    "staged change": (_staged, [], "uncommitted changes"),
    "detached HEAD": (_detached, [], "detached"),
    "unknown sha": (_unknown_sha, [], "no commit deadbeef1234"),
    "no prompt files": (_no_prompt_files, [], "touches no prompt files"),
    "dotdot escape": (_outside_dotdot, [], "outside the repository"),
    "absolute path outside": (_outside_absolute, [], "outside the repository"),
    "symlinked folder": (_symlinked_folder, [], "symlink"),
    "symlink out": (_symlink_out, [], "symlink resolving outside"),
    "not a prompt": (_not_a_prompt, [], "not a prompt file"),
    "untracked in the way": (_untracked_in_the_way, [], "untracked files are in the way"),
    "not in history": (_not_in_history, [], "not in the history of main"),
    "unknown remote": (lambda sb, bad: bad, ["--push", "upstream"], "no git remote named 'upstream'"),
    "existing branch": (lambda sb, bad: (git(sb.prompts, "branch", "taken"), bad)[1], ["--branch", "taken"], "already exists"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_leave_repo_byte_for_byte_unchanged(sb, bad, run_cli, case):
    setup, extra, message = REFUSALS[case]
    target = setup(sb, bad)
    snap = snapshot(sb.prompts)
    remote_snap = snapshot(sb.remote)
    r = sb.cli(run_cli, "rollback-prompt", target, *extra, "--yes")
    assert r.exit_code == 1, (r.stdout, r.stderr)
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert_same(snap, snapshot(sb.prompts))
    assert_same(remote_snap, snapshot(sb.remote))
    assert actions(sb) == []


def _colliding_commits(repo, prefix_len=4):
    """Two dangling commits whose shas share their first `prefix_len` hex digits."""
    tree = git(repo, "rev-parse", "HEAD^{tree}")
    seen = {}
    for i in range(100_000):
        body = (f"tree {tree}\nauthor A <a@x> 1700000000 +0000\ncommitter A <a@x> 1700000000 +0000\n\n"
                f"collision {i}\n").encode()
        sha = hashlib.sha1(b"commit %d\x00" % len(body) + body).hexdigest()
        key = sha[:prefix_len]
        if key in seen:
            for b in (seen[key], body):
                subprocess.run(["git", "-C", str(repo), "hash-object", "-t", "commit", "-w", "--stdin"],
                               input=b, check=True, capture_output=True)
            return key
        seen[key] = body
    raise AssertionError("no collision found")


def test_ambiguous_sha_is_refused_listing_candidates(sb, run_cli):
    prefix = _colliding_commits(sb.prompts)
    snap = snapshot(sb.prompts)
    r = sb.cli(run_cli, "rollback-prompt", prefix, "--yes")
    assert r.exit_code == 1
    assert "ambiguous" in r.stderr and r.stderr.count("collision") == 2
    assert_same(snap, snapshot(sb.prompts))


def test_conflicting_revert_is_refused_naming_the_later_commit(sb, bad, run_cli):
    text = (sb.prompts / SYS).read_text().replace("Be terse.", "Be terse and witty.")
    later = commit(sb.prompts, "add wit", {SYS: text})
    commit(sb.prompts, "unrelated", {"prompts/classifier/system.md": "Classify v3.\n"})
    snap = snapshot(sb.prompts)
    r = sb.cli(run_cli, "rollback-prompt", bad, "--yes")
    assert r.exit_code == 1
    assert "conflicts with later edits" in r.stderr and later[:10] in r.stderr and "add wit" in r.stderr
    assert "--to" in r.stderr  # says what to do instead
    assert_same(snap, snapshot(sb.prompts))


def test_failure_half_way_restores_the_repo(sb, bad, run_cli, store_kind):
    # A reference-transaction hook that rejects every ref update makes `update-ref` fail after the
    # working tree and index were already moved: the repo must come back exactly as it was.
    hook = sb.prompts / ".git" / "hooks" / "reference-transaction"
    hook.write_text('#!/bin/sh\n[ "$1" = prepared ] && exit 1\nexit 0\n')
    hook.chmod(0o755)
    snap = snapshot(sb.prompts)
    r = sb.cli(run_cli, "rollback-prompt", bad, "--yes")
    assert r.exit_code == 1
    assert "restored" in r.stderr
    assert_same(snap, snapshot(sb.prompts))
    assert actions(sb) == []


def test_failure_half_way_with_added_and_deleted_files_restores_the_repo(sb, run_cli):
    from oncall_ai.actions import rollback as rb
    from oncall_ai.config import load_config

    change = commit(sb.prompts, "restructure", {"prompts/summarizer/examples.md": None,
                                                "prompts/summarizer/new/deep/file.md": "new\n"})
    snap = snapshot(sb.prompts)
    plan = rb.plan_prompt_rollback(load_config(sb.config), change)

    def boom():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rb.apply_plan(plan, now_ms=0, _fail_after_worktree=boom)
    plan.close()
    assert_same(snap, snapshot(sb.prompts))


@pytest.mark.parametrize("args", [
    ["rollback-prompt"],
    ["rollback-prompt", "x", "--bogus"],
    ["rollback-prompt", "summarizer", "--branch", "bad..name", "--yes"],
    ["rollback-prompt", "summarizer", "--incident", "INC\nRolled-Back-By: someone", "--yes"],
    ["rollback-prompt", "summarizer", "--to", "--yes"],
])
def test_usage_errors_exit_2_and_change_nothing(sb, bad, run_cli, args):
    snap = snapshot(sb.prompts)
    r = sb.cli(run_cli, *args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert_same(snap, snapshot(sb.prompts))


def test_missing_prompt_repo_config_is_a_config_error(tmp_path, run_cli):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("store: x.db\n")
    r = run_cli("--config", cfg, "rollback-prompt", "abcd1234", "--dry-run")
    assert r.exit_code == 2 and "prompt_repo is not set" in r.stderr


@pytest.mark.parametrize("pattern, path, expected", [
    ("prompts/summarizer/**", "prompts/summarizer/system.md", True),
    ("prompts/summarizer/**", "prompts/summarizer/a/b.md", True),
    ("prompts/summarizer/**", "prompts/summarizerx/a.md", False),
    ("prompts/*.md", "prompts/a.md", True),
    ("prompts/*.md", "prompts/sub/a.md", False),
    ("**/system.md", "a/b/system.md", True),
    ("**/system.md", "system.md", True),
    ("prompts/sum?arizer/*", "prompts/summarizer/x", True),
    ("prompts/[ab].md", "prompts/b.md", True),
    ("prompts/[!ab].md", "prompts/b.md", False),
    ("prompts/summarizer", "prompts/summarizer/x/y.md", True),  # a folder matches what is inside
])
def test_scope_globs(pattern, path, expected):
    from oncall_ai.actions.rollback import PathScope

    assert PathScope([pattern], "")(path) is expected


def test_json_refusal_without_yes_still_prints_the_plan_object(sb, bad, run_cli):
    r = sb.cli(run_cli, "rollback-prompt", bad, "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert out["applied"] is False and "no --yes" in out["refused"]


def test_judge_rubrics_count_as_prompt_files(sb, run_cli):
    commit(sb.platform, "judges", {"judges.yaml": "helpfulness: {model: judge-1, prompt: judges/helpfulness.md}\n"})
    cfg = yaml.safe_load(sb.config.read_text())
    cfg["judges"] = {"repo": "platform", "file": "judges.yaml"}
    sb.config.write_text(yaml.safe_dump(cfg))
    commit(sb.prompts, "rubric v1", {"judges/helpfulness.md": "Score 1-5.\n"})
    strict = commit(sb.prompts, "stricter rubric", {"judges/helpfulness.md": "Score 1-5, strictly.\n"})
    r = sb.cli(run_cli, "rollback-prompt", strict, "--yes")
    assert r.exit_code == 0, r.stderr
    assert (sb.prompts / "judges/helpfulness.md").read_text() == "Score 1-5.\n"


def test_prompt_repo_in_a_subfolder_of_a_git_repo(tmp_path, run_cli):
    mono = tmp_path / "mono"
    mono.mkdir()
    git(mono, "init", "-q", "-b", "main")
    commit(mono, "init", {"ai/prompts/summarizer/system.md": "v1\n", "ai/README.md": "r\n", "svc/main.go": "x\n"})
    bad = commit(mono, "bad", {"ai/prompts/summarizer/system.md": "v2\n", "svc/main.go": "y\n"})
    cfg = tmp_path / "oncall-ai.yaml"
    cfg.write_text(yaml.safe_dump({"store": str(tmp_path / "s.db"), "prompt_repo": "mono/ai",
                                   "features": {"summarizer": {"prompts": ["prompts/summarizer/**"]}}}))
    r = run_cli("--config", cfg, "rollback-prompt", "prompts/summarizer/system.md", "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert bad[:10] in r.stdout and "svc/main.go" in r.stdout  # left alone
    r = run_cli("--config", cfg, "rollback-prompt", "summarizer", "--yes")
    assert r.exit_code == 0, r.stderr
    assert (mono / "ai/prompts/summarizer/system.md").read_text() == "v1\n"
    assert (mono / "svc/main.go").read_text() == "y\n"


def test_merge_commit_target_undoes_what_it_brought_in(sb, run_cli):
    git(sb.prompts, "checkout", "-q", "-b", "feature")
    commit(sb.prompts, "feature prompt", {"prompts/summarizer/examples.md": "example from feature\n"})
    git(sb.prompts, "checkout", "-q", "main")
    commit(sb.prompts, "main change", {"prompts/classifier/system.md": "Classify on main.\n"})
    git(sb.prompts, "merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    merge = git(sb.prompts, "rev-parse", "HEAD")
    r = sb.cli(run_cli, "rollback-prompt", merge, "--yes")
    assert r.exit_code == 0, r.stderr
    assert "is a merge" in r.stdout
    assert (sb.prompts / "prompts/summarizer/examples.md").read_text() == "example one\n"
    assert (sb.prompts / "prompts/classifier/system.md").read_text() == "Classify on main.\n"


def test_nothing_in_oncall_ai_runs_a_shell():
    # A recorded change's `rollback` text is printed for people, never executed: no code path may
    # hand text to a shell. Subprocesses are allowed only as argument lists in the git layer.
    import pathlib
    import re

    import oncall_ai

    banned = re.compile(r"shell\s*=\s*True|\bos\.(system|popen|exec\w*|spawn\w*)\(|(?<![\w.])(eval|exec)\(")
    root = pathlib.Path(oncall_ai.__file__).parent
    for path in root.rglob("*.py"):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            assert not banned.search(line), f"{path}:{n}: {line.strip()}"


def test_store_failure_after_commit_keeps_the_commit_and_says_so(sb, bad, run_cli):
    cfg = yaml.safe_load(sb.config.read_text())
    cfg["store"] = str(sb.root / "no-such-folder" / "x.db")
    sb.config.write_text(yaml.safe_dump(cfg))
    r = sb.cli(run_cli, "rollback-prompt", bad, "--yes", "-m", "judge scores fell 0.4 after this")
    assert r.exit_code == 1
    assert "recording it in the store failed" in r.stderr
    assert git(sb.prompts, "log", "-1", "--format=%B").count("judge scores fell 0.4 after this") == 1
    assert "Be accurate." in (sb.prompts / SYS).read_text()


@pytest.mark.parametrize("url", ["clickhouse://127.0.0.1:{port}/oncall", "clickhouse://analyst:pw-s3cret@127.0.0.1:{port}/oncall"],
                         ids=["no user", "password in the URL"])
def test_unreachable_clickhouse_store_after_commit_keeps_the_commit_and_says_so(sb, bad, run_cli, url):
    """The store is opened only to record the action, after the commit: a ClickHouse server that
    cannot be reached is reported (URL named, password never), and the commit stays."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    cfg = yaml.safe_load(sb.config.read_text())
    cfg["store"] = url.format(port=port)
    sb.config.write_text(yaml.safe_dump(cfg))
    r = sb.cli(run_cli, "rollback-prompt", bad, "--yes")
    assert r.exit_code == 1
    assert "recording it in the store failed" in r.stderr and "Traceback" not in r.stderr
    assert f"127.0.0.1:{port}/oncall" in r.stderr and "pw-s3cret" not in r.stderr + r.stdout
    assert trailers(sb.prompts)[0] == ("Rollback-Of", bad)
    assert "Be accurate." in (sb.prompts / SYS).read_text()


def test_rollback_in_a_copied_checkout(sb, bad, run_cli):
    """A checkout copied elsewhere (stale stat data in its index) still rolls back cleanly."""
    import shutil
    import time

    time.sleep(1.1)  # the copy's files get new mtimes, unlike the ones recorded in the index
    copy = sb.root.parent / "copy"
    shutil.copytree(sb.root, copy, symlinks=True)
    cfg = (copy / "oncall-ai.yaml").read_text().replace(str(sb.store), str(copy / "oncall-ai.db"))
    (copy / "oncall-ai.yaml").write_text(cfg)
    r = run_cli("--config", copy / "oncall-ai.yaml", "rollback-prompt", bad, "--yes")
    assert r.exit_code == 0, r.stderr
    assert "Be accurate." in (copy / "prompts" / SYS).read_text()
