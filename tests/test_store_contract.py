"""One behaviour, every backend: the Store contract (store/base.py) checked on SQLite, on the
ClickHouse server from .ci/setup-clickhouse.sh (Debian's 18.x), and on chdb (a current ClickHouse
in-process) — each against an independent computation over the raw rows."""

from __future__ import annotations

import math
import random

import pytest

from oncall_ai.config import GoodRule
from oncall_ai.store.base import HOUR_MS, Doc

T0 = 1_764_000_000_000 - 1_764_000_000_000 % HOUR_MS + 17 * 60_000 + 123  # unaligned on purpose
GOOD = GoodRule(">=", 4)
OTHER = GoodRule("<", 3)


class Backend:
    def __init__(self, kind, tmp_path):
        self.kind = kind
        self._dbs = []
        self.tmp_path = tmp_path
        if kind == "sqlite":
            self.url = str(tmp_path / "contract.db")
        elif kind == "clickhouse":
            from clickhouse_helpers import FreshDatabase, server_url

            if server_url() is None:
                pytest.skip("no ClickHouse server: set ONCALL_AI_TEST_CLICKHOUSE (see .ci/setup-clickhouse.sh)")
            self._db = FreshDatabase()
            self.url = self._db.url
        else:
            from clickhouse_helpers import ChdbDatabase, chdb_session

            chdb_session()  # skips when chdb is not installed
            self._db = ChdbDatabase()
            self.url = self._db.url
        self._open = []

    def open(self):
        if self.kind == "chdb":
            store = self._db.open()
        else:
            from oncall_ai.store import open_store

            store = open_store(self.url)
        self._open.append(store)
        return store

    def cleanup(self):
        for s in self._open:
            s.close()
        if self.kind != "sqlite":
            self._db.drop()


@pytest.fixture(params=["sqlite", "clickhouse", "chdb"])
def backend(request, tmp_path, monkeypatch):
    for var in ("CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    b = Backend(request.param, tmp_path)
    yield b
    b.cleanup()


def key(feature="summarizer", metric="helpfulness", source="judge", sl=(), model=None, prompt=None,
        index=None, judge=None):
    return (feature, metric, source, tuple(sorted(sl)), model, prompt, index, judge)


KEYS = [
    key(sl=(("language", "de"), ("persona", "pro"))),
    key(sl=(("language", "en"),), model="m-1", prompt="abc123"),
    key(metric="schema_valid", source="check", sl=(("language", "de"),)),
    key(feature="router", sl=(("language", "fr"),), judge="j-2", index="idx-9"),
]


def make_rows(n=2400, seed=7, span_ms=3 * 24 * HOUR_MS):
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        k = KEYS[i % len(KEYS)]
        value = float(rnd.randint(0, 1)) if k[1] == "schema_valid" else float(rnd.randint(1, 5)) + rnd.choice((0, 0.5))
        text = (f"in {i} 'quoted' \\ tab\tnewline\n ü", f"out {i}") if i % 7 == 0 else (None, None)
        rows.append((rnd.getrandbits(64) - (1 << 63), k, T0 + rnd.randrange(span_ms), value,
                     f"req-{i // 2}" if i % 3 else None, 0.5 if i % 5 == 0 else None, *text))
    return rows


def expected_aggregate(rows, sids_of, start, end, bucket_ms, rule):
    out = {}
    for _h, k, ts, v, *_ in rows:
        if not start <= ts < end:
            continue
        b = None if bucket_ms is None else ts - ts % bucket_ms
        cell = out.setdefault((sids_of[k], b), [0, 0.0, 0.0, 0])
        cell[0] += 1
        cell[1] += v
        cell[2] += v * v
        cell[3] += 1 if (rule is not None and rule.is_good(v)) else 0
    return out


def assert_same_aggregate(got, want, rule):
    assert set(got) == set(want)
    for k, (n, s, ss, g) in want.items():
        agg = got[k]
        assert agg.n == n, k
        assert math.isclose(agg.total, s, rel_tol=1e-9, abs_tol=1e-9), k
        assert math.isclose(agg.total_sq, ss, rel_tol=1e-9, abs_tol=1e-9), k
        assert agg.good == (g if rule is not None else None), k


def series_ids(store):
    return {(s.feature, s.metric, s.source, s.slice, s.model_id, s.prompt_version, s.index_version, s.judge_id): s.id
            for s in store.series()}


RULES = {"helpfulness": GOOD, "schema_valid": GoodRule("==", 1)}


# --- events: idempotency --------------------------------------------------------------------------

def test_write_events_is_idempotent_across_batches_and_reopen(backend):
    rows = make_rows(600)
    store = backend.open()
    assert store.count_events() == 0
    assert store.time_bounds() == (None, None)
    assert store.write_events(rows[:400], RULES) == 400
    assert store.write_events(rows[:400], RULES) == 0
    # overlapping batch: only the new half is stored; duplicates inside one batch count once
    assert store.write_events(rows[200:600] + rows[500:600], RULES) == 200
    assert store.count_events() == 600
    again = backend.open()  # a second process re-running the same ingest
    assert again.write_events(rows, RULES) == 0
    assert again.count_events() == 600
    whole = again.aggregate(series_ids(again).values(), 0, 2**62)
    assert sum(a.n for a in whole.values()) == 600  # rollups did not double count
    ts = [r[2] for r in rows]
    assert again.time_bounds() == (min(ts), max(ts))


def test_write_events_empty_batch(backend):
    store = backend.open()
    assert store.write_events([], RULES) == 0
    assert store.series() == []


# --- series ---------------------------------------------------------------------------------------

def test_series_carry_every_key_field_and_filter(backend):
    store = backend.open()
    store.write_events(make_rows(40), RULES)
    got = series_ids(store)
    assert set(got) == set(KEYS)
    assert len(set(got.values())) == len(KEYS)
    assert {s.metric for s in store.series(metric="schema_valid")} == {"schema_valid"}
    assert {s.feature for s in store.series(feature="router")} == {"router"}
    assert store.series(feature="router", metric="schema_valid") == []
    s = next(s for s in store.series() if s.feature == "router")
    assert s.get("language") == "fr" and s.get("judge_id") == "j-2" and s.get("index_version") == "idx-9"
    assert s.get("model_id") is None and s.get("source") == "judge"
    # ids are stable for a store: reopening gives the same ids
    assert series_ids(backend.open()) == got


# --- aggregate: exact at any alignment -------------------------------------------------------------

WINDOWS = [
    (T0, T0 + 3 * 24 * HOUR_MS),                               # everything, unaligned edges
    (T0 + 5 * HOUR_MS - T0 % HOUR_MS, T0 + 29 * HOUR_MS - T0 % HOUR_MS),  # hour-aligned edges
    (T0 + 5_000, T0 + 26 * HOUR_MS + 777),                     # unaligned both ends
    (T0 + 3 * HOUR_MS + 60_000, T0 + 3 * HOUR_MS + 50 * 60_000),  # inside hours (no full hour)
    (0, 2**62),                                                # unbounded
    # edges with most of their hour inside the window (SQLite reads those as the hour's cells
    # minus the raw rest) and with little of it inside
    (T0 + 23 * 60_000, T0 + 20 * HOUR_MS + 33 * 60_000),       # starts :40, ends :50
    (T0 - 16 * 60_000 + HOUR_MS, T0 + 30 * HOUR_MS + 42 * 60_000 - 1),  # starts :01, ends :59.999
    (T0 - 17 * 60_000 - 123 + 30 * 60_000, T0 + 5 * HOUR_MS - 17 * 60_000 + 30 * 60_000),  # :30 to :30
    (T0 + HOUR_MS, T0 + HOUR_MS),                              # empty
]
BUCKETS = [None, 300_000, 900_000, HOUR_MS, 2 * HOUR_MS, 86_400_000]


@pytest.mark.parametrize("bucket_ms", BUCKETS)
def test_aggregate_matches_raw_computation(backend, bucket_ms):
    rows = make_rows()
    store = backend.open()
    for i in range(0, len(rows), 700):  # several batches, so rollup cells get merged
        store.write_events(rows[i:i + 700], RULES)
    sids = series_ids(store)
    metric_sids = [sids[k] for k in KEYS if k[1] == "helpfulness"]
    for start, end in WINDOWS:
        for rule in (None, GOOD, OTHER):
            got = store.aggregate(metric_sids, start, end, bucket_ms=bucket_ms, good_rule=rule)
            helpful_rows = [r for r in rows if r[1][1] == "helpfulness"]
            want = expected_aggregate(helpful_rows, sids, start, end, bucket_ms, rule)
            assert_same_aggregate(got, want, rule)


@pytest.mark.parametrize("bucket_ms", [None, HOUR_MS, 86_400_000])
def test_aggregate_groups_sums_series_into_their_groups(backend, bucket_ms):
    rows = make_rows()
    store = backend.open()
    store.write_events(rows, RULES)
    sids = series_ids(store)
    group_of = {sid: ("by-language", dict(k[3]).get("language")) for k, sid in sids.items()}
    for start, end in WINDOWS:
        for rule in (None, GOOD):
            got = store.aggregate_groups(group_of, start, end, bucket_ms=bucket_ms, good_rule=rule)
            per_series = expected_aggregate(rows, sids, start, end, bucket_ms, rule)
            want: dict = {}
            for (sid, b), (n, t, tt, g) in per_series.items():
                cell = want.setdefault((group_of[sid], b), [0, 0.0, 0.0, 0])
                for i, x in enumerate((n, t, tt, g)):
                    cell[i] += x
            assert_same_aggregate(got, want, rule)


def test_aggregate_exact_when_the_good_rule_changed_between_ingests(backend):
    rows = make_rows(1200)
    store = backend.open()
    store.write_events(rows[:600], RULES)
    store.write_events(rows[600:], {**RULES, "helpfulness": GoodRule(">", 2.5)})  # config changed
    sids = series_ids(store)
    chosen = [sids[k] for k in KEYS]
    for rule in (GOOD, GoodRule(">", 2.5), OTHER, None):
        for bucket_ms in (None, HOUR_MS, 86_400_000):
            got = store.aggregate(chosen, T0 + 1234, T0 + 60 * HOUR_MS, bucket_ms=bucket_ms, good_rule=rule)
            want = expected_aggregate(rows, sids, T0 + 1234, T0 + 60 * HOUR_MS, bucket_ms, rule)
            assert_same_aggregate(got, want, rule)


@pytest.mark.parametrize("rule_changed", [False, True], ids=["one rule", "rule changed between ingests"])
def test_aggregate_groups_with_few_groups(backend, rule_changed):
    """Few groups for many series (what `scores` asks): ClickHouse sums them in SQL, and falls back
    to per-series cells when an hour was counted under another good rule."""
    rows = make_rows(1200)
    store = backend.open()
    store.write_events(rows[:600], RULES)
    store.write_events(rows[600:], {**RULES, "helpfulness": GoodRule(">", 2.5)} if rule_changed else RULES)
    sids = series_ids(store)
    for grouping in (lambda k: ("all",), lambda k: (k[1],)):
        group_of = {sid: grouping(k) for k, sid in sids.items()}
        for start, end in WINDOWS[:3]:
            for bucket_ms in (None, HOUR_MS, 900_000):
                for rule in (None, GOOD):
                    got = store.aggregate_groups(group_of, start, end, bucket_ms=bucket_ms, good_rule=rule)
                    want: dict = {}
                    for (sid, b), cell in expected_aggregate(rows, sids, start, end, bucket_ms, rule).items():
                        acc = want.setdefault((group_of[sid], b), [0, 0.0, 0.0, 0])
                        for i, x in enumerate(cell):
                            acc[i] += x
                    assert_same_aggregate(got, want, rule)


def test_aggregate_only_the_requested_series(backend):
    rows = make_rows(400)
    store = backend.open()
    store.write_events(rows, RULES)
    sids = series_ids(store)
    one = sids[KEYS[1]]
    got = store.aggregate([one], 0, 2**62, good_rule=GOOD)
    assert set(got) == {(one, None)}
    assert got[(one, None)].n == sum(1 for r in rows if r[1] == KEYS[1])
    assert store.aggregate([], 0, 2**62) == {}


# --- events: order, limit, text ---------------------------------------------------------------------

def test_events_order_limit_and_text(backend):
    rows = make_rows(300)
    store = backend.open()
    store.write_events(rows, RULES)
    sids = series_ids(store)
    k = KEYS[0]
    mine = [r for r in rows if r[1] == k]
    start, end = T0 + HOUR_MS, T0 + 50 * HOUR_MS
    inside = [r for r in mine if start <= r[2] < end]
    assert inside, "test data must have events in the window"

    # (timestamps are random to the millisecond, so (ts) and (value, ts) orders have no ties here)
    by_ts = store.events([sids[k]], start, end)
    assert [(e.ts, e.value) for e in by_ts] == sorted((r[2], r[3]) for r in inside)
    assert all(e.input is None and e.output is None for e in by_ts)  # no text unless asked
    assert all(e.series.feature == k[0] and e.series.slice == k[3] for e in by_ts)

    newest = store.events([sids[k]], start, end, order="-ts", limit=5)
    assert [e.ts for e in newest] == sorted((r[2] for r in inside), reverse=True)[:5]

    lowest = store.events([sids[k]], start, end, order="value", limit=7, with_text=True)
    want = sorted(inside, key=lambda r: (r[3], r[2]))[:7]
    assert [(e.value, e.ts) for e in lowest] == [(r[3], r[2]) for r in want]
    by_ts_value = {(r[2], r[3]): r for r in mine}
    got = store.events([sids[k]], 0, 2**62, with_text=True)
    assert len(got) == len(mine)
    for e in got:
        r = by_ts_value[(e.ts, e.value)]
        assert (e.request_id, e.sample_rate, e.input, e.output) == (r[4], r[5], r[6], r[7])
    assert store.events([], 0, 2**62) == []
    with pytest.raises(ValueError):
        store.events([sids[k]], 0, 1, order="sideways")


def test_events_ties_are_broken_by_the_id_hash(backend):
    """Events at the same time (a batch-scored eval run stamps them alike) come back in the same
    order on every backend: (ts | value, ts | -ts) then the id hash, so `limit` picks the same ones."""
    rnd = random.Random(3)
    k = KEYS[0]
    hashes = list({rnd.getrandbits(64) - (1 << 63) for _ in range(60)})
    rows = [(h, k, T0 + (i % 3) * 1000, float(1 + i % 2), None, None, None, None) for i, h in enumerate(hashes)]
    store = backend.open()
    assert store.write_events(rows[:30], RULES) == 30  # two batches: insertion order is not hash order
    assert store.write_events(rows[30:], RULES) == 30
    sid = series_ids(store)[k]
    got = store.events([sid], 0, 2**62, limit=25)
    assert [e.id_hash for e in got] == [r[0] for r in sorted(rows, key=lambda r: (r[2], r[0]))][:25]
    got = store.events([sid], 0, 2**62, order="value", limit=25)
    assert [e.id_hash for e in got] == [r[0] for r in sorted(rows, key=lambda r: (r[3], r[2], r[0]))][:25]
    got = store.events([sid], 0, 2**62, order="-ts", limit=25)
    assert [e.id_hash for e in got] == [r[0] for r in sorted(rows, key=lambda r: (-r[2], r[0]))][:25]


def test_an_id_stored_under_another_feature_or_metric_is_a_duplicate(backend):
    """CONTRACT.md section 1: ingesting the same id again changes nothing, even when the record now
    names another metric or feature (a corrected metric name, per-metric files reusing request ids)."""
    rows = make_rows(40)
    store = backend.open()
    assert store.write_events(rows, RULES) == 40
    h, _, ts, *rest = rows[5]
    other_metric = key(metric="faithfulness")
    other_feature = key(feature="router")
    assert store.write_events([(h, other_metric, ts, *rest)], RULES) == 0
    assert store.write_events([(h, other_feature, ts, *rest), rows[6]], RULES) == 0
    assert store.write_events([(h, other_metric, ts, *rest)] + [(r[0] + 1, *r[1:]) for r in rows[:3]], RULES) == 3
    assert store.count_events() == 43


def test_events_carry_the_id_hash(backend):
    """EventRecord.id_hash is the 64-bit id hash written (store/base.py): `store copy` relies on it
    to keep event ids, so copying and then ingesting the same file again does not duplicate."""
    rows = make_rows(50)
    store = backend.open()
    store.write_events(rows, RULES)
    got = store.events(series_ids(store).values(), 0, 2**62)
    assert sorted(e.id_hash for e in got) == sorted(r[0] for r in rows)


def test_write_columns_with_text_ids_and_repeated_keys(backend):
    """write_columns (the ingest path) stores exactly what write_events would: blocks joined with
    EventColumns.extend repeat equal keys as other objects, texts are sparse and may be long or
    non-ASCII, request ids may all be set, and an id twice in the batch counts once (the first)."""
    from oncall_ai.store.base import EventColumns

    rnd = random.Random(11)
    long_text = "ü" * 70 + "x" * 200  # 340 bytes: a two-byte length varint
    blocks = []
    rows = []
    for b in range(3):
        block_rows = []
        for i in range(200):
            k = tuple(list(KEYS[(i + b) % len(KEYS)]))  # an equal key, a new object per block
            j = b * 200 + i
            text = (long_text if j % 11 == 0 else f"in {j}", None if j % 2 else f"out {j} é") if j % 5 == 0 else (None, None)
            block_rows.append((rnd.getrandbits(64) - (1 << 63), k, T0 + j * 60_000, float(1 + j % 5),
                               f"req-{j}", 0.25 if j % 4 else None, *text))
        blocks.append(EventColumns.from_rows(block_rows))
        rows += block_rows
    cols = blocks[0]
    cols.extend(blocks[1])
    cols.extend(blocks[2])
    cols.extend(EventColumns.from_rows([(rows[7][0], rows[7][1], rows[7][2] + 1, 9.0, "late", None, "x", "y")]))
    store = backend.open()
    assert store.write_columns(cols, RULES) == 600
    assert store.write_columns(cols, RULES) == 0
    sids = series_ids(store)
    got = store.events(list(sids.values()), 0, 2**62, with_text=True)
    assert sorted((e.id_hash, e.ts, e.value, e.request_id, e.sample_rate, e.input, e.output) for e in got) == \
        sorted((r[0], r[2], r[3], r[4], r[5], r[6], r[7]) for r in rows)
    assert sorted(sids) == sorted(set(KEYS))


# --- documents ---------------------------------------------------------------------------------------

def test_docs_put_get_replace_delete(backend):
    store = backend.open()
    assert store.get_docs("change") == []
    docs = [Doc("change", "c2", 200, {"kind": "prompt", "n": 2}), Doc("change", "c1", 100, {"kind": "model"}),
            Doc("change", "c3", 200, {"text": "ünïcode 'q' \\ \t"})]
    assert store.put_docs("change", docs) == 3
    assert [d.id for d in store.get_docs("change")] == ["c1", "c2", "c3"]  # by ts, then id
    # insert-or-ignore keeps the first body
    assert store.put_docs("change", [Doc("change", "c1", 999, {"kind": "other"})]) == 0
    assert store.get_doc("change", "c1").body == {"kind": "model"}
    assert store.get_doc("change", "c3").body == {"text": "ünïcode 'q' \\ \t"}
    # replace
    assert store.put_docs("change", [Doc("change", "c1", 300, {"kind": "index"})], replace=True) == 1
    got = store.get_doc("change", "c1")
    assert (got.ts, got.body) == (300, {"kind": "index"})
    assert [d.id for d in store.get_docs("change")] == ["c2", "c3", "c1"]
    # windows and ids
    assert [d.id for d in store.get_docs("change", since=200, until=300)] == ["c2", "c3"]
    assert [d.id for d in store.get_docs("change", ids=["c3", "nope", "c1"])] == ["c3", "c1"]
    assert store.get_docs("change", ids=[]) == []
    # other kinds are separate
    assert store.get_docs("incident") == []
    store.put_docs("incident", [Doc("incident", "c1", 1, {"x": 1})])
    assert store.get_doc("change", "c1").body == {"kind": "index"}
    # delete
    assert store.delete_docs("change", ["c2", "missing"]) == 1
    assert store.delete_docs("change", ["c2"]) == 0
    assert [d.id for d in store.get_docs("change")] == ["c3", "c1"]
    assert store.get_doc("change", "c2") is None
    # a deleted id can be inserted again
    assert store.put_docs("change", [Doc("change", "c2", 5, {"again": True})]) == 1
    assert store.get_doc("change", "c2").body == {"again": True}
    # and another process sees the same
    assert [d.id for d in backend.open().get_docs("change")] == ["c2", "c3", "c1"]


def test_many_docs_by_ids(backend):
    """Long id lists (more than an SQL IN list should carry) work the same."""
    store = backend.open()
    docs = [Doc("import_state", f"p{i:04d}", i, {"hw": i}) for i in range(1500)]
    assert store.put_docs("import_state", docs) == 1500
    wanted = [f"p{i:04d}" for i in range(0, 1500, 1)]
    assert len(store.get_docs("import_state", ids=wanted)) == 1500
    assert store.put_docs("import_state", docs) == 0


def test_time_bounds_and_count(backend):
    store = backend.open()
    assert store.time_bounds() == (None, None)
    assert store.count_events() == 0
    rows = make_rows(50)
    store.write_events(rows, RULES)
    ts = [r[2] for r in rows]
    assert store.time_bounds() == (min(ts), max(ts))
    assert store.count_events() == 50
