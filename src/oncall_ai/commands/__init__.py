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
            from oncall_ai.errors import StoreError
            from oncall_ai.store import open_store

            cfg = self.config(required=False)
            try:
                self._store = open_store(cfg.store, config=cfg, create=create)
            except StoreError as e:
                import os

                if cfg.path is None and not self.store_url and not os.environ.get("ONCALL_AI_STORE"):
                    # Most likely the wrong folder: say so rather than only "no such file".
                    raise StoreError(f"{e.message}; and no configuration found (no --config, no $ONCALL_AI_CONFIG, "
                                     "no ./oncall-ai.yaml)",
                                     hint="run it in your project's folder, or pass --config PATH; "
                                          "`oncall-ai demo` builds a sandbox to try things in") from None
                raise
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


def check_names(cfg, store, *, feature: str | None = None, metric: str | None = None) -> None:
    """A --feature or --metric that neither the config nor the store knows is a typo: exit 2 naming
    the known ones, instead of an empty answer (a cron job with a typo would stay quiet forever)."""
    if feature is None and metric is None:
        return
    from oncall_ai.errors import UsageError

    series = store.series()
    checks = (("feature", "--feature", feature, {s.feature for s in series} | set(getattr(cfg, "features", {}) or {})),
              ("metric", "--metric", metric, {s.metric for s in series} | set(getattr(cfg, "metrics", {}) or {})))
    for kind, option, name, known in checks:
        if name is None or not known or name in known:
            continue
        import difflib

        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(f"{option}: unknown {kind} {name!r}: not in the config and no events for it in the store",
                         hint=f"{hint}known {kind}s: {', '.join(sorted(known))}")
