"""Times and durations as CONTRACT.md defines them.

Times: RFC 3339 with an offset, or epoch seconds. Durations: 90s, 15m, 6h, 7d (also 1w).
Internally every time is an integer of epoch milliseconds (UTC); `now` is always a parameter
of domain code, and only the CLI reads the clock.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

from oncall_ai.errors import UsageError

_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}

MS_MIN = 946_684_800_000  # 2000-01-01: earlier timestamps are almost certainly unit mistakes
MS_MAX = 4_102_444_800_000  # 2100-01-01


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_duration_ms(text: str) -> int:
    """'15m' -> 900000; '1h30m' works too. Raises ValueError with a readable message."""
    compact = str(text).strip().replace(" ", "")
    if not _DURATION.match(compact):
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 15m, 6h, 7d)")
    value = sum(float(n) * _UNIT_MS[u] for n, u in _DURATION_PART.findall(compact))
    if value <= 0:
        raise ValueError(f"duration must be positive: {text!r}")
    return int(value)


def format_duration(ms: int) -> str:
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    if ms >= 3_600_000:
        return f"{ms / 3_600_000:.1f}h"
    if ms >= 60_000:
        return f"{ms / 60_000:.1f}m"
    return f"{ms / 1000:g}s"


def parse_time_ms(value: object) -> int:
    """RFC 3339 with offset, or epoch seconds (int/float/numeric string). Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a time")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("time is not a finite number")
        ms = int(round(value * 1000))
    elif isinstance(value, str):
        s = value.strip()
        if not s:
            raise ValueError("empty time")
        if s[0].isdigit() and all(c.isdigit() or c == "." for c in s):
            return parse_time_ms(float(s))
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            raise ValueError(f"not an RFC 3339 time: {value!r}") from None
        if dt.tzinfo is None:
            raise ValueError(f"time has no UTC offset: {value!r} (add Z or +00:00)")
        if "T" not in s.upper() and " " not in s:
            raise ValueError(f"time has no time of day: {value!r}")
        ms = int(dt.timestamp() * 1000)
    else:
        raise ValueError(f"not a time: {value!r}")
    if not MS_MIN <= ms < MS_MAX:
        raise ValueError(f"time out of range 2000..2100: {value!r} (epoch seconds, not milliseconds?)")
    return ms


def format_time(ms: int | None) -> str | None:
    """Epoch ms -> '2026-11-27T03:02:00Z' (milliseconds shown only when present)."""
    if ms is None:
        return None
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if ms % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def resolve_at(at: str | None, *, clock_ms: int | None = None) -> int:
    """The evaluation time: --at, else the clock."""
    if at is None or at == "" or at == "now":
        return clock_ms if clock_ms is not None else now_ms()
    try:
        return parse_time_ms(at)
    except ValueError as e:
        raise UsageError(f"--at: {e}") from None


def resolve_since(since: str | None, at_ms: int, *, option: str = "--since", default: str = "24h") -> int:
    """--since as a duration back from `at`, or as an absolute time."""
    text = default if since is None else since
    try:
        return at_ms - parse_duration_ms(text)
    except ValueError as e:
        if _DURATION.match(str(text).strip().replace(" ", "")):  # a duration, but 0s
            raise UsageError(f"{option}: {e}") from None
    try:
        return parse_time_ms(text)
    except ValueError:
        raise UsageError(f"{option}: {text!r} is neither a duration (15m, 6h, 7d) nor an RFC 3339 time") from None


def resolve_until(until: str | None, at_ms: int) -> int:
    if until is None:
        return at_ms
    return resolve_since(until, at_ms, option="--until")
