"""Rendering the change timeline: a readable text timeline for people (80 columns, colour only on
a terminal without NO_COLOR) and the `oncall-ai/changes/v1` JSON envelope for scripts."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from rich.text import Text

from oncall_ai.report.console import color_enabled, stdout_console
from oncall_ai.timeutil import format_duration, format_time

SCHEMA = "oncall-ai/changes/v1"
WIDTH = 80
_MS_KEYS = ("at", "authored_at")
_KIND_STYLE = {"prompt": "bold cyan", "model": "bold magenta", "index": "bold blue",
               "judge": "bold yellow", "traffic": "bold green", "config": "bold", "other": "bold"}


# --- JSON -------------------------------------------------------------------------------------

def _jsonable(value, key: str | None = None):
    if isinstance(value, dict):
        return {k: _jsonable(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if key == "ramp":
            return [[format_time(p[0]), p[1]] for p in value]
        return [_jsonable(v) for v in value]
    if key in _MS_KEYS and isinstance(value, int) and not isinstance(value, bool):
        return format_time(value)
    return value


def change_json(c, all_features: list[str], *, with_diff: bool) -> dict:
    out = {
        "id": c.id,
        "kind": c.kind,
        "target": c.target,
        "features": [] if c.no_footprint else (list(c.features) if c.features else list(all_features)),
        "all_features": not c.features and not c.no_footprint,
        "footprint": "none" if c.no_footprint else ("listed" if c.features else "all"),
        "at": format_time(c.at),
        "by": c.by,
        "summary": c.summary,
        "source": c.source,
        "rollback": c.rollback,
        "from": c.from_value,
        "to": c.to_value,
        "provider_side": c.provider_side,
        "paths": list(c.paths),
    }
    if c.source.startswith("git:"):
        out["sha"] = c.id
    if with_diff:
        out["diff"] = c.diff
    out["details"] = _jsonable({k: v for k, v in c.details.items() if k != "message"})
    if "message" in c.details:
        out["message"] = c.details["message"]
    return out


def changes_json(cs, cfg, *, at_ms: int, with_diff: bool, schema: str = SCHEMA) -> dict:
    feats = sorted(cfg.features)
    return {
        "schema": schema,
        "at": format_time(at_ms),
        "since": format_time(cs.start) if cs.start is not None else None,
        "until": format_time(cs.end) if cs.end is not None else None,
        "changes": [change_json(c, feats, with_diff=with_diff) for c in cs.changes],
        "problems": list(cs.problems),
    }


# --- text -------------------------------------------------------------------------------------

def _width() -> int:
    """80 columns, fewer on a narrower terminal ($COLUMNS wins)."""
    import shutil

    cols = shutil.get_terminal_size((WIDTH, 24)).columns
    return max(40, min(WIDTH, cols))


def _short_time(ms: int) -> str:
    t = format_time(ms)  # 2026-11-27T03:02:00Z
    return f"{t[:10]} {t[11:16]}Z"


def _source_text(c, base_dir: Path | None) -> str:
    if c.source.startswith("git:"):
        path = c.source[4:]
        if base_dir is not None:
            try:
                path = os.path.relpath(path, base_dir)
            except ValueError:
                pass
            if path.startswith("../../"):
                path = c.source[4:]
        return f"git {path} @ {c.id}"
    if c.source == "recorded":
        return f"recorded {c.id}"
    return "traffic (versions seen in events)"


def _ramp_text(ev: dict) -> str | None:
    """`share on new by hour from 2026-11-26 18:00Z: 5% 39% 100%` (up to the first full hour)."""
    ramp = ev.get("ramp") or []
    if len(ramp) < 2:
        return None
    shares = [s for _, s in ramp]
    done = next((i for i, s in enumerate(shares) if s >= 0.995), len(shares) - 1)
    shown = shares[:min(done + 1, 8)]
    more = " ..." if done + 1 > len(shown) else ""
    return f"share on new by hour from {_short_time(ramp[0][0])}: {' '.join(f'{round(s * 100)}%' for s in shown)}{more}"


def entry_lines(c, *, all_features: list[str], base_dir: Path | None, full: bool = False,
                width: int = WIDTH) -> list[Text]:
    """One timeline entry as styled lines (no diff)."""
    ind = "    "
    wrap = max(20, width - len(ind))
    head = Text()
    head.append(_short_time(c.at), style="bold")
    head.append("  ")
    head.append(f"{c.kind:<7}", style=_KIND_STYLE.get(c.kind, "bold"))
    head.append(" ")
    head.append(c.target)
    if c.provider_side:
        head.append("  [provider-side]", style="bold red")
    lines = [head]
    for part in textwrap.wrap(c.summary or "", wrap, break_on_hyphens=False) or [""]:
        if part:
            lines.append(Text(ind + part))
    if c.no_footprint:
        feats = "none (nothing a configured feature uses)"
    elif c.features:
        feats = ", ".join(c.features)
    else:
        feats = "every feature" + (f" ({', '.join(all_features)})" if all_features and len(all_features) <= 4 else "")
    meta = [f"features: {feats}"]
    if c.by:
        by = f"by {c.by}"
        if len(meta[0]) + 3 + len(by) <= wrap:
            meta[0] += f" · {by}"
        else:
            meta.append(by)
    for m in meta:
        for part in textwrap.wrap(m, wrap, break_on_hyphens=False):
            lines.append(Text(ind + part, style="dim"))
    lines.append(Text(ind + "source: " + _source_text(c, base_dir), style="dim"))
    for ev in c.details.get("seen_in_traffic") or ():
        msg = (f"seen in traffic: {ev.get('feature')} {ev.get('field')} {ev.get('from')} -> {ev.get('to')} "
               f"at {format_time(ev.get('at'))}")
        for part in textwrap.wrap(msg, wrap, break_on_hyphens=False):
            lines.append(Text(ind + part))
        rt = _ramp_text(ev)
        if rt:
            lines.append(Text(ind + "  " + rt))
    tr = c.details.get("traffic")
    if isinstance(tr, dict):
        rt = _ramp_text(tr)
        if rt:
            lines.append(Text(ind + rt))
        if tr.get("resolution_ms"):
            lines.append(Text(ind + f"switch time found in {format_duration(tr['resolution_ms'])} buckets",
                              style="dim"))
    if c.details.get("hint"):
        lines.append(Text(ind + "hint: " + c.details["hint"]))
    if c.rollback:
        lines.append(Text(ind + "rollback: " + c.rollback, style="bold"))
    if full:
        if c.from_value is not None or c.to_value is not None:
            lines.append(Text(ind + f"from: {c.from_value}  to: {c.to_value}"))
        if c.paths:
            lines.append(Text(ind + "paths: " + ", ".join(c.paths)))
        msg = c.details.get("message")
        if msg and msg.strip() != (c.details.get("subject") or "").strip():
            lines.append(Text(ind + "message:"))
            for ml in msg.splitlines():
                lines.append(Text(ind + "  " + ml))
        for k in ("keys",):
            if c.details.get(k) and len(c.details[k]) > 1:
                for kl in c.details[k]:
                    lines.append(Text(ind + "  " + kl))
    return lines


def diff_lines(diff: str) -> list[Text]:
    out = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---", "diff --git", "index ", "new file", "deleted file",
                            "rename ", "similarity ")):
            style = "bold"
        elif line.startswith("+"):
            style = "green"
        elif line.startswith("-"):
            style = "red"
        elif line.startswith("@@"):
            style = "cyan"
        else:
            style = ""
        out.append(Text(line, style=style))
    return out


def _emit(lines: list) -> None:
    """Styled lines on a colour terminal; plain text in one write otherwise (fast, pipe-friendly)."""
    if color_enabled():
        console = stdout_console()
        for line in lines:
            console.print(line, soft_wrap=True)
    else:
        import sys

        sys.stdout.write("".join((t.plain if isinstance(t, Text) else str(t)) + "\n" for t in lines))
        sys.stdout.flush()


def print_timeline(cs, cfg, *, at_ms: int, with_diff: bool, feature: str | None = None,
                   kinds=None) -> None:
    width = _width()
    all_features = sorted(cfg.features)
    span = format_duration(cs.end - cs.start) if cs.end > cs.start else "0s"
    scope = []
    if feature:
        scope.append(f"feature {feature}")
    if kinds:
        scope.append("kind " + ",".join(sorted(kinds)))
    n = len(cs.changes)
    title = (f"Changes {format_time(cs.start)} .. {format_time(cs.end)} ({span})"
             f"{' for ' + ', '.join(scope) if scope else ''}: {n} change{'s' if n != 1 else ''}")
    lines: list = [Text(part, style="bold") for part in textwrap.wrap(title, width, break_on_hyphens=False)]
    if not cs.changes:
        lines.append(Text("no changes found in this window"
                          + (" (some sources had problems: see stderr)" if cs.problems else "")))
    base = cfg.base_dir if getattr(cfg, "base_dir", None) else None
    for c in cs.changes:
        lines.append(Text(""))
        lines += entry_lines(c, all_features=all_features, base_dir=base, width=width)
        if with_diff and c.diff:
            lines += diff_lines(c.diff)
    _emit(lines)


def print_change(changes, cfg) -> None:
    width = _width()
    base = cfg.base_dir if getattr(cfg, "base_dir", None) else None
    lines: list = []
    for i, c in enumerate(changes):
        if i:
            lines.append(Text(""))
        lines += entry_lines(c, all_features=sorted(cfg.features), base_dir=base, full=True, width=width)
        if c.diff:
            lines.append(Text(""))
            lines += diff_lines(c.diff)
    _emit(lines)


def print_problems(cs) -> None:
    import sys

    for msg, code in zip(cs.problems, cs.problem_codes, strict=False):
        label = "error" if code >= 2 else "problem"
        print(f"{label}: {msg}", file=sys.stderr)
    for note in cs.notes:
        print(f"note: {note}", file=sys.stderr)
