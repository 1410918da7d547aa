import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_command_help_is_generated_from_the_code():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "readme_help.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_readme_names_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e . && oncall-ai demo --run" in readme
    test_cmd = "pip install -e '.[test]' && python -m pytest"
    assert test_cmd in readme
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in [line.strip() for line in ci]


def test_every_command_is_in_the_readme():
    from typer.main import get_command

    from oncall_ai.cli import app

    readme = (ROOT / "README.md").read_text()
    root = get_command(app)
    for name, cmd in root.commands.items():
        assert f"### `oncall-ai {name}`" in readme
        for sub in getattr(cmd, "commands", {}):
            assert f"### `oncall-ai {name} {sub}`" in readme


def test_version_and_help(run_cli):
    from oncall_ai import __version__

    r = run_cli("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"oncall-ai {__version__}"
    r = run_cli("--help")
    assert r.exit_code == 0 and "ingest" in r.stdout
    r = run_cli("no-such-command")
    assert r.exit_code == 2
