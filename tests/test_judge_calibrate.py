"""`oncall-ai judge calibrate` against a real HTTP server on 127.0.0.1 that speaks both API styles
and misbehaves: latency, 429 with Retry-After, 500s, timeouts, malformed bodies, refusals.

Tests that take `store_url` run on both stores (SQLite, and the ClickHouse server of
.ci/setup-clickhouse.sh; see `store_kind` in tests/conftest.py): runs and items are documents,
and resuming depends on reading them back."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from judge_project import RUBRIC_V1, RUBRIC_V2, build_project, commit_file, fast_api, items_for
from judge_server import JudgeServer
from oncall_ai.config import load_config
from oncall_ai.store import open_store

KEY = "sk-test-9f8e7d6c5b4a-DO-NOT-LEAK"

MISBEHAVIOUR = {
    "item-1": {"do": ["429"]},
    "item-2": {"do": ["500"]},
    "item-3": {"do": ["timeout-once"]},
    "item-4": {"do": ["malformed-once"]},
    "item-5": {"do": ["refuse"]},
    "item-6": {"do": ["garbage"]},
    "item-7": {"do": ["text"], "score": 2},
    "item-8": {"do": ["fraction"], "score": 5},
    "item-9": {"do": ["echo-key"]},
    "item-10": {"do": ["timeout-always"]},
    "item-11": {"do": ["400"]},
    "item-12": {"do": ["refuse-text"]},
    "item-13": {"do": ["malformed-always"]},
    "item-14": {"do": ["latency"], "latency": 0.1, "score": 1},
    "item-15": {"do": ["429ms"], "score": 3},
}
EXPECTED_NULL = {"item-5": "refusal", "item-6": "parse_error", "item-10": "timeout", "item-11": "http_400",
                 "item-12": "refusal", "item-13": "invalid_response"}


def _stored(cfg_path):
    cfg = load_config(cfg_path)
    store = open_store(cfg.store)
    try:
        return ({d.id: d for d in store.get_docs("judge_run")},
                {d.body["item_id"]: d for d in store.get_docs("judge_run_item")})
    finally:
        store.close()


def _store_bytes(url: str) -> bytes:
    """Everything the store holds: the SQLite file (and its journal), or every document and event
    text on ClickHouse."""
    if "://" not in url:
        return b"".join(p.read_bytes() for p in Path(url).parent.glob(Path(url).name + "*"))
    from clickhouse_helpers import server_query

    db = url.rsplit("/", 1)[1]
    return (server_query(f"SELECT kind, id, body FROM {db}.docs FORMAT TSV")
            + server_query(f"SELECT request_id, input, output FROM {db}.events FORMAT TSV")).encode()


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("JUDGE_TEST_KEY", KEY)


@pytest.mark.parametrize("style", ["openai", "anthropic"])
def test_every_item_ends_scored_or_null_with_reason(tmp_path, run_cli, key_env, style, store_url):
    items = items_for(20)
    with JudgeServer(key=KEY, plan=MISBEHAVIOUR) as srv:
        base = srv.openai_base if style == "openai" else srv.anthropic_base
        cfg = build_project(tmp_path / "p", api=fast_api(base, style), items=items, store=store_url)
        r = run_cli("--config", cfg, "judge", "calibrate", "--json")
        requests = list(srv.requests)
    assert r.exit_code == 0, r.stderr
    runs, stored = _stored(cfg)
    assert len(runs) == 1
    run = next(iter(runs.values()))
    assert run.body["status"] == "complete"
    assert set(stored) == {it["id"] for it in items}
    for item_id, doc in stored.items():
        b = doc.body
        if item_id in EXPECTED_NULL:
            assert b["score"] is None and b["reason"] == EXPECTED_NULL[item_id], (item_id, b)
            assert b["detail"]
        else:
            assert b["score"] is not None and b["reason"] is None, (item_id, b)
    assert stored["item-7"].body["score"] == 2 and stored["item-8"].body["score"] == 5
    assert stored["item-14"].body["score"] == 1 and stored["item-15"].body["score"] == 3
    # retries are visible in the run record, per item and in total
    assert stored["item-1"].body["attempts"] == 2
    first = stored["item-1"].body["history"][0]
    assert first["status"] == 429 and first["retry_after"] == 1 and first["wait"] >= 1.0
    assert stored["item-15"].body["history"][0]["retry_after"] == pytest.approx(0.08)
    assert stored["item-2"].body["attempts"] == 3
    assert [h.get("status") for h in stored["item-2"].body["history"]] == [500, 500, 200]
    assert stored["item-3"].body["attempts"] == 2 and stored["item-3"].body["history"][0]["error"] == "timeout"
    assert stored["item-10"].body["attempts"] == 4  # 1 + max_retries
    assert stored["item-11"].body["attempts"] == 1  # a 400 is the server's final word
    assert run.body["retries"] == sum(max(0, d.body["attempts"] - 1) for d in stored.values())
    assert run.body["null"] == len(EXPECTED_NULL)
    assert run.body["null_reasons"] == {"http_400": 1, "invalid_response": 1, "parse_error": 1, "refusal": 2,
                                        "timeout": 1}
    # the wire format of each style
    paths = {q["path"] for q in requests}
    if style == "openai":
        assert paths == {"/v1/chat/completions"}
        assert all(q["headers"]["authorization"] == f"Bearer {KEY}" for q in requests)
        assert requests[0]["body"]["messages"][0] == {"role": "system", "content": RUBRIC_V1}
    else:
        assert paths == {"/v1/messages"}
        assert all(q["headers"]["x-api-key"] == KEY and q["headers"]["anthropic-version"] for q in requests)
        assert requests[0]["body"]["system"] == RUBRIC_V1 and requests[0]["body"]["max_tokens"] > 0
    assert {q["body"]["model"] for q in requests} == {"judge-model-1"}
    # the key never appears in output or in the store (the server echoed it in an error body)
    assert KEY not in r.stdout and KEY not in r.stderr
    assert KEY.encode() not in _store_bytes(store_url)


def test_resume_skips_scored_items_and_retries_transient_failures(tmp_path, run_cli, key_env, store_url):
    items = items_for(12)
    plan = {"item-3": {"do": ["timeout-always"]}, "item-4": {"do": ["refuse"]}}
    with JudgeServer(key=KEY, plan=plan) as srv:
        cfg = build_project(tmp_path / "p", api=fast_api(srv.openai_base), items=items, store=store_url)
        r1 = run_cli("--config", cfg, "judge", "calibrate", "--limit", "5", "--run-id", "nightly")
        assert r1.exit_code == 0, r1.stderr
        first = {q["item"] for q in srv.requests}
        assert first == {f"item-{i}" for i in range(5)}
        srv.plan.clear()  # the server is healthy again, the judge would no longer refuse
        srv.requests.clear()
        r2 = run_cli("--config", cfg, "judge", "calibrate", "--run-id", "nightly")
        assert r2.exit_code == 0, r2.stderr
        second = {q["item"] for q in srv.requests}
    # scored items and the judge's own refusal are kept; the timed-out item is tried again
    assert second == {"item-3"} | {f"item-{i}" for i in range(5, 12)}
    runs, stored = _stored(cfg)
    assert list(runs) == ["nightly"]
    assert len(stored) == 12
    assert stored["item-3"].body["score"] == 4
    assert stored["item-4"].body["score"] is None and stored["item-4"].body["reason"] == "refusal"
    assert "resuming: 4 already scored" in r2.stderr
    r3 = run_cli("--config", cfg, "judge", "calibrate", "--run-id", "nightly")
    assert r3.exit_code == 0 and "0 item(s) to score" in r3.stderr


def test_default_run_id_is_stable_so_rerunning_resumes(tmp_path, run_cli, key_env, store_url):
    with JudgeServer(key=KEY) as srv:
        cfg = build_project(tmp_path / "p", api=fast_api(srv.openai_base), items=items_for(6), store=store_url)
        assert run_cli("--config", cfg, "judge", "calibrate", "--limit", "3").exit_code == 0
        assert run_cli("--config", cfg, "judge", "calibrate").exit_code == 0
        assert len(srv.requests) == 6
    runs, stored = _stored(cfg)
    assert len(runs) == 1 and len(stored) == 6


def test_judge_api_going_silent_mid_run_keeps_what_was_scored(tmp_path, run_cli, key_env, store_url):
    items = items_for(30)
    plan = {f"item-{i}": {"do": ["drop"]} for i in range(6, 30)}
    with JudgeServer(key=KEY, plan=plan) as srv:
        cfg = build_project(tmp_path / "p", api=fast_api(srv.openai_base, concurrency=1, max_retries=1),
                            items=items, store=store_url)
        r = run_cli("--config", cfg, "judge", "calibrate", "--run-id", "r1")
        assert r.exit_code == 1
        assert "stopped answering" in r.stderr and "--run-id r1" in r.stderr
        runs, stored = _stored(cfg)
        assert runs["r1"].body["status"] == "aborted"
        assert {i for i, d in stored.items() if d.body["score"] is not None} == {f"item-{i}" for i in range(6)}
        srv.plan.clear()
        r2 = run_cli("--config", cfg, "judge", "calibrate", "--run-id", "r1")
    assert r2.exit_code == 0, r2.stderr
    runs, stored = _stored(cfg)
    assert runs["r1"].body["status"] == "complete"
    assert all(d.body["score"] == 4 for d in stored.values()) and len(stored) == 30


def test_old_and_new_rubric_side_by_side(tmp_path, run_cli, key_env, store_url):
    import git

    with JudgeServer(key=KEY) as srv:
        cfg = build_project(tmp_path / "p", api=fast_api(srv.openai_base), items=items_for(4), store=store_url)
        prompts = git.Repo(tmp_path / "p" / "prompts")
        old = prompts.head.commit.hexsha
        commit_file(prompts, "judges/helpfulness.md", RUBRIC_V2, "stricter judge")
        assert run_cli("--config", cfg, "judge", "calibrate").exit_code == 0
        assert run_cli("--config", cfg, "judge", "calibrate", "--judge-rev", old[:10]).exit_code == 0
        systems = {q["body"]["messages"][0]["content"] for q in srv.requests}
    assert systems == {RUBRIC_V1, RUBRIC_V2}
    runs, _ = _stored(cfg)
    assert len(runs) == 2
    assert len({r.body["judge_id"] for r in runs.values()}) == 2
    assert {r.body["judge_rev"] for r in runs.values()} == {None, old[:10]}


def test_rate_limit_spaces_requests(tmp_path, run_cli, key_env):
    with JudgeServer(key=KEY) as srv:
        cfg = build_project(tmp_path / "p", api=fast_api(srv.openai_base, concurrency=4, rate_limit=20),
                            items=items_for(8))
        assert run_cli("--config", cfg, "judge", "calibrate").exit_code == 0
        starts = sorted(q["t"] for q in srv.requests)
    # 20/s: 8 starts span >= 7 x 50 ms at the client; arrival jitter at the server eats a little.
    # Without the limit, 8 requests at concurrency 4 all arrive within a few milliseconds.
    assert starts[-1] - starts[0] >= 0.25


# --- bad input: clear message, right exit code, nothing stored ---------------------------------

def _assert_nothing_stored(cfg):
    store = yaml.safe_load(Path(cfg).read_text())["store"]
    if "://" not in store and not (Path(cfg).parent / store).exists():
        return
    runs, stored = _stored(cfg)
    assert runs == {} and stored == {}


def test_calibration_item_without_human_score(tmp_path, run_cli, key_env, store_url):
    items = items_for(5)
    del items[2]["human_score"]
    with JudgeServer(key=KEY) as srv:
        cfg = build_project(tmp_path / "p", api=fast_api(srv.openai_base), items=items, store=store_url)
        r = run_cli("--config", cfg, "judge", "calibrate")
        assert srv.requests == []
    assert r.exit_code == 1
    assert "set.jsonl:3" in r.stderr and "human_score" in r.stderr and "Traceback" not in r.stderr
    _assert_nothing_stored(cfg)


def test_unreachable_endpoint(tmp_path, run_cli, key_env, store_url):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    cfg = build_project(tmp_path / "p", api=fast_api(f"http://127.0.0.1:{port}/v1", max_retries=1),
                        items=items_for(5), store=store_url)
    r = run_cli("--config", cfg, "judge", "calibrate")
    assert r.exit_code == 2
    assert "cannot reach the judge API" in r.stderr and f"127.0.0.1:{port}" in r.stderr
    _assert_nothing_stored(cfg)


def test_missing_api_key_variable(tmp_path, run_cli, monkeypatch):
    monkeypatch.delenv("JUDGE_TEST_KEY", raising=False)
    with JudgeServer(key=KEY) as srv:
        cfg = build_project(tmp_path / "p", api=fast_api(srv.openai_base), items=items_for(3))
        r = run_cli("--config", cfg, "judge", "calibrate")
        assert srv.requests == []
    assert r.exit_code == 2
    assert "$JUDGE_TEST_KEY is not set" in r.stderr
    _assert_nothing_stored(cfg)


def test_wrong_api_key(tmp_path, run_cli, monkeypatch, store_url):
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-wrong-key-0000")
    with JudgeServer(key=KEY) as srv:
        cfg = build_project(tmp_path / "p", api=fast_api(srv.openai_base), items=items_for(3), store=store_url)
        r = run_cli("--config", cfg, "judge", "calibrate")
    assert r.exit_code == 2
    assert "rejected the credentials (HTTP 401)" in r.stderr and "sk-wrong-key-0000" not in r.stderr + r.stdout
    _assert_nothing_stored(cfg)


def test_judges_yaml_without_the_metric(tmp_path, run_cli, key_env):
    with JudgeServer(key=KEY) as srv:
        cfg = build_project(tmp_path / "p", api=fast_api(srv.openai_base), items=items_for(3),
                            judges={"faithfulness": {"model": "m", "prompt": "judges/helpfulness.md"}})
        r = run_cli("--config", cfg, "judge", "calibrate", "--metric", "helpfulness")
        assert srv.requests == []
    assert r.exit_code == 2
    assert "no judge for metric 'helpfulness'" in r.stderr and "judges.yaml" in r.stderr
    _assert_nothing_stored(cfg)


@pytest.mark.parametrize("api,message", [
    (None, "judge_api: missing"),
    ({"base_url": "localhost:8000"}, "judge_api.base_url"),
    ({"base_url": "http://x/v1", "style": "gemini"}, "judge_api.style"),
    ({"base_url": "http://x/v1", "concurrency": 0}, "judge_api.concurrency"),
    ({"base_url": "http://x/v1", "api_key_env": "sk-abc-123"}, "NAME of an environment variable"),
    ({"base_url": "http://x", "style": "anthropic"}, "required for style anthropic"),
    ({"base_url": "http://x/v1", "retries": 3}, "judge_api.retries: unknown key"),
])
def test_bad_judge_api_config(tmp_path, run_cli, api, message):
    cfg = build_project(tmp_path / "p", api=api, items=items_for(3))
    r = run_cli("--config", cfg, "judge", "calibrate")
    assert r.exit_code == 2 and message in r.stderr, r.stderr
    _assert_nothing_stored(cfg)


def test_unknown_metric_and_bad_limit(tmp_path, run_cli, key_env):
    with JudgeServer(key=KEY) as srv:
        cfg = build_project(tmp_path / "p", api=fast_api(srv.openai_base), items=items_for(3))
        r = run_cli("--config", cfg, "judge", "calibrate", "--metric", "nope")
        assert r.exit_code == 2 and "no calibration items for metric 'nope'" in r.stderr
        r = run_cli("--config", cfg, "judge", "calibrate", "--limit", "0")
        assert r.exit_code == 2 and "--limit" in r.stderr
        r = run_cli("--config", cfg, "judge", "calibrate", "--judge-rev", "no-such-rev")
        assert r.exit_code == 2 and "no revision 'no-such-rev'" in r.stderr
        assert srv.requests == []


def test_interrupted_run_keeps_what_was_scored_and_resumes(tmp_path, key_env, store_url):
    """Ctrl-C mid-run: the items already scored are stored, the run is marked interrupted, and the
    same command resumes with only the rest."""
    from oncall_ai.judge_calibrate import plan_calibration, run_calibration

    with JudgeServer(key=KEY) as srv:
        cfg_path = build_project(tmp_path / "p", api=fast_api(srv.openai_base, concurrency=1), items=items_for(10), store=store_url)
        cfg = load_config(cfg_path)
        store = open_store(cfg.store)
        try:
            def stop_after_three(plan, progress):
                if progress.done == 3:
                    raise KeyboardInterrupt

            plans = plan_calibration(cfg, store, run_id="r", now_ms=1_790_000_000_000)
            with pytest.raises(KeyboardInterrupt):
                run_calibration(cfg, store, plans, on_progress=stop_after_three)
            run = store.get_doc("judge_run", "r")
            assert run.body["status"] == "interrupted" and run.body["items"] == 3
            srv.requests.clear()
            plans = plan_calibration(cfg, store, run_id="r", now_ms=1_790_000_000_000)
            assert plans[0].done_before == 3 and len(plans[0].requests) == 7
            run_calibration(cfg, store, plans)
            assert len(srv.requests) == 7
            run = store.get_doc("judge_run", "r")
            assert run.body["status"] == "complete" and run.body["items"] == 10 and run.body["scored"] == 10
        finally:
            store.close()
