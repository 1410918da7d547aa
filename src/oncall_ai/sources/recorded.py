"""Recorded changes: changes that live outside git (an index rebuilt by a pipeline, a campaign that
shifts traffic), CONTRACT.md section 3.

    {"id", "ts", "kind": "prompt|model|index|judge|traffic|config|other", "target", "features": [...],
     "from", "to", "by", "summary", "rollback"}

`id`, `ts`, `kind`, `target` are required; `features` absent means every feature. Other keys are
kept as they are. Stored as store documents of kind `change` (insert-or-ignore by id, so importing
the same file twice changes nothing). The `rollback` text is shown, never executed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from oncall_ai.errors import DataError, UsageError
from oncall_ai.model import CHANGE_KINDS, Change
from oncall_ai.timeutil import format_time, parse_time_ms

DOC_KIND = "change"
REQUIRED = ("id", "ts", "kind", "target")
_TEXT_KEYS = ("by", "summary", "rollback")
_VALUE_KEYS = ("from", "to")


class InvalidRecord(ValueError):
    """One recorded change that fails validation; the message names the key."""


def _text(value, key: str, *, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InvalidRecord(f"{key} is required")
        return None
    if isinstance(value, bool) or isinstance(value, dict | list):
        raise InvalidRecord(f"{key} must be a string, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRecord(f"{key} must be a string")
    text = str(value)
    if required and not text.strip():
        raise InvalidRecord(f"{key} must not be empty")
    return text


def normalize_record(obj) -> dict:
    """Validate one recorded change; returns the stored body (ts as RFC 3339, features a list or
    None). Raises InvalidRecord naming the key."""
    if not isinstance(obj, dict):
        raise InvalidRecord(f"a recorded change must be a JSON object, not {type(obj).__name__}")
    missing = [k for k in REQUIRED if obj.get(k) is None or obj.get(k) == ""]
    if missing:
        raise InvalidRecord(f"missing required key{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    body = dict(obj)
    body["id"] = _text(obj["id"], "id", required=True)
    try:
        ts_ms = parse_time_ms(obj["ts"])
    except ValueError as e:
        raise InvalidRecord(f"ts: {e}") from None
    body["ts"] = format_time(ts_ms)
    kind = obj["kind"]
    if kind not in CHANGE_KINDS:
        raise InvalidRecord(f"kind: {kind!r} is not one of {'|'.join(CHANGE_KINDS)}")
    body["target"] = _text(obj["target"], "target", required=True)
    feats = obj.get("features")
    if feats is not None:
        if isinstance(feats, str):
            feats = [feats]
        if not isinstance(feats, list) or not all(isinstance(f, str) and f for f in feats):
            raise InvalidRecord("features must be a list of feature names (absent: every feature)")
        body["features"] = list(dict.fromkeys(feats))
    else:
        body.pop("features", None)
    for k in _VALUE_KEYS + _TEXT_KEYS:
        if k in obj:
            body[k] = _text(obj[k], k)
    return body


def generated_id(body: dict) -> str:
    """A stable id for `changes record` without --id: recording the same change twice is a no-op."""
    key = json.dumps({k: body.get(k) for k in ("ts", "kind", "target", "features", "from", "to", "by")},
                     sort_keys=True, ensure_ascii=False)
    return "rec-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def to_doc(body: dict):
    from oncall_ai.store.base import Doc

    return Doc(DOC_KIND, body["id"], parse_time_ms(body["ts"]), body)


def doc_to_change(doc) -> Change:
    b = doc.body or {}
    feats = b.get("features")
    extra = {k: v for k, v in b.items()
             if k not in (*REQUIRED, "features", *_VALUE_KEYS, *_TEXT_KEYS)}
    details = {"recorded": True, "features_listed": feats is not None}
    if extra:
        details["extra"] = extra
    return Change(
        id=str(b.get("id", doc.id)), kind=str(b.get("kind", "other")), target=str(b.get("target", "")),
        features=tuple(feats) if feats else (), at=doc.ts, by=b.get("by"),
        summary=b.get("summary") or _default_summary(b), source="recorded", rollback=b.get("rollback"),
        from_value=b.get("from"), to_value=b.get("to"), details=details)


def _default_summary(b: dict) -> str:
    if b.get("from") is not None or b.get("to") is not None:
        return f"{b.get('target')}: {b.get('from') or '(none)'} -> {b.get('to') or '(none)'}"
    return f"{b.get('kind')} change to {b.get('target')}"


@dataclass
class ImportResult:
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[str] = field(default_factory=list)  # "file:line: reason"
    warnings: list[str] = field(default_factory=list)  # "file:line: ..." (stored anyway)


def _open_lines(path: str):
    if path == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace"), "<stdin>"
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such file")
    if p.is_dir():
        raise UsageError(f"{path}: is a folder, not a JSON Lines file")
    try:
        if p.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8", errors="replace"), str(p)
        return open(p, encoding="utf-8", errors="replace"), str(p)
    except OSError as e:
        raise UsageError(f"{path}: cannot read ({e.strerror})") from None


def read_records(path: str) -> tuple[list[tuple[int, dict]], list[str], str]:
    """([(line number, normalized body)], ["file:line: reason", ...], the file's name in them)."""
    good: list[tuple[int, dict]] = []
    bad: list[str] = []
    fh, name = _open_lines(path)
    with fh:
        try:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    bad.append(f"{name}:{lineno}: not JSON: {e.msg} (column {e.colno})")
                    continue
                try:
                    good.append((lineno, normalize_record(obj)))
                except InvalidRecord as e:
                    rid = obj.get("id") if isinstance(obj, dict) else None
                    bad.append(f"{name}:{lineno}: {e}" + (f" (id {rid!r})" if rid else ""))
        except (OSError, EOFError) as e:  # a truncated .gz
            raise DataError(f"{name}: cannot read: {e}") from None
    return good, bad, name


def import_records(store, path: str, known_features: Iterable[str] = ()) -> ImportResult:
    """Store every valid record of a JSON Lines file; name file:line for each rejected one. With
    the config's feature names, a record naming another feature is stored with a warning (it can
    never be blamed for a regression of a configured feature: a typo, most likely)."""
    good, bad, name = read_records(path)
    result = ImportResult(read=len(good) + len(bad), rejected=bad)
    known = set(known_features)
    if known:
        for lineno, b in good:
            unknown = [f for f in b.get("features") or () if f not in known]
            if unknown:
                result.warnings.append(
                    f"{name}:{lineno}: change {b['id']!r} names feature(s) {', '.join(map(repr, unknown))} "
                    f"that the config does not declare (known: {', '.join(sorted(known))})")
    if good:
        ids = [b["id"] for _, b in good]
        existing = {d.id for d in store.get_docs(DOC_KIND, ids=ids)}
        seen: set[str] = set()
        docs = []
        for _, b in good:
            if b["id"] in existing or b["id"] in seen:
                result.duplicates += 1
                continue
            seen.add(b["id"])
            docs.append(to_doc(b))
        if docs:
            store.put_docs(DOC_KIND, docs)
        result.stored = len(docs)
    return result


def record_change(store, body: dict) -> tuple[dict, bool]:
    """Store one change (already normalized); (body, True) when new, (body, False) when that id
    was already recorded."""
    existing = store.get_doc(DOC_KIND, body["id"])
    if existing is not None:
        return existing.body, False
    store.put_docs(DOC_KIND, [to_doc(body)])
    return body, True


def recorded_changes(store, start_ms: int | None, end_ms: int | None) -> list[Change]:
    return [doc_to_change(d) for d in store.get_docs(DOC_KIND, since=start_ms, until=end_ms)]
