"""Read scores from Langfuse's public API and turn them into eval events.

Endpoints (research/peer-platforms.md 2.1, Langfuse's fern definitions):
- `GET /api/public/v3/scores` — cursor pagination (`limit` <= 100, `cursor`), `fromTimestamp`
  (inclusive) / `toTimestamp` (exclusive), `fields=details,subject`. Self-hosted >= 3.179; 404
  when the server is older or the v3 flag is off, and then we fall back to
- `GET /api/public/v2/scores`, then `GET /api/public/scores` (v1) — page-based (`page` from 1,
  `meta.totalPages`), same timestamps.
- `GET /api/public/traces?filter=[{column: id, any of}]&fields=core,io` — the trace metadata of a
  page of scores in one request; servers without `filter` get `GET /api/public/traces/{id}`.
Auth: HTTP Basic, public key as user, secret key as password, both from environment variables.

Every request is retried on 429 and 5xx (and on connection errors), honouring Retry-After, with
exponential back-off otherwise. The secret key never appears in a message or in a stored doc.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from oncall_ai.config import config_where
from oncall_ai.errors import ConfigError, OncallError
from oncall_ai.sources.http import retry_after_seconds
from oncall_ai.timeutil import parse_duration_ms

DEFAULT_HOST = "https://cloud.langfuse.com"
DEFAULT_SOURCES = {"EVAL": "judge", "ANNOTATION": "user", "API": "check"}
DEFAULT_FIELDS = {
    "feature": "trace.name",
    "model_id": "trace.metadata.model",
    "prompt_version": "trace.metadata.prompt_version",
    "index_version": "trace.metadata.index_version",
    "judge_id": "score.metadata.judge_id",
}
SECTION_KEYS = ("host", "public_key_env", "secret_key_env", "projects", "lag", "page_size", "max_retries",
                "timeout", "fields", "feature_default", "slices", "metrics", "names", "sources", "environment")
TRACE_BATCH = 50
SCORES_API = ("v3", "v2", "v1")
_PATHS = {"v3": "/api/public/v3/scores", "v2": "/api/public/v2/scores", "v1": "/api/public/scores"}


class LangfuseError(ConfigError):
    """Langfuse refused or kept failing (exit 2): keys, host, or the service itself."""


class _NotFound(Exception):
    pass


@dataclass(frozen=True)
class Project:
    name: str
    host: str
    public_key: str
    secret_key: str = field(repr=False)


@dataclass(frozen=True)
class Mapping:
    """Where each event field comes from: `trace.<key>` / `score.<key>`, dots into metadata."""

    fields: dict[str, str]
    slices: dict[str, str]
    metrics: dict[str, str]
    sources: dict[str, str]
    feature_default: str | None = None
    names: tuple[str, ...] = ()
    environment: tuple[str, ...] = ()


@dataclass(frozen=True)
class Settings:
    projects: tuple[Project, ...]
    mapping: Mapping
    lag_ms: int = 600_000
    page_size: int = 100
    max_retries: int = 6
    timeout: float = 30.0


class _BadKey(Exception):
    """A bad key of the `langfuse:` section; load_settings names the config file with it."""

    def __init__(self, key: str, message: str):
        super().__init__(f"langfuse.{key}: {message}")


def _fail(key: str, message: str):
    raise _BadKey(key, message)


def _str_map(section: dict, key: str) -> dict[str, str]:
    value = section.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        _fail(key, "must be a mapping of strings")
    return dict(value)


def _path_ok(key: str, path: str) -> None:
    if not (path.startswith("trace.") or path.startswith("score.")) or path.endswith("."):
        _fail(key, f"{path!r} must start with trace. or score. (e.g. trace.metadata.language)")


def load_settings(cfg, project: str | None = None, environ=None) -> Settings:
    """Settings from the config's `langfuse:` section (all optional). Keys come from the
    environment variables it names (default LANGFUSE_PUBLIC_KEY / LANGFUSE_SECRET_KEY).
    A bad key is a ConfigError naming the config file and the key."""
    try:
        return _load_settings(cfg, project, environ)
    except _BadKey as e:
        raise ConfigError(f"{config_where(cfg)}: {e}") from None


def _load_settings(cfg, project: str | None, environ) -> Settings:
    environ = os.environ if environ is None else environ
    section = cfg.section("langfuse") if cfg is not None else {}
    for k in section:
        if k not in SECTION_KEYS:
            _fail(str(k), f"unknown key (known: {', '.join(SECTION_KEYS)})")
    host = section.get("host") or environ.get("LANGFUSE_HOST") or environ.get("LANGFUSE_BASE_URL") or DEFAULT_HOST
    pk_env = section.get("public_key_env", "LANGFUSE_PUBLIC_KEY")
    sk_env = section.get("secret_key_env", "LANGFUSE_SECRET_KEY")
    projects_cfg = section.get("projects") or {}
    if not isinstance(projects_cfg, dict):
        _fail("projects", "must be a mapping of project name -> {host, public_key_env, secret_key_env}")
    specs: list[tuple[str, str, str, str, str]] = []
    if projects_cfg:
        for name, p in projects_cfg.items():
            p = p or {}
            if not isinstance(p, dict):
                _fail(f"projects.{name}", "must be a mapping {host, public_key_env, secret_key_env}")
            for k in p:
                if k not in ("host", "public_key_env", "secret_key_env"):
                    _fail(f"projects.{name}.{k}", "unknown key (known: host, public_key_env, secret_key_env)")
            specs.append((str(name), p.get("host", host), p.get("public_key_env", pk_env), p.get("secret_key_env", sk_env),
                          f"langfuse.projects.{name}"))
        if project is not None:
            specs = [s for s in specs if s[0] == project]
            if not specs:
                raise ConfigError(f"--project {project!r}: not in langfuse.projects "
                                  f"(known: {', '.join(map(str, projects_cfg))})")
    else:
        specs.append((project or "default", host, pk_env, sk_env, "langfuse"))
    projects = []
    for name, h, pk, sk, where in specs:
        public, secret = environ.get(str(pk)), environ.get(str(sk))
        missing = [v for v, val in ((pk, public), (sk, secret)) if not val]
        if missing:
            raise ConfigError(f"Langfuse project {name!r}: environment variable(s) {', '.join(map(str, missing))} not set",
                              hint=f"export the project's API keys, or name other variables in {where}.public_key_env/secret_key_env")
        if not str(h).startswith(("http://", "https://")):
            _fail("host", f"{h!r} must be an http(s) URL, e.g. {DEFAULT_HOST}")
        projects.append(Project(name, str(h).rstrip("/"), public, secret))

    fields = {**DEFAULT_FIELDS, **_str_map(section, "fields")}
    for k, path in fields.items():
        if k not in DEFAULT_FIELDS:
            _fail(f"fields.{k}", f"unknown field (known: {', '.join(DEFAULT_FIELDS)})")
        _path_ok(f"fields.{k}", path)
    slices = _str_map(section, "slices") or {k: f"trace.metadata.{k}" for k in (cfg.slices if cfg is not None else ())}
    for k, path in slices.items():
        _path_ok(f"slices.{k}", path)
    sources = {**DEFAULT_SOURCES, **{k.upper(): v for k, v in _str_map(section, "sources").items()}}
    for k, v in sources.items():
        if v not in ("judge", "check", "user"):
            _fail(f"sources.{k}", f"{v!r} is not one of judge, check, user")
    names = section.get("names") or []
    environment = section.get("environment") or []
    for key, val in (("names", names), ("environment", environment)):
        if isinstance(val, str):
            val = [val]
        if not isinstance(val, list) or not all(isinstance(x, str) for x in val):
            _fail(key, "must be a list of strings")
    names = [names] if isinstance(names, str) else names
    environment = [environment] if isinstance(environment, str) else environment
    try:
        lag_ms = parse_duration_ms(section["lag"]) if "lag" in section else 600_000
    except ValueError as e:
        _fail("lag", str(e))
    page_size = section.get("page_size", 100)
    if not isinstance(page_size, int) or isinstance(page_size, bool) or not 1 <= page_size <= 100:
        _fail("page_size", "must be a whole number from 1 to 100 (Langfuse's maximum)")
    max_retries = section.get("max_retries", 6)
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        _fail("max_retries", "must be a whole number >= 0")
    timeout = section.get("timeout", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        _fail("timeout", "must be a positive number of seconds")
    feature_default = section.get("feature_default")
    if feature_default is not None and not isinstance(feature_default, str):
        _fail("feature_default", "must be a string")
    mapping = Mapping(fields, slices, _str_map(section, "metrics"), sources, feature_default,
                      tuple(names), tuple(environment))
    return Settings(tuple(projects), mapping, lag_ms, page_size, max_retries, float(timeout))


# --- HTTP ----------------------------------------------------------------------------------------

def _retry_after_seconds(value: str | None, now: float) -> float | None:
    return retry_after_seconds(value, now)


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


class Client:
    """A small Langfuse API client: Basic auth, retries with back-off, errors without secrets."""

    def __init__(self, project: Project, *, timeout: float = 30.0, max_retries: int = 6,
                 sleep: Callable[[float], None] | None = None, on_wait: Callable[[str], None] | None = None):
        import httpx

        self._httpx = httpx
        self.project = project
        self.max_retries = max_retries
        self.sleep = sleep
        self.on_wait = on_wait
        self.requests = 0
        self.http = httpx.Client(base_url=project.host, auth=httpx.BasicAuth(project.public_key, project.secret_key),
                                 timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
                                 headers={"Accept": "application/json", "User-Agent": "oncall-ai"})

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, params: dict | None = None) -> dict:
        httpx = self._httpx
        where = f"Langfuse at {self.project.host} (project {self.project.name!r})"
        problem = ""
        for attempt in range(self.max_retries + 1):
            wait = None
            try:
                self.requests += 1
                resp = self.http.get(path, params=params)
            except httpx.TransportError as e:
                problem = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}".rstrip(": ")
            else:
                status = resp.status_code
                if status == 200:
                    try:
                        return orjson.loads(resp.content)
                    except orjson.JSONDecodeError:
                        raise LangfuseError(f"{where}: {path} did not return JSON",
                                            hint="is `langfuse.host` the Langfuse URL (not its UI path)?") from None
                if status in (401, 403):
                    raise LangfuseError(f"{where} refused the API keys (HTTP {status})",
                                        hint="check the public and secret key in the environment variables "
                                             "named by langfuse.public_key_env / secret_key_env")
                if status == 404:
                    raise _NotFound(path)
                if status == 429 or status >= 500:
                    problem = f"HTTP {status}"
                    wait = _retry_after_seconds(resp.headers.get("Retry-After"), time.time())
                else:
                    detail = resp.text.strip().splitlines()[0][:300] if resp.text.strip() else ""
                    raise LangfuseError(f"{where}: {path} answered HTTP {status} {detail}".rstrip())
            if attempt == self.max_retries:
                break
            if wait is None:
                wait = min(60.0, 0.5 * 2 ** attempt)
            wait = min(wait, 300.0)
            if self.on_wait is not None:
                self.on_wait(f"{where}: {problem}; retrying in {wait:g}s")
            (self.sleep or _sleep)(wait)
        raise LangfuseError(f"{where}: {problem} after {self.max_retries + 1} attempts",
                            hint="progress is saved: run the same command again to resume")

    # --- scores ----------------------------------------------------------------------------------
    def score_pages(self, api: str, start_ms: int, end_ms: int, *, position: str | int | None,
                    page_size: int, names: tuple[str, ...] = (), environment: tuple[str, ...] = ()
                    ) -> Iterator[tuple[list[dict], str | int | None]]:
        """Pages of scores in [start, end), starting at `position` (a v3 cursor, or a page number);
        yields (scores, position of the next page or None at the end)."""
        params: dict = {"limit": page_size, "fromTimestamp": iso(start_ms), "toTimestamp": iso(end_ms)}
        if len(names) == 1:
            params["name"] = names[0]
        if environment:
            params["environment"] = list(environment)
        if api == "v3":
            params["fields"] = "details,subject"
            cursor = position
            while True:
                page = self.get(_PATHS[api], {**params, **({"cursor": cursor} if cursor else {})})
                cursor = (page.get("meta") or {}).get("cursor") or None
                yield list(page.get("data") or []), cursor
                if not cursor:
                    return
        else:
            if api == "v2":
                params["fields"] = "score,trace"
            number = int(position or 1)
            while True:
                page = self.get(_PATHS[api], {**params, "page": number})
                meta = page.get("meta") or {}
                data = list(page.get("data") or [])
                total_pages = meta.get("totalPages")
                more = (number < int(total_pages)) if total_pages is not None else len(data) >= page_size
                yield data, (number + 1 if more else None)
                if not more:
                    return
                number += 1

    def detect_api(self, start_ms: int, end_ms: int) -> str:
        for api in SCORES_API:
            try:
                self.get(_PATHS[api], {"limit": 1, "fromTimestamp": iso(start_ms), "toTimestamp": iso(end_ms)})
                return api
            except _NotFound:
                continue
        raise LangfuseError(f"Langfuse at {self.project.host}: no scores endpoint (v3, v2 or v1) answered",
                            hint="is `langfuse.host` the base URL of a Langfuse server?")

    # --- traces ----------------------------------------------------------------------------------
    _filter_works: bool | None = None

    def traces(self, ids: list[str]) -> dict[str, dict]:
        """Trace objects by id, batched (TRACE_BATCH per request)."""
        out: dict[str, dict] = {}
        for i in range(0, len(ids), TRACE_BATCH):
            chunk = ids[i:i + TRACE_BATCH]
            if self._filter_works is not False:
                flt = orjson.dumps([{"type": "stringOptions", "column": "id", "operator": "any of", "value": chunk}]).decode()
                try:
                    page = self.get("/api/public/traces", {"filter": flt, "fields": "core,io", "limit": len(chunk)})
                    data = page.get("data") or []
                    wanted = set(chunk)
                    if all(t.get("id") in wanted for t in data):
                        self._filter_works = True
                        out.update({t["id"]: t for t in data})
                        continue
                except (_NotFound, LangfuseError):
                    pass
                self._filter_works = False  # an older server: ignored or rejected the filter
            for tid in chunk:
                try:
                    out[tid] = self.get(f"/api/public/traces/{tid}")
                except _NotFound:
                    pass  # a deleted trace: its scores keep only what they carry
        return out


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


# --- mapping scores to events -----------------------------------------------------------------------

def _lookup(path: str, score: dict, trace: dict | None):
    root, _, rest = path.partition(".")
    obj = score if root == "score" else trace
    for part in rest.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
        if obj is None:
            return None
    if isinstance(obj, str):
        return obj or None
    if isinstance(obj, bool):
        return "true" if obj else "false"
    if isinstance(obj, int | float):
        return f"{obj:g}" if isinstance(obj, float) else str(obj)
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()


def trace_id_of(score: dict) -> str | None:
    subject = score.get("subject")
    if isinstance(subject, dict):
        kind = subject.get("kind")
        if kind == "trace":
            return subject.get("id")
        if subject.get("traceId"):
            return subject.get("traceId")
    return score.get("traceId")


class Skip(Exception):
    """A score that is not an eval event (categorical, text, not on a trace, name filtered out)."""


def to_record(score: dict, trace: dict | None, mapping: Mapping) -> dict:
    """One Langfuse score -> one event record (CONTRACT.md section 1). Raises Skip."""
    name = score.get("name")
    if mapping.names and name not in mapping.names:
        raise Skip("name not in langfuse.names")
    dtype = str(score.get("dataType") or "NUMERIC").upper()
    value = score.get("value")
    if dtype == "BOOLEAN":
        if isinstance(value, str):
            value = value.strip().lower() in ("true", "1")
        value = bool(value) if value is not None else None
    elif dtype != "NUMERIC":
        raise Skip(f"{dtype.lower()} scores carry no number")
    if value is None:
        raise Skip("no value")
    tid = trace_id_of(score)
    if not tid:
        raise Skip("not attached to a trace")
    record: dict = {
        "id": score.get("id"),
        "ts": score.get("timestamp"),
        "metric": mapping.metrics.get(name, name),
        "value": value,
        "request_id": tid,
    }
    feature = _lookup(mapping.fields["feature"], score, trace) or mapping.feature_default
    if feature:
        record["feature"] = feature
    source = mapping.sources.get(str(score.get("source") or "").upper())
    if source:
        record["source"] = source
    for key in ("model_id", "prompt_version", "index_version", "judge_id"):
        v = _lookup(mapping.fields[key], score, trace)
        if v is not None:
            record[key] = v
    sl = {}
    for key, path in mapping.slices.items():
        v = _lookup(path, score, trace)
        if v is not None:
            sl[key] = v
    if sl:
        record["slice"] = sl
    return record


# --- the import ----------------------------------------------------------------------------------

STATE_KIND = "import_state"
FLUSH_RECORDS = 5_000


@dataclass
class ImportResult:
    project: str
    api: str | None = None
    windows: list[tuple[int, int]] = field(default_factory=list)
    pages: int = 0
    scores: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    rejects: list[str] = field(default_factory=list)
    high_water: int | None = None
    resumed: bool = False


def state_id(project: str) -> str:
    return f"langfuse:{project}"


def run_import(store, cfg, settings: Settings, project: Project, *, start_ms: int | None, end_ms: int,
               default_start_ms: int, client: Client,
               progress: Callable[[ImportResult], None] | None = None) -> ImportResult:
    """Import the project's scores into the store.

    Window: [start, end); without an explicit start, from the stored high-water mark (or
    `default_start_ms` on the first run). An interrupted window is finished first, from the page
    it stopped at (state doc `import_state`/`langfuse:<project>`, saved after every page, so a
    crash re-reads at most one page, which ingest then skips by score id)."""
    from oncall_ai.ingest import ingest_records
    from oncall_ai.store.base import Doc

    result = ImportResult(project.name)
    sid = state_id(project.name)
    doc = store.get_doc(STATE_KIND, sid)
    state = dict(doc.body) if doc is not None else {}
    traces_cache: dict[str, dict | None] = {}

    def save(**changes) -> None:
        state.update(changes)
        store.put_docs(STATE_KIND, [Doc(STATE_KIND, sid, int(time.time() * 1000), dict(state))], replace=True)

    def import_window(api: str, a: int, b: int, position) -> None:
        result.windows.append((a, b))
        buffer: list[dict] = []
        at = position  # where the pages not yet stored start

        def flush(next_position) -> None:
            nonlocal at
            if buffer:
                r = ingest_records(buffer, config=cfg, store=store, name=f"langfuse:{project.name}")
                result.stored += r.stored
                result.duplicates += r.duplicates
                result.rejected += r.rejected
                for rej in r.rejects:
                    if len(result.rejects) < 10:
                        bad = buffer[rej.line - 1] if 0 < rej.line <= len(buffer) else {}
                        result.rejects.append(f"score {bad.get('id')}: {rej.reason}")
            save(api=api, window=[a, b], position=next_position,
                 imported=int(state.get("imported", 0)) + len(buffer))
            buffer.clear()
            at = next_position

        pending = position
        try:
            for scores, next_position in client.score_pages(api, a, b, position=position, page_size=settings.page_size,
                                                            names=settings.mapping.names,
                                                            environment=settings.mapping.environment):
                result.pages += 1
                result.scores += len(scores)
                need = sorted({t for t in (trace_id_of(s) for s in scores) if t and t not in traces_cache})
                if need:
                    found = client.traces(need)
                    for t in need:
                        traces_cache[t] = found.get(t)
                    if len(traces_cache) > 20_000:  # keep memory flat on long imports
                        for t in list(traces_cache)[:10_000]:
                            del traces_cache[t]
                for s in scores:
                    try:
                        buffer.append(to_record(s, traces_cache.get(trace_id_of(s) or ""), settings.mapping))
                    except Skip as e:
                        result.skipped[str(e)] = result.skipped.get(str(e), 0) + 1
                pending = next_position
                # Store in large batches (one ClickHouse insert per batch, not per page of 100).
                if len(buffer) >= FLUSH_RECORDS:
                    flush(pending)
                if progress is not None:
                    progress(result)
        except (LangfuseError, KeyboardInterrupt):
            # Keep what was read, and remember the page that failed: the next run starts there.
            flush(pending)
            raise
        flush(pending)
        hw = state.get("high_water")
        # The mark only moves over ground covered without a gap.
        if hw is None or a <= hw:
            hw = max(hw or b, b)
        save(window=None, position=None, high_water=hw)
        result.high_water = hw

    def window(api: str | None, a: int, b: int, position) -> None:
        api = api or client.detect_api(a, b)
        result.api = api
        try:
            import_window(api, a, b, position)
        except _NotFound:
            # The endpoint we used before is gone (server changed): find the one it has now and
            # go through the window again from its start (ingest skips what is stored).
            result.api = client.detect_api(a, b)
            import_window(result.api, a, b, None)

    if state.get("window"):
        a, b = state["window"]
        result.resumed = True
        window(state.get("api"), a, b, state.get("position"))
    hw = state.get("high_water")
    a = start_ms if start_ms is not None else (hw if hw is not None else default_start_ms)
    if a < end_ms:
        window(result.api or state.get("api"), a, end_ms, None)
    result.high_water = state.get("high_water")
    return result


def ensure_not_secret(text: str, project: Project) -> str:
    """Belt and braces for anything printed: the secret key never leaves."""
    if project.secret_key and project.secret_key in text:
        raise OncallError("internal: refusing to print a message containing the Langfuse secret key")
    return text
