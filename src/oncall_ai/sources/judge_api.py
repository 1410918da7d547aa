"""The judge over HTTP, for `oncall-ai judge calibrate`: OpenAI-compatible Chat Completions
(`POST {base_url}/chat/completions`, which also covers vLLM, Ollama and LiteLLM) and Anthropic
Messages (`POST {base_url}/v1/messages` with `x-api-key` and `anthropic-version`).

Config section `judge_api` (kept raw by config.py, validated here):

    judge_api:
      base_url: https://api.openai.com/v1   # required
      style: openai                         # openai | anthropic
      api_key_env: OPENAI_API_KEY           # NAME of the variable holding the key; the key itself is
                                            # never stored, logged or printed. Optional for openai style
                                            # (local servers), required for anthropic.
      model: null                           # override the model judges.yaml names
      concurrency: 4                        # requests in flight
      timeout: 60                           # seconds per request (whole request, all phases)
      max_retries: 4                        # retries after the first attempt (429, 5xx, timeouts, broken bodies)
      rate_limit: null                      # requests per second across all workers (null: unlimited)
      temperature: 0                        # null leaves it out of the request
      max_tokens: 256
      anthropic_version: "2023-06-01"
      backoff: 1.0                          # first retry waits ~backoff s, doubling, jittered, at most backoff_max
      backoff_max: 30
      max_retry_after: 120                  # a longer Retry-After gives up on the item instead of waiting

Every item ends with a score or with `score: None` and a reason (`refusal`, `parse_error`,
`out_of_scale`, `timeout`, `connection_error`, `invalid_response`, `http_<status>`); never fatal
for the run. Whole-run problems are: the endpoint unreachable before anything answered, the key
rejected (401/403) or the endpoint/model unknown (404 before any success): ConfigError (exit 2);
the endpoint going silent mid-run (a run of consecutive transport failures): JudgeRunAborted
(exit 1; the run is resumable with the same run id).

No rich, no typer: progress goes through a callback.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import orjson

from oncall_ai.errors import ConfigError, DataError
from oncall_ai.sources.http import retry_after_seconds

STYLES = ("openai", "anthropic")
RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
# Null reasons worth another try when a run is resumed (the rest are the judge's own answer).
TRANSIENT_REASONS = frozenset({"timeout", "connection_error", "invalid_response", "rate_limited"})
DETAIL_CHARS = 300

_KEYS = ("base_url", "style", "api_key_env", "model", "concurrency", "timeout", "max_retries", "rate_limit",
         "temperature", "max_tokens", "anthropic_version", "backoff", "backoff_max", "max_retry_after")


def is_transient(reason: str | None) -> bool:
    return reason in TRANSIENT_REASONS or bool(reason and re.fullmatch(r"http_(429|5\d\d|408|409|425)", reason))


class Secret:
    """An API key that never shows itself in repr/str/logs; `scrub` removes it from echoed text."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str | None) -> str | None:
        if text is None or not self._value:
            return text
        return text.replace(self._value, "***")

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class JudgeRunAborted(DataError):
    """The judge API stopped answering mid-run; what was scored is kept and the run can resume."""


@dataclass(frozen=True)
class JudgeAPIConfig:
    base_url: str
    style: str = "openai"
    api_key_env: str | None = None
    model: str | None = None
    concurrency: int = 4
    timeout: float = 60.0
    max_retries: int = 4
    rate_limit: float | None = None
    temperature: float | None = 0.0
    max_tokens: int = 256
    anthropic_version: str = "2023-06-01"
    backoff: float = 1.0
    backoff_max: float = 30.0
    max_retry_after: float = 120.0

    @classmethod
    def from_section(cls, raw: dict | None, where: str = "judge_api") -> JudgeAPIConfig:
        """Validate the raw `judge_api` section; errors name the key (ConfigError, exit 2)."""
        raw = raw or {}
        if not raw:
            raise ConfigError(f"{where}: missing; `judge calibrate` needs the judge's HTTP API",
                              hint="add judge_api: {base_url: ..., style: openai|anthropic, api_key_env: ...} "
                                   "to the config (see config.example.yaml)")
        for k in raw:
            if k not in _KEYS:
                raise ConfigError(f"{where}.{k}: unknown key (known: {', '.join(_KEYS)})")
        base_url = raw.get("base_url")
        if not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url):
            raise ConfigError(f"{where}.base_url: must be an http(s) URL like https://api.openai.com/v1, "
                              f"not {base_url!r}")
        style = raw.get("style", "openai")
        if style not in STYLES:
            raise ConfigError(f"{where}.style: {style!r} is not one of {', '.join(STYLES)}")
        key_env = raw.get("api_key_env")
        if key_env is not None and (not isinstance(key_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key_env)):
            raise ConfigError(f"{where}.api_key_env: must be the NAME of an environment variable "
                              "(like OPENAI_API_KEY), not the key itself")
        model = raw.get("model")
        if model is not None and not isinstance(model, str):
            raise ConfigError(f"{where}.model: must be a model name string")

        def num(key, default, *, lo=0.0, integer=False, nullable=False):
            v = raw.get(key, default)
            if v is None and nullable:
                return None
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= lo
            if integer:
                ok = ok and float(v).is_integer()
            if not ok:
                kind = "a whole number" if integer else "a number"
                raise ConfigError(f"{where}.{key}: must be {kind} >= {lo:g}, not {v!r}")
            return int(v) if integer else float(v)

        rate = num("rate_limit", None, lo=0.0, nullable=True)
        if rate == 0:
            raise ConfigError(f"{where}.rate_limit: must be > 0 requests per second (or null for unlimited)")
        version = raw.get("anthropic_version", "2023-06-01")
        if not isinstance(version, str):
            raise ConfigError(f"{where}.anthropic_version: must be a string like \"2023-06-01\"")
        concurrency = num("concurrency", 4, lo=1, integer=True)
        timeout = num("timeout", 60.0, lo=0.001)
        return cls(
            base_url=base_url.rstrip("/"), style=style, api_key_env=key_env, model=model,
            concurrency=concurrency, timeout=timeout, max_retries=num("max_retries", 4, integer=True),
            rate_limit=rate, temperature=num("temperature", 0.0, nullable=True),
            max_tokens=num("max_tokens", 256, lo=1, integer=True), anthropic_version=version,
            backoff=num("backoff", 1.0), backoff_max=num("backoff_max", 30.0),
            max_retry_after=num("max_retry_after", 120.0))

    @property
    def url(self) -> str:
        if self.style == "openai":
            return f"{self.base_url}/chat/completions"
        base = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        return f"{base}/v1/messages"

    @property
    def public_base_url(self) -> str:
        """base_url without any user:password@ part, safe to store and print."""
        parts = urlsplit(self.base_url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def api_key_from_env(api: JudgeAPIConfig, environ: dict | None = None) -> Secret | None:
    """The key from the variable `api_key_env` names. ConfigError (exit 2) when it is missing."""
    import os

    env = os.environ if environ is None else environ
    if not api.api_key_env:
        if api.style == "anthropic":
            raise ConfigError("judge_api.api_key_env: required for style anthropic",
                              hint="set judge_api.api_key_env: ANTHROPIC_API_KEY and export that variable")
        return None
    value = (env.get(api.api_key_env) or "").strip()
    if not value:
        raise ConfigError(f"judge_api.api_key_env: the environment variable ${api.api_key_env} is not set or empty",
                          hint=f"export {api.api_key_env}=... in the shell that runs oncall-ai "
                               "(oncall-ai never stores the key)")
    return Secret(value)


# --- prompts and replies ----------------------------------------------------------------------

@dataclass(frozen=True)
class JudgeRequest:
    item_id: str
    model: str
    system: str | None
    user: str


SCORE_INSTRUCTION = 'Reply with a JSON object {"score": N} where N is your score.'


def compose_prompt(rubric: str, input_text: str | None, output_text: str | None) -> tuple[str | None, str]:
    """(system, user). A rubric with {input}/{output} (or {{input}}/{{output}}) placeholders is
    filled in and sent as the user message; otherwise the rubric is the system prompt and the user
    message carries the item."""
    inp, out = input_text or "", output_text or ""
    if re.search(r"\{\{?\s*(input|output)\s*\}?\}", rubric):
        filled = re.sub(r"\{\{?\s*input\s*\}?\}", lambda _m: inp, rubric)
        filled = re.sub(r"\{\{?\s*output\s*\}?\}", lambda _m: out, filled)
        return None, filled
    return rubric, f"Input:\n{inp}\n\nResponse to evaluate:\n{out}\n\n{SCORE_INSTRUCTION}"


def request_body(api: JudgeAPIConfig, req: JudgeRequest) -> dict:
    if api.style == "anthropic":
        body: dict = {"model": req.model, "max_tokens": api.max_tokens,
                      "messages": [{"role": "user", "content": req.user}]}
        if req.system:
            body["system"] = req.system
    else:
        messages = [{"role": "system", "content": req.system}] if req.system else []
        messages.append({"role": "user", "content": req.user})
        body = {"model": req.model, "messages": messages, "max_tokens": api.max_tokens}
    if api.temperature is not None:
        body["temperature"] = api.temperature
    return body


def request_headers(api: JudgeAPIConfig, key: Secret | None) -> dict[str, str]:
    from oncall_ai import __version__

    headers = {"content-type": "application/json", "user-agent": f"oncall-ai/{__version__}"}
    if api.style == "anthropic":
        headers["anthropic-version"] = api.anthropic_version
        if key is not None:
            headers["x-api-key"] = key.reveal()
    elif key is not None:
        headers["authorization"] = f"Bearer {key.reveal()}"
    return headers


class _BadBody(Exception):
    pass


def reply_text(style: str, body: object) -> tuple[str, bool]:
    """(text, refused_by_provider) from a parsed response body; _BadBody when it has no reply."""
    if not isinstance(body, dict):
        raise _BadBody("response is not a JSON object")
    if style == "anthropic":
        blocks = body.get("content")
        if not isinstance(blocks, list):
            raise _BadBody("no 'content' list in the reply")
        text = "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"
                       and isinstance(b.get("text"), str))
        return text, body.get("stop_reason") == "refusal"
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _BadBody("no 'choices' in the reply")
    msg = choices[0].get("message")
    if not isinstance(msg, dict):
        raise _BadBody("no 'message' in choices[0]")
    content = msg.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    refused = bool(msg.get("refusal")) or choices[0].get("finish_reason") == "content_filter"
    if refused and not content:
        content = msg.get("refusal") if isinstance(msg.get("refusal"), str) else ""
    if content is not None and not isinstance(content, str):
        raise _BadBody("message content is not text")
    return content or "", refused


_NUM = r"(-?\d+(?:\.\d+)?)"
_SCORE_KEY = re.compile(r"(?i)\b(?:score|rating|grade)\b\**\s*[\"']?\s*(?:[:=]|\bis\b|-)?\s*\**\s*[\"']?\s*" + _NUM
                        + r"(?![\d.]*\s*/)")
_FRACTION = re.compile(r"(?<![\w.])" + _NUM + r"\s*(?:/|out of)\s*" + _NUM + r"(?!\w|\.\d)", re.I)
_ONLY_NUMBER = re.compile(r"^\s*\**\s*" + _NUM + r"\s*\**\s*\.?\s*$")
_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.S)
_REFUSAL = re.compile(r"(?i)\b(i\s+can(?:'|’|no)t|i\s+cannot|i'?m\s+sorry|i\s+am\s+sorry|i\s+won'?t|"
                      r"i\s+will\s+not|i'?m\s+(?:not\s+able|unable)|unable\s+to\s+(?:help|comply|assist|evaluate))")


def parse_score(text: str, scale: tuple[float, float] | None = None,
                refused: bool = False) -> tuple[float | None, str | None, str | None]:
    """(score, None, None) or (None, reason, detail). JSON first (`{"score": 4}`, also inside a code
    fence or surrounded by prose), then `Score: 4` (the last one), `4/5` or `4 out of 5`, then a
    bare number. A provider refusal, or refusal wording with no score, is `refusal`."""
    text = text or ""
    if refused:
        return None, "refusal", _excerpt(text) or "the provider reported a refusal"
    score = _json_score(text)
    if score is None:
        hits = _SCORE_KEY.findall(text)
        if hits:
            score = float(hits[-1])
    if score is None:
        hits = _FRACTION.findall(text)
        if hits:
            score = float(hits[-1][0])
    if score is None:
        m = _ONLY_NUMBER.match(text)
        if m:
            score = float(m.group(1))
    if score is None:
        if not text.strip():
            return None, "parse_error", "empty reply"
        if _REFUSAL.search(text):
            return None, "refusal", _excerpt(text)
        return None, "parse_error", f"no score in the reply: {_excerpt(text)}"
    if not math.isfinite(score):
        return None, "parse_error", f"score is not a finite number: {_excerpt(text)}"
    if scale is not None and not scale[0] <= score <= scale[1]:
        return None, "out_of_scale", f"score {score:g} outside the scale {scale[0]:g}..{scale[1]:g}"
    return score, None, None


def _json_score(text: str) -> float | None:
    candidates = [text.strip()]
    candidates += [m.group(0) for m in _JSON_OBJECT.finditer(text)]
    for c in candidates:
        if not c.startswith("{"):
            continue
        try:
            obj = orjson.loads(c)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        for k, v in obj.items():
            if str(k).lower() in ("score", "rating", "grade"):
                if isinstance(v, bool):
                    continue
                if isinstance(v, int | float):
                    return float(v)
                if isinstance(v, str):
                    try:
                        return float(v.strip())
                    except ValueError:
                        continue
    return None


def _excerpt(text: str | None, n: int = DETAIL_CHARS) -> str:
    t = " ".join((text or "").split())
    return t if len(t) <= n else t[: n - 1] + "…"


def parse_retry_after(headers, now_epoch: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            v = float(ms) / 1000
            if math.isfinite(v):
                return max(0.0, v)
        except ValueError:
            pass
    return retry_after_seconds(headers.get("retry-after"), now_epoch)


# --- the client -------------------------------------------------------------------------------

@dataclass
class JudgeOutcome:
    item_id: str
    score: float | None
    reason: str | None = None
    detail: str | None = None
    attempts: int = 0
    history: list[dict] = field(default_factory=list)  # one entry per attempt: status/error/ms/wait
    latency_ms: int = 0

    def to_body(self) -> dict:
        return {"score": self.score, "reason": self.reason, "detail": self.detail, "attempts": self.attempts,
                "history": self.history, "latency_ms": self.latency_ms}


class RateLimiter:
    """Spaces request starts at least 1/rate apart across all workers; `pause_until` holds every
    worker back (a 429's Retry-After applies to the whole client, not just the item that hit it)."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic):
        self._interval = 1.0 / rate if rate else 0.0
        self._next = 0.0
        self._paused_until = 0.0
        self._clock = clock

    async def acquire(self) -> None:
        while True:
            now = self._clock()
            start = max(now, self._next, self._paused_until)
            if start <= now:
                self._next = now + self._interval
                return
            await asyncio.sleep(start - now)

    def pause_until(self, t: float) -> None:
        self._paused_until = max(self._paused_until, t)


@dataclass
class RunProgress:
    total: int
    done: int = 0
    scored: int = 0
    null: int = 0
    retries: int = 0


class JudgeClient:
    """Scores requests against one judge API with bounded concurrency, retries and a rate limit."""

    def __init__(self, api: JudgeAPIConfig, key: Secret | None, *, scale: tuple[float, float] | None = None,
                 rng: random.Random | None = None, transport=None, breaker: int | None = None):
        self.api = api
        self._key = key
        self.scale = scale
        self._rng = rng or random.Random()
        self._transport = transport
        self._limiter = RateLimiter(api.rate_limit)
        self._any_response = False  # an HTTP answer from the server: it is there
        self._consecutive_transport_failures = 0
        self._any_success = False  # an item answered (scored, or the judge's own refusal/garbage)
        self._breaker = breaker or max(5, 2 * api.concurrency)

    def scrub(self, text: str | None) -> str | None:
        return self._key.scrub(text) if self._key is not None else text

    def _backoff(self, attempt: int) -> float:
        base = min(self.api.backoff_max, self.api.backoff * 2 ** (attempt - 1))
        return base * self._rng.uniform(0.5, 1.0)

    async def score(self, client, req: JudgeRequest) -> JudgeOutcome:
        import httpx

        body = orjson.dumps(request_body(self.api, req))
        headers = request_headers(self.api, self._key)
        out = JudgeOutcome(req.item_id, None)
        t_start = time.monotonic()
        for attempt in range(1, self.api.max_retries + 2):
            await self._limiter.acquire()
            t0 = time.monotonic()
            entry: dict = {"attempt": attempt}
            out.history.append(entry)
            out.attempts = attempt
            status = None
            retry_after = None
            reason = detail = None
            try:
                async with asyncio.timeout(self.api.timeout):
                    resp = await client.post(self.api.url, content=body, headers=headers)
                status = resp.status_code
            except (TimeoutError, httpx.TimeoutException):
                reason, detail = "timeout", f"no answer within {self.api.timeout:g}s"
            except httpx.TransportError as e:
                reason, detail = "connection_error", self.scrub(f"{type(e).__name__}: {e}")[:DETAIL_CHARS]
            entry["ms"] = int((time.monotonic() - t0) * 1000)
            if status is not None:
                entry["status"] = status
                self._any_response = True
                self._consecutive_transport_failures = 0
                if 200 <= status < 300:
                    try:
                        text, refused = reply_text(self.api.style, orjson.loads(resp.content))
                    except (orjson.JSONDecodeError, _BadBody) as e:
                        reason = "invalid_response"
                        detail = self.scrub(f"{e}: {_excerpt(resp.text, 120)}")
                    else:
                        score, reason, detail = parse_score(text, self.scale, refused)
                        out.score, out.reason, out.detail = score, reason, self.scrub(detail)
                        out.latency_ms = int((time.monotonic() - t_start) * 1000)
                        return out
                else:
                    reason = f"http_{status}"
                    detail = self.scrub(_excerpt(resp.text, 200)) or resp.reason_phrase
                    if status in (401, 403):
                        raise ConfigError(
                            f"the judge API at {self.api.public_base_url} rejected the credentials (HTTP {status})",
                            hint=f"check the key in ${self.api.api_key_env}" if self.api.api_key_env
                            else "set judge_api.api_key_env to the variable that holds the key")
                    if status == 404 and not self._any_success:
                        raise ConfigError(
                            f"the judge API answered HTTP 404 for {self.api.url}: wrong base_url or unknown "
                            f"model {req.model!r}",
                            hint="openai style posts to {base_url}/chat/completions, anthropic style to "
                                 "{base_url}/v1/messages; check judge_api.base_url and the model in judges.yaml")
                    if status in RETRY_STATUSES:
                        retry_after = parse_retry_after(resp.headers)
                    else:  # the server's final word on this item (400 too long, 422, ...)
                        out.reason, out.detail = reason, detail
                        out.latency_ms = int((time.monotonic() - t_start) * 1000)
                        return out
            entry["error"] = reason
            if attempt > self.api.max_retries:
                break
            if retry_after is not None and retry_after > self.api.max_retry_after:
                reason = "rate_limited" if status == 429 else reason
                detail = f"server asked to wait {retry_after:g}s (over max_retry_after {self.api.max_retry_after:g}s)"
                break
            wait = retry_after + self._rng.uniform(0, 0.05) if retry_after is not None else self._backoff(attempt)
            if status == 429:
                self._limiter.pause_until(time.monotonic() + wait)
            entry["wait"] = round(wait, 3)
            if retry_after is not None:
                entry["retry_after"] = retry_after
            await asyncio.sleep(wait)
        out.reason, out.detail = reason, detail
        out.latency_ms = int((time.monotonic() - t_start) * 1000)
        return out

    def _account(self, outcome: JudgeOutcome) -> None:
        """Whole-run failure detection, after an item is done."""
        if outcome.reason in ("timeout", "connection_error"):
            self._consecutive_transport_failures += 1
        else:
            self._consecutive_transport_failures = 0
        if outcome.score is not None or outcome.reason in ("refusal", "parse_error", "out_of_scale"):
            self._any_success = True
        if outcome.reason == "connection_error" and not self._any_response:
            raise ConfigError(f"cannot reach the judge API at {self.api.public_base_url}: {outcome.detail}",
                              hint="check judge_api.base_url and that the server is up; nothing was stored")
        if self._consecutive_transport_failures >= self._breaker:
            raise JudgeRunAborted(
                f"the judge API at {self.api.public_base_url} stopped answering "
                f"({self._consecutive_transport_failures} items in a row failed: {outcome.reason})")

    async def run(self, requests: Iterable[JudgeRequest], on_outcome: Callable[[JudgeOutcome], None],
                  on_progress: Callable[[RunProgress], None] | None = None) -> RunProgress:
        """Score every request with `concurrency` workers; `on_outcome` is called for each item as it
        finishes (in the event loop thread), `on_progress` after it."""
        import httpx

        reqs = list(requests)
        progress = RunProgress(total=len(reqs))
        if not reqs:
            return progress
        queue: asyncio.Queue = asyncio.Queue()
        for r in reqs:
            queue.put_nowait(r)
        limits = httpx.Limits(max_connections=self.api.concurrency, max_keepalive_connections=self.api.concurrency)
        timeout = httpx.Timeout(self.api.timeout)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, transport=self._transport,
                                     follow_redirects=False) as client:

            async def worker():
                while True:
                    try:
                        req = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    outcome = await self.score(client, req)
                    self._account(outcome)
                    on_outcome(outcome)
                    progress.done += 1
                    progress.retries += max(0, outcome.attempts - 1)
                    if outcome.score is None:
                        progress.null += 1
                    else:
                        progress.scored += 1
                    if on_progress is not None:
                        on_progress(progress)

            tasks = [asyncio.create_task(worker()) for _ in range(min(self.api.concurrency, len(reqs)))]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        return progress
