"""The judge API client's pure parts: score parsing, Retry-After, prompts, config, key handling."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from oncall_ai.errors import ConfigError
from oncall_ai.sources.judge_api import (
    JudgeAPIConfig,
    JudgeRequest,
    RateLimiter,
    Secret,
    api_key_from_env,
    compose_prompt,
    is_transient,
    parse_retry_after,
    parse_score,
    reply_text,
    request_body,
    request_headers,
)


@pytest.mark.parametrize("text,score", [
    ('{"score": 4}', 4.0),
    ('{"score": "3", "reason": "ok"}', 3.0),
    ('Here you go:\n```json\n{"reasoning": "fine", "score": 5}\n```', 5.0),
    ("The answer is thorough.\nScore: 4", 4.0),
    ("Score: 2 at first, on reflection Score: 3", 3.0),
    ("**Score:** 5", 5.0),
    ("Final score 4", 4.0),
    ("I'd say 4/5.", 4.0),
    ("Rating: 4 out of 5", 4.0),
    ("4", 4.0),
    ("  3.5 ", 3.5),
    ("Rating = 2.", 2.0),
    ("dates 2024/05/01 aside, Score: 3", 3.0),
])
def test_scores_are_parsed_from_json_and_text(text, score):
    assert parse_score(text, (1, 5)) == (score, None, None)


@pytest.mark.parametrize("text,reason", [
    ("", "parse_error"),
    ("The response looks fine to me.", "parse_error"),
    ('{"verdict": "good"}', "parse_error"),
    ("I'm sorry, but I can't evaluate this content.", "refusal"),
    ("I cannot help with that.", "refusal"),
    ("Score: 9", "out_of_scale"),
    ("Score: 0", "out_of_scale"),
])
def test_unparseable_replies_get_a_reason(text, reason):
    score, why, detail = parse_score(text, (1, 5))
    assert score is None and why == reason and detail


def test_provider_refusal_wins_over_text():
    assert parse_score("Score: 4", (1, 5), refused=True)[1] == "refusal"


def test_reply_text_of_both_styles():
    openai = {"choices": [{"message": {"role": "assistant", "content": "Score: 4", "refusal": None},
                           "finish_reason": "stop"}]}
    assert reply_text("openai", openai) == ("Score: 4", False)
    refused = {"choices": [{"message": {"content": None, "refusal": "I can't."}, "finish_reason": "stop"}]}
    assert reply_text("openai", refused) == ("I can't.", True)
    filtered = {"choices": [{"message": {"content": ""}, "finish_reason": "content_filter"}]}
    assert reply_text("openai", filtered)[1] is True
    anthropic = {"content": [{"type": "text", "text": '{"score": '}, {"type": "text", "text": "5}"}],
                 "stop_reason": "end_turn"}
    assert reply_text("anthropic", anthropic) == ('{"score": 5}', False)
    assert reply_text("anthropic", {"content": [], "stop_reason": "refusal"}) == ("", True)


@pytest.mark.parametrize("style,body", [("openai", {"error": "x"}), ("openai", {"choices": []}),
                                        ("openai", []), ("anthropic", {"type": "error"})])
def test_reply_text_rejects_bodies_without_a_reply(style, body):
    from oncall_ai.sources.judge_api import _BadBody

    with pytest.raises(_BadBody):
        reply_text(style, body)


def test_retry_after_forms():
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    now = time.time()
    when = format_datetime(datetime.fromtimestamp(now, tz=UTC) + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after({"retry-after": when}, now) == pytest.approx(30, abs=1.0)


def test_prompt_with_and_without_placeholders():
    system, user = compose_prompt("Grade 1-5.", "the question", "the answer")
    assert system == "Grade 1-5." and "the question" in user and "the answer" in user and '"score"' in user
    system, user = compose_prompt("Q: {{input}}\nA: {output}\nScore it.", "why?", "because")
    assert system is None and user == "Q: why?\nA: because\nScore it."


def test_request_shapes_and_headers():
    req = JudgeRequest("i1", "m1", "rubric", "item")
    api = JudgeAPIConfig(base_url="http://h/v1")
    body = request_body(api, req)
    assert body["messages"] == [{"role": "system", "content": "rubric"}, {"role": "user", "content": "item"}]
    assert body["temperature"] == 0 and body["model"] == "m1"
    assert api.url == "http://h/v1/chat/completions"
    assert request_headers(api, Secret("k"))["authorization"] == "Bearer k"
    assert "authorization" not in request_headers(api, None)  # local servers without a key
    anth = JudgeAPIConfig(base_url="https://api.anthropic.com", style="anthropic", temperature=None)
    body = request_body(anth, req)
    assert body["system"] == "rubric" and body["messages"] == [{"role": "user", "content": "item"}]
    assert "temperature" not in body and body["max_tokens"] == 256
    assert anth.url == "https://api.anthropic.com/v1/messages"
    assert JudgeAPIConfig(base_url="https://x/v1", style="anthropic").url == "https://x/v1/messages"
    h = request_headers(anth, Secret("k"))
    assert h["x-api-key"] == "k" and h["anthropic-version"] == "2023-06-01"


def test_secret_never_shows_itself():
    s = Secret("sk-very-secret")
    assert "sk-very-secret" not in repr(s) and "sk-very-secret" not in str(s) and "sk-very-secret" not in f"{s}"
    assert s.scrub("Incorrect API key provided: sk-very-secret.") == "Incorrect API key provided: ***."


def test_public_base_url_drops_credentials():
    api = JudgeAPIConfig.from_section({"base_url": "https://user:pw@gw.example.com:8443/v1"})
    assert api.public_base_url == "https://gw.example.com:8443/v1"


def test_api_key_from_env():
    api = JudgeAPIConfig.from_section({"base_url": "http://h/v1", "api_key_env": "MY_KEY"})
    assert api_key_from_env(api, {"MY_KEY": " k1 "}).reveal() == "k1"
    with pytest.raises(ConfigError, match=r"\$MY_KEY is not set"):
        api_key_from_env(api, {})
    assert api_key_from_env(JudgeAPIConfig.from_section({"base_url": "http://h/v1"}), {}) is None


def test_transient_reasons():
    assert all(is_transient(r) for r in ("timeout", "connection_error", "invalid_response", "http_429", "http_503"))
    assert not any(is_transient(r) for r in ("refusal", "parse_error", "out_of_scale", "http_400", None))


def test_rate_limiter_spaces_starts():
    async def go():
        lim = RateLimiter(50)  # one start every 20 ms
        stamps = []
        for _ in range(6):
            await lim.acquire()
            stamps.append(time.monotonic())
        return stamps

    stamps = asyncio.run(go())
    assert all(b - a >= 0.015 for a, b in zip(stamps, stamps[1:], strict=False))


def test_rate_limiter_pause_holds_everyone():
    async def go():
        lim = RateLimiter(None)
        lim.pause_until(time.monotonic() + 0.1)
        t = time.monotonic()
        await lim.acquire()
        return time.monotonic() - t

    assert asyncio.run(go()) >= 0.09
