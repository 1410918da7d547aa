"""`oncall-ai config check`: validate the configuration and show what it resolved to."""

from __future__ import annotations

import sys

import typer

from oncall_ai.commands import JsonOpt, get_context

config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")


@config_app.command("check")
def check(ctx: typer.Context, json_out: JsonOpt = False) -> int:
    """Validate the config (exit 2 with the file and key path on an error) and print what it
    resolved: the file used, the store, repos and files, features, metrics, slices and SLOs.
    Missing repos or files are reported as problems (exit 1)."""
    c = get_context(ctx)
    cfg = c.config(required=True)
    problems = []
    for label, path in (("prompt_repo", cfg.prompt_repo), ("calibration", cfg.calibration)):
        if path is not None and not path.exists():
            problems.append(f"{label}: {path} does not exist")
    for label in ("pins", "indexes", "judges"):
        rf = getattr(cfg, label)
        if rf is not None:
            if not rf.repo.exists():
                problems.append(f"{label}.repo: {rf.repo} does not exist")
            elif not (rf.repo / rf.file).exists():
                problems.append(f"{label}.file: {rf.repo / rf.file} does not exist")
    if cfg.prompt_repo is not None and cfg.prompt_repo.exists() and not (cfg.prompt_repo / ".git").exists():
        problems.append(f"prompt_repo: {cfg.prompt_repo} is not a git repository")
    for slo in cfg.slos:
        if cfg.features and slo.feature not in cfg.features:
            problems.append(f"slos[{slo.name}].feature: {slo.feature!r} is not in features")
        if slo.metric not in cfg.metrics:
            problems.append(f"slos[{slo.name}].metric: {slo.metric!r} is not in metrics")
        elif cfg.metrics[slo.metric].good is None:
            problems.append(f"slos[{slo.name}].metric: metric {slo.metric!r} has no `good` rule, so there is no SLI")
    resolved = {
        "schema": "oncall-ai/config/v1",
        "config": str(cfg.path) if cfg.path else None,
        "store": _redact(cfg.store),
        "prompt_repo": str(cfg.prompt_repo) if cfg.prompt_repo else None,
        "pins": _rf(cfg.pins), "indexes": _rf(cfg.indexes), "judges": _rf(cfg.judges),
        "features": {n: {"prompts": list(f.prompts), "model": f.model, "indexes": list(f.indexes)}
                     for n, f in cfg.features.items()},
        "metrics": {n: {"source": m.source, "good": str(m.good) if m.good else None,
                        "scale": list(m.scale) if m.scale else None, "direction": m.direction}
                    for n, m in cfg.metrics.items()},
        "slices": list(cfg.slices),
        "slos": [{"name": s.name, "feature": s.feature, "metric": s.metric, "objective": s.objective,
                  "window": s.raw.get("window"), "where": dict(s.where)} for s in cfg.slos],
        "calibration": str(cfg.calibration) if cfg.calibration else None,
        "problems": problems,
    }
    if json_out:
        import orjson

        sys.stdout.write(orjson.dumps(resolved).decode() + "\n")
    else:
        import yaml

        shown = {k: v for k, v in resolved.items() if k not in ("schema", "problems")}
        sys.stdout.write(yaml.safe_dump(shown, sort_keys=False, default_flow_style=None))
        for p in problems:
            print(f"problem: {p}", file=sys.stderr)
        if not problems:
            print(f"ok: {cfg.path} is valid", file=sys.stderr)
    return 1 if problems else 0


def _rf(rf):
    return None if rf is None else {"repo": str(rf.repo), "file": rf.file}


def _redact(url: str) -> str:
    """Never print a password embedded in a store URL."""
    import re

    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)
