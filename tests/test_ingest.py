import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from oncall_ai.config import load_config
from oncall_ai.ingest import ingest_files, ingest_records
from oncall_ai.store import open_store

T0 = 1_795_000_000  # 2026-11-18T...Z


def ev(i, **kw):
    d = {"id": f"e{i}", "ts": T0 + i, "feature": "summarizer", "metric": "helpfulness", "value": 4,
         "slice": {"language": "en"}}
    d.update(kw)
    return d


@pytest.fixture
def cfg(tmp_path):
    p = tmp_path / "oncall-ai.yaml"
    p.write_text("store: s.db\nmetrics:\n  helpfulness: {source: judge, good: '>= 4', scale: [1, 5]}\n"
                 "  schema_valid: {source: check, good: '== 1'}\n")
    return load_config(p)


def write_jsonl(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return str(path)


def count(store):
    return store.count_events()


def test_jsonl_gz_csv_and_stdin(run_cli, tmp_path, cfg):
    a = write_jsonl(tmp_path / "a.jsonl", [ev(i) for i in range(5)])
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as f:
        for i in range(5, 8):
            f.write(json.dumps(ev(i)) + "\n")
    (tmp_path / "c.csv").write_text(
        "id,ts,feature,metric,value,slice.language,slice.persona\n"
        f"e8,{T0 + 8},summarizer,helpfulness,5,de,dev\n"
        f"e9,2026-11-18T00:00:00Z,summarizer,schema_valid,true,de,\n")
    r = run_cli("--config", cfg.path, "ingest", a, tmp_path / "b.jsonl.gz", tmp_path / "c.csv")
    assert r.exit_code == 0, r.stderr
    r = run_cli("--config", cfg.path, "ingest", "-", input=json.dumps(ev(10)) + "\n")
    assert r.exit_code == 0, r.stderr
    with open_store(cfg.store) as st:
        assert count(st) == 11
        s = {tuple(x.slice) for x in st.series()}
        assert (("language", "de"), ("persona", "dev")) in s
        checks = [x for x in st.series() if x.metric == "schema_valid"]
        assert checks and checks[0].source == "check"  # from the metric's config


def test_idempotent_by_id_and_by_record_hash(tmp_path, cfg):
    recs = [ev(i) for i in range(3)] + [{k: v for k, v in ev(99).items() if k != "id"}]
    p = write_jsonl(tmp_path / "a.jsonl", recs)
    with open_store(cfg.store) as st:
        r1 = ingest_files([p], st, cfg)
        r2 = ingest_files([p], st, cfg)
        assert (r1.stored, r1.duplicates) == (4, 0)
        assert (r2.stored, r2.duplicates) == (0, 4)
        # the same id with other content changes nothing
        r3 = ingest_records([ev(1, value=1)], config=cfg, store=st)
        assert r3.stored == 0
        agg = st.aggregate([s.id for s in st.series()], T0 * 1000 - 1, T0 * 1000 + 10**6)
        assert sum(a.n for a in agg.values()) == 4
        assert sum(a.total for a in agg.values()) == 16  # value 1 was not stored


BAD = [
    ("{bad json", "malformed JSON"),
    ('{"ts": 1795000000, "feature": "s", "metric": "helpfulness", "value": NaN}', "NaN"),
    (json.dumps({"feature": "s", "metric": "helpfulness", "value": 4}), "missing key 'ts'"),
    (json.dumps({"ts": T0, "metric": "helpfulness", "value": 4}), "missing key 'feature'"),
    (json.dumps({"ts": T0, "feature": "s", "value": 4}), "missing key 'metric'"),
    (json.dumps({"ts": T0, "feature": "s", "metric": "helpfulness"}), "missing key 'value'"),
    (json.dumps({"ts": T0, "feature": "s", "metric": "helpfulness", "value": "4"}), "'value' must be a number"),
    (json.dumps({"ts": "2026-11-27T03:02:00", "feature": "s", "metric": "m", "value": 1}), "no UTC offset"),
    (json.dumps({"ts": "yesterday", "feature": "s", "metric": "m", "value": 1}), "not an RFC 3339"),
    (json.dumps({"ts": T0 * 1000, "feature": "s", "metric": "m", "value": 1}), "milliseconds"),
    (json.dumps({"ts": T0, "feature": "s", "metric": "helpfulness", "value": 7}), "outside the scale"),
    (json.dumps({"ts": T0, "feature": "s", "metric": "m", "value": 1, "source": "robot"}), "'source'"),
    (json.dumps({"ts": T0, "feature": "s", "metric": "m", "value": 1, "slice": {"a": {"b": 1}}}), "slice value"),
    (json.dumps({"ts": T0, "feature": "s", "metric": "m", "value": 1, "sample_rate": 0}), "sample_rate"),
    ("[1, 2]", "not a JSON object"),
]


def test_bad_records_are_named_and_valid_ones_kept(run_cli, tmp_path, cfg):
    lines = [json.dumps(ev(0))] + [b for b, _ in BAD] + [json.dumps(ev(1))]
    p = tmp_path / "mixed.jsonl"
    data = "\n".join(lines).encode() + b"\n" + b'{"ts": 1795000000, "feature": "\xff", "metric": "m", "value": 1}\n'
    data += b'{"id": "big", "ts": 1795000000, "feature": "s", "metric": "m", "value": 1, "input": "' + b"x" * (10 << 20) + b'"}\n'
    data += json.dumps(ev(2)).encode() + b"\n"
    p.write_bytes(data)
    r = run_cli("--config", cfg.path, "ingest", p, "--rejects", tmp_path / "rej.jsonl")
    assert r.exit_code == 1
    assert "Traceback" not in r.stderr
    for lineno, (_, reason) in enumerate(BAD[:10], start=2):
        assert f"mixed.jsonl:{lineno}: " in r.stderr
        assert reason in r.stderr
    assert "more rejected" in r.stderr
    rejects = [json.loads(x) for x in (tmp_path / "rej.jsonl").read_text().splitlines()]
    assert len(rejects) == len(BAD) + 2
    reasons = {x["line"]: x["reason"] for x in rejects}
    assert "UTF-8" in reasons[len(BAD) + 3]
    assert "over the" in reasons[len(BAD) + 4]
    for (_, why), line in zip(BAD, range(2, 2 + len(BAD)), strict=True):
        assert why in reasons[line]
    with open_store(cfg.store) as st:
        assert count(st) == 3


def test_missing_and_empty_files(run_cli, tmp_path, cfg):
    r = run_cli("--config", cfg.path, "ingest", tmp_path / "nope.jsonl")
    assert r.exit_code == 2 and "no such file" in r.stderr
    (tmp_path / "empty.jsonl").write_text("")
    r = run_cli("--config", cfg.path, "ingest", tmp_path / "empty.jsonl")
    assert r.exit_code == 1 and "empty file" in r.stderr


def test_bad_config_exits_2(run_cli, tmp_path):
    p = tmp_path / "oncall-ai.yaml"
    p.write_text("metrics: [1]\n")
    f = write_jsonl(tmp_path / "a.jsonl", [ev(0)])
    r = run_cli("--config", p, "ingest", f)
    assert r.exit_code == 2 and "metrics" in r.stderr


def test_parallel_path_matches_serial(tmp_path, cfg):
    import oncall_ai.ingest as ing

    recs = [ev(i, value=(i % 5) + 1, slice={"language": ["en", "de"][i % 2]}) for i in range(3000)]
    recs[1234] = "{broken"
    p = write_jsonl(tmp_path / "a.jsonl", recs)
    cfg2 = load_config(cfg.path, store_override=str(tmp_path / "par.db"))
    old = ing.PARALLEL_MIN_BYTES, ing.BLOCK_BYTES
    ing.PARALLEL_MIN_BYTES, ing.BLOCK_BYTES = 0, 4096
    try:
        with open_store(cfg2.store) as st:
            rp = ing.ingest_files([p], st, cfg2, workers=2)
            par = st.aggregate([s.id for s in st.series()], 0, 2**62)
            par_series = {s.id: s for s in st.series()}
    finally:
        ing.PARALLEL_MIN_BYTES, ing.BLOCK_BYTES = old
    with open_store(cfg.store) as st:
        rs = ing.ingest_files([p], st, cfg, workers=0)
        ser = st.aggregate([s.id for s in st.series()], 0, 2**62)
        ser_series = {s.id: s for s in st.series()}
    assert (rp.stored, rp.rejected) == (rs.stored, rs.rejected) == (2999, 1)
    assert rp.rejects[0].line == rs.rejects[0].line == 1235

    def by_slice(agg, series):
        return {series[sid].slice: (a.n, a.total) for (sid, _), a in agg.items()}

    assert by_slice(par, par_series) == by_slice(ser, ser_series)


def test_killed_ingest_leaves_consistent_store_and_rerun_completes(tmp_path, cfg):
    """SIGKILL the real CLI mid-file; the store holds whole batches only, and a re-run completes it
    with no loss and no duplicates."""
    n = 120_000
    p = tmp_path / "big.jsonl"
    with open(p, "w") as f:
        for i in range(n):
            f.write(json.dumps(ev(i, value=(i % 5) + 1)) + "\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, "-m", "oncall_ai", "--config", str(cfg.path), "ingest", "-q", str(p)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = cfg.store
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until at least one batch is committed
        time.sleep(0.05)
        try:
            c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            got = c.execute("SELECT count(*) FROM events").fetchone()[0]
            c.close()
        except sqlite3.Error:
            got = 0
        if got > 0 or proc.poll() is not None:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    c = sqlite3.connect(db)
    events = c.execute("SELECT count(*) FROM events").fetchone()[0]
    keys = c.execute("SELECT count(*) FROM event_keys").fetchone()[0]
    rolled = c.execute("SELECT coalesce(sum(n), 0) FROM rollup_1h").fetchone()[0]
    c.close()
    assert events == keys == rolled  # consistent: every stored event is counted once
    assert events < n or proc.returncode == 0
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    c = sqlite3.connect(db)
    assert c.execute("SELECT count(*) FROM events").fetchone()[0] == n
    assert c.execute("SELECT count(*), sum(value) FROM events").fetchone() == (n, sum((i % 5) + 1 for i in range(n)))
    assert c.execute("SELECT sum(n) FROM rollup_1h").fetchone()[0] == n
    c.close()


def test_python_api_opens_config_store(tmp_path, cfg, monkeypatch):
    monkeypatch.setenv("ONCALL_AI_CONFIG", str(cfg.path))
    r = ingest_records([ev(1), {"ts": "bad"}])
    assert (r.stored, r.rejected) == (1, 1)
    assert "<records>" == r.rejects[0].file and r.rejects[0].line == 2


def test_a_utf8_byte_order_mark_is_not_data(run_cli, tmp_path, cfg):
    """Windows tools (Excel's "CSV UTF-8", PowerShell) start files with a BOM: the first record is
    still a record, and a CSV header still has its `ts` column."""
    bom = b"\xef\xbb\xbf"
    jl = tmp_path / "bom.jsonl"
    jl.write_bytes(bom + b"".join(json.dumps(ev(i)).encode() + b"\r\n" for i in range(3)))
    csv = tmp_path / "bom.csv"
    csv.write_bytes(bom + b"ts,feature,metric,value,slice.language,id\r\n"
                    + f"{T0 + 10},summarizer,helpfulness,5,de,c1\r\n".encode())
    with open_store(cfg.store, config=cfg) as store:
        result = ingest_files([str(jl), str(csv)], store, cfg)
    assert (result.stored, result.rejected) == (4, 0), result.rejects
    # the parallel reader (big files) parses blocks; the first block starts with the BOM
    from oncall_ai.ingest import MAX_LINE_BYTES, Validator, parse_block

    cols, rejects, nread = parse_block(jl.read_bytes(), 1, Validator(cfg), MAX_LINE_BYTES)
    assert (len(cols), rejects, nread) == (3, [], 3)


def test_unwritable_rejects_path_is_a_usage_error(run_cli, tmp_path, cfg):
    f = write_jsonl(tmp_path / "a.jsonl", [ev(1), "not json"])
    r = run_cli("--config", cfg.path, "ingest", f, "--rejects", tmp_path / "no" / "such" / "r.jsonl")
    assert r.exit_code == 2
    assert "--rejects" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("--config", cfg.path, "ingest", f, "--max-line-bytes", "0")
    assert r.exit_code == 2 and "--max-line-bytes" in r.stderr


def _variants():
    """Records of the common shape and of every unusual one the exact path handles differently."""
    base = {"id": "a1", "ts": "2026-11-18T10:00:05Z", "feature": "summarizer", "metric": "helpfulness",
            "value": 4, "source": "judge", "slice": {"persona": "dev", "language": "de"},
            "model_id": "m-1", "prompt_version": "p1", "index_version": "i1", "judge_id": "j1",
            "request_id": "r1", "sample_rate": 0.1}
    edits = [
        {}, {"value": 4.5}, {"value": 1}, {"value": 5.0}, {"value": 0}, {"value": 6}, {"value": True},
        {"value": "4"}, {"value": None}, {"value": float("inf")}, {"source": None}, {"source": "user"},
        {"source": "robot"}, {"slice": None}, {"slice": {}}, {"slice": {"language": "de", "persona": "dev"}},
        {"slice": {"persona": 3}}, {"slice": {"persona": True}}, {"slice": {"persona": None}}, {"slice": ["x"]},
        {"slice": "de"}, {"model_id": ""}, {"model_id": None}, {"model_id": 7}, {"model_id": False},
        {"prompt_version": 2.5}, {"judge_id": ["x"]}, {"request_id": 12}, {"request_id": True},
        {"request_id": None}, {"sample_rate": 1}, {"sample_rate": 1.0}, {"sample_rate": 0.0},
        {"sample_rate": 1.5}, {"sample_rate": None}, {"sample_rate": True}, {"id": ""}, {"id": 12},
        {"id": None}, {"id": True}, {"id": "é☃"}, {"ts": "2026-11-18T10:00:05.250Z"}, {"ts": "2026-11-18T10:00:05+02:00"},
        {"ts": "2026-11-18T10:00:05.1Z"}, {"ts": "2026-11-18T10:00:05.123456Z"}, {"ts": "2026-11-18T10:00:05.1234567Z"},
        {"ts": "2026-11-18T10:00:05+00:00"}, {"ts": "2026-11-18T10:00:05.5+00:00"}, {"ts": "2026-11-18T10:00:05.Z"},
        {"ts": "2026-11-18T10:00:05,5Z"}, {"ts": "2026-11-18T10:00Z"}, {"ts": "2026-11-18T10:00:05.12aZ"},
        {"ts": 1_795_000_000.1234}, {"ts": 946_684_799}, {"ts": 4_102_444_800}, {"ts": 1e300}, {"ts": -5},
        {"ts": "2026-11-18T10:00:60Z"}, {"ts": "2026-11-18T10:00:5xZ"}, {"ts": "2026-11-18T10:00:05"},
        {"ts": "2026-11-18 10:00:05Z"}, {"ts": "2026-13-18T10:00:05Z"}, {"ts": "2026-11-18"},
        {"ts": 1_795_000_000}, {"ts": 1_795_000_000.5}, {"ts": "1795000000"}, {"ts": "1999-12-31T23:59:59Z"},
        {"ts": "2100-01-01T00:00:00Z"}, {"ts": "2099-12-31T23:59:59Z"}, {"ts": "2026-11-18T10:00:٠٥Z"},
        {"ts": None}, {"feature": ""}, {"feature": 3}, {"feature": None}, {"metric": ""}, {"metric": "schema_valid"},
        {"metric": "unknown_metric", "value": 99}, {"input": "q", "output": "a"}, {"input": 3},
        {"output": None}, {"input": ""}, {"output": "only an output"},
    ]
    out = []
    for i, e in enumerate(edits):
        r = dict(base, id=f"a{i}")
        r.update(e)
        out.append(r)
    drop = dict(base)
    del drop["id"]
    out.append(drop)  # no id: the record hash
    out.append(dict(drop, ts=1_795_000_000, slice={"language": "de", "persona": "dev"}))  # same, other key order
    for k in ("ts", "feature", "metric", "value"):
        r = dict(base, id=f"missing-{k}")
        del r[k]
        out.append(r)
    return out


def test_fast_path_gives_exactly_what_the_exact_validator_gives(cfg):
    """parse_block validates common records inline; every record, common or not, must come out as
    Validator.row makes it (the same row, or a reject with the same reason)."""
    import math

    import orjson

    from oncall_ai.ingest import MAX_LINE_BYTES, Reject, Validator, parse_block

    recs = _variants()
    lines = []
    for r in recs:
        # json.dumps writes inf as Infinity: not JSON, so that line is a malformed-JSON reject
        lines.append(json.dumps(r).encode() if r.get("value") == float("inf") else orjson.dumps(r))
    lines.append(b"{broken")
    lines.append(b"   ")
    lines.append(b"[1, 2]")
    # the same key twice: every JSON reader here takes the last one
    lines.append(b'{"id": "dup", "ts": "2026-11-18T10:00:05Z", "feature": "f", "metric": "helpfulness", '
                 b'"value": 9, "value": 3, "slice": {"language": "de", "language": "fr"}}')
    lines.append(b'{"id": "big", "ts": "2026-11-18T10:00:05Z", "feature": "f", "metric": "m", "value": 1e400}')
    lines.append(rb'{"id": "esc", "ts": "2026-11-18T10:00:05Z", "feature": "f\u00fc\ud83d\ude00", "metric": "m", '
                 rb'"value": 12345678901234567890, "slice": {"k\n": "v\"q"}, "extra": {"nested": [1]}}')
    data = b"\n".join(lines) + b"\n"
    v = Validator(cfg)
    cols, rejects, nread = parse_block(data, 1, v, MAX_LINE_BYTES)
    got_rows = cols.rows()
    got_rejects = {line: reason for line, reason, _ in rejects}
    exact = Validator(cfg)
    want_rows, want_rejects = [], {}
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue  # named by the line reader, checked below
        try:
            want_rows.append(exact.row(obj))
        except Reject as e:
            want_rejects[lineno] = str(e)
    assert nread == len(lines) - 1  # the blank line is not a record
    assert len(got_rows) == len(want_rows)
    for g, w in zip(got_rows, want_rows, strict=True):
        assert g[0] == w[0] and g[1] == w[1] and g[2] == w[2], (g, w)
        assert g[3] == w[3] or (math.isnan(g[3]) and math.isnan(w[3]))
        assert g[4:] == w[4:], (g, w)
    assert {k: v for k, v in got_rejects.items() if k in want_rejects} == want_rejects
    malformed = set(got_rejects) - set(want_rejects)
    assert all(got_rejects[k].startswith("malformed JSON") or "NaN" in got_rejects[k] for k in malformed)
    assert len(malformed) == 3, got_rejects  # the inf record, {broken and 1e400
    # The fast path took the common records (not everything went the slow way).
    assert len(v.fast_keys) >= 1


def test_fractional_timestamps_are_exact_to_the_millisecond(tmp_path, cfg):
    from oncall_ai.ingest import Validator

    v = Validator(cfg)
    for frac, ms in ((".001", 1), (".123", 123), (".999", 999), (".5", 500), (".000001", 0)):
        row = v.row(dict(ev(1), ts=f"2026-11-18T10:00:05{frac}Z"))
        assert row[2] % 1000 == ms, (frac, row[2])


@pytest.mark.parametrize("cells", [True, False])
@pytest.mark.parametrize("block", [64, 97, 4096])
@pytest.mark.parametrize("gz", [False, True])
def test_parallel_blocks_cut_anywhere_give_serial_results(tmp_path, cfg, block, gz, cells):
    """Workers read byte ranges of the file themselves (or blocks of a .gz stream): wherever a
    block boundary falls (mid-line, on a newline, mid-UTF-8), every record is read once and every
    reject names its true line."""
    import oncall_ai.ingest as ing

    lines = []
    for i in range(400):
        if i % 37 == 5:
            lines.append("{broken")
        elif i % 53 == 7:
            lines.append("")
        elif i % 41 == 9:
            lines.append(json.dumps(ev(i, value="high")))
        else:
            lines.append(json.dumps(ev(i, value=(i % 5) + 1, slice={"language": "ü" * (i % 4) or "en"}),
                                    ensure_ascii=False))
    text = ("\n".join(lines)).encode()  # no newline after the last record
    path = tmp_path / ("a.jsonl.gz" if gz else "a.jsonl")
    path.write_bytes(gzip.compress(text) if gz else text)
    old = ing.PARALLEL_MIN_BYTES, ing.BLOCK_BYTES
    ing.PARALLEL_MIN_BYTES, ing.BLOCK_BYTES = 0, block
    try:
        cfg_par = load_config(cfg.path, store_override=str(tmp_path / "par.db"))
        with open_store(cfg_par.store) as st:
            # cells=False: a store that keeps its own rollups (ClickHouse) gets no cells from the workers
            st.uses_rollup_cells = cells
            st.ingest_in_background = not cells  # the writer thread, as for ClickHouse
            par = ing.ingest_files([str(path)], st, cfg_par, workers=2, rejects_path=str(tmp_path / "par.rej"))
            par_n = st.count_events()
    finally:
        ing.PARALLEL_MIN_BYTES, ing.BLOCK_BYTES = old
    with open_store(cfg.store) as st:
        ser = ing.ingest_files([str(path)], st, cfg, workers=0, rejects_path=str(tmp_path / "ser.rej"))
        ser_n = st.count_events()
    want_bad = [n for n, line in enumerate(lines, 1) if line == "{broken" or '"high"' in line]
    assert (par.stored, par.rejected, par_n) == (ser.stored, ser.rejected, ser_n)
    assert par.stored == sum(1 for line in lines if line) - len(want_bad)
    par_lines = [json.loads(x)["line"] for x in (tmp_path / "par.rej").read_text().splitlines()]
    ser_lines = [json.loads(x)["line"] for x in (tmp_path / "ser.rej").read_text().splitlines()]
    assert par_lines == ser_lines == want_bad


def test_a_failing_background_write_stops_ingest_with_its_error(tmp_path, cfg):
    """With the writer thread (stores whose inserts wait on a server), a batch that fails to write
    is the error ingest raises; the batches before it stay stored, none after it is written."""
    import oncall_ai.ingest as ing
    from oncall_ai.errors import StoreError

    p = write_jsonl(tmp_path / "a.jsonl", [ev(i) for i in range(3000)])
    with open_store(cfg.store) as st:
        st.ingest_in_background = True
        calls = []
        real = st.write_columns

        def write_columns(cols, rules):
            calls.append(len(cols))
            if len(calls) == 2:
                raise StoreError("store: disk full (test)")
            return real(cols, rules)

        st.write_columns = write_columns
        old = ing.PARALLEL_MIN_BYTES, ing.BLOCK_BYTES
        ing.PARALLEL_MIN_BYTES, ing.BLOCK_BYTES = 0, 8192
        try:
            with pytest.raises(StoreError, match="disk full"):
                ing.ingest_files([p], st, cfg, workers=2, batch_size=500)
        finally:
            ing.PARALLEL_MIN_BYTES, ing.BLOCK_BYTES = old
        assert len(calls) == 2
        assert st.count_events() == calls[0]


@pytest.mark.parametrize("workers", [0, 2])
def test_a_truncated_gz_keeps_every_whole_line_before_the_break(tmp_path, cfg, workers):
    """A .gz cut off mid-stream: every record decompressed before the break is stored (as many
    as reading it line by line gives), and the break is one reject naming the file; the same
    in-process and with parse workers."""
    import oncall_ai.ingest as ing

    text = "".join(json.dumps(ev(i, value=(i % 5) + 1)) + "\n" for i in range(40_000)).encode()
    packed = gzip.compress(text, 1)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    readable = sum(1 for _, obj, _ in ing.iter_file(str(path)) if isinstance(obj, dict))
    assert 0 < readable < 40_000
    old = ing.PARALLEL_MIN_BYTES, ing.BLOCK_BYTES
    ing.PARALLEL_MIN_BYTES, ing.BLOCK_BYTES = 0, 256 << 10
    try:
        with open_store(cfg.store) as st:
            r = ing.ingest_files([str(path)], st, cfg, workers=workers)
            assert st.count_events() == r.stored == readable
    finally:
        ing.PARALLEL_MIN_BYTES, ing.BLOCK_BYTES = old
    assert r.rejected == 1 and r.rejects[0].reason.startswith("cannot read the rest of the file")
    assert r.rejects[0].file == str(path)
