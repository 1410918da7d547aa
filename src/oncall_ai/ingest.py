"""Eval events in (CONTRACT.md section 1): readers, validation, and the batch writer.

Python API for pipelines:

    from oncall_ai.ingest import ingest_records
    result = ingest_records(records, config=cfg)          # records: iterable of dicts
    result.stored, result.duplicates, result.rejected      # counts; result.rejects: first few

Every valid record is stored; every invalid one is named (file:line and reason) and skipped.
Batches are atomic (one transaction each), so a killed ingest leaves a consistent store, and
running it again skips what is already there (ids are 64-bit hashes of `id`, or of the record).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import orjson

from oncall_ai.config import SOURCES, Config, MetricConfig
from oncall_ai.errors import UsageError
from oncall_ai.store.base import EventColumns
from oncall_ai.timeutil import MS_MAX, MS_MIN

BATCH_SIZE = 100_000  # rows per transaction: fewer commits, each rewriting fewer dedup pages per row
MAX_LINE_BYTES = 1 << 20  # 1 MiB; input/output text beyond that is almost certainly a broken export
REJECTS_SHOWN = 10

_VERSION_KEYS = ("model_id", "prompt_version", "index_version", "judge_id")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


class _FastEvent(msgspec.Struct):
    """The common shape of an event, decoded with its types checked in C (parse_block's fast
    path). Anything that does not fit (a number as a slice value, a bool value, ...) fails to
    decode and takes the exact path, which accepts or names it."""

    ts: str | int | float  # RFC 3339 or epoch seconds (booleans fail)
    feature: str
    metric: str
    value: float  # JSON integers are accepted (as floats), booleans are not
    id: str | None = None
    source: str | None = None
    slice: dict[str, str] | None = None
    model_id: str | None = None
    prompt_version: str | None = None
    index_version: str | None = None
    judge_id: str | None = None
    request_id: str | None = None
    sample_rate: float | None = None
    input: str | None = None
    output: str | None = None


_FAST_DECODER = msgspec.json.Decoder(_FastEvent)


class Reject(Exception):
    """A record that fails validation; the message is the reason."""


@dataclass
class RejectInfo:
    file: str
    line: int
    reason: str
    raw: str | None = None


@dataclass
class IngestResult:
    read: int = 0  # records seen (valid + rejected)
    stored: int = 0  # newly stored
    duplicates: int = 0  # valid, but already stored (same id)
    rejected: int = 0
    rejects: list[RejectInfo] = field(default_factory=list)  # the first REJECTS_SHOWN
    files: list[str] = field(default_factory=list)

    @property
    def valid(self) -> int:
        return self.stored + self.duplicates


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big", signed=True)


_ID_HASHER = hashlib.blake2b(b"id:", digest_size=8)


def id_hash(event_id: str) -> int:
    return _hash64(b"id:" + event_id.encode("utf-8", "surrogatepass"))


def record_hash(obj: dict) -> int:
    """A stable hash of a record without `id`: canonical JSON (sorted keys) of its content."""
    return _hash64(b"rec:" + orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))


class _MinuteCache(dict):
    """ "YYYY-MM-DDTHH:MM" -> epoch ms of that UTC minute, parsed once (ts strings share minutes)."""

    def parse(self, prefix: str) -> int | None:
        try:
            dt = datetime.fromisoformat(prefix + ":00+00:00")
        except ValueError:
            return None
        ms = (dt - _EPOCH) // _ONE_MS
        if not (MS_MIN <= ms and ms + 60_000 <= MS_MAX):
            return None  # out of range: the exact path names it
        if len(self) < 200_000:
            self[prefix] = ms
        return ms


class Validator:
    """Turns a parsed record (dict) into an EventRow tuple, or raises Reject."""

    def __init__(self, config: Config | None):
        self.metrics: dict[str, MetricConfig] = dict(config.metrics) if config else {}
        self.good_rules = {name: m.good for name, m in self.metrics.items()}
        self._default_source = {name: m.source for name, m in self.metrics.items()}
        self._scale = {name: m.scale for name, m in self.metrics.items() if m.scale}
        self._keys: dict[tuple, tuple] = {}  # interned series keys: less memory, cheaper pickling
        self.fast_keys: dict[tuple, tuple] = {}  # values as written (see parse_block) -> interned key
        self.minute_ms = _MinuteCache()

    def fast_key(self, fk: tuple) -> tuple:
        """The interned series key of a fast-path record (fk: feature, metric, source, 4 versions,
        then the slice items as written, all strings or None)."""
        items = fk[7:]
        versions = tuple(v or None for v in fk[3:7])
        key = (fk[0], fk[1], fk[2], tuple(sorted(items)), *versions)
        key = self._keys.setdefault(key, key)
        if len(self.fast_keys) < 1_000_000:  # bounded: a pathological file cannot eat memory
            self.fast_keys[fk] = key
        return key

    def row(self, obj) -> tuple:
        if not isinstance(obj, dict):
            raise Reject(f"not a JSON object but {type(obj).__name__}")
        get = obj.get
        # ts
        ts = get("ts")
        if ts is None:
            raise Reject("missing key 'ts'")
        ts_ms = _parse_ts(ts)
        # feature / metric
        feature = get("feature")
        if not isinstance(feature, str) or not feature:
            raise Reject("missing key 'feature'" if feature is None else f"'feature' must be a non-empty string, not {feature!r}")
        metric = get("metric")
        if not isinstance(metric, str) or not metric:
            raise Reject("missing key 'metric'" if metric is None else f"'metric' must be a non-empty string, not {metric!r}")
        # value
        value = get("value")
        t = type(value)
        if t is float:
            if not math.isfinite(value):
                raise Reject(f"'value' is not finite: {value!r}")
        elif t is int:
            value = float(value)
        elif t is bool:
            value = 1.0 if value else 0.0
        elif value is None:
            raise Reject("missing key 'value'" if "value" not in obj else "'value' is null")
        else:
            raise Reject(f"'value' must be a number or boolean, not {value!r}"[:200])
        scale = self._scale.get(metric)
        if scale is not None and not scale[0] <= value <= scale[1]:
            raise Reject(f"'value' {value:g} is outside the scale {scale[0]:g}..{scale[1]:g} declared for metric {metric!r}")
        # source
        source = get("source")
        if source is None:
            source = self._default_source.get(metric, "judge")
        elif source not in SOURCES:
            raise Reject(f"'source' must be one of judge, check, user, not {source!r}")
        # slice
        sl = get("slice")
        if sl is None or sl == {}:
            slice_items = ()
        elif isinstance(sl, dict):
            items = []
            for k, v in sl.items():
                if type(v) is not str:
                    if isinstance(v, bool) or not isinstance(v, int | float | str):
                        raise Reject(f"slice value for {k!r} must be a string, not {v!r}"[:200])
                    v = str(v)
                items.append((k, v))
            items.sort()
            slice_items = tuple(items)
        else:
            raise Reject(f"'slice' must be an object of string values, not {sl!r}"[:200])
        # versions
        versions = []
        for k in _VERSION_KEYS:
            v = get(k)
            if v is not None and type(v) is not str:
                if isinstance(v, bool) or not isinstance(v, int | float):
                    raise Reject(f"{k!r} must be a string, not {v!r}"[:200])
                v = str(v)
            versions.append(v or None)
        # optional scalars
        sample_rate = get("sample_rate")
        if sample_rate is not None:
            if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | float) or not 0 < sample_rate <= 1:
                raise Reject(f"'sample_rate' must be a number in (0, 1], not {sample_rate!r}")
            sample_rate = float(sample_rate)
        request_id = get("request_id")
        if request_id is not None and type(request_id) is not str:
            if isinstance(request_id, bool) or not isinstance(request_id, int):
                raise Reject(f"'request_id' must be a string, not {request_id!r}"[:200])
            request_id = str(request_id)
        inp = get("input")
        out = get("output")
        if inp is not None and type(inp) is not str:
            raise Reject("'input' must be a string")
        if out is not None and type(out) is not str:
            raise Reject("'output' must be a string")
        # id
        eid = get("id")
        if eid is None:
            h = record_hash(obj)
        else:
            if type(eid) is not str:
                if isinstance(eid, bool) or not isinstance(eid, int):
                    raise Reject(f"'id' must be a string, not {eid!r}"[:200])
                eid = str(eid)
            if not eid:
                raise Reject("'id' is empty")
            h = id_hash(eid)
        key = (feature, metric, source, slice_items, versions[0], versions[1], versions[2], versions[3])
        key = self._keys.setdefault(key, key)
        return (h, key, ts_ms, value, request_id, sample_rate, inp, out)


def _parse_ts(ts) -> int:
    t = type(ts)
    if t is str:
        try:
            dt = datetime.fromisoformat(ts)
        except ValueError:
            if ts[:1].isdigit() and ts.replace(".", "", 1).isdigit():
                return _parse_ts(float(ts))
            raise Reject(f"'ts' is not an RFC 3339 time: {ts!r}"[:200]) from None
        if dt.tzinfo is None:
            raise Reject(f"'ts' has no UTC offset: {ts!r} (add Z or +00:00)"[:200])
        if len(ts) < 11:
            raise Reject(f"'ts' has no time of day: {ts!r}")
        # Integer arithmetic: dt.timestamp() * 1000 is a float and can land 1 ms low.
        ms = (dt - _EPOCH) // _ONE_MS
    elif t is int or t is float:
        if not math.isfinite(ts):
            raise Reject(f"'ts' is not finite: {ts!r}")
        ms = int(round(ts * 1000))
    else:
        raise Reject(f"'ts' must be an RFC 3339 string or epoch seconds, not {ts!r}"[:200])
    if not MS_MIN <= ms < MS_MAX:
        raise Reject(f"'ts' {ts!r} is outside 2000..2100 (epoch seconds, not milliseconds?)")
    return ms


# --- readers ------------------------------------------------------------------------------

Item = tuple[int, object, bytes | None]  # (line number, parsed object or Reject, raw line)


def _open_binary(path: str):
    if path == "-":
        return sys.stdin.buffer
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{path}: no such file")
    if p.is_dir():
        raise UsageError(f"{path}: is a folder, not a file of events")
    f = open(p, "rb")  # noqa: SIM115 - closed by the caller
    if path.endswith(".gz"):
        return gzip.GzipFile(fileobj=f)
    return f


def _is_csv(path: str) -> bool:
    name = path[:-3] if path.endswith(".gz") else path
    return name.endswith(".csv")


def read_jsonl(stream, max_line_bytes: int = MAX_LINE_BYTES, first_line: int = 1) -> Iterator[Item]:
    loads = orjson.loads
    lineno = first_line - 1
    for raw in stream:
        lineno += 1
        if lineno == 1 and raw[:3] == b"\xef\xbb\xbf":  # a UTF-8 byte order mark (Windows tools write one)
            raw = raw[3:]
        if len(raw) > max_line_bytes:
            yield lineno, Reject(f"line is {len(raw):,} bytes, over the {max_line_bytes:,}-byte limit (--max-line-bytes)"), None
            continue
        if not raw.strip():
            continue
        try:
            yield lineno, loads(raw), raw
        except orjson.JSONDecodeError as e:
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as ue:
                yield lineno, Reject(f"invalid UTF-8 at byte {ue.start}"), raw
                continue
            msg = str(e).split(":")[0]
            if b"NaN" in raw or b"Infinity" in raw:
                msg = "NaN/Infinity are not valid JSON numbers"
            yield lineno, Reject(f"malformed JSON: {msg}"), raw


_BOOL_TEXT = {"true": True, "false": False, "True": True, "False": False, "TRUE": True, "FALSE": False}


def _csv_value(key: str, text: str):
    """CSV cells are text: turn numbers and booleans back into what JSON would have had."""
    if key in ("value", "ts", "sample_rate"):
        if text in _BOOL_TEXT and key == "value":
            return _BOOL_TEXT[text]
        try:
            n = float(text)
        except ValueError:
            return text  # validation names it
        if key == "value" and not math.isfinite(n):
            return n
        return int(n) if n.is_integer() and "." not in text and "e" not in text.lower() else n
    return text


def read_csv(stream, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Item]:
    try:
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")  # -sig: Excel's "CSV UTF-8" has a BOM
        reader = csv.reader(text)
        header = next(reader, None)
    except UnicodeDecodeError as e:
        yield 1, Reject(f"invalid UTF-8 in the header ({e.reason})"), None
        return
    if header is None:
        return
    header = [h.strip() for h in header]
    if "ts" not in header:
        yield 1, Reject("CSV header has no 'ts' column (expected ts, feature, metric, value, slice.<key>, ...)"), None
        return
    lineno = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except UnicodeDecodeError as e:
            lineno += 1
            yield lineno, Reject(f"invalid UTF-8 ({e.reason}); the rest of the file cannot be read"), None
            break
        except csv.Error as e:
            lineno = reader.line_num
            yield lineno, Reject(f"malformed CSV: {e}"), None
            continue
        lineno = reader.line_num
        if not cells or all(not c for c in cells):
            continue
        if len(cells) != len(header):
            yield lineno, Reject(f"{len(cells)} cells but the header has {len(header)}"), None
            continue
        obj: dict = {}
        sl: dict = {}
        for k, v in zip(header, cells, strict=True):
            if v == "":
                continue
            if k.startswith("slice."):
                sl[k[6:]] = v
            else:
                obj[k] = _csv_value(k, v)
        if sl:
            obj["slice"] = sl
        yield lineno, obj, None


# A stream that breaks off (a truncated .gz, a read error): what was read before is kept, and the
# break is one reject naming the file.
_READ_ERRORS = (OSError, EOFError, gzip.BadGzipFile)


def _cannot_read(e: BaseException) -> str:
    return f"cannot read the rest of the file: {e}"


def iter_file(path: str, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[Item]:
    stream = _open_binary(path)
    try:
        reader = read_csv if _is_csv(path) else read_jsonl
        yield from reader(stream, max_line_bytes)
    except _READ_ERRORS as e:
        yield -1, Reject(_cannot_read(e)), None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


# --- parallel parsing of large plain JSON Lines files ---------------------------------------
#
# Parsing and validating is most of ingest's CPU time; the SQLite writer is single-threaded. For a
# large plain .jsonl file, worker processes parse blocks of lines while the main process writes, in
# file order, so results (and rejects) are the same as the serial path.

BLOCK_BYTES = 4 << 20
WORKER_NICE = 3
SERIAL_BLOCK_BYTES = 1 << 20
PARALLEL_MIN_BYTES = 32 << 20

_worker_validator: Validator | None = None
_worker_cells = True  # compute rollup cells (stores that keep their own rollups do not want them)
_worker_max_line = MAX_LINE_BYTES


def _worker_init(validator: Validator, max_line_bytes: int, cells: bool = True) -> None:
    global _worker_validator, _worker_max_line, _worker_cells
    import gc

    gc.disable()  # no reference cycles are made here; the collector only costs time
    _worker_validator = validator
    _worker_cells = cells
    # The single writer is the critical path: parse workers run a little below it, so on two
    # cores the writer is not preempted by the workers it waits for (4% faster, measured).
    try:
        os.nice(WORKER_NICE)
    except OSError:
        pass
    _worker_key_ids.clear()
    _worker_keys.clear()
    _worker_max_line = max_line_bytes


def parse_block(data: bytes, first_line: int, validator: Validator, max_line_bytes: int):
    """Parse and validate a block of whole lines: (EventColumns, rejects as (line, reason, raw),
    lines read).

    The hot loop of ingest. Records of the common shape (an RFC 3339 timestamp in UTC or epoch
    seconds, string feature/metric, a string id or none, a numeric value, string slice values and
    versions, no text) are decoded into a typed struct and validated inline, and their series key
    is found through a flat tuple of the values as written; anything else goes through
    `Validator.row`, which gives exactly the same row, or the exact reason for a reject."""
    cols = EventColumns()
    keys, kidx, hs, tss, values = cols.keys, cols.kidx, cols.h, cols.ts, cols.value
    rids, srs = cols.request_id, cols.sample_rate
    rejects = []
    row = validator.row
    fast_keys = validator.fast_keys  # flat tuple as written -> canonical series key
    block_kidx: dict[int, int] = {}  # id(canonical key) -> index in this block's keys
    minute_ms = validator.minute_ms  # "YYYY-MM-DDTHH:MM" -> epoch ms
    minute_get = minute_ms.get
    scale = validator._scale
    default_source = validator._default_source
    loads = orjson.loads
    decode = _FAST_DECODER.decode
    id_hasher = _ID_HASHER.copy
    from_bytes = int.from_bytes
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    nread = 0
    lineno = first_line - 1
    for raw in lines:
        lineno += 1
        if len(raw) > max_line_bytes or (lineno == 1 and raw[:3] == b"\xef\xbb\xbf"):
            for _, obj, raw2 in read_jsonl([raw], max_line_bytes, first_line=lineno):
                nread += 1
                r = _slow(row, obj, raw2, lineno, rejects)
                if r is not None:
                    cols.append_row(r, block_kidx)
            continue
        # --- fast path: a typed decode (types checked in C); any surprise falls through to the
        # exact path below
        try:
            ev = decode(raw)
        except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
            ev = None
        if ev is not None:
            ts = ev.ts
            feature = ev.feature
            metric = ev.metric
            value = ev.value
            eid = ev.id
            source = ev.source
            sl = ev.slice
            sr = ev.sample_rate
            if (feature and metric and (eid or eid is None)
                    and (source is None or source in SOURCES) and (sr is None or 0 < sr <= 1)
                    and ev.input is None and ev.output is None and value - value == 0.0):  # finite
                # "YYYY-MM-DDTHH:MM:SSZ" inline: _fast_ts does it too, but the call costs ~10% of
                # the loop (measured) and this is nearly every timestamp.
                if type(ts) is str and len(ts) == 20 and ts[19] == "Z" and ts[16] == ":":
                    base = minute_get(ts[:16])
                    if base is None:
                        base = minute_ms.parse(ts[:16])
                    ss = ts[17:19]
                    ts_ms = (base + int(ss) * 1000
                             if base is not None and ss.isascii() and ss.isdigit() and ss < "60" else None)
                else:
                    ts_ms = _fast_ts(ts, minute_ms)
                if ts_ms is not None:
                    sc = scale.get(metric)
                    if sc is None or sc[0] <= value <= sc[1]:
                        if source is None:
                            source = default_source.get(metric, "judge")
                        if sl:
                            fk = (feature, metric, source, ev.model_id, ev.prompt_version, ev.index_version,
                                  ev.judge_id, *sl.items())
                        else:
                            fk = (feature, metric, source, ev.model_id, ev.prompt_version, ev.index_version,
                                  ev.judge_id)
                        key = fast_keys.get(fk)
                        if key is None:
                            key = validator.fast_key(fk)
                        k = block_kidx.get(id(key))
                        if k is None:
                            k = block_kidx[id(key)] = len(keys)
                            keys.append(key)
                        kidx.append(k)
                        if eid is None:  # the record's own hash, from the record as the exact path reads it
                            hs.append(record_hash(loads(raw)))
                        else:
                            hasher = id_hasher()  # = id_hash(eid): blake2b-64 of "id:" + id, from a primed copy
                            hasher.update(eid.encode("utf-8", "surrogatepass"))
                            hs.append(from_bytes(hasher.digest(), "big", signed=True))
                        tss.append(ts_ms)
                        values.append(value)
                        rids.append(ev.request_id)
                        srs.append(sr)
                        nread += 1
                        continue
        try:
            obj = loads(raw)
        except orjson.JSONDecodeError:
            if not raw.strip():
                continue
            for _, obj, raw2 in read_jsonl([raw], max_line_bytes, first_line=lineno):
                nread += 1
                rejects.append((lineno, str(obj), raw2))
            continue
        nread += 1
        r = _slow(row, obj, raw, lineno, rejects)
        if r is not None:
            cols.append_row(r, block_kidx)
    return cols, rejects, nread


def _fast_ts(ts, minute_ms: _MinuteCache) -> int | None:
    """Epoch ms of the other common timestamp shapes (fractional seconds, +00:00, epoch seconds),
    exactly as the exact path computes it; None for anything else (the exact path decides)."""
    if type(ts) is str:
        if ts.endswith("Z"):
            body = ts[:-1]
        elif ts.endswith("+00:00"):
            body = ts[:-6]
        else:
            return None
        if len(body) < 19 or body[16] != ":" or (len(body) > 19 and body[19] != "."):
            return None
        frac = body[20:]
        ss = body[17:19]
        if len(body) > 19 and not (0 < len(frac) <= 9 and frac.isascii() and frac.isdigit()):
            return None
        if not (ss.isascii() and ss.isdigit() and ss < "60"):
            return None
        base = minute_ms.get(body[:16])
        if base is None:
            base = minute_ms.parse(body[:16])
            if base is None:
                return None
        return base + int(ss) * 1000 + (int((frac + "00")[:3]) if frac else 0)
    if type(ts) is bool or not ts - ts == 0:  # not finite: the exact path names it
        return None
    ms = int(round(ts * 1000))
    return ms if MS_MIN <= ms < MS_MAX else None


def _slow(row, obj, raw, lineno, rejects):
    if isinstance(obj, Reject):
        rejects.append((lineno, str(obj), raw))
        return None
    try:
        return row(obj)
    except Reject as e:
        rejects.append((lineno, str(e), raw))
        return None


# Series keys (nested tuples of strings) cost more to pickle than all of a block's values: each
# worker numbers the keys it has seen and sends a key once, with the first block that has it;
# blocks carry key numbers only (see _KeyTables for the other end).
_worker_key_ids: dict[int, int] = {}  # id(interned key) -> this worker's key number
_worker_keys: list = []  # holds the keys alive, so their id() stays theirs


def _worker_result(cols: EventColumns):
    """(pid, keys new to the main process, cols numbered by this worker's key numbers), with the
    writer's rollup work (the cells) done here, in parallel."""
    if _worker_cells:
        cols.cells = cols.rollup(_worker_validator.good_rules)
    ids = _worker_key_ids
    new = []
    local = []
    for key in cols.keys:
        g = ids.get(id(key))
        if g is None:
            g = ids[id(key)] = len(_worker_keys)
            _worker_keys.append(key)
            new.append(key)
        local.append(g)
    cols.kidx = [local[k] for k in cols.kidx]
    if cols.cells is not None:
        cols.cells.k = [local[k] for k in cols.cells.k]
    cols.keys = []
    return os.getpid(), new, cols


class _KeyTables:
    """The main process's side of the worker key numbers: one shared key table for every block,
    so batches of blocks from any worker index the same list (EventColumns.extend adds no keys)."""

    def __init__(self):
        self.keys: list = []
        self._index: dict[tuple, int] = {}
        self._of_worker: dict[int, list[int]] = {}

    def adopt(self, pid: int, new: list, cols: EventColumns) -> EventColumns:
        m = self._of_worker.setdefault(pid, [])
        for key in new:
            i = self._index.get(key)
            if i is None:
                i = self._index[key] = len(self.keys)
                self.keys.append(key)
            m.append(i)
        cols.kidx = [m[k] for k in cols.kidx]
        if cols.cells is not None:
            cols.cells.k = [m[k] for k in cols.cells.k]
        cols.keys = self.keys
        return cols


def _parse_block_in_worker(args):
    data, first_line = args
    cols, rejects, nread = parse_block(data, first_line, _worker_validator, _worker_max_line)
    return _worker_result(cols), rejects, nread


def _blocks(stream, block_bytes: int = BLOCK_BYTES):
    """(bytes of whole lines, number of its first line) from a binary stream.

    Reads with read1 where the stream has it (one underlying read or decompression step per
    call): a pipe yields what has arrived instead of waiting for a whole block, and when a stream
    breaks off (a truncated .gz) the whole lines read before the break still come out, then the
    error is raised."""
    read = getattr(stream, "read1", None) or stream.read
    buf = bytearray()
    line = 1
    while True:
        try:
            chunk = read(block_bytes)
        except _READ_ERRORS:
            cut = buf.rfind(b"\n")
            if cut >= 0:
                yield bytes(buf[: cut + 1]), line
            raise
        if not chunk:
            if buf:
                yield bytes(buf), line
            return
        buf += chunk
        if len(buf) >= block_bytes:
            cut = buf.rfind(b"\n")
            if cut >= 0:
                block = bytes(buf[: cut + 1])
                del buf[: cut + 1]
                yield block, line
                line += block.count(b"\n")


# --- the writer ---------------------------------------------------------------------------

class Ingestor:
    """Validates items and writes them to a store in atomic batches."""

    def __init__(self, store, config: Config | None, *, rejects_path: str | None = None,
                 batch_size: int = BATCH_SIZE):
        self.store = store
        self.validator = Validator(config)
        self.result = IngestResult()
        # A store may ask for bigger batches (ClickHouse wants few large inserts).
        self.batch_size = max(batch_size, getattr(store, "ingest_batch_rows", 0) or 0)
        self._batch: list[tuple] = []
        self._cols: EventColumns | None = None
        try:
            self._rejects_file = open(rejects_path, "wb") if rejects_path else None  # noqa: SIM115
        except OSError as e:
            raise UsageError(f"--rejects {rejects_path}: cannot write there ({e.strerror})",
                             hint="name a file in a folder that exists") from None
        self.on_batch: Callable[[IngestResult], None] | None = None
        self._writer = None  # a thread that writes one batch while the next is gathered
        self._writing = None  # its current batch (a Future)

    def write_in_background(self) -> None:
        """Write each batch in a thread while this one keeps taking parsed blocks: the store's
        work (SQLite's C code, a ClickHouse server's insert) overlaps with parsing. Batches are
        still written one at a time, in order, each atomic."""
        from concurrent.futures import ThreadPoolExecutor

        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="oncall-ai-writer")

    def _wait_writer(self) -> None:
        if self._writing is not None:
            pending, self._writing = self._writing, None
            pending.result()  # re-raises the writer's error here

    def reject(self, name: str, lineno: int, reason: str, raw: bytes | str | None) -> None:
        r = self.result
        r.rejected += 1
        raw_text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if len(r.rejects) < REJECTS_SHOWN:
            r.rejects.append(RejectInfo(name, lineno, reason))
        if self._rejects_file is not None:
            self._rejects_file.write(orjson.dumps({"file": name, "line": lineno, "reason": reason,
                                                    "raw": raw_text.rstrip("\n") if raw_text else None}) + b"\n")

    def add_items(self, name: str, items: Iterable[Item]) -> None:
        row = self.validator.row
        batch = self._batch
        result = self.result
        for lineno, obj, raw in items:
            result.read += 1
            if isinstance(obj, Reject):
                self.reject(name, lineno, str(obj), raw)
                continue
            try:
                batch.append(row(obj))
            except Reject as e:
                self.reject(name, lineno, str(e), raw if raw is not None else orjson.dumps(obj))
                continue
            if len(batch) >= self.batch_size:
                self.flush()

    def add_parsed(self, name: str, cols: EventColumns, rejects: list[tuple], nread: int) -> None:
        """Events and rejects parsed elsewhere (a worker process), in file order."""
        self.result.read += nread
        for lineno, reason, raw in rejects:
            self.reject(name, lineno, reason, raw)
        if self._batch:  # keep order: rows from the serial path go first
            self.flush()
        if self._cols is None:
            self._cols = cols
        else:
            self._cols.extend(cols)
        if len(self._cols) >= self.batch_size:
            self.flush()

    def _write_columns(self, cols: EventColumns) -> None:
        new = self.store.write_columns(cols, self.validator.good_rules)
        self.result.stored += new
        self.result.duplicates += len(cols) - new
        if self.on_batch:
            self.on_batch(self.result)

    def flush(self) -> None:
        if self._cols is not None and len(self._cols):
            cols, self._cols = self._cols, None
            self._wait_writer()  # one batch in flight at most
            if self._writer is not None:
                self._writing = self._writer.submit(self._write_columns, cols)
            else:
                self._write_columns(cols)
        self._cols = None
        if self._batch:
            self._wait_writer()  # keep order
            new = self.store.write_events(self._batch, self.validator.good_rules)
            self.result.stored += new
            self.result.duplicates += len(self._batch) - new
            self._batch.clear()
            if self.on_batch:
                self.on_batch(self.result)

    def close(self) -> IngestResult:
        try:
            try:
                self.flush()
            finally:
                self._wait_writer()
        finally:
            if self._writer is not None:
                self._writer.shutdown(wait=True)
                self._writer = None
            if self._rejects_file is not None:
                self._rejects_file.close()
        return self.result


def ingest_files(paths: list[str], store, config: Config | None, *, rejects_path: str | None = None,
                 max_line_bytes: int = MAX_LINE_BYTES, progress: Callable[[str, int], None] | None = None,
                 batch_size: int = BATCH_SIZE, workers: int | None = None) -> IngestResult:
    """Ingest files (JSONL, .jsonl.gz, CSV, '-' for stdin). Missing files raise UsageError before
    anything is written."""
    for p in paths:
        if p != "-" and not os.path.exists(p):
            raise UsageError(f"{p}: no such file")
        if p != "-" and os.path.isdir(p):
            raise UsageError(f"{p}: is a folder, not a file of events")
        if p != "-":
            try:
                open(p, "rb").close()
            except OSError as e:
                raise UsageError(f"{p}: cannot read ({e.strerror}); nothing was ingested") from None
    import gc

    ing = Ingestor(store, config, rejects_path=rejects_path, batch_size=batch_size)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of small tuples and no cycles: the cyclic collector only costs time
    try:
        for p in paths:
            name = "<stdin>" if p == "-" else p
            ing.result.files.append(name)
            before = ing.result.read
            if workers is None:  # parse workers: one per core, at most 2 (one writer is the limit)
                n_workers = min(2, os.cpu_count() or 1) if (os.cpu_count() or 1) > 1 else 0
            else:
                n_workers = workers  # 0: parse in this process
            if (n_workers > 0 and p != "-" and not _is_csv(p)
                    and os.path.getsize(p) * (8 if p.endswith(".gz") else 1) >= PARALLEL_MIN_BYTES):
                _ingest_parallel(ing, p, name, n_workers, max_line_bytes, progress)
            elif not _is_csv(p):
                _ingest_blocks(ing, p, name, max_line_bytes, progress)
            else:
                items = iter_file(p, max_line_bytes)
                if progress is not None:
                    items = _counting(items, name, progress)
                ing.add_items(name, items)
            if ing.result.read == before:
                ing.reject(name, 0, "empty file: no records", None)
                ing.result.read += 1
    finally:
        result = ing.close()
        if gc_was_enabled:
            gc.enable()
    return result


def _ingest_parallel(ing: Ingestor, path: str, name: str, workers: int, max_line_bytes: int, progress) -> None:
    """Worker processes parse blocks while this process writes, in file order. A plain file is
    read by the workers themselves (each is given a byte range: no copy through a pipe); a .gz
    stream is read here and its blocks sent to them."""
    import multiprocessing
    from collections import deque

    ctx = multiprocessing.get_context("fork")
    gz = path.endswith(".gz")
    tables = _KeyTables()
    cells = getattr(ing.store, "uses_rollup_cells", False)
    if getattr(ing.store, "ingest_in_background", False):
        ing.write_in_background()
    with ctx.Pool(workers, initializer=_worker_init, initargs=(ing.validator, max_line_bytes, cells)) as pool:
        pending: deque = deque()
        read_error: list[BaseException] = []
        if gz:
            f = _open_binary(path)

            def gz_tasks():
                try:
                    for blk in _blocks(f):
                        yield _parse_block_in_worker, blk
                except _READ_ERRORS as e:  # named after the blocks read before it are written
                    read_error.append(e)

            tasks = gz_tasks()
        else:
            f = None
            size = os.path.getsize(path)
            tasks = ((_parse_range_in_worker, (path, start, min(start + BLOCK_BYTES, size)))
                     for start in range(0, size, BLOCK_BYTES))
        try:
            line = 1
            done = False
            while True:
                # Keep a bounded number of blocks in flight (memory stays flat on huge files).
                while not done and len(pending) < 2 * workers + 1:
                    try:
                        fn, arg = next(tasks)
                    except StopIteration:
                        done = True
                        break
                    pending.append(pool.apply_async(fn, (arg,)))
                if not pending:
                    break
                out = pending.popleft().get()
                if gz:
                    numbered, rejects, nread = out
                else:
                    # Line numbers: the worker counted from 1 (or 2, so that only the file's first
                    # line is checked for a byte order mark); this block starts at `line`.
                    numbered, rejects, nread, nlines, local_first = out
                    if rejects:
                        shift = line - local_first
                        rejects = [(n + shift, reason, raw) for n, reason, raw in rejects]
                    line += nlines
                ing.add_parsed(name, tables.adopt(*numbered), rejects, nread)
                if progress is not None:
                    progress(name, ing.result.read)
            for e in read_error:
                ing.result.read += 1
                ing.reject(name, -1, _cannot_read(e), None)
        finally:
            if f is not None:
                f.close()


_worker_files: dict[str, object] = {}


def _parse_range_in_worker(args):
    """Parse the lines that start in [start, end) of a plain file (a line that starts before
    `start` belongs to the block before; the last line is read to its end)."""
    path, start, end = args
    f = _worker_files.get(path)
    if f is None:
        f = _worker_files[path] = open(path, "rb")  # noqa: SIM115 - one per worker, for its life
    if start > 0:
        f.seek(start - 1)
        f.readline()  # the rest of the line that holds byte start-1
    else:
        f.seek(0)
    pos = f.tell()
    data = f.read(end - pos) if pos < end else b""
    if data and not data.endswith(b"\n"):
        data += f.readline()
    nlines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    local_first = 1 if start == 0 else 2
    cols, rejects, nread = parse_block(data, local_first, _worker_validator, _worker_max_line)
    return _worker_result(cols), rejects, nread, nlines, local_first


def _ingest_blocks(ing: Ingestor, path: str, name: str, max_line_bytes: int, progress) -> None:
    """JSON Lines in this process, block by block (stdin, .gz, small files): the same parser as the
    workers use."""
    stream = _open_binary(path)
    try:
        for data, first_line in _blocks(stream, SERIAL_BLOCK_BYTES):
            ing.add_parsed(name, *parse_block(data, first_line, ing.validator, max_line_bytes))
            if progress is not None:
                progress(name, ing.result.read)
    except _READ_ERRORS as e:
        ing.result.read += 1
        ing.reject(name, -1, _cannot_read(e), None)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _counting(items: Iterator[Item], name: str, progress) -> Iterator[Item]:
    for n, item in enumerate(items, 1):
        if n % 10_000 == 0:
            progress(name, n)
        yield item


def ingest_records(records: Iterable[dict], *, config: Config | None = None, store=None,
                   name: str = "<records>") -> IngestResult:
    """Ingest records from Python (a pipeline). Opens the config's store unless one is given."""
    own = store is None
    if own:
        from oncall_ai.config import load_config
        from oncall_ai.store import open_store

        config = config or load_config(required=False)
        store = open_store(config.store, config=config)
    try:
        ing = Ingestor(store, config)
        ing.add_items(name, ((i, r, None) for i, r in enumerate(records, 1)))
        return ing.close()
    finally:
        if own:
            store.close()
