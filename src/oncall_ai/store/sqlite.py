"""SQLite score store (the embedded default).

Layout (see store/base.py for the model):
- `series`     one row per (feature, metric, source, slice, versions); '' stands for "absent".
- `event_keys` the dedup set: (week of ts, 64-bit hash of the id). Keyed by time so that inserts stay
  cache-local at tens of millions of events: an id is unique within the UTC week of its timestamp
  (an event's id and serving time are fixed when it is scored, so re-ingesting never duplicates).
- `events`     append-only (rowid order = ingest order), no secondary index: cheap to write.
- `event_ranges` a zone map: for each 5 minutes (each hour, in what oncall-ai 0.1.0 wrote), the rowid
  ranges of `events` that hold its events. Raw reads scan only those ranges (ingest is mostly in
  time order, so they are tight).
- `event_text` input/output text by event rowid, only for events that carry it.
- `streams`    one id per (feature, metric); `series.stream` points to it.
- `rollup_1h`, `rollup_1d`  (stream, hour or day, series_id) -> n, sum, sum of squares, good:
  slice/time questions read these; one feature's window is one contiguous range. A window's
  partial edge hours are read from raw events (or as the hour's cells minus the raw rest, when
  most of the hour is inside the window).
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
from oncall_ai.store.base import HOUR_MS, ZONE_MS, Agg, Doc, EventColumns, EventRecord, Series, Store

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


def m004_stream_clustered_rollups(db) -> None:
    """Rollup cells keyed by stream first: a stream is one (feature, metric). One feature's
    window is then one contiguous range of the rollup tables, not a seek per series and bucket
    (which cost more than scanning raw events once series multiply by slices and versions)."""
    db.executescript(
        """
        CREATE TABLE streams (id INTEGER PRIMARY KEY, feature TEXT NOT NULL, metric TEXT NOT NULL);
        CREATE UNIQUE INDEX streams_key ON streams (feature, metric);
        INSERT INTO streams(feature, metric) SELECT DISTINCT feature, metric FROM series ORDER BY 1, 2;
        ALTER TABLE series ADD COLUMN stream INTEGER NOT NULL DEFAULT 0;
        UPDATE series SET stream = (SELECT id FROM streams t WHERE t.feature = series.feature AND t.metric = series.metric);
        """
    )
    for table in ("rollup_1h", "rollup_1d"):
        db.executescript(
            f"""
            CREATE TABLE {table}_s (
                stream INTEGER NOT NULL,
                bucket INTEGER NOT NULL,
                series_id INTEGER NOT NULL,
                n INTEGER NOT NULL,
                sum REAL NOT NULL,
                sumsq REAL NOT NULL,
                good INTEGER NOT NULL,
                PRIMARY KEY (stream, bucket, series_id)
            ) WITHOUT ROWID;
            INSERT INTO {table}_s(stream, bucket, series_id, n, sum, sumsq, good)
                SELECT s.stream, r.bucket, r.series_id, r.n, r.sum, r.sumsq, r.good
                FROM {table} r JOIN series s ON s.id = r.series_id ORDER BY 1, 2, 3;
            DROP TABLE {table};
            ALTER TABLE {table}_s RENAME TO {table};
            """
        )


# Append-only: never edit or reorder a released migration; add m005_... instead.
MIGRATIONS = (m001_create_events, m002_create_docs, m003_create_daily_rollups, m004_stream_clustered_rollups)


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
RANGE_MERGE_GAP = 50_000  # rows: a zone-map range may span this many rows of other buckets


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
    # Ingest's parse workers compute the rollup cells of each block (EventColumns.rollup) for it.
    uses_rollup_cells = True

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
        self._series_by_key: dict[tuple, tuple[int, int]] | None = None
        self._streams: dict[tuple[str, str], int] = {}
        self._series_cache: list[Series] | None = None
        self._series_by_id: dict[int, Series] = {}
        self._stream_of: dict[int, int] = {}
        self._series_by_fm: dict[tuple[str, str], list[Series]] = {}
        self._rules: dict[str, str] | None = None

    # --- series -----------------------------------------------------------------------
    def _load_series_keys(self) -> dict[tuple, tuple[int, int]]:
        """series key -> (series id, stream id)."""
        if self._series_by_key is None:
            keys = {}
            for row in self.conn.execute(
                    "SELECT id, feature, metric, source, slice, model_id, prompt_version, index_version, judge_id, "
                    "stream FROM series"):
                sl = tuple(tuple(kv) for kv in orjson.loads(row[4]))
                keys[(row[1], row[2], row[3], sl, row[5] or None, row[6] or None, row[7] or None, row[8] or None)] = (
                    row[0], row[9])
            self._series_by_key = keys
            self._streams = {(f, m): i for i, f, m in self.conn.execute("SELECT id, feature, metric FROM streams")}
        return self._series_by_key

    def series(self, feature: str | None = None, metric: str | None = None) -> list[Series]:
        # Loaded once per store object (thousands of rows at most) and kept until a write adds
        # series: triage and scores ask many times per command.
        if self._series_cache is None:
            out = []
            slices: dict[str, tuple] = {}  # few distinct slice texts: parse each once
            stream_of: dict[int, int] = {}
            by_fm: dict[tuple, list[Series]] = {}
            for r in self.conn.execute("SELECT id, feature, metric, source, slice, model_id, prompt_version, "
                                       "index_version, judge_id, stream FROM series ORDER BY id"):
                sl = slices.get(r[4])
                if sl is None:
                    sl = slices[r[4]] = tuple(tuple(kv) for kv in orjson.loads(r[4]))
                x = Series(r[0], r[1], r[2], r[3], sl, r[5] or None, r[6] or None, r[7] or None, r[8] or None)
                out.append(x)
                stream_of[r[0]] = r[9]
                by_fm.setdefault((r[1], r[2]), []).append(x)
            self._series_cache = out
            self._series_by_id = {x.id: x for x in out}
            self._stream_of = stream_of
            self._series_by_fm = by_fm
        if feature is None and metric is None:
            return list(self._series_cache)
        if feature is not None and metric is not None:
            return list(self._series_by_fm.get((feature, metric), ()))
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

        Per-row work stays in C or in the parse workers: the events go in with one executemany
        over zipped columns; the rollup cells and each 5 minutes' rows come ready from the parser
        (`EventColumns.rollup`, computed with the same good rules), so the writer only upserts
        cells (about one per two events at 10M events over 60 days, far fewer when dense)."""
        n = len(cols)
        if not n:
            return 0
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            keys = self._load_series_keys()
            sid_of_key, stream_of_key = [], []
            for key in cols.keys:
                ss = keys.get(key)
                if ss is None:
                    ss = self._add_series(key)
                sid_of_key.append(ss[0])
                stream_of_key.append(ss[1])
            first = conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0] + 1
            conn.executemany(
                "INSERT INTO events(series_id, ts, h, value, request_id, sample_rate) VALUES (?,?,?,?,?,?)",
                zip([sid_of_key[k] for k in cols.kidx], cols.ts, cols.h, cols.value, cols.request_id,
                    cols.sample_rate, strict=True))
            # The dedup keys, from the rows just written (no second pass of Python values).
            before = conn.total_changes
            conn.execute(f"INSERT OR IGNORE INTO event_keys(w, h) SELECT ts / {WEEK_MS}, h FROM events "
                         f"WHERE rowid >= ?", (first,))
            if conn.total_changes - before != n:
                # Some ids are stored already (a re-run) or repeat within the batch: start over,
                # one key at a time, keeping only the rows whose key was new.
                conn.execute("ROLLBACK")
                self._series_by_key = None
                self._series_cache = None
                conn.execute("BEGIN IMMEDIATE")
                keep = [bool(conn.execute(f"INSERT OR IGNORE INTO event_keys(w, h) VALUES (? / {WEEK_MS}, ?)",
                                          (t, h)).rowcount) for t, h in zip(cols.ts, cols.h, strict=True)]
                conn.execute("ROLLBACK")
                cols = cols.select(keep)
                # Written again from the top: only another writer in between could make the
                # counts differ a second time.
                return self.write_columns(cols, good_rules) if len(cols) else 0
            self._finish_batch(cols, good_rules, first, sid_of_key, stream_of_key)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._series_by_key = None
            self._series_cache = None
            self._rules = None
            raise
        return n

    def _finish_batch(self, cols: EventColumns, good_rules: dict, first: int, sid_of_key: list[int],
                      stream_of_key: list[int]) -> None:
        """Text, rollup cells and zone map of rows just written at rowids first.."""
        conn = self.conn
        if cols.texts:
            conn.executemany("INSERT INTO event_text(event_rowid, input, output) VALUES (?,?,?)",
                             [(first + i, inp, out) for i, inp, out in cols.texts])
        rule_of = {key[1]: good_rules.get(key[1]) for key in cols.keys}
        self._check_rules(rule_of, self._rollup_rules())
        cells = cols.cells if cols.cells is not None else cols.rollup(good_rules)
        # The batch's hourly cells go to a temp table once; SQLite adds them to the hourly cells
        # and, summed by day (blocks of one batch number the same series apart), to the daily.
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS batch_cells (stream INTEGER, bucket INTEGER, "
                     "series_id INTEGER, n INTEGER, sum REAL, sumsq REAL, good INTEGER)")
        conn.execute("DELETE FROM batch_cells")
        conn.executemany("INSERT INTO batch_cells VALUES (?,?,?,?,?,?,?)",
                         zip([stream_of_key[k] for k in cells.k], cells.b, [sid_of_key[k] for k in cells.k],
                             cells.n, cells.s, cells.ss, cells.g, strict=True))
        upsert = ("ON CONFLICT(stream, bucket, series_id) DO UPDATE SET n = n + excluded.n, sum = sum + excluded.sum, "
                  "sumsq = sumsq + excluded.sumsq, good = good + excluded.good")
        conn.execute(f"INSERT INTO rollup_1h(stream, bucket, series_id, n, sum, sumsq, good) "
                     f"SELECT * FROM batch_cells WHERE true {upsert}")
        conn.execute(f"INSERT INTO rollup_1d(stream, bucket, series_id, n, sum, sumsq, good) "
                     f"SELECT stream, bucket - bucket % {DAY_MS}, series_id, sum(n), sum(sum), sum(sumsq), sum(good) "
                     f"FROM batch_cells GROUP BY 1, 2, 3 {upsert}")
        self._extend_ranges({b: [first + lo, first + hi] for b, (lo, hi) in cells.spans.items()})

    def _add_series(self, key: tuple) -> tuple[int, int]:
        stream = self._streams.get((key[0], key[1]))
        if stream is None:
            stream = self.conn.execute("INSERT INTO streams(feature, metric) VALUES (?, ?)", (key[0], key[1])).lastrowid
            self._streams[(key[0], key[1])] = stream
        cur = self.conn.execute(
            "INSERT INTO series(feature, metric, source, slice, model_id, prompt_version, index_version, judge_id,"
            " stream) VALUES (?,?,?,?,?,?,?,?,?)",
            (key[0], key[1], key[2], orjson.dumps(key[3]).decode(), key[4] or "", key[5] or "",
             key[6] or "", key[7] or "", stream))
        self._series_by_key[key] = (cur.lastrowid, stream)
        self._series_cache = None
        return cur.lastrowid, stream

    def _check_rules(self, rule_of: dict, rules: dict) -> None:
        """The rule a metric's rollup `good` counts use must never change silently."""
        for metric, rule in rule_of.items():
            text = _rule_text(rule)
            stored = rules.get(metric)
            if stored is None:
                self.conn.execute("INSERT OR REPLACE INTO rollup_rules(metric, good) VALUES (?, ?)", (metric, text))
                rules[metric] = text
            elif stored != text and stored != "stale":
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
        """Recompute every hourly and daily rollup from raw events with the given good rules."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM rollup_1h")
            conn.execute("DELETE FROM rollup_rules")
            metrics = [m for (m,) in conn.execute("SELECT DISTINCT metric FROM series")]
            for metric in metrics:
                rule = good_rules.get(metric)
                conn.execute(
                    f"INSERT INTO rollup_1h(stream, bucket, series_id, n, sum, sumsq, good) "
                    f"SELECT s.stream, e.ts - e.ts % {HOUR_MS}, e.series_id, count(*), sum(value), sum(value*value), "
                    f"sum({_rule_sql(rule)}) FROM events e JOIN series s ON s.id = e.series_id "
                    f"WHERE s.metric = ? GROUP BY 1, 2, 3", (metric,))
                conn.execute("INSERT INTO rollup_rules(metric, good) VALUES (?, ?)", (metric, _rule_text(rule)))
            conn.execute("DELETE FROM rollup_1d")
            conn.execute(f"INSERT INTO rollup_1d(stream, bucket, series_id, n, sum, sumsq, good) "
                         f"SELECT stream, bucket - bucket % {DAY_MS}, series_id, sum(n), sum(sum), sum(sumsq), sum(good) "
                         f"FROM rollup_1h GROUP BY 1, 2, 3")
            n = conn.execute("SELECT count(*) FROM rollup_1h").fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back itself (a full disk)
                conn.execute("ROLLBACK")
            raise
        self._rules = None
        return n

    # --- reading ----------------------------------------------------------------------
    def _use_series(self, ids: list[int], groups: list[int] | None = None) -> None:
        """Load the query's series ids (and the group each one is summed into) into a temp table:
        no variable limits, one plan, and SQLite does the grouping."""
        conn = self.conn
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS q_series (id INTEGER PRIMARY KEY, g INTEGER NOT NULL)")
        conn.execute("DELETE FROM q_series")
        if groups is None:
            conn.execute("INSERT INTO q_series(id, g) SELECT value, value FROM json_each(?)", (orjson.dumps(ids),))
        elif len(groups) < 1 << 24 and all(0 < i < 1 << 38 for i in (ids[0], ids[-1])):
            # One statement: (id, group) packed in one integer each (ids are sorted and positive).
            packed = [i << 24 | g for i, g in zip(ids, groups, strict=True)]
            conn.execute("INSERT INTO q_series(id, g) SELECT value >> 24, value & 16777215 FROM json_each(?)",
                         (orjson.dumps(packed),))
        else:
            conn.executemany("INSERT INTO q_series(id, g) VALUES (?, ?)", zip(ids, groups, strict=True))

    def aggregate(self, series_ids: Iterable[int], start: int, end: int, *,
                  bucket_ms: int | None = None, good_rule=None) -> dict[tuple[int, int | None], Agg]:
        ids = sorted(set(series_ids))
        if not ids or end <= start:
            return {}
        return self._aggregate(ids, None, start, end, bucket_ms, good_rule)

    def aggregate_groups(self, group_of, start: int, end: int, *, bucket_ms: int | None = None,
                         good_rule=None) -> dict[tuple, Agg]:
        if not group_of or end <= start:
            return {}
        names: dict = {}
        ids, gidx = [], []
        for sid in sorted(group_of):
            ids.append(sid)
            gidx.append(names.setdefault(group_of[sid], len(names)))
        by_index = list(names)
        res = self._aggregate(ids, gidx, start, end, bucket_ms, good_rule)
        return {(by_index[g], b): agg for (g, b), agg in res.items()}

    def _aggregate(self, ids: list[int], groups: list[int] | None, start: int, end: int, bucket_ms,
                   good_rule) -> dict[tuple[int, int | None], Agg]:
        result: dict[tuple[int, int | None], Agg] = {}
        self._use_series(ids, groups)
        use_rollups = (bucket_ms is None or bucket_ms % HOUR_MS == 0) and self._rollups_usable(ids, good_rule)
        first_full = -(-start // HOUR_MS) * HOUR_MS
        last_full = end - end % HOUR_MS
        if not use_rollups or first_full >= last_full:
            self._query_raw(start, end, bucket_ms, good_rule, result)
            return result
        # Whole hours from the rollups, partial hours at the edges from raw events. When more
        # than half of an edge hour is inside the window, it is read as the hour's cells minus
        # the raw rest: at most half an hour of raw events per edge.
        lo, hi = first_full, last_full
        add: list[tuple[int, int]] = []
        rest: list[tuple[int, int]] = []
        if start < first_full:
            if first_full - start > HOUR_MS // 2:
                lo -= HOUR_MS
                rest.append((lo, start))
            else:
                add.append((start, first_full))
        if last_full < end:
            if end - last_full > HOUR_MS // 2:
                hi += HOUR_MS
                rest.append((end, hi))
            else:
                add.append((last_full, end))
        streams = self._streams_of(ids)
        first_day = -(-lo // DAY_MS) * DAY_MS
        last_day = hi - hi % DAY_MS
        if (bucket_ms is None or bucket_ms % DAY_MS == 0) and first_day < last_day:
            self._query_rollups(streams, first_day, last_day, bucket_ms, good_rule, result, table="rollup_1d")
            if lo < first_day:
                self._query_rollups(streams, lo, first_day, bucket_ms, good_rule, result)
            if last_day < hi:
                self._query_rollups(streams, last_day, hi, bucket_ms, good_rule, result)
        else:
            self._query_rollups(streams, lo, hi, bucket_ms, good_rule, result)
        for a, b in add:
            self._query_raw(a, b, bucket_ms, good_rule, result)
        if rest:
            out: dict = {}
            for a, b in rest:
                self._query_raw(a, b, bucket_ms, good_rule, out)
            if any(key not in result or result[key].n < agg.n for key, agg in out.items()):
                # The rollups do not hold the rest (a store edited by hand?): read it all raw.
                result.clear()
                self._query_raw(start, end, bucket_ms, good_rule, result)
                return result
            for key, agg in out.items():
                result[key].subtract(agg)
            for key in [k for k, agg in result.items() if agg.n == 0]:
                del result[key]  # every event of the cell was in the rest
        return result

    def _streams_of(self, ids: list[int]) -> str:
        self.series()  # fills the stream index
        stream_of = self._stream_of
        found = {stream_of.get(i) for i in ids}
        found.discard(None)
        return ",".join(str(int(x)) for x in sorted(found)) or "NULL"

    def _rollups_usable(self, ids: list[int], good_rule) -> bool:
        if good_rule is None:
            return True
        rules = self._rollup_rules()
        want = _rule_text(good_rule)
        self.series()
        by_id = self._series_by_id
        metrics = {by_id[i].metric for i in ids if i in by_id}
        return all(rules.get(m, want) == want for m in metrics)

    def _query_rollups(self, streams: str, start: int, end: int, bucket_ms, good_rule, result, *,
                       table: str = "rollup_1h") -> None:
        bucket = "NULL" if bucket_ms is None else f"r.bucket - r.bucket % {int(bucket_ms)}"
        good = "sum(r.good)" if good_rule is not None else "NULL"
        sql = (f"SELECT q.g, {bucket} AS b, sum(r.n), sum(r.sum), sum(r.sumsq), {good} "
               f"FROM {table} r JOIN q_series q ON q.id = r.series_id "
               f"WHERE r.stream IN ({streams}) AND r.bucket >= ? AND r.bucket < ? GROUP BY q.g, b")
        self._merge(self.conn.execute(sql, (start, end)), result)

    def _ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        """Merged rowid ranges of `events` that can hold events in [start, end). Zone map buckets
        are 5 minutes (hours in stores written before 0.2: the hour of `start` is included)."""
        spans = sorted(self.conn.execute(
            "SELECT lo, hi FROM event_ranges WHERE bucket < ? AND (bucket >= ? OR bucket = ?)",
            (end, start - start % ZONE_MS, start - start % HOUR_MS)))
        merged: list[list[int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        return [(lo, hi) for lo, hi in merged]

    def _query_raw(self, start: int, end: int, bucket_ms, good_rule, result) -> None:
        bucket = "NULL" if bucket_ms is None else f"e.ts - e.ts % {int(bucket_ms)}"
        good = f"sum({_rule_sql(good_rule)})" if good_rule is not None else "NULL"
        sql = (f"SELECT q.g, {bucket} AS b, count(*), sum(value), sum(value*value), {good} "
               f"FROM events e JOIN q_series q ON q.id = e.series_id "
               f"WHERE e.rowid BETWEEN ? AND ? AND e.ts >= ? AND e.ts < ? GROUP BY q.g, b")
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
        # From the zone map (keyed by bucket; the rollups are keyed by stream first), as two
        # subqueries: SQLite answers a lone min() or max() from the key without a scan.
        row = self.conn.execute(
            "SELECT (SELECT min(bucket) FROM event_ranges), (SELECT max(bucket) FROM event_ranges)").fetchone()
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
        # The daily cells hold every event once (kept with the hourly ones in each transaction).
        return self.conn.execute("SELECT coalesce(sum(n), 0) FROM rollup_1d").fetchone()[0]

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
