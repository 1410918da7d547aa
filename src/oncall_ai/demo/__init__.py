"""The demo sandbox (`oncall-ai demo`): a realistic week of eval events, two git repos with dated
history, recorded changes, a calibration set and runs, and one planted incident with its ground
truth. The test bench for triage, changes, judge, rollback, SLO and digest.

    from oncall_ai.demo import SCENARIOS, build_sandbox, generate_sandbox

    info = build_sandbox(tmp_path / "sb", "prompt_change", seed=7, now_ms=now)   # generate + ingest
    info.ground_truth["change_id"], info.config_path

`generate_sandbox` only writes files (see generator.py for the layout and the traffic model);
`build_sandbox` also ingests events, recorded changes and calibration runs into the sandbox store.
`generator.plan_preview(scenario, seed, now_ms)` tells what a seed would plant without building it
(to pick seeds with a slice, a canary ramp or untagged traffic). At scale 1 a sandbox has ~200k
events; `scale=0.3` builds about three times faster for large suites.

The same seed gives the same ordinary traffic in every scenario (same request ids, slices and
values) up to where the scenario changes it, so a scenario can be compared request by request
with `none` of the same seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

# Scenario names and what each plants (kept here, import-light, for `--list-scenarios` and tests).
SCENARIOS: dict[str, str] = {
    "prompt_change": "a prompt commit lowers one feature's quality in every slice",
    "prompt_change_slice": "a prompt commit lowers one feature's quality in one slice only (e.g. language=de)",
    "model_change": "a model pin bump in platform/models.yaml (sometimes a canary ramp over an hour or two)",
    "provider_model_change": "the provider moves a floating model alias: the served model_id changes with no commit",
    "index_change": "an index version bump in platform/indexes.yaml hurts retrieval-heavy requests (shape=qa) "
                    "of every feature using the index",
    "index_change_recorded": "the same index rebuild, recorded by the index pipeline (changes.jsonl), not in git",
    "judge_drift": "a judge change (judges.yaml model or rubric) makes the judge stricter: judge scores drop for "
                   "every feature it judges, user signals and checks stay flat, calibration shows the bias",
    "input_shift": "traffic moves toward a weak slice (a launch, a new customer); per-slice quality unchanged",
    "none": "noise only: ordinary traffic, harmless commits, an unrelated recorded change",
}

# The hypothesis kind (CONTRACT.md section 5) each scenario plants; None: nothing to find.
SCENARIO_KINDS: dict[str, str | None] = {
    "prompt_change": "prompt_change",
    "prompt_change_slice": "prompt_change",
    "model_change": "model_change",
    "provider_model_change": "provider_model_change",
    "index_change": "index_change",
    "index_change_recorded": "index_change",
    "judge_drift": "judge_drift",
    "input_shift": "input_shift",
    "none": None,
}

if TYPE_CHECKING:
    from oncall_ai.demo.generator import SandboxInfo

__all__ = ["SCENARIOS", "SCENARIO_KINDS", "build_sandbox", "generate_sandbox", "ingest_sandbox", "SandboxInfo"]


def __getattr__(name: str):
    if name == "SandboxInfo":
        from oncall_ai.demo.generator import SandboxInfo

        return SandboxInfo
    raise AttributeError(name)


def generate_sandbox(dir: Path, *, scenario: str = "prompt_change", seed: int = 1, now_ms: int,
                     days: int = 7, scale: float = 1.0, overwrite: bool = False,
                     store: str | None = None) -> SandboxInfo:
    """Write the sandbox files (no store). See oncall_ai.demo.generator for the layout."""
    from oncall_ai.demo.generator import generate_sandbox as _generate

    return _generate(Path(dir), scenario=scenario, seed=seed, now_ms=now_ms, days=days, scale=scale,
                     overwrite=overwrite, store=store)


def build_sandbox(dir: Path, scenario: str = "prompt_change", seed: int = 1, now_ms: int | None = None, *,
                  ingest: bool = True, days: int = 7, scale: float = 1.0, overwrite: bool = False,
                  progress=None, store: str | None = None) -> SandboxInfo:
    """Generate a sandbox and (by default) ingest it into its own store. For test suites: pass a
    fixed `now_ms`; `scale` below 1 builds faster with proportionally less traffic. `store` (a
    SQLite path or a clickhouse:// URL, default the sandbox's oncall-ai.db) is where the config
    points and where the data goes; it should be empty."""
    import time

    if now_ms is None:
        from oncall_ai.timeutil import now_ms as _now

        now_ms = _now() // 300_000 * 300_000
    info = generate_sandbox(dir, scenario=scenario, seed=seed, now_ms=now_ms, days=days, scale=scale,
                            overwrite=overwrite, store=store)
    if ingest:
        t = time.perf_counter()
        info.ingested = ingest_sandbox(info, progress=progress)
        info.seconds["ingest"] = time.perf_counter() - t
    return info


def ingest_sandbox(info: SandboxInfo, *, progress=None) -> dict:
    """Ingest a generated sandbox into the store its config names, through the same paths users
    take: events (`oncall-ai ingest`), recorded changes (`oncall-ai changes import`) and the
    calibration runs (`oncall-ai judge import-run`). The store is the one the sandbox config names
    (not $ONCALL_AI_STORE: the demo writes where its config says)."""
    from oncall_ai.config import _resolve_store, load_config
    from oncall_ai.errors import DataError
    from oncall_ai.ingest import ingest_files
    from oncall_ai.judge_runs import import_run_file
    from oncall_ai.sources.recorded import import_records
    from oncall_ai.store import open_store

    # `info.store` is what the sandbox config says: a path relative to the sandbox (an override
    # given as-is would be read from the working folder), or a URL.
    cfg = load_config(info.config_path, store_override=_resolve_store(info.store, Path(info.dir)))
    store = open_store(cfg.store, config=cfg)
    try:
        result = ingest_files([str(p) for p in info.event_files], store, cfg, progress=progress)
        if result.rejected:  # the generator's own output must be valid: a bug, not a user mistake
            first = result.rejects[0] if result.rejects else None
            raise DataError(f"demo: {result.rejected} generated event(s) rejected"
                            + (f", first {first.file}:{first.line}: {first.reason}" if first else ""))
        changes = import_records(store, str(info.changes_path))
        if changes.rejected:
            raise DataError(f"demo: generated recorded changes rejected: {changes.rejected[0]}")
        runs = import_run_file(cfg, store, str(info.calibration_runs))
    finally:
        store.close()
    return {"events": result.stored, "duplicates": result.duplicates, "changes": changes.stored,
            "judge_runs": len(runs.runs), "judge_run_items": runs.new}

