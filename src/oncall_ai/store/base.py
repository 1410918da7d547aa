"""The score store interface that every command and analysis module uses.

Two backends implement it: SQLite (embedded default, `store/sqlite.py`) and ClickHouse
(`store/clickhouse.py`). Analysis code never sees SQL: it asks for series (the distinct
combinations of feature, metric, source, slice and versions) and for aggregates over them,
and groups those in Python. Aggregation itself is pushed down to the backend.

Data model
- events: one scored response. Identified by a 64-bit hash of its `id` (or of the record).
- series: (feature, metric, source, slice, model_id, prompt_version, index_version, judge_id).
  Cardinality is small (thousands), so it is always loaded whole and filtered in Python.
- rollups: hourly (series, bucket) cells of count, sum, sum of squares and count-good, kept up
  to date by ingest, so slice/time questions never scan raw events. Partial hours at window
  edges and sub-hour buckets are answered from raw events (clustered by series and time).
- docs: small JSON documents by kind and id (recorded changes, judge runs, rollback actions,
  incidents, notification state, importer high-water marks). Insert-or-ignore by (kind, id),
  or replace when asked.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count
from operator import itemgetter

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
ZONE_MS = 300_000  # row spans (a store's zone map) are kept per 5 minutes

# Series fields that can be used like slice keys in --where/--by.
VERSION_FIELDS = ("model_id", "prompt_version", "index_version", "judge_id")
PSEUDO_KEYS = ("source", *VERSION_FIELDS)

# A row for write_events, as a plain tuple for speed:
# (id_hash, series_key, ts_ms, value, request_id, sample_rate, input, output)
# series_key = (feature, metric, source, slice_items, model_id, prompt_version, index_version, judge_id)
# where slice_items is a sorted tuple of (key, value) string pairs and absent versions are None.
EventRow = tuple


@dataclass
class Rollup:
    """Rollup cells of a set of rows (EventColumns.rollup), column by column: cell i is series
    key index k[i], hour b[i], count n[i], sum s[i], sum of squares ss[i], count good g[i].
    `spans` maps a 5-minute bucket to its first and last row index."""

    k: list = field(default_factory=list)
    b: list = field(default_factory=list)
    n: list = field(default_factory=list)
    s: list = field(default_factory=list)
    ss: list = field(default_factory=list)
    g: list = field(default_factory=list)
    spans: dict = field(default_factory=dict)

    def extend(self, other: Rollup, key_offset: int, row_offset: int) -> None:
        self.k.extend([k + key_offset for k in other.k] if key_offset else other.k)
        self.b.extend(other.b)
        self.n.extend(other.n)
        self.s.extend(other.s)
        self.ss.extend(other.ss)
        self.g.extend(other.g)
        for z, (lo, hi) in other.spans.items():
            have = self.spans.get(z)
            if have is None:
                self.spans[z] = [lo + row_offset, hi + row_offset]
            else:
                have[1] = max(have[1], hi + row_offset)


@dataclass
class EventColumns:
    """The same events as a list of EventRow tuples, column by column (cheaper to build in parse
    workers, to pickle between processes, and to hand to SQLite). `keys` holds each distinct
    series key once; `kidx[i]` indexes it. `texts` holds (i, input, output) for rows with text."""

    keys: list = field(default_factory=list)
    kidx: list = field(default_factory=list)
    h: list = field(default_factory=list)
    ts: list = field(default_factory=list)
    value: list = field(default_factory=list)
    request_id: list = field(default_factory=list)
    sample_rate: list = field(default_factory=list)
    texts: list = field(default_factory=list)
    # Rollup cells of these rows, when the parser computed them (see `rollup`): a store may use
    # them instead of aggregating again. Dropped by `select` (the rows change).
    cells: Rollup | None = None

    def __len__(self) -> int:
        return len(self.h)

    @classmethod
    def from_rows(cls, rows: Sequence[tuple]) -> EventColumns:
        """EventRow tuples as columns, column by column in C loops. Series keys are told apart by
        object identity (ingest hands the same key object to every row of a series; an equal key
        in another object only costs one more entry in `keys`)."""
        n = len(rows)
        number = defaultdict(count().__next__)  # id(key object) -> index, in order of first appearance
        kidx = list(map(number.__getitem__, map(id, map(itemgetter(1), rows))))
        keys, at = [], -1
        for k in range(len(number)):  # first rows of keys 0, 1, 2, ... come in that order
            at = kidx.index(k, at + 1)
            keys.append(rows[at][1])
        cols = cls(keys=keys, kidx=kidx, h=list(map(itemgetter(0), rows)), ts=list(map(itemgetter(2), rows)),
                   value=list(map(itemgetter(3), rows)), request_id=list(map(itemgetter(4), rows)),
                   sample_rate=list(map(itemgetter(5), rows)))
        inputs = list(map(itemgetter(6), rows))
        outputs = list(map(itemgetter(7), rows))
        if inputs.count(None) != n or outputs.count(None) != n:
            cols.texts = [(i, a, b) for i, (a, b) in enumerate(zip(inputs, outputs, strict=True))
                          if a is not None or b is not None]
        return cols

    def append_row(self, row: tuple, index: dict[int, int]) -> None:
        """Append one EventRow tuple; `index` maps id(series key) -> its index in `keys` (the
        caller keeps it across calls, as from_rows does for a whole list)."""
        h, key, ts, value, rid, sr, inp, out = row
        k = index.get(id(key))
        if k is None:
            k = index[id(key)] = len(self.keys)
            self.keys.append(key)
        if inp is not None or out is not None:
            self.texts.append((len(self.h), inp, out))
        self.kidx.append(k)
        self.h.append(h)
        self.ts.append(ts)
        self.value.append(value)
        self.request_id.append(rid)
        self.sample_rate.append(sr)

    def rows(self) -> list[tuple]:
        text = {i: (inp, out) for i, inp, out in self.texts}
        keys = self.keys
        return [(h, keys[k], ts, v, rid, sr, *text.get(i, (None, None)))
                for i, (h, k, ts, v, rid, sr) in enumerate(zip(self.h, self.kidx, self.ts, self.value,
                                                                self.request_id, self.sample_rate, strict=True))]

    def extend(self, other: EventColumns) -> None:
        n = len(self.h)
        if other.keys is self.keys:  # both index one shared key table (see ingest's parse workers)
            offset = 0
            self.kidx.extend(other.kidx)
        else:
            offset = len(self.keys)
            self.keys.extend(other.keys)
            self.kidx.extend(k + offset for k in other.kidx)
        self.h.extend(other.h)
        self.ts.extend(other.ts)
        self.value.extend(other.value)
        self.request_id.extend(other.request_id)
        self.sample_rate.extend(other.sample_rate)
        self.texts.extend((i + n, inp, out) for i, inp, out in other.texts)
        if self.cells is not None and other.cells is not None and n:
            self.cells.extend(other.cells, offset, n)
        elif n:
            self.cells = None
        else:
            self.cells = other.cells

    def select(self, keep: list[bool]) -> EventColumns:
        """Only the rows whose flag is true."""
        idx = [i for i, k in enumerate(keep) if k]
        pos = {old: new for new, old in enumerate(idx)}
        return EventColumns(
            keys=self.keys, kidx=[self.kidx[i] for i in idx], h=[self.h[i] for i in idx],
            ts=[self.ts[i] for i in idx], value=[self.value[i] for i in idx],
            request_id=[self.request_id[i] for i in idx], sample_rate=[self.sample_rate[i] for i in idx],
            texts=[(pos[i], inp, out) for i, inp, out in self.texts if i in pos])

    def rollup(self, good_rules: dict) -> Rollup:
        """Hourly cells (count, sum, sum of squares, count good by the metric's rule in
        `good_rules`) per series key index, and each 5 minutes' first and last row: what a store adds
        to its rollups for these rows (daily cells are sums of the hourly ones). Parse workers compute
        it, off the writer's critical path."""
        preds = []
        for key in self.keys:
            r = good_rules.get(key[1])
            preds.append(None if r is None else (r.compare, r.threshold))
        hour: dict[int, list] = {}  # key index << 32 | hour number -> [n, sum, sum of squares, good]
        spans: dict[int, list[int]] = {}
        hget = hour.get
        z_cur = None
        span: list[int] = [0, 0]
        for i, (k, t, v) in enumerate(zip(self.kidx, self.ts, self.value, strict=True)):
            p = preds[k]
            g = 0 if p is None or not p[0](v, p[1]) else 1
            cell = k << 32 | t // HOUR_MS
            c = hget(cell)
            if c is None:
                hour[cell] = [1, v, v * v, g]
            else:
                c[0] += 1
                c[1] += v
                c[2] += v * v
                c[3] += g
            z = t - t % ZONE_MS
            if z != z_cur:  # rows come mostly in time order: the dict is rarely touched
                z_cur = z
                span = spans.get(z)
                if span is None:
                    span = spans[z] = [i, i]
            span[1] = i
        r = Rollup(spans=spans)
        for cell, (n, t, tt, g) in hour.items():
            r.k.append(cell >> 32)
            r.b.append((cell & 0xFFFFFFFF) * HOUR_MS)
            r.n.append(n)
            r.s.append(t)
            r.ss.append(tt)
            r.g.append(g)
        return r


@dataclass(frozen=True)
class Series:
    id: int
    feature: str
    metric: str
    source: str
    slice: tuple[tuple[str, str], ...]
    model_id: str | None = None
    prompt_version: str | None = None
    index_version: str | None = None
    judge_id: str | None = None

    @property
    def slice_dict(self) -> dict[str, str]:
        return dict(self.slice)

    def get(self, key: str) -> str | None:
        """A slice value, or a pseudo key (source, model_id, prompt_version, ...)."""
        if key in PSEUDO_KEYS:
            return getattr(self, key)
        for k, v in self.slice:
            if k == key:
                return v
        return None


@dataclass(slots=True)
class Agg:
    """Additive aggregate of a set of events."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    good: int | None = 0  # None: no good rule for this metric

    def add(self, other: Agg) -> None:
        self.n += other.n
        self.total += other.total
        self.total_sq += other.total_sq
        if self.good is None or other.good is None:
            self.good = None
        else:
            self.good += other.good

    def subtract(self, other: Agg) -> None:
        """Remove a subset's aggregate (a window edge read as a whole hour minus the rest)."""
        self.n -= other.n
        self.total -= other.total
        self.total_sq -= other.total_sq
        if self.good is None or other.good is None:
            self.good = None
        else:
            self.good -= other.good

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        if self.n < 2:
            return None
        v = (self.total_sq - self.total * self.total / self.n) / (self.n - 1)
        return max(v, 0.0)

    @property
    def good_share(self) -> float | None:
        if self.good is None or not self.n:
            return None
        return self.good / self.n


@dataclass(frozen=True)
class EventRecord:
    """One raw event read back for drill-down and exporting eval cases."""

    id_hash: int
    series: Series
    ts: int
    value: float
    request_id: str | None = None
    sample_rate: float | None = None
    input: str | None = None
    output: str | None = None


@dataclass(frozen=True)
class Doc:
    kind: str
    id: str
    ts: int
    body: dict = field(compare=False)


class Store(ABC):
    """Backend-neutral score store. All times are epoch milliseconds, windows are [start, end)."""

    url: str

    # --- events -----------------------------------------------------------------------
    @abstractmethod
    def write_events(self, rows: Sequence[EventRow], good_rules: dict) -> int:
        """Store rows atomically (all or none), skipping ids already stored; keep rollups in step.
        `good_rules` maps metric -> GoodRule (or None). Returns how many rows were new."""

    def write_columns(self, cols: EventColumns, good_rules: dict) -> int:
        """write_events for columns; backends with a faster columnar path override it."""
        return self.write_events(cols.rows(), good_rules)

    @abstractmethod
    def series(self, feature: str | None = None, metric: str | None = None) -> list[Series]:
        """Every series, optionally for one feature and/or metric."""

    @abstractmethod
    def aggregate(self, series_ids: Iterable[int], start: int, end: int, *,
                  bucket_ms: int | None = None, good_rule=None) -> dict[tuple[int, int | None], Agg]:
        """Aggregates per (series_id, bucket start) over [start, end); bucket is None without
        bucket_ms. Buckets are aligned to the epoch (UTC). `good_rule` (a GoodRule or None)
        decides `Agg.good`; results are exact whatever the alignment of start and end."""

    def aggregate_groups(self, group_of: Mapping[int, Hashable], start: int, end: int, *,
                         bucket_ms: int | None = None, good_rule=None) -> dict[tuple[Hashable, int | None], Agg]:
        """Like `aggregate`, summed over groups of series: `group_of` maps series id -> group;
        returns {(group, bucket): Agg}. Backends override it to group where the data is."""
        out: dict[tuple[Hashable, int | None], Agg] = {}
        for (sid, b), agg in self.aggregate(group_of.keys(), start, end, bucket_ms=bucket_ms,
                                            good_rule=good_rule).items():
            key = (group_of[sid], b)
            have = out.get(key)
            if have is None:
                out[key] = Agg(agg.n, agg.total, agg.total_sq, agg.good)
            else:
                have.add(agg)
        return out

    @abstractmethod
    def events(self, series_ids: Iterable[int], start: int, end: int, *, order: str = "ts",
               limit: int | None = None, with_text: bool = False) -> list[EventRecord]:
        """Raw events, ordered by `ts` or by `value` (ascending: lowest scores first)."""

    @abstractmethod
    def time_bounds(self) -> tuple[int | None, int | None]:
        """Earliest and latest event time, or (None, None) for an empty store."""

    @abstractmethod
    def count_events(self) -> int: ...

    # --- documents ----------------------------------------------------------------------
    @abstractmethod
    def put_docs(self, kind: str, docs: Iterable[Doc], *, replace: bool = False) -> int:
        """Insert documents (ignore ids already there unless replace). Returns how many changed."""

    @abstractmethod
    def get_docs(self, kind: str, *, since: int | None = None, until: int | None = None,
                 ids: Iterable[str] | None = None) -> list[Doc]:
        """Documents of a kind, ordered by ts then id, optionally in [since, until) or by ids."""

    def get_doc(self, kind: str, doc_id: str) -> Doc | None:
        found = self.get_docs(kind, ids=[doc_id])
        return found[0] if found else None

    @abstractmethod
    def delete_docs(self, kind: str, ids: Iterable[str]) -> int: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_store(url: str, *, config=None, create: bool = True) -> Store:
    """Open the store a config names: a SQLite path, or clickhouse://host:port/db."""
    if url.startswith(("clickhouse://", "clickhouses://", "http://", "https://")):
        from oncall_ai.store.clickhouse import ClickHouseStore

        return ClickHouseStore(url, config=config)
    from oncall_ai.store.sqlite import SQLiteStore

    return SQLiteStore(url, create=create)
