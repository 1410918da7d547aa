"""The one error boundary (cli.OncallGroup): file-system errors become a message and exit 2."""

import errno

import pytest
import typer
from typer.testing import CliRunner

from oncall_ai.cli import OncallGroup
from oncall_ai.errors import DataError


def _app(exc):
    app = typer.Typer(cls=OncallGroup)

    @app.command()
    def boom():
        raise exc

    @app.command()
    def other():
        pass

    return app


@pytest.mark.parametrize("exc, code, text", [
    (PermissionError(errno.EACCES, "Permission denied", "/srv/x.db"), 2, "error: /srv/x.db: Permission denied"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "a.jsonl"), 2, "a.jsonl: No such file"),
    (OSError(errno.ENOSPC, "No space left on device", "s.db"), 2, "s.db: No space left on device"),
    (DataError("3 records rejected"), 1, "error: 3 records rejected"),
])
def test_user_facing_errors_become_messages(exc, code, text):
    r = CliRunner().invoke(_app(exc), ["boom"])
    assert r.exit_code == code
    assert text in r.stderr and "Traceback" not in r.stderr


def test_a_real_bug_is_not_hidden():
    r = CliRunner().invoke(_app(OSError(errno.EBADF, "Bad file descriptor")), ["boom"])
    assert isinstance(r.exception, OSError)
