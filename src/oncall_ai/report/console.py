"""Consoles: data on stdout, everything else on stderr. NO_COLOR and non-TTYs turn colour off."""

from __future__ import annotations

import os
import sys

from rich.console import Console


def color_enabled(stream=None) -> bool:
    stream = stream or sys.stdout
    return not os.environ.get("NO_COLOR") and hasattr(stream, "isatty") and stream.isatty()




class _Console(Console):
    def on_broken_pipe(self) -> None:
        # `oncall-ai triage | head`: the reader had enough. Rich exits 1 here, which tells a
        # `set -o pipefail` runbook script that triage found a problem; it did not. Exit 0, as
        # cli.py does for a BrokenPipeError, with stdout on /dev/null so the final flush is quiet.
        self.quiet = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        raise SystemExit(0)


def stdout_console() -> Console:
    # Not cached across sys.stdout swaps (tests): build a fresh one each time it is asked for.
    return _Console(file=sys.stdout, no_color=bool(os.environ.get("NO_COLOR")), highlight=False,
                    width=_width())


def stderr_console() -> Console:
    return _Console(file=sys.stderr, no_color=bool(os.environ.get("NO_COLOR")), highlight=False,
                    width=_width(sys.stderr))


def _width(stream=None) -> int | None:
    stream = stream or sys.stdout
    if os.environ.get("COLUMNS"):
        try:
            return int(os.environ["COLUMNS"])
        except ValueError:
            return None
    if hasattr(stream, "isatty") and stream.isatty():
        return None
    return 100


def print_error(err) -> None:
    """`error: <message>` (+ `hint: ...`) on stderr, no traceback."""
    msg = f"error: {err.message}"
    if getattr(err, "hint", None):
        msg += f"\n  hint: {err.hint}"
    print(msg, file=sys.stderr)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def progress_enabled(quiet: bool = False) -> bool:
    return not quiet and not os.environ.get("NO_COLOR") and sys.stderr.isatty()
