"""The ClickHouse store's Native column encoders (store/clickhouse.py) against a plain encoder
written value by value from the format's definition: a String is its UTF-8 length as an
unsigned LEB128 varint, then the bytes; a Nullable column is a null map (1 = NULL), then the
values with a default (empty string, 0.0) in NULL rows."""

from __future__ import annotations

import struct

import pytest

from oncall_ai.store import clickhouse as ch
from oncall_ai.store.base import EventColumns


def leb128(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def plain_string(s: str) -> bytes:
    b = s.encode("utf-8", "surrogatepass")
    return leb128(len(b)) + b


def plain_nullable(values, enc, default) -> bytes:
    return bytes(v is None for v in values) + b"".join(enc(default if v is None else v) for v in values)


STRING_CASES = {
    "ascii": [f"req-{i}" for i in range(300)],
    "empty strings": ["", "a", "", "bc"],
    "one value repeated": ["summarizer"] * 50,
    "non-ascii": ["ü", "日本語", "plain", "é" * 63, "é" * 64],
    "127 and 128 bytes": ["x" * 127, "y" * 128, "z"],
    "long": ["x" * 20_000, "short", "ü" * 9000],
    "control characters": ["tab\there", "new\nline", "\x00nul", "quote ' \\ back"],
    "lone surrogate": ["a\udc80b", "ok"],
}


@pytest.mark.parametrize("values", STRING_CASES.values(), ids=STRING_CASES.keys())
def test_string_column(values):
    assert ch._col_strings(values) == b"".join(map(plain_string, values))


@pytest.mark.parametrize("values", [
    [None] * 5, ["a", "b"], ["a", None, "ü" * 100, None, ""], [None, "x" * 300],
], ids=["all null", "no null", "mixed", "null then long"])
def test_nullable_string_column(values):
    assert ch._col_nullable_strings(values) == plain_nullable(values, plain_string, "")


@pytest.mark.parametrize("pairs", [
    [], [(0, "first")], [(4, "last")], [(1, "a"), (2, None), (3, "ü" * 200)], [(i, f"t{i}") for i in range(6)],
], ids=["none", "first row", "last row", "mixed", "every row"])
def test_sparse_string_column(pairs):
    n = 6
    values = [None] * n
    for i, v in pairs:
        values[i] = v
    assert ch._col_sparse_strings(n, pairs) == plain_nullable(values, plain_string, "")


@pytest.mark.parametrize("values", [[None] * 3, [0.5, 1.0], [None, 0.25, None, 2]], ids=["all null", "no null", "mixed"])
def test_nullable_float_column(values):
    assert ch._col_nullable_floats(values) == plain_nullable(values, lambda v: struct.pack("<d", v), 0.0)


def test_event_columns_from_rows_keeps_rows_and_keys_in_order():
    k1, k2 = ("f", "m", "judge", (), None, None, None, None), ("g", "m", "judge", (), None, None, None, None)
    rows = [(1, k1, 10, 1.0, None, None, None, None), (2, k2, 11, 2.0, "r", 0.5, "in", None),
            (3, k1, 12, 3.0, None, None, None, "out"), (4, tuple(k1), 13, 4.0, None, None, None, None)]
    cols = EventColumns.from_rows(rows)
    assert cols.rows() == rows
    assert [cols.keys[k] for k in cols.kidx] == [r[1] for r in rows]
    assert cols.texts == [(1, "in", None), (2, None, "out")]
    # Row by row (the ingest slow path) gives the same columns.
    one, index = EventColumns(), {}
    for r in rows:
        one.append_row(r, index)
    assert (one.keys, one.kidx, one.h, one.ts, one.value, one.request_id, one.sample_rate, one.texts) == (
        cols.keys, cols.kidx, cols.h, cols.ts, cols.value, cols.request_id, cols.sample_rate, cols.texts)


def test_keep_first_new():
    ids = [5, 6, 5, 7, 8, 7]
    assert ch._keep_first_new(ids, [[6, 0]]) == [True, False, True, True, True, True]
    assert ch._keep_first_new(ids, [[6, 0], [5, 1], [7, 1]]) == [True, False, False, True, True, False]
