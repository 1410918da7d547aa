"""One module per verb. Each exposes `register(app)`; command functions are thin: they parse
options, call domain code, pick a renderer and return an exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import typer


@dataclass
class Context:
    """What the root callback knows: where config and store come from. Loaded lazily."""

    config_path: str | None = None
    store_url: str | None = None
    _config: object = field(default=None, repr=False)
    _store: object = field(default=None, repr=False)

    def config(self, *, required: bool = True):
        if self._config is None:
            from oncall_ai.config import load_config

            self._config = load_config(self.config_path, store_override=self.store_url, required=required)
        return self._config

    def store(self, *, create: bool = True):
        if self._store is None:
            from oncall_ai.store import open_store

            cfg = self.config(required=False)
            self._store = open_store(cfg.store, config=cfg, create=create)
        return self._store


def get_context(ctx: typer.Context) -> Context:
    obj = ctx.find_root().obj
    if obj is None:  # invoked without the root callback (tests calling a sub-app directly)
        obj = Context()
        ctx.find_root().obj = obj
    return obj


# Shared option types (typer: module-level Annotated aliases).
AtOpt = Annotated[str | None, typer.Option("--at", metavar="TIME",
                                           help="Evaluate as if it were this time (RFC 3339 or epoch seconds); replays incidents.")]
SinceOpt = Annotated[str | None, typer.Option("--since", metavar="DURATION|TIME",
                                              help="Window start: a duration back from --at (24h, 7d) or an RFC 3339 time.")]
UntilOpt = Annotated[str | None, typer.Option("--until", metavar="DURATION|TIME",
                                              help="Window end (default: --at).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else there.")]
FeatureOpt = Annotated[str | None, typer.Option("--feature", "-f", metavar="F", help="Only this feature.")]
MetricOpt = Annotated[str | None, typer.Option("--metric", "-m", metavar="M", help="Only this metric.")]
