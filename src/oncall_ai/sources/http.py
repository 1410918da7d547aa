"""Small HTTP helpers shared by every client oncall-ai has (judge API, Langfuse, Slack, PagerDuty)."""

from __future__ import annotations

import email.utils
import math
import time
from datetime import UTC


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` as seconds to wait: a number of seconds or an HTTP date (RFC 9110 10.2.3).
    None when absent or unreadable; never negative. `now` is epoch seconds (default: the clock)."""
    if not value:
        return None
    value = value.strip()
    try:
        v = float(value)
        return max(0.0, v) if math.isfinite(v) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
