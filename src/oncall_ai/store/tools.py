"""Store maintenance behind `oncall-ai store ...`: describe a store, copy one into another.

Works on any two Store backends through the Store interface; the few facts the interface does
not carry (schema version, doc kinds) are asked of each backend here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from oncall_ai.store.base import HOUR_MS, Doc, EventRecord, Store

# Doc kinds in use (docs/ARCHITECTURE.md); a backend that can list its kinds adds the others.
KNOWN_DOC_KINDS = ("change", "judge_run_item", "judge_run", "action", "incident", "notify_state",
                   "import_state", "export_case")
COPY_STATE_KIND = "import_state"
COPY_CHUNK_EVENTS = 200_000


def backend_name(store: Store) -> str:
    return "clickhouse" if type(store).__name__ == "ClickHouseStore" else "sqlite"


def schema_version(store: Store) -> int | None:
    if hasattr(store, "schema_version"):
        return store.schema_version()
    return None


def doc_kinds(store: Store) -> dict[str, int]:
    """Live document count per kind."""
    if hasattr(store, "info"):
        return dict(store.info()["docs"])
    conn = getattr(store, "conn", None)
    if conn is not None:  # SQLite
        return dict(conn.execute("SELECT kind, count(*) FROM docs GROUP BY kind ORDER BY kind").fetchall())
    counts = {k: len(store.get_docs(k)) for k in KNOWN_DOC_KINDS}
    return {k: n for k, n in counts.items() if n}


def store_info(store: Store) -> dict:
    series = store.series()
    lo, hi = store.time_bounds()
    out = {
        "backend": backend_name(store),
        "url": store.url,
        "schema_version": schema_version(store),
        "events": store.count_events(),
        "series": len(series),
        "features": sorted({s.feature for s in series}),
        "metrics": sorted({s.metric for s in series}),
        "first_event": lo,
        "last_event": hi,
        "docs": doc_kinds(store),
    }
    if hasattr(store, "info"):
        extra = store.info()
        out["server_version"] = extra.get("server_version")
        out["bytes_on_disk"] = extra.get("bytes_on_disk")
    return out


@dataclass
class CopyResult:
    events_read: int = 0
    events_new: int = 0
    docs: dict[str, int] = field(default_factory=dict)
    resumed_from: int | None = None
    high_water: int | None = None


def _row(e: EventRecord) -> tuple:
    s = e.series
    key = (s.feature, s.metric, s.source, s.slice, s.model_id, s.prompt_version, s.index_version, s.judge_id)
    return (e.id_hash, key, e.ts, e.value, e.request_id, e.sample_rate, e.input, e.output)


def _chunks(src: Store, ids: list[int], lo: int, hi: int, chunk_events: int) -> list[tuple[int, int, int]]:
    """Time windows [a, b) of at most ~chunk_events events each (an hour is never split), from
    the hourly counts the store already keeps."""
    per_hour: dict[int, int] = {}
    for (_, b), agg in src.aggregate(ids, lo, hi, bucket_ms=HOUR_MS).items():
        per_hour[b] = per_hour.get(b, 0) + agg.n
    windows = []
    start, n = None, 0
    for hour in sorted(per_hour):
        if start is None:
            start = max(lo, hour)
        if n and n + per_hour[hour] > chunk_events:
            windows.append((start, hour, n))
            start, n = hour, 0
        n += per_hour[hour]
    if start is not None:
        windows.append((start, hi, n))
    return windows


def copy_store(src: Store, dst: Store, good_rules: dict, *, restart: bool = False,
               chunk_events: int = COPY_CHUNK_EVENTS,
               progress: Callable[[int, int], None] | None = None) -> CopyResult:
    """Copy every event and document from src to dst. Events go in time order, chunk by chunk;
    after each chunk a high-water mark (doc `import_state`/`store-copy:<src>` in dst) records how
    far it got, so an interrupted copy resumes there. Writes are idempotent by event id, so a
    chunk redone after a crash is not duplicated. `restart` ignores the mark (copies everything
    again, storing only what is missing)."""
    result = CopyResult()
    state_id = f"store-copy:{src.url}"
    state = None if restart else dst.get_doc(COPY_STATE_KIND, state_id)
    lo, hi = src.time_bounds()
    series = src.series()
    ids = [s.id for s in series]
    total = src.count_events()
    if state is not None:
        result.resumed_from = int(state.body.get("high_water", 0))
    done_before = int(state.body.get("events_read", 0)) if state is not None else 0
    if lo is not None and ids:
        hi_excl = hi + 1
        start = max(lo, result.resumed_from) if result.resumed_from is not None else lo
        for a, b, _ in _chunks(src, ids, start, hi_excl, chunk_events) if start < hi_excl else []:
            events = src.events(ids, a, b, order="ts", with_text=True)
            if events:
                result.events_read += len(events)
                result.events_new += dst.write_events([_row(e) for e in events], good_rules)
            result.high_water = b
            dst.put_docs(COPY_STATE_KIND, [Doc(COPY_STATE_KIND, state_id, b, {
                "source": src.url, "high_water": b, "events_read": done_before + result.events_read})],
                replace=True)
            if progress is not None:
                progress(done_before + result.events_read, total)
    for kind in sorted(doc_kinds(src)):
        docs = [d for d in src.get_docs(kind) if not (kind == COPY_STATE_KIND and d.id.startswith("store-copy:"))]
        if docs:
            dst.put_docs(kind, docs, replace=True)
        result.docs[kind] = len(docs)
    return result
