"""SQLite score store (the embedded default).

Layout (see store/base.py for the model):
- `series`     one row per (feature, metric, source, slice, versions); '' stands for "absent".
- `event_keys` the dedup set: (week of ts, 64-bit hash of the id). Keyed by time so that inserts stay
  cache-local at tens of millions of events: an id is unique within the UTC week of its timestamp
  (an event's id and serving time are fixed when it is scored, so re-ingesting never duplicates).
- `events`     append-only (rowid order = ingest order), no secondary index: cheap to write.
- `event_ranges` a zone map: for each hour, the rowid ranges of `events` that hold its events. Raw
  reads scan only those ranges (ingest is mostly in time order, so they are tight).
- `event_text` input/output text by event rowid, only for events that carry it.
- `rollup_1h`  (hour, series_id) -> n, sum, sum of squares, good: slice/time questions read these.
- `rollup_rules` the good rule each metric's rollup `good` was counted with. When the config's rule
  differs, queries fall back to raw events (exact, slower) and `oncall-ai store rebuild-rollups` fixes it.
- `docs`       small JSON documents by (kind, id).

Migrations are append-only (`m001_...`) and applied when the store opens. WAL mode; each ingest
batch is one transaction, so a killed ingest leaves whole batches and a re-run skips what is there.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import orjson

from oncall_ai.errors import StoreError
from oncall_ai.store.base import HOUR_MS, Agg, Doc, EventColumns, EventRecord, Series, Store

MIGRATION_SET = "oncall_ai"


def m001_create_events(db) -> None:
    db.executescript(
        """
        CREATE TABLE series (
            id INTEGER PRIMARY KEY,
            feature TEXT NOT NULL,
            metric TEXT NOT NULL,
            source TEXT NOT NULL,
            slice TEXT NOT NULL,
            model_id TEXT NOT NULL DEFAULT '',
            prompt_version TEXT NOT NULL DEFAULT '',
            index_version TEXT NOT NULL DEFAULT '',
            judge_id TEXT NOT NULL DEFAULT ''
        );
        CREATE UNIQUE INDEX series_key ON series
            (feature, metric, source, slice, model_id, prompt_version, index_version, judge_id);
        -- dedup set: (week of ts, 64-bit id hash); keyed by time so inserts stay cache-local
        CREATE TABLE event_keys (w INTEGER NOT NULL, h INTEGER NOT NULL, PRIMARY KEY (w, h)) WITHOUT ROWID;
        -- raw events, append-only in ingest order
        CREATE TABLE events (
            series_id INTEGER NOT NULL,
            ts INTEGER NOT NULL,
            h INTEGER NOT NULL,
            value REAL NOT NULL,
            request_id TEXT,
            sample_rate REAL
        );
        -- zone map: which rowid ranges of `events` hold each hour's events
        CREATE TABLE event_ranges (
            bucket INTEGER NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL, PRIMARY KEY (bucket, lo)
        ) WITHOUT ROWID;
        CREATE TABLE event_text (event_rowid INTEGER PRIMARY KEY, input TEXT, output TEXT);
        CREATE TABLE rollup_1h (
            bucket INTEGER NOT NULL,
            series_id INTEGER NOT NULL,
            n INTEGER NOT NULL,
            sum REAL NOT NULL,
            sumsq REAL NOT NULL,
            good INTEGER NOT NULL,
            PRIMARY KEY (bucket, series_id)
        ) WITHOUT ROWID;
        CREATE TABLE rollup_rules (metric TEXT PRIMARY KEY, good TEXT NOT NULL);
        """
    )


def m002_create_docs(db) -> None:
    db.executescript(
        """
        CREATE TABLE docs (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            ts INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (kind, id)
        ) WITHOUT ROWID;
        CREATE INDEX docs_kind_ts ON docs (kind, ts);
        """
    )


def m003_create_daily_rollups(db) -> None:
    """Daily cells beside the hourly ones: long windows (7d, 30d SLO periods, digests) read one cell
    per series and day instead of 24."""
    db.executescript(
        f"""
        CREATE TABLE rollup_1d (
            bucket INTEGER NOT NULL,
            series_id INTEGER NOT NULL,
            n INTEGER NOT NULL,
            sum REAL NOT NULL,
            sumsq REAL NOT NULL,
            good INTEGER NOT NULL,
            PRIMARY KEY (bucket, series_id)
        ) WITHOUT ROWID;
        INSERT INTO rollup_1d(bucket, series_id, n, sum, sumsq, good)
            SELECT bucket - bucket % {DAY_MS}, series_id, sum(n), sum(sum), sum(sumsq), sum(good)
            FROM rollup_1h GROUP BY 1, 2;
        """
    )


# Append-only: never edit or reorder a released migration; add m004_... instead.
MIGRATIONS = (m001_create_events, m002_create_docs, m003_create_daily_rollups)


def _pending_migrations(conn: sqlite3.Connection) -> list[str]:
    """Names not applied yet, read without importing sqlite-utils (its import costs ~90 MB and
    ~0.2 s, which every command would pay otherwise)."""
    names = [m.__name__ for m in MIGRATIONS]
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlite_migrations'").fetchone()
    if not has_table:
        return names
    applied = {n for (n,) in conn.execute(
        "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", (MIGRATION_SET,))}
    return [n for n in names if n not in applied]


def _apply_migrations(conn: sqlite3.Connection) -> None:
    Database, Migrations = _import_sqlite_utils()

    migrations = Migrations(MIGRATION_SET)
    for fn in MIGRATIONS:
        migrations(name=fn.__name__)(fn)
    migrations.apply(Database(conn))


def _import_sqlite_utils():
    """sqlite-utils imports pandas and numpy when they are installed (0.3-0.6 s) and needs neither
    here: hide them while it loads. Other code can still import them afterwards."""
    import sys

    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # makes `import name` raise ImportError
    try:
        import sqlite_utils  # sqlite-utils >= 4
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return sqlite_utils.Database, sqlite_utils.Migrations


_NO_RULE = "none"
DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
RANGE_MERGE_GAP = 50_000  # rows: a zone-map range may span this many rows of other hours


def _rule_text(rule) -> str:
    return _NO_RULE if rule is None else str(rule)


def _rule_sql(rule) -> str:
    """The good rule as a SQL expression over `value` (op comes from a fixed set, threshold is a float)."""
    if rule is None:
        return "0"
    op = {"==": "=", "!=": "!="}.get(rule.op, rule.op)
    return f"(value {op} {float(rule.threshold)!r})"


def _write_error(path: str, e: sqlite3.OperationalError) -> StoreError:
    """What a failed write means for the person running the command (exit 2, no traceback)."""
    msg = str(e)
    if "readonly" in msg:
        return StoreError(f"store {path}: cannot write: the file or its folder is read-only for this user",
                          hint="run as the store's owner, or fix its permissions; nothing was written")
    if "locked" in msg or "busy" in msg:
        return StoreError(f"store {path}: another process is writing to it (an ingest or import?)",
                          hint="run the command again when it is done; nothing was written")
    if "full" in msg:
        return StoreError(f"store {path}: the disk is full", hint="free some space and run it again; "
                          "what was written before is consistent")
    return StoreError(f"store {path}: write failed ({msg})")


def _writes(method):
    """Turn SQLite's operational failures on a write (read-only file, lock held elsewhere, full
    disk) into a StoreError. The method's own transaction handling has rolled back already."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as e:
            raise _write_error(self.url, e) from None
    return wrapper


class SQLiteStore(Store):
    def __init__(self, path: str, *, create: bool = True):
        self.url = path
        p = Path(path)
        if not p.parent.exists():
            raise StoreError(f"store {path}: folder {p.parent} does not exist")
        if not create and not p.exists():
            raise StoreError(f"store {path}: no such file", hint="ingest some events first, or check `store:` in the config")
        if p.exists() and p.is_dir():
            raise StoreError(f"store {path}: is a folder, not a SQLite file")
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=10000")
            self.conn.execute("PRAGMA cache_size=-32768")  # 32 MiB page cache
            self.conn.execute("PRAGMA temp_store=MEMORY")  # q_series and sorts never touch disk
            pending = _pending_migrations(self.conn)
            if "m001_create_events" not in pending:
                # Tables made by migrations already recorded as applied must be there (a store from a
                # pre-release build recorded m001 with another layout).
                tables = {n for (n,) in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                missing = {"series", "event_keys", "events", "event_ranges", "rollup_1h"} - tables
            else:
                missing = set()
            if missing:
                raise StoreError(
                    f"store {path}: made by a pre-release build of oncall-ai (no {', '.join(sorted(missing))} table)",
                    hint="ingest your events again into a new store file")
            if pending:
                _apply_migrations(self.conn)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"store {path}: not a usable SQLite database ({e})") from None
        self._series_by_key: dict[tuple, int] | None = None
        self._series_cache: list[Series] | None = None
        self._series_by_id: dict[int, Series] = {}
        self._rules: dict[str, str] | None = None

    # --- series -----------------------------------------------------------------------
    def _load_series_keys(self) -> dict[tuple, int]:
        if self._series_by_key is None:
            keys = {}
            for row in self.conn.execute(
                    "SELECT id, feature, metric, source, slice, model_id, prompt_version, index_version, judge_id FROM series"):
                sl = tuple(tuple(kv) for kv in orjson.loads(row[4]))
                keys[(row[1], row[2], row[3], sl, row[5] or None, row[6] or None, row[7] or None, row[8] or None)] = row[0]
            self._series_by_key = keys
        return self._series_by_key

    def series(self, feature: str | None = None, metric: str | None = None) -> list[Series]:
        # Loaded once per store object (thousands of rows at most) and kept until a write adds
        # series: triage and scores ask many times per command.
        if self._series_cache is None:
            out = []
            slices: dict[str, tuple] = {}  # few distinct slice texts: parse each once
            for r in self.conn.execute("SELECT id, feature, metric, source, slice, model_id, prompt_version, "
                                       "index_version, judge_id FROM series ORDER BY id"):
                sl = slices.get(r[4])
                if sl is None:
                    sl = slices[r[4]] = tuple(tuple(kv) for kv in orjson.loads(r[4]))
                out.append(Series(r[0], r[1], r[2], r[3], sl, r[5] or None, r[6] or None, r[7] or None, r[8] or None))
            self._series_cache = out
            self._series_by_id = {x.id: x for x in out}
        if feature is None and metric is None:
            return list(self._series_cache)
        return [x for x in self._series_cache
                if (feature is None or x.feature == feature) and (metric is None or x.metric == metric)]

    # --- writing ----------------------------------------------------------------------
    def _rollup_rules(self) -> dict[str, str]:
        if self._rules is None:
            self._rules = dict(self.conn.execute("SELECT metric, good FROM rollup_rules"))
        return self._rules

    def write_events(self, rows: Sequence[tuple], good_rules: dict) -> int:
        if not rows:
            return 0
        return self.write_columns(EventColumns.from_rows(rows), good_rules)

    @_writes
    def write_columns(self, cols: EventColumns, good_rules: dict) -> int:
        """One transaction: dedup keys, events, text, rollups and zone map, or nothing at all.

        Per-row work stays in C: the events go in with one executemany over zipped columns, and
        the rollup cells and zone map are computed by SQLite from the rows just inserted."""
        n = len(cols)
        if not n:
            return 0
        conn = self.conn
        dedup = list(zip([t // WEEK_MS for t in cols.ts], cols.h, strict=True))
        try:
            conn.execute("BEGIN IMMEDIATE")
            before = conn.total_changes
            conn.executemany("INSERT OR IGNORE INTO event_keys(w, h) VALUES (?, ?)", dedup)
            if conn.total_changes - before != n:
                # Some ids are stored already (a re-run) or repeat within the batch: redo one by
                # one, keeping only the rows whose key was new.
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                keep = [bool(conn.execute("INSERT OR IGNORE INTO event_keys(w, h) VALUES (?, ?)", k).rowcount)
                        for k in dedup]
                cols = cols.select(keep)
                n = len(cols)
                if not n:
                    conn.execute("COMMIT")
                    return 0
            keys = self._load_series_keys()
            sid_of_key = []
            for key in cols.keys:
                sid = keys.get(key)
                if sid is None:
                    sid = self._add_series(key)
                sid_of_key.append(sid)
            sids = [sid_of_key[k] for k in cols.kidx]
            first = conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0] + 1
            last = first + n - 1
            conn.executemany(
                "INSERT INTO events(rowid, series_id, ts, h, value, request_id, sample_rate) VALUES (?,?,?,?,?,?,?)",
                zip(range(first, last + 1), sids, cols.ts, cols.h, cols.value, cols.request_id, cols.sample_rate,
                    strict=True))
            if cols.texts:
                conn.executemany("INSERT INTO event_text(event_rowid, input, output) VALUES (?,?,?)",
                                 [(first + i, inp, out) for i, inp, out in cols.texts])
            # Rollups, per metric (each has its own good rule), aggregated by SQLite.
            sids_by_metric: dict[str, set[int]] = {}
            for key, sid in zip(cols.keys, sid_of_key, strict=True):
                sids_by_metric.setdefault(key[1], set()).add(sid)
            rule_of = {m: good_rules.get(m) for m in sids_by_metric}
            self._check_rules(rule_of, self._rollup_rules())
            for metric, metric_sids in sids_by_metric.items():
                in_list = ",".join(str(int(x)) for x in sorted(metric_sids))
                for table, step in (("rollup_1h", HOUR_MS), ("rollup_1d", DAY_MS)):
                    conn.execute(
                        f"INSERT INTO {table}(bucket, series_id, n, sum, sumsq, good) "
                        f"SELECT ts - ts % {step}, series_id, count(*), sum(value), sum(value * value), "
                        f"sum({_rule_sql(rule_of[metric])}) FROM events "
                        f"WHERE rowid BETWEEN ? AND ? AND series_id IN ({in_list}) GROUP BY 1, 2 "
                        f"ON CONFLICT(bucket, series_id) DO UPDATE SET n = n + excluded.n, sum = sum + excluded.sum, "
                        f"sumsq = sumsq + excluded.sumsq, good = good + excluded.good", (first, last))
            spans = {b: [lo, hi] for b, lo, hi in conn.execute(
                f"SELECT ts - ts % {HOUR_MS}, min(rowid), max(rowid) FROM events WHERE rowid BETWEEN ? AND ? "
                f"GROUP BY 1", (first, last))}
            self._extend_ranges(spans)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._series_by_key = None
            self._series_cache = None
            self._rules = None
            raise
        return n

    def _add_series(self, key: tuple) -> int:
        cur = self.conn.execute(
            "INSERT INTO series(feature, metric, source, slice, model_id, prompt_version, index_version, judge_id)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (key[0], key[1], key[2], orjson.dumps(key[3]).decode(), key[4] or "", key[5] or "",
             key[6] or "", key[7] or ""))
        self._series_by_key[key] = cur.lastrowid
        self._series_cache = None
        return cur.lastrowid

    def _check_rules(self, rule_of: dict, rules: dict) -> None:
        """The rule a metric's rollup `good` counts use must never change silently."""
        for metric, rule in rule_of.items():
            text = _rule_text(rule)
            stored = rules.get(metric)
            if stored is None:
                self.conn.execute("INSERT OR REPLACE INTO rollup_rules(metric, good) VALUES (?, ?)", (metric, text))
                rules[metric] = text
            elif stored != text:
                # Mixed rules in one rollup would be wrong: mark it stale ('stale' matches no config
                # rule), so queries read raw events until `oncall-ai store rebuild-rollups`.
                self.conn.execute("UPDATE rollup_rules SET good = 'stale' WHERE metric = ?", (metric,))
                rules[metric] = "stale"

    def _extend_ranges(self, spans: dict[int, list[int]]) -> None:
        """Zone map upkeep: extend the bucket's last rowid range when the new one is close to it."""
        conn = self.conn
        for bucket, (lo, hi) in spans.items():
            last = conn.execute("SELECT lo, hi FROM event_ranges WHERE bucket = ? ORDER BY lo DESC LIMIT 1",
                                (bucket,)).fetchone()
            if last is not None and last[1] + RANGE_MERGE_GAP >= lo:
                conn.execute("UPDATE event_ranges SET hi = ? WHERE bucket = ? AND lo = ?", (max(hi, last[1]), bucket, last[0]))
            else:
                conn.execute("INSERT INTO event_ranges(bucket, lo, hi) VALUES (?, ?, ?)", (bucket, lo, hi))

    def schema_version(self) -> int:
        """How many migrations are applied (m001 = 1, ...)."""
        return len(MIGRATIONS) - len(_pending_migrations(self.conn))

    @_writes
    def rebuild_rollups(self, good_rules: dict) -> int:
        """Recompute every hourly rollup from raw events with the given good rules."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM rollup_1h")
            conn.execute("DELETE FROM rollup_rules")
            metrics = [m for (m,) in conn.execute("SELECT DISTINCT metric FROM series")]
            for metric in metrics:
                rule = good_rules.get(metric)
                conn.execute(
                    f"INSERT INTO rollup_1h(bucket, series_id, n, sum, sumsq, good) "
                    f"SELECT e.ts - e.ts % {HOUR_MS}, e.series_id, count(*), sum(value), sum(value*value), "
                    f"sum({_rule_sql(rule)}) FROM events e JOIN series s ON s.id = e.series_id "
                    f"WHERE s.metric = ? GROUP BY e.ts - e.ts % {HOUR_MS}, e.series_id", (metric,))
                conn.execute("INSERT INTO rollup_rules(metric, good) VALUES (?, ?)", (metric, _rule_text(rule)))
            conn.execute("DELETE FROM rollup_1d")
            conn.execute(f"INSERT INTO rollup_1d(bucket, series_id, n, sum, sumsq, good) "
                         f"SELECT bucket - bucket % {DAY_MS}, series_id, sum(n), sum(sum), sum(sumsq), sum(good) "
                         f"FROM rollup_1h GROUP BY 1, 2")
            n = conn.execute("SELECT count(*) FROM rollup_1h").fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back itself (a full disk)
                conn.execute("ROLLBACK")
            raise
        self._rules = None
        return n

    # --- reading ----------------------------------------------------------------------
    def _use_series(self, ids: list[int]) -> None:
        """Load the query's series ids into a temp table (no variable limits, one plan)."""
        conn = self.conn
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS q_series (id INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM q_series")
        conn.executemany("INSERT INTO q_series(id) VALUES (?)", [(i,) for i in ids])

    def aggregate(self, series_ids: Iterable[int], start: int, end: int, *,
                  bucket_ms: int | None = None, good_rule=None) -> dict[tuple[int, int | None], Agg]:
        ids = sorted(set(series_ids))
        result: dict[tuple[int, int | None], Agg] = {}
        if not ids or end <= start:
            return result
        self._use_series(ids)
        use_rollups = (bucket_ms is None or bucket_ms % HOUR_MS == 0) and self._rollups_usable(good_rule)
        if use_rollups:
            first_full = -(-start // HOUR_MS) * HOUR_MS
            last_full = end - end % HOUR_MS
            if first_full < last_full:
                first_day = -(-first_full // DAY_MS) * DAY_MS
                last_day = last_full - last_full % DAY_MS
                if (bucket_ms is None or bucket_ms % DAY_MS == 0) and first_day < last_day:
                    self._query_rollups(len(ids), first_day, last_day, bucket_ms, good_rule, result,
                                        table="rollup_1d", step=DAY_MS)
                    if first_full < first_day:
                        self._query_rollups(len(ids), first_full, first_day, bucket_ms, good_rule, result)
                    if last_day < last_full:
                        self._query_rollups(len(ids), last_day, last_full, bucket_ms, good_rule, result)
                else:
                    self._query_rollups(len(ids), first_full, last_full, bucket_ms, good_rule, result)
                if start < first_full:
                    self._query_raw(start, first_full, bucket_ms, good_rule, result)
                if last_full < end:
                    self._query_raw(last_full, end, bucket_ms, good_rule, result)
                return result
        self._query_raw(start, end, bucket_ms, good_rule, result)
        return result

    def _rollups_usable(self, good_rule) -> bool:
        if good_rule is None:
            return True
        rules = self._rollup_rules()
        want = _rule_text(good_rule)
        metrics = [m for (m,) in self.conn.execute(
            "SELECT DISTINCT metric FROM series WHERE id IN (SELECT id FROM q_series)")]
        return all(rules.get(m, want) == want for m in metrics)

    def _query_rollups(self, n_series: int, start: int, end: int, bucket_ms, good_rule, result, *,
                       table: str = "rollup_1h", step: int = HOUR_MS) -> None:
        bucket = "NULL" if bucket_ms is None else f"bucket - bucket % {int(bucket_ms)}"
        good = "sum(good)" if good_rule is not None else "NULL"
        n_buckets = (end - start) // step
        if n_buckets * n_series <= 200_000:
            # Seek each (bucket, series) pair in the (bucket, series_id) key instead of scanning
            # every series of every bucket.
            hours = ",".join(str(start + i * step) for i in range(n_buckets))
            where = f"bucket IN ({hours}) AND series_id IN (SELECT id FROM q_series)"
            args: tuple = ()
        else:
            where = "bucket >= ? AND bucket < ? AND series_id IN (SELECT id FROM q_series)"
            args = (start, end)
        sql = (f"SELECT series_id, {bucket} AS b, sum(n), sum(sum), sum(sumsq), {good} FROM {table} "
               f"WHERE {where} GROUP BY series_id, b")
        self._merge(self.conn.execute(sql, args), result)

    def _ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        """Merged rowid ranges of `events` that can hold events in [start, end)."""
        spans = sorted(self.conn.execute(
            "SELECT lo, hi FROM event_ranges WHERE bucket >= ? AND bucket < ?", (start - start % HOUR_MS, end)))
        merged: list[list[int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return [(lo, hi) for lo, hi in merged]

    def _query_raw(self, start: int, end: int, bucket_ms, good_rule, result) -> None:
        bucket = "NULL" if bucket_ms is None else f"ts - ts % {int(bucket_ms)}"
        good = f"sum({_rule_sql(good_rule)})" if good_rule is not None else "NULL"
        sql = (f"SELECT series_id, {bucket} AS b, count(*), sum(value), sum(value*value), {good} FROM events "
               f"WHERE rowid BETWEEN ? AND ? AND ts >= ? AND ts < ? AND series_id IN (SELECT id FROM q_series) "
               f"GROUP BY series_id, b")
        for lo, hi in self._ranges(start, end):
            self._merge(self.conn.execute(sql, (lo, hi, start, end)), result)

    @staticmethod
    def _merge(rows, result) -> None:
        get = result.get
        for sid, b, n, s, ss, g in rows:
            key = (sid, b)
            agg = get(key)
            if agg is None:
                result[key] = Agg(n, s, ss, None if g is None else int(g))
            else:
                agg.add(Agg(n, s, ss, None if g is None else int(g)))

    def events(self, series_ids: Iterable[int], start: int, end: int, *, order: str = "ts",
               limit: int | None = None, with_text: bool = False) -> list[EventRecord]:
        ids = sorted(set(series_ids))
        if not ids or end <= start:
            return []
        self._use_series(ids)
        self.series()  # fills the id index
        by_id = {i: self._series_by_id[i] for i in ids if i in self._series_by_id}
        # Ties broken by the id hash, not by insertion order: the same events come back on every
        # backend (ClickHouse has no insertion order), so `limit` picks the same ones.
        order_sql = {"ts": "e.ts, e.h", "value": "e.value, e.ts, e.h", "-ts": "e.ts DESC, e.h"}.get(order)
        if order_sql is None:
            raise ValueError(f"order must be ts, -ts or value, not {order!r}")
        ranges = self._ranges(start, end)
        if not ranges:
            return []
        text_cols = ", t.input, t.output" if with_text else ", NULL, NULL"
        join = " LEFT JOIN event_text t ON t.event_rowid = e.rowid" if with_text else ""
        cond = " OR ".join("e.rowid BETWEEN ? AND ?" for _ in ranges)
        sql = (f"SELECT e.h, e.series_id, e.ts, e.value, e.request_id, e.sample_rate{text_cols} FROM events e{join} "
               f"WHERE ({cond}) AND e.ts >= ? AND e.ts < ? AND e.series_id IN (SELECT id FROM q_series) "
               f"ORDER BY {order_sql}")
        args: list = [x for r in ranges for x in r] + [start, end]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [EventRecord(h, by_id[sid], ts, v, rid, sr, inp, outp)
                for h, sid, ts, v, rid, sr, inp, outp in self.conn.execute(sql, args)]

    def time_bounds(self) -> tuple[int | None, int | None]:
        # Two subqueries: SQLite answers a lone min() or max() from the key in microseconds, but
        # scans the whole table for both in one SELECT (0.2 s on 10M events).
        row = self.conn.execute(
            "SELECT (SELECT min(bucket) FROM rollup_1h), (SELECT max(bucket) FROM rollup_1h)").fetchone()
        if row[0] is None:
            return None, None
        lo = self._edge("min", row[0])
        hi = self._edge("max", row[1])
        return lo, hi

    def _edge(self, fn: str, bucket: int) -> int | None:
        best = None
        for lo, hi in self._ranges(bucket, bucket + HOUR_MS):
            v = self.conn.execute(f"SELECT {fn}(ts) FROM events WHERE rowid BETWEEN ? AND ? AND ts >= ? AND ts < ?",
                                  (lo, hi, bucket, bucket + HOUR_MS)).fetchone()[0]
            if v is not None:
                best = v if best is None else (min(best, v) if fn == "min" else max(best, v))
        return best

    def count_events(self) -> int:
        return self.conn.execute("SELECT coalesce(sum(n), 0) FROM rollup_1h").fetchone()[0]

    # --- documents --------------------------------------------------------------------
    @_writes
    def put_docs(self, kind: str, docs: Iterable[Doc], *, replace: bool = False) -> int:
        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
        rows = [(kind, d.id, int(d.ts), orjson.dumps(d.body).decode()) for d in docs]
        if not rows:
            return 0
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = conn.total_changes
            conn.executemany(f"{verb} INTO docs(kind, id, ts, body) VALUES (?,?,?,?)", rows)
            changed = conn.total_changes - before
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back itself (a full disk)
                conn.execute("ROLLBACK")
            raise
        return changed

    def get_docs(self, kind: str, *, since: int | None = None, until: int | None = None,
                 ids: Iterable[str] | None = None) -> list[Doc]:
        sql = "SELECT id, ts, body FROM docs WHERE kind = ?"
        args: list = [kind]
        if since is not None:
            sql += " AND ts >= ?"
            args.append(since)
        if until is not None:
            sql += " AND ts < ?"
            args.append(until)
        if ids is not None:
            ids = list(ids)
            if not ids:
                return []
            sql += f" AND id IN ({','.join('?' * len(ids))})"
            args.extend(ids)
        sql += " ORDER BY ts, id"
        return [Doc(kind, i, ts, orjson.loads(body)) for i, ts, body in self.conn.execute(sql, args)]

    @_writes
    def delete_docs(self, kind: str, ids: Iterable[str]) -> int:
        ids = list(ids)
        if not ids:
            return 0
        cur = self.conn.execute(f"DELETE FROM docs WHERE kind = ? AND id IN ({','.join('?' * len(ids))})", [kind, *ids])
        return cur.rowcount

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - closing twice is harmless
            pass
