"""One small error hierarchy, turned into exit codes at exactly one boundary (cli.main).

Exit codes (CONTRACT.md): 0 success, 1 the command ran and found a problem it reports,
2 usage or configuration error. `slo check` maps its own states (0/1/2/3) itself.
"""

from __future__ import annotations


class OncallError(Exception):
    """An error for the user: a message that says what failed and what to do next."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class DataError(OncallError):
    """The command ran and found a problem in the data it reports (exit 1)."""

    exit_code = 1


class UsageError(OncallError):
    """Bad arguments (exit 2)."""

    exit_code = 2


class ConfigError(OncallError):
    """Bad or missing configuration, or an unreachable configured resource (exit 2)."""

    exit_code = 2


class StoreError(ConfigError):
    """The score store cannot be opened or used (exit 2): wrong URL, unreachable server, old schema."""
