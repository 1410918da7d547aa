"""Acceptance: on the demo sandbox, the rollback command printed by triage's top hypothesis runs as
printed (with --yes) and restores the prompt that caused the planted drop."""

from __future__ import annotations

import json
import shlex

import yaml

from rollback_helpers import git

NOW_MS = 1_795_800_000_000  # 2026-11-27T17:20:00Z


def test_triage_printed_rollback_runs_as_printed_and_restores_the_prompt(tmp_path, run_cli, monkeypatch):
    from oncall_ai.demo import generate_sandbox, ingest_sandbox

    info = generate_sandbox(tmp_path / "sandbox", scenario="prompt_change", seed=7, now_ms=NOW_MS, scale=0.3)
    # SLOs play no part here; keep this test independent of the SLO section's validation rules.
    cfg = yaml.safe_load(info.config_path.read_text())
    cfg.pop("slos", None)
    info.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    ingest_sandbox(info)
    truth = info.ground_truth
    bad, target = truth["change_id"], truth["target"]

    monkeypatch.chdir(info.dir)  # the printed command finds ./oncall-ai.yaml, as a person's shell would
    tri = run_cli("triage", "--json", "--at", str(NOW_MS // 1000))
    assert tri.exit_code == 0, tri.stderr
    finding = next(f for f in json.loads(tri.stdout)["findings"]
                   if f["feature"] == truth["feature"] and f["metric"] == truth["metric"])
    top = finding["hypotheses"][0]
    assert top["change"]["id"] == bad
    printed = top["rollback"]
    assert printed == f"oncall-ai rollback-prompt {bad} --yes"

    prompts = info.prompt_repo
    before_bad = git(prompts, "show", f"{bad}^:{target}")
    later = git(prompts, "log", "--format=%H", f"{bad}..HEAD", "--", target).split()
    argv = shlex.split(printed)
    assert argv[0] == "oncall-ai"
    r = run_cli(*argv[1:])
    assert r.exit_code == 0, r.stderr
    now = (prompts / target).read_text()
    # the bad commit's lines are gone, as they were before it ...
    removed = [line[1:] for line in git(prompts, "diff", f"{bad}^", bad, "--", target).splitlines()
               if line.startswith("+") and not line.startswith("+++")]
    assert removed and not any(line in now.splitlines() for line in removed)
    # ... and the later edits to the same file stay
    for c in later:
        added = [line[1:] for line in git(prompts, "diff", f"{c}^", c, "--", target).splitlines()
                 if line.startswith("+") and not line.startswith("+++")]
        assert all(line in now.splitlines() for line in added)
    if not later:
        assert now.rstrip("\n") == before_bad
    assert git(prompts, "status", "--porcelain") == ""
    assert ("Rollback-Of: " + bad) in git(prompts, "log", "-1", "--format=%B")
