"""Terminal sparklines."""

from __future__ import annotations

TICKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float | None], lo: float | None = None, hi: float | None = None) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return " " * len(values)
    lo = min(present) if lo is None else lo
    hi = max(present) if hi is None else hi
    span = hi - lo
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif span <= 0:
            out.append(TICKS[len(TICKS) // 2])
        else:
            i = int((v - lo) / span * (len(TICKS) - 1) + 0.5)
            out.append(TICKS[max(0, min(len(TICKS) - 1, i))])
    return "".join(out)
