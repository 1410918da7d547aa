"""ClickHouse score store: the same behaviour as SQLite, for data that outgrows one file.

`store: clickhouse://HOST:PORT/DATABASE` (HTTP interface, default port 8123), `clickhouses://`
or `https://` for TLS (default port 8443). User and password come from environment variables
named in the config's `clickhouse:` section (`user_env`, `password_env`; defaults CLICKHOUSE_USER
and CLICKHOUSE_PASSWORD). The password is never printed: every message names `self.url`, which
carries no password.

Tables (created and migrated by oncall-ai; `oncall_ai_migrations` records what was applied):
- `series`     one row per series (ReplacingMergeTree by id). The id is a 63-bit hash of the
               series key, so any writer derives the same id without a round trip.
- `events`     MergeTree partitioned by month, ordered by (series_id, ts): a feature/metric/slice
               time range is a few contiguous ranges. Each row carries the good rule it was
               ingested under (good_op, good_threshold).
- `rollup_1h`  SummingMergeTree of hourly cells per (series, hour, good rule): n, sum, sum of
               squares, count good. Filled by a materialised view on `events`, inside the same
               INSERT, so rollups and raw events never drift apart.
- `docs`       ReplacingMergeTree(version) by (kind, id); a delete writes a tombstone, reads take
               the latest version per id (argMax), so no mutations are needed.

Idempotency (ingest run twice, or resumed after a kill): before inserting a batch, the ids of the
batch are looked up among the events of the batch's time range, under every feature and metric
(the primary key prunes that to the granules the range covers; ids travel as an external table).
Only new rows are inserted, and the materialised view sees only those, so rollups never count an
event twice. SQLite remembers ids per week instead: an id that comes back with a time outside
the batch's range (a corrected timestamp) is new here and a duplicate there.
One INSERT is one part (per month partition) and is atomic; a batch spanning months is several
parts, and a re-run completes whatever a crash left out. Limitation: two processes ingesting the
*same* ids at the *same* moment can both pass the check; run one writer per store.

Rollups are exact for any good rule: a query asks for cells stamped with the requested rule, and
hours that hold events ingested under another rule (the config changed) are recounted from raw
events. Partial hours at window edges and sub-hour buckets are answered from raw events.

SQL runs on Debian's ClickHouse 18.16 and on current releases: only intDiv arithmetic for time
buckets (no toStartOfInterval), no JSON functions, no query parameters (literals are escaped here),
no aliases that shadow column names. The server version (`SELECT version()`) only picks column
codecs at table creation (19.x and later).
"""

from __future__ import annotations

import base64
import copy
import gc
import hashlib
import os
import re
import struct
import sys
import threading
import time
from array import array
from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import chain, repeat
from operator import is_, itemgetter
from urllib.parse import unquote, urlsplit

import orjson

from oncall_ai.config import config_where
from oncall_ai.errors import StoreError
from oncall_ai.store.base import HOUR_MS, Agg, Doc, EventColumns, EventRecord, Series, Store

DEFAULT_USER_ENV = "CLICKHOUSE_USER"
DEFAULT_PASSWORD_ENV = "CLICKHOUSE_PASSWORD"
MIGRATIONS_TABLE = "oncall_ai_migrations"
# Above this many values an IN list travels as an external table instead of SQL text
# (ClickHouse's default max_query_size is 256 KiB).
_INLINE_IN_MAX = 1000
# One INSERT stays below ClickHouse's max_insert_block_size, so it is a single atomic part.
_INSERT_ROWS_MAX = 1_000_000
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OWN_TABLES = ("series", "events", "rollup_1h", "rollup_1h_mv", "docs")
_MASK63 = (1 << 63) - 1
# RowBinary records of aggregate queries: series_id, bucket, n, sum, sum of squares, good count
# (and for the rollup query under a good rule, the number of hours counted under another rule).
_AGG_ROW = struct.Struct("<QqQddQ")
_AGG_ROW_FLAGGED = struct.Struct("<QqQddQQ")
# A cached series list is used without asking the server for this long after loading it.
_SERIES_FRESH_S = 5.0


# --- SQL helpers ----------------------------------------------------------------------------

def lit(value: str) -> str:
    """A ClickHouse string literal (works on every version; 18.x has no query parameters)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _num(x: float) -> str:
    return repr(float(x))


# A good rule is stored as (op code, threshold): fixed-size columns keep the rollup view's GROUP BY
# on ClickHouse's fast fixed-key path. 0 means "no rule".
_OP_CODES = {">=": 1, ">": 2, "<=": 3, "<": 4, "==": 5, "!=": 6}
_OP_OF_CODE = {v: k for k, v in _OP_CODES.items()}


def _rule_parts(rule) -> tuple[int, float]:
    return (0, 0.0) if rule is None else (_OP_CODES[rule.op], float(rule.threshold))


def _rule_sql(rule, column: str = "value") -> str:
    op = {"==": "=", "!=": "!="}.get(rule.op, rule.op)
    return f"({column} {op} {_num(rule.threshold)})"


# The good flag of one event from the rule it was stored with: used by the rollup view.
_GOOD_FROM_ROW = (
    "multiIf(good_op = 1, value >= good_threshold, good_op = 2, value > good_threshold, "
    "good_op = 3, value <= good_threshold, good_op = 4, value < good_threshold, "
    "good_op = 5, value = good_threshold, good_op = 6, value != good_threshold, 0)"
)


def feature_metric_id(feature: str, metric: str) -> int:
    """The events table's leading sort key: a 63-bit hash of (feature, metric)."""
    return int.from_bytes(hashlib.blake2b(orjson.dumps([feature, metric]), digest_size=8).digest(), "big") & _MASK63


def series_id(key: tuple) -> int:
    """A stable 63-bit id for a series key (feature, metric, source, slice_items, versions...)."""
    canon = orjson.dumps([key[0], key[1], key[2], [list(kv) for kv in key[3]], *key[4:8]])
    return int.from_bytes(hashlib.blake2b(canon, digest_size=8).digest(), "big") & _MASK63


# --- migrations (append-only; each step idempotent, so a crash mid-way can be re-run) --------

def _m001_create_events(db: str, v: tuple[int, ...]) -> list[str]:
    modern = v >= (20, 3)  # column codecs: 19.x and later; 20.3 to be safe
    ts_codec = " CODEC(Delta, ZSTD)" if modern else ""
    text_codec = " CODEC(ZSTD)" if modern else ""
    month = "toYYYYMM(toDateTime(intDiv({col}, 1000)))"
    return [
        f"""CREATE TABLE IF NOT EXISTS {db}.series (
            id UInt64, feature String, metric String, source String, slice String,
            model_id String, prompt_version String, index_version String, judge_id String
        ) ENGINE = ReplacingMergeTree() ORDER BY id""",
        f"""CREATE TABLE IF NOT EXISTS {db}.events (
            fm UInt64, id Int64, series_id UInt64, ts Int64{ts_codec}, value Float64,
            good_op UInt8, good_threshold Float64,
            request_id Nullable(String), sample_rate Nullable(Float64),
            input Nullable(String){text_codec}, output Nullable(String){text_codec}
        ) ENGINE = MergeTree() PARTITION BY {month.format(col='ts')} ORDER BY (fm, ts)""",
        f"""CREATE TABLE IF NOT EXISTS {db}.rollup_1h (
            series_id UInt64, hour Int64, good_op UInt8, good_threshold Float64,
            n UInt64, total Float64, total_sq Float64, good UInt64
        ) ENGINE = SummingMergeTree() PARTITION BY {month.format(col='hour')}
          ORDER BY (series_id, hour, good_op, good_threshold)""",
        f"""CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.rollup_1h_mv TO {db}.rollup_1h AS
            SELECT series_id, intDiv(ts, {HOUR_MS}) * {HOUR_MS} AS hour, good_op, good_threshold,
                   count() AS n, sum(value) AS total, sum(value * value) AS total_sq,
                   toUInt64(sum({_GOOD_FROM_ROW})) AS good
            FROM {db}.events GROUP BY series_id, hour, good_op, good_threshold""",
    ]


def _m002_create_docs(db: str, v: tuple[int, ...]) -> list[str]:
    return [
        f"""CREATE TABLE IF NOT EXISTS {db}.docs (
            kind String, id String, ts Int64, body String, version UInt64, deleted UInt8
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (kind, id)""",
    ]


MIGRATIONS = (
    ("m001_create_events", _m001_create_events),
    ("m002_create_docs", _m002_create_docs),
)
SCHEMA_VERSION = len(MIGRATIONS)


# --- Native format (columnar, fast to build from Python, understood by 18.x and current) ----

_VARINT1 = [bytes((i,)) for i in range(128)]
_LITTLE = sys.byteorder == "little"


def _varint(n: int) -> bytes:
    if n < 128:
        return _VARINT1[n]
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _enc_str(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    n = len(b)
    return (_VARINT1[n] if n < 128 else _varint(n)) + b


def _fixed(code: str, values) -> bytes:
    a = array(code, values)
    if not _LITTLE:  # pragma: no cover - ClickHouse's wire format is little-endian
        a.byteswap()
    return a.tobytes()


def _col_strings(values: Sequence[str]) -> bytes:
    """A String column (varint length + UTF-8 per value), built in bulk: ingest encodes millions of
    values a second, so there is no Python call per value on the common paths."""
    n = len(values)
    if not n:
        return b""
    if values.count(values[0]) == n:  # one value repeated (a document kind, a constant)
        return _enc_str(values[0]) * n
    lengths = list(map(len, values))
    if max(lengths) < 128:
        joined = "".join(values)
        if joined.isascii():  # characters are bytes, and every length is one varint byte
            return "".join(chain.from_iterable(zip(map(chr, lengths), values, strict=True))).encode("ascii")
    encoded = [v.encode("utf-8", "surrogatepass") for v in values]
    lengths = list(map(len, encoded))
    prefixes = map(_VARINT1.__getitem__, lengths) if max(lengths) < 128 else map(_varint, lengths)
    return b"".join(chain.from_iterable(zip(prefixes, encoded, strict=True)))


def _null_map(values: Sequence) -> bytes:
    return bytes(map(is_, values, repeat(None)))


def _col_nullable_strings(values: Sequence[str | None]) -> bytes:
    n = len(values)
    nones = values.count(None)
    if nones == n:
        return b"\x01" * n + b"\x00" * n
    if not nones:
        return b"\x00" * n + _col_strings(values)
    return _null_map(values) + _col_strings(["" if v is None else v for v in values])


def _col_sparse_strings(n: int, pairs: Iterable[tuple[int, str | None]]) -> bytes:
    """A Nullable(String) column of n rows, NULL except at the (row, value) pairs given in row
    order (the input/output texts a few events carry). A NULL row's string is empty (one 0 byte)."""
    nulls = bytearray(b"\x01") * n
    data = bytearray()
    at = 0
    for i, v in pairs:
        if v is not None:
            nulls[i] = 0
            data += b"\x00" * (i - at)
            data += _enc_str(v)
            at = i + 1
    if not data:
        return b"\x01" * n + b"\x00" * n
    data += b"\x00" * (n - at)
    return bytes(nulls) + data


def _col_nullable_floats(values: Sequence[float | None]) -> bytes:
    n = len(values)
    nones = values.count(None)
    if nones == n:
        return b"\x01" * n + b"\x00" * (8 * n)
    if not nones:
        return b"\x00" * n + _fixed("d", values)
    return _null_map(values) + _fixed("d", [0.0 if v is None else v for v in values])


def native_block(n_rows: int, columns: list[tuple[str, str, bytes]]) -> bytes:
    parts = [_varint(len(columns)), _varint(n_rows)]
    for name, typ, data in columns:
        parts += (_enc_str(name), _enc_str(typ), data)
    return b"".join(parts)


# --- transport --------------------------------------------------------------------------------

class HttpTransport:
    """POSTs SQL to ClickHouse's HTTP interface over one kept-alive connection; turns every
    failure into a StoreError that names the URL without the password.

    Built on the standard library's http.client rather than httpx: every command opens the store,
    and importing httpx/httpcore (and the async libraries it probes for) costs 0.1-0.4 s per process,
    a large part of the 1 s a `scores` answer may take."""

    IDLE_RECONNECT_S = 2.0  # ClickHouse closes idle keep-alive connections (keep_alive_timeout, 3 s)

    def __init__(self, base_url: str, safe_url: str, *, user: str | None, password: str | None,
                 timeout: float = 300.0, verify=True):
        parts = urlsplit(base_url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (8443 if self.tls else 8123)
        self.safe_url = safe_url
        self.user = user or "default"
        self.timeout = timeout
        self.verify = verify
        self.headers = {"User-Agent": "oncall-ai"}
        if user or password:
            token = base64.b64encode(f"{user or 'default'}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self._conn = None
        self._last_used = 0.0

    def _connection(self):
        import http.client

        if self._conn is not None and time.monotonic() - self._last_used > self.IDLE_RECONNECT_S:
            self.close()
        if self._conn is None:
            if self.tls:
                import ssl

                ctx = ssl.create_default_context(cafile=self.verify if isinstance(self.verify, str) else None)
                if self.verify is False:
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=ctx)
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def run(self, sql: str, *, data: bytes | None = None,
            external: dict[str, tuple] | None = None) -> bytes:
        """Run one statement. `data` is the body of an INSERT ... FORMAT; `external` maps a table
        name to (structure, bytes[, format]) for `IN name` (format TabSeparated unless given)."""
        import http.client
        from urllib.parse import urlencode

        params = {"output_format_json_quote_64bit_integers": "0"}
        headers = dict(self.headers)
        if external:
            params["query"] = sql
            boundary = f"oncall-ai-{os.urandom(8).hex()}"
            chunks = []
            for name, (structure, body, *fmt) in external.items():
                params[f"{name}_structure"] = structure
                params[f"{name}_format"] = fmt[0] if fmt else "TabSeparated"
                chunks.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                              f"filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n".encode())
                chunks.append(body)
                chunks.append(b"\r\n")
            chunks.append(f"--{boundary}--\r\n".encode())
            payload = b"".join(chunks)
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        elif data is not None:
            params["query"] = sql
            payload = data
        else:
            payload = sql.encode("utf-8")
        path = "/?" + urlencode(params)
        # A read may be retried once on a connection the server closed meanwhile; a write never
        # is (it could have been applied).
        attempts = 1 if data is not None else 2
        for attempt in range(attempts):
            conn = self._connection()
            try:
                conn.request("POST", path, body=payload, headers=headers)
                resp = conn.getresponse()
                content = resp.read()
                status = resp.status
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self.close()
                if attempt + 1 == attempts:
                    raise StoreError(f"ClickHouse at {self.safe_url} closed the connection: {_short(e)}") from None
            except TimeoutError:
                self.close()
                raise StoreError(f"ClickHouse at {self.safe_url} did not answer within {self.timeout:g} s",
                                 hint="is the server overloaded? raise clickhouse.timeout in the config") from None
            except ConnectionRefusedError:
                self.close()
                raise StoreError(f"cannot reach ClickHouse at {self.safe_url}: connection refused",
                                 hint="is the server running, and is `store:` in the config right?") from None
            except OSError as e:  # DNS, unreachable network, TLS
                self.close()
                raise StoreError(f"cannot reach ClickHouse at {self.safe_url}: {_short(e)}",
                                 hint="is the server running, and is `store:` in the config right?") from None
            except http.client.HTTPException as e:
                self.close()
                raise StoreError(f"ClickHouse at {self.safe_url}: bad HTTP answer ({_short(e)})") from None
        self._last_used = time.monotonic()
        if status != 200:
            raise _server_error(status, content.decode("utf-8", "replace"), self.safe_url, self.user)
        return content

    def fork(self) -> HttpTransport:
        """The same server and credentials over a connection of its own, for a query that runs in
        another thread while this transport is busy."""
        other = copy.copy(self)
        other.headers = dict(self.headers)
        other._conn = None
        other._last_used = 0.0
        return other

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _short(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


_CODE = re.compile(r"Code:\s*(\d+)")
_AUTH_CODES = {192, 193, 194, 516}


def _server_error(status: int, text: str, safe_url: str, user: str) -> StoreError:
    m = _CODE.search(text)
    code = int(m.group(1)) if m else None
    message = text.strip().splitlines()[0] if text.strip() else f"HTTP {status}"
    # 18.x: "Code: 81, e.displayText() = DB::Exception: ..., e.what() = DB::Exception";
    # current: "Code: 81. DB::Exception: .... (UNKNOWN_DATABASE) (version 24.3.1)".
    message = re.sub(r"^Code:\s*\d+[.,]\s*(e\.displayText\(\)\s*=\s*)?(DB::Exception:\s*)?", "", message)
    message = re.sub(r",?\s*e\.what\(\)\s*=\s*DB::Exception\s*$", "", message)
    message = re.sub(r"\s*\(version [^)]*\)\s*$", "", message)[:400]
    if code in _AUTH_CODES or status in (401, 403):
        return StoreError(f"ClickHouse at {safe_url} refused user {user!r}: {message}",
                          hint="check the user and password in the environment variables named by "
                               "`clickhouse: {user_env, password_env}` in the config")
    if code == 81:
        return StoreError(f"ClickHouse at {safe_url}: {message}",
                          hint="create it first (CREATE DATABASE <name>) or fix the database in `store:`")
    if code == 60:
        return StoreError(f"ClickHouse at {safe_url}: {message}; the oncall-ai schema there is incomplete",
                          hint="point `store:` at a database oncall-ai created, or at an empty one")
    return StoreError(f"ClickHouse at {safe_url} failed: {message}")


# --- columns for the write path ------------------------------------------------------------

def _slice(cols: EventColumns, start: int, stop: int) -> EventColumns:
    return EventColumns(keys=cols.keys, kidx=cols.kidx[start:stop], h=cols.h[start:stop], ts=cols.ts[start:stop],
                        value=cols.value[start:stop], request_id=cols.request_id[start:stop],
                        sample_rate=cols.sample_rate[start:stop],
                        texts=[(i - start, a, b) for i, a, b in cols.texts if start <= i < stop])


def _keep_first_new(ids: Sequence[int], found: list[list]) -> list[bool]:
    """Which rows to insert, given the dedup lookup's [id, 0] (already stored) and [id, 1] (more
    than once in this chunk): new ids, each the first time it comes."""
    seen = {int(i) for i, what in found if not int(what)}
    if all(int(what) == 0 for _, what in found):
        return [h not in seen for h in ids]
    keep = []
    for h in ids:
        if h in seen:
            keep.append(False)
        else:
            seen.add(h)
            keep.append(True)
    return keep


# --- the store ---------------------------------------------------------------------------------

def parse_url(url: str) -> tuple[str, str, str, str | None, str | None]:
    """(base_url for httpx, url to show, database, user, password) from a store URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise StoreError(f"store {url!r}: not a valid URL ({e})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("clickhouse", "clickhouses", "http", "https"):
        raise StoreError(f"store {url!r}: unsupported scheme {scheme!r}")
    tls = scheme in ("clickhouses", "https")
    host = parts.hostname
    if not host:
        raise StoreError(f"store {_redact(url)}: no host; write clickhouse://HOST:8123/DATABASE")
    port = port or (8443 if tls else 8123)
    database = parts.path.strip("/") or "default"
    if not _NAME.match(database):
        raise StoreError(f"store {_redact(url)}: database name {database!r} must be letters, digits and _")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    host_text = f"[{host}]" if ":" in host else host
    base = f"{'https' if tls else 'http'}://{host_text}:{port}"
    shown_scheme = "clickhouses" if tls else "clickhouse"
    shown = f"{shown_scheme}://{(user + '@') if user else ''}{host_text}:{port}/{database}"
    return base, shown, database, user, password


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]*):[^@/]*@", r"//\1:***@", url)


def _section(config) -> dict:
    if config is None:
        return {}
    section = getattr(config, "section", None)
    if callable(section):
        return section("clickhouse")
    return dict(config) if isinstance(config, dict) else {}


class ClickHouseStore(Store):
    # ClickHouse wants few large inserts (each INSERT is a part that merges later): writers that
    # batch (ingest, importers) may use this instead of their default batch size.
    ingest_batch_rows = 200_000
    # An insert mostly waits for the server: ingest writes in a thread while it parses the next
    # batch (on SQLite the writer is CPU in this process, and a thread only adds GIL hand-offs).
    ingest_in_background = True

    def __init__(self, url: str, *, config=None, transport=None, create: bool = True):  # noqa: ARG002
        base, self.url, self.database, url_user, url_password = parse_url(url)
        opts = _section(config)
        known = {"user_env", "password_env", "timeout", "verify"}
        unknown = sorted(set(opts) - known)
        if unknown:
            raise StoreError(f"{config_where(config)}: clickhouse.{unknown[0]}: unknown key (known: {', '.join(sorted(known))})")
        user_env = opts.get("user_env", DEFAULT_USER_ENV)
        password_env = opts.get("password_env", DEFAULT_PASSWORD_ENV)
        user = url_user or os.environ.get(str(user_env)) or None
        password = url_password or os.environ.get(str(password_env)) or None
        timeout = opts.get("timeout", 300)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise StoreError(f"{config_where(config)}: clickhouse.timeout: must be a positive number of seconds")
        verify = opts.get("verify", True)
        if not isinstance(verify, bool | str):
            raise StoreError(f"{config_where(config)}: clickhouse.verify: true, false, or a CA bundle path")
        self.db = f"`{self.database}`"
        self._t = transport or HttpTransport(base, self.url, user=user, password=password,
                                             timeout=float(timeout), verify=verify)
        self._series_ids: set[int] | None = None
        self._series_by_id: dict[int, Series] | None = None
        self._series_list: list[Series] | None = None
        self._series_loaded = 0.0
        self._key_ids: dict[tuple, tuple[int, int]] = {}
        self._side = None  # a second connection for the dedup lookup that overlaps encoding
        self._last_version = 0
        try:
            self.server_version = self._open()
        except BaseException:
            self._t.close()
            raise

    # --- plumbing ----------------------------------------------------------------------------
    def _rows(self, sql: str, external=None) -> list[list]:
        raw = self._t.run(sql + " FORMAT JSONCompact", external=external)
        return orjson.loads(raw)["data"]

    def _exec(self, sql: str, *, data: bytes | None = None, external=None) -> None:
        self._t.run(sql, data=data, external=external)

    def _in(self, column: str, values: Sequence, typ: str, external: dict) -> str:
        """`column IN (...)`: inline for short lists, an external table for long ones."""
        if len(values) <= _INLINE_IN_MAX:
            if typ == "String":
                return f"{column} IN ({','.join(lit(v) for v in values)})" if values else "0"
            return f"{column} IN ({','.join(str(int(v)) for v in values)})" if values else "0"
        name = f"_in{len(external)}"
        if typ == "String":
            body = "\n".join(v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n") for v in values)
        else:
            body = "\n".join(str(int(v)) for v in values)
        external[name] = (f"v {typ}", body.encode("utf-8", "surrogatepass") + b"\n")
        return f"{column} IN {name}"

    def _open(self) -> tuple[int, ...]:
        db = lit(self.database)
        # One round trip: version, database present, which of our tables exist.
        rows = self._rows(
            f"SELECT version(), (SELECT count() FROM system.databases WHERE name = {db}), "
            f"(SELECT groupArray(name) FROM system.tables WHERE database = {db})")
        version_text, db_count, tables = rows[0]
        version = tuple(int(x) for x in re.findall(r"\d+", str(version_text))[:3])
        if not db_count:
            raise StoreError(f"ClickHouse at {self.url}: database {self.database!r} does not exist",
                             hint=f"create it first: CREATE DATABASE {self.database}")
        tables = set(tables)
        applied: list[str] = []
        if MIGRATIONS_TABLE in tables:
            applied = [r[0] for r in self._rows(f"SELECT DISTINCT name FROM {self.db}.{MIGRATIONS_TABLE}")]
        known = [name for name, _ in MIGRATIONS]
        newer = [a for a in applied if a not in known]
        if newer:
            raise StoreError(
                f"ClickHouse at {self.url}: the schema was written by a newer oncall-ai (migration {sorted(newer)[-1]})",
                hint="upgrade oncall-ai to use this store")
        ours = tables & set(_OWN_TABLES)
        if ours and not applied:
            raise StoreError(
                f"ClickHouse at {self.url}: database {self.database!r} holds tables ({', '.join(sorted(ours))}) "
                "without an oncall-ai schema record: an older or foreign schema",
                hint="point `store:` at an empty database (oncall-ai creates its tables), or copy the "
                     "data with `oncall-ai store copy`")
        pending = [(name, step) for name, step in MIGRATIONS if name not in applied]
        if pending:
            # Like the SQLite store: pending migrations are applied when the store opens. They are
            # cheap DDL (CREATE ... IF NOT EXISTS), safe to re-run after an interruption.
            self._exec(f"CREATE TABLE IF NOT EXISTS {self.db}.{MIGRATIONS_TABLE} (name String, applied_at DateTime) "
                       f"ENGINE = MergeTree() ORDER BY name")
            for name, step in pending:
                for stmt in step(self.db, version):
                    self._exec(stmt)
                self._exec(f"INSERT INTO {self.db}.{MIGRATIONS_TABLE} (name, applied_at) VALUES ({lit(name)}, now())")
        missing = [t for t in _OWN_TABLES if t not in tables] if not pending else []
        if missing:
            raise StoreError(f"ClickHouse at {self.url}: table(s) {', '.join(missing)} missing from a migrated schema",
                             hint="restore them, or use a fresh database and `oncall-ai store copy`")
        return version

    def schema_version(self) -> int:
        return len({r[0] for r in self._rows(f"SELECT DISTINCT name FROM {self.db}.{MIGRATIONS_TABLE}")})

    def close(self) -> None:
        try:
            if self._side is not None:
                self._side.close()
                self._side = None
        finally:
            self._t.close()

    # --- series --------------------------------------------------------------------------------
    _SERIES_COLS = "id, feature, metric, source, slice, model_id, prompt_version, index_version, judge_id"

    def _load_series(self, where: str = "") -> list[Series]:
        sql = (f"SELECT id, any(feature), any(metric), any(source), any(slice), any(model_id), any(prompt_version), "
               f"any(index_version), any(judge_id) FROM {self.db}.series {where} GROUP BY id ORDER BY id")
        out = []
        for r in self._rows(sql):
            out.append(Series(int(r[0]), r[1], r[2], r[3], tuple(tuple(kv) for kv in orjson.loads(r[4])),
                              r[5] or None, r[6] or None, r[7] or None, r[8] or None))
        return out

    def series(self, feature: str | None = None, metric: str | None = None) -> list[Series]:
        if self._series_list is None and (feature is not None or metric is not None):
            # nothing cached: ask for just this feature/metric (what `scores` needs)
            where = [f"{col} = {lit(v)}" for col, v in (("feature", feature), ("metric", metric)) if v is not None]
            return self._load_series("WHERE " + " AND ".join(where))
        return [s for s in self._all_series()
                if (feature is None or s.feature == feature) and (metric is None or s.metric == metric)]

    def _all_series(self, *, reload: bool = False) -> list[Series]:
        """Every series, kept in this object: a command asks for them several times (triage: five),
        and there are only thousands. Series are only ever added, so a cached list older than
        _SERIES_FRESH_S is still right when the number of ids has not changed (one cheap count)."""
        if not reload and self._series_list is not None:
            if time.monotonic() - self._series_loaded < _SERIES_FRESH_S:
                return self._series_list
            if int(self._rows(f"SELECT uniqExact(id) FROM {self.db}.series")[0][0]) == len(self._series_list):
                self._series_loaded = time.monotonic()
                return self._series_list
        found = self._load_series()
        self._series_list = found
        self._series_by_id = {s.id: s for s in found}
        self._series_ids = set(self._series_by_id)
        self._series_loaded = time.monotonic()
        return found

    def _series_lookup(self, ids: Iterable[int]) -> dict[int, Series]:
        ids = set(ids)
        if self._series_by_id is None or not ids <= self._series_by_id.keys():
            self._all_series(reload=True)
        return self._series_by_id

    # --- writing ---------------------------------------------------------------------------------
    # The hot path of every ingest and import. Per chunk: the dedup lookup runs on a second
    # connection while this thread encodes the Native block; every column is built in bulk from
    # the per-row lists (per-series values through one itemgetter over the key indexes), never
    # with a Python step per row and column.

    def write_events(self, rows: Sequence[tuple], good_rules: dict) -> int:
        if not rows:
            return 0
        return self.write_columns(EventColumns.from_rows(rows), good_rules)

    def write_columns(self, cols: EventColumns, good_rules: dict) -> int:
        n = len(cols.h)
        if not n:
            return 0
        # Bulk work on hundreds of thousands of objects: the cyclic garbage collector would only
        # rescan them over and over (it costs as much as the insert itself).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            if n <= _INSERT_ROWS_MAX:
                return self._write_chunk(cols, good_rules)
            return sum(self._write_chunk(_slice(cols, i, i + _INSERT_ROWS_MAX), good_rules)
                       for i in range(0, n, _INSERT_ROWS_MAX))
        finally:
            if gc_was_enabled:
                gc.enable()

    def _write_chunk(self, cols: EventColumns, good_rules: dict) -> int:
        ids = _fixed("q", cols.h)
        # Ids of this chunk already stored, looked up in the chunk's time range under any feature
        # and metric (the same id under another metric is the same event, as on SQLite; the
        # partition min/max of ts prunes the read to the parts of that range), and ids that come
        # twice in the chunk (the first is kept, as on SQLite).
        pending = self._start_rows(
            f"SELECT id, 0 FROM {self.db}.events WHERE ts >= {int(min(cols.ts))} AND ts <= {int(max(cols.ts))} "
            f"AND id IN _ids UNION ALL SELECT id, 1 FROM _ids GROUP BY id HAVING count() > 1",
            {"_ids": ("id Int64", ids, "RowBinary")})
        try:
            tables = self._key_tables(cols.keys, good_rules)
            block = self._events_block(cols, tables, ids)
        except BaseException:
            pending(wait_only=True)
            raise
        found = pending()
        if found:
            cols = cols.select(_keep_first_new(cols.h, found))
            if not len(cols.h):
                return 0
            block = self._events_block(cols, tables, _fixed("q", cols.h))
        self._exec(f"INSERT INTO {self.db}.events (fm, id, series_id, ts, value, good_op, good_threshold, request_id, "
                   f"sample_rate, input, output) FORMAT Native", data=block)
        return len(cols.h)

    def _start_rows(self, sql: str, external: dict):
        """Start a read on a second connection and return a function that waits for its rows (and
        raises its error). A transport that cannot open a second connection (chdb in tests) runs
        the read now."""
        fork = getattr(self._t, "fork", None)
        if fork is None:
            rows = self._rows(sql, external)
            return lambda wait_only=False: rows
        if self._side is None:
            self._side = fork()
        side = self._side
        box: dict = {}

        def work() -> None:
            try:
                box["rows"] = orjson.loads(side.run(sql + " FORMAT JSONCompact", external=external))["data"]
            except BaseException as e:  # re-raised in the caller's thread
                box["error"] = e

        thread = threading.Thread(target=work, name="oncall-ai-dedup", daemon=True)
        thread.start()

        def wait(wait_only: bool = False):
            thread.join()
            if wait_only:
                return None
            if "error" in box:
                raise box["error"]
            return box["rows"]

        return wait

    def _key_tables(self, keys: Sequence[tuple], good_rules: dict) -> tuple[list, list, list, list]:
        """Per entry of `keys`: series id, feature/metric id, good rule op and threshold. Registers
        series the store does not know yet. Ids are cached by key (hashing a key is cheaper than
        the blake2b of its JSON, and ingest batches repeat the same few thousand keys)."""
        cache = self._key_ids
        if len(cache) > 200_000:
            cache.clear()
        if self._series_ids is None:
            self._series_ids = {int(r[0]) for r in self._rows(f"SELECT DISTINCT id FROM {self.db}.series")}
        known = self._series_ids
        rules: dict[str, tuple[int, float]] = {}
        sids, fms, ops, thrs = [], [], [], []
        new: dict[int, tuple] = {}
        for key in keys:
            got = cache.get(key)
            if got is None:
                got = cache[key] = (series_id(key), feature_metric_id(key[0], key[1]))
            sid = got[0]
            rule = rules.get(key[1])
            if rule is None:
                rule = rules[key[1]] = _rule_parts(good_rules.get(key[1]))
            sids.append(sid)
            fms.append(got[1])
            ops.append(rule[0])
            thrs.append(rule[1])
            if sid not in known:
                new[sid] = key
        if new:
            self._insert_series([(k, sid) for sid, k in new.items()])
        return sids, fms, ops, thrs

    def _events_block(self, cols: EventColumns, tables: tuple, ids: bytes) -> bytes:
        n = len(cols.h)
        sids, fms, ops, thrs = tables
        kidx = cols.kidx
        if n == 1:
            k = kidx[0]

            def pick(table):
                return (table[k],)
        else:
            pick = itemgetter(*kidx)
        if len(set(zip(ops, thrs, strict=True))) == 1:  # one good rule for every row
            op_col, thr_col = bytes(ops[:1]) * n, _fixed("d", thrs[:1]) * n
        else:
            op_col, thr_col = bytes(pick(ops)), _fixed("d", pick(thrs))
        return native_block(n, [
            ("fm", "UInt64", _fixed("Q", pick(fms))),
            ("id", "Int64", ids),
            ("series_id", "UInt64", _fixed("Q", pick(sids))),
            ("ts", "Int64", _fixed("q", cols.ts)),
            ("value", "Float64", _fixed("d", cols.value)),
            ("good_op", "UInt8", op_col),
            ("good_threshold", "Float64", thr_col),
            ("request_id", "Nullable(String)", _col_nullable_strings(cols.request_id)),
            ("sample_rate", "Nullable(Float64)", _col_nullable_floats(cols.sample_rate)),
            ("input", "Nullable(String)", _col_sparse_strings(n, ((i, a) for i, a, _ in cols.texts))),
            ("output", "Nullable(String)", _col_sparse_strings(n, ((i, b) for i, _, b in cols.texts))),
        ])

    def _insert_series(self, new: list[tuple[tuple, int]]) -> None:
        cols = list(zip(*[(sid, k[0], k[1], k[2], orjson.dumps(k[3]).decode(), k[4] or "", k[5] or "",
                           k[6] or "", k[7] or "") for k, sid in new], strict=True))
        names = self._SERIES_COLS.split(", ")
        block = native_block(len(new), [("id", "UInt64", _fixed("Q", cols[0]))]
                             + [(names[i], "String", _col_strings(cols[i])) for i in range(1, 9)])
        self._exec(f"INSERT INTO {self.db}.series ({self._SERIES_COLS}) FORMAT Native", data=block)
        self._series_ids.update(sid for _, sid in new)
        self._series_by_id = self._series_list = None

    def rebuild_rollups(self, good_rules: dict) -> int:
        """Recount every hourly cell from raw events under the given rules (after the config's good
        rule of a metric changed, so queries use rollups again instead of raw events). Stop
        ingests while it runs. Returns the number of cells."""
        metric_of = {s.id: s.metric for s in self.series()}
        self._exec(f"TRUNCATE TABLE {self.db}.rollup_1h")
        by_rule: dict[tuple[str, float], list[int]] = {}
        for sid, metric in metric_of.items():
            by_rule.setdefault(_rule_parts(good_rules.get(metric)), []).append(sid)
        for (op, thr), sids in by_rule.items():
            external: dict = {}
            cond = self._in("series_id", sids, "UInt64", external)
            rule = None if not op else _RuleLike(_OP_OF_CODE[op], thr)
            good = f"toUInt64(countIf({_rule_sql(rule)}))" if rule else "toUInt64(0)"
            self._exec(
                f"INSERT INTO {self.db}.rollup_1h (series_id, hour, good_op, good_threshold, n, total, total_sq, good) "
                f"SELECT series_id, intDiv(ts, {HOUR_MS}) * {HOUR_MS} AS hr, {op}, {_num(thr)}, count(), "
                f"sum(value), sum(value * value), {good} FROM {self.db}.events WHERE {cond} GROUP BY series_id, hr",
                external=external or None)
        return int(self._rows(f"SELECT count() FROM (SELECT series_id, hour FROM {self.db}.rollup_1h "
                              f"GROUP BY series_id, hour)")[0][0])

    # --- reading -------------------------------------------------------------------------------
    def aggregate(self, series_ids: Iterable[int], start: int, end: int, *,
                  bucket_ms: int | None = None, good_rule=None) -> dict[tuple[int, int | None], Agg]:
        result: dict[tuple[int, int | None], Agg] = {}
        self._aggregate(sorted(set(series_ids)), start, end, bucket_ms, good_rule, result, None)
        return result

    def aggregate_groups(self, group_of: Mapping[int, Hashable], start: int, end: int, *,
                         bucket_ms: int | None = None, good_rule=None) -> dict[tuple[Hashable, int | None], Agg]:
        """Summed per group in ClickHouse (the series -> group map travels as an external table), so
        one row per (group, bucket) comes back instead of one per series."""
        ids = sorted(set(group_of))
        index: dict[Hashable, int] = {}
        gidx = [index.setdefault(group_of[i], len(index)) for i in ids]
        if len(index) * 2 > len(ids):  # hardly any grouping to do: per series is as cheap
            return super().aggregate_groups(group_of, start, end, bucket_ms=bucket_ms, good_rule=good_rule)
        table = "".join(f"{i}\t{g}\n" for i, g in zip(ids, gidx, strict=True)).encode()
        cells: dict[tuple[int, int | None], Agg] = {}
        if not self._aggregate(ids, start, end, bucket_ms, good_rule, cells, table):
            # an hour counted under another good rule: recounted per series (rare; see _recount_good)
            return super().aggregate_groups(group_of, start, end, bucket_ms=bucket_ms, good_rule=good_rule)
        names = list(index)
        return {(names[g], b): agg for (g, b), agg in cells.items()}

    def _aggregate(self, ids: list[int], start: int, end: int, bucket_ms, good_rule, result: dict,
                   groups: bytes | None) -> bool:
        """Aggregates into result, keyed by series id, or with `groups` (TSV lines "series id, group
        index") by group index. False when grouped cells would need a recount (nothing is added)."""
        if not ids or end <= start:
            return True
        if bucket_ms is not None and bucket_ms <= 0:
            raise ValueError("bucket_ms must be positive")
        raw_ranges = [(start, end)]
        if bucket_ms is None or bucket_ms % HOUR_MS == 0:
            first_full = -(-start // HOUR_MS) * HOUR_MS
            last_full = end - end % HOUR_MS
            if first_full < last_full:
                if not self._agg_rollups(ids, first_full, last_full, bucket_ms, good_rule, result, groups):
                    return False
                raw_ranges = [r for r in ((start, first_full), (last_full, end)) if r[0] < r[1]]
        if raw_ranges:
            self._agg_raw(ids, raw_ranges, bucket_ms, good_rule, result, groups)
        return True

    @staticmethod
    def _bucket(column: str, bucket_ms: int | None) -> str:
        return "toInt64(0)" if bucket_ms is None else f"toInt64(intDiv({column}, {int(bucket_ms)}) * {int(bucket_ms)})"

    def _agg_rows(self, sql: str, external, row: struct.Struct, groups: bytes | None = None) -> list[tuple]:
        """Aggregate rows as RowBinary: fixed-size records unpacked in C, several times cheaper than
        parsing JSON for the 10^5 cells of a triage over every series. `sql` names its columns sid,
        bk, c_n, c_t, c_q, c_g (and c_f when `row` has seven): with `groups`, they are summed per
        group, and the first column is the group index."""
        if groups is not None:
            flag = ", toUInt64(sum(c_f))" if row.size == _AGG_ROW_FLAGGED.size else ""
            sql = (f"SELECT toUInt64(g), bk, toUInt64(sum(c_n)), toFloat64(sum(c_t)), toFloat64(sum(c_q)), "
                   f"toUInt64(sum(c_g)){flag} FROM ({sql}) AS cells ALL INNER JOIN _g USING sid GROUP BY g, bk")
            external = {**(external or {}), "_g": ("sid UInt64, g UInt32", groups)}
        data = self._t.run(sql + " FORMAT RowBinary", external=external)
        if len(data) % row.size:
            raise StoreError(f"ClickHouse at {self.url}: an aggregate answer of {len(data)} bytes is not whole rows "
                             f"of {row.size}")
        return list(row.iter_unpack(data))

    @staticmethod
    def _absorb(result: dict, rows: list[tuple], bucket_ms: int | None, good: bool) -> None:
        """Rows (series_id or group, bucket, n, sum, sum_sq, good, ...) into result. The rows of one
        query have distinct keys; results of several queries add up."""
        keys = [(r[0], None) for r in rows] if bucket_ms is None else [r[:2] for r in rows]
        if good:
            aggs = [Agg(r[2], r[3], r[4], r[5]) for r in rows]
        else:
            aggs = [Agg(r[2], r[3], r[4], None) for r in rows]
        if not result:
            result.update(zip(keys, aggs, strict=True))
            return
        get = result.get
        for key, agg in zip(keys, aggs, strict=True):
            cur = get(key)
            if cur is None:
                result[key] = agg
            else:
                cur.add(agg)

    def _events_where(self, ids: list[int], external: dict) -> str:
        """Series ids as a condition on `events` that its sort key (fm, ts) can use."""
        by_id = self._series_lookup(ids)
        fms = sorted({feature_metric_id(s.feature, s.metric) for i in ids if (s := by_id.get(i)) is not None})
        if not fms:
            return "0"
        return f"{self._in('fm', fms, 'UInt64', external)} AND {self._in('series_id', ids, 'UInt64', external)}"

    def _agg_raw(self, ids, ranges, bucket_ms, good_rule, result, groups=None) -> None:
        external: dict = {}
        cond = self._events_where(ids, external)
        window = " OR ".join(f"(ts >= {int(a)} AND ts < {int(b)})" for a, b in ranges)
        good = f"toUInt64(countIf({_rule_sql(good_rule)}))" if good_rule is not None else "toUInt64(0)"
        rows = self._agg_rows(
            f"SELECT toUInt64(series_id) AS sid, {self._bucket('ts', bucket_ms)} AS bk, toUInt64(count()) AS c_n, "
            f"toFloat64(sum(value)) AS c_t, toFloat64(sum(value * value)) AS c_q, {good} AS c_g FROM {self.db}.events "
            f"WHERE {cond} AND ({window}) GROUP BY series_id, bk", external or None, _AGG_ROW, groups)
        self._absorb(result, rows, bucket_ms, good_rule is not None)

    def _agg_rollups(self, ids, start, end, bucket_ms, good_rule, result, groups=None) -> bool:
        external: dict = {}
        cond = self._in("series_id", ids, "UInt64", external)
        bucket = self._bucket("hour", bucket_ms)
        where = f"WHERE {cond} AND hour >= {int(start)} AND hour < {int(end)}"
        if good_rule is None:
            rows = self._agg_rows(
                f"SELECT toUInt64(series_id) AS sid, {bucket} AS bk, toUInt64(sum(n)) AS c_n, toFloat64(sum(total)) AS c_t, "
                f"toFloat64(sum(total_sq)) AS c_q, toUInt64(0) AS c_g FROM {self.db}.rollup_1h {where} GROUP BY series_id, bk",
                external or None, _AGG_ROW, groups)
            self._absorb(result, rows, bucket_ms, False)
            return True
        op, thr = _rule_parts(good_rule)
        same = f"(good_op = {op} AND good_threshold = {_num(thr)})"
        # Per hour first: hours holding cells of another rule are counted (c_f), then listed and
        # recounted from raw events.
        rows = self._agg_rows(
            f"SELECT toUInt64(series_id) AS sid, {self._bucket('hr', bucket_ms)} AS bk, toUInt64(sum(cn)) AS c_n, "
            f"toFloat64(sum(ct)) AS c_t, toFloat64(sum(cq)) AS c_q, toUInt64(sum(cg)) AS c_g, "
            f"toUInt64(countIf(other > 0)) AS c_f FROM ("
            f" SELECT series_id, hour AS hr, sum(n) AS cn, sum(total) AS ct, sum(total_sq) AS cq,"
            f" sumIf(good, {same}) AS cg, countIf(NOT {same}) AS other"
            f" FROM {self.db}.rollup_1h {where} GROUP BY series_id, hour"
            f") GROUP BY series_id, bk", external or None, _AGG_ROW_FLAGGED, groups)
        flagged = any(r[6] for r in rows)
        if flagged and groups is not None:
            return False
        self._absorb(result, rows, bucket_ms, True)
        if not flagged:
            return True
        external = {}
        cond = self._in("series_id", sorted({r[0] for r in rows if r[6]}), "UInt64", external)
        recount = [(int(sid), int(hr)) for sid, hr in self._rows(
            f"SELECT series_id, hour FROM {self.db}.rollup_1h WHERE {cond} AND hour >= {int(start)} AND hour < {int(end)} "
            f"GROUP BY series_id, hour HAVING countIf(NOT {same}) > 0", external=external or None)]
        if recount:
            self._recount_good(recount, bucket_ms, good_rule, result)
        return True

    def _recount_good(self, cells: list[tuple[int, int]], bucket_ms, good_rule, result) -> None:
        """Hours whose rollup cells were counted under another good rule: take `good` from raw
        events instead (the hour's good count from rule-matching cells was left out above)."""
        op, thr = _rule_parts(good_rule)
        same = f"(good_op = {op} AND good_threshold = {_num(thr)})"
        for i in range(0, len(cells), 500):
            chunk = cells[i:i + 500]
            pairs = ",".join(f"({s}, {h})" for s, h in chunk)
            sids = sorted({s for s, _ in chunk})
            lo = min(h for _, h in chunk)
            hi = max(h for _, h in chunk) + HOUR_MS
            raw = self._rows(
                f"SELECT series_id, intDiv(ts, {HOUR_MS}) * {HOUR_MS} AS hr, countIf({_rule_sql(good_rule)}) "
                f"FROM {self.db}.events WHERE {self._events_where(sids, {})} AND ts >= {lo} AND ts < {hi} "
                f"AND (series_id, intDiv(ts, {HOUR_MS}) * {HOUR_MS}) IN ({pairs}) GROUP BY series_id, hr")
            counted = self._rows(
                f"SELECT series_id, hour, sumIf(good, {same}) FROM {self.db}.rollup_1h "
                f"WHERE series_id IN ({','.join(map(str, sids))}) AND (series_id, hour) IN ({pairs}) "
                f"GROUP BY series_id, hour")
            delta: dict[tuple[int, int], int] = {}
            for sid, hr, g in raw:
                delta[(int(sid), int(hr))] = delta.get((int(sid), int(hr)), 0) + int(g)
            for sid, hr, g in counted:
                delta[(int(sid), int(hr))] = delta.get((int(sid), int(hr)), 0) - int(g)
            for (sid, hr), d in delta.items():
                b = None if bucket_ms is None else hr - hr % bucket_ms
                agg = result.get((sid, b))
                if agg is not None and agg.good is not None:
                    agg.good += d

    def events(self, series_ids: Iterable[int], start: int, end: int, *, order: str = "ts",
               limit: int | None = None, with_text: bool = False) -> list[EventRecord]:
        ids = sorted(set(series_ids))
        if not ids:
            return []
        order_sql = {"ts": "ts, id", "value": "value, ts, id", "-ts": "ts DESC, id"}.get(order)
        if order_sql is None:
            raise ValueError(f"order must be ts, -ts or value, not {order!r}")
        by_id = self._series_lookup(ids)
        external: dict = {}
        cond = self._events_where(ids, external)
        text = "input, output" if with_text else "NULL, NULL"
        sql = (f"SELECT id, series_id, ts, value, request_id, sample_rate, {text} FROM {self.db}.events "
               f"WHERE {cond} AND ts >= {int(start)} AND ts < {int(end)} ORDER BY {order_sql}")
        if limit is not None:
            sql += f" LIMIT {max(0, int(limit))}"
        return [EventRecord(int(h), by_id[int(sid)], int(ts), float(v), rid, sr, inp, outp)
                for h, sid, ts, v, rid, sr, inp, outp in self._rows(sql, external=external or None)]

    def time_bounds(self) -> tuple[int | None, int | None]:
        lo_h, hi_h, cells = self._rows(f"SELECT min(hour), max(hour), count() FROM {self.db}.rollup_1h")[0]
        if not int(cells):
            return None, None
        lo_h, hi_h = int(lo_h), int(hi_h)
        lo, hi = self._rows(
            f"SELECT (SELECT min(ts) FROM {self.db}.events WHERE ts >= {lo_h} AND ts < {lo_h + HOUR_MS}), "
            f"(SELECT max(ts) FROM {self.db}.events WHERE ts >= {hi_h})")[0]
        return int(lo), int(hi)

    def count_events(self) -> int:
        return int(self._rows(f"SELECT sum(n) FROM {self.db}.rollup_1h")[0][0] or 0)

    # --- documents -----------------------------------------------------------------------------
    def _live(self, kind: str, ids: Sequence[str] | None = None, *, since=None, until=None,
              with_body: bool = True) -> list[list]:
        """Latest live version of each doc of a kind: [id, ts, body]."""
        external: dict = {}
        where = f"kind = {lit(kind)}"
        if ids is not None:
            where += " AND " + self._in("id", list(ids), "String", external)
        having = ["gone = 0"]
        if since is not None:
            having.append(f"dts >= {int(since)}")
        if until is not None:
            having.append(f"dts < {int(until)}")
        body = "argMax(body, version)" if with_body else "''"
        return self._rows(
            f"SELECT id, argMax(ts, version) AS dts, {body}, argMax(deleted, version) AS gone "
            f"FROM {self.db}.docs WHERE {where} GROUP BY id HAVING {' AND '.join(having)} ORDER BY dts, id",
            external=external or None)

    def _next_versions(self, n: int) -> int:
        base = max(time.time_ns(), self._last_version + 1)
        self._last_version = base + n - 1
        return base

    def put_docs(self, kind: str, docs: Iterable[Doc], *, replace: bool = False) -> int:
        docs = list(docs)
        if not docs:
            return 0
        if not replace:
            live = {r[0] for r in self._live(kind, sorted({d.id for d in docs}), with_body=False)}
            fresh, seen = [], set()
            for d in docs:  # insert-or-ignore: the first of duplicate ids wins, like SQLite
                if d.id not in live and d.id not in seen:
                    seen.add(d.id)
                    fresh.append(d)
            docs = fresh
            if not docs:
                return 0
        self._insert_docs(kind, [(d.id, int(d.ts), orjson.dumps(d.body).decode(), 0) for d in docs])
        return len(docs)

    def _insert_docs(self, kind: str, rows: list[tuple[str, int, str, int]]) -> None:
        base = self._next_versions(len(rows))
        ids, tss, bodies, deleted = zip(*rows, strict=True)
        block = native_block(len(rows), [
            ("kind", "String", _col_strings([kind] * len(rows))),
            ("id", "String", _col_strings(ids)),
            ("ts", "Int64", _fixed("q", tss)),
            ("body", "String", _col_strings(bodies)),
            ("version", "UInt64", _fixed("Q", range(base, base + len(rows)))),
            ("deleted", "UInt8", bytes(deleted)),
        ])
        self._exec(f"INSERT INTO {self.db}.docs (kind, id, ts, body, version, deleted) FORMAT Native", data=block)

    def get_docs(self, kind: str, *, since: int | None = None, until: int | None = None,
                 ids: Iterable[str] | None = None) -> list[Doc]:
        if ids is not None:
            ids = sorted(set(ids))
            if not ids:
                return []
        return [Doc(kind, i, int(ts), orjson.loads(body)) for i, ts, body, _ in self._live(kind, ids, since=since, until=until)]

    def delete_docs(self, kind: str, ids: Iterable[str]) -> int:
        ids = sorted(set(ids))
        if not ids:
            return 0
        live = self._live(kind, ids, with_body=False)
        if live:
            self._insert_docs(kind, [(r[0], int(r[1]), "{}", 1) for r in live])
        return len(live)

    # --- for `store info` ------------------------------------------------------------------------
    def info(self) -> dict:
        docs = self._rows(
            f"SELECT kind, count() FROM (SELECT kind, id, argMax(deleted, version) AS gone FROM {self.db}.docs "
            f"GROUP BY kind, id) WHERE gone = 0 GROUP BY kind ORDER BY kind")
        size = self._rows(
            f"SELECT sum(bytes_on_disk) FROM system.parts WHERE database = {lit(self.database)} AND active")
        return {"server_version": ".".join(map(str, self.server_version)),
                "docs": {k: int(c) for k, c in docs},
                "bytes_on_disk": int(size[0][0] or 0) if size else None}


class _RuleLike:
    """A good rule rebuilt from its stored parts (op, threshold)."""

    def __init__(self, op: str, threshold: float):
        self.op = op
        self.threshold = threshold
