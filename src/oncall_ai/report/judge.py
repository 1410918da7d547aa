"""Rendering of `oncall-ai judge drift` for people (the JSON envelope is built in commands/judge.py)."""

from __future__ import annotations

from rich.table import Table

from oncall_ai.report.console import stdout_console


def _f(x, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def _ci(pair, fmt: str = "+.2f") -> str:
    return "" if not pair or pair[0] is None else f" [{format(pair[0], fmt)}, {format(pair[1], fmt)}]"


def _pm(x, ci) -> str:
    """+0.42±0.11: the estimate and half its CI width (t intervals are symmetric)."""
    if x is None:
        return "-"
    if not ci or ci[0] is None:
        return f"{x:+.2f}"
    return f"{x:+.2f}±{(ci[1] - ci[0]) / 2:.2f}"


def _pct(x) -> str:
    return "-" if x is None else f"{x:.0%}"


# Hidden first when the table is wider than the terminal (the rest tell drift from no drift).
DROP_WHEN_NARROW = ("ρ", "exact", "FG", "FB", "null", "κw", "±1")


def _table_width(cols: list[str], rows: list[list[str]], hidden: list[str]) -> int:
    from rich.cells import cell_len

    widths = [max(cell_len(c), *(cell_len(r[k]) for r in rows)) for k, c in enumerate(cols) if c not in hidden]
    return sum(widths) + len(widths) - 1


def render_drift(findings: list[dict]) -> None:
    con = stdout_console()
    for f in findings:
        m = f["metric"]
        if f["drifted"]:
            head = (f"[bold red]{m}: judge DRIFTED[/] since run {f['since_run']}"
                    f" ({f.get('direction') or 'shifted'} by {_f(abs(f['shift']) if f.get('shift') is not None else None)}"
                    f"{_ci(f.get('shift_ci'))} vs baseline {f.get('baseline_run')})")
        elif f["runs"]:
            head = f"[bold green]{m}: no judge drift[/] ({len(f['runs'])} run(s), baseline {f.get('baseline_run')})"
        else:
            head = f"[bold]{m}[/]: no calibration runs"
        con.print(head)
        if f["runs"]:
            judges: dict = {}
            for r in f["runs"]:
                judges.setdefault(r["judge_id"], f"J{len(judges) + 1}")
            cols = ["#", "at", "judge", "n", "null", "bias", "exact", "±1", "κw", "ρ", "FB", "FG", "Δ baseline",
                    "state"]
            rows, styles = [], []
            for i, r in enumerate(f["runs"], 1):
                vb = r.get("vs_baseline") or {}
                state = r["state"]
                styles.append("red" if state == "drifted" else ("yellow" if state in ("unclear", "insufficient") else None))
                rows.append([
                    str(i), (r["ts"] or "")[5:16].replace("T", " "), judges[r["judge_id"]], str(r["n"]),
                    _pct(r["null_rate"]), _pm(r["bias"], r.get("bias_ci")),
                    _pct(r["exact_agreement"]), _pct(r["within_one_agreement"]), _f(r["kappa_w"]),
                    _f(r["spearman"]), _pct(r.get("false_bad_rate")), _pct(r.get("false_good_rate")),
                    _pm(vb.get("shift"), vb.get("ci")) if vb else "-", state])
            # On a narrow terminal, hide the least needed columns rather than cut every cell to "…".
            hidden = []
            for col in DROP_WHEN_NARROW:
                if _table_width(cols, rows, hidden) <= con.width:
                    break
                hidden.append(col)
            t = Table(show_edge=False, pad_edge=False, box=None, header_style="bold", padding=(0, 1, 0, 0))
            keep = [k for k, col in enumerate(cols) if col not in hidden]
            for k in keep:
                t.add_column(cols[k], justify="left" if cols[k] in ("at", "judge", "state") else "right", no_wrap=True)
            for row, style in zip(rows, styles, strict=True):
                cells = [row[k] for k in keep]
                if style:
                    cells[-1] = f"[{style}]{cells[-1]}[/]"
                t.add_row(*cells)
            con.print(t)
            if hidden:
                con.print(f"  (narrow terminal: {', '.join(hidden)} hidden; --json has every figure)",
                          markup=False, highlight=False)
            con.print("  runs: " + "; ".join(f"#{i} {r['run_id']}" for i, r in enumerate(f["runs"], 1)),
                      markup=False, highlight=False)
            con.print("  judges: " + "; ".join(f"{short} {jid}" for jid, short in judges.items()),
                      markup=False, highlight=False)
            conf = f.get("confidence") or 0.99
            con.print(f"  bias = judge - human (± half its 95% CI); Δ baseline = paired shift vs the baseline run on "
                      f"the same items (± half its {conf:.0%} CI); FB/FG = judge false-bad/false-good rates at the "
                      "good threshold", markup=False, highlight=False)
        for w in f.get("evidence") or []:
            con.print(f"  - {w}", highlight=False, markup=False)
        for ev in f.get("traffic") or []:
            con.print(f"  traffic, feature {ev['feature']} (judge-drift strength {ev['score']:.2f}):")
            for j in ev.get("judges") or []:
                hist = ""
                if j.get("histogram"):
                    hist = "  scores " + " ".join(f"{k}:{v}" for k, v in j["histogram"].items())
                con.print(f"    judge {j['judge_id']}: n={j['n']} mean={_f(j['mean'])} good={_pct(j['good_share'])} "
                          f"{(j['first_seen'] or '')[:16]}..{(j['last_seen'] or '')[:16]}{hist}",
                          markup=False, highlight=False)
            for w in ev.get("evidence") or []:
                # calibration words are printed above; per-judge means are in the judge lines
                if not w.startswith("calibration:") and "(n=" not in w:
                    con.print(f"    - {w}", markup=False, highlight=False)
        con.print()
