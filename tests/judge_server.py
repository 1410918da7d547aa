"""A fake judge API on 127.0.0.1 for tests and the bench: speaks OpenAI Chat Completions
(`POST /v1/chat/completions`) and Anthropic Messages (`POST /v1/messages`), and misbehaves on
request. The item is found by an `item-<n>` token in the prompt; `plan[item_id]` says what to do:

    {"score": 4, "do": ["429", "text"]}

Behaviours (each "once" behaviour applies to the first attempt only, then the item answers):
  ok (default)      JSON {"score": N}
  text              "... Score: N"          fraction      "I'd say N/5."
  latency           answer after `latency` seconds (server-wide default `delay` applies to all)
  429               429 with Retry-After: 1 on the first attempt
  429ms             429 with retry-after-ms: 80 on the first attempt
  500               500 on the first two attempts
  timeout-once      sleep past the client's timeout on the first attempt
  timeout-always    always sleep past the client's timeout
  malformed-once    200 with a broken body on the first attempt
  malformed-always  always a broken body
  refuse            provider refusal (OpenAI message.refusal / Anthropic stop_reason "refusal")
  refuse-text       "I'm sorry, but I can't evaluate this."
  garbage           "The response looks fine to me."
  echo-key          first attempt: 500 whose body echoes the API key it was sent
  400               always 400 (not retried)
  drop              close the connection without answering
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ITEM = re.compile(r"\bitem-\d+\b")


class JudgeServer:
    def __init__(self, *, key: str | None = None, plan: dict | None = None, delay: float = 0.0,
                 sleep_past_timeout: float = 1.0):
        self.key = key
        self.plan = plan or {}
        self.delay = delay
        self.sleep_past_timeout = sleep_past_timeout
        self.lock = threading.Lock()
        self.attempts: dict[str, int] = {}
        self.requests: list[dict] = []
        self.default_score = 4
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # as real API servers do: no 40 ms Nagle/delayed-ACK stalls

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                try:
                    server._handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 128
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def openai_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- request handling ---------------------------------------------------------------
    def _send(self, h, status: int, body: bytes, headers: dict | None = None):
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(body)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _handle(self, h):
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length)
        path = h.path
        style = "anthropic" if path.endswith("/v1/messages") else "openai" if path.endswith("/chat/completions") else None
        headers = {k.lower(): v for k, v in h.headers.items()}
        try:
            req = json.loads(raw)
        except ValueError:
            return self._send(h, 400, b'{"error": "bad json"}')
        text = json.dumps(req)
        m = ITEM.search(text)
        item = m.group(0) if m else "?"
        with self.lock:
            n = self.attempts[item] = self.attempts.get(item, 0) + 1
            self.requests.append({"t": time.monotonic(), "item": item, "attempt": n, "path": path,
                                  "headers": headers, "body": req})
        if style is None:
            return self._send(h, 404, b'{"error": {"message": "no such route"}}')
        if self.key is not None:
            sent = headers.get("x-api-key") if style == "anthropic" else (headers.get("authorization") or "")[7:]
            if sent != self.key:
                return self._send(h, 401, b'{"error": {"message": "invalid x-api-key"}}')
            if style == "anthropic" and not headers.get("anthropic-version"):
                return self._send(h, 400, b'{"error": {"message": "anthropic-version header is required"}}')
        spec = self.plan.get(item, {})
        do = spec.get("do", [])
        score = spec.get("score", self.default_score)
        if self.delay:
            time.sleep(self.delay)
        if "latency" in do:
            time.sleep(spec.get("latency", 0.05))
        if "drop" in do:
            h.close_connection = True
            h.connection.close()
            return
        if "400" in do:
            return self._send(h, 400, b'{"error": {"message": "prompt too long"}}')
        if "429" in do and n == 1:
            return self._send(h, 429, b'{"error": {"message": "rate limited"}}', {"retry-after": "1"})
        if "429ms" in do and n == 1:
            return self._send(h, 429, b'{"error": {"message": "rate limited"}}', {"retry-after-ms": "80"})
        if "500" in do and n <= 2:
            return self._send(h, 500, b'{"error": {"message": "internal error"}}')
        if "echo-key" in do and n == 1:
            echoed = self.key or headers.get("authorization", "")
            return self._send(h, 500, json.dumps({"error": {"message": f"Incorrect API key provided: {echoed}"}}).encode())
        if ("timeout-once" in do and n == 1) or "timeout-always" in do:
            time.sleep(self.sleep_past_timeout)
        if ("malformed-once" in do and n == 1) or "malformed-always" in do:
            return self._send(h, 200, b'{"choices": [{"message": {"content": "Score: ')
        refused = "refuse" in do
        if "text" in do:
            content = f"The answer covers the question well but misses one detail.\nScore: {score}"
        elif "fraction" in do:
            content = f"I'd say {score}/5."
        elif "refuse-text" in do:
            content = "I'm sorry, but I can't evaluate this."
        elif "garbage" in do:
            content = "The response looks fine to me."
        else:
            content = json.dumps({"score": score, "reason": "fine"})
        if style == "anthropic":
            body = {"id": "msg_1", "type": "message", "role": "assistant", "model": req.get("model"),
                    "content": [] if refused else [{"type": "text", "text": content}],
                    "stop_reason": "refusal" if refused else "end_turn", "stop_sequence": None,
                    "usage": {"input_tokens": 10, "output_tokens": 5}}
        else:
            msg = {"role": "assistant", "content": None if refused else content,
                   "refusal": "I can't help with that." if refused else None}
            body = {"id": "chatcmpl-1", "object": "chat.completion", "model": req.get("model"),
                    "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}]}
        return self._send(h, 200, json.dumps(body).encode())


if __name__ == "__main__":  # a standalone server for bench/judge_bench.py (its own process: no shared GIL)
    import argparse
    import sys

    ap = argparse.ArgumentParser()
    ap.add_argument("--delay", type=float, default=0.0)
    ap.add_argument("--key", default=None)
    a = ap.parse_args()
    with JudgeServer(key=a.key, delay=a.delay) as srv:
        print(srv.port, flush=True)
        sys.stdin.read()  # until the parent closes our stdin
