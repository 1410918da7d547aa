"""`slo check --notify`: Slack incoming webhooks and PagerDuty Events API v2.

Config (`notify:` section, all optional):

    notify:
      slack_webhook_env: ONCALL_AI_SLACK_WEBHOOK_URL          # env var holding the webhook URL (default name)
      pagerduty_routing_key_env: ONCALL_AI_PAGERDUTY_ROUTING_KEY   # env var holding the integration key
      pagerduty_url: https://events.pagerduty.com/v2/enqueue  # override (tests, EU service region)
      slack_url: ...            # the webhook URL itself (tests; prefer the env var, it is a secret)
      routes: {page: [pagerduty, slack], ticket: [slack]}     # default; an SLO's `notify:` overrides
      timeout: 10s              # per request
      retries: 4                # after the first attempt, on 429, 5xx and network errors
      max_retry_wait: 30s       # cap on one wait (Retry-After is honoured up to this)
      source: oncall-ai         # PagerDuty payload.source
      link: https://grafana.example.com/d/slo               # optional, added to messages

Secrets (the webhook URL, the routing key) are read from the environment when sending and never
printed, logged or stored: records and messages name the variable, not its value, and httpx's own
request log lines are redacted while a send is running.

State: one doc of kind `notify_state` per SLO (id = SLO name) holds, per target, the severity that
is open there. Each check moves every target towards the severity its routes want for the SLO's
state: nothing when it is already open (no duplicate page for a burn already open), trigger when it
opens or changes (PagerDuty: the same dedup_key per SLO, so a later resolve clears it), resolve when
the SLO is ok again. `no_data` changes nothing (an unknown is not a recovery). A failed send leaves
the state as it was, so the next check retries. Every send is recorded as a doc of kind `action`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from oncall_ai.errors import ConfigError
from oncall_ai.sources.http import retry_after_seconds
from oncall_ai.store.base import Doc
from oncall_ai.timeutil import format_duration, format_time, parse_duration_ms

STATE_KIND = "notify_state"
ACTION_KIND = "action"
TARGETS = ("pagerduty", "slack")  # the page goes out first
DEFAULT_ROUTES = {"page": ("pagerduty", "slack"), "ticket": ("slack",)}
DEFAULT_SLACK_ENV = "ONCALL_AI_SLACK_WEBHOOK_URL"
DEFAULT_PD_ENV = "ONCALL_AI_PAGERDUTY_ROUTING_KEY"
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
PD_SEVERITY = {"page": "critical", "ticket": "warning"}
SECTION_KEYS = ("slack_webhook_env", "slack_url", "pagerduty_routing_key_env", "pagerduty_url", "routes",
                "timeout", "retries", "max_retry_wait", "source", "link")


@dataclass(frozen=True)
class Target:
    name: str  # slack | pagerduty
    url: str | None  # None: not configured
    secret_from: str  # how to name the secret in messages: "$ONCALL_AI_SLACK_WEBHOOK_URL"
    routing_key: str | None = field(default=None, repr=False)

    @property
    def configured(self) -> bool:
        return bool(self.url) and (self.name != "pagerduty" or bool(self.routing_key))

    def secrets(self) -> list[str]:
        out = [s for s in (self.routing_key,) if s]
        if self.name == "slack" and self.url:
            out.append(self.url)
        return out


@dataclass(frozen=True)
class Settings:
    targets: dict[str, Target]
    routes: dict[str, tuple[str, ...]]
    timeout_s: float = 10.0
    retries: int = 4
    max_retry_wait_s: float = 30.0
    source: str = "oncall-ai"
    link: str | None = None

    def secrets(self) -> list[str]:
        return [s for t in self.targets.values() for s in t.secrets()]


def _fail(cfg, key: str, msg: str):
    raise ConfigError(f"{cfg.describe()}: notify.{key}: {msg}")


def load_settings(cfg, environ=None) -> Settings:
    env = os.environ if environ is None else environ
    sec = cfg.section("notify")
    for k in sec:
        if k not in SECTION_KEYS:
            _fail(cfg, str(k), f"unknown key (known: {', '.join(SECTION_KEYS)})")

    def env_name(key: str, default: str) -> tuple[str, bool]:
        value = sec.get(key)
        if value is None:
            return default, False
        if not isinstance(value, str) or not value.strip():
            _fail(cfg, key, "must be the name of an environment variable")
        return value.strip(), True

    slack_env, slack_explicit = env_name("slack_webhook_env", DEFAULT_SLACK_ENV)
    slack_url = sec.get("slack_url")
    slack_from = "notify.slack_url"
    if slack_url is None:
        slack_url = env.get(slack_env) or None
        slack_from = f"${slack_env}"
        if slack_explicit and not slack_url:
            _fail(cfg, "slack_webhook_env", f"${slack_env} is not set (it should hold the Slack webhook URL)")
    elif not isinstance(slack_url, str) or not slack_url.startswith(("http://", "https://")):
        _fail(cfg, "slack_url", "must be an http(s) URL")

    pd_env, pd_explicit = env_name("pagerduty_routing_key_env", DEFAULT_PD_ENV)
    pd_key = env.get(pd_env) or None
    if pd_explicit and not pd_key:
        _fail(cfg, "pagerduty_routing_key_env", f"${pd_env} is not set (it should hold the integration key)")
    pd_url = sec.get("pagerduty_url", PAGERDUTY_URL)
    if not isinstance(pd_url, str) or not pd_url.startswith(("http://", "https://")):
        _fail(cfg, "pagerduty_url", "must be an http(s) URL")

    routes = dict(DEFAULT_ROUTES)
    if "routes" in sec:
        raw = sec["routes"]
        if not isinstance(raw, dict):
            _fail(cfg, "routes", "must be {page: [pagerduty, slack], ticket: [slack]}")
        for sev, targets in raw.items():
            if sev not in DEFAULT_ROUTES:
                _fail(cfg, f"routes.{sev}", "must be page or ticket")
            targets = [targets] if isinstance(targets, str) else (targets or [])
            if not isinstance(targets, list) or any(t not in TARGETS for t in targets):
                _fail(cfg, f"routes.{sev}", f"must be a list of {', '.join(TARGETS)}")
            routes[sev] = tuple(targets)

    def duration_s(key: str, default: float) -> float:
        if key not in sec:
            return default
        try:
            return parse_duration_ms(sec[key]) / 1000
        except ValueError as e:
            _fail(cfg, key, str(e))

    retries = sec.get("retries", 4)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10:
        _fail(cfg, "retries", "must be a whole number from 0 to 10")
    return Settings(
        targets={"slack": Target("slack", slack_url, slack_from),
                 "pagerduty": Target("pagerduty", pd_url, f"${pd_env}", pd_key)},
        routes=routes, timeout_s=duration_s("timeout", 10.0), retries=retries,
        max_retry_wait_s=duration_s("max_retry_wait", 30.0), source=str(sec.get("source") or "oncall-ai"),
        link=str(sec["link"]) if sec.get("link") else None)


def routes_for(slo, settings: Settings) -> dict[str, tuple[str, ...]]:
    if slo is not None and slo.notify is not None:
        given = dict(slo.notify)
        return {sev: given.get(sev, ()) for sev in DEFAULT_ROUTES}
    return settings.routes


def dedup_key(slo_name: str) -> str:
    key = f"oncall-ai/slo/{slo_name}"
    if len(key) > 255:  # PagerDuty's limit
        key = key[:200] + "/" + hashlib.sha256(slo_name.encode()).hexdigest()[:16]
    return key


# --- HTTP -------------------------------------------------------------------------------------

@dataclass
class SendResult:
    ok: bool
    status: int | None
    attempts: int
    waits: list[float]
    error: str | None = None


class _Redact(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if any(s in msg for s in self.secrets):
            for s in self.secrets:
                msg = msg.replace(s, "***")
            record.msg, record.args = msg, None
        return True


@contextmanager
def _redacted_logs(secrets: list[str]) -> Iterator[None]:
    f = _Redact(secrets)
    loggers = [logging.getLogger(n) for n in ("httpx", "httpcore")]
    for lg in loggers:
        lg.addFilter(f)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(f)


def retry_after_s(value: str | None, now_s: float | None = None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date."""
    return retry_after_seconds(value, now_s)


def _redact(text: str, secrets: list[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def post_json(client, url: str, payload: dict, *, what: str, settings: Settings,
              sleep: Callable[[float], None] = time.sleep) -> SendResult:
    """POST with retries on 429, 5xx and network errors; waits honour Retry-After (capped) and
    otherwise back off 1, 2, 4, ... seconds. Messages never contain the URL or payload secrets."""
    import httpx

    secrets = settings.secrets()
    waits: list[float] = []
    attempts = 0
    last_error = None
    status = None
    with _redacted_logs(secrets):
        while True:
            attempts += 1
            retry_wait = None
            try:
                resp = client.post(url, json=payload, timeout=settings.timeout_s)
                status = resp.status_code
                if 200 <= status < 300:
                    return SendResult(True, status, attempts, waits)
                body = _redact(resp.text[:200].strip(), secrets)
                last_error = f"{what}: HTTP {status}" + (f" ({body})" if body else "")
                if status != 429 and status < 500:
                    return SendResult(False, status, attempts, waits, last_error)
                retry_wait = retry_after_s(resp.headers.get("Retry-After"))
            except httpx.HTTPError as e:
                # The exception text can hold the URL (a Slack webhook is a secret): name the class only.
                last_error = f"{what}: {type(e).__name__}"
                status = None
            if attempts > settings.retries:
                return SendResult(False, status, attempts, waits, last_error + f" after {attempts} attempts")
            wait = retry_wait if retry_wait is not None else float(2 ** (attempts - 1))
            wait = min(wait, settings.max_retry_wait_s)
            waits.append(wait)
            sleep(wait)


# --- payloads ---------------------------------------------------------------------------------

def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.2f}%"


def _firing_text(st) -> str:
    firing = [p for p in st.pairs if p.firing]
    if not firing:
        return ""
    parts = []
    for p in firing:
        parts.append(f"{p.pair.name}: burn {p.long.burn:.1f}x over {format_duration(p.pair.long_ms)} and "
                     f"{p.short.burn:.1f}x over {format_duration(p.pair.short_ms)} (threshold {p.pair.burn:g}x)")
    return "; ".join(parts)


def summary(st, severity: str | None) -> str:
    head = f"[{(severity or 'resolved').upper()}] {st.name}: {st.feature}/{st.metric} quality SLO"
    if severity is None:
        return f"{head} recovered: SLI {_pct(st.sli)} over {format_duration(st.period_ms)}"
    return (f"{head} burning its error budget: {_firing_text(st) or st.reasons[0]}; SLI {_pct(st.sli)} over "
            f"{format_duration(st.period_ms)} (objective {st.objective * 100:g}%), budget left {_pct(st.budget_left)}")[:1024]


def details(st) -> dict:
    return {
        "slo": st.name, "feature": st.feature, "metric": st.metric, "state": st.state,
        "objective": st.objective, "window": format_duration(st.period_ms), "sli": st.sli,
        "budget_left": st.budget_left, "events": st.n, "sampled": st.sampled,
        "burn": {format_duration(w.window_ms): (None if w.burn is None else round(w.burn, 3)) for w in st.windows},
        "reasons": list(st.reasons),
        "next": f"oncall-ai slo status; oncall-ai triage --feature {st.feature} --metric {st.metric}",
    }


def slack_payload(st, severity: str | None, previous: str | None, settings: Settings) -> dict:
    text = summary(st, severity)
    if severity and previous and previous != severity:
        text += f" (was {previous})"
    lines = [f"*{text}*"]
    if severity:
        lines += [f"- {r}" for r in st.reasons[:4]]
        lines.append(f"Next: `oncall-ai slo status` then `oncall-ai triage --feature {st.feature} --metric {st.metric}`")
    if settings.link:
        lines.append(f"<{settings.link}|dashboard>")
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}}]}


def pagerduty_payload(st, severity: str | None, routing_key: str, at_ms: int, settings: Settings) -> dict:
    key = dedup_key(st.name)
    if severity is None:
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": key}
    body = {
        "routing_key": routing_key, "event_action": "trigger", "dedup_key": key,
        "payload": {"summary": summary(st, severity), "source": settings.source,
                    "severity": PD_SEVERITY[severity], "timestamp": format_time(at_ms),
                    "component": st.feature, "group": st.metric, "class": "quality-slo-burn",
                    "custom_details": details(st)},
        "client": "oncall-ai",
    }
    if settings.link:
        body["client_url"] = settings.link
        body["links"] = [{"href": settings.link, "text": "dashboard"}]
    return body


# --- the state machine --------------------------------------------------------------------------

@dataclass
class Sent:
    slo: str
    target: str
    action: str  # trigger | resolve
    severity: str | None
    ok: bool
    status: int | None
    attempts: int
    error: str | None = None

    def line(self) -> str:
        what = f"{self.action} {self.severity}" if self.severity else self.action
        res = "ok" if self.ok else f"FAILED: {self.error}"
        return f"notify {self.target}: {what} for {self.slo}: {res}"

    def as_dict(self) -> dict:
        return {"slo": self.slo, "target": self.target, "action": self.action, "severity": self.severity,
                "ok": self.ok, "status": self.status, "attempts": self.attempts, "error": self.error}


def desired_severity(state: str, target: str, routes: dict[str, tuple[str, ...]], open_now: str | None) -> str | None:
    if state == "no_data":
        return open_now  # unknown is not a recovery, nor a reason to page
    if state in ("page", "ticket") and target in routes.get(state, ()):
        return state
    return None


def worth_sending(store, statuses) -> list[str]:
    """SLOs a notification may go out for: burning now, or with an alert open somewhere."""
    names = {st.name for st in statuses if st.state in ("page", "ticket")}
    for d in store.get_docs(STATE_KIND, ids=[st.name for st in statuses]):
        if any((t or {}).get("open") for t in (d.body.get("targets") or {}).values()):
            names.add(d.id)
    return sorted(names)


def notify(store, cfg, statuses, at_ms: int, *, settings: Settings | None = None, client=None,
           sleep: Callable[[float], None] = time.sleep) -> tuple[list[Sent], list[str]]:
    """Send what changed for every SLO status. Returns (sends, notes); notes say what was skipped."""
    import httpx

    settings = settings or load_settings(cfg)
    slo_by_name = {s.name: s for s in cfg.slos}
    sends: list[Sent] = []
    notes: list[str] = []
    skipped_targets: set[str] = set()
    own_client = client is None
    if own_client:
        client = httpx.Client(headers={"User-Agent": "oncall-ai"}, follow_redirects=False)
    try:
        states = {d.id: d.body for d in store.get_docs(STATE_KIND, ids=[st.name for st in statuses])}
        new_docs: list[Doc] = []
        action_docs: list[Doc] = []
        for st in statuses:
            body = states.get(st.name) or {"slo": st.name, "targets": {}}
            tstate: dict = body.setdefault("targets", {})
            routes = routes_for(slo_by_name.get(st.name), settings)
            changed = False
            for tname in TARGETS:
                open_now = (tstate.get(tname) or {}).get("open")
                want = desired_severity(st.state, tname, routes, open_now)
                if want == open_now:
                    continue
                target = settings.targets[tname]
                if not target.configured:
                    if tname not in skipped_targets:
                        skipped_targets.add(tname)
                        notes.append(f"notify {tname}: not configured (set {target.secret_from}); skipped")
                    continue
                if tname == "slack":
                    payload = slack_payload(st, want, open_now, settings)
                    url = target.url
                else:
                    payload = pagerduty_payload(st, want, target.routing_key or "", at_ms, settings)
                    url = target.url
                what = f"{tname} ({target.secret_from})" if tname == "slack" else f"pagerduty {target.url}"
                res = post_json(client, url, payload, what=what, settings=settings, sleep=sleep)
                action = "resolve" if want is None else "trigger"
                sent = Sent(st.name, tname, action, want, res.ok, res.status, res.attempts, res.error)
                sends.append(sent)
                recorded = {k: v for k, v in payload.items() if k != "routing_key"}
                action_docs.append(Doc(ACTION_KIND, f"notify:{st.name}:{tname}:{at_ms}:{action}", at_ms, {
                    "kind": "notify", **sent.as_dict(), "at": format_time(at_ms), "waits": res.waits,
                    "dedup_key": dedup_key(st.name) if tname == "pagerduty" else None, "payload": recorded}))
                if res.ok:
                    changed = True
                    if want is None:
                        tstate.pop(tname, None)
                    else:
                        # an escalation (ticket -> page) keeps the time the alert first opened
                        since = (tstate.get(tname) or {}).get("since", at_ms) if open_now else at_ms
                        tstate[tname] = {"open": want, "since": since, "updated": at_ms}
            if changed:
                body["updated"] = at_ms
                new_docs.append(Doc(STATE_KIND, st.name, at_ms, body))
        if new_docs:
            store.put_docs(STATE_KIND, new_docs, replace=True)
        if action_docs:
            store.put_docs(ACTION_KIND, action_docs, replace=True)
    finally:
        if own_client:
            client.close()
    return sends, notes
