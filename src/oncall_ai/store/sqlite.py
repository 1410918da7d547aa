"""SQLite score store (the embedded default).

Layout (see store/base.py for the model):
- `series`     one row per (feature, metric, source, slice, versions); '' stands for "absent".
- `event_ids`  the 64-bit id hash of every stored event: the dedup set (idempotent ingest).
- `events`     WITHOUT ROWID, clustered by (series_id, ts, h): a slice's time range is one range scan.
- `event_text` input/output text, only for events that carry it.
- `rollup_1h`  (series_id, hour) -> n, sum, sum of squares, good: slice/time questions read these.
- `rollup_rules` the good rule each metric's rollup `good` was counted with. When the config's rule
  differs, queries fall back to raw events (exact, slower) and `oncall-ai store rebuild-rollups` fixes it.
- `docs`       small JSON documents by (kind, id).

Migrations are append-only (`m001_...`) and applied when the store opens. WAL mode; each ingest
batch is one transaction, so a killed ingest leaves whole batches and a re-run skips what is there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import orjson

from oncall_ai.errors import StoreError
from oncall_ai.store.base import HOUR_MS, Agg, Doc, EventRecord, Series, Store


def _import_sqlite_utils():
    """sqlite-utils imports pandas and numpy whenever they are installed (for DataFrame support the
    store never uses): over a second of start-up for every command. Hide them while it loads, unless
    the process already imported them; afterwards they import normally."""
    import sys

    hidden = [m for m in ("pandas", "numpy") if m not in sys.modules]
    for m in hidden:
        sys.modules[m] = None  # makes `import m` raise ImportError, which sqlite-utils tolerates
    try:
        import sqlite_utils
    finally:
        for m in hidden:
            if sys.modules.get(m) is None:
                del sys.modules[m]
    return sqlite_utils.Database, sqlite_utils.Migrations


Database, Migrations = _import_sqlite_utils()  # sqlite-utils >= 4

migrations = Migrations("oncall_ai")


@migrations()
def m001_create_events(db: Database) -> None:
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
        CREATE TABLE event_ids (h INTEGER PRIMARY KEY);
        CREATE TABLE events (
            series_id INTEGER NOT NULL,
            ts INTEGER NOT NULL,
            h INTEGER NOT NULL,
            value REAL NOT NULL,
            request_id TEXT,
            sample_rate REAL,
            PRIMARY KEY (series_id, ts, h)
        ) WITHOUT ROWID;
        CREATE TABLE event_text (h INTEGER PRIMARY KEY, input TEXT, output TEXT);
        CREATE TABLE rollup_1h (
            series_id INTEGER NOT NULL,
            bucket INTEGER NOT NULL,
            n INTEGER NOT NULL,
            sum REAL NOT NULL,
            sumsq REAL NOT NULL,
            good INTEGER NOT NULL,
            PRIMARY KEY (series_id, bucket)
        ) WITHOUT ROWID;
        CREATE TABLE rollup_rules (metric TEXT PRIMARY KEY, good TEXT NOT NULL);
        """
    )


@migrations()
def m002_create_docs(db: Database) -> None:
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


_NO_RULE = "none"


def _rule_text(rule) -> str:
    return _NO_RULE if rule is None else str(rule)


def _rule_sql(rule) -> str:
    """The good rule as a SQL expression over `value` (op comes from a fixed set, threshold is a float)."""
    if rule is None:
        return "0"
    op = {"==": "=", "!=": "!="}.get(rule.op, rule.op)
    return f"(value {op} {float(rule.threshold)!r})"


class SQLiteStore(Store):
    def __init__(self, path: str, *, create: bool = True):
        self.url = path
        p = Path(path)
        if not create and not p.exists():
            raise StoreError(f"store {path}: no such file", hint="ingest some events first, or check `store:` in the config")
        if p.exists() and p.is_dir():
            raise StoreError(f"store {path}: is a folder, not a SQLite file")
        if not p.parent.exists():
            raise StoreError(f"store {path}: folder {p.parent} does not exist")
        try:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=10000")
            self.conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache
            self.db = Database(self.conn)
            if migrations.pending(self.db):
                migrations.apply(self.db)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"store {path}: not a usable SQLite database ({e})") from None
        self._series_by_key: dict[tuple, int] | None = None
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
        sql = "SELECT id, feature, metric, source, slice, model_id, prompt_version, index_version, judge_id FROM series"
        where, args = [], []
        if feature is not None:
            where.append("feature = ?")
            args.append(feature)
        if metric is not None:
            where.append("metric = ?")
            args.append(metric)
        if where:
            sql += " WHERE " + " AND ".join(where)
        out = []
        for r in self.conn.execute(sql + " ORDER BY id", args):
            out.append(Series(r[0], r[1], r[2], r[3], tuple(tuple(kv) for kv in orjson.loads(r[4])),
                              r[5] or None, r[6] or None, r[7] or None, r[8] or None))
        return out

    # --- writing ----------------------------------------------------------------------
    def _rollup_rules(self) -> dict[str, str]:
        if self._rules is None:
            self._rules = dict(self.conn.execute("SELECT metric, good FROM rollup_rules"))
        return self._rules

    def write_events(self, rows: Sequence[tuple], good_rules: dict) -> int:
        if not rows:
            return 0
        # Deduplicate within the batch first (last one wins is irrelevant: same id, same event).
        by_h = {}
        for r in rows:
            by_h.setdefault(r[0], r)
        batch = list(by_h.values())
        conn = self.conn
        keys = self._load_series_keys()
        rules = self._rollup_rules()
        try:
            conn.execute("BEGIN IMMEDIATE")
            before = conn.total_changes
            conn.executemany("INSERT OR IGNORE INTO event_ids(h) VALUES (?)", [(r[0],) for r in batch])
            inserted = conn.total_changes - before
            if inserted != len(batch):
                # Some ids were stored already (a re-run): find out which, and keep only new ones.
                conn.execute("ROLLBACK")
                conn.execute("BEGIN IMMEDIATE")
                existing = set()
                hs = [r[0] for r in batch]
                for i in range(0, len(hs), 900):
                    chunk = hs[i:i + 900]
                    existing.update(h for (h,) in conn.execute(
                        f"SELECT h FROM event_ids WHERE h IN ({','.join('?' * len(chunk))})", chunk))
                batch = [r for r in batch if r[0] not in existing]
                if not batch:
                    conn.execute("COMMIT")
                    return 0
                conn.executemany("INSERT INTO event_ids(h) VALUES (?)", [(r[0],) for r in batch])
            new_series = []
            event_rows = []
            text_rows = []
            cells: dict[tuple[int, int], list] = {}
            rule_cache: dict[str, object] = {}
            for h, key, ts, value, request_id, sample_rate, inp, out in batch:
                sid = keys.get(key)
                if sid is None:
                    cur = conn.execute(
                        "INSERT INTO series(feature, metric, source, slice, model_id, prompt_version, index_version, judge_id)"
                        " VALUES (?,?,?,?,?,?,?,?)",
                        (key[0], key[1], key[2], orjson.dumps(key[3]).decode(), key[4] or "", key[5] or "",
                         key[6] or "", key[7] or ""))
                    sid = cur.lastrowid
                    keys[key] = sid
                    new_series.append(key)
                event_rows.append((sid, ts, h, value, request_id, sample_rate))
                if inp is not None or out is not None:
                    text_rows.append((h, inp, out))
                metric = key[1]
                rule = rule_cache.get(metric, rule_cache)
                if rule is rule_cache:
                    rule = good_rules.get(metric)
                    rule_cache[metric] = rule
                cell_key = (sid, ts - ts % HOUR_MS)
                cell = cells.get(cell_key)
                good = 1 if (rule is not None and rule.is_good(value)) else 0
                if cell is None:
                    cells[cell_key] = [1, value, value * value, good]
                else:
                    cell[0] += 1
                    cell[1] += value
                    cell[2] += value * value
                    cell[3] += good
            # Rollup rules: the rule used for a metric's `good` counts must never change silently.
            for metric, rule in rule_cache.items():
                text = _rule_text(rule)
                stored = rules.get(metric)
                if stored is None:
                    conn.execute("INSERT OR REPLACE INTO rollup_rules(metric, good) VALUES (?, ?)", (metric, text))
                    rules[metric] = text
                elif stored != text:
                    # Mixed rules in one rollup would be wrong: mark as stale ('stale' never matches a
                    # config rule), so queries use raw events until `store rebuild-rollups`.
                    conn.execute("UPDATE rollup_rules SET good = 'stale' WHERE metric = ?", (metric,))
                    rules[metric] = "stale"
            conn.executemany("INSERT INTO events(series_id, ts, h, value, request_id, sample_rate) VALUES (?,?,?,?,?,?)",
                             event_rows)
            if text_rows:
                conn.executemany("INSERT OR IGNORE INTO event_text(h, input, output) VALUES (?,?,?)", text_rows)
            conn.executemany(
                "INSERT INTO rollup_1h(series_id, bucket, n, sum, sumsq, good) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(series_id, bucket) DO UPDATE SET n = n + excluded.n, sum = sum + excluded.sum, "
                "sumsq = sumsq + excluded.sumsq, good = good + excluded.good",
                [(k[0], k[1], c[0], c[1], c[2], c[3]) for k, c in cells.items()])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._series_by_key = None
            self._rules = None
            raise
        return len(batch)

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
                    f"INSERT INTO rollup_1h(series_id, bucket, n, sum, sumsq, good) "
                    f"SELECT e.series_id, e.ts - e.ts % {HOUR_MS}, count(*), sum(value), sum(value*value), "
                    f"sum({_rule_sql(rule)}) FROM events e JOIN series s ON s.id = e.series_id "
                    f"WHERE s.metric = ? GROUP BY e.series_id, e.ts - e.ts % {HOUR_MS}", (metric,))
                conn.execute("INSERT INTO rollup_rules(metric, good) VALUES (?, ?)", (metric, _rule_text(rule)))
            n = conn.execute("SELECT count(*) FROM rollup_1h").fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._rules = None
        return n

    # --- reading ----------------------------------------------------------------------
    def aggregate(self, series_ids: Iterable[int], start: int, end: int, *,
                  bucket_ms: int | None = None, good_rule=None) -> dict[tuple[int, int | None], Agg]:
        ids = sorted(set(series_ids))
        result: dict[tuple[int, int | None], Agg] = {}
        if not ids or end <= start:
            return result
        first_full = -(-start // HOUR_MS) * HOUR_MS
        last_full = end - end % HOUR_MS
        # (no full hour in the window: raw events answer it, no need to check the rollup rules)
        use_rollups = (first_full < last_full and (bucket_ms is None or bucket_ms % HOUR_MS == 0)
                       and self._rollups_usable(ids, good_rule))
        if use_rollups:
            if first_full < last_full:
                self._query_rollups(ids, first_full, last_full, bucket_ms, good_rule, result)
                if start < first_full:
                    self._query_raw(ids, start, first_full, bucket_ms, good_rule, result)
                if last_full < end:
                    self._query_raw(ids, last_full, end, bucket_ms, good_rule, result)
                return result
        self._query_raw(ids, start, end, bucket_ms, good_rule, result)
        return result

    def _rollups_usable(self, ids: list[int], good_rule) -> bool:
        rules = self._rollup_rules()
        want = _rule_text(good_rule)
        metrics = {m for (m,) in self._in_query("SELECT DISTINCT metric FROM series WHERE id IN ({})", ids)}
        return all(rules.get(m, want) == want or good_rule is None for m in metrics)

    def _in_query(self, template: str, ids: list[int], args: tuple = ()):
        # Series id lists are small (thousands at most); chunk to stay under SQLite's variable limit.
        for i in range(0, len(ids), 900):
            chunk = ids[i:i + 900]
            yield from self.conn.execute(template.format(",".join("?" * len(chunk))), [*chunk, *args])

    def _query_rollups(self, ids, start, end, bucket_ms, good_rule, result) -> None:
        bucket = "NULL" if bucket_ms is None else f"bucket - bucket % {int(bucket_ms)}"
        good = "sum(good)" if good_rule is not None else "NULL"
        sql = (f"SELECT series_id, {bucket} AS b, sum(n), sum(sum), sum(sumsq), {good} FROM rollup_1h "
               f"WHERE series_id IN ({{}}) AND bucket >= ? AND bucket < ? GROUP BY series_id, b")
        self._merge(self._in_query(sql, ids, (start, end)), result)

    def _query_raw(self, ids, start, end, bucket_ms, good_rule, result) -> None:
        bucket = "NULL" if bucket_ms is None else f"ts - ts % {int(bucket_ms)}"
        good = f"sum({_rule_sql(good_rule)})" if good_rule is not None else "NULL"
        sql = (f"SELECT series_id, {bucket} AS b, count(*), sum(value), sum(value*value), {good} FROM events "
               f"WHERE series_id IN ({{}}) AND ts >= ? AND ts < ? GROUP BY series_id, b")
        self._merge(self._in_query(sql, ids, (start, end)), result)

    @staticmethod
    def _merge(rows, result) -> None:
        for sid, b, n, s, ss, g in rows:
            agg = Agg(n, s, ss, None if g is None else int(g))
            key = (sid, b)
            if key in result:
                result[key].add(agg)
            else:
                result[key] = agg

    def events(self, series_ids: Iterable[int], start: int, end: int, *, order: str = "ts",
               limit: int | None = None, with_text: bool = False) -> list[EventRecord]:
        ids = sorted(set(series_ids))
        if not ids:
            return []
        # Only the series asked for (loading every series per call made `slo check` slow).
        by_id = {}
        for r in self._in_query("SELECT id, feature, metric, source, slice, model_id, prompt_version, index_version,"
                                " judge_id FROM series WHERE id IN ({})", ids):
            by_id[r[0]] = Series(r[0], r[1], r[2], r[3], tuple(tuple(kv) for kv in orjson.loads(r[4])),
                                 r[5] or None, r[6] or None, r[7] or None, r[8] or None)
        order_sql = {"ts": "e.ts, e.h", "value": "e.value, e.ts, e.h", "-ts": "e.ts DESC, e.h"}.get(order)
        if order_sql is None:
            raise ValueError(f"order must be ts, -ts or value, not {order!r}")
        text_cols = ", t.input, t.output" if with_text else ", NULL, NULL"
        join = " LEFT JOIN event_text t ON t.h = e.h" if with_text else ""
        out: list[EventRecord] = []
        placeholders = ",".join("?" * len(ids))
        sql = (f"SELECT e.h, e.series_id, e.ts, e.value, e.request_id, e.sample_rate{text_cols} FROM events e{join} "
               f"WHERE e.series_id IN ({placeholders}) AND e.ts >= ? AND e.ts < ? ORDER BY {order_sql}")
        args: list = [*ids, start, end]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        for h, sid, ts, v, rid, sr, inp, outp in self.conn.execute(sql, args):
            out.append(EventRecord(h, by_id[sid], ts, v, rid, sr, inp, outp))
        return out

    def time_bounds(self) -> tuple[int | None, int | None]:
        row = self.conn.execute("SELECT min(bucket), max(bucket) FROM rollup_1h").fetchone()
        if row[0] is None:
            return None, None
        lo = self.conn.execute("SELECT min(ts) FROM events WHERE ts >= ? AND ts < ?",
                               (row[0], row[0] + HOUR_MS)).fetchone()[0]
        hi = self.conn.execute("SELECT max(ts) FROM events WHERE ts >= ?", (row[1],)).fetchone()[0]
        return lo, hi

    def count_events(self) -> int:
        return self.conn.execute("SELECT coalesce(sum(n), 0) FROM rollup_1h").fetchone()[0]

    # --- documents --------------------------------------------------------------------
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
