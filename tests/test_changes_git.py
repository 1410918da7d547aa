"""`oncall-ai changes` over real git repos built in tmp_path: prompt repo commits, pins, indexes
and judges files, with planted changes at known times."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

from changes_helpers import GitRepo, write_config
from oncall_ai.timeutil import parse_time_ms

AT = "2026-11-27T03:00:00Z"
WINDOW_START = "2026-11-26T03:00:00Z"

MODELS_V1 = """\
# Model pins: which model serves each feature.
# Keep the floating aliases out of here!
summarizer: vendor-a/sonnet-2026-09-01   # pinned 2026-09
support: vendor-a/sonnet-latest  # TODO pin this
"""
MODELS_V2 = MODELS_V1.replace("support: vendor-a/sonnet-latest  # TODO pin this",
                              "support: vendor-a/sonnet-2026-11-15  # pinned after INC-42")
MODELS_V3 = MODELS_V2.replace("# Keep the floating aliases out of here!", "# No floating aliases here, please.")
INDEXES_V1 = """\
kb-docs:
  version: 2026-11-20          # rebuilt nightly
  embedding_model: embed-3-large
  chunk_size: 512
faq: {version: 7}
"""
INDEXES_V2 = (INDEXES_V1.replace("version: 2026-11-20", "version: 2026-11-26")
              .replace("embed-3-large", "embed-4-small"))
JUDGES_V1 = """\
helpfulness:
  model: vendor-b/judge-1
  prompt: judges/helpfulness.md
"""
JUDGES_V2 = JUDGES_V1.replace("judge-1", "judge-2")


@pytest.fixture
def scenario(tmp_path):
    """A prompt repo and a platform repo with one planted change of every kind in the window
    [2026-11-26T03:00Z, 2026-11-27T03:00Z), plus commits just outside it."""
    prompts = GitRepo(tmp_path / "prompts")
    platform = GitRepo(tmp_path / "platform")
    sha = {}
    sha["init"] = prompts.commit({
        "prompts/summarizer/system.md": "You summarise.\nBe brief.\n",
        "prompts/summarizer/examples/one.md": "Example one\n",
        "prompts/support/answer.md": "You answer support questions.\n",
        "judges/helpfulness.md": "Score helpfulness 1-5.\n",
        "README.md": "Prompts\n",
    }, "initial prompts", "2026-11-20T10:00:00Z")
    sha["before"] = prompts.commit({"prompts/summarizer/system.md": "You summarise.\nBe very brief.\n"},
                                   "summarizer: shorter", "2026-11-26T02:59:59Z")
    sha["support_prompt"] = prompts.commit({"prompts/support/answer.md": "You answer support questions politely.\n"},
                                           "support: be polite", WINDOW_START, author=("Carol", "carol@example.com"))
    sha["summarizer_prompt"] = prompts.commit(
        {"prompts/summarizer/system.md": "You summarise.\nUse at most 3 bullet points.\n"},
        "summarizer: bullet points\n\nAsked for by the product team.", "2026-11-26T14:05:00Z",
        author=("Bob Builder", "bob@example.com"))
    sha["readme"] = prompts.commit({"README.md": "Prompts for our features\n"}, "readme: typo",
                                   "2026-11-26T15:00:00Z")
    sha["rubric"] = prompts.commit({"judges/helpfulness.md": "Score helpfulness 1-5. Be strict.\n"},
                                   "judge: stricter rubric", "2026-11-26T18:00:00Z")
    sha["both"] = prompts.commit({"prompts/summarizer/examples/one.md": "Example one, revised\n",
                                  "judges/helpfulness.md": "Score helpfulness 1-5. Be fair.\n"},
                                 "examples and rubric", "2026-11-26T20:00:00Z")
    sha["at_end"] = prompts.commit({"prompts/support/answer.md": "x\n"}, "at the window end", AT)
    sha["later"] = prompts.commit({"prompts/support/answer.md": "y\n"}, "later", "2026-11-27T05:00:00Z")

    sha["platform_init"] = platform.commit({"models.yaml": MODELS_V1, "indexes.yaml": INDEXES_V1,
                                            "judges.yaml": JUDGES_V1}, "platform files", "2026-11-20T09:00:00Z")
    sha["pin"] = platform.commit({"models.yaml": MODELS_V2}, "pin support model (INC-42)", "2026-11-26T10:00:00Z",
                                 author=("Dana Ops", "dana@example.com"))
    sha["pin_comment"] = platform.commit({"models.yaml": MODELS_V3}, "models: comment", "2026-11-26T11:00:00Z")
    sha["index"] = platform.commit({"indexes.yaml": INDEXES_V2}, "kb-docs: nightly rebuild, new embeddings",
                                   "2026-11-26T12:00:00Z")
    sha["judge_cfg"] = platform.commit({"judges.yaml": JUDGES_V2}, "judge model upgrade", "2026-11-26T13:00:00Z")

    cfg = write_config(tmp_path, {
        "store": "oncall-ai.db",
        "prompt_repo": "prompts",
        "features": {
            "summarizer": {"prompts": ["prompts/summarizer/**"], "model": "summarizer", "indexes": ["kb-docs"]},
            "support": {"prompts": ["prompts/support/*.md"], "model": "support", "indexes": ["kb-docs", "faq"]},
        },
        "pins": {"repo": "platform", "file": "models.yaml"},
        "indexes": {"repo": "platform", "file": "indexes.yaml"},
        "judges": {"repo": "platform", "file": "judges.yaml"},
        "metrics": {"helpfulness": {"source": "judge", "good": ">= 4"}},
    })
    return {"config": cfg, "sha": sha, "prompts": prompts, "platform": platform, "tmp": tmp_path}


def _list_json(run_cli, cfg, *args):
    r = run_cli("--config", cfg, "changes", "list", "--at", AT, "--since", "24h", "--json", *args)
    return r, json.loads(r.stdout) if r.stdout.strip() else None


def test_every_planted_change_appears_once_with_kind_features_time_and_sha(run_cli, scenario):
    r, doc = _list_json(run_cli, scenario["config"])
    assert r.exit_code == 0, r.stderr
    sha = scenario["sha"]
    got = {(c["id"], c["kind"], c["target"]): c for c in doc["changes"]}
    assert all(n == 1 for n in Counter((c["id"], c["kind"], c["target"]) for c in doc["changes"]).values())

    expected = [
        # (sha key, kind, target, features, at)
        ("support_prompt", "prompt", "prompts/support/answer.md", ["support"], WINDOW_START),
        ("pin", "model", "support", ["support"], "2026-11-26T10:00:00Z"),
        ("pin_comment", "model", "models.yaml", [], "2026-11-26T11:00:00Z"),  # comments only: no footprint
        ("index", "index", "kb-docs", ["summarizer", "support"], "2026-11-26T12:00:00Z"),
        ("judge_cfg", "judge", "helpfulness", ["summarizer", "support"], "2026-11-26T13:00:00Z"),
        ("summarizer_prompt", "prompt", "prompts/summarizer/system.md", ["summarizer"], "2026-11-26T14:05:00Z"),
        ("readme", "prompt", "README.md", [], "2026-11-26T15:00:00Z"),  # harmless, listed, affects none
        ("rubric", "judge", "helpfulness", ["summarizer", "support"], "2026-11-26T18:00:00Z"),
        ("both", "prompt", "prompts/summarizer/examples/one.md", ["summarizer"], "2026-11-26T20:00:00Z"),
        ("both", "judge", "helpfulness", ["summarizer", "support"], "2026-11-26T20:00:00Z"),
    ]
    for key, kind, target, features, at in expected:
        c = got.get((sha[key], kind, target))
        assert c is not None, f"missing {key} {kind} {target}; got {sorted(got)}"
        assert len(c["id"]) == 40
        assert c["features"] == features, key
        assert c["at"] == at, key
    assert len(doc["changes"]) == len(expected)
    # outside the window: the commit a second before the start, at the end, and after it
    ids = {c["id"] for c in doc["changes"]}
    assert not ids & {sha["before"], sha["at_end"], sha["later"], sha["init"], sha["platform_init"]}
    # oldest first
    assert [c["at"] for c in doc["changes"]] == sorted(c["at"] for c in doc["changes"])


def test_details_summaries_and_rollbacks(run_cli, scenario):
    _, doc = _list_json(run_cli, scenario["config"])
    sha = scenario["sha"]
    by = {(c["id"], c["kind"]): c for c in doc["changes"]}
    pin = by[(sha["pin"], "model")]
    assert pin["summary"].startswith("support: vendor-a/sonnet-latest -> vendor-a/sonnet-2026-11-15")
    assert (pin["from"], pin["to"]) == ("vendor-a/sonnet-latest", "vendor-a/sonnet-2026-11-15")
    assert pin["rollback"] == f"oncall-ai rollback-pin support --change {sha['pin']} --yes"
    assert pin["by"] == "Dana Ops <dana@example.com>"
    assert pin["source"].startswith("git:") and pin["source"].endswith("platform")

    index = by[(sha["index"], "index")]
    assert "kb-docs.version: 2026-11-20 -> 2026-11-26" in index["summary"]
    assert "kb-docs.embedding_model: embed-3-large -> embed-4-small" in index["summary"]
    assert "chunk_size" not in index["summary"]
    assert (index["from"], index["to"]) == ("2026-11-20", "2026-11-26")
    assert index["rollback"] == f"oncall-ai rollback-pin kb-docs --file indexes --change {sha['index']} --yes"

    prompt = by[(sha["summarizer_prompt"], "prompt")]
    assert prompt["rollback"] == f"oncall-ai rollback-prompt {sha['summarizer_prompt']} --yes"
    assert prompt["by"] == "Bob Builder <bob@example.com>"
    assert prompt["summary"] == "summarizer: bullet points"
    assert prompt["paths"] == ["prompts/summarizer/system.md"]
    assert "Asked for by the product team." in prompt["message"]
    assert "diff" not in prompt  # only with --diff

    comment = by[(sha["pin_comment"], "model")]
    assert "no key changed" in comment["summary"]
    assert comment["footprint"] == "none" and comment["all_features"] is False

    readme = by[(sha["readme"], "prompt")]
    assert readme["footprint"] == "none" and readme["details"]["owned"] is False
    assert by[(sha["judge_cfg"], "judge")]["footprint"] == "all"  # no events: every feature
    assert pin["footprint"] == "listed"
    judge = by[(sha["judge_cfg"], "judge")]
    assert "helpfulness.model: vendor-b/judge-1 -> vendor-b/judge-2" in judge["summary"]


def test_json_schema_keys(run_cli, scenario):
    _, doc = _list_json(run_cli, scenario["config"])
    assert doc["schema"] == "oncall-ai/changes/v1"
    assert doc["at"] == AT and doc["since"] == WINDOW_START and doc["until"] == AT
    for c in doc["changes"]:
        assert {"id", "kind", "target", "features", "at", "by", "summary", "source", "rollback"} <= set(c)
        assert isinstance(c["features"], list)
        assert parse_time_ms(c["at"])


def test_diff_option_carries_the_unified_diff_of_the_paths(run_cli, scenario):
    sha = scenario["sha"]
    _, doc = _list_json(run_cli, scenario["config"], "--diff")
    by = {(c["id"], c["kind"]): c for c in doc["changes"]}
    d = by[(sha["summarizer_prompt"], "prompt")]["diff"]
    assert "-Be very brief." in d and "+Use at most 3 bullet points." in d
    # a commit touching prompts and a rubric: each change carries only its own paths' diff
    assert "examples/one.md" in by[(sha["both"], "prompt")]["diff"]
    assert "judges/helpfulness.md" not in by[(sha["both"], "prompt")]["diff"]
    assert "judges/helpfulness.md" in by[(sha["both"], "judge")]["diff"]
    assert "+support: vendor-a/sonnet-2026-11-15" in by[(sha["pin"], "model")]["diff"]

    text = run_cli("--config", scenario["config"], "changes", "list", "--at", AT, "--diff")
    assert text.exit_code == 0
    assert "+Use at most 3 bullet points." in text.stdout
    assert "\x1b[" not in text.stdout  # NO_COLOR / not a terminal


def test_text_timeline_is_readable_in_80_columns(run_cli, scenario):
    r = run_cli("--config", scenario["config"], "changes", "list", "--at", AT)
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    sha = scenario["sha"]
    assert "10 changes" in out.splitlines()[0] or "10 changes" in out
    assert "support: vendor-a/sonnet-latest -> vendor-a/sonnet-2026-11-15" in out
    assert f"rollback: oncall-ai rollback-prompt {sha['summarizer_prompt']} --yes" in out
    assert sha["pin"] in out  # the full sha is the source
    for line in out.splitlines():
        if "rollback:" in line or " @ " in line:
            continue  # commands and shas are never wrapped (copy-paste)
        assert len(line) <= 80, line


def test_feature_and_kind_filters(run_cli, scenario):
    sha = scenario["sha"]
    _, doc = _list_json(run_cli, scenario["config"], "--feature", "support")
    ids = {(c["id"], c["kind"]) for c in doc["changes"]}
    assert (sha["support_prompt"], "prompt") in ids and (sha["pin"], "model") in ids
    assert (sha["summarizer_prompt"], "prompt") not in ids
    assert (sha["rubric"], "judge") in ids  # every feature (no events tell which): kept
    assert (sha["readme"], "prompt") not in ids  # affects no feature
    _, doc = _list_json(run_cli, scenario["config"], "--kind", "model,index")
    assert {c["kind"] for c in doc["changes"]} == {"model", "index"}
    r = run_cli("--config", scenario["config"], "changes", "list", "--kind", "pin")
    assert r.exit_code == 2 and "pin" in r.stderr
    r = run_cli("--config", scenario["config"], "changes", "list", "--feature", "nope")
    assert r.exit_code == 2 and "nope" in r.stderr


def test_window_options(run_cli, scenario):
    sha = scenario["sha"]
    r, doc = _list_json(run_cli, scenario["config"], "--until", "2026-11-26T12:00:00Z")
    assert r.exit_code == 0
    ids = {c["id"] for c in doc["changes"]}
    assert sha["pin"] in ids and sha["index"] not in ids  # [since, until)
    r, doc = _list_json(run_cli, scenario["config"], "--since", "2026-11-26T14:00:00Z")
    assert {c["id"] for c in doc["changes"]} >= {sha["summarizer_prompt"], sha["both"]}
    assert sha["pin"] not in {c["id"] for c in doc["changes"]}


def test_show_accepts_an_abbreviated_sha(run_cli, scenario):
    sha = scenario["sha"]
    r = run_cli("--config", scenario["config"], "changes", "show", sha["summarizer_prompt"][:8])
    assert r.exit_code == 0, r.stderr
    assert sha["summarizer_prompt"] in r.stdout
    assert "Asked for by the product team." in r.stdout
    assert "+Use at most 3 bullet points." in r.stdout
    r = run_cli("--config", scenario["config"], "changes", "show", sha["index"][:10], "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [c["target"] for c in doc["changes"]] == ["kb-docs"]
    assert doc["changes"][0]["id"] == sha["index"]
    r = run_cli("--config", scenario["config"], "changes", "show", "deadbeef")
    assert r.exit_code == 1 and "deadbeef" in r.stderr


def test_show_of_a_commit_that_moved_two_pins(run_cli, tmp_path):
    platform = GitRepo(tmp_path / "platform")
    platform.commit({"models.yaml": "a: m1\nb: m1\nc: m1\n"}, "init", "2026-11-20T00:00:00Z")
    two = platform.commit({"models.yaml": "a: m2\nb: m2\nc: m1\n"}, "a and b to m2", "2026-11-26T10:00:00Z")
    cfg = write_config(tmp_path, {"pins": {"repo": "platform", "file": "models.yaml"},
                                  "features": {"a": {}, "b": {"model": "b"}, "c": {}}})
    r = run_cli("--config", cfg, "changes", "show", two[:7], "--json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [(c["target"], c["features"], c["from"], c["to"]) for c in doc["changes"]] == [
        ("a", ["a"], "m1", "m2"), ("b", ["b"], "m1", "m2")]


def test_show_ambiguous_prefix_lists_the_candidates(run_cli, tmp_path):
    repo = GitRepo(tmp_path / "prompts")
    # Enough commits that two share a 4-character prefix (fast-import: no process per commit).
    lines = []
    for i in range(700):
        lines += ["commit refs/heads/main", f"committer T <t@example.com> {1764000000 + i} +0000",
                  "data 4", f"c{i:03d}", f"M 100644 inline p/f{i % 7}.md", f"data {len(str(i)) + 1}", f"{i}", ""]
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo.path, input="\n".join(lines) + "\n",
                   text=True, check=True)
    shas = repo.git("rev-list", "main").split()
    seen = {}
    prefix = None
    for s in shas:
        if s[:4] in seen:
            prefix = s[:4]
            break
        seen[s[:4]] = s
    assert prefix is not None
    cfg = write_config(tmp_path, {"prompt_repo": "prompts", "features": {"f": {"prompts": ["p/**"]}}})
    r = run_cli("--config", cfg, "changes", "show", prefix)
    assert r.exit_code == 2
    assert "ambiguous" in r.stderr
    assert sum(1 for s in shas if s.startswith(prefix)) == sum(1 for s in shas if s in r.stderr) >= 2


def test_merge_commit_is_one_change(run_cli, tmp_path):
    repo = GitRepo(tmp_path / "prompts")
    repo.commit({"p/a.md": "1\n"}, "init", "2026-11-20T00:00:00Z")
    repo.git("checkout", "-q", "-b", "topic")
    branch_commit = repo.commit({"p/a.md": "2\n"}, "on a branch, long ago", "2026-11-21T00:00:00Z")
    repo.git("checkout", "-q", "main")
    merge = repo.merge("topic", "Merge pull request #7", "2026-11-26T12:00:00Z")
    cfg = write_config(tmp_path, {"prompt_repo": "prompts", "features": {"f": {"prompts": ["p/*.md"]}}})
    r, doc = _list_json(run_cli, cfg)
    assert r.exit_code == 0, r.stderr
    assert [(c["id"], c["kind"], c["features"]) for c in doc["changes"]] == [(merge, "prompt", ["f"])]
    assert branch_commit not in {c["id"] for c in doc["changes"]}  # only as the merge's parent


def test_prompts_and_pins_in_one_repo_are_not_reported_twice(run_cli, tmp_path):
    repo = GitRepo(tmp_path / "ai")
    repo.commit({"prompts/f.md": "1\n", "models.yaml": "f: m1\n"}, "init", "2026-11-20T00:00:00Z")
    both = repo.commit({"prompts/f.md": "2\n", "models.yaml": "f: m2\n"}, "prompt and pin", "2026-11-26T12:00:00Z")
    cfg = write_config(tmp_path, {"prompt_repo": "ai", "pins": {"repo": "ai", "file": "models.yaml"},
                                  "features": {"f": {"prompts": ["prompts/**"]}}})
    r, doc = _list_json(run_cli, cfg)
    assert r.exit_code == 0, r.stderr
    assert sorted((c["id"], c["kind"], c["target"]) for c in doc["changes"]) == [
        (both, "model", "f"), (both, "prompt", "prompts/f.md")]
