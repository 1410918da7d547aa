"""The data triage works on: one (feature, metric) as moments per slice cell per time bucket.

Built from the store's `aggregate()` output (pure: the loader does the I/O). A *cell* is one
combination of the analysed slice keys (`(("language", "de"), ("persona", "legal"))`); versions
(model_id, prompt_version, index_version, judge_id) are kept per row for the direct
old-vs-new comparisons of attribution.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from oncall_ai.analysis.stats import Moments

VERSION_FIELDS = ("model_id", "prompt_version", "index_version", "judge_id")

Cell = tuple[tuple[str, str], ...]


class Row(NamedTuple):
    """Moments of one (series, bucket): the cell it belongs to and the versions it carries.
    (A named tuple: a full scan builds hundreds of thousands of them.)"""

    cell: int
    bucket: int
    n: float
    s: float
    ss: float
    versions: tuple[str | None, str | None, str | None, str | None]  # VERSION_FIELDS order

    def version(self, name: str) -> str | None:
        return self.versions[VERSION_FIELDS.index(name)]


@dataclass
class Cube:
    start: int  # start of bucket 0 (epoch ms)
    bucket_ms: int
    n_buckets: int
    cells: list[Cell]
    # [cell][bucket]
    n: list[list[float]]
    s: list[list[float]]
    ss: list[list[float]]
    # Rows as plain tuples in Row's field order (turned into Rows on first use of `rows`: only
    # a pair that needs version evidence pays for them).
    row_data: list = field(default_factory=list)

    @property
    def rows(self) -> list[Row]:
        data = self.row_data
        if data and type(data[0]) is not Row:
            make = Row._make
            data[:] = [make(x) for x in data]
        return data

    # --- construction ---------------------------------------------------------------------
    @classmethod
    def empty(cls, start: int, end: int, bucket_ms: int) -> Cube:
        start = (start // bucket_ms) * bucket_ms
        nb = max(0, -(-(end - start) // bucket_ms))
        return cls(start, bucket_ms, nb, [], [], [], [])

    @classmethod
    def from_aggregates(cls, series: Iterable, aggs: Mapping[tuple[int, int | None], object], *,
                        start: int, end: int, bucket_ms: int,
                        slice_keys: Sequence[str] | None = None) -> Cube:
        """`series`: objects with id, slice and the version attributes (store Series);
        `aggs`: {(series_id, bucket_start): Agg(n, total, total_sq)} as Store.aggregate returns."""
        cube = cls.empty(start, end, bucket_ms)
        by_id = {s.id: s for s in series}
        keys = set(slice_keys) if slice_keys else None
        cell_index: dict[Cell, int] = {}
        series_cell: dict[int, tuple[int, tuple]] = {}
        for sid, s in by_id.items():
            cell = tuple(sorted((k, v) for k, v in s.slice if keys is None or k in keys))
            ci = cell_index.get(cell)
            if ci is None:
                ci = cell_index[cell] = cube._add_cell(cell)
            versions = tuple(getattr(s, f, None) for f in VERSION_FIELDS)
            series_cell[sid] = (ci, versions)
        # cube.add() inlined: a full scan of a big store adds hundreds of thousands of rows.
        cn, cs, css, rows = cube.n, cube.s, cube.ss, cube.row_data
        start0, nbk = cube.start, cube.n_buckets
        binary = True
        for (sid, bstart), agg in aggs.items():
            sc = series_cell.get(sid)
            n = agg.n
            if sc is None or not n:
                continue
            ci, versions = sc
            b = (bstart - start0) // bucket_ms if bstart is not None else 0
            if not 0 <= b < nbk:
                continue
            s, ss = agg.total, agg.total_sq
            cn[ci][b] += n
            cs[ci][b] += s
            css[ci][b] += ss
            rows.append((ci, b, n, s, ss, versions))
            if binary and not (abs(ss - s) <= 1e-9 * max(1.0, s) and -1e-9 <= s <= n + 1e-9):
                binary = False
        cube.__dict__["_binary"] = binary and bool(rows)
        return cube

    def _add_cell(self, cell: Cell) -> int:
        self.cells.append(cell)
        self.n.append([0.0] * self.n_buckets)
        self.s.append([0.0] * self.n_buckets)
        self.ss.append([0.0] * self.n_buckets)
        return len(self.cells) - 1

    def cell_id(self, cell: Cell) -> int:
        for i, c in enumerate(self.cells):
            if c == cell:
                return i
        return self._add_cell(cell)

    def add(self, cell: int, bucket: int, n: float, s: float, ss: float,
            versions: tuple = (None, None, None, None)) -> None:
        self.n[cell][bucket] += n
        self.s[cell][bucket] += s
        self.ss[cell][bucket] += ss
        self.rows.append(Row(cell, bucket, n, s, ss, tuple(versions)))  # (converts pending rows)
        self.__dict__.pop("_binary", None)

    # --- time ----------------------------------------------------------------------------
    def bucket_of(self, ts: int) -> int:
        """Index of the bucket holding ts (may be out of range)."""
        return (ts - self.start) // self.bucket_ms

    def boundary(self, ts: int) -> int:
        """Index of the first bucket starting at or after ts, clamped to [0, n_buckets]."""
        b = -(-(ts - self.start) // self.bucket_ms)
        return max(0, min(self.n_buckets, b))

    def time_of(self, bucket: int) -> int:
        return self.start + bucket * self.bucket_ms

    # --- slices ---------------------------------------------------------------------------
    def slice_keys(self) -> list[str]:
        keys: set[str] = set()
        for c in self.cells:
            keys.update(k for k, _ in c)
        return sorted(keys)

    def slice_values(self) -> dict[str, list[str]]:
        out: dict[str, set[str]] = {}
        for c in self.cells:
            for k, v in c:
                out.setdefault(k, set()).add(v)
        return {k: sorted(v) for k, v in sorted(out.items())}

    def cells_where(self, where: Mapping[str, str]) -> list[int]:
        items = set(where.items())
        return [i for i, c in enumerate(self.cells) if items.issubset(c)]

    # --- moments --------------------------------------------------------------------------
    def totals(self, cells: Sequence[int] | None = None) -> tuple[list[float], list[float], list[float]]:
        """Per-bucket n, s, ss summed over the given cells (all by default)."""
        idx = range(len(self.cells)) if cells is None else cells
        n = [0.0] * self.n_buckets
        s = [0.0] * self.n_buckets
        ss = [0.0] * self.n_buckets
        for ci in idx:
            cn, cs, css = self.n[ci], self.s[ci], self.ss[ci]
            for b in range(self.n_buckets):
                if cn[b]:
                    n[b] += cn[b]
                    s[b] += cs[b]
                    ss[b] += css[b]
        return n, s, ss

    def cell_moments(self, ci: int, b0: int, b1: int) -> Moments:
        b0, b1 = max(0, b0), min(self.n_buckets, b1)
        if b1 <= b0:
            return Moments()
        return Moments(sum(self.n[ci][b0:b1]), sum(self.s[ci][b0:b1]), sum(self.ss[ci][b0:b1]))

    def moments(self, b0: int, b1: int, cells: Sequence[int] | None = None) -> Moments:
        m = Moments()
        for ci in (range(len(self.cells)) if cells is None else cells):
            m.merge(self.cell_moments(ci, b0, b1))
        return m

    def is_binary(self) -> bool:
        """Every value 0 or 1 (a check, thumbs down): sum of squares equals sum in every row."""
        flag = self.__dict__.get("_binary")
        if flag is None:
            flag = bool(self.rows) and all(abs(r.ss - r.s) <= 1e-9 * max(1.0, r.s) and -1e-9 <= r.s <= r.n + 1e-9
                                           for r in self.rows)
            self.__dict__["_binary"] = flag
        return flag

    def total_n(self) -> float:
        return sum(sum(c) for c in self.n)
