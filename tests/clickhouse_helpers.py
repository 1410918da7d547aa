"""Test helpers for the ClickHouse store: fresh databases on the CI server, and an in-process
current ClickHouse (chdb) behind the same transport interface, so the store's SQL is checked
against both Debian's 18.x server and a current engine."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid

import httpx
import pytest

ENV = "ONCALL_AI_TEST_CLICKHOUSE"


def server_url() -> str | None:
    """The CI server's HTTP URL, or None (skip). Under CI=true a missing server is a failure."""
    url = os.environ.get(ENV)
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but ${ENV} is not set: .ci/setup-clickhouse.sh should have started a server")
        return None
    return url.rstrip("/")


def server_query(sql: str) -> str:
    resp = httpx.post(server_url() + "/", content=sql.encode(), timeout=30)
    resp.raise_for_status()
    return resp.text


class FreshDatabase:
    """A uniquely named database on the CI server, dropped afterwards."""

    def __init__(self):
        base = server_url()
        self.name = f"oncall_test_{uuid.uuid4().hex[:12]}"
        server_query(f"CREATE DATABASE {self.name}")
        host = base.split("://", 1)[1]
        self.url = f"clickhouse://{host}/{self.name}"

    def drop(self) -> None:
        server_query(f"DROP DATABASE IF EXISTS {self.name}")


# --- chdb: a current ClickHouse in-process ----------------------------------------------------

_SESSION = None


def chdb_session():
    global _SESSION
    if _SESSION is None:
        chdb_session_mod = pytest.importorskip("chdb.session", reason="chdb not installed (pip install chdb)")
        _SESSION = chdb_session_mod.Session()
        _SESSION.query("SET output_format_json_quote_64bit_integers = 0")
    return _SESSION


_INSERT = re.compile(r"^\s*INSERT INTO (\S+) \(([^)]*)\) FORMAT Native\s*$", re.S)


class ChdbTransport:
    """Runs the store's SQL on chdb. Insert bodies and external tables go through temporary files
    (clickhouse-local reads any path), so the SQL text is exactly what the HTTP transport sends."""

    def __init__(self):
        self.s = chdb_session()
        self.tmp = tempfile.mkdtemp(prefix="chdb-io-")

    def run(self, sql: str, *, data: bytes | None = None, external=None) -> bytes:
        from chdb import ChdbError

        from oncall_ai.store.clickhouse import _server_error

        made, files = [], []
        try:
            if data is not None:
                m = _INSERT.match(sql)
                assert m, sql
                path = os.path.join(self.tmp, f"{uuid.uuid4().hex}.native")
                files.append(path)
                with open(path, "wb") as f:
                    f.write(data)
                sql = f"INSERT INTO {m.group(1)} ({m.group(2)}) SELECT {m.group(2)} FROM file('{path}', 'Native')"
            for name, (structure, body, *fmt) in (external or {}).items():
                fmt = fmt[0] if fmt else "TabSeparated"
                path = os.path.join(self.tmp, f"{uuid.uuid4().hex}.{fmt}")
                files.append(path)
                with open(path, "wb") as f:
                    f.write(body)
                self.s.query(f"CREATE TABLE default.{name} ({structure}) ENGINE = Memory")
                made.append(name)
                self.s.query(f"INSERT INTO default.{name} SELECT * FROM file('{path}', '{fmt}', '{structure}')")
            result = self.s.query(sql)
            return result.bytes() if result is not None else b""
        except ChdbError as e:
            raise _server_error(500, str(e), "chdb", "default") from None
        finally:
            for name in made:
                self.s.query(f"DROP TABLE IF EXISTS default.{name}")
            for path in files:
                os.unlink(path)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class ChdbDatabase:
    def __init__(self):
        self.name = f"oncall_test_{uuid.uuid4().hex[:12]}"
        chdb_session().query(f"CREATE DATABASE {self.name}")
        self.url = f"clickhouse://chdb.invalid:8123/{self.name}"

    def open(self, **kw):
        from oncall_ai.store.clickhouse import ClickHouseStore

        return ClickHouseStore(self.url, transport=ChdbTransport(), **kw)

    def drop(self) -> None:
        chdb_session().query(f"DROP DATABASE IF EXISTS {self.name}")
