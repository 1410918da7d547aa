"""`oncall-ai import langfuse` against a real HTTP server on 127.0.0.1 that implements Langfuse's
scores (v3 cursor, v2/v1 pages) and traces endpoints, with injected 500s and 429s."""

from __future__ import annotations

import base64
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from oncall_ai.store import open_store

PUBLIC = "pk-lf-test-public"
SECRET = "sk-lf-very-secret-0badc0ffee"
LAG_MS = 600_000


def iso(ms):
    from oncall_ai.sources.langfuse import iso as _iso

    return _iso(ms)


def make_data(now_ms, n=230, seed=3):
    rnd = random.Random(seed)
    traces = {}
    for t in range(90):
        tid = f"trace-{t:03d}"
        traces[tid] = {
            "id": tid, "name": ("summarizer", "router", "search")[t % 3], "timestamp": iso(now_ms - 7 * 3_600_000),
            "environment": "production", "version": None, "release": "r1",
            "metadata": {"language": ("de", "en", "fr")[t % 3 if t % 5 else 0], "model": f"gpt-x-{t % 2}",
                         "prompt_version": f"abc{t % 4}"},
            "input": {"q": "..."}, "output": "...",
        }
    scores = []
    for i in range(n):
        tid = f"trace-{rnd.randrange(90):03d}"
        kind = rnd.random()
        base = {"id": f"score-{i:04d}", "projectId": "p1", "name": rnd.choice(["helpfulness", "faithfulness"]),
                "source": rnd.choice(["EVAL", "ANNOTATION", "API"]),
                "timestamp": iso(now_ms - LAG_MS - 60_000 - rnd.randrange(5 * 3_600_000)),
                "environment": "production", "createdAt": iso(now_ms), "updatedAt": iso(now_ms),
                "metadata": {"judge_id": "judge-7"} if i % 4 == 0 else None}
        if kind < 0.75:
            base.update(dataType="NUMERIC", value=float(rnd.randint(1, 5)))
        elif kind < 0.88:
            base.update(dataType="BOOLEAN", value=rnd.random() < 0.5, name="schema_ok")
        else:
            base.update(dataType="CATEGORICAL", value=rnd.choice(["good", "bad"]))
        if i % 23 == 0:
            base["subject"] = {"kind": "session", "id": "sess-1"}
        elif i % 7 == 0:
            base["subject"] = {"kind": "observation", "id": f"obs-{i}", "traceId": tid}
        else:
            base["subject"] = {"kind": "trace", "id": tid}
        scores.append(base)
    return scores, traces


class FakeLangfuse:
    """Scores sorted newest first (as Langfuse does); opaque base64 cursors; faults by rule."""

    def __init__(self, scores, traces, *, api="v3", trace_filter=True):
        self.scores = scores
        self.traces = traces
        self.api = api
        self.trace_filter = trace_filter
        self.log: list[tuple[str, dict]] = []
        self.faults: list[dict] = []  # {"path": prefix, "when": callable(params)->bool, "status", "headers", "times"}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def _send(self, h, status, body, headers=None):
        data = orjson.dumps(body)
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def handle(self, h):
        parts = urlsplit(h.path)
        params = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        with self.lock:
            self.log.append((path, params))
            auth = h.headers.get("Authorization", "")
            if auth != "Basic " + base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode():
                return self._send(h, 401, {"message": "Invalid credentials"})
            for f in self.faults:
                if path.startswith(f["path"]) and f["when"](params) and f["times"] != 0:
                    f["times"] -= 1
                    return self._send(h, f["status"], {"message": "injected"}, f.get("headers"))
        if path.startswith("/api/public/traces"):
            return self._traces(h, path, params)
        versions = {"/api/public/v3/scores": "v3", "/api/public/v2/scores": "v2", "/api/public/scores": "v1"}
        version = versions.get(path)
        order = ["v3", "v2", "v1"]
        if version is None or order.index(version) < order.index(self.api):
            return self._send(h, 404, {"message": "not found"})
        lo, hi = params.get("fromTimestamp"), params.get("toTimestamp")
        limit = int(params.get("limit", 50))
        if limit > 100:
            return self._send(h, 400, {"message": "limit > 100"})
        rows = [s for s in self.scores if (lo is None or s["timestamp"] >= lo) and (hi is None or s["timestamp"] < hi)]
        rows.sort(key=lambda s: (s["timestamp"], s["id"]), reverse=True)
        if version == "v3":
            offset = orjson.loads(base64.b64decode(params["cursor"]))["o"] if params.get("cursor") else 0
            page = rows[offset:offset + limit]
            nxt = offset + limit
            meta = {"limit": limit}
            if nxt < len(rows):
                meta["cursor"] = base64.b64encode(orjson.dumps({"o": nxt})).decode()
            return self._send(h, 200, {"data": page, "meta": meta})
        number = int(params.get("page", 1))
        page = [self._legacy(s) for s in rows[(number - 1) * limit:number * limit]]
        total_pages = -(-len(rows) // limit)
        return self._send(h, 200, {"data": page, "meta": {"page": number, "limit": limit, "totalItems": len(rows),
                                                          "totalPages": total_pages}})

    @staticmethod
    def _legacy(s):
        out = {k: v for k, v in s.items() if k != "subject"}
        subj = s["subject"]
        out["traceId"] = subj["id"] if subj["kind"] == "trace" else subj.get("traceId")
        if s["dataType"] == "BOOLEAN":
            out["value"], out["stringValue"] = (1.0, "True") if s["value"] else (0.0, "False")
        elif s["dataType"] == "CATEGORICAL":
            out["stringValue"], out["value"] = s["value"], None
        return out

    def _traces(self, h, path, params):
        if path == "/api/public/traces":
            if self.trace_filter and "filter" in params:
                flt = orjson.loads(params["filter"])
                ids = set(flt[0]["value"])
                data = [t for tid, t in self.traces.items() if tid in ids]
            else:  # an older server: no filter, just the first page of everything
                data = list(self.traces.values())[: int(params.get("limit", 50))]
            return self._send(h, 200, {"data": data, "meta": {"page": 1, "totalPages": 1}})
        tid = path.rsplit("/", 1)[1]
        if tid in self.traces:
            return self._send(h, 200, self.traces[tid])
        return self._send(h, 404, {"message": "trace not found"})

    def scores_requests(self):
        return [(p, q) for p, q in self.log if "scores" in p]


def expected_events(scores):
    """The scores that become events: numeric/boolean, attached to a trace."""
    return {s["id"] for s in scores if s["dataType"] in ("NUMERIC", "BOOLEAN") and s["subject"]["kind"] != "session"}


def fingerprint(scores, want):
    """What the store should hold, event by event: (ts, metric, value, trace id), as a multiset."""
    from collections import Counter

    from oncall_ai.timeutil import parse_time_ms

    metric = {"faithfulness": "grounded"}
    out = Counter()
    for s in scores:
        if s["id"] in want:
            subj = s["subject"]
            tid = subj["id"] if subj["kind"] == "trace" else subj["traceId"]
            out[(parse_time_ms(s["timestamp"]), metric.get(s["name"], s["name"]), float(s["value"]), tid)] += 1
    return out


def stored_fingerprint(url):
    from collections import Counter

    with open_store(url) as s:
        return Counter((e.ts, e.series.metric, e.value, e.request_id)
                       for e in s.events([x.id for x in s.series()], 0, 2**62))


@pytest.fixture
def langfuse_env(monkeypatch, tmp_path, store_url):
    now = int(time.time() * 1000)
    scores, traces = make_data(now)
    servers = []

    def start(**kw):
        srv = FakeLangfuse(scores, traces, **kw)
        servers.append(srv)
        return srv

    monkeypatch.setenv("LF_PK", PUBLIC)
    monkeypatch.setenv("LF_SK", SECRET)
    waits = []
    monkeypatch.setattr("oncall_ai.sources.langfuse._sleep", waits.append)

    def config(srv, extra=""):
        cfg = tmp_path / "oncall-ai.yaml"
        cfg.write_text(
            f"store: {store_url}\n"
            "metrics:\n  helpfulness: {good: '>= 4'}\n  schema_ok: {good: '== 1', source: check}\n"
            "slices: [language]\n"
            f"langfuse:\n  host: {srv.url}\n  public_key_env: LF_PK\n  secret_key_env: LF_SK\n  page_size: 20\n"
            f"  max_retries: 2\n  metrics: {{faithfulness: grounded}}\n{extra}")
        return cfg

    yield {"scores": scores, "traces": traces, "start": start, "config": config, "waits": waits, "store_url": store_url}
    for s in servers:
        s.close()


def _no_secret(*texts):
    for t in texts:
        assert SECRET not in t


def test_import_v3_with_a_500_and_a_429(langfuse_env, run_cli):
    env = langfuse_env
    srv = env["start"]()
    n_scores = {"n": 0}

    def nth(k):
        def when(params):
            n_scores["n"] += 1
            return n_scores["n"] == k
        return when

    srv.faults.append({"path": "/api/public/v3/scores", "when": nth(3), "status": 500, "times": 1})
    srv.faults.append({"path": "/api/public/v3/scores", "when": lambda p: p.get("cursor") is not None and n_scores["n"] >= 6,
                       "status": 429, "headers": {"Retry-After": "7"}, "times": 1})
    srv.faults.append({"path": "/api/public/traces", "when": lambda p: True, "status": 503, "times": 1})
    cfg = env["config"](srv)
    r = run_cli("--config", cfg, "import", "langfuse", "--json")
    assert r.exit_code == 0, r.stderr
    _no_secret(r.stdout, r.stderr)
    out = orjson.loads(r.stdout)["projects"][0]
    want = expected_events(env["scores"])
    assert out["api"] == "v3"
    assert out["stored"] == len(want) and out["duplicates"] == 0 and out["rejected"] == 0
    assert out["skipped"] == {"categorical scores carry no number": sum(1 for s in env["scores"] if s["dataType"] == "CATEGORICAL"),
                              "not attached to a trace": sum(1 for s in env["scores"] if s["dataType"] != "CATEGORICAL"
                                                             and s["subject"]["kind"] == "session")}
    assert 7.0 in env["waits"]  # Retry-After honoured
    assert len(env["waits"]) == 3  # one wait per injected failure
    assert stored_fingerprint(env["store_url"]) == fingerprint(env["scores"], want)  # each score exactly once

    # Mapping: feature from trace name, slice from trace metadata, metric/source maps.
    with open_store(env["store_url"]) as s:
        by_metric = {x.metric for x in s.series()}
        assert by_metric == {"helpfulness", "grounded", "schema_ok"}
        one = next(sc for sc in env["scores"] if sc["id"] in want and sc["subject"]["kind"] == "trace"
                   and sc["name"] == "helpfulness" and sc["source"] == "EVAL" and sc["metadata"])
        trace = env["traces"][one["subject"]["id"]]
        from oncall_ai.timeutil import parse_time_ms

        ev = [e for e in s.events([x.id for x in s.series()], 0, 2**62)
              if (e.request_id, e.ts) == (trace["id"], parse_time_ms(one["timestamp"])) and e.series.metric == "helpfulness"][0]
        assert ev.series.feature == trace["name"]
        assert ev.series.source == "judge"
        assert ev.series.slice == (("language", trace["metadata"]["language"]),)
        assert ev.series.model_id == trace["metadata"]["model"]
        assert ev.series.prompt_version == trace["metadata"]["prompt_version"]
        assert ev.series.judge_id == "judge-7"
        assert ev.request_id == trace["id"] and ev.value == one["value"]
        state = s.get_doc("import_state", "langfuse:default")
        assert SECRET not in orjson.dumps(state.body).decode()
        assert state.body["window"] is None and state.body["high_water"] is not None

    # Again: incremental (nothing new), and an explicit window is idempotent.
    again = orjson.loads(run_cli("--config", cfg, "import", "langfuse", "--json").stdout)["projects"][0]
    assert again["stored"] == 0
    full = run_cli("--config", cfg, "import", "langfuse", "--since", "24h", "--json")
    full_out = orjson.loads(full.stdout)["projects"][0]
    assert (full_out["stored"], full_out["duplicates"]) == (0, len(want))


def test_import_interrupted_then_resumed_imports_each_score_once(langfuse_env, run_cli):
    env = langfuse_env
    srv = env["start"]()
    broken = {"on": True}
    fourth_cursor = base64.b64encode(orjson.dumps({"o": 60})).decode()
    srv.faults.append({"path": "/api/public/v3/scores", "when": lambda p: broken["on"] and p.get("cursor") == fourth_cursor,
                       "status": 500, "times": -1})
    cfg = env["config"](srv)
    r = run_cli("--config", cfg, "import", "langfuse")
    assert r.exit_code == 2
    assert "resume" in r.stderr and srv.url in r.stderr and "Traceback" not in r.stderr
    _no_secret(r.stdout, r.stderr)
    partial = sum(stored_fingerprint(env["store_url"]).values())
    assert 0 < partial < len(expected_events(env["scores"]))
    with open_store(env["store_url"]) as s:
        state = s.get_doc("import_state", "langfuse:default").body
    assert state["window"] is not None and state["position"] == fourth_cursor

    broken["on"] = False
    before = len(srv.scores_requests())
    r = run_cli("--config", cfg, "import", "langfuse", "--json")
    assert r.exit_code == 0, r.stderr
    _no_secret(r.stdout, r.stderr)
    out = orjson.loads(r.stdout)["projects"][0]
    assert out["resumed"] is True
    first_resumed = srv.scores_requests()[before]
    assert first_resumed[1].get("cursor") == fourth_cursor  # picked up where it stopped
    assert stored_fingerprint(env["store_url"]) == fingerprint(env["scores"], expected_events(env["scores"]))


def test_older_server_v1_pages_and_traces_one_by_one(langfuse_env, run_cli):
    env = langfuse_env
    srv = env["start"](api="v1", trace_filter=False)
    cfg = env["config"](srv)
    srv.faults.append({"path": "/api/public/scores", "when": lambda p: p.get("page") == "3", "status": 502, "times": 1})
    r = run_cli("--config", cfg, "import", "langfuse", "--json")
    assert r.exit_code == 0, r.stderr
    out = orjson.loads(r.stdout)["projects"][0]
    assert out["api"] == "v1"
    want = expected_events(env["scores"])
    assert out["stored"] == len(want)
    assert stored_fingerprint(env["store_url"]) == fingerprint(env["scores"], want)
    assert any(p.startswith("/api/public/traces/trace-") for p, _ in srv.log)  # per-trace fallback
    with open_store(env["store_url"]) as s:
        assert {x.feature for x in s.series()} == {"summarizer", "router", "search"}


def test_wrong_keys_and_missing_env(langfuse_env, run_cli, monkeypatch):
    env = langfuse_env
    srv = env["start"]()
    cfg = env["config"](srv)
    monkeypatch.setenv("LF_SK", "sk-lf-wrong-" + SECRET[::-1])
    r = run_cli("--config", cfg, "import", "langfuse")
    assert r.exit_code == 2
    assert "refused the API keys" in r.stderr and srv.url in r.stderr
    assert SECRET[::-1] not in r.stderr + r.stdout
    monkeypatch.delenv("LF_SK")
    r = run_cli("--config", cfg, "import", "langfuse")
    assert r.exit_code == 2 and "LF_SK" in r.stderr and "Traceback" not in r.stderr


def test_bad_langfuse_config(langfuse_env, run_cli, tmp_path):
    env = langfuse_env
    srv = env["start"]()
    cfg = env["config"](srv, extra="  sources: {EVAL: robot}\n")
    r = run_cli("--config", cfg, "import", "langfuse")
    assert r.exit_code == 2 and "langfuse.sources.EVAL" in r.stderr
    assert f"{cfg}: langfuse.sources.EVAL" in r.stderr  # the file, then the key
    cfg = env["config"](srv, extra="  page_sise: 10\n")
    r = run_cli("--config", cfg, "import", "langfuse")
    assert r.exit_code == 2 and "langfuse.page_sise" in r.stderr
    r = run_cli("--config", env["config"](srv), "import", "langfuse", "--project", "nope")
    assert r.exit_code == 0  # without langfuse.projects, --project names the one project


def test_score_to_record_mapping_is_configurable():
    from oncall_ai.sources.langfuse import Mapping, Skip, to_record

    m = Mapping(fields={"feature": "score.metadata.flow", "model_id": "trace.metadata.llm", "prompt_version": "trace.release",
                        "index_version": "trace.metadata.index.version", "judge_id": "score.configId"},
                slices={"tier": "trace.metadata.customer.tier", "env": "score.environment"},
                metrics={"hallucination": "grounded"}, sources={"EVAL": "judge", "ANNOTATION": "user", "API": "user"},
                feature_default="fallback", names=("hallucination", "thumbs"))
    score = {"id": "s1", "name": "hallucination", "source": "API", "dataType": "NUMERIC", "value": 0.25,
             "timestamp": "2026-11-27T03:02:00.000Z", "environment": "prod", "configId": "cfg-9",
             "metadata": {"flow": "checkout"}, "subject": {"kind": "observation", "id": "o1", "traceId": "t1"}}
    trace = {"id": "t1", "release": "v42", "metadata": {"llm": "claude-x", "index": {"version": 7},
                                                        "customer": {"tier": "gold"}}}
    rec = to_record(score, trace, m)
    assert rec == {"id": "s1", "ts": "2026-11-27T03:02:00.000Z", "metric": "grounded", "value": 0.25,
                   "request_id": "t1", "feature": "checkout", "source": "user", "model_id": "claude-x",
                   "prompt_version": "v42", "index_version": "7", "judge_id": "cfg-9",
                   "slice": {"tier": "gold", "env": "prod"}}
    no_meta = dict(score, metadata=None, name="thumbs", dataType="BOOLEAN", value=False)
    rec = to_record(no_meta, None, m)
    assert rec["feature"] == "fallback" and rec["value"] is False and rec["metric"] == "thumbs"
    with pytest.raises(Skip):
        to_record(dict(score, name="other"), trace, m)
    with pytest.raises(Skip):
        to_record(dict(score, dataType="TEXT", value="meh"), trace, m)


def test_retry_after_http_date_and_backoff():
    from oncall_ai.sources.langfuse import _retry_after_seconds

    assert _retry_after_seconds("3", 0) == 3.0
    assert _retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1445412470.0) == 10.0
    assert _retry_after_seconds("garbage", 0) is None
    assert _retry_after_seconds(None, 0) is None
