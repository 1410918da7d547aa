"""Runbooks: one per hypothesis kind triage can name (and false_page), each with its diagnostic loop
in commands that exist; the rotation scripts pass shellcheck and run end to end on the demo sandbox."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from sandbox_helpers import HOUR, at, cli_json, ground_truth, isolated, isolation_env, sandbox_copy

ROOT = Path(__file__).resolve().parent.parent
RUNBOOKS = ROOT / "runbooks"
SCRIPTS = sorted((RUNBOOKS / "bin").glob("*.sh"))
PARTS = ("## The loop", "## Decide", "## Roll back", "## Accept instead")


# --- the runbooks ---------------------------------------------------------------------------------

def test_every_runbook_triage_can_name_exists():
    from oncall_ai.analysis.attribute import HYPOTHESIS_KINDS, Hypothesis

    for kind in HYPOTHESIS_KINDS:
        path = Hypothesis(kind, "target", None, 0.0).runbook
        assert (ROOT / path).is_file(), f"triage links {path}, which does not exist"
    assert (RUNBOOKS / "false_page.md").is_file()
    index = (RUNBOOKS / "README.md").read_text()
    for md in RUNBOOKS.glob("*.md"):
        if md.name != "README.md":
            assert f"]({md.name})" in index, f"{md.name} is not in runbooks/README.md"


@pytest.mark.parametrize("md", sorted(p.name for p in RUNBOOKS.glob("*.md") if p.name != "README.md"))
def test_runbook_has_the_loop_decide_rollback_accept(md):
    text = (RUNBOOKS / md).read_text()
    positions = [text.find(p) for p in PARTS]
    assert all(p >= 0 for p in positions), f"{md}: missing {[p for p, i in zip(PARTS, positions, strict=True) if i < 0]}"
    assert positions == sorted(positions)
    loop = text[positions[0]:positions[1]]
    assert "```sh" in loop and loop.count("oncall-ai ") >= 3


def _commands(text: str):
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("oncall-ai "):
                yield line
    for line in re.findall(r"`(oncall-ai [^`]+)`", text):
        yield line


def test_runbook_commands_and_options_exist():
    """Every `oncall-ai ...` line in the runbooks names a real command and only its real options."""
    import typer

    from oncall_ai.cli import app

    root = typer.main.get_command(app)
    checked = 0
    for md in sorted(RUNBOOKS.glob("*.md")):
        for line in _commands(md.read_text()):
            words = shlex.split(line.replace("...", "X"))[1:]
            cmd, path = root, []
            while words and not words[0].startswith("-") and hasattr(cmd, "commands") and words[0] in cmd.commands:
                cmd = cmd.commands[words[0]]
                path.append(words.pop(0))
            assert path and not hasattr(cmd, "commands"), f"{md.name}: `{line}` names no command"
            known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
            for w in words:
                if w.startswith("--"):
                    assert w.split("=")[0] in known, f"{md.name}: `{line}`: {' '.join(path)} has no option {w}"
            checked += 1
    assert checked > 40


# --- the scripts: shellcheck -----------------------------------------------------------------------

def test_scripts_pass_shellcheck():
    exe = shutil.which("shellcheck")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("shellcheck is missing in CI (.ci/setup-shellcheck.sh installs it)")
        pytest.skip("shellcheck is not installed (.ci/setup-shellcheck.sh installs Debian's package)")
    assert SCRIPTS
    p = subprocess.run([exe, "--severity=style", *map(str, SCRIPTS)], capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.parametrize("script", [s.name for s in SCRIPTS])
def test_scripts_are_strict_and_executable(script):
    path = RUNBOOKS / "bin" / script
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text
    assert os.access(path, os.X_OK)
    assert "jq" not in re.sub(r"#.*", "", text)  # python3 parses the JSON: jq may be missing


# --- the scripts end to end on the demo sandbox ------------------------------------------------------

@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    sb = sandbox_copy(tmp_path_factory, "runbooks")
    home = sb.parent / "home"
    with isolated(home):
        tri = cli_json(sb, "triage", "--at", at(), "--json")
    env = {**os.environ, **isolation_env(home), "ONCALL_AI_CMD": f"{shlex.quote(sys.executable)} -m oncall_ai",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "ONCALL_AI_CONFIG": str(sb / "oncall-ai.yaml")}
    for var in ("ONCALL_AI_SLACK_WEBHOOK_URL", "ONCALL_AI_STORE", "COLUMNS"):
        env.pop(var, None)
    quiet = next(f for f in tri["findings"] if not f["regression"]["detected"])
    return SimpleNamespace(sb=sb, gt=ground_truth(sb), env=env, quiet=(quiet["feature"], quiet["metric"]))


def run(sandbox, script: str, *args, env=None, cwd=None):
    return subprocess.run([str(RUNBOOKS / "bin" / script), *map(str, args)], capture_output=True, text=True,
                          env={**sandbox.env, **(env or {})}, cwd=cwd or sandbox.sb.parent, timeout=300)


def test_check_slos(sandbox):
    ref = subprocess.run([sys.executable, "-m", "oncall_ai", "slo", "check", "--at", at(), "--json"],
                         capture_output=True, text=True, env=sandbox.env)
    doc = json.loads(ref.stdout)
    p = run(sandbox, "check-slos.sh", "--at", at())
    assert p.returncode == ref.returncode
    assert p.stdout.splitlines() == [s["line"] for s in doc["slos"] if s["state"] != "ok"]
    assert f"{doc['state'].upper()}:" in p.stderr
    p = run(sandbox, "check-slos.sh", "--at", at(), "--all")
    assert p.stdout.splitlines() == [s["line"] for s in doc["slos"]]
    assert run(sandbox, "check-slos.sh", "--bogus").returncode == 3
    assert "Exit: 0 every SLO ok" in run(sandbox, "check-slos.sh", "--help").stdout


def test_triage_on_page(sandbox):
    gt = sandbox.gt
    p = run(sandbox, "triage-on-page.sh", "--at", at(), "--feature", gt["feature"], "--metric", gt["metric"])
    assert p.returncode == 1, p.stderr
    assert p.stdout.startswith(f"REGRESSION {gt['feature']}/{gt['metric']}")
    assert gt["change_id"] in p.stdout and f"rollback-prompt {gt['change_id']}" in p.stdout
    books = re.findall(r"runbook:\s+(\S+)", p.stdout)
    assert books and all(Path(b).is_file() for b in books)
    assert str(RUNBOOKS / "prompt_change.md") in books
    f, m = sandbox.quiet
    p = run(sandbox, "triage-on-page.sh", "--at", at(), "--feature", f, "--metric", m)
    assert p.returncode == 0 and p.stdout.startswith("no regression")
    assert str(RUNBOOKS / "false_page.md") in p.stdout
    assert run(sandbox, "triage-on-page.sh", "--nope").returncode == 2


def test_open_and_resolve_incident(sandbox, tmp_path):
    gt = sandbox.gt
    p = run(sandbox, "open-incident.sh", "--at", at(), "--feature", gt["feature"], "--metric", gt["metric"])
    assert p.returncode == 0, p.stderr
    iid = p.stdout.strip()
    assert re.fullmatch(r"INC-20261127-\d+", iid) and "opened:" in p.stderr and gt["change_id"] in p.stderr
    again = run(sandbox, "open-incident.sh", "--at", at(), "--feature", gt["feature"], "--metric", gt["metric"])
    assert again.returncode == 0 and again.stdout.strip() == iid and "already open" in again.stderr
    f, m = sandbox.quiet
    none = run(sandbox, "open-incident.sh", "--at", at(), "--feature", f, "--metric", m)
    assert none.returncode == 1 and none.stdout == "" and "no regression" in none.stderr

    out = tmp_path / "cases"
    p = run(sandbox, "resolve-incident.sh", iid, "--resolution", "rollback", "--cause", gt["change_id"][:10],
            "--note", "rolled back", "--out", out, "--limit", 5, "--at", at(HOUR))
    assert p.returncode == 0, p.stderr
    files = p.stdout.split()
    assert files == [str(out / f"{iid}-001.jsonl"), str(out / f"{iid}-001.tests.yaml"),
                     str(out / f"{iid}-postmortem.md")]
    assert len((out / f"{iid}-001.jsonl").read_text().splitlines()) == 5
    pm = (out / f"{iid}-postmortem.md").read_text()
    assert gt["change_id"] in pm and "## Impact" in pm and "Eval cases added: 5" in pm
    # again: nothing new, the postmortem rewritten
    p = run(sandbox, "resolve-incident.sh", iid, "--out", out, "--limit", 5, "--at", at(HOUR))
    assert p.returncode == 0, p.stderr
    assert "already resolved" in p.stderr and "0 new, 5 exported before" in p.stderr
    assert sorted(x.name for x in out.iterdir()) == sorted(Path(x).name for x in files)
    assert run(sandbox, "resolve-incident.sh").returncode == 2


class _Hook(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802
        type(self).received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def test_post_summary(sandbox, tmp_path):
    _Hook.received = []
    srv = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_port}/services/hook-secret-123"
    try:
        p = run(sandbox, "post-summary.sh", "--at", at(2 * HOUR), env={"ONCALL_AI_SLACK_WEBHOOK_URL": url})
    finally:
        srv.shutdown()
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("# oncall-ai handoff") and "## Rollbacks done" in p.stdout
    assert len(_Hook.received) == 1 and "hook-secret-123" not in p.stderr + p.stdout
    dry = run(sandbox, "post-summary.sh", "--at", at(2 * HOUR), "--dry-run", "--out", tmp_path / "d.md")
    assert dry.returncode == 0 and "dry run" in dry.stderr and dry.stdout == ""
    assert (tmp_path / "d.md").read_text() == p.stdout
    assert run(sandbox, "post-summary.sh", "--what").returncode == 2
