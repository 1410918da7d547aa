"""The command line: typer only. Options, the error boundary, choosing a renderer, the exit code.

Each verb lives in `oncall_ai.commands.<module>` and registers itself with `register(app)`.
Heavy imports (sqlite, git, httpx, analysis) happen inside the command functions, so that
`oncall-ai --version` and `--help` stay fast.
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer
from typer import _click as click  # typer bundles its own Click
from typer.core import TyperGroup

from oncall_ai import __version__
from oncall_ai.errors import OncallError

# Modules under oncall_ai.commands, in the order their commands appear in --help.
COMMAND_MODULES = (
    "ingest",
    "scores",
    "changes",
    "triage",
    "judge",
    "rollback",
    "slo",
    "digest",
    "incident",
    "demo",
    "config_cmd",
    "store_cmd",
    "importers",
)


class OncallGroup(TyperGroup):
    """The one error boundary: an OncallError anywhere below becomes a message and an exit code."""

    def list_commands(self, ctx):  # keep registration order, not alphabetical
        return list(self.commands)

    def invoke(self, ctx):
        try:
            rv = super().invoke(ctx)
        except OncallError as e:
            from oncall_ai.report.console import print_error

            print_error(e)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except (PermissionError, FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            # A file the user named or owns that we could not use: say which, no traceback.
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            click.echo(f"error: {where}{e.strerror or e}", err=True)
            raise typer.Exit(2) from None
        except OSError as e:
            if isinstance(e, BrokenPipeError):
                # `oncall-ai ... | head`: stdout closed early is not an error of ours.
                sys.stderr.close()
                raise typer.Exit(0) from None
            if e.errno in (28, 30, 122):  # ENOSPC, EROFS, EDQUOT: the disk, not a bug
                where = f"{e.filename}: " if getattr(e, "filename", None) else ""
                click.echo(f"error: {where}{e.strerror or e}", err=True)
                raise typer.Exit(2) from None
            raise
        # Commands return their exit code (an int); None means 0.
        if isinstance(rv, int) and not isinstance(rv, bool) and rv != 0:
            raise typer.Exit(rv)
        return rv


app = typer.Typer(
    cls=OncallGroup,
    name="oncall-ai",
    help="Triage for AI features on call: is it real, where is it, what changed, what do I roll back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool):
    if value:
        typer.echo(f"oncall-ai {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[str | None, typer.Option("--config", "-c", metavar="PATH", envvar=None,
                                               help="Config file (default: $ONCALL_AI_CONFIG, else ./oncall-ai.yaml).")] = None,
    store: Annotated[str | None, typer.Option("--store", metavar="URL",
                                              help="Override the config's store (a SQLite path or clickhouse://host:8123/db).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
):
    """Triage for AI features on call: is it real, where is it, what changed, what do I roll back."""
    from oncall_ai.commands import Context

    ctx.obj = Context(config_path=config, store_url=store)


for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"oncall_ai.commands.{_name}")
    except ModuleNotFoundError as _e:  # a verb not built yet
        if _e.name != f"oncall_ai.commands.{_name}":
            raise
        continue
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name="oncall-ai", standalone_mode=False)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except click.exceptions.ClickException as e:  # usage errors: exit 2
        e.show()
        sys.exit(2)
    except typer.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
