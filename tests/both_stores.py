"""One behaviour, two stores: compare what a command prints on SQLite and on ClickHouse.

The two backends sum in different orders, so floats may differ in the last bits; everything else
(keys and their order, strings, integers, list order, None, int vs float) must be equal. `assert_same` names the first path
that differs, e.g. `findings[0].hypotheses[1].score: 0.61 != 0.58`."""

from __future__ import annotations

import json
import math

REL = 1e-9
ABS = 1e-12


def _differ(a, b, path: str, rel: float) -> str | None:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return None if a == b and type(a) is type(b) else f"{path or '.'}: {a!r} != {b!r}"
    if isinstance(a, int | float) and isinstance(b, int | float):
        if type(a) is not type(b):  # 1 and 1.0 print differently
            return f"{path}: {a!r} ({type(a).__name__}) != {b!r} ({type(b).__name__})"
        if isinstance(a, int):
            return None if a == b else f"{path}: {a} != {b}"
        if math.isnan(a) and math.isnan(b):
            return None
        return None if math.isclose(a, b, rel_tol=rel, abs_tol=ABS) else f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return f"{path or '.'}: keys {sorted(set(a) ^ set(b)) or 'in another order'}: {list(a)} != {list(b)}"
        for k in a:
            found = _differ(a[k], b[k], f"{path}.{k}" if path else str(k), rel)
            if found:
                return found
        return None
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return f"{path or '.'}: {len(a)} items != {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _differ(x, y, f"{path}[{i}]", rel)
            if found:
                return found
        return None
    return None if a == b else f"{path or '.'}: {a!r} != {b!r}"


def assert_same(sqlite_out, clickhouse_out, *, rel: float = REL, what: str = "") -> None:
    """Deep equality with float tolerance; JSON text is parsed first."""
    if isinstance(sqlite_out, str | bytes):
        sqlite_out = json.loads(sqlite_out)
    if isinstance(clickhouse_out, str | bytes):
        clickhouse_out = json.loads(clickhouse_out)
    found = _differ(sqlite_out, clickhouse_out, "", rel)
    assert found is None, f"{what + ': ' if what else ''}SQLite and ClickHouse differ at {found}"


def strip(doc, *texts: str):
    """The same document with texts that differ by design (store URLs, sandbox folders) replaced
    by `<X>`, so the rest can be compared."""
    text = json.dumps(doc)
    for t in sorted(map(str, texts), key=len, reverse=True):
        text = text.replace(json.dumps(t)[1:-1], "<X>")
    return json.loads(text)
