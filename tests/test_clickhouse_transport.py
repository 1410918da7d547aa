"""The ClickHouse HTTP transport against a local HTTPS server speaking just enough of ClickHouse's
HTTP interface: TLS (CA file, verification on and off), Basic auth from the configured env vars,
and the URL shown without its password."""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from oncall_ai.errors import StoreError
from oncall_ai.store.clickhouse import ClickHouseStore, parse_url

TABLES = ["oncall_ai_migrations", "series", "events", "rollup_1h", "rollup_1h_mv", "docs"]


@pytest.fixture
def https_clickhouse(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl not available to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            query = parse_qs(urlsplit(self.path).query).get("query", [body])[0]
            seen.append((self.headers.get("Authorization"), query))
            if self.headers.get("Authorization") != "Basic " + base64.b64encode(b"analyst:s3cret-pw").decode():
                data = b"Code: 516. DB::Exception: analyst: Authentication failed. (AUTHENTICATION_FAILED)"
                self.send_response(403)
            else:
                if "system.databases" in query:
                    rows = [["24.3.1.2672", 1, TABLES]]
                elif "oncall_ai_migrations" in query:
                    rows = [["m001_create_events"], ["m002_create_docs"]]
                elif "sum(n)" in query:
                    rows = [[42]]
                else:
                    rows = []
                data = orjson.dumps({"meta": [], "data": rows})
                self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"port": httpd.server_address[1], "ca": str(cert), "seen": seen}
    httpd.shutdown()
    httpd.server_close()


def test_tls_with_ca_file_and_credentials_from_env(https_clickhouse, monkeypatch):
    port = https_clickhouse["port"]
    monkeypatch.setenv("CH_USER", "analyst")
    monkeypatch.setenv("CH_PW", "s3cret-pw")
    cfg = {"user_env": "CH_USER", "password_env": "CH_PW", "verify": https_clickhouse["ca"]}
    with ClickHouseStore(f"clickhouses://127.0.0.1:{port}/scores", config=cfg) as store:
        assert store.server_version == (24, 3, 1)
        assert store.count_events() == 42
        assert store.url == f"clickhouses://127.0.0.1:{port}/scores"
    # without the CA: verification fails, cleanly
    with pytest.raises(StoreError) as e:
        ClickHouseStore(f"clickhouses://127.0.0.1:{port}/scores", config={"user_env": "CH_USER", "password_env": "CH_PW"})
    assert f"clickhouses://127.0.0.1:{port}/scores" in str(e.value) and "s3cret-pw" not in str(e.value)
    # verification off (a lab server)
    with ClickHouseStore(f"https://127.0.0.1:{port}/scores", config={**cfg, "verify": False}) as store:
        assert store.count_events() == 42


def test_wrong_password_in_url_is_never_shown(https_clickhouse):
    port = https_clickhouse["port"]
    url = f"clickhouses://analyst:wrong-pw@127.0.0.1:{port}/scores"
    with pytest.raises(StoreError) as e:
        ClickHouseStore(url, config={"verify": https_clickhouse["ca"]})
    msg = str(e.value)
    assert "refused user 'analyst'" in msg and "Authentication failed" in msg
    assert f"clickhouses://analyst@127.0.0.1:{port}/scores" in msg and "wrong-pw" not in msg


def test_parse_url():
    assert parse_url("clickhouse://h/db") == ("http://h:8123", "clickhouse://h:8123/db", "db", None, None)
    assert parse_url("clickhouses://u:p%40ss@h:9440/x")[1:] == ("clickhouses://u@h:9440/x", "x", "u", "p@ss")
    assert parse_url("https://h")[:3] == ("https://h:8443", "clickhouses://h:8443/default", "default")
    for bad in ("clickhouse:///db", "clickhouse://h/bad-name", "clickhouse://h:notaport/db"):
        with pytest.raises(StoreError):
            parse_url(bad)


def test_unknown_clickhouse_config_key():
    with pytest.raises(StoreError, match="clickhouse.pasword_env"):
        ClickHouseStore("clickhouse://127.0.0.1:1/db", config={"pasword_env": "X"})


def test_bad_clickhouse_section_names_the_config_file(tmp_path):
    """A bad key under `clickhouse:` is named with the config file it is in (exit 2, before any
    connection is tried)."""
    from oncall_ai.config import load_config
    from oncall_ai.errors import StoreError
    from oncall_ai.store import open_store

    p = tmp_path / "oncall-ai.yaml"
    for section, key in (("{timout: 5}", "clickhouse.timout: unknown key"),
                         ("{timeout: -1}", "clickhouse.timeout: must be a positive number"),
                         ("{verify: 3}", "clickhouse.verify:")):
        p.write_text(f"store: clickhouse://127.0.0.1:9/db\nclickhouse: {section}\n")
        cfg = load_config(p)
        with pytest.raises(StoreError) as e:
            open_store(cfg.store, config=cfg)
        assert e.value.message.startswith(f"{p}: {key}"), e.value.message
        assert e.value.exit_code == 2
