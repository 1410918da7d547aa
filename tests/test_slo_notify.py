"""`slo check --notify` against a real HTTP server on 127.0.0.1 playing Slack and PagerDuty:
trigger, no duplicate while burning, resolve on recovery, retry on 429 with Retry-After, and no
secret in output, logs or the store."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from test_slo_cli import AT, base_config, store_db  # noqa: F401 - the module-scoped store fixture

SLACK_SECRET = "T0SECRET/B0SECRET/slackSecretToken123"
PD_KEY = "pdroutingkey0123456789abcdef0123"  # 32 characters, like an integration key
RECOVERED_AT = "2026-11-26T00:00:00Z"  # before the fast burn started: the SLO is ok


class FakeServices:
    """Slack webhook at /services/..., PagerDuty Events v2 at /v2/enqueue. `script` holds
    (status, headers) answers to hand out first; after that Slack says 200 ok, PagerDuty 202."""

    def __init__(self):
        self.requests: list[dict] = []
        self.script: list[tuple[int, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                outer.requests.append({"path": self.path, "body": body,
                                       "content_type": self.headers.get("Content-Type")})
                status, headers = outer.script.pop(0) if outer.script else (None, {})
                if status is None:
                    status = 202 if self.path == "/v2/enqueue" else 200
                payload = (b'{"status": "success", "message": "Event processed"}' if self.path == "/v2/enqueue"
                           else b"ok") if status < 300 else b"rate limited"
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def of(self, kind: str) -> list[dict]:
        return [r for r in self.requests if (r["path"] == "/v2/enqueue") == (kind == "pagerduty")]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def services():
    s = FakeServices()
    yield s
    s.close()


@pytest.fixture
def notify_env(tmp_path, store_db, services, monkeypatch):  # noqa: F811
    """A private copy of the store (notify state is written there) and a config with notify."""
    db = tmp_path / "store.db"
    for suffix in ("", "-wal", "-shm"):
        src = store_db.parent / (store_db.name + suffix)
        if src.exists():
            shutil.copy(src, str(db) + suffix)
    monkeypatch.setenv("TEST_SLACK_WEBHOOK", f"{services.base}/services/{SLACK_SECRET}")
    monkeypatch.setenv("TEST_PD_KEY", PD_KEY)
    cfg = base_config(db, notify={"slack_webhook_env": "TEST_SLACK_WEBHOOK", "pagerduty_routing_key_env": "TEST_PD_KEY",
                                  "pagerduty_url": f"{services.base}/v2/enqueue", "max_retry_wait": "2s"})
    path = tmp_path / "oncall-ai.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, db


def check(run_cli, path, at=AT, *extra):
    return run_cli("--config", path, "slo", "check", "--notify", "--at", at, "--slo", "fast-schema", *extra)


def assert_no_secret(*texts):
    for t in texts:
        assert SLACK_SECRET not in t and "slackSecretToken" not in t and PD_KEY not in t


def test_trigger_then_no_duplicate_then_resolve(run_cli, notify_env, services, caplog):
    path, db = notify_env
    caplog.set_level(logging.DEBUG)
    r = check(run_cli, path)
    assert r.exit_code == 2, r.stdout + r.stderr
    pd, slack = services.of("pagerduty"), services.of("slack")
    assert len(pd) == 1 and len(slack) == 1
    ev = pd[0]["body"]
    assert ev["event_action"] == "trigger" and ev["routing_key"] == PD_KEY
    assert ev["dedup_key"] == "oncall-ai/slo/fast-schema"
    assert ev["payload"]["severity"] == "critical" and ev["payload"]["source"] == "oncall-ai"
    assert len(ev["payload"]["summary"]) <= 1024 and "fast-schema" in ev["payload"]["summary"]
    assert ev["payload"]["custom_details"]["state"] == "page"
    assert pd[0]["content_type"] == "application/json"
    assert slack[0]["path"] == f"/services/{SLACK_SECRET}"
    assert slack[0]["body"]["text"].startswith("[PAGE] fast-schema")
    assert "notify pagerduty: trigger page for fast-schema: ok" in r.stderr

    # still burning: nothing is sent again
    r2 = check(run_cli, path)
    assert r2.exit_code == 2 and len(services.requests) == 2
    assert "notify" not in r2.stderr

    # recovered: resolve with the same dedup_key, and Slack hears about it
    r3 = check(run_cli, path, RECOVERED_AT)
    assert r3.exit_code == 0
    pd, slack = services.of("pagerduty"), services.of("slack")
    assert len(pd) == 2 and pd[1]["body"] == {"routing_key": PD_KEY, "event_action": "resolve",
                                               "dedup_key": "oncall-ai/slo/fast-schema"}
    assert len(slack) == 2 and slack[1]["body"]["text"].startswith("[RESOLVED] fast-schema")
    # and a second ok run sends nothing
    check(run_cli, path, RECOVERED_AT)
    assert len(services.requests) == 4

    log_text = "\n".join(rec.getMessage() for rec in caplog.records)
    assert_no_secret(r.stdout, r.stderr, r2.stdout, r2.stderr, r3.stdout, r3.stderr, log_text)
    assert db.read_bytes().find(PD_KEY.encode()) == -1 and db.read_bytes().find(SLACK_SECRET.encode()) == -1


def test_ticket_routes_to_slack_only(run_cli, notify_env, services):
    path, _db = notify_env
    r = run_cli("--config", path, "slo", "check", "--notify", "--at", AT, "--slo", "slow-schema")
    assert r.exit_code == 1
    assert services.of("pagerduty") == [] and len(services.of("slack")) == 1
    assert services.of("slack")[0]["body"]["text"].startswith("[TICKET] slow-schema")


def test_retry_on_429_honours_retry_after(run_cli, notify_env, services):
    path, db = notify_env
    services.script = [(429, {"Retry-After": "1"}), (503, {})]  # PagerDuty goes first
    r = check(run_cli, path, AT, "--json")
    assert r.exit_code == 2, r.stderr
    pd = services.of("pagerduty")
    assert len(pd) == 3 and all(p["body"]["event_action"] == "trigger" for p in pd)
    doc = json.loads(r.stdout)
    sent = {n["target"]: n for n in doc["notifications"]}
    assert sent["pagerduty"]["ok"] and sent["pagerduty"]["attempts"] == 3
    from oncall_ai.store import open_store

    with open_store(str(db)) as store:
        actions = [d.body for d in store.get_docs("action") if d.body.get("target") == "pagerduty"]
        state = store.get_doc("notify_state", "fast-schema").body
    # waited what Retry-After asked, then backed off 2 s (1, 2, 4, ... by attempt) after the 503
    assert actions[0]["waits"] == [1.0, 2.0]
    assert "routing_key" not in actions[0]["payload"]
    assert state["targets"]["pagerduty"]["open"] == "page"


def test_failed_send_is_retried_by_the_next_check(run_cli, notify_env, services):
    path, _db = notify_env
    services.script = [(400, {})]  # PagerDuty rejects the event: not retried within the run
    r = check(run_cli, path)
    assert r.exit_code == 2
    assert "notify pagerduty: trigger page for fast-schema: FAILED" in r.stderr and "HTTP 400" in r.stderr
    assert len(services.of("pagerduty")) == 1
    check(run_cli, path)  # the state was not recorded as open, so it is sent again
    assert len(services.of("pagerduty")) == 2 and len(services.of("slack")) == 1


def test_missing_secret_env_is_named_not_shown(run_cli, notify_env, monkeypatch):
    path, _db = notify_env
    monkeypatch.delenv("TEST_PD_KEY")
    r = check(run_cli, path)
    assert r.exit_code == 3 and "notify.pagerduty_routing_key_env" in r.stderr and "$TEST_PD_KEY" in r.stderr


def test_unreachable_service_fails_without_leaking_the_url(tmp_path):
    import httpx

    from oncall_ai.actions.notify import Settings, Target, post_json

    secret_url = "http://127.0.0.1:9/services/" + SLACK_SECRET  # port 9: nothing listens
    settings = Settings(targets={"slack": Target("slack", secret_url, "$X")}, routes={}, retries=2,
                        timeout_s=2)
    waits = []
    with httpx.Client() as client:
        res = post_json(client, secret_url, {"text": "x"}, what="slack ($X)", settings=settings, sleep=waits.append)
    assert not res.ok and res.attempts == 3 and waits == [1.0, 2.0]
    assert "ConnectError" in res.error and "slack ($X)" in res.error
    assert_no_secret(res.error)


@pytest.mark.parametrize("value,expected", [("3", 3.0), ("0", 0.0), ("1.5", 1.5), ("nonsense", None), (None, None)])
def test_retry_after_seconds(value, expected):
    from oncall_ai.actions.notify import retry_after_s

    assert retry_after_s(value) == expected


def test_retry_after_http_date():
    from oncall_ai.actions.notify import retry_after_s

    assert retry_after_s("Wed, 21 Oct 2015 07:28:10 GMT", now_s=1445412480.0) == pytest.approx(10.0)


def test_ticket_escalating_to_page_triggers_pagerduty_once(run_cli, notify_env, services):
    path, _db = notify_env
    cfg = yaml.safe_load(path.read_text())
    fast = next(s for s in cfg["slos"] if s["name"] == "fast-schema")
    fast["severity"] = "ticket"
    path.write_text(yaml.safe_dump(cfg))
    assert check(run_cli, path).exit_code == 1
    assert services.of("pagerduty") == [] and len(services.of("slack")) == 1
    fast["severity"] = "page"
    path.write_text(yaml.safe_dump(cfg))
    assert check(run_cli, path).exit_code == 2
    assert len(services.of("pagerduty")) == 1
    slack = services.of("slack")
    assert len(slack) == 2 and slack[1]["body"]["text"].endswith("(was ticket)")
